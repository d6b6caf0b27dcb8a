"""What every benchmark is made of, and what every run of one shares.

A benchmark module declares one :class:`Benchmark`: its command-line name,
its options with their defaults
(:class:`~dask_gradcode.bench.options.Option`), the optional packages it
needs, a *measuring* function that returns :class:`Measured` tables and a
*page* function that turns them into figures and a markdown page.
:meth:`Benchmark.run` does what every run repeats around the two: check the
requirements, fill in the defaults, choose the transport, build the
:class:`~dask_gradcode.bench.report.Report`.  :class:`Session` is what the
measuring and page functions share: where to run, the command that
reproduces the run, whether to show progress.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from dask_gradcode.bench.cluster import ClusterTarget
from dask_gradcode.bench.options import TRANSPORT, Option
from dask_gradcode.bench.report import Report

__all__ = ["Benchmark", "Measured", "Options", "Page", "Session"]

#: A benchmark's options as attributes (``o.max_rounds`` for ``--max-rounds``).
Options = SimpleNamespace


@dataclass(frozen=True)
class Session:
    """Where a benchmark runs, how its run is reproduced, whether it shows progress.

    Parameters
    ----------
    target : ClusterTarget
        Where to run.
    command : str
        The command line that reproduces the run, quoted in the report.
    progress : bool, default=True
        Show a progress bar.
    """

    target: ClusterTarget
    command: str
    progress: bool = True

    def bar(self, iterable: Iterable[Any] | None = None, **settings: Any) -> Any:
        """A tqdm progress bar, silent without ``progress``."""
        from tqdm.auto import tqdm

        return tqdm(iterable, disable=not self.progress, **settings)

    def reproduce(self, *, bench_extra: bool = True) -> str:
        """The page's sentence saying how to run it again.

        With ``bench_extra`` it names ``pip install -e .[bench]`` beside
        ``make test``: enough for the benchmarks that need no test extras.
        """
        after = (
            "`make test` or\n`pip install -e .[bench]`"
            if bench_extra
            else "`make test`"
        )
        where = "from the repository root"
        return f"Reproduce with `{self.command}` ({where}, after {after})."


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its options, requirements, measurement and page.

    Parameters
    ----------
    name : str
        The ``dask-gradcode bench NAME`` sub-command.
    files : str
        Base name of the files written (``decode_stability``, ...).
    help : str
        One line for ``--help``.
    measure : callable
        ``measure(session, options) -> Measured``; ``options`` holds every
        option as an attribute (``options.max_rounds`` for ``--max-rounds``).
    page : callable
        ``page(measured, session) -> Page``.
    options : tuple of Option
        The command-line options and their defaults, in ``--help``'s order.
    requirements : tuple of str, default=("matplotlib",)
        Optional packages (import names) checked before anything runs.
    transport : bool, default=True
        Whether it takes ``--transport`` (the library's default transport,
        chosen for the whole run through Dask's configuration).
    published : tuple of str, default=()
        The options of the run published in ``docs/`` beyond ``--out docs``;
        several published runs are separated by ``";"`` (each may give its
        own ``--out``)
        (``benchmarks/reproduce.py`` runs it again with them).
    local_only : str, default=""
        Why it runs only on processes it starts itself (it then takes no
        cluster options, and its ``--help`` lists none); empty: it runs on
        an embedded ``LocalCluster`` or an existing cluster.
    """

    name: str
    files: str
    help: str
    measure: Callable[[Session, Options], Measured]
    page: Callable[[Measured, Session], Page]
    options: tuple[Option, ...] = ()
    requirements: tuple[str, ...] = ("matplotlib",)
    transport: bool = True
    published: tuple[str, ...] = ()
    local_only: str = ""

    def published_runs(self) -> list[list[str]]:
        """The options of each published run (one list per run)."""
        runs: list[list[str]] = [[]]
        for word in self.published:
            if word == ";":
                runs.append([])
            else:
                runs[-1].append(word)
        return runs

    def declared(self) -> tuple[Option, ...]:
        """Every option, ``--transport`` first where it takes one."""
        return ((TRANSPORT,) if self.transport else ()) + self.options

    def defaults(self) -> dict[str, Any]:
        """Each option's default (the measuring function's, not ``--transport``)."""
        return {option.dest: option.default for option in self.options}

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The options given on a command line (absent ones are not in ``args``)."""
        return {
            o.dest: getattr(args, o.dest) for o in self.declared() if o.dest in args
        }

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the options to ``parser``, each help ending with its default."""
        for option in self.declared():
            settings = {**option.settings, "help": option.help()}
            parser.add_argument(*option.flags, **settings)

    def check_requirements(self) -> None:
        """Raise ImportError naming the extra to install, before any computation."""
        missing = [
            package
            for package in self.requirements
            if importlib.util.find_spec(package) is None
        ]
        if missing:
            names = ", ".join(package.replace("_", "-") for package in missing)
            raise ImportError(
                f"bench {self.name} needs {names}: pip install 'dask-gradcode[bench]' "
                "(make test installs it too)"
            )

    def run(
        self,
        *,
        target: ClusterTarget | None = None,
        command: str | None = None,
        progress: bool = True,
        transport: str | None = None,
        **options: Any,
    ) -> Report:
        """Measure with ``options`` and write the page.

        Parameters
        ----------
        target, command, progress
            The :class:`Session`: where to run (default: an embedded
            cluster), the command quoted in the page (default:
            ``dask-gradcode bench NAME``), whether to show progress.
        transport : {"direct", "futures"}, optional
            The library's default transport for the run (default: Dask's
            configuration, ``gradcode.transport``).
        **options
            The benchmark's options by their Python names; the others take
            their defaults.

        Returns
        -------
        Report
        """
        defaults = self.defaults()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise TypeError(
                f"bench {self.name} has no options {unknown}; it has {sorted(defaults)}"
            )
        self.check_requirements()
        if self.local_only and target is not None and not target.embedded:
            raise ValueError(
                f"bench {self.name} cannot run on an existing cluster: it "
                f"{self.local_only}"
            )
        session = Session(
            ClusterTarget() if target is None else target,
            f"dask-gradcode bench {self.name}" if command is None else command,
            progress,
        )
        settings = Options(**{**defaults, **options})
        with _default_transport(transport):
            measured = self.measure(session, settings)
        measured.options = settings
        page = self.page(measured, session)
        return Report(
            self.files, measured.tables, page.figures, page.markdown, page.document
        )


@dataclass
class Measured:
    """What a measurement found, and the options it was measured with.

    Attributes
    ----------
    tables : dict of str to list of dict
        The report's tables (see :class:`~dask_gradcode.bench.report.Report`).
    facts : dict
        Other results the page quotes (an optimum, objects to plot, ...).
    options : Options
        The options, defaults included (set by :meth:`Benchmark.run`).
    """

    tables: dict[str, list[dict[str, Any]]]
    facts: dict[str, Any] = field(default_factory=dict)
    options: Options = field(default_factory=Options)


@dataclass
class Page:
    """A benchmark's page: its markdown, its figures by key, its own JSON if any."""

    markdown: str
    figures: dict[str, Any] = field(default_factory=dict)
    document: dict[str, Any] | None = None


@contextlib.contextmanager
def _default_transport(transport: str | None) -> Iterator[None]:
    if transport is None:
        yield
        return
    import dask.config

    with dask.config.set({"gradcode.transport": transport}):
        yield
