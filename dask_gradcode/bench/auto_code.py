"""``n_stragglers="auto"`` against uncoded and every static code, fit by fit.

Two parts, each a set of whole ``CodedSGDClassifier`` fits (L-BFGS, the same
iterations for every method: every exact code returns the same gradients),
timed from ``fit`` to its return, placement included:

- **no stragglers**: on the process's embedded in-process cluster (no
  client) and on a ``LocalCluster`` of worker processes, the default fit
  (``n_stragglers="auto"``: its first fit on a cluster, which measures, and
  a fit after it, which remembers) against uncoded (``n_stragglers=0``) and
  the former default (``n_stragglers=1``), interleaved ``--repeats`` times
  (medians);
- **independent stragglers**: the ``SlowWorkers`` scenarios of the adaptive
  benchmark (``random``, ``rare``, ``persistent``) on an in-process cluster
  whose computation is emulated (``ComputeTime``: ``--compute-ms`` per
  uncoded partition, as if each worker had a core of its own), for uncoded,
  every static tolerance ``--tolerances`` (``scheme="auto"``) and the
  default: a first fit on the scenario's fresh measurements (warm-up) and
  a fit after it.

The targets are ratios of fit times from the same run: with no stragglers
the default within 1.1x of uncoded, with stragglers within 1.15x of the best
static code after one warm-up fit.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.adaptive import chosen_scenarios
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.convergence import standardised_classification
from dask_gradcode.bench.plots import Bars, bar_panels
from dask_gradcode.bench.report import machine_description, markdown_table
from dask_gradcode.scheduler.autocoding import forget_measurements
from dask_gradcode.stragglers import ComputeTime

__all__ = ["BENCHMARK", "measure", "page", "target_ratios"]

NAME = "auto"

#: The adaptive benchmark's scenarios whose slow workers are independent.
SCENARIOS = ("random", "rare", "persistent")


def _fit(X: np.ndarray, y: np.ndarray, o: Options, **params: Any) -> dict[str, Any]:
    """One timed fit; its code and rounds."""
    from dask_gradcode import CodedSGDClassifier

    model = CodedSGDClassifier(
        loss="log_loss",
        alpha=1e-5,
        max_iter=o.max_iter,
        tol=None,
        random_state=0,
        **params,
    )
    began = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - began
    code = model.code_
    return {
        "seconds": seconds,
        "code": f"{code.scheme} s={code.n_stragglers}",
        "rounds": len(model.rounds_),
        "coded_rounds": sum(r.scheme != "uncoded" for r in model.rounds_),
        "reason": code.selection_reason or "",
    }


def _no_stragglers(
    cluster: str, X: np.ndarray, y: np.ndarray, o: Options
) -> list[dict[str, Any]]:
    """Default fits against uncoded and s = 1, interleaved, medians of repeats."""
    methods = {
        "uncoded": {"n_stragglers": 0},
        "n_stragglers=1 (former default)": {"n_stragglers": 1},
        "auto, first fit": {},
        "auto, after a warm-up fit": {},
    }
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    _fit(X, y, o, n_stragglers=0)  # warm-up: imports, connections, caches
    for _ in range(o.repeats):
        for method, params in methods.items():
            if method == "auto, first fit":
                forget_measurements()
            runs[method].append(_fit(X, y, o, **params))
    return [
        {"part": "no stragglers", "cluster": cluster, "method": method} | _median(fits)
        for method, fits in runs.items()
    ]


def _median(fits: list[dict[str, Any]]) -> dict[str, Any]:
    middle = sorted(fits, key=lambda f: f["seconds"])[len(fits) // 2]
    return middle | {"seconds": float(np.median([f["seconds"] for f in fits]))}


def _with_stragglers(
    X: np.ndarray, y: np.ndarray, o: Options, model: Any, scenario: str
) -> list[dict[str, Any]]:
    """Uncoded, each static tolerance, and the default's two fits, one scenario."""
    forget_measurements()  # the scenario's own measurements only
    methods: dict[str, dict[str, Any]] = {"uncoded": {"n_stragglers": 0}}
    for s in o.tolerances:
        methods[f"static s={s}"] = {"n_stragglers": s}
    methods["auto, first fit"] = {}
    methods["auto, after a warm-up fit"] = {}
    return [
        {"part": "stragglers", "cluster": scenario, "method": method}
        | _fit(X, y, o, straggler_model=model, **params)
        for method, params in methods.items()
    ]


def measure(session: Session, o: Options) -> Measured:
    """Both parts; see the module's description."""
    X, y = standardised_classification(o.rows, o.features)
    table: list[dict[str, Any]] = []
    scenarios = chosen_scenarios(o.stragglers, o.scenarios, among=SCENARIOS)
    per_row = o.compute_ms / 1e3 / (o.straggler_rows / o.workers)
    Xs, ys = standardised_classification(o.straggler_rows, o.features)
    with session.bar(total=2 + len(scenarios), desc=NAME, unit="part") as bar:
        if session.target.embedded:
            from dask_gradcode import close_embedded_cluster

            table += _no_stragglers("embedded in-process", X, y, o)
            close_embedded_cluster()
        bar.update()
        with session.target.connect(o.process_workers, processes=True):
            table += _no_stragglers(f"{o.process_workers} worker processes", X, y, o)
        bar.update()
        with session.target.connect(o.workers):
            for scenario in scenarios:
                bar.set_postfix_str(scenario.name)
                model = ComputeTime(per_row, then=scenario.model(o.workers))
                table += _with_stragglers(Xs, ys, o, model, scenario.name)
                bar.update()
    forget_measurements()
    return Measured(
        {"fits": table, "targets": target_ratios(table)},
        facts={"scenarios": scenarios},
    )


