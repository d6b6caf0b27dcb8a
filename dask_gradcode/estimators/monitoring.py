"""Watching a fit: history, progress, early stopping, averaging, warnings."""

from __future__ import annotations

from typing import Any

import numpy as np

from dask_gradcode.scheduler import DecodingAccuracyWarning
from dask_gradcode.warn import warn_from_caller

__all__ = ["Monitor", "warn_about_accuracy", "warn_from_caller"]


def warn_about_accuracy(code: Any, history: list) -> None:
    """Say when rounds had to wait for workers to decode accurately."""
    waited = sum(record.waited_for_accuracy for record in history)
    if waited:
        warn_from_caller(
            f"{waited} of {len(history)} rounds waited for more workers: the first "
            f"workers to answer could not decode to rtol={code.rtol:g} with the "
            f"{code.scheme!r} code ({code.describe()}); scheme='auto' picks a "
            "scheme that decodes accurately at this size",
            DecodingAccuracyWarning,
        )


class Monitor:
    """Solver callback: history, progress bar, early stopping, averaged iterates.

    Parameters
    ----------
    estimator : the estimator being fitted
    coded : CodedGradient
    validation : (X_val, y_val, sample_weight_val) or None
        Early stopping on the estimator's ``score`` of the held-out rows.
    n_targets : int
    max_iter : int
    t0 : int
        The schedule's step counter at the first iteration (``t_``).
    average : bool or int
        Average the iterates (from step ``average`` on for an int).
    averaged : tuple, optional
        ``(mean, count)`` carried over from an earlier ``partial_fit``.
    expand : callable, optional
        Maps an iterate to the estimator's full coefficient vector (a fit on
        the used columns of wide sparse input solves a smaller problem,
        :mod:`~dask_gradcode.estimators.columns`); default: the identity.
    """

    def __init__(
        self,
        estimator: Any,
        coded: Any,
        validation: tuple | None,
        n_targets: int,
        max_iter: int,
        *,
        t0: int = 1,
        average: bool | int = False,
        averaged: tuple | None = None,
        expand: Any = None,
    ) -> None:
        self.estimator = estimator
        self._expand = expand
        self.coded = coded
        self.validation = validation
        self.n_targets = n_targets
        self.t0 = t0
        self.start = 1 if average is True else int(average) if average else 0
        self.mean, self.count = averaged if averaged is not None else (None, 0)
        self.history: list[dict[str, Any]] = []
        self.last: np.ndarray | None = None
        self.best_score = -np.inf
        self.no_improvement = 0
        self.bar = None
        if estimator.verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=max_iter, desc=type(estimator).__name__, unit="it")

    def __call__(self, iteration: int, w: np.ndarray, objective: float) -> bool:
        """Record iteration ``iteration``; True stops the solver (early stopping)."""
        self.last = w.copy()
        t = self.t0 + iteration - 1
        if self.start and t >= self.start:
            self.count += 1
            self.mean = w.copy() if self.mean is None else self.mean
            self.mean += (w - self.mean) / self.count
        record = self.coded.history[-1].as_dict() if self.coded.history else {}
        self.history.append({"iteration": iteration, "objective": objective, **record})
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{objective:.4g}", stragglers=len(record.get("stragglers", ()))
            )
        if self.validation is None:
            return False
        X_val, y_val, w_val = self.validation
        estimator = self.estimator
        estimator._set_coef(self.full(self.current(w)).reshape(-1, self.n_targets))
        score = estimator.score(X_val, y_val, sample_weight=w_val)
        tol = estimator.tol if estimator.tol is not None else -np.inf
        if score > self.best_score + tol:
            self.best_score, self.no_improvement = score, 0
        else:
            self.no_improvement += 1
        self.best_score = max(self.best_score, score)
        return self.no_improvement >= estimator.n_iter_no_change

    def full(self, w: np.ndarray) -> np.ndarray:
        """``w`` as the estimator's full coefficient vector."""
        return w if self._expand is None else self._expand(w)

    def current(self, w: np.ndarray) -> np.ndarray:
        """The model at iterate ``w``: the averaged iterate once averaging began."""
        return self.mean if self.mean is not None else w

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()
