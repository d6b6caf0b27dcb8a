"""The two transports side by side: round-trip floor, full rounds, L-BFGS, small data.

For each cluster kind (in-process workers, worker processes over TCP) and
each number of workers ``n``, one cluster runs both transports at once, their
rounds interleaved (so drifts of the machine hit both alike):

- *floor*: rounds on two rows per partition, where the round trip is the
  whole cost;
- *full*: rounds on the benchmark's data set (``rows`` x ``features``).

Then, on ``lbfgs_workers`` workers of each kind, an L-BFGS fit of the
logistic regression from zero until the mean log-loss is within ``gap`` of
the optimum, timed end to end (placement, rounds, solver; the check of the
loss against the optimum is off the clock), beside scikit-learn's
single-process ``LogisticRegression`` on the same data.  Last, a
``GridSearchCV`` on digits with the estimators' defaults and no client, for
each transport, beside ``SGDClassifier``.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.convergence import (
    lbfgs_from_zero,
    mean_log_loss,
    optimal_loss,
    standardised_classification,
)
from dask_gradcode.bench.report import Report, machine_description, markdown_table
from dask_gradcode.codes import GradientCode, make_code
from dask_gradcode.scheduler import TRANSPORTS, CodedGradient

__all__ = ["BENCHMARK", "measure", "page", "run"]

NAME = "transport"
WARMUP = 5
WARMUP_FITS = 1
KINDS = {"in-process": False, "processes": True}


def _code(n_workers: int) -> GradientCode:
    return make_code("gaussian-mds", n_workers, 1, 1, random_state=0)


def _coded(
    client: Any, n_workers: int, X: np.ndarray, y: np.ndarray, transport: str
) -> CodedGradient:
    """The benchmark's gradient (gaussian-mds, s = 1, intercept) on ``transport``."""
    # TRANSPORTS holds plain strings; CodedGradient checks the name itself.
    name = cast(Literal["direct", "futures"], transport)
    code = _code(n_workers)
    return CodedGradient(
        client, code, X, y, "log_loss", fit_intercept=True, transport=name
    )


def interleaved_rounds(
    client: Any, n_workers: int, X: np.ndarray, y: np.ndarray, rounds: int
) -> dict[str, np.ndarray]:
    """Seconds per round of each transport, rounds alternating between them."""
    w = np.random.default_rng(1).standard_normal(X.shape[1] + 1) * 0.01
    gradients = {
        transport: _coded(client, n_workers, X, y, transport)
        for transport in TRANSPORTS
    }
    times: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    try:
        for gradient in gradients.values():
            gradient.__enter__()
        for round_ in range(WARMUP + rounds):
            order = TRANSPORTS if round_ % 2 == 0 else TRANSPORTS[::-1]
            for transport in order:
                start = time.perf_counter()
                gradients[transport](w)
                if round_ >= WARMUP:
                    times[transport].append(time.perf_counter() - start)
    finally:
        for gradient in gradients.values():
            gradient.close()
    return {t: np.array(v) for t, v in times.items()}


@dataclass(frozen=True)
class Fit:
    """An L-BFGS fit of the benchmark: its data and when it stops.

    Attributes
    ----------
    n_workers : int
    X, y : ndarray
    best : float
        The optimal mean log-loss.
    gap : float
        The fit stops within ``gap`` of ``best`` ...
    max_rounds : int
        ... or after this many rounds.
    """

    n_workers: int
    X: np.ndarray
    y: np.ndarray
    best: float
    gap: float
    max_rounds: int


