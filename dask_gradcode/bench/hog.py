"""A real straggler: a CPU hog beside one worker, not an injected sleep.

Two worker processes of a ``LocalCluster``, each pinned to its own core
(every thread of it, as ``taskset -a`` does); in the ``hog`` condition a
busy-looping process is pinned to the second worker's core for the whole
measurement and killed at its end, so that worker computes at about half
speed.  On the same cluster and data, each way to the optimum runs L-BFGS
from zero until the mean log-loss is within ``--gap`` of the optimum:

- ``uncoded``: one partition per worker, wait for both;
- ``static``: ``gaussian-mds`` with ``s = 1`` (each worker holds all rows);
- ``adaptive``: the same placement, each round's plan chosen from measured
  speeds (split rounds balance the rows to them);
- ``dask-ml``: ``dask_ml.linear_model.LogisticRegression(solver="lbfgs")``
  on the same rows as a dask array, its time to fit (its own stopping rule).

On 2 cores a code cannot beat contention on those cores (its extra copies
are computed there too); the split plan can, by giving the slowed worker
fewer rows.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.adaptive import Problem, fixed_weights, time_to_gap
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.convergence import (
    mean_log_loss,
    optimal_loss,
    standardised_classification,
)
from dask_gradcode.bench.plots import Bars, bar_panels
from dask_gradcode.bench.report import machine_description, markdown_table
from dask_gradcode.objectives import LogLoss

__all__ = ["BENCHMARK", "measure", "page", "pin"]

NAME = "hog"

METHODS = ("uncoded", "static", "adaptive")


def pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of process ``pid`` to ``cores`` (``taskset -a -p``)."""
    for thread in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended
            os.sched_setaffinity(int(thread), cores)


@contextlib.contextmanager
def hog(core: int) -> Iterator[subprocess.Popen]:
    """A busy-looping process pinned to ``core``, killed when the block ends."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(process.pid, {core})
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)


def _dask_ml_fit(client: Any, X: np.ndarray, y: np.ndarray, best: float) -> dict:
    import dask.array as da
    from dask_ml.linear_model import LogisticRegression

    chunk = max(1, len(y) // 4)
    X_dask = client.persist(da.from_array(X, chunks=(chunk, X.shape[1])))
    y_dask = client.persist(da.from_array(y, chunks=chunk))
    began = time.perf_counter()
    model = LogisticRegression(solver="lbfgs", C=1e6, max_iter=200).fit(X_dask, y_dask)
    seconds = time.perf_counter() - began
    gap = mean_log_loss(X, y, np.append(model.coef_.ravel(), model.intercept_)) - best
    return {
        "seconds_to_gap": seconds,
        "all_seconds": f"{seconds:.3f}",
        "rounds_to_gap": float("nan"),
        "gap": gap,
    }


def measure(session: Session, o: Options) -> Measured:
    """Both conditions, every method; see the module's description."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        raise ValueError("the hog benchmark pins processes to 2 cores (Linux)")
    X, y = standardised_classification(o.rows, o.features)
    with_ones = np.hstack([X, np.ones((len(y), 1))])
    _, reference = LogLoss().value_and_gradient(
        fixed_weights(o.features + 1), with_ones, y
    )
    best = optimal_loss(X, y)
    problem = Problem(X, y, 2, 1, best, reference)
    table = []
    from threadpoolctl import threadpool_limits

    # The client's own checks of the loss (off the clock) must not leave BLAS
    # threads spinning on the workers' cores into the next round.
    with (
        threadpool_limits(limits=1),
        session.target.connect(2, processes=True) as client,
    ):
        pids = client.run(os.getpid)
        for core, address in enumerate(sorted(pids)):
            pin(pids[address], {core})
        slowed = sorted(pids)[1]
        total = 2 * (len(METHODS) * o.repeats + 1)
        with session.bar(total=total, desc=NAME, unit="fit") as bar:
            for condition in ("no hog", "hog"):
                stack = contextlib.ExitStack()
                with stack:
                    if condition == "hog":
                        stack.enter_context(hog(1))
                    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
                    for _ in range(o.repeats):  # interleaved: drifts weigh alike
                        for method in METHODS:
                            bar.set_postfix_str(f"{condition}, {method}")
                            runs[method].append(
                                time_to_gap(
                                    client, problem, method, None, o.gap, o.max_rounds
                                )
                            )
                            bar.update()
                    for method, fits in runs.items():
                        table.append(
                            {"condition": condition, "method": method} | _median(fits)
                        )
                    bar.set_postfix_str(f"{condition}, dask-ml")
                    table.append(
                        {"condition": condition, "method": "dask-ml"}
                        | _dask_ml_fit(client, X, y, best)
                    )
                    bar.update()
    return Measured(
        {"fits": table, "targets": _targets(table)}, facts={"slowed": slowed}
    )


