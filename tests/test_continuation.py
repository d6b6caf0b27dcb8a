"""Smoothing continuation for losses with kinks, against the exact optima."""

from __future__ import annotations

import numpy as np
import pytest

from dask_gradcode.continuation import minimize_smoothed
from dask_gradcode.objectives import OneVsRest, get_objective, make_penalty
from dask_gradcode.solvers import minimize

# scikit-learn's test_sgd_l1 data: two groups of redundant features; the
# hinge + 0.2 l1 optimum (an LP) is w = (-1, 0, 0, 0, 0, 1), objective 0.4.
X4 = np.array(
    [
        [1, 0.9, 0.8, 0, 0, 0],
        [1, 0.84, 0.98, 0, 0, 0],
        [1, 0.96, 0.88, 0, 0, 0],
        [1, 0.91, 0.99, 0, 0, 0],
        [0, 0, 0, 0.89, 0.91, 1],
        [0, 0, 0, 0.79, 0.84, 1],
        [0, 0, 0, 0.91, 0.95, 1],
        [0, 0, 0, 0.93, 1, 1],
    ]
)
Y4 = np.array([0, 0, 0, 0, 1, 1, 1, 1.0])


def mean_loss_at(loss, X, y):
    objective = get_objective(loss)

    def at(width):
        smoothed = objective.smoothed(width)

        def fun(w):
            value, gradient = smoothed.value_and_gradient(w, X, y)
            return value / len(y), gradient / len(y)

        return fun

    return at


def test_continuation_reaches_the_hinge_l1_optimum_where_owlqn_stalls():
    at = mean_loss_at("hinge", X4, Y4)
    penalty = make_penalty("l1", 0.2)
    smoothed = minimize_smoothed(
        at, np.zeros(6), penalty=penalty, solver="owlqn", tol=1e-6
    )
    plain = minimize(at(0.0), np.zeros(6), penalty=penalty, solver="owlqn", tol=1e-6)
    assert smoothed.objective == pytest.approx(0.4, abs=5e-4)
    np.testing.assert_array_equal(np.flatnonzero(smoothed.coef), [0, 5])
    assert plain.objective > 0.43  # the kinks stall it
    # the reported objective is the loss itself, not a smoothed one
    assert smoothed.objective == pytest.approx(
        at(0.0)(smoothed.coef)[0] + penalty.value(smoothed.coef)
    )


def test_without_tol_the_widths_share_max_iter_and_early_stopping_ends_all():
    at = mean_loss_at("hinge", X4, Y4)
    seen = []
    result = minimize_smoothed(
        at,
        np.zeros(6),
        penalty=make_penalty("l1", 0.2),
        solver="owlqn",
        tol=None,
        max_iter=8,
        callback=lambda i, w, f: seen.append(i),
    )
    assert result.n_iter == 8 and seen == list(range(1, 9))
    stopped = minimize_smoothed(
        at,
        np.zeros(6),
        penalty=make_penalty("l1", 0.2),
        solver="owlqn",
        tol=None,
        max_iter=40,
        callback=lambda i, w, f: i == 3,
    )
    assert stopped.n_iter == 3 and stopped.converged


@pytest.mark.parametrize("loss", ["hinge", "perceptron", "epsilon_insensitive"])
def test_smoothed_losses_are_below_by_at_most_half_the_width(loss):
    rng = np.random.default_rng(0)
    z, width = rng.normal(size=500) * 2, 0.3
    y = (rng.random(500) > 0.5).astype(float)
    objective = get_objective(loss)
    exact, _ = objective.pointwise(z, y)
    smooth, slope = objective.smoothed(width).pointwise(z, y)
    assert np.all(smooth <= exact + 1e-12) and np.all(
        exact - smooth <= width / 2 + 1e-12
    )
    step = 1e-6  # the derivative is the smoothed loss's
    numeric = (objective.smoothed(width).pointwise(z + step, y)[0] - smooth) / step
    np.testing.assert_allclose(slope, numeric, atol=1e-4)


def test_losses_without_kinks_are_their_own_smoothing():
    for loss in ("log_loss", "squared_hinge", "modified_huber", "squared_error"):
        objective = get_objective(loss)
        assert not objective.kinked and objective.smoothed(0.1) is objective
    wrapped = OneVsRest(get_objective("hinge"), 3)
    assert wrapped.kinked and wrapped.smoothed(0.1).binary.width == 0.1
    with pytest.raises(ValueError, match="width must be >= 0"):
        get_objective("hinge").smoothed(-1.0)
    with pytest.raises(ValueError, match="decreasing"):
        minimize_smoothed(mean_loss_at("hinge", X4, Y4), np.zeros(6), widths=(0.1, 1.0))