def time_to_gap(client: Any, transport: str, fit: Fit) -> dict[str, Any]:
    """L-BFGS from zero on ``transport`` until the mean log-loss is within the gap.

    Timed end to end (placement, rounds, solver, release); the check of the
    true loss against the optimum runs on the client off the clock.
    """
    X, y = fit.X, fit.y
    n_rows = len(y)
    clock = {"checks": 0.0, "reached": float("nan")}
    began = time.perf_counter()
    coded = _coded(client, fit.n_workers, X, y, transport)
    with coded:
        placed = time.perf_counter() - began

        def mean_loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            loss, gradient = coded(w)
            return loss / n_rows, gradient / n_rows

        def reached(iteration: int, w: np.ndarray, objective: float) -> bool:
            checking = time.perf_counter()
            done = mean_log_loss(X, y, w) <= fit.best + fit.gap
            clock["checks"] += time.perf_counter() - checking
            if done:
                clock["reached"] = time.perf_counter() - began - clock["checks"]
            return done or len(coded.history) >= fit.max_rounds

        lbfgs_from_zero(mean_loss, X.shape[1] + 1, fit.max_rounds, reached)
    history = coded.history
    return {
        "seconds_to_gap": clock["reached"],
        "placement_seconds": placed,
        "iteration_seconds": clock["reached"] - placed,
        "rounds": len(history),
        "ms_per_round": 1e3 * statistics.median(r.wall_seconds for r in history),
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each measure over the runs (nan if a run missed the gap)."""
    return {key: float(np.median([run[key] for run in runs])) for key in runs[0]}


def sklearn_fit(X: np.ndarray, y: np.ndarray, best: float) -> dict[str, Any]:
    """scikit-learn's single-process LogisticRegression (no penalty), timed."""
    start = time.perf_counter()
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(X, y)
    seconds = time.perf_counter() - start
    w = np.append(model.coef_.ravel(), model.intercept_)
    return {"seconds": seconds, "gap": mean_log_loss(X, y, w) - best}


def grid_searches(transports: Sequence[str] = TRANSPORTS) -> list[dict[str, Any]]:
    """GridSearchCV (3 alphas, cv=3) on digits: defaults, no client, per transport."""
    from dask_gradcode import CodedSGDClassifier
    from dask_gradcode.scheduler import close_embedded_cluster, embedded_client

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    grid = {"alpha": [1e-4, 1e-3, 1e-2]}
    close_embedded_cluster()
    embedded_client()  # started once, as by a process's first fit
    rows = []
    start = time.perf_counter()
    GridSearchCV(SGDClassifier(random_state=0), grid, cv=3).fit(X, y)
    sgd = time.perf_counter() - start
    for transport in transports:
        estimator = CodedSGDClassifier(random_state=0, transport=transport)
        start = time.perf_counter()
        search = GridSearchCV(estimator, grid, cv=3).fit(X, y)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "estimator": f"CodedSGDClassifier(transport={transport!r})",
                "seconds": seconds,
                "ratio to SGDClassifier": seconds / sgd,
                "best score": search.best_score_,
            }
        )
    rows.append(
        {
            "estimator": "SGDClassifier",
            "seconds": sgd,
            "ratio to SGDClassifier": 1.0,
            "best score": float("nan"),
        }
    )
    close_embedded_cluster()
    return rows


