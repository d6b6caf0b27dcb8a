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

__all__ = ["LEARNING_RATES", "SOLVERS", "Diverged", "SolverResult", "minimize"]

LossAndGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]
#: ``callback(iteration, w, objective)``; a true result stops the solver.
Callback = Callable[[int, np.ndarray, float], bool | None]

SOLVERS = ("gd", "nesterov", "lbfgs", "owlqn")
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
    t : int
        The schedule's step counter after the run (``t0`` plus the
        iterations): where a later call continues.
    """

    coef: np.ndarray
    objective: float
    n_iter: int
    n_evaluations: int
    converged: bool
    objectives: list[float] = field(default_factory=list)
    t: int = 1


class Diverged(ValueError, FloatingPointError):
    """The iterates overflowed or the objective exploded: the run cannot go on.

    A ``ValueError`` (what scikit-learn's SGD raises on overflow) and a
    ``FloatingPointError``.
    """


class _Counted:
    """``fun`` plus the smooth penalty, counting evaluations, refusing overflow."""

    def __init__(
        self,
        fun: LossAndGradient,
        penalty: ElasticNet,
        invalidations: Callable[[], int] | None = None,
    ) -> None:
        self.fun = fun
        self.penalty = penalty
        self.calls = 0
        self.iteration = 0
        self._invalidations = invalidations
        self._seen = self._count()

    @property
    def invalidated(self) -> bool:
        """Whether values returned before were found wrong since the last ask."""
        return self._count() > self._seen

    def _count(self) -> int:
        return self._invalidations() if self._invalidations is not None else 0

    def forget_if_invalidated(self, stall: _Stall) -> bool:
        """Whether values returned before were found wrong since the last ask.

        If so, the stopping rule forgets its best objective (it may be one
        of the wrong values); the caller empties its own memory.
        """
        if not self.invalidated:
            return False
        self._seen = self._count()
        stall.forget()
        return True

    def __call__(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        if not np.all(np.isfinite(w)):
            raise Diverged(
                f"Floating-point under-/overflow occurred at epoch #{self.iteration + 1}"
                ": the weights are no longer finite. Scaling input data with "
                "StandardScaler or MinMaxScaler might help, or a smaller step "
                "(eta0, learning_rate='auto' or solver='lbfgs')"
            )
        self.calls += 1
        loss, gradient = self.fun(w)
        value, slope = self.penalty.smooth(w)
        total, slope = (
            float(loss) + value,
            np.asarray(gradient, dtype=np.float64) + slope,
        )
        if not (np.isfinite(total) and np.all(np.isfinite(slope))):
            raise Diverged(
                f"Floating-point under-/overflow occurred at epoch #{self.iteration + 1}"
                ": the loss or its gradient is no longer finite. Scaling input data "
                "with StandardScaler or MinMaxScaler might help"
            )
        return total, slope


def minimize(
    fun: LossAndGradient,
    x0: np.ndarray,
    *,
    penalty: ElasticNet | None = None,
    solver: str = "lbfgs",
    max_iter: int = 1000,
    tol: float | None = 1e-3,
    n_iter_no_change: int = 5,
    learning_rate: str = "auto",
    eta0: float = 0.01,
    power_t: float = 0.25,
    t0: int = 1,
    callback: Callable[[int, np.ndarray, float], bool | None] | None = None,
    invalidations: Callable[[], int] | None = None,
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
    solver : {"lbfgs", "owlqn", "gd", "nesterov"}, default="lbfgs"
        scipy's L-BFGS-B (smooth penalties only); orthant-wise L-BFGS
        (Andrew & Gao 2007, Spark MLlib's l1 solver: exact zeros);
        proximal gradient descent with ``learning_rate``; accelerated
        proximal gradient (FISTA) with a backtracking line search.
    max_iter : int, default=1000
        Iterations at most.
    tol : float or None, default=1e-3
        scikit-learn's rule: stop once the objective has failed to drop below
        ``best - tol`` (the best objective so far) for ``n_iter_no_change``
        iterations in a row.  None: run ``max_iter`` iterations (or until
        L-BFGS cannot improve).
    n_iter_no_change : int, default=5
    learning_rate : str, default="auto"
        For ``"gd"``: ``"auto"`` (backtracking line search), ``"constant"``
        (``eta0``), ``"invscaling"`` (``eta0 / t**power_t``), ``"optimal"``
        (``1 / (alpha * (t_opt + t))`` as in scikit-learn's SGD) or
        ``"adaptive"`` (``eta0``, divided by 5 whenever the objective stalls),
        with ``t`` the step counter.
    eta0, power_t : float
        Schedule parameters.
    t0 : int, default=1
        The step counter's first value: a later call continues a schedule.
    callback : callable, optional
        ``callback(iteration, w, objective)`` after every iteration; returning
        True stops the solver (early stopping), which then counts as converged.
    invalidations : callable, optional
        ``invalidations()`` counts the times ``fun`` found values it returned
        earlier wrong (an audit caught a wrong worker after unverified
        rounds).  When it grows, the solver forgets the stopping rule's best
        objective and its curvature memory and goes on from its point.

    Returns
    -------
    SolverResult

    Raises
    ------
    Diverged
        If the weights, the loss or its gradient overflow (a
        ``FloatingPointError``).
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
    smooth = _Counted(fun, penalty, invalidations)
    x0 = np.array(x0, dtype=np.float64)
    stall = _Stall(tol, n_iter_no_change)
    if solver == "lbfgs":
        result = _lbfgs(smooth, x0, max_iter, stall, callback)
    elif solver == "owlqn":
        result = _owlqn(smooth, x0, max_iter, stall, callback)
    elif solver == "nesterov" or learning_rate == "auto":
        result = _proximal(
            smooth,
            x0,
            max_iter,
            stall,
            callback,
            accelerated=solver == "nesterov",
        )
    else:
        result = _scheduled(
            smooth, x0, max_iter, stall, callback, t0, learning_rate, eta0, power_t
        )
    result.t = t0 + result.n_iter
    return result


def _lbfgs(
    smooth: _Counted,
    x0: np.ndarray,
    max_iter: int,
    stall: _Stall,
    callback: Callback | None,
) -> SolverResult:
    if smooth.penalty.l1_strength > 0:
        raise ValueError(
            "solver='lbfgs' needs a smooth penalty; use penalty='l2' or None, or "
            "solver='nesterov' for l1 and elasticnet"
        )
    objectives: list[float] = []
    last = {"value": math.nan}
    stopped = {"early": False, "invalidated": False}

    def record(xk: np.ndarray) -> None:  # scipy's name for the current point
        objectives.append(last["value"])
        smooth.iteration = len(objectives)
        if smooth.forget_if_invalidated(stall):
            stopped["invalidated"] = True
            raise StopIteration  # its memory holds wrong values: start again here
        if callback is not None and callback(len(objectives), xk, last["value"]):
            stopped["early"] = True
            raise StopIteration  # scipy ends the run and returns the current point
        if stall.update(last["value"]):
            stopped["early"] = True
            raise StopIteration

    def value_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = smooth(w)
        last["value"] = value
        return value, gradient

    x, iterations, success, failed_searches = x0, 0, False, 0
    while True:
        stopped.update(early=False, invalidated=False)
        result = scipy.optimize.minimize(
            value_and_gradient,
            x,
            jac=True,
            method="L-BFGS-B",
            callback=record,
            options={
                "maxiter": max_iter - iterations,
                "ftol": 0.0,  # the stopping rule is scikit-learn's (``_Stall``)
                "gtol": 1e-12,
                "maxfun": 20 * max_iter,
            },
        )
        moved = not np.array_equal(result.x, x)
        x, iterations = result.x, iterations + int(result.nit)
        success = bool(result.success) or stopped["early"]
        if iterations >= max_iter:
            break
        if smooth.forget_if_invalidated(stall) or stopped["invalidated"]:
            continue
        if success or not moved or result.status != 2:
            break
        # A line search that failed before the stopping rule held: its
        # curvature pairs may hold wrong gradients nobody has caught yet, so
        # start again from the point with an empty memory.
        failed_searches += 1
        if failed_searches > LBFGS_RESTARTS:
            break
    return SolverResult(
        coef=x,
        objective=float(result.fun),
        n_iter=iterations,
        n_evaluations=smooth.calls,
        converged=success,
        objectives=objectives,
    )


#: Pairs of steps and gradient changes OWL-QN remembers (L-BFGS's memory).
OWLQN_MEMORY = 10


def _owlqn(
    smooth: _Counted,
    x0: np.ndarray,
    max_iter: int,
    stall: _Stall,
    callback: Callback | None,
) -> SolverResult:
    """Orthant-wise limited-memory quasi-Newton for ``f + l1`` (Andrew & Gao 2007).

    Each step moves along the L-BFGS direction of the l1 pseudo-gradient,
    kept in the orthant that pseudo-gradient points to, and a backtracking
    line search projects every trial point back onto that orthant, so
    coordinates that cross zero stop at zero: the optimum's exact zeros.
    It stops by scikit-learn's rule (``stall``), or when the pseudo-gradient
    vanishes (the point is optimal).
    """
    penalty = smooth.penalty
    weights = penalty.l1_strength * (
        np.ones_like(x0) if penalty.mask is None else penalty.mask.astype(float)
    )
    x = x0.copy()
    f_x, g_x = smooth(x)
    objective = f_x + penalty.nonsmooth(x)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    objectives: list[float] = []
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        smooth.iteration = iteration - 1
        if smooth.forget_if_invalidated(stall):  # start again from x, honestly
            steps = []
            f_x, g_x = smooth(x)
            objective = f_x + penalty.nonsmooth(x)
        pseudo = _pseudo_gradient(x, g_x, weights)
        if float(np.abs(pseudo).max(initial=0.0)) <= 1e-12 * max(1.0, abs(objective)):
            converged = True  # optimal: nothing moves
            objectives.append(objective)
            break
        direction = -_two_loop(pseudo, steps)
        direction = np.where(direction * pseudo < 0, direction, 0.0)
        if not np.any(direction):
            direction, steps = -pseudo, []  # a steepest-descent restart
        orthant = np.where(x != 0, np.sign(x), np.sign(-pseudo))
        found = _orthant_line_search(
            smooth, penalty, x, objective, pseudo, direction, orthant, first=not steps
        )
        if found is None and smooth.invalidated:
            continue  # it compared against a wrong objective: start again
        if found is None:
            converged = True  # no decrease left at float64 resolution
            objectives.append(objective)
            break
        x_new, f_new, g_new, objective = found
        step, change = x_new - x, g_new - g_x
        curvature = float(step @ change)
        if curvature > 1e-12 * float(step @ step):
            steps = [*steps[-(OWLQN_MEMORY - 1) :], (step, change, 1.0 / curvature)]
        x, f_x, g_x = x_new, f_new, g_new
        objectives.append(objective)
        if callback is not None and callback(iteration, x, objective):
            converged = True
            break
        if stall.update(objective):
            converged = True
            break
    return SolverResult(x, objective, iteration, smooth.calls, converged, objectives)


def _pseudo_gradient(x: np.ndarray, g: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The steepest-descent (negated) direction of ``f + sum(weights * |x|)``."""
    right, left = g + weights, g - weights
    at_zero = np.where(right < 0, right, np.where(left > 0, left, 0.0))
    return np.where(x > 0, right, np.where(x < 0, left, at_zero))


def _two_loop(
    gradient: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray, float]]
) -> np.ndarray:
    """L-BFGS's inverse-Hessian product by the two-loop recursion."""
    q = gradient.copy()
    alphas = []
    for s, y, rho in reversed(steps):
        a = rho * float(s @ q)
        alphas.append(a)
        q -= a * y
    if steps:
        s, y, _ = steps[-1]
        q *= float(s @ y) / float(y @ y)
    for (s, y, rho), a in zip(steps, reversed(alphas), strict=True):
        q += (a - rho * float(y @ q)) * s
    return q


