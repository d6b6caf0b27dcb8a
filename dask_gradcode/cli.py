"""Command-line interface: ``dask-gradcode demo | stability | bench NAME``.

Each benchmark declares its own options beside its measuring function (a
:class:`~dask_gradcode.bench.benchmark.Benchmark`); this module builds the
parser from those declarations and dispatches.  The ``bench`` parser loads the
benchmark modules, and so Dask, only when a ``bench`` command is parsed:
``dask-gradcode stability`` and ``--help`` stay quick.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dask_gradcode import __version__
from dask_gradcode.bench import BENCHMARKS, load_benchmark
from dask_gradcode.bench.options import (
    add_cluster_options,
    add_output_options,
    at_least,
    positive,
    seconds,
    target_of,
)
from dask_gradcode.bench.schemes import buildable_codes, compared_schemes

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["BENCHMARKS", "build_parser", "main"]

#: (scheme, n_stragglers, comm_reduction) rows of the demo: those of the
#: convergence benchmark, with one straggler.
DEMO_SCHEMES = tuple(compared_schemes(1, leave_out=("cyclic-mds", "ye-abbe")))


def _demo(args: argparse.Namespace) -> int:
    """Train on breast-cancer data with one slow worker per round, per scheme."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from dask_gradcode import CodedSGDClassifier
    from dask_gradcode.stragglers import SlowWorkers

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    slow = SlowWorkers(1, delay=args.delay, random_state=0)
    target = target_of(args)
    print(
        f"Logistic regression on scikit-learn's breast-cancer data "
        f"({len(y_train)} training rows), {args.workers} Dask workers of "
        f"{target.describe()}; every round one worker, drawn at random, is "
        f"{1e3 * args.delay:.0f} ms late. {args.iterations} gradient-descent "
        "iterations per scheme.\n"
    )
    built, skipped = buildable_codes(DEMO_SCHEMES, args.workers)
    for line in skipped:
        print(f"  left out: {line}")
    rows = []
    with target.connect(args.workers, dashboard=True) as client:
        print(f"Dask dashboard: {_local_link(client)}\n")
        for (scheme, s, m), _ in built:
            with client.as_current():
                model = CodedSGDClassifier(
                    loss="log_loss",
                    solver="gd",
                    learning_rate="constant",
                    eta0=0.25,
                    max_iter=args.iterations,
                    tol=None,
                    scheme=scheme,
                    n_stragglers=s,
                    comm_reduction=m,
                    n_workers=args.workers,
                    straggler_model=slow,
                    random_state=0,
                ).fit(X_train, y_train)
            history = model.history_
            rows.append(
                (
                    scheme,
                    model.code_.n_stragglers,
                    m,
                    model.code_.load,
                    1e3 * np.mean([r["wall_seconds"] for r in history]),
                    # rounds decoded without that round's slow worker: the
                    # same in every run of the same seed
                    sum(
                        slow.slow_workers(r["iteration"], args.workers)[0]
                        not in r["responders"]
                        for r in history
                    ),
                    # the true loss: an approximate scheme's decoded objective_
                    # is itself approximate
                    log_loss(y_train, model.predict_proba(X_train)),
                    model.score(X_test, y_test),
                    all(r["exact"] for r in history),
                )
            )
            print(f"  {scheme:<22} m={m}  done")
    print()
    print(
        "| scheme | s | m | load | mean iteration (ms) | rounds without the slow "
        "worker | training log-loss | test accuracy | exact gradients |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for scheme, s, m, load, mean_ms, late, loss, accuracy, exact in rows:
        print(
            f"| {scheme} | {s} | {m} | {load:g} | {mean_ms:.1f} | {late} "
            f"| {loss:.5f} | {accuracy:.3f} | {'yes' if exact else 'no'} |"
        )
    print(DEMO_LEGEND)
    return 0


#: What the demo's columns mean (printed under its table).
DEMO_LEGEND = """
s: stragglers each round can skip (the gradient decodes from any n - s of the
   n workers); m: communication reduction (each worker sends 1/m of a
   gradient); load: partitions each worker computes, of n (an exact code needs
   load >= s + m; ignore-stragglers is approximate).
Rounds without the slow worker: rounds decoded before that round's slow worker
answered. Exact gradients: every round's gradient exact to the code's rtol."""


def _local_link(client: Client) -> str:
    """The dashboard link a browser on this machine opens.

    An embedded cluster serves on 127.0.0.1 only, and Dask may name the
    machine's outward address, which that server does not listen on.
    """
    from urllib.parse import urlsplit, urlunsplit

    link = client.dashboard_link
    parts = urlsplit(link)
    if parts.hostname in (None, "", "0.0.0.0") or client.cluster is not None:
        netloc = f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1"
        return urlunsplit(parts._replace(netloc=netloc))
    return link


def _stability(args: argparse.Namespace) -> int:
    """Decoding accuracy and conditioning of the codes as n grows."""
    from dask_gradcode.codes.diagnostics import stability_grid, stability_table

    print(
        "Decoding the full gradient from any n - s workers: worst relative error\n"
        "and condition number over random straggler sets (s ~ n/10).\n"
    )
    reports = stability_grid(
        tuple(args.workers), (1, 2), n_sets=args.sets, progress=True
    )
    print(stability_table(reports))
    return 0


def _bench(args: argparse.Namespace) -> int:
    """Run one benchmark and write its files into ``args.out``."""
    benchmark = load_benchmark(args.name)
    report = benchmark.run(
        **benchmark.given(args),
        target=target_of(args),
        command=args.command_line,
        progress=not args.no_progress,
    )
    for path in report.write(args.out):
        print(f"wrote {path}")
    print()
    print(report.markdown)
    return 0


class _LazyParser(argparse.ArgumentParser):
    """A parser whose arguments are added the first time it is used.

    Parameters
    ----------
    populate : callable, optional
        Called with the parser before it first parses or formats help.
    """

    def __init__(
        self,
        *args: Any,
        populate: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def _ready(self) -> None:
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        """Add the arguments, then parse."""
        self._ready()
        return super().parse_known_args(*args, **kwargs)

    def format_help(self) -> str:
        """Add the arguments, then describe them."""
        self._ready()
        return super().format_help()


def _add_bench_commands(bench: argparse.ArgumentParser) -> None:
    """One sub-command per benchmark, from its declaration."""
    outputs = argparse.ArgumentParser(add_help=False)
    add_output_options(outputs)
    cluster = argparse.ArgumentParser(add_help=False)
    add_cluster_options(cluster)
    # Accepted but not listed, so that giving one gets the benchmark's reason.
    unlisted_cluster = argparse.ArgumentParser(add_help=False)
    add_cluster_options(unlisted_cluster, listed=False)
    names = bench.add_subparsers(dest="name", required=True, metavar="NAME")
    for name in BENCHMARKS:
        benchmark = load_benchmark(name)
        description = benchmark.help
        if benchmark.local_only:
            description += (
                ". It runs only on processes it starts on this machine, and "
                f"takes no cluster options: it {benchmark.local_only}."
            )
        parser = names.add_parser(
            name,
            parents=[outputs, unlisted_cluster if benchmark.local_only else cluster],
            help=benchmark.help,
            description=description,
            # absent options are left out of the call: their defaults are the
            # measuring function's, which the help quotes
            argument_default=argparse.SUPPRESS,
        )
        benchmark.add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    """The ``dask-gradcode`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="dask-gradcode", description="Coded gradient descent on Dask."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_LazyParser
    )
    demo = commands.add_parser(
        "demo", help="train with every scheme on a cluster with a slow worker"
    )
    demo.add_argument("--workers", type=at_least(2), default=4, help="Dask workers")
    demo.add_argument("--iterations", type=positive, default=40, help="per scheme")
    demo.add_argument(
        "--delay", type=seconds, default=0.2, help="seconds the slow worker is late"
    )
    add_cluster_options(demo)
    demo.set_defaults(run=_demo)
    stability = commands.add_parser(
        "stability", help="print the decoding stability table (pure numpy, no cluster)"
    )
    stability.add_argument(
        "--workers",
        type=positive,
        nargs="+",
        default=[10, 20, 30, 50, 100],
        help="numbers of workers to try",
    )
    stability.add_argument(
        "--sets", type=positive, default=100, help="straggler sets per code"
    )
    stability.set_defaults(run=_stability)
    bench = commands.add_parser(
        "bench",
        help="run a benchmark; writes CSV, JSON, PNG and markdown files",
        description="Run a benchmark and write its CSV, JSON, PNG and markdown "
        "files into --out.",
        populate=_add_bench_commands,
    )
    bench.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["dask-gradcode", *argv])
    try:
        return args.run(args)
    except (ValueError, ImportError, OSError) as error:
        print(f"dask-gradcode: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dask-gradcode: interrupted", file=sys.stderr)
        return 130
