"""Losses against finite differences, sparse against dense, weights against repeats."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

from dask_gradcode.objectives import (
    OBJECTIVES,
    OneVsRest,
    Softmax,
    WithIntercept,
    get_objective,
)

NAMES = sorted(OBJECTIVES)


def make_objective(name):
    return (
        get_objective(name, n_classes=3) if name == "softmax" else get_objective(name)
    )


def problem(name, seed, n=40, p=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    objective = make_objective(name)
    if name == "softmax":
        y = rng.integers(0, 3, n).astype(float)
    elif name in ("squared_error", "huber", "epsilon_insensitive"):
        y = rng.standard_normal(n) * 3
    else:
        y = rng.integers(0, 2, n).astype(float)
    coef = rng.standard_normal(objective.n_coef(p))
    return objective, X, y, coef


def central_difference(objective, coef, X, y, sw, h=1e-6):
    gradient = np.empty_like(coef)
    for i in range(coef.size):
        step = np.zeros_like(coef)
        step[i] = h
        up = objective.value_and_gradient(coef + step, X, y, sw)[0]
        down = objective.value_and_gradient(coef - step, X, y, sw)[0]
        gradient[i] = (up - down) / (2 * h)
    return gradient


@pytest.mark.parametrize("name", NAMES)
@given(seed=st.integers(0, 10_000))
def test_gradient_matches_finite_differences(name, seed):
    objective, X, y, coef = problem(name, seed)
    sw = np.random.default_rng(seed + 1).uniform(0.5, 2.0, X.shape[0])
    value, gradient = objective.value_and_gradient(coef, X, y, sw)
    numeric = central_difference(objective, coef, X, y, sw)
    # kinks (hinge, epsilon-insensitive, huber) are measure-zero: random points miss them
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-5)
    assert np.isfinite(value) and value >= 0


@pytest.mark.parametrize("name", NAMES)
def test_sparse_input_gives_the_dense_result(name):
    objective, X, y, coef = problem(name, 0)
    X[X < 0.3] = 0.0
    dense = objective.value_and_gradient(coef, X, y)
    sparse = objective.value_and_gradient(coef, scipy.sparse.csr_matrix(X), y)
    assert sparse[0] == pytest.approx(dense[0], rel=1e-12)
    np.testing.assert_allclose(sparse[1], dense[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_integer_sample_weight_equals_repeated_rows(name):
    objective, X, y, coef = problem(name, 1)
    counts = np.random.default_rng(2).integers(0, 4, X.shape[0])
    weighted = objective.value_and_gradient(coef, X, y, counts.astype(float))
    repeated = objective.value_and_gradient(
        coef, np.repeat(X, counts, axis=0), np.repeat(y, counts)
    )
    assert weighted[0] == pytest.approx(repeated[0], rel=1e-12)
    np.testing.assert_allclose(weighted[1], repeated[1], rtol=1e-10, atol=1e-10)


def test_losses_are_summed_not_averaged():
    objective, X, y, coef = problem("log_loss", 3)
    whole = objective.value_and_gradient(coef, X, y)
    halves = [
        objective.value_and_gradient(coef, X[s], y[s])
        for s in (slice(0, 17), slice(17, None))
    ]
    assert whole[0] == pytest.approx(sum(h[0] for h in halves))
    np.testing.assert_allclose(whole[1], sum(h[1] for h in halves))


def test_log_loss_matches_its_closed_form():
    objective = get_objective("log_loss")
    X = np.array([[1.0], [2.0]])
    value, _ = objective.value_and_gradient(np.array([0.5]), X, np.array([1.0, 0.0]))
    assert value == pytest.approx(np.log1p(np.exp(-0.5)) + np.log1p(np.exp(1.0)))


def test_log_loss_is_stable_for_large_scores():
    objective = get_objective("log_loss")
    value, gradient = objective.value_and_gradient(
        np.array([1000.0]), np.array([[1.0], [-1.0]]), np.array([0.0, 1.0])
    )
    assert value == pytest.approx(2000.0)
    np.testing.assert_allclose(gradient, [2.0])


def test_bad_objective_requests_say_what_to_change():
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        get_objective("nope")
    with pytest.raises(ValueError, match="n_classes"):
        Softmax(1)
    with pytest.raises(TypeError, match="'softmax'"):
        get_objective("softmax")
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        get_objective("huber", epsilon=0)
    with pytest.raises(ValueError, match=r"labels must be integers in 0..2"):
        Softmax(3).value_and_gradient(np.zeros(3), np.ones((1, 1)), np.array([3.0]))


def test_one_vs_rest_is_the_sum_of_the_binary_problems():
    from dask_gradcode.objectives import OneVsRest

    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    y = rng.integers(0, 3, 50).astype(float)
    sw = rng.uniform(0.5, 2, 50)
    coef = rng.standard_normal((4, 3))
    binary = get_objective("hinge")
    value, gradient = OneVsRest(binary, 3).value_and_gradient(coef.ravel(), X, y, sw)
    parts = [
        binary.value_and_gradient(coef[:, k], X, (y == k).astype(float), sw)
        for k in range(3)
    ]
    assert value == pytest.approx(sum(p[0] for p in parts))
    np.testing.assert_allclose(
        gradient.reshape(4, 3), np.column_stack([p[1] for p in parts])
    )
    with pytest.raises(TypeError, match="binary loss"):
        OneVsRest(Softmax(3), 3)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    "objective",
    [
        *(get_objective(name) for name in ("log_loss", "squared_error", "hinge")),
        Softmax(3),
        OneVsRest(get_objective("log_loss"), 3),
    ],
    ids=repr,
)
def test_an_intercept_without_a_column_of_ones_gives_the_same_loss(objective, sparse):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 6))
    X[X < 0.3] = 0.0
    y = rng.integers(0, 3 if objective.n_coef(1) == 3 else 2, size=40).astype(float)
    coef = rng.standard_normal(objective.n_coef(7))
    weights = rng.random(40)
    design = scipy.sparse.csr_matrix(X) if sparse else X
    with_ones = np.hstack([X, np.ones((40, 1))])
    expected = objective.value_and_gradient(coef, with_ones, y, weights)
    loss, gradient = objective.value_and_gradient(
        coef, WithIntercept(design), y, weights
    )
    assert loss == pytest.approx(expected[0], rel=1e-12)
    np.testing.assert_allclose(gradient, expected[1], rtol=1e-12, atol=1e-12)
    assert WithIntercept(design).shape == (40, 7)
