"""``CodedSGDRegressor``: scikit-learn's ``SGDRegressor``, trained by coded rounds."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import RegressorMixin

from dask_gradcode.estimators.base import CodedSGD
from dask_gradcode.estimators.inputs import as_dask_rows, is_dask
from dask_gradcode.estimators.transactions import all_or_nothing
from dask_gradcode.objectives import OBJECTIVES, Objective, get_objective

__all__ = ["CodedSGDRegressor"]

REGRESSION_LOSSES = (
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
)


class CodedSGDRegressor(RegressorMixin, CodedSGD):
    """Linear regressor trained by coded gradient descent on a Dask cluster.

    A drop-in for :class:`sklearn.linear_model.SGDRegressor`: the same
    parameters with the same defaults and the same objective (the mean over
    the samples of the sample-weighted loss plus ``alpha`` times the
    penalty).  With ``loss="squared_error"`` (half the squared error) and
    ``penalty="l2"`` the optimum is :class:`~sklearn.linear_model.Ridge`'s
    with ``alpha_ridge = alpha * n_samples`` and the same intercept.

    The parameters are those of :class:`CodedSGDClassifier` without
    ``class_weight``, ``multi_class`` and ``n_jobs``, and with these defaults:

    Parameters
    ----------
    loss : {"squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"}, default="squared_error"
    epsilon : float, default=0.1
        Width of the ``huber`` and ``*epsilon_insensitive`` zones.
    learning_rate : str, default="invscaling"
        As :class:`CodedSGDClassifier` (``solver="gd"`` and ``partial_fit``).
    eta0 : float, default=0.01
    power_t : float, default=0.25

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : ndarray of shape (1,)
    n_iter_, t_, n_features_in_, feature_names_in_, objective_, history_, code_, rounds_, fit_profile_
        As :class:`CodedSGDClassifier`.
    """

    _losses = REGRESSION_LOSSES
    #: The losses it accepts, each with the objective that computes it (the
    #: class attribute scikit-learn's SGDRegressor has by this name).
    loss_functions: ClassVar[dict[str, type[Objective]]] = {
        name: OBJECTIVES[name] for name in REGRESSION_LOSSES
    }

    def __init__(
        self,
        loss: str = "squared_error",
        *,
        penalty: str | None = "l2",
        alpha: float = 1e-4,
        l1_ratio: float | None = 0.15,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float | None = 1e-3,
        shuffle: bool = True,
        verbose: int = 0,
        epsilon: float = 0.1,
        random_state: Any = None,
        learning_rate: str = "invscaling",
        eta0: float = 0.01,
        power_t: float = 0.25,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        warm_start: bool = False,
        average: bool | int = False,
        solver: str = "auto",
        scheme: str = "auto",
        n_workers: int | None = None,
        n_stragglers: int | str = "auto",
        comm_reduction: int = 1,
        straggler_model: Any = None,
        scheduler_address: str | None = None,
        batch_size: int | None = None,
        policy: str = "static",
        transport: str | None = None,
        audit_every: int | None = None,
    ) -> None:
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.average = average
        self.solver = solver
        self.scheme = scheme
        self.n_workers = n_workers
        self.n_stragglers = n_stragglers
        self.comm_reduction = comm_reduction
        self.straggler_model = straggler_model
        self.scheduler_address = scheduler_address
        self.batch_size = batch_size
        self.policy = policy
        self.transport = transport
        self.audit_every = audit_every

    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None
    ) -> CodedSGDRegressor:
        """One pass over ``X, y``: one gradient step from the current model.

        The step follows the ``learning_rate`` schedule, continuing from
        ``t_``; the batch is placed once per call on the same cluster.

        Returns
        -------
        self : object
        """
        self._check_params()
        self._warn_ineffective(partial=True)
        first = not hasattr(self, "coef_")
        with all_or_nothing(self, keep_last_iterate=True):
            if first:
                self.t_ = 1
            return self._fit(X, y, sample_weight, 1, reset=first, partial=True)

    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        max_iter: int,
        *,
        reset: bool,
        partial: bool = False,
    ) -> CodedSGDRegressor:
        with self._client() as client, self._on_cluster(client):
            X, y = self._validate(X, y, reset=reset)
            weights = self._sample_weight(sample_weight, X)
            validation = None
            if self.early_stopping and not partial:
                X, y, weights, X_val, y_val, w_val = self._hold_out(
                    X, y, weights, stratify=False
                )
                validation = (X_val, y_val, w_val)
            if self.loss == "squared_error":
                objective = get_objective(self.loss)
            else:
                objective = get_objective(self.loss, epsilon=self.epsilon)
            self._run(
                client,
                X,
                y,
                weights,
                objective,
                1,
                max_iter,
                partial=partial,
                validation=validation,
            )
        return self

    def _set_coef(self, coef: np.ndarray) -> None:
        super()._set_coef(coef)
        self.coef_ = self.coef_.ravel()

    def predict(self, X: Any) -> Any:
        """Predicted value of each row (a lazy dask array for dask ``X``)."""
        return self._scores(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R^2 (computed on the cluster for dask input)."""
        if not (is_dask(X) or is_dask(y)):
            return super().score(X, y, sample_weight)
        predicted = self.predict(X)
        truth = as_dask_rows(y, "y") if is_dask(y) else np.asarray(y)
        weights = 1.0 if sample_weight is None else sample_weight
        total = (weights * truth).sum() / (weights * (truth * 0 + 1)).sum()
        residual = (weights * (truth - predicted) ** 2).sum()
        spread = (weights * (truth - total) ** 2).sum()
        return float((1 - residual / spread).compute())
