"""Optimisation loops over a ``(loss, gradient)`` callable.

Pure: the callable may be a coded round on a Dask cluster or a plain numpy
function; the solvers know nothing of either.  Each minimises

    F(w) = f(w) + penalty(w)

where ``fun(w) -> (f(w), grad f(w))`` is smooth and the penalty is an
:class:`~dask_gradcode.objectives.ElasticNet` (its l1 part by proximal steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

from dask_gradcode.objectives import ElasticNet

__all__ = ["LEARNING_RATES", "SOLVERS", "SolverResult", "minimize"]

LossAndGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]

SOLVERS = ("gd", "nesterov", "lbfgs")
#: ``"auto"`` is a backtracking line search; the others follow scikit-learn's SGD.
LEARNING_RATES = ("auto", "constant", "optimal", "invscaling", "adaptive")


@dataclass
class SolverResult:
    """Outcome of :func:`minimize`.

    Attributes
    ----------
    coef : ndarray
        The minimiser found.
    objective : float
        ``F(coef)``.
    n_iter : int
        Iterations run.
    n_evaluations : int
        Calls of ``fun`` (coded rounds).
    converged : bool
        Whether the stopping rule was met before ``max_iter``.
    objectives : list of float
        ``F`` after every iteration.
    """

    coef: np.ndarray
    objective: float
    n_iter: int
    n_evaluations: int
    converged: bool
    objectives: list[float] = field(default_factory=list)


class _Counted:
    """``fun`` plus the smooth penalty, counting evaluations."""

    def __init__(self, fun: LossAndGradient, penalty: ElasticNet) -> None:
        self.fun = fun
        self.penalty = penalty
        self.calls = 0

    def __call__(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        self.calls += 1
        loss, gradient = self.fun(w)
        value, slope = self.penalty.smooth(w)
        return float(loss) + value, np.asarray(gradient, dtype=np.float64) + slope


def minimize(
    fun: LossAndGradient,
    x0: np.ndarray,
    *,
    penalty: ElasticNet | None = None,
    solver: str = "lbfgs",
    max_iter: int = 1000,
    tol: float | None = 1e-6,
    n_iter_no_change: int = 5,
    learning_rate: str = "auto",
    eta0: float = 0.01,
    power_t: float = 0.25,
    callback: Callable[[int, np.ndarray, float], bool | None] | None = None,
) -> SolverResult:
    """Minimise ``f(w) + penalty(w)`` given ``fun(w) = (f(w), grad f(w))``.

    Parameters
    ----------
    fun : callable
        Smooth part: returns the value and gradient at ``w``.
    x0 : ndarray
        Starting point.
    penalty : ElasticNet, optional
        No penalty if None.
    solver : {"lbfgs", "gd", "nesterov"}, default="lbfgs"
        ``"lbfgs"``: scipy's L-BFGS-B (smooth penalties only).  ``"gd"``:
        proximal gradient descent with the ``learning_rate`` schedule.
        ``"nesterov"``: accelerated proximal gradient (FISTA) with a
        backtracking line search.
    max_iter : int, default=1000
        Iterations at most.
    tol : float or None, default=1e-6
        Stop once the objective has improved by less than
        ``tol * max(1, |F|)`` for ``n_iter_no_change`` iterations in a row.
        For ``"lbfgs"``, scipy's ``ftol`` and ``gtol``.  None: run
        ``max_iter`` iterations.
    n_iter_no_change : int, default=5
    learning_rate : str, default="auto"
        For ``"gd"``: ``"auto"`` (backtracking line search), ``"constant"``
        (``eta0``), ``"invscaling"`` (``eta0 / t**power_t``), ``"optimal"``
        (``1 / (alpha * (t0 + t))`` as in scikit-learn's SGD) or
        ``"adaptive"`` (``eta0``, divided by 5 whenever the objective stalls).
    eta0, power_t : float
        Schedule parameters.
    callback : callable, optional
        ``callback(iteration, w, objective)`` after every iteration; returning
        True stops the solver (early stopping), which then counts as converged.

    Returns
    -------
    SolverResult
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {list(SOLVERS)}")
    if learning_rate not in LEARNING_RATES:
        raise ValueError(
            f"unknown learning_rate {learning_rate!r}; choose one of "
            f"{list(LEARNING_RATES)}"
        )
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    penalty = penalty if penalty is not None else ElasticNet()
    smooth = _Counted(fun, penalty)
    x0 = np.array(x0, dtype=np.float64)
    if solver == "lbfgs":
        return _lbfgs(smooth, x0, max_iter, tol, callback)
    if solver == "nesterov":
        return _proximal(
            smooth, x0, max_iter, tol, n_iter_no_change, callback, accelerated=True
        )
    if learning_rate == "auto":
        return _proximal(
            smooth, x0, max_iter, tol, n_iter_no_change, callback, accelerated=False
        )
    return _scheduled(
        smooth,
        x0,
        max_iter,
        tol,
        n_iter_no_change,
        callback,
        learning_rate,
        eta0,
        power_t,
    )


def _lbfgs(smooth, x0, max_iter, tol, callback) -> SolverResult:
    if smooth.penalty.l1_strength > 0:
        raise ValueError(
            "solver='lbfgs' needs a smooth penalty; use penalty='l2' or None, or "
            "solver='nesterov' for l1 and elasticnet"
        )
    objectives: list[float] = []
    last = {"value": math.nan}
    stopped = {"early": False}

    def record(w: np.ndarray) -> None:
        objectives.append(last["value"])
        if callback is not None and callback(len(objectives), w, last["value"]):
            stopped["early"] = True
            raise StopIteration  # scipy ends the run and returns the current point

    def value_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = smooth(w)
        last["value"] = value
        return value, gradient

    tolerance = 0.0 if tol is None else tol  # None: only max_iter stops it
    result = scipy.optimize.minimize(
        value_and_gradient,
        x0,
        jac=True,
        method="L-BFGS-B",
        callback=record,
        options={
            "maxiter": max_iter,
            "ftol": tolerance,
            "gtol": tolerance,
            "maxfun": 20 * max_iter,
        },
    )
    return SolverResult(
        coef=result.x,
        objective=float(result.fun),
        n_iter=int(result.nit),
        n_evaluations=smooth.calls,
        converged=bool(result.success) or stopped["early"],
        objectives=objectives,
    )


class _Stall:
    """Counts iterations whose improvement is below ``tol * max(1, |F|)``."""

    def __init__(self, tol: float | None, patience: int) -> None:
        self.tol, self.patience, self.count = tol, patience, 0

    def update(self, previous: float, current: float) -> bool:
        if self.tol is None:
            return False
        if previous - current < self.tol * max(1.0, abs(current)):
            self.count += 1
        else:
            self.count = 0
        return self.count >= self.patience


def _proximal(
    smooth, x0, max_iter, tol, patience, callback, *, accelerated: bool
) -> SolverResult:
    """Proximal gradient with backtracking on ``L``.

    Accelerated: FISTA with adaptive restart.  Plain: each iteration starts
    from the Barzilai-Borwein curvature of the last step.
    """
    penalty = smooth.penalty
    x = x0
    f_x, g_x = smooth(x)
    objective = f_x + penalty.nonsmooth(x)
    lipschitz = max(1.0, float(np.linalg.norm(g_x)))
    y, f_y, g_y, momentum = x, f_x, g_x, 1.0
    stall = _Stall(tol, patience)
    objectives: list[float] = []
    converged = False
    for iteration in range(1, max_iter + 1):
        while True:
            candidate = penalty.prox(y - g_y / lipschitz, 1.0 / lipschitz)
            f_c, g_c = smooth(candidate)
            step = candidate - y
            bound = f_y + float(g_y @ step) + 0.5 * lipschitz * float(step @ step)
            if f_c <= bound + 1e-12 * max(1.0, abs(f_y)) or lipschitz > 1e16:
                break
            lipschitz *= 2.0
        new_objective = f_c + penalty.nonsmooth(candidate)
        if accelerated and new_objective > objective:  # adaptive restart
            momentum = 1.0
        if accelerated:
            next_momentum = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum**2))
            y = candidate + ((momentum - 1.0) / next_momentum) * (candidate - x)
            momentum = next_momentum
            f_y, g_y = smooth(y) if not np.array_equal(y, candidate) else (f_c, g_c)
        else:
            y, f_y, g_y = candidate, f_c, g_c
        if not accelerated:
            # Barzilai-Borwein: the curvature along the last step is the next
            # guess for L (the backtracking above still guards it).
            step_taken, slope_change = candidate - x, g_c - g_x
            curvature = float(step_taken @ slope_change)
            if curvature > 0:
                lipschitz = curvature / float(step_taken @ step_taken)
        x, f_x, g_x = candidate, f_c, g_c
        previous, objective = objective, new_objective
        objectives.append(objective)
        if callback is not None and callback(iteration, x, objective):
            converged = True
            break
        if accelerated:
            lipschitz = max(lipschitz / 1.5, 1e-12)  # let the step grow back
        if stall.update(previous, objective):
            converged = True
            break
    return SolverResult(
        x, objectives[-1], iteration, smooth.calls, converged, objectives
    )


