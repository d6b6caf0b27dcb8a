"""Command-line options of the benchmarks, declared once and shared.

A benchmark lists its options as :class:`Option` values beside its measuring
function; the options several benchmarks take (``--workers``, ``--rows``,
``--gap``, ...) are built here, and so are the value checks and the cluster
options every command that computes on Dask takes.  This module imports only
the standard library: ``dask-gradcode --help`` and ``dask-gradcode stability``
must not pay for importing Dask.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dask_gradcode.bench.cluster import ClusterTarget

__all__ = [
    "TRANSPORT",
    "Option",
    "add_cluster_options",
    "add_output_options",
    "at_least",
    "delay",
    "features",
    "gap",
    "option",
    "positive",
    "positive_float",
    "rounds",
    "rows",
    "seconds",
    "stragglers",
    "switch",
    "target_of",
    "workers",
]


@dataclass(frozen=True)
class Option:
    """One command-line option of a benchmark, and its default.

    ``parser.add_argument(*flags, **settings)`` declares it; ``--help`` ends
    its help with the default, and :meth:`Benchmark.run
    <dask_gradcode.bench.benchmark.Benchmark.run>` passes the default when
    the option is not given, so that the default lives in this one place.
    """

    flags: tuple[str, ...]
    default: Any
    settings: dict[str, Any] = field(default_factory=dict)
    quote_default: bool = True

    @property
    def dest(self) -> str:
        """The keyword the option's value is passed as."""
        name = self.flags[0].lstrip("-").replace("-", "_")
        return str(self.settings.get("dest", name))

    @property
    def is_flag(self) -> bool:
        """Whether the option takes no value (its default goes without saying)."""
        return self.settings.get("action") in ("store_true", "store_false")

    def help(self) -> str:
        """The help text, ending with the default where the option takes a value."""
        if self.is_flag or not self.quote_default:
            return str(self.settings["help"])
        default = self.default
        if isinstance(default, list | tuple):
            default = " ".join(str(value) for value in default)
        return f"{self.settings['help']} (default: {default})"


def option(
    flag: str, default: Any, kind: Callable[[str], Any] | None, text: str, **more: Any
) -> Option:
    """An option taking a value: its flag, default, argparse type and help."""
    return Option((flag,), default, {"type": kind, "help": text, **more})


def switch(flag: str, default: bool, text: str, dest: str | None = None) -> Option:
    """An option taking no value: giving it turns ``default`` around."""
    action = "store_false" if default else "store_true"
    more = {} if dest is None else {"dest": dest}
    return Option((flag,), default, {"action": action, "help": text, **more})


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive = at_least(1)


def seconds(text: str) -> float:
    """An argparse type: a number ``>= 0`` (seconds, milliseconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number ``> 0``."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def workers(default: Any, minimum: int = 2, text: str = "workers n") -> Option:
    """``--workers``: a number of workers, or several for a sequence default."""
    if isinstance(default, tuple):
        return option("--workers", default, at_least(minimum), text, nargs="+")
    return option("--workers", default, at_least(minimum), text)


def stragglers(default: int, minimum: int = 0, text: str = "s of the code") -> Option:
    """``--stragglers``: the ``s`` of the codes."""
    return option("--stragglers", default, at_least(minimum), text)


def rows(default: int, minimum: int = 100, text: str = "rows of the data") -> Option:
    """``--rows``: rows of the benchmark's data."""
    return option("--rows", default, at_least(minimum), text)


def features(default: int) -> Option:
    """``--features``: features of the benchmark's data."""
    return option("--features", default, at_least(2), "features of the data")


def delay(default: float) -> Option:
    """``--delay``: how late a slow worker is."""
    return option("--delay", default, seconds, "seconds a slow worker is late")


def gap(default: float, text: str = "convergence target above the optimum") -> Option:
    """``--gap``: how close to the optimum a fit must come."""
    return option("--gap", default, positive_float, text)


def rounds(default: int, text: str, flag: str = "--rounds") -> Option:
    """``--rounds`` (or ``--max-rounds``, ...): a number of rounds."""
    return option(flag, default, positive, text)


#: ``--transport`` of the benchmarks that run on the library's default
#: transport; None leaves the choice to Dask's configuration.
TRANSPORT = Option(
    ("--transport",),
    None,
    {
        "choices": ("direct", "futures"),
        "help": "how rounds reach the workers (default: the library's default, "
        "gradcode.transport in Dask's configuration, else direct)",
    },
    quote_default=False,
)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--out`` and ``--no-progress``: where to write, whether to show progress."""
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("gradcode-results"),
        help="folder for the CSV, JSON, PNG and markdown files "
        "(default: gradcode-results; docs/ holds the published ones)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_cluster_options(
    parser: argparse.ArgumentParser, *, listed: bool = True
) -> None:
    """``--scheduler-address`` / ``--scheduler-file`` and ``--timeout``.

    ``listed=False`` leaves them out of ``--help`` (for a command that
    refuses them with its reason).
    """
    if not listed:
        # Neither a group nor a mutually exclusive one: argparse cannot
        # format a usage line with an exclusive group of hidden options.
        for flag in ("--scheduler-address", "--scheduler-file"):
            parser.add_argument(flag, help=argparse.SUPPRESS)
        parser.add_argument(
            "--timeout", type=positive_float, default=30.0, help=argparse.SUPPRESS
        )
        return
    group = parser.add_argument_group(
        "cluster",
        "where to run: an embedded LocalCluster unless one of these names an "
        "existing scheduler (TLS settings come from the scheduler file or "
        "Dask's configuration, distributed.comm.tls)",
    )
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--scheduler-address", metavar="ADDRESS", help="tcp://HOST:PORT or tls://..."
    )
    exclusive.add_argument(
        "--scheduler-file",
        metavar="FILE",
        help="the JSON file written by `dask scheduler --scheduler-file`",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the scheduler and its workers (default: 30)",
    )


def target_of(args: argparse.Namespace) -> ClusterTarget:
    """The cluster the cluster options name."""
    from dask_gradcode.bench.cluster import ClusterTarget

    return ClusterTarget(args.scheduler_address, args.scheduler_file, args.timeout)