def measure(session: Session, o: Options) -> Measured:
    """Measure both transports: floor, full rounds, L-BFGS, grid search.

    Floor and full rounds on each of ``o.workers`` numbers of workers,
    ``o.rounds`` measured rounds per transport and size after warm-up rounds;
    ``o.repeats`` L-BFGS fits per transport and cluster kind on
    ``o.lbfgs_workers`` workers (the median is reported, after one warm-up
    fit each, the transports alternating), each until the mean log-loss is
    within ``o.gap`` of the optimum or ``o.max_rounds`` rounds.  ``o.kinds``
    names the cluster kinds of an embedded run; on an existing cluster (the
    session's target) its workers are used, the kind is "cluster" and the
    grid search (``o.search``, an embedded cluster by definition) is
    skipped.  Returns the tables ``rounds``, ``fits``, ``searches``,
    ``sklearn`` and ``targets``.
    """
    workers, rounds, lbfgs_workers = o.workers, o.rounds, o.lbfgs_workers
    target = session.target
    chosen = _kinds(o.kinds, target.embedded)
    sizes = sorted({int(n) for n in workers})
    if sizes[0] < 2:
        raise ValueError(f"workers must all be >= 2 (s = 1), got {list(workers)}")
    X, y = standardised_classification(o.rows, o.features)
    tiny_rows = 2 * max(sizes)
    best = optimal_loss(X, y)
    rounds_table: list[dict[str, Any]] = []
    fits: list[dict[str, Any]] = []
    steps = len(chosen) * (2 * len(sizes) + len(TRANSPORTS)) + 2
    with session.bar(total=steps, desc="transport", unit="step") as bar:
        for kind in chosen:
            processes = KINDS.get(kind, False)
            for n_workers in sizes:
                with target.connect(n_workers, processes=processes) as client:
                    for load, (data_X, data_y) in (
                        ("floor", (X[:tiny_rows, :2], y[:tiny_rows])),
                        ("full", (X, y)),
                    ):
                        bar.set_postfix_str(f"{kind} n={n_workers} {load}")
                        times = interleaved_rounds(
                            client, n_workers, data_X, data_y, rounds
                        )
                        rounds_table.append(
                            _round_row(kind, n_workers, load, data_X.shape, times)
                        )
                        bar.update()
            with target.connect(lbfgs_workers, processes=processes) as client:
                fit = Fit(lbfgs_workers, X, y, best, o.gap, o.max_rounds)
                fits += _lbfgs_fits(client, kind, bar, fit, o.repeats)
        bar.set_postfix_str("scikit-learn")
        reference = sklearn_fit(X, y, best)
        bar.update()
        searches: list[dict[str, Any]] = []
        if target.embedded and o.search:
            bar.set_postfix_str("grid search")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence on the defaults
                searches = grid_searches()
        bar.update()
    return Measured(
        {
            "rounds": rounds_table,
            "fits": fits,
            "searches": searches,
            "sklearn": [reference],
            "targets": _targets(rounds_table, fits, searches),
        }
    )


def _kinds(kinds: str, embedded: bool) -> list[str]:
    """The cluster kinds to measure: those named, or the existing "cluster"."""
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in KINDS]
    if unknown or not chosen:
        raise ValueError(
            f"kinds must be a comma-separated subset of {list(KINDS)}, got {kinds!r}"
        )
    return chosen if embedded else ["cluster"]


def _lbfgs_fits(
    client: Any, kind: str, bar: Any, fit: Fit, repeats: int
) -> list[dict[str, Any]]:
    """The median L-BFGS fit of each transport on one cluster."""
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TRANSPORTS}
    for repeat in range(WARMUP_FITS + repeats):
        # Alternating order: neither transport always runs first.
        order = TRANSPORTS if repeat % 2 == 0 else TRANSPORTS[::-1]
        for transport in order:
            bar.set_postfix_str(f"{kind} L-BFGS {transport} #{repeat}")
            result = time_to_gap(client, transport, fit)
            if repeat >= WARMUP_FITS:
                runs[transport].append(result)
    fits = []
    for transport in TRANSPORTS:
        fits.append(
            {"cluster": kind, "transport": transport, **_median(runs[transport])}
        )
        bar.update()
    return fits


def run(**options: Any) -> Report:
    """Measure, then write the page: ``BENCHMARK.run(**options)``."""
    return BENCHMARK.run(**options)


def page(measured: Measured, session: Session) -> Page:
    """The round-time figure and the markdown page."""
    return Page(_markdown(measured, session), {"": _figure(measured.tables["rounds"])})


def _round_row(
    kind: str, n_workers: int, load: str, shape: tuple, times: dict[str, np.ndarray]
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cluster": kind,
        "workers": n_workers,
        "rounds of": load,
        "data": f"{shape[0]:,} x {shape[1]}",
    }
    for transport in TRANSPORTS:
        row[f"{transport} median ms"] = 1e3 * float(np.median(times[transport]))
        row[f"{transport} p90 ms"] = 1e3 * float(np.quantile(times[transport], 0.9))
    row["futures / direct"] = row["futures median ms"] / row["direct median ms"]
    return row


