"""Pure decisions about a fit's parameters: which solver runs, what is unused.

scikit-learn's rules that depend on the kind of fit (``fit`` or
``partial_fit``) and the parameters that have no effect with the solver a
fit runs.  No Dask, no data: the estimator's parameters only.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from dask_gradcode.warn import warn_from_caller

__all__ = [
    "check_fit_kind",
    "check_partial_fit",
    "default_workers",
    "fit_solver",
    "has_l1",
    "ineffective",
    "init_defaults",
    "smooths_kinks",
]


_DEFAULTS: dict[type, Mapping[str, Any]] = {}


def init_defaults(cls: type) -> Mapping[str, Any]:
    """Each parameter of ``cls.__init__`` with its default (read-only, cached).

    Every fit reads them; ``inspect.signature`` cost a tiny fit 2 ms.
    """
    if cls not in _DEFAULTS:
        parameters = inspect.signature(cls).parameters
        _DEFAULTS[cls] = MappingProxyType(
            {name: parameter.default for name, parameter in parameters.items()}
        )
    return _DEFAULTS[cls]


#: Stored elements of ``X`` (nonzeros for sparse input) each worker gets at
#: least, by default, before one more worker is worth its share of every
#: round trip: about a millisecond of NumPy work per round.
MIN_ELEMENTS_PER_WORKER = 2**18


def default_workers(n_available: int, n_elements: int, n_stragglers: Any) -> int:
    """How many workers a fit uses when ``n_workers`` is not given.

    Every available worker, except for small data without an explicit
    straggler tolerance (``n_stragglers`` ``"auto"`` or 0): one worker per
    :data:`MIN_ELEMENTS_PER_WORKER` stored elements, at least one.  Each
    worker costs every round a message (a 6-row fit's rounds took 3.4 ms
    each on the embedded cluster's 4 workers, 1.1 ms on one), and no code
    pays on data a worker computes in a millisecond.
    """
    if n_stragglers not in ("auto", 0):
        return n_available
    needed = -(-int(n_elements) // MIN_ELEMENTS_PER_WORKER)
    return max(1, min(n_available, needed))


def has_l1(estimator: Any) -> bool:
    """Whether the estimator's penalty has an l1 part (it is not smooth)."""
    penalty = estimator.penalty
    ratio = 1.0 if penalty == "l1" else (estimator.l1_ratio or 0.0)
    return penalty in ("l1", "elasticnet") and estimator.alpha > 0 and ratio > 0


#: The parameters each ``learning_rate`` schedule uses besides ``alpha``.
SCHEDULE_PARAMETERS = {
    "constant": ("eta0",),
    "invscaling": ("eta0", "power_t"),
    "adaptive": ("eta0",),
    "optimal": (),
    "auto": (),
}


def fit_solver(estimator: Any) -> str:
    """The solver a fit runs: ``solver``, or what ``"auto"`` picks.

    ``"auto"``: the ``learning_rate`` schedule (``"gd"``) when the user set
    the schedule, ``learning_rate`` or a parameter of its schedule
    (``eta0``, ``power_t``), away from the estimator's default, or asked
    for mini-batches; OWL-QN for penalties with an l1 part; L-BFGS
    otherwise.
    """
    if estimator.solver != "auto":
        return str(estimator.solver)
    defaults = init_defaults(type(estimator))
    rate = estimator.learning_rate
    if not (isinstance(rate, str) and rate == defaults["learning_rate"]):
        return "gd"
    tuned = any(
        getattr(estimator, name) != defaults[name]
        for name in SCHEDULE_PARAMETERS.get(rate, ())
    )
    if tuned or estimator.batch_size:
        return "gd"
    return "owlqn" if has_l1(estimator) else "lbfgs"


def smooths_kinks(solver: str, kinked: bool, *, partial: bool) -> bool:
    """Whether a fit minimises its loss by smoothing continuation.

    For a loss with kinks (hinge, epsilon-insensitive) under OWL-QN (an l1
    part in the penalty): OWL-QN stalls where rows sit on their kinks, far
    from the sparse optimum (:mod:`~dask_gradcode.continuation`).  L-BFGS
    with an l2 penalty ends within 0.2% of the optimum unsmoothed, in half
    the rounds, so it stays so; ``partial_fit`` takes schedule steps.
    """
    return kinked and solver == "owlqn" and not partial


def ineffective(estimator: Any, *, partial: bool) -> list[tuple[str, str]]:
    """``(parameter, why it has no effect)`` for the parameters that do nothing here.

    The reason follows "has no effect" in the warning: which solver ignores
    it and what it needs, or why nothing uses it.
    """
    solver = fit_solver(estimator)
    unused: list[tuple[str, str]] = []
    if not (partial or solver == "gd"):
        needs = "solver='gd' (or partial_fit)"
        unused += [("learning_rate", needs), ("eta0", needs), ("power_t", needs)]
    elif estimator.learning_rate == "auto":
        unused += [
            ("eta0", "a learning_rate schedule"),
            ("power_t", "learning_rate='invscaling'"),
        ]
    elif estimator.learning_rate != "invscaling":
        unused.append(("power_t", "learning_rate='invscaling'"))
    if solver in ("lbfgs", "owlqn") and not partial:
        unused.append(("average", "solver='gd' or 'nesterov' (or partial_fit)"))
    if estimator.tol is None and not estimator.early_stopping:
        unused.append(("n_iter_no_change", "tol or early_stopping"))
    where = f" with solver={solver!r}{' in partial_fit' if partial else ''}"
    reasons = [(name, f"{where}; it needs {needs}") for name, needs in unused]
    if hasattr(estimator, "n_jobs"):
        reasons.append(("n_jobs", "; the parallelism is the Dask cluster's"))
    return reasons


def check_partial_fit(estimator: Any) -> None:
    """scikit-learn's refusal of parameters ``partial_fit`` cannot honour."""
    if estimator.early_stopping:
        raise ValueError("early_stopping should be False with partial_fit")


def check_fit_kind(estimator: Any, *, partial: bool) -> None:
    """scikit-learn's checks that depend on fit or partial_fit, and its warnings."""
    if partial:
        check_partial_fit(estimator)
    if estimator.power_t < 0:
        warn_from_caller(
            "Negative values for `power_t` are deprecated in version 1.8 "
            "and will raise an error in 1.10. "
            "Use values in the range [0.0, inf) instead.",
            FutureWarning,
        )
