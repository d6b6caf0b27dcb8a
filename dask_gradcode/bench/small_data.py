"""Where a fit's time goes on small data, next to scikit-learn on the same data.

Each data set is standardised and fitted with the estimators' defaults and no
client (the embedded cluster), then with scikit-learn's ``SGDClassifier`` and
``LogisticRegression``.  A fit's time is split into the stages
:attr:`~dask_gradcode.CodedSGDClassifier.fit_profile_` records: starting the
embedded cluster (the first fit of a process only), input checks, building
the code, placing the data, the coded rounds (decoding included) and the
solver between them.  A grid search and a cross-validation on digits show
what sharing the embedded cluster across fits buys.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.preprocessing import StandardScaler

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.plots import Bars, bar_panels
from dask_gradcode.bench.report import Report, machine_description, markdown_table

__all__ = ["BENCHMARK", "measure", "page", "run"]

NAME = "small_data"

STAGES = (
    "cluster_start",
    "checks",
    "code",
    "placement",
    "rounds",
    "decode",
    "solver",
)


def datasets(rows: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """digits, breast_cancer and a synthetic set of ``rows`` rows, standardised."""
    data = {
        "digits": load_digits(return_X_y=True),
        "breast_cancer": load_breast_cancer(return_X_y=True),
        f"synthetic {rows:,} x 20": make_classification(
            rows, 20, n_informative=10, random_state=0
        ),
    }
    scaled = {
        name: (StandardScaler().fit_transform(X), y) for name, (X, y) in data.items()
    }
    return scaled | {"hashed text 2,000 docs x 2^18": hashed_text(2_000)}


def hashed_text(documents: int, seed: int = 0) -> tuple[Any, np.ndarray]:
    """Sparse text features of made-up documents, two classes.

    ``HashingVectorizer(n_features=2**18)`` of documents of 80 words from a
    20,000-word vocabulary, 10 of them from 500 words of their class's own.
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(20_000)])
    labels = np.arange(documents) % 2
    words = rng.integers(0, vocabulary.size, size=(documents, 80))
    words[:, :10] = rng.integers(0, 500, size=(documents, 10)) + 500 * labels[:, None]
    texts = [" ".join(vocabulary[row]) for row in words]
    return HashingVectorizer(n_features=2**18).fit_transform(texts), labels


