"""Solvers against scipy and closed forms; penalties and their proximal steps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from dask_gradcode.objectives import ElasticNet, get_objective, make_penalty
from dask_gradcode.solvers import minimize
from tests.conftest import binary_problem


@pytest.fixture(scope="module")
def logistic():
    X, y, _ = binary_problem(seed=0, n_samples=300, n_features=6)
    objective = get_objective("log_loss")

    def fun(w):
        value, gradient = objective.value_and_gradient(w, X, y)
        return value / len(y), gradient / len(y)

    return fun


def reference_l2(fun, alpha, dim=6):
    def total(w):
        value, gradient = fun(w)
        return value + 0.5 * alpha * w @ w, gradient + alpha * w

    result = scipy.optimize.minimize(
        total,
        np.zeros(dim),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    return result.fun


@pytest.mark.parametrize(
    ("solver", "learning_rate"),
    [("lbfgs", "auto"), ("nesterov", "auto"), ("gd", "auto"), ("gd", "adaptive")],
)
def test_solvers_reach_the_l2_optimum(logistic, solver, learning_rate):
    best = reference_l2(logistic, 0.01)
    result = minimize(
        logistic,
        np.zeros(6),
        penalty=make_penalty("l2", 0.01),
        solver=solver,
        learning_rate=learning_rate,
        eta0=1.0,
        max_iter=5000,
        tol=1e-12,
    )
    assert result.objective == pytest.approx(best, rel=1e-6)
    assert result.n_evaluations >= result.n_iter
    assert result.objectives[-1] == pytest.approx(result.objective)


def test_line_search_solvers_need_fewer_iterations_than_a_fixed_step(logistic):
    common = {"penalty": make_penalty("l2", 1e-3), "max_iter": 5000, "tol": 1e-10}
    fixed = minimize(
        logistic, np.zeros(6), solver="gd", learning_rate="constant", eta0=1.0, **common
    )
    for solver in ("gd", "nesterov"):
        adaptive = minimize(logistic, np.zeros(6), solver=solver, **common)
        assert adaptive.objective == pytest.approx(fixed.objective, rel=1e-6)
        assert adaptive.n_iter < fixed.n_iter


@pytest.mark.parametrize("solver", ["nesterov", "gd"])
def test_l1_gives_a_sparse_optimum_that_satisfies_optimality(logistic, solver):
    alpha = 0.05
    penalty = make_penalty("l1", alpha)
    result = minimize(
        logistic, np.zeros(6), penalty=penalty, solver=solver, max_iter=5000, tol=1e-12
    )
    w = result.coef
    _, gradient = logistic(w)
    active = np.abs(w) > 1e-8
    assert not active.all()  # some coefficient is exactly zero
    # subgradient optimality: grad = -alpha sign(w) on the support, |grad| <= alpha off it
    np.testing.assert_allclose(gradient[active], -alpha * np.sign(w[active]), atol=1e-5)
    assert np.all(np.abs(gradient[~active]) <= alpha + 1e-5)


def test_lbfgs_refuses_an_l1_penalty(logistic):
    with pytest.raises(ValueError, match="solver='nesterov'"):
        minimize(logistic, np.zeros(6), penalty=make_penalty("l1", 0.1), solver="lbfgs")


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "optimal", "adaptive"])
def test_learning_rate_schedules_decrease_the_objective(logistic, schedule):
    result = minimize(
        logistic,
        np.zeros(6),
        penalty=make_penalty("l2", 0.01),
        solver="gd",
        learning_rate=schedule,
        eta0=0.5,
        max_iter=200,
        tol=None,
    )
    assert result.n_iter == 200 and not result.converged
    assert result.objective < result.objectives[0] < np.log(2) + 1e-9


def test_callback_sees_every_iteration(logistic):
    seen = []
    result = minimize(
        logistic,
        np.zeros(6),
        solver="nesterov",
        max_iter=7,
        tol=None,
        callback=lambda it, w, value: seen.append((it, value)),
    )
    assert [it for it, _ in seen] == list(range(1, 8))
    assert seen[-1][1] == result.objective


def test_elastic_net_penalty_and_its_proximal_step():
    penalty = ElasticNet(alpha=2.0, l1_ratio=0.25, mask=np.array([True, True, False]))
    w = np.array([1.0, -0.1, 5.0])  # the last coefficient (an intercept) is free
    value, gradient = penalty.smooth(w)
    assert value == pytest.approx(0.5 * 1.5 * (1.0 + 0.01))
    np.testing.assert_allclose(gradient, [1.5, -0.15, 0.0])
    assert penalty.nonsmooth(w) == pytest.approx(0.5 * 1.1)
    np.testing.assert_allclose(penalty.prox(w, 0.4), [0.8, 0.0, 5.0])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_penalty("l3", 1.0), "unknown penalty"),
        (lambda: ElasticNet(alpha=-1.0), "alpha must be"),
        (lambda: ElasticNet(alpha=1.0, l1_ratio=2.0), "l1_ratio"),
        (
            lambda: minimize(lambda w: (0.0, w), np.zeros(2), solver="sgd"),
            "unknown solver",
        ),
        (
            lambda: minimize(lambda w: (0.0, w), np.zeros(2), learning_rate="fast"),
            "learning_rate",
        ),
        (lambda: minimize(lambda w: (0.0, w), np.zeros(2), max_iter=0), "max_iter"),
        (
            lambda: minimize(
                lambda w: (0.0, w), np.zeros(2), solver="gd", learning_rate="optimal"
            ),
            "alpha > 0",
        ),
    ],
)
def test_bad_solver_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_lbfgs_starts_its_memory_afresh_after_wrong_gradients():
    """Gradients that were wrong for a while (a worker caught lying) then right."""
    target = np.array([1.0, -2.0, 3.0])
    calls = {"n": 0}

    def quadratic(w):
        calls["n"] += 1
        gradient = 2 * (w - target)
        if 2 <= calls["n"] <= 10:  # wrong: its line search fails; then right
            gradient = -gradient + np.array([0.3, 0.0, 0.0])
        return float(np.sum((w - target) ** 2)), gradient

    result = minimize(quadratic, np.zeros(3), solver="lbfgs", tol=1e-14, max_iter=200)
    np.testing.assert_allclose(result.coef, target, atol=1e-6)


@pytest.mark.parametrize(
    ("solver", "penalty"),
    [("lbfgs", "l2"), ("owlqn", "l1"), ("nesterov", "l2"), ("gd", "l2")],
)
def test_a_solver_told_of_wrong_values_ends_at_the_honest_optimum(
    logistic, solver, penalty
):
    """Calls 3-12 return too low a loss and a scaled gradient; call 12 says so.

    That is a coded gradient whose audit caught a wrong worker after
    unchecked rounds had decoded its replies.  Told, the solver forgets the
    best objective and its memory; untold, the stopping rule remembers the
    wrong best and ends the fit early.
    """
    penalty_term = make_penalty(penalty, 0.01)
    honest = minimize(
        logistic, np.zeros(6), penalty=penalty_term, solver=solver, tol=1e-12
    )

    def run(tell):
        calls = {"n": 0, "found": 0}

        def lying(w):
            calls["n"] += 1
            value, gradient = logistic(w)
            if calls["n"] == 12:
                calls["found"] = 1  # caught: this value is right again
            elif calls["n"] >= 3 and not calls["found"]:
                return value - 1.0, 0.3 * gradient
            return value, gradient

        found = (lambda: calls["found"]) if tell else None
        return minimize(
            lying,
            np.zeros(6),
            penalty=penalty_term,
            solver=solver,
            tol=1e-12,
            max_iter=5000,
            invalidations=found,
        )

    def objective(w):
        return logistic(w)[0] + penalty_term.smooth(w)[0] + penalty_term.nonsmooth(w)

    told, untold = run(tell=True), run(tell=False)
    assert told.objective == pytest.approx(honest.objective, rel=1e-7)
    assert objective(told.coef) == pytest.approx(honest.objective, rel=1e-7)
    assert objective(untold.coef) > honest.objective * (1 + 1e-6)