def _scheduled(
    smooth, x0, max_iter, tol, patience, callback, learning_rate, eta0, power_t
) -> SolverResult:
    """Proximal gradient steps with scikit-learn's SGD learning-rate schedules."""
    penalty = smooth.penalty
    if learning_rate in ("constant", "invscaling", "adaptive") and not eta0 > 0:
        raise ValueError(f"eta0 must be > 0 for learning_rate={learning_rate!r}")
    if learning_rate == "optimal" and penalty.alpha <= 0:
        raise ValueError("learning_rate='optimal' needs alpha > 0")
    # scikit-learn's heuristic offset for the "optimal" schedule
    t0 = 1.0 / (
        math.sqrt(1.0 / math.sqrt(penalty.alpha or 1.0)) * (penalty.alpha or 1.0)
    )
    x = x0
    f_x, g_x = smooth(x)
    objective = f_x + penalty.nonsmooth(x)
    eta = eta0
    stall = _Stall(tol, patience)
    objectives: list[float] = []
    converged = False
    for iteration in range(1, max_iter + 1):
        if learning_rate == "invscaling":
            eta = eta0 / iteration**power_t
        elif learning_rate == "optimal":
            eta = 1.0 / (penalty.alpha * (t0 + iteration - 1))
        x = penalty.prox(x - eta * g_x, eta)
        f_x, g_x = smooth(x)
        previous, objective = objective, f_x + penalty.nonsmooth(x)
        objectives.append(objective)
        if callback is not None and callback(iteration, x, objective):
            converged = True
            break
        stalled = stall.update(previous, objective)
        if stalled and learning_rate == "adaptive" and eta > 1e-6:
            eta /= 5.0
            stall.count = 0
        elif stalled:
            converged = True
            break
    return SolverResult(
        x, objectives[-1], iteration, smooth.calls, converged, objectives
    )
