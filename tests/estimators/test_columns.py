"""Wide sparse input is solved on its used columns, with the same model."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from dask_gradcode import CodedSGDClassifier, CodedSGDRegressor
from dask_gradcode.estimators import columns as columns_module
from dask_gradcode.estimators.columns import UsedColumns

pytestmark = pytest.mark.usefixtures("client")


def _wide(seed: int = 0, rows: int = 300, width: int = 5_000, used: int = 60):
    rng = np.random.default_rng(seed)
    cols = np.sort(rng.choice(width, used, replace=False))
    dense = np.zeros((rows, width))
    dense[:, cols] = rng.standard_normal((rows, used)) * (
        rng.random((rows, used)) < 0.3
    )
    return scipy.sparse.csr_matrix(dense), cols, rng


def test_the_used_columns_map_coefficients_both_ways():
    X, cols, _ = _wide()
    start = np.zeros((X.shape[1] + 1) * 2)
    columns = UsedColumns.of(X, start, intercept=True, n_targets=2)
    assert columns is not None
    np.testing.assert_array_equal(columns.used, np.unique(X.indices))
    assert set(columns.used) <= set(cols)
    assert columns.shape == (columns.used.size + 1, 2)
    compact = columns.compact(X)
    assert compact.shape == (X.shape[0], columns.used.size)
    np.testing.assert_array_equal(compact.toarray(), X.toarray()[:, columns.used])
    coef = np.arange(columns.shape[0] * 2, dtype=float)
    full = columns.expand(coef).reshape(-1, 2)
    np.testing.assert_array_equal(full[columns.used], coef.reshape(-1, 2)[:-1])
    np.testing.assert_array_equal(full[-1], coef.reshape(-1, 2)[-1])  # intercept
    assert not full[np.setdiff1d(np.arange(X.shape[1]), columns.used)].any()
    np.testing.assert_array_equal(columns.compress(full.ravel()), coef)


def test_no_compaction_where_it_would_not_pay_or_would_change_the_fit():
    X, _, _ = _wide()
    zero = np.zeros(X.shape[1])
    assert UsedColumns.of(X.toarray(), zero, intercept=False, n_targets=1) is None
    narrow = scipy.sparse.csr_matrix(np.ones((5, 4)))
    assert UsedColumns.of(narrow, np.zeros(4), intercept=False, n_targets=1) is None
    moved = zero.copy()
    unused = np.setdiff1d(np.arange(X.shape[1]), np.unique(X.indices))[0]
    moved[unused] = 0.5  # a warm start away from zero on an unused column
    assert UsedColumns.of(X, moved, intercept=False, n_targets=1) is None
    empty = scipy.sparse.csr_matrix((5, 100))
    assert UsedColumns.of(empty, np.zeros(100), intercept=False, n_targets=1) is None


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        (CodedSGDClassifier, {"loss": "log_loss"}),
        (CodedSGDClassifier, {"loss": "hinge", "penalty": "l1", "solver": "nesterov"}),
        (CodedSGDClassifier, {"loss": "log_loss", "multi_class": "multinomial"}),
        (CodedSGDRegressor, {"penalty": "elasticnet", "solver": "gd"}),
    ],
)
def test_a_compacted_fit_is_the_full_fit(estimator, params, monkeypatch):
    X, _, rng = _wide(seed=3)
    if estimator is CodedSGDRegressor:
        y = X @ rng.standard_normal(X.shape[1]) + 0.1 * rng.standard_normal(X.shape[0])
    elif params.get("multi_class") == "multinomial":
        y = rng.integers(0, 3, X.shape[0])
    else:
        y = (X @ rng.standard_normal(X.shape[1]) > 0).astype(int)
    options = {"max_iter": 30, "random_state": 0, "alpha": 1e-3, **params}
    compacted = estimator(**options).fit(X, y)
    monkeypatch.setattr(columns_module, "COMPACT_BELOW", 0.0)  # never compact
    full = estimator(**options).fit(X, y)
    assert compacted.coef_.shape == full.coef_.shape
    np.testing.assert_allclose(compacted.coef_, full.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        compacted.intercept_, full.intercept_, rtol=1e-6, atol=1e-8
    )
    unused = np.setdiff1d(np.arange(X.shape[1]), np.unique(X.indices))
    assert not np.atleast_2d(compacted.coef_)[:, unused].any()
    # the rounds carried the used columns only
    assert len(compacted.rounds_) and compacted.rounds_[0].bytes_received < (
        full.rounds_[0].bytes_received
    )


def test_early_stopping_and_warm_starts_see_the_full_model():
    X, _, rng = _wide(seed=4, rows=400)
    y = (X @ rng.standard_normal(X.shape[1]) > 0).astype(int)
    model = CodedSGDClassifier(
        loss="log_loss", early_stopping=True, max_iter=20, random_state=0
    ).fit(X, y)
    assert model.coef_.shape == (1, X.shape[1]) and model.score(X, y) > 0.8
    warm = CodedSGDClassifier(loss="log_loss", warm_start=True, max_iter=5).fit(X, y)
    before = warm.coef_.copy()
    warm.fit(X, y)  # starts where it was: compaction keeps its zeros
    assert warm.coef_.shape == before.shape