def _orthant_line_search(
    smooth: _Counted,
    penalty: ElasticNet,
    x: np.ndarray,
    objective: float,
    pseudo: np.ndarray,
    direction: np.ndarray,
    orthant: np.ndarray,
    *,
    first: bool,
) -> tuple[np.ndarray, float, np.ndarray, float] | None:
    """Backtracking on the orthant-projected path (Armijo on the pseudo-gradient)."""
    free = np.zeros(x.shape, dtype=bool) if penalty.mask is None else ~penalty.mask
    step = 1.0 / max(1.0, float(np.linalg.norm(direction))) if first else 1.0
    for _ in range(60):
        trial = x + step * direction
        # Penalised coordinates stay in the orthant; the others move freely.
        trial = np.where((np.sign(trial) == orthant) | free, trial, 0.0)
        f_t, g_t = smooth(trial)
        value = f_t + penalty.nonsmooth(trial)
        if value <= objective + 1e-4 * float(pseudo @ (trial - x)):
            return trial, f_t, g_t, value
        step *= 0.5
    return None


#: Fresh starts of L-BFGS after a failed line search (see ``_lbfgs``).
LBFGS_RESTARTS = 2


class _Stall:
    """scikit-learn's stopping rule: no drop below ``best - tol`` for ``patience`` steps."""

    def __init__(self, tol: float | None, patience: int) -> None:
        self.tol, self.patience, self.count = tol, patience, 0
        self.best = math.inf

    def update(self, current: float) -> bool:
        if self.tol is None:
            return False
        if current > self.best - self.tol:
            self.count += 1
        else:
            self.count = 0
        self.best = min(self.best, current)
        return self.count >= self.patience

    def forget(self) -> None:
        """Start afresh: the objectives seen so far were found wrong."""
        self.best, self.count = math.inf, 0


