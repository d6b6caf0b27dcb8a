"""One logistic regression, every system: fit time, placement and peak memory.

Each system fits the same ``make_classification`` data (``float64``, L2
logistic regression with ``C = 1``, i.e. ``alpha = 1 / n_samples``) in a fresh
Python process, so that the peak memory measured (the resident memory of the
process and every process it started, summed and sampled every millisecond:
client, scheduler, workers, a Spark JVM) is that fit's alone.  Every
system's coefficients are scored on one NumPy objective: the mean log-loss
plus ``alpha / 2 * ||w||**2``, against scikit-learn's optimum.

Systems: scikit-learn's ``LogisticRegression`` (one process); ours
(``CodedSGDClassifier(loss="log_loss")``, L-BFGS) on the embedded cluster,
uncoded, and on a ``LocalCluster`` of 2 worker processes, uncoded, with the
default ``n_stragglers="auto"`` and with ``n_stragglers=1``; dask-ml's
``LogisticRegression(solver="lbfgs")`` on the same 2 worker processes;
Spark MLlib's ``LogisticRegression`` on ``local[2]`` when ``pyspark`` and a
JDK are installed (``pip install pyspark``; it is no dependency of the
project).  "placement" is the time to put the data where the fit computes:
inside ``fit`` for ours (``fit_profile_``), ``persist`` for dask-ml,
``createDataFrame`` plus ``cache`` for Spark.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from typing import Any

import numpy as np

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.memory import PeakMemory
from dask_gradcode.bench.plots import Bars, bar_panels
from dask_gradcode.bench.report import machine_description, markdown_table

__all__ = ["BENCHMARK", "SYSTEMS", "measure", "page", "probe"]

NAME = "end_to_end"
C = 1.0

SYSTEMS = (
    "scikit-learn LogisticRegression (one process)",
    "ours, embedded cluster, uncoded",
    "ours, 2 worker processes, uncoded",
    "ours, 2 worker processes, default (auto)",
    "ours, 2 worker processes, n_stragglers=1",
    "dask-ml LogisticRegression(solver='lbfgs'), 2 worker processes",
    "Spark MLlib LogisticRegression, local[2]",
)


def _data(rows: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        rows,
        features,
        n_informative=min(20, features // 2),
        random_state=0,
        flip_y=0.05,
    )
    return X, y.astype(float)


def objective(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    """Mean log-loss plus ``alpha / 2 * ||w||**2`` with ``alpha = 1 / (C n)``."""
    from dask_gradcode.objectives import LogLoss

    losses, _ = LogLoss().pointwise(X @ w + b, y)
    return float(losses.mean() + 0.5 / (C * len(y)) * w @ w)


def probe(system: str, rows: int, features: int) -> dict[str, Any]:
    """Fit ``system`` in this fresh process; its times, peak memory and coefficients."""
    X, y = _data(rows, features)
    peak = PeakMemory(tree=True)
    placement, seconds, coef, intercept = _FITS[_kind(system)](system, X, y)
    return {
        "system": system,
        "fit_s": seconds,
        "placement_s": placement,
        "peak_gib": peak.stop() / 2**30,
        "data_gib": X.nbytes / 2**30,
        "objective": objective(X, y, coef, intercept),
    }


def _kind(system: str) -> str:
    return system.split(" ")[0].rstrip(",")


def _sklearn(system: str, X: np.ndarray, y: np.ndarray) -> tuple:
    from sklearn.linear_model import LogisticRegression

    began = time.perf_counter()
    model = LogisticRegression(C=C, tol=1e-8, max_iter=1000).fit(X, y)
    seconds = time.perf_counter() - began
    return float("nan"), seconds, model.coef_.ravel(), float(model.intercept_[0])


def _ours(system: str, X: np.ndarray, y: np.ndarray) -> tuple:
    from distributed import Client, LocalCluster

    from dask_gradcode import CodedSGDClassifier

    stragglers: Any = "auto" if "auto" in system else 1 if "=1" in system else 0
    model = CodedSGDClassifier(
        loss="log_loss",
        alpha=1 / (C * len(y)),
        tol=1e-8,
        max_iter=500,
        n_stragglers=stragglers,
        random_state=0,
    )

    def fit() -> float:
        began = time.perf_counter()
        model.fit(X, y)
        return time.perf_counter() - began

    if "embedded" in system:
        from dask_gradcode.scheduler import embedded_client

        embedded_client()  # started before the clock, as a cluster is
        seconds = fit()
    else:
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster),
        ):
            seconds = fit()
    placement = model.fit_profile_["placement_seconds"]
    return placement, seconds, model.coef_.ravel(), float(model.intercept_[0])


def _dask_ml(system: str, X: np.ndarray, y: np.ndarray) -> tuple:
    import dask.array as da
    from dask_ml.linear_model import LogisticRegression
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        began = time.perf_counter()
        chunk = len(y) // 4
        X_dask = client.persist(da.from_array(X, chunks=(chunk, X.shape[1])))
        y_dask = client.persist(da.from_array(y, chunks=chunk))
        X_dask.sum().compute()  # persisted: placed
        placement = time.perf_counter() - began
        model = LogisticRegression(C=C, solver="lbfgs", tol=1e-8, max_iter=500)
        began = time.perf_counter()
        model.fit(X_dask, y_dask)
        seconds = time.perf_counter() - began
    coef = np.asarray(model.coef_).ravel()
    return placement, seconds, coef, float(model.intercept_)


def _spark(system: str, X: np.ndarray, y: np.ndarray) -> tuple:
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "8g")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        began = time.perf_counter()
        rows = [
            (float(label), Vectors.dense(row)) for row, label in zip(X, y, strict=True)
        ]
        frame = spark.createDataFrame(rows, ["label", "features"]).cache()
        frame.count()
        del rows
        placement = time.perf_counter() - began
        began = time.perf_counter()
        model = LogisticRegression(
            regParam=1 / (C * len(y)),
            elasticNetParam=0.0,
            standardization=False,
            tol=1e-8,
            maxIter=500,
        ).fit(frame)
        seconds = time.perf_counter() - began
        coef = np.asarray(model.coefficients.toArray())
        return placement, seconds, coef, float(model.intercept)
    finally:
        spark.stop()


_FITS = {
    "scikit-learn": _sklearn,
    "ours": _ours,
    "dask-ml": _dask_ml,
    "Spark": _spark,
}


def spark_available() -> str | None:
    """None if Spark can run here, else why not."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install pyspark)"
    if shutil.which("java") is None:
        return "no Java runtime (a JDK, e.g. Debian's openjdk-17-jre-headless)"
    return None


