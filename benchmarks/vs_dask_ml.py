"""Time to a near-optimal logistic regression: dask_gradcode against dask-ml.

Writes ``docs/vs_dask_ml.md``.  Needs the ``bench`` extra (dask-ml,
matplotlib).  Run from the repository root::

    python benchmarks/vs_dask_ml.py            # make_classification(200_000, 100)
    python benchmarks/vs_dask_ml.py --quick    # 20,000 rows

One 4-worker ``LocalCluster`` of worker processes; both libraries get the same
persisted dask arrays.  The target is the optimal mean log-loss (scikit-learn's
``LogisticRegression`` on the same data, same regularisation) plus 1e-4.  A
solver's time to the target is the wall time of a fit whose ``max_iter`` is
the fewest iterations that reach it (both L-BFGS paths are deterministic, so
that fit is a prefix of any longer one).  The slow worker is a real one: a
worker plugin makes every task on one worker take ``FACTOR`` times as long,
for both libraries alike; the coded estimator tolerates one straggler.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from dask_gradcode import CodedSGDClassifier
from dask_gradcode.scheduler import worker_addresses

ROOT = Path(__file__).resolve().parent.parent
FACTOR = 4.0
GAP = 1e-4


class SlowWorker(WorkerPlugin):
    """Every task on this worker takes ``factor`` times its computation time."""

    name = "slow-worker"

    def __init__(self, address: str, factor: float) -> None:
        self.address = address
        self.factor = factor
        self.started: dict = {}

    def setup(self, worker) -> None:
        """Remember which worker this plugin runs on."""
        self.worker = worker

    def transition(self, key, start, finish, **kwargs) -> None:
        """Sleep after each task for ``factor - 1`` times its duration."""
        if self.worker.address != self.address:
            return
        if finish == "executing":
            self.started[key] = time.perf_counter()
        elif start == "executing" and key in self.started:
            elapsed = time.perf_counter() - self.started.pop(key)
            time.sleep((self.factor - 1.0) * elapsed)


def mean_log_loss(X, y, coef, intercept) -> float:
    scores = X @ coef + intercept
    return float(np.mean(np.logaddexp(0.0, -(2 * y - 1) * scores)))


def first_reaching(fit, X, y, target, limit):
    """Smallest max_iter whose fit reaches the target, and that fit's seconds."""
    low, high = 0, 1
    timings = {}
    while high <= limit:
        seconds, loss = fit(high)
        timings[high] = (seconds, loss)
        if loss <= target:
            break
        low, high = high, high * 2
    else:
        return None, None
    while high - low > 1:  # bisect between the last miss and the first hit
        middle = (low + high) // 2
        seconds, loss = fit(middle)
        timings[middle] = (seconds, loss)
        if loss <= target:
            high = middle
        else:
            low = middle
    return high, timings[high][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    import dask.array as da
    import dask_ml
    from dask_ml.linear_model import LogisticRegression as DaskLogisticRegression

    n_rows = 20_000 if args.quick else 200_000
    X, y = make_classification(n_rows, 100, n_informative=20, random_state=0)
    y = y.astype(float)
    C = 1.0
    reference = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
    best = mean_log_loss(X, y, reference.coef_.ravel(), reference.intercept_[0])
    target = best + GAP
    rows = []
    with (
        LocalCluster(
            n_workers=4, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        X_dask = client.persist(da.from_array(X, chunks=(n_rows // 8, 100)))
        y_dask = client.persist(da.from_array(y, chunks=n_rows // 8))
        slow_address = worker_addresses(client)[-1]
        for slow in (False, True):
            if slow:
                client.register_plugin(SlowWorker(slow_address, FACTOR))

            def coded(solver):
                def run(max_iter):
                    start = time.perf_counter()
                    model = CodedSGDClassifier(
                        loss="log_loss",
                        alpha=1 / (C * n_rows),
                        solver=solver,
                        max_iter=max_iter,
                        tol=None,
                        n_stragglers=1,
                        random_state=0,
                    ).fit(X_dask, y_dask)
                    seconds = time.perf_counter() - start
                    return seconds, mean_log_loss(
                        X, y, model.coef_.ravel(), model.intercept_[0]
                    )

                return run

            def dask_ml_fit(solver):
                def run(max_iter):
                    start = time.perf_counter()
                    model = DaskLogisticRegression(
                        C=C, solver=solver, max_iter=max_iter, tol=0.0
                    ).fit(X_dask, y_dask)
                    seconds = time.perf_counter() - start
                    return seconds, mean_log_loss(
                        X, y, model.coef_.ravel(), model.intercept_
                    )

                return run

            contenders = {
                "dask_gradcode CodedSGDClassifier(solver='lbfgs')": coded("lbfgs"),
                "dask_gradcode CodedSGDClassifier(solver='gd')": coded("gd"),
                "dask-ml LogisticRegression(solver='lbfgs')": dask_ml_fit("lbfgs"),
                "dask-ml LogisticRegression(solver='gradient_descent')": dask_ml_fit(
                    "gradient_descent"
                ),
            }
            for name, fit in contenders.items():
                limit = 256 if "gd" in name or "gradient" in name else 128
                iterations, seconds = first_reaching(fit, X, y, target, limit)
                rows.append((slow, name, iterations, seconds))
                shown = "not reached" if seconds is None else f"{seconds:.2f} s"
                print(f"  slow={slow!s:<5} {name:<55} {iterations} it  {shown}")
    write_markdown(rows, best, n_rows, dask_ml.__version__, args)


def write_markdown(rows, best, n_rows, dask_ml_version, args) -> None:
    def seconds_of(slow, prefix):
        for s, name, _, seconds in rows:
            if s == slow and name.startswith(prefix):
                return seconds
        return None

    lines = [
        "| slow worker | solver | iterations to target | seconds to target |",
        "|---|---|--:|--:|",
    ]
    for slow, name, iterations, seconds in rows:
        shown = "not reached" if seconds is None else f"{seconds:.2f}"
        lines.append(
            f"| {'yes' if slow else 'no'} | {name} | {iterations or '-'} | {shown} |"
        )
    ratios = []
    pairs = {
        "L-BFGS": (
            "dask_gradcode CodedSGDClassifier(solver='lbfgs')",
            "dask-ml LogisticRegression(solver='lbfgs')",
        ),
        "gradient descent": (
            "dask_gradcode CodedSGDClassifier(solver='gd')",
            "dask-ml LogisticRegression(solver='gradient_descent')",
        ),
    }
    for slow in (False, True):
        for label, (ours_name, theirs_name) in pairs.items():
            ours, theirs = seconds_of(slow, ours_name), seconds_of(slow, theirs_name)
            if ours and theirs:
                ratios.append(
                    f"- {'with' if slow else 'without'} the slow worker, {label}: "
                    f"dask-ml takes {theirs / ours:.2f}x the time of dask_gradcode"
                )
    command = "python benchmarks/vs_dask_ml.py" + (" --quick" if args.quick else "")
    text = f"""# dask_gradcode against dask-ml

Reproduce with `{command}` (needs `pip install -e .[bench]`).

Measured on {platform.machine()} with {os.cpu_count()} cores, Python
{platform.python_version()}, dask-ml {dask_ml_version}: one `LocalCluster` of 4
single-thread worker processes, `make_classification({n_rows:,}, 100)`, both
libraries fed the same persisted dask arrays. Target: the optimal mean
log-loss ({best:.6f}, scikit-learn's `LogisticRegression` with `C = 1`) plus
{GAP:g}. The slow worker takes {FACTOR:g} times as long for every task, for
both libraries; `CodedSGDClassifier` uses `gaussian-mds` with one straggler
tolerated. The seconds include each fit's own set-up (dask_gradcode places
the partitions on their workers inside `fit`).

{chr(10).join(lines)}

{chr(10).join(ratios)}
"""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vs_dask_ml.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
