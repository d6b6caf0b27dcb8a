"""Command-line interface: ``dask-gradcode demo`` and ``dask-gradcode stability``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: (scheme, n_stragglers, comm_reduction) rows of the demo.
DEMO_SCHEMES = (
    ("uncoded", 0, 1),
    ("ignore-stragglers", 1, 1),
    ("fractional-repetition", 1, 1),
    ("cyclic-repetition", 1, 1),
    ("gaussian-mds", 1, 1),
    ("gaussian-mds", 1, 2),
)


def _demo(args: argparse.Namespace) -> int:
    """Train on breast-cancer data with one slow worker per round, per scheme."""
    import numpy as np
    from distributed import Client, LocalCluster
    from sklearn.datasets import load_breast_cancer
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
    print(
        f"Logistic regression on scikit-learn's breast-cancer data "
        f"({len(y_train)} training rows), {args.workers} Dask workers; every round one "
        f"worker, drawn at random, is {1e3 * args.delay:.0f} ms late. "
        f"{args.iterations} gradient-descent iterations per scheme.\n"
    )
    rows = []
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=False
        ) as cluster,
        Client(cluster),
    ):
        print(f"Dask dashboard: {cluster.dashboard_link}\n")
        for scheme, s, m in DEMO_SCHEMES:
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
                    sum(len(r["stragglers"]) for r in history),
                    model.objective_,
                    model.score(X_test, y_test),
                    all(r["exact"] for r in history),
                )
            )
            print(f"  {scheme:<22} m={m}  done")
    print()
    print(
        "| scheme | s | m | load | mean iteration (ms) | stragglers skipped "
        "| final loss | test accuracy | exact gradients |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for scheme, s, m, load, mean_ms, skipped, loss, accuracy, exact in rows:
        print(
            f"| {scheme} | {s} | {m} | {load} | {mean_ms:.1f} | {skipped} "
            f"| {loss:.5f} | {accuracy:.3f} | {'yes' if exact else 'no'} |"
        )
    return 0


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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``dask-gradcode`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="dask-gradcode",
        description="Coded gradient descent on Dask.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train with every scheme on an embedded cluster with a slow worker"
    )
    demo.add_argument("--workers", type=_positive, default=4, help="Dask workers")
    demo.add_argument("--iterations", type=_positive, default=40, help="per scheme")
    demo.add_argument(
        "--delay", type=_seconds, default=0.2, help="seconds the slow worker is late"
    )
    demo.set_defaults(run=_demo)
    stability = commands.add_parser(
        "stability", help="compare the decoding stability of the codes"
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        print(f"dask-gradcode: error: {error}", file=sys.stderr)
        return 2