def _timed(fit: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(session: Session, o: Options) -> Measured:
    """Profile default fits on small data against scikit-learn.

    The synthetic data set has ``o.rows`` rows; every time is the median of
    ``o.repeats`` fits.  The session's target must be the embedded default:
    the benchmark measures the embedded cluster a fit without a client uses.
    Returns the tables ``fits`` and ``searches``; the fact ``cluster_start``
    (seconds to start the embedded cluster).
    """
    from dask_gradcode import CodedSGDClassifier
    from dask_gradcode.scheduler import close_embedded_cluster, embedded_client

    close_embedded_cluster()
    started = time.perf_counter()
    embedded_client()
    cluster_start = time.perf_counter() - started
    chosen = list(datasets(o.rows).items())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence on the defaults, as for SGD
        rows_out = [
            _fit_row(name, X, y, o.repeats, CodedSGDClassifier)
            for name, (X, y) in session.bar(chosen, desc="small data", unit="data set")
        ]
        X, y = StandardScaler().fit_transform(load_digits().data), load_digits().target
        searches = _searches(X, y, CodedSGDClassifier)
    return Measured(
        {"fits": rows_out, "searches": searches},
        facts={"cluster_start": cluster_start},
    )


def _fit_row(
    name: str, X: np.ndarray, y: np.ndarray, repeats: int, coded: type
) -> dict[str, Any]:
    """Our default fit's stages and times beside scikit-learn's on one data set."""
    ours_seconds, model = _timed(lambda: coded(random_state=0).fit(X, y), repeats)
    sgd_seconds, sgd = _timed(lambda: SGDClassifier(random_state=0).fit(X, y), repeats)
    lr_seconds, lr = _timed(
        lambda: LogisticRegression(max_iter=1000).fit(X, y), repeats
    )
    profile = model.fit_profile_
    parts = {
        "cluster_start": 0.0,
        "code": profile["code_seconds"],
        "placement": profile["placement_seconds"] + profile["close_seconds"],
        "rounds": profile["round_seconds"] - profile["decode_seconds"],
        "decode": profile["decode_seconds"],
        "solver": profile["solver_seconds"],
    }
    parts["checks"] = max(0.0, ours_seconds - sum(parts.values()))
    row = {
        "data": name,
        "rows": X.shape[0],
        "features": X.shape[1],
        "classes": len(np.unique(y)),
        "iterations": profile["iterations"],
        "rounds": profile["rounds"],
        "ms per round": 1e3 * profile["round_seconds"] / max(1, profile["rounds"]),
        "dask_gradcode (s)": ours_seconds,
        "SGDClassifier (s)": sgd_seconds,
        "LogisticRegression (s)": lr_seconds,
        "ratio to SGD": ours_seconds / sgd_seconds,
        "ratio to LR": ours_seconds / lr_seconds,
        "accuracy": model.score(X, y),
        "SGD accuracy": sgd.score(X, y),
        "LR accuracy": lr.score(X, y),
    }
    for stage in STAGES[1:]:
        row[f"{stage} (s)"] = parts[stage]
    return row


def run(**options: Any) -> Report:
    """Measure, then write the page: ``BENCHMARK.run(**options)``."""
    return BENCHMARK.run(**options)


def page(measured: Measured, session: Session) -> Page:
    """The markdown page and its figure (each data set's fit times)."""
    fits = measured.tables["fits"]
    text = _markdown(
        fits, measured.tables["searches"], measured.facts["cluster_start"], session
    )
    return Page(
        text + "\n![fit time per data set](small_data.png)\n", {"": _figure(fits)}
    )


def _figure(fits: list[dict[str, Any]]) -> Any:
    names = [str(fit["data"]) for fit in fits]
    fitters = ("dask_gradcode", "SGDClassifier", "LogisticRegression")
    return bar_panels(
        [
            Bars(
                "A default fit, next to scikit-learn's",
                "seconds (log scale)",
                names,
                {f: [fit[f"{f} (s)"] for fit in fits] for f in fitters},
                log=True,
            ),
            Bars(
                "Where dask_gradcode's fit time goes",
                "seconds",
                names,
                {stage: [fit[f"{stage} (s)"] for fit in fits] for stage in STAGES[1:]},
            ),
        ]
    )


def _searches(X: np.ndarray, y: np.ndarray, coded: type) -> list[dict[str, Any]]:
    grid = {"alpha": [1e-4, 1e-3, 1e-2]}
    rows = []
    for name, estimator in (
        ("dask_gradcode", coded(loss="log_loss", random_state=0)),
        ("SGDClassifier", SGDClassifier(loss="log_loss", random_state=0)),
        ("LogisticRegression", LogisticRegression(max_iter=1000)),
    ):
        params = grid if name != "LogisticRegression" else {"C": [1.0, 10.0, 100.0]}
        start = time.perf_counter()
        GridSearchCV(estimator, params, cv=3).fit(X, y)
        search = time.perf_counter() - start
        start = time.perf_counter()
        cross_val_score(estimator, X, y, cv=3)
        folds = time.perf_counter() - start
        rows.append(
            {
                "estimator": name,
                "GridSearchCV (s)": search,
                "cross_val_score (s)": folds,
            }
        )
    return rows


FIT_COLUMNS = {
    "data": "data",
    "rows": "rows",
    "iterations": "iterations",
    "rounds": "rounds",
    "ms per round": "ms per round",
    "dask_gradcode (s)": "dask_gradcode (s)",
    "SGDClassifier (s)": "SGDClassifier (s)",
    "LogisticRegression (s)": "LogisticRegression (s)",
    "ratio to SGD": "ratio to SGD",
    "accuracy": "accuracy",
    "SGD accuracy": "SGD accuracy",
}

STAGE_COLUMNS = {
    "data": "data",
    "checks (s)": "input checks",
    "code (s)": "code",
    "placement (s)": "placement + release",
    "rounds (s)": "coded rounds",
    "decode (s)": "decode",
    "solver (s)": "solver",
}


def _markdown(
    fits: Sequence[dict],
    searches: Sequence[dict],
    cluster_start: float,
    session: Session,
) -> str:
    worst = max(fits, key=lambda r: r["ratio to SGD"])
    stage_share = {
        stage: statistics.mean(r[f"{stage} (s)"] / r["dask_gradcode (s)"] for r in fits)
        for stage in STAGES[1:]
    }
    biggest = max(stage_share, key=lambda stage: stage_share[stage])
    return f"""# Small data: where a fit's time goes

{session.reproduce(bench_extra=False)}

Measured on {machine_description()}.  Default estimators (`CodedSGDClassifier()`:
hinge loss, L-BFGS, `scheme="auto"`, `n_stragglers="auto"`, which leaves
the embedded cluster uncoded), no Dask client: fits use
the process's embedded in-process cluster, started once ({cluster_start:.2f} s,
the first fit of a process only) and shared by every later fit.  Dense data
standardised; the hashed text is `HashingVectorizer(n_features=2**18)` of
made-up two-class documents (a fit solves on the columns the documents
use, and replies that are mostly zeros travel as their nonzeros); times are
the median of three fits.

{markdown_table(list(fits), FIT_COLUMNS)}

Where dask_gradcode's time goes (seconds per fit):

{markdown_table(list(fits), STAGE_COLUMNS)}

On average the coded rounds take {100 * stage_share["rounds"]:.0f}% of a fit,
{biggest} being the biggest stage: each iteration pays Dask's round trip
(submit, compute on the workers, collect), {worst["ms per round"]:.0f} ms per round on
{worst["data"]} here, which scikit-learn's single-process solvers do not
pay.  The slowest data set relative to `SGDClassifier` is {worst["data"]}
({worst["ratio to SGD"]:.1f}x).

## Grid search and cross-validation on digits

`GridSearchCV` over three values of `alpha` (`C` for LogisticRegression) with
`cv=3`, and `cross_val_score` with `cv=3`; every dask_gradcode fit reuses the
embedded cluster.

{markdown_table(list(searches), {"estimator": "estimator", "GridSearchCV (s)": "GridSearchCV (s)", "cross_val_score (s)": "cross_val_score (s)"})}
"""


BENCHMARK = Benchmark(
    "small-data",
    files=NAME,
    help="where a default fit's time goes on digits, breast_cancer and a synthetic "
    "set, next to scikit-learn's SGDClassifier and LogisticRegression",
    local_only="measures fits without a client (the embedded cluster)",
    measure=measure,
    page=page,
    options=(
        opt.rows(20_000, text="rows of the synthetic set"),
        opt.rounds(3, "fits per measurement", "--repeats"),
    ),
)