def _proximal(
    smooth: _Counted,
    x0: np.ndarray,
    max_iter: int,
    stall: _Stall,
    callback: Callback | None,
    *,
    accelerated: bool,
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
    objectives: list[float] = []
    converged = False
    for iteration in range(1, max_iter + 1):
        smooth.iteration = iteration - 1
        if smooth.forget_if_invalidated(stall):  # start again from x, honestly
            f_x, g_x = smooth(x)
            objective = f_x + penalty.nonsmooth(x)
            lipschitz = max(1.0, float(np.linalg.norm(g_x)))
            y, f_y, g_y, momentum = x, f_x, g_x, 1.0
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
        objective = new_objective
        objectives.append(objective)
        if callback is not None and callback(iteration, x, objective):
            converged = True
            break
        if accelerated:
            lipschitz = max(lipschitz / 1.5, 1e-12)  # let the step grow back
        if stall.update(objective):
            converged = True
            break
    return SolverResult(
        x, objectives[-1], iteration, smooth.calls, converged, objectives
    )


#: The objective may grow this much over its start before a run counts as diverged.
DIVERGENCE_FACTOR = 1e8


def _scheduled(
    smooth: _Counted,
    x0: np.ndarray,
    max_iter: int,
    stall: _Stall,
    callback: Callback | None,
    t0: int,
    learning_rate: str,
    eta0: float,
    power_t: float,
) -> SolverResult:
    """Proximal gradient steps with scikit-learn's SGD learning-rate schedules.

    The step counter ``t`` counts full-gradient steps (from ``t0``), where
    scikit-learn's SGD counts samples.
    """
    penalty = smooth.penalty
    if learning_rate in ("constant", "invscaling", "adaptive") and not eta0 > 0:
        raise ValueError(
            f"eta0 must be > 0 for learning_rate={learning_rate!r}, got {eta0}"
        )
    if learning_rate == "optimal" and penalty.alpha <= 0:
        raise ValueError("learning_rate='optimal' needs alpha > 0")
    # scikit-learn's heuristic offset for the "optimal" schedule
    offset = 1.0 / (
        math.sqrt(1.0 / math.sqrt(penalty.alpha or 1.0)) * (penalty.alpha or 1.0)
    )
    x = x0
    f_x, g_x = smooth(x)
    objective = start = f_x + penalty.nonsmooth(x)
    eta = eta0
    objectives: list[float] = []
    converged = False
    for iteration in range(1, max_iter + 1):
        smooth.iteration = iteration - 1
        t = t0 + iteration - 1
        if learning_rate == "invscaling":
            eta = eta0 / t**power_t
        elif learning_rate == "optimal":
            eta = 1.0 / (penalty.alpha * (offset + t - 1))
        # The squared penalty's step is taken implicitly with the l1 part's:
        # stable however large ``eta * alpha`` (scikit-learn clips its
        # explicit shrink at zero for the same reason).
        loss_gradient = g_x - penalty.smooth(x)[1]
        x = penalty.prox_whole(x - eta * loss_gradient, eta)
        f_x, g_x = smooth(x)
        objective = f_x + penalty.nonsmooth(x)
        if objective > DIVERGENCE_FACTOR * max(1.0, abs(start)):
            raise Diverged(
                f"the objective grew from {start:.3g} to {objective:.3g} by epoch "
                f"#{iteration} (learning_rate={learning_rate!r}, step {eta:.3g}): "
                "the steps are too large for these data. Scale the data "
                "(StandardScaler), lower eta0, or use learning_rate='auto' or "
                "solver='lbfgs'"
            )
        objectives.append(objective)
        if callback is not None and callback(iteration, x, objective):
            converged = True
            break
        smooth.forget_if_invalidated(
            stall
        )  # this value is right, those before may not be
        stalled = stall.update(objective)
        if stalled and learning_rate == "adaptive" and eta > 1e-6:
            eta /= 5.0
            stall.count = 0
        elif stalled:
            converged = True
            break
    return SolverResult(
        x, objectives[-1], iteration, smooth.calls, converged, objectives
    )