def _targets(
    rounds_table: list[dict[str, Any]],
    fits: list[dict[str, Any]],
    searches: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The issue's targets against what was measured."""
    out = []
    for kind in sorted({r["cluster"] for r in rounds_table}):
        floors = [
            r["futures / direct"]
            for r in rounds_table
            if r["cluster"] == kind and r["rounds of"] == "floor"
        ]
        out.append(
            {
                "target": f"floor, futures / direct ({kind}), every n",
                "wanted": ">= 3" if kind != "in-process" else "(no target)",
                "measured": f"{min(floors):.2f} - {max(floors):.2f}",
            }
        )
        by = {f["transport"]: f for f in fits if f["cluster"] == kind}
        if len(by) == len(TRANSPORTS):
            ratio = by["futures"]["seconds_to_gap"] / by["direct"]["seconds_to_gap"]
            iterations = (
                by["futures"]["iteration_seconds"] / by["direct"]["iteration_seconds"]
            )
            out.append(
                {
                    "target": f"L-BFGS to the optimum, futures / direct ({kind})",
                    "wanted": ">= 1.3",
                    "measured": f"{ratio:.2f} end to end, {iterations:.2f} "
                    "after placement",
                }
            )
    for row in searches:
        if "transport=" in row["estimator"]:
            out.append(
                {
                    "target": f"GridSearchCV on digits, {row['estimator']} / SGD",
                    "wanted": "<= 5",
                    "measured": f"{row['ratio to SGDClassifier']:.1f}",
                }
            )
    return out


def _figure(rounds_table: list[dict[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["cluster"] for r in rounds_table})
    figure, axes = plt.subplots(
        1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False
    )
    for axis, kind in zip(axes[0], kinds, strict=True):
        for load, style in (("floor", "--"), ("full", "-")):
            chosen = [
                r
                for r in rounds_table
                if r["cluster"] == kind and r["rounds of"] == load
            ]
            for transport, marker in zip(TRANSPORTS, "os", strict=True):
                axis.plot(
                    [r["workers"] for r in chosen],
                    [r[f"{transport} median ms"] for r in chosen],
                    style,
                    marker=marker,
                    label=f"{transport}, {load}",
                )
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("workers n")
        axis.set_ylabel("median ms per round")
        axis.set_title(kind)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


ROUND_COLUMNS = {
    "cluster": "cluster",
    "workers": "n",
    "rounds of": "rounds of",
    "data": "data",
    "futures median ms": "futures ms (median)",
    "futures p90 ms": "futures ms (p90)",
    "direct median ms": "direct ms (median)",
    "direct p90 ms": "direct ms (p90)",
    "futures / direct": "futures / direct",
}

FIT_COLUMNS = {
    "cluster": "cluster",
    "transport": "transport",
    "seconds_to_gap": "seconds to optimum + gap",
    "placement_seconds": "of which placement",
    "iteration_seconds": "of which iterations",
    "rounds": "rounds",
    "ms_per_round": "ms per round (median)",
}


def _reading(
    rounds_table: list[dict[str, Any]], fits: list[dict[str, Any]], lbfgs_workers: int
) -> str:
    """Why the fits gain less than the floor: computation and placement."""
    lines = []
    for kind in sorted({f["cluster"] for f in fits}):
        rows = {
            r["rounds of"]: r
            for r in rounds_table
            if r["cluster"] == kind and r["workers"] == lbfgs_workers
        }
        by = {f["transport"]: f for f in fits if f["cluster"] == kind}
        if set(rows) != {"floor", "full"} or len(by) != len(TRANSPORTS):
            continue
        saved = rows["floor"]["futures median ms"] - rows["floor"]["direct median ms"]
        work = rows["full"]["direct median ms"] - rows["floor"]["direct median ms"]
        placement = by["direct"]["placement_seconds"]
        lines.append(
            f"{kind}, n = {lbfgs_workers}: the direct transport saves about "
            f"{saved:.0f} ms of round trip per round, while a full round spends "
            f"about {work:.0f} ms beyond the direct floor computing on "
            f"{rows['full']['data']} rows; placing the data, the same for both "
            f"transports, took {placement:.2f} s of the direct fit's "
            f"{by['direct']['seconds_to_gap']:.2f} s."
        )
    if not lines:
        return ""
    return (
        "Reading: a fit gains what the round trip costs next to the computation "
        "and the placement.\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    )


def _markdown(measured: Measured, session: Session) -> str:
    tables, o = measured.tables, measured.options
    rounds_table, fits, searches = tables["rounds"], tables["fits"], tables["searches"]
    reference, targets = tables["sklearn"][0], tables["targets"]
    lbfgs_workers = o.lbfgs_workers
    search_part = ""
    if searches:
        search_part = f"""
## Small data: GridSearchCV on digits

`GridSearchCV(CodedSGDClassifier(random_state=0, transport=...), {{"alpha":
[1e-4, 1e-3, 1e-2]}}, cv=3)` on standardised digits with no client (every fit
shares the embedded in-process cluster, started before the clock), beside
`SGDClassifier` on the same grid:

{markdown_table(searches, {k: k for k in searches[0]})}
"""
    return f"""# Transports: futures against direct calls to actors

{session.reproduce(bench_extra=False)}

Measured on {machine_description()}, on {session.target.describe()}.  Both transports
run the same rounds (gaussian-mds, s = 1, m = 1, mean log-loss with an
intercept) on the same cluster at the same time, rounds interleaved;
{o.rounds} measured rounds each after {WARMUP} warm-up rounds.  *floor*: rounds
on two rows per partition (the round trip is the whole cost); *full*: rounds
on the {o.rows:,} x {o.features} data set.  In-process: a `LocalCluster` of
single-thread workers in this process; processes: one worker process per
worker, reached over TCP.

{markdown_table(rounds_table, ROUND_COLUMNS)}

![round times](transport.png)

## L-BFGS to the optimum

L-BFGS from zero until the mean log-loss is within {o.gap:g} of the optimum
(computed on one machine with L-BFGS to 1e-10), on {lbfgs_workers} workers,
timed end to end: placement, rounds, solver and release; the check against
the optimum is off the clock.  Median of {o.repeats} fits per transport after
one warm-up fit each, the transports alternating.  scikit-learn's single-process
`LogisticRegression(C=np.inf)` (no penalty) on the same data took
{reference["seconds"]:.2f} s (ending {reference["gap"]:.1e} above the optimum).

{markdown_table(fits, FIT_COLUMNS)}

{_reading(rounds_table, fits, lbfgs_workers)}
{search_part}
## Targets

{markdown_table(targets, {"target": "target", "wanted": "wanted", "measured": "measured"})}
"""


BENCHMARK = Benchmark(
    "transport",
    files=NAME,
    help="the futures and direct transports: round-trip floor and full rounds "
    "against n, L-BFGS to the optimum, GridSearchCV on digits",
    measure=measure,
    page=page,
    transport=False,  # it runs both
    options=(
        opt.workers((2, 4, 8, 16), 2, "numbers of workers n"),
        opt.rows(200_000),
        opt.features(100),
        opt.rounds(30, "measured rounds per transport and size"),
        opt.option("--lbfgs-workers", 4, opt.at_least(2), "workers of the L-BFGS fits"),
        opt.rounds(5, "L-BFGS fits per transport (median)", "--repeats"),
        opt.gap(1e-4),
        opt.rounds(300, "rounds an L-BFGS fit may take", "--max-rounds"),
        opt.option(
            "--kinds",
            "in-process,processes",
            None,
            "comma-separated subset of in-process,processes (embedded clusters)",
            metavar="NAMES",
        ),
        opt.switch(
            "--skip-search", True, "leave out the GridSearchCV on digits", "search"
        ),
    ),
)
