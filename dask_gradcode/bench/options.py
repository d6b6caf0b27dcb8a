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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dask_gradcode.bench.cluster import ClusterTarget

__all__ = [
    "Option",
    "add_cluster_options",
    "at_least",
    "features",
    "gap",
    "option",
    "positive",
    "positive_float",
    "rows",
    "seconds",
    "stragglers",
    "target_of",
    "workers",
]


@dataclass(frozen=True)
class Option:
    """One command-line option: ``parser.add_argument(*flags, **settings)``.

    Its default is the default of the measuring function's parameter
    ``dest``, so that it lives in one place; the help says what it is.
    """

    flags: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        """The keyword the option's value is passed as."""
        return str(
            self.settings.get("dest", self.flags[0].lstrip("-").replace("-", "_"))
        )

    @property
    def is_flag(self) -> bool:
        """Whether the option takes no value (its default goes without saying)."""
        return self.settings.get("action") in ("store_true", "store_false")


def option(*flags: str, **settings: Any) -> Option:
    """Declare an option with :meth:`argparse.ArgumentParser.add_argument`'s arguments."""
    return Option(flags, settings)


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


def workers(minimum: int = 2, text: str = "workers n", *, many: bool = False) -> Option:
    """``--workers``: one number of workers, or several with ``many``."""
    if many:
        return option("--workers", type=at_least(minimum), nargs="+", help=text)
    return option("--workers", type=at_least(minimum), help=text)


def stragglers(minimum: int = 0, text: str = "stragglers s tolerated") -> Option:
    """``--stragglers``: the ``s`` of the codes."""
    return option("--stragglers", type=at_least(minimum), help=text)


def rows(minimum: int = 100, text: str = "rows of the data") -> Option:
    """``--rows``: rows of the benchmark's data."""
    return option("--rows", type=at_least(minimum), help=text)


def features() -> Option:
    """``--features``: features of the benchmark's data."""
    return option("--features", type=at_least(2), help="features of the data")


def gap(text: str = "convergence target above the optimum") -> Option:
    """``--gap``: how close to the optimum a fit must come."""
    return option("--gap", type=positive_float, help=text)


#: ``--delay`` of the benchmarks with slow workers.
DELAY = option("--delay", type=seconds, help="seconds a slow worker is late")

#: ``--transport`` of the benchmarks that run on the library's default transport.
TRANSPORT = option(
    "--transport",
    choices=("direct", "futures"),
    help="how rounds reach the workers (default: the library's default, "
    "gradcode.transport in Dask's configuration, else direct)",
)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--scheduler-address`` / ``--scheduler-file`` and ``--timeout``."""
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