def _median(fits: list[dict[str, Any]]) -> dict[str, Any]:
    """The median fit by seconds to the gap, with every fit's seconds."""
    ordered = sorted(fits, key=lambda f: f["seconds_to_gap"])
    return ordered[len(ordered) // 2] | {
        "all_seconds": " ".join(f"{f['seconds_to_gap']:.3f}" for f in fits)
    }


def _seconds(table: list[dict[str, Any]], condition: str, method: str) -> float:
    return next(
        float(r["seconds_to_gap"])
        for r in table
        if r["condition"] == condition and r["method"] == method
    )


def _targets(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    hogged = _seconds(table, "hog", "uncoded") / _seconds(table, "hog", "adaptive")
    calm = _seconds(table, "no hog", "adaptive") / _seconds(table, "no hog", "uncoded")
    return [
        {
            "ratio": "uncoded / adaptive, under the hog",
            "value": hogged,
            "target": ">= 1.2",
            "met": "yes" if hogged >= 1.2 else "no",
        },
        {
            "ratio": "adaptive / uncoded, no hog",
            "value": calm,
            "target": "<= 1.05 (never slower, within noise)",
            "met": "yes" if calm <= 1.05 else "no",
        },
    ]


COLUMNS = {
    "condition": "condition",
    "method": "method",
    "seconds_to_gap": "seconds to optimum + gap (median)",
    "all_seconds": "every repeat (s)",
    "rounds_to_gap": "rounds",
}

TARGET_COLUMNS = {
    "ratio": "ratio",
    "value": "measured",
    "target": "target",
    "met": "met",
}


def page(measured: Measured, session: Session) -> Page:
    """The table and the targets."""
    o = measured.options
    fits = measured.tables["fits"]
    slowdown = _seconds(fits, "hog", "uncoded") / _seconds(fits, "no hog", "uncoded")
    bound = (1 + slowdown) / 2
    text = f"""# A real straggler: a CPU hog beside one worker

{session.reproduce()}  Machine: {machine_description()}.  Two worker
processes, each pinned (every thread) to its own core; under the hog a
busy-looping process shares the second worker's core
(`{measured.facts["slowed"]}`) for the whole condition and is killed at its
end.  Data: `make_classification`, {o.rows} rows x {o.features} features
(standardised), logistic loss with intercept; the client computes with one
BLAS thread (its checks of the loss between rounds, off the clock, would
otherwise leave threads spinning on the workers' cores).  The coded methods run L-BFGS
from zero until the mean log-loss is within {o.gap:g} of the optimum (only
the rounds' time counts, at most {o.max_rounds} rounds): `uncoded` (one
partition per worker), `static` (`gaussian-mds`, `s = 1`: each worker holds
every row), `adaptive` (the same placement, split rounds balanced to the
measured speeds), each {o.repeats} times, interleaved (the median counts).
`dask-ml` is `LogisticRegression(solver="lbfgs")` on the
same rows as a dask array: its whole fit, under its own stopping rule.

## Targets

{markdown_table(measured.tables["targets"], TARGET_COLUMNS)}

## Every fit

{markdown_table(measured.tables["fits"], COLUMNS)}

On 2 cores a code cannot win against contention on the same cores: its
extra copies are computed on the hogged core too.  A split round gives the
slowed worker a share of the rows in proportion to its measured speed.  The
hog made uncoded fits {slowdown:.2f}x slower (x), so a worker x times slower
than the other bounds what any split can gain: (1 + x) / 2 = {bound:.2f}x,
before the first rounds, which learn the speeds (the first splits the rows
equally and backs the late share up).

![seconds to the optimum per method, with and without the hog](hog.png)
"""
    return Page(text, {"": _figure(fits)})


def _figure(fits: list[dict[str, Any]]) -> Any:
    bars = Bars.of_rows(
        "Seconds to the optimum (median)",
        "seconds",
        fits,
        label="method",
        series="condition",
        value="seconds_to_gap",
    )
    return bar_panels([bars], width=7.0)


BENCHMARK = Benchmark(
    NAME,
    files=NAME,
    help="a CPU hog pinned beside one of 2 pinned worker processes: uncoded, the "
    "static code, the adaptive policy and dask-ml to the optimum",
    local_only="pins the worker processes it starts, and a CPU hog beside one",
    measure=measure,
    page=page,
    options=(
        opt.rows(1_000_000),
        opt.features(100),
        opt.gap(1e-7),
        opt.rounds(200, "rounds a fit may take", "--max-rounds"),
        opt.option("--repeats", 5, opt.at_least(1), "fits per method and condition"),
    ),
    requirements=("matplotlib", "dask_ml"),
)