def _run(system: str, o: Options) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dask_gradcode.bench._end_to_end_probe",
            system,
            str(o.rows),
            str(o.features),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{system} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(session: Session, o: Options) -> Measured:
    """Every system in its own process; the gap to the best objective."""
    missing = spark_available()
    systems = [s for s in SYSTEMS if not (s.startswith("Spark") and missing)]
    table = []
    with session.bar(total=len(systems), desc=NAME, unit="system") as bar:
        for system in systems:
            bar.set_postfix_str(system)
            table.append(_run(system, o))
            bar.update()
    best = min(row["objective"] for row in table)
    for row in table:
        row["gap"] = row["objective"] - best
    return Measured({"systems": table}, facts={"spark": missing})


COLUMNS = {
    "system": "system",
    "fit_s": "fit (s)",
    "placement_s": "placement (s)",
    "peak_gib": "peak memory, all processes (GiB)",
    "gap": "objective - best",
}


def page(measured: Measured, session: Session) -> Page:
    """The table."""
    o, spark = measured.options, measured.facts["spark"]
    absent = f"\n\nSpark MLlib was not measured: {spark}." if spark else ""
    text = f"""# One logistic regression, every system

{session.reproduce()}  Machine: {machine_description()}.  `make_classification`,
{o.rows:,} rows x {o.features} features, `float64` (the array alone:
{measured.tables["systems"][0]["data_gib"]:.2f} GiB); L2 logistic regression
with `C = 1`. Each system ran in a fresh Python process; its peak memory is
the resident memory of that process and every process it started (cluster,
workers, JVM), summed and sampled every millisecond, data generation
included. "fit" is the fit call alone, once the cluster is up: it includes
placement for ours (measured inside `fit`), not for dask-ml and Spark (their
placement, before the fit, is the column beside it). Every system's
coefficients are scored on one NumPy objective (mean log-loss plus
`1 / (2 C n) ||w||**2`); the last column is each one's distance to the best.{absent}

{markdown_table(measured.tables["systems"], COLUMNS)}

![fit, placement and peak memory per system](end_to_end.png)
"""
    return Page(text, {"": _figure(measured.tables["systems"])})


def _figure(systems: list[dict[str, Any]]) -> Any:
    names = [str(system["system"]) for system in systems]
    return bar_panels(
        [
            Bars(
                "Fit and placement",
                "seconds",
                names,
                {
                    "fit": [system["fit_s"] for system in systems],
                    "placement": [system["placement_s"] for system in systems],
                },
            ),
            Bars(
                "Peak memory, all processes",
                "GiB",
                names,
                {"": [system["peak_gib"] for system in systems]},
            ),
        ],
        width=6.5,
    )


BENCHMARK = Benchmark(
    "end-to-end",
    files=NAME,
    help="one logistic regression on scikit-learn, ours (embedded, worker "
    "processes), dask-ml and Spark MLlib: fit, placement, peak memory",
    local_only="starts its own processes and clusters for each system",
    measure=measure,
    page=page,
    transport=False,
    options=(opt.rows(1_000_000), opt.features(100)),
    requirements=("matplotlib", "dask_ml", "psutil"),
)
