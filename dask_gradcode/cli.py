"""Command-line interface: ``dask-gradcode demo | stability | bench NAME``."""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

#: (scheme, n_stragglers, comm_reduction) rows of the demo.
DEMO_SCHEMES = (
    ("uncoded", 0, 1),
    ("ignore-stragglers", 1, 1),
    ("fractional-repetition", 1, 1),
    ("cyclic-repetition", 1, 1),
    ("gaussian-mds", 1, 1),
    ("gaussian-mds", 1, 2),
)

#: ``bench`` sub-command -> module of :mod:`dask_gradcode.bench`.
BENCHMARKS = {
    "stability": "stability",
    "iteration-time": "iteration_time",
    "convergence": "convergence",
    "vs-dask-ml": "vs_dask_ml",
    "faults": "faults",
    "small-data": "small_data",
    "adaptive": "adaptive",
    "transport": "transport",
}


def _target(args: argparse.Namespace):
    from dask_gradcode.bench.cluster import ClusterTarget

    return ClusterTarget(args.scheduler_address, args.scheduler_file, args.timeout)


def _demo(args: argparse.Namespace) -> int:
    """Train on breast-cancer data with one slow worker per round, per scheme."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from dask_gradcode import CodedSGDClassifier
    from dask_gradcode.bench.schemes import buildable_codes
    from dask_gradcode.stragglers import SlowWorkers

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    slow = SlowWorkers(1, delay=args.delay, random_state=0)
    target = _target(args)
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
    for scheme, s, m, load, mean_ms, skipped, loss, accuracy, exact in rows:
        print(
            f"| {scheme} | {s} | {m} | {load:g} | {mean_ms:.1f} | {skipped} "
            f"| {loss:.5f} | {accuracy:.3f} | {'yes' if exact else 'no'} |"
        )
    return 0


def _local_link(client) -> str:
    """The dashboard link a browser on this machine opens.

    An embedded cluster serves on every interface, and Dask names the
    machine's outward address, which a local browser may not reach.
    """
    from urllib.parse import urlsplit, urlunsplit

    link = client.dashboard_link
    parts = urlsplit(link)
    if parts.hostname in (None, "", "0.0.0.0") or client.cluster is not None:
        netloc = f"localhost:{parts.port}" if parts.port else "localhost"
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


#: Optional packages each benchmark needs, checked before it computes anything.
REQUIREMENTS = {
    "vs-dask-ml": ("matplotlib", "dask_ml"),
    "small-data": (),
}


def check_requirements(name: str) -> None:
    """Raise ImportError naming the extra to install, before any computation."""
    import importlib.util

    missing = [
        package
        for package in REQUIREMENTS.get(name, ("matplotlib",))
        if importlib.util.find_spec(package) is None
    ]
    if missing:
        names = ", ".join(package.replace("_", "-") for package in missing)
        raise ImportError(
            f"bench {name} needs {names}: pip install 'dask-gradcode[bench]' "
            "(make test installs it too)"
        )


def _bench(args: argparse.Namespace) -> int:
    """Run one benchmark and write its files into ``args.out``."""
    transport = getattr(args, "transport", None)
    if transport is not None:
        import dask.config

        with dask.config.set({"gradcode.transport": transport}):
            return _run_bench(args)
    return _run_bench(args)


def _run_bench(args: argparse.Namespace) -> int:
    check_requirements(args.name)
    module = _bench_module(args.name)
    accepted = inspect.signature(module.run).parameters
    options = {
        key: value
        for key, value in vars(args).items()
        if key in accepted and key not in ("target", "command", "progress", "transport")
    }
    report = module.run(
        **options,
        target=_target(args),
        command=args.command_line,
        progress=not args.no_progress,
    )
    for path in report.write(args.out):
        print(f"wrote {path}")
    print()
    print(report.markdown)
    return 0


def _integer(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive = _integer(1)
_non_negative = _integer(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
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
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the scheduler and its workers (default: 30)",
    )


def _bench_module(name: str):
    return importlib.import_module(f"dask_gradcode.bench.{BENCHMARKS[name]}")


class _RunDefaultsFormatter(argparse.HelpFormatter):
    """Help that ends each option with the default of its benchmark's ``run``.

    The bench options have no argparse default (absent ones are left out of
    the call, so each default lives only in ``run``'s signature); the module,
    which imports scikit-learn and Dask, is imported only to print help.
    """

    def __init__(self, prog: str, *, benchmark: str) -> None:
        super().__init__(prog)
        self.benchmark = benchmark

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if action.nargs == 0 or action.default is not argparse.SUPPRESS:
            return text  # flags, and the options every benchmark shares
        parameters = inspect.signature(_bench_module(self.benchmark).run).parameters
        if action.dest not in parameters:
            return text  # handled around run (--transport), its help says so
        default = parameters[action.dest].default
        if isinstance(default, list | tuple):
            default = " ".join(str(value) for value in default)
        return f"{text} (default: {default})"


def _part(text: str) -> str:
    from dask_gradcode.bench.iteration_time import PARTS

    if text not in PARTS:
        raise argparse.ArgumentTypeError(
            f"unknown part {text!r}; choose from {', '.join(PARTS)}"
        )
    return text


def _transport_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=("direct", "futures"),
        help="how rounds reach the workers (default: the library's default, "
        "gradcode.transport in Dask's configuration, else direct)",
    )


def _bench_parser(names, common, name: str, text: str) -> argparse.ArgumentParser:
    return names.add_parser(
        name,
        parents=[common],
        help=text,
        description=text,
        argument_default=argparse.SUPPRESS,
        formatter_class=functools.partial(_RunDefaultsFormatter, benchmark=name),
    )


def _add_bench_commands(bench: argparse.ArgumentParser) -> None:
    names = bench.add_subparsers(dest="name", required=True, metavar="NAME")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--out",
        type=Path,
        default=Path("gradcode-results"),
        help="folder for the CSV, JSON, PNG and markdown files "
        "(default: gradcode-results; docs/ holds the published ones)",
    )
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_cluster_options(common)

    stability = _bench_parser(
        names,
        common,
        "stability",
        "decoding error, conditioning and cost against n, worst error over every "
        "s, gaussian-mds build time up to n = 1000, load against the optimum",
    )
    stability.add_argument(
        "--workers",
        type=_integer(2),
        nargs="+",
        help="numbers of workers n (s is about n/10)",
    )
    stability.add_argument(
        "--comm-reductions",
        type=_positive,
        nargs="+",
        metavar="M",
        help="communication reductions m",
    )
    stability.add_argument("--sets", type=_positive, help="straggler sets per code")
    stability.add_argument(
        "--all-s-workers",
        type=_integer(2),
        nargs="*",
        metavar="N",
        help="numbers of workers at which every s is measured (none: skip)",
    )
    stability.add_argument(
        "--build-workers",
        type=_integer(2),
        nargs="*",
        metavar="N",
        help="numbers of workers at which gaussian-mds build time is measured "
        "(none: skip)",
    )
    stability.add_argument(
        "--load-shapes",
        type=_integer(0),
        nargs="*",
        metavar="S M",
        help="s m pairs whose load is measured for n from s+m to 4(s+m) (none: skip)",
    )
    stability.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the Dask round-trip measurement",
    )

    iteration = _bench_parser(
        names,
        common,
        "iteration-time",
        "iteration time of every scheme under stragglers, speed-up against slow "
        "workers, overhead, weights shipping, bytes against m over slow links",
    )
    _transport_option(iteration)
    iteration.add_argument("--workers", type=_integer(2), help="workers n")
    iteration.add_argument(
        "--stragglers", type=_non_negative, help="stragglers s tolerated, and slow"
    )
    iteration.add_argument(
        "--rounds", type=_positive, help="measured rounds per scheme"
    )
    iteration.add_argument("--rows", type=_positive, help="rows of the data")
    iteration.add_argument(
        "--delay", type=_seconds, help="seconds a slow worker is late"
    )
    iteration.add_argument(
        "--comm-workers", type=_integer(2), help="workers of the communication part"
    )
    iteration.add_argument(
        "--dim", type=_positive, help="coefficients of the communication part"
    )
    iteration.add_argument(
        "--bandwidths",
        type=_positive_float,
        nargs="+",
        metavar="MB_PER_S",
        help="link speeds of the communication part",
    )
    iteration.add_argument(
        "--parts", nargs="+", type=_part, metavar="PART", help="what to run"
    )
    iteration.add_argument(
        "--quick", action="store_true", help="fewer schemes and sizes: a smoke run"
    )

    convergence = _bench_parser(
        names,
        common,
        "convergence",
        "training loss against wall-clock time per scheme",
    )
    _transport_option(convergence)
    convergence.add_argument("--workers", type=_integer(2), help="workers n")
    convergence.add_argument(
        "--stragglers", type=_non_negative, help="stragglers s tolerated"
    )
    convergence.add_argument(
        "--slow",
        type=_non_negative,
        help="slow workers per round (None: as many as --stragglers)",
    )
    convergence.add_argument(
        "--delay", type=_seconds, help="seconds a slow worker is late"
    )
    convergence.add_argument("--iterations", type=_positive, help="solver iterations")
    convergence.add_argument("--rows", type=_integer(10), help="rows of the data")
    convergence.add_argument(
        "--features", type=_integer(2), help="features of the data"
    )
    convergence.add_argument(
        "--solver", choices=("gd", "nesterov", "lbfgs"), help="the solver"
    )

    versus = _bench_parser(
        names,
        common,
        "vs-dask-ml",
        "time to a near-optimal logistic regression against dask-ml, with and "
        "without a slow worker",
    )
    _transport_option(versus)
    versus.add_argument("--rows", type=_integer(100), help="rows of the data")
    versus.add_argument("--features", type=_integer(2), help="features of the data")
    versus.add_argument("--workers", type=_integer(2), help="worker processes")
    versus.add_argument(
        "--factor",
        type=_positive_float,
        help="how many times as long tasks take on the slow worker",
    )
    versus.add_argument(
        "--gap",
        type=_positive_float,
        help="how close to the optimal mean log-loss a fit must come",
    )

    faults = _bench_parser(
        names,
        common,
        "faults",
        "what a fit does when worker processes hang, die, raise, restart or join "
        "(starts its own dask scheduler and worker processes)",
    )
    _transport_option(faults)
    faults.add_argument("--workers", type=_integer(3), help="worker processes")
    faults.add_argument("--stragglers", type=_integer(1), help="s of the code")
    faults.add_argument("--rows", type=_integer(100), help="rows of the data")
    faults.add_argument("--features", type=_integer(2), help="features of the data")
    faults.add_argument(
        "--rounds-before", type=_integer(2), help="rounds before the fault"
    )
    faults.add_argument("--rounds-after", type=_integer(5), help="rounds after it")

    small = _bench_parser(
        names,
        common,
        "small-data",
        "where a default fit's time goes on digits, breast_cancer and a synthetic "
        "set, next to scikit-learn's SGDClassifier and LogisticRegression",
    )
    _transport_option(small)
    small.add_argument("--rows", type=_integer(100), help="rows of the synthetic set")
    small.add_argument("--repeats", type=_positive, help="fits per measurement")

    adaptive = _bench_parser(
        names,
        common,
        "adaptive",
        "adaptive rounds against uncoded, the static code, speculative backups and "
        "ignore-stragglers, in five straggler scenarios",
    )
    _transport_option(adaptive)
    adaptive.add_argument("--workers", type=_integer(3), help="workers n")
    adaptive.add_argument("--stragglers", type=_integer(1), help="s of the code")
    adaptive.add_argument("--rows", type=_integer(100), help="rows of the data")
    adaptive.add_argument("--features", type=_integer(2), help="features of the data")
    adaptive.add_argument(
        "--compute-ms",
        type=_seconds,
        help="emulated milliseconds of computation per 1/n of the rows (0: real only)",
    )
    adaptive.add_argument(
        "--rounds", type=_positive, help="measured rounds per method and scenario"
    )
    adaptive.add_argument(
        "--gap", type=_positive_float, help="convergence target above the optimum"
    )
    adaptive.add_argument(
        "--max-rounds", type=_positive, help="rounds a convergence run may take"
    )
    adaptive.add_argument(
        "--scenarios",
        metavar="NAMES",
        help="comma-separated subset of none,random,rare,persistent,markov",
    )
    transport = _bench_parser(
        names,
        common,
        "transport",
        "the futures and direct transports: round-trip floor and full rounds "
        "against n, L-BFGS to the optimum, GridSearchCV on digits",
    )
    transport.add_argument(
        "--workers", type=_integer(2), nargs="+", help="numbers of workers n"
    )
    transport.add_argument("--rows", type=_integer(100), help="rows of the data")
    transport.add_argument("--features", type=_integer(2), help="features of the data")
    transport.add_argument(
        "--rounds", type=_positive, help="measured rounds per transport and size"
    )
    transport.add_argument(
        "--lbfgs-workers", type=_integer(2), help="workers of the L-BFGS fits"
    )
    transport.add_argument(
        "--repeats", type=_positive, help="L-BFGS fits per transport (median)"
    )
    transport.add_argument(
        "--gap", type=_positive_float, help="convergence target above the optimum"
    )
    transport.add_argument(
        "--max-rounds", type=_positive, help="rounds an L-BFGS fit may take"
    )
    transport.add_argument(
        "--kinds",
        metavar="NAMES",
        help="comma-separated subset of in-process,processes (embedded clusters)",
    )
    transport.add_argument(
        "--skip-search",
        dest="search",
        action="store_false",
        help="leave out the GridSearchCV on digits",
    )
    bench.set_defaults(run=_bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``dask-gradcode`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="dask-gradcode",
        description="Coded gradient descent on Dask.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train with every scheme on a cluster with a slow worker"
    )
    demo.add_argument("--workers", type=_integer(2), default=4, help="Dask workers")
    demo.add_argument("--iterations", type=_positive, default=40, help="per scheme")
    demo.add_argument(
        "--delay", type=_seconds, default=0.2, help="seconds the slow worker is late"
    )
    _add_cluster_options(demo)
    demo.set_defaults(run=_demo)
    stability = commands.add_parser(
        "stability",
        help="print the decoding stability table (pure numpy, no cluster)",
    )
    stability.add_argument(
        "--workers",
        type=_positive,
        nargs="+",
        default=[10, 20, 30, 50, 100],
        help="numbers of workers to try",
    )
    stability.add_argument(
        "--sets", type=_positive, default=100, help="straggler sets per code"
    )
    stability.set_defaults(run=_stability)
    bench = commands.add_parser(
        "bench",
        help="run a benchmark; writes CSV, JSON, PNG and markdown files",
        description="Run a benchmark and write its CSV, JSON, PNG and markdown "
        "files into --out.",
    )
    _add_bench_commands(bench)
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