def _seconds(table: list[dict[str, Any]], cluster: str, method: str) -> float:
    for row in table:
        if row["cluster"] == cluster and row["method"] == method:
            return float(row["seconds"])
    return float("nan")


def target_ratios(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets, as ratios of fit times measured in this run."""
    out = []
    for cluster in dict.fromkeys(r["cluster"] for r in table):
        part = next(r["part"] for r in table if r["cluster"] == cluster)
        after = _seconds(table, cluster, "auto, after a warm-up fit")
        first = _seconds(table, cluster, "auto, first fit")
        if part == "no stragglers":
            base, name, bound = _seconds(table, cluster, "uncoded"), "uncoded", 1.10
        else:
            statics = {
                r["method"]: r["seconds"]
                for r in table
                if r["cluster"] == cluster and r["method"].startswith("static")
            }
            name = min(statics, key=statics.__getitem__)
            base, bound = statics[name], 1.15
        for which, value in (("after a warm-up fit", after), ("first fit", first)):
            out.append(
                {
                    "setting": cluster,
                    "ratio": f"auto ({which}) / {name}",
                    "value": value / base,
                    "target": f"<= {bound:.2f}" if which != "first fit" else "report",
                    "met": ""
                    if which == "first fit"
                    else ("yes" if value / base <= bound else "no"),
                }
            )
    return out


COLUMNS = {
    "part": "part",
    "cluster": "cluster or scenario",
    "method": "method",
    "seconds": "fit (s)",
    "code": "code of the last round",
    "rounds": "rounds",
    "coded_rounds": "coded rounds",
}

TARGET_COLUMNS = {
    "setting": "setting",
    "ratio": "ratio of fit times",
    "value": "measured",
    "target": "target",
    "met": "met",
}


def page(measured: Measured, session: Session) -> Page:
    """The tables, the reasons the default gave, a bar chart."""
    table, o = measured.tables["fits"], measured.options
    reasons = "\n".join(
        f"- {r['cluster']}, {r['method']}: {r['reason']}"
        for r in table
        if r["method"].startswith("auto")
    )
    described = "\n".join(
        f"- `{s.name}`: {s.description}" for s in measured.facts["scenarios"]
    )
    text = f"""# Code only where it pays: `n_stragglers="auto"`

{session.reproduce()}  Cluster: {session.target.describe()}; machine:
{machine_description()}.  Every fit is `CodedSGDClassifier(loss="log_loss",
alpha=1e-5, max_iter={o.max_iter}, tol=None)` (L-BFGS, the same iterations for
every method), timed from `fit` to its return, placement included.

**No stragglers**: `make_classification`, {o.rows} rows x {o.features}
features, on the embedded in-process cluster (no client) and on
{o.process_workers} worker processes; medians of {o.repeats} interleaved
repeats, after one untimed warm-up fit.  "auto, first fit" forgets what
earlier fits measured.

**Independent stragglers**: {o.straggler_rows} rows x {o.features} features
on {o.workers} in-process workers whose computation is emulated as
{o.compute_ms:g} ms per uncoded partition (`ComputeTime`), with the slow
workers of the adaptive benchmark's scenarios (codes tolerating
`s = {o.stragglers}` are what the scenarios are sized for):

{described}

Static codes: `scheme="auto"` with `n_stragglers` in {list(o.tolerances)}.
"auto, first fit" starts from nothing measured (uncoded, measuring, growing
a code in the background when the measurements say it pays); "auto, after a
warm-up fit" is the next fit on the same cluster, which starts with the code
the remembered measurements call for.

## Targets (ratios of fit times, this run)

{markdown_table(measured.tables["targets"], TARGET_COLUMNS)}

## Every fit

{markdown_table(table, COLUMNS)}

![fit times](auto.png)

## What the default said (`code_.selection_reason`)

{reasons}
"""
    return Page(text, {"": _bars(table)})


def _bars(table: list[dict[str, Any]]) -> Any:
    clusters = list(dict.fromkeys(r["cluster"] for r in table))
    panels = []
    for cluster in clusters:
        rows = [r for r in table if r["cluster"] == cluster]
        panels.append(
            Bars(
                cluster,
                "fit (s)",
                [r["method"] for r in rows],
                {"": [r["seconds"] for r in rows]},
            )
        )
    return bar_panels(panels, width=3.4)


BENCHMARK = Benchmark(
    NAME,
    files=NAME,
    help='n_stragglers="auto" against uncoded and static codes: no stragglers, '
    "and independent stragglers after a warm-up fit",
    measure=measure,
    page=page,
    options=(
        opt.workers(8, 3),
        opt.stragglers(2, 1),
        opt.option("--process-workers", 2, opt.at_least(2), "worker processes"),
        opt.rows(200_000, text="rows of the no-straggler data"),
        opt.option(
            "--straggler-rows",
            12_000,
            opt.at_least(100),
            "rows of the straggler scenarios' data",
        ),
        opt.features(40),
        opt.option(
            "--compute-ms",
            20.0,
            opt.seconds,
            "emulated milliseconds of computation per uncoded partition",
        ),
        opt.option("--max-iter", 25, opt.at_least(1), "L-BFGS iterations per fit"),
        opt.option("--repeats", 3, opt.at_least(1), "repeats of the no-straggler fits"),
        opt.option(
            "--tolerances",
            (1, 2, 4),
            opt.positive,
            "static n_stragglers compared",
            nargs="+",
        ),
        opt.option(
            "--scenarios",
            ",".join(SCENARIOS),
            None,
            "comma-separated subset of the straggler scenarios",
            metavar="NAMES",
        ),
    ),
)
