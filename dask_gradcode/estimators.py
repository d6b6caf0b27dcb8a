"""scikit-learn estimators trained by coded gradient descent on a Dask cluster.

The front-end only: input validation, classes, cluster resolution and the
solver call.  The coded rounds come from :mod:`dask_gradcode.scheduler`, the
codes from :mod:`dask_gradcode.codes` (by name), the optimisation loops from
:mod:`dask_gradcode.solvers`.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from dask import is_dask_collection as _is_dask
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from dask_gradcode.codes import SCHEMES, make_code
from dask_gradcode.objectives import (
    OneVsRest,
    Softmax,
    get_objective,
    make_penalty,
)
from dask_gradcode.scheduler import (
    CodedGradient,
    DecodingAccuracyWarning,
    NoWorkersError,
    client_for_fit,
    n_cluster_workers,
)
from dask_gradcode.solvers import LEARNING_RATES, SOLVERS, minimize

__all__ = ["CodedSGDClassifier", "CodedSGDRegressor"]

CLASSIFICATION_LOSSES = ("log_loss", "hinge", "modified_huber", "squared_hinge")
REGRESSION_LOSSES = ("squared_error", "huber", "epsilon_insensitive")


class _CodedSGD(BaseEstimator):
    """Shared fit machinery; see the public classes for the parameters."""

    _losses: tuple[str, ...] = ()

    def __init__(
        self,
        loss: str,
        *,
        penalty: str | None = "l2",
        alpha: float = 1e-4,
        l1_ratio: float = 0.15,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float | None = 1e-6,
        n_iter_no_change: int = 5,
        solver: str = "lbfgs",
        learning_rate: str = "auto",
        eta0: float = 0.01,
        power_t: float = 0.25,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        epsilon: float = 0.1,
        warm_start: bool = False,
        random_state: int | None = None,
        verbose: int = 0,
        scheme: str = "auto",
        n_workers: int | None = None,
        n_stragglers: int | None = None,
        comm_reduction: int = 1,
        straggler_model: Any = None,
        scheduler_address: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.solver = solver
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.epsilon = epsilon
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.scheme = scheme
        self.n_workers = n_workers
        self.n_stragglers = n_stragglers
        self.comm_reduction = comm_reduction
        self.straggler_model = straggler_model
        self.scheduler_address = scheduler_address
        self.batch_size = batch_size

    # ------------------------------------------------------------ validation
    def _check_params(self) -> None:
        """Raise a clear ValueError for an invalid hyper-parameter."""
        if self.loss not in self._losses:
            raise ValueError(
                f"The loss {self.loss!r} is not supported; choose one of "
                f"{list(self._losses)}"
            )
        choices = {
            "penalty": (("l2", "l1", "elasticnet", None), self.penalty),
            "solver": (SOLVERS, self.solver),
            "learning_rate": (LEARNING_RATES, self.learning_rate),
            "scheme": (SCHEMES, self.scheme),
        }
        for name, (allowed, value) in choices.items():
            if value not in allowed:
                raise ValueError(
                    f"{name} must be one of {list(allowed)}, got {value!r}"
                )
        if self.scheme == "linear":
            raise ValueError(
                "scheme='linear' needs a generator matrix; build the code with "
                "dask_gradcode.make_code and use CodedGradient directly"
            )
        positive = {
            "max_iter": self.max_iter,
            "n_iter_no_change": self.n_iter_no_change,
        }
        for name, value in positive.items():
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.alpha, numbers.Real) and self.alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        if not 0 <= self.l1_ratio <= 1:
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if self.tol is not None and not self.tol >= 0:
            raise ValueError(f"tol must be >= 0 or None, got {self.tol!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        if self.batch_size is not None:
            if not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1:
                raise ValueError(
                    f"batch_size must be an integer >= 1 or None, got {self.batch_size!r}"
                )
            if self.solver != "gd" or self.learning_rate == "auto":
                raise ValueError(
                    "batch_size (coded mini-batches) needs solver='gd' with a "
                    "learning_rate schedule ('constant', 'optimal', 'invscaling' or "
                    "'adaptive'): line searches and L-BFGS need exact objective values"
                )
        if (
            self.solver == "lbfgs"
            and self.penalty in ("l1", "elasticnet")
            and self.alpha > 0
        ):
            raise ValueError(
                f"solver='lbfgs' needs a smooth penalty, got penalty={self.penalty!r}; "
                "use solver='nesterov' or solver='gd'"
            )

    def _validate(self, X: Any, y: Any, reset: bool) -> tuple[Any, Any]:
        if _is_dask(X) or _is_dask(y):
            if X.ndim != 2:
                raise ValueError(f"Expected 2D array, got {X.ndim}D array instead")
            if reset:
                self.n_features_in_ = int(X.shape[1])
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input"
                )
            return X, y
        return validate_data(
            self,
            X,
            y,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            reset=reset,
            y_numeric=not isinstance(self, ClassifierMixin),
        )

    def _sample_weight(self, sample_weight: Any, X: Any) -> Any:
        """scikit-learn's checked weights; dask weights stay as they are."""
        return sample_weight if _is_dask(X) else _check_sample_weight(sample_weight, X)

    def _hold_out(self, X: Any, targets: Any, weights: Any, *, stratify: bool) -> tuple:
        """Split off ``validation_fraction`` for early stopping.

        Returns ``(X, targets, weights, X_val, targets_val)``.
        """
        if _is_dask(X):
            raise ValueError("early_stopping needs NumPy or SciPy input, not dask")
        if weights is None:
            weights = np.ones(X.shape[0])
        X, X_val, targets, targets_val, weights, _ = train_test_split(
            X,
            targets,
            weights,
            test_size=self.validation_fraction,
            random_state=self.random_state,
            stratify=targets if stratify else None,
        )
        return X, targets, weights, X_val, targets_val

    # ------------------------------------------------------------------- fit
    #: Learned attributes a fresh (not warm-started) fit forgets.
    _learned: tuple[str, ...] = ("coef_", "intercept_")

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _CodedSGD:
        """Fit on ``X, y`` (NumPy, SciPy sparse, pandas or dask).

        Returns
        -------
        self : object
        """
        self._check_params()
        self._partial = False
        if not self.warm_start:
            for attribute in self._learned:
                self.__dict__.pop(attribute, None)
        return self._fit(X, y, sample_weight, self.max_iter, reset=True)

    def _objective(self, n_targets: int) -> Any:
        loss = (
            get_objective(self.loss, epsilon=self.epsilon)
            if self.loss in ("huber", "epsilon_insensitive")
            else get_objective(self.loss)
        )
        if n_targets == 1:
            return loss
        if getattr(self, "multi_class", "ovr") == "multinomial":
            return Softmax(n_targets)
        return OneVsRest(loss, n_targets)

    def _run(
        self,
        X: Any,
        targets: Any,
        sample_weight: Any,
        n_targets: int,
        max_iter: int,
        validation: tuple | None = None,
    ) -> None:
        """Minimise the mean loss plus penalty by coded rounds; set coef_."""
        n_coef_rows = self.n_features_in_ + int(self.fit_intercept)
        mask = np.ones((n_coef_rows, n_targets), dtype=bool)
        if self.fit_intercept:
            mask[-1] = False
        penalty = make_penalty(self.penalty, self.alpha, self.l1_ratio, mask.ravel())
        total_weight = (
            float(sample_weight.sum().compute())
            if _is_dask(sample_weight)
            else float(np.sum(sample_weight))
            if sample_weight is not None
            else float(X.shape[0])
        )
        if not total_weight > 0:
            raise ValueError("sample_weight must have a positive sum")
        start = self._initial_coef(n_coef_rows, n_targets)
        objective = self._objective(n_targets)
        with client_for_fit(self.n_workers, self.scheduler_address) as client:
            n_workers = self.n_workers or n_cluster_workers(client)
            code = self._code(n_workers)
            with CodedGradient(
                client,
                code,
                X,
                targets,
                objective,
                sample_weight=sample_weight,
                straggler_model=self.straggler_model,
                fit_intercept=self.fit_intercept,
            ) as coded:
                fraction = (
                    None
                    if self.batch_size is None
                    else min(1.0, self.batch_size / X.shape[0])
                )
                seed = self.random_state if isinstance(self.random_state, int) else 0

                def mean_loss(w: np.ndarray) -> tuple[float, np.ndarray]:
                    loss, gradient = coded(w, batch_fraction=fraction, batch_seed=seed)
                    return loss / total_weight, gradient / total_weight

                monitor = _Monitor(self, coded, validation, n_targets, max_iter)
                try:
                    result = minimize(
                        mean_loss,
                        start,
                        penalty=penalty,
                        solver=self.solver,
                        max_iter=max_iter,
                        tol=self.tol,
                        n_iter_no_change=self.n_iter_no_change,
                        learning_rate=self.learning_rate,
                        eta0=self.eta0,
                        power_t=self.power_t,
                        callback=monitor,
                    )
                except NoWorkersError as error:
                    self._keep_last_iterate(monitor, start, n_coef_rows, n_targets)
                    raise NoWorkersError(
                        f"{error}. The last iterate (after {len(monitor.history)} "
                        "iterations) is kept in coef_ and intercept_; fit again with "
                        "warm_start=True once the cluster has workers to continue"
                    ) from error
                finally:
                    monitor.close()
                _warn_about_accuracy(code, coded.history)
        coef = (monitor.best if monitor.best is not None else result.coef).reshape(
            n_coef_rows, n_targets
        )
        self._set_coef(coef)
        self.n_iter_ = result.n_iter
        self.objective_ = result.objective
        self.code_ = code
        self.history_ = monitor.history
        if not result.converged and max_iter > 1 and self.tol is not None:
            warnings.warn(
                f"{type(self).__name__} did not converge in max_iter={max_iter} "
                "iterations; increase max_iter or tol",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _keep_last_iterate(
        self, monitor: Any, start: np.ndarray, n_rows: int, n_targets: int
    ) -> None:
        """The optimisation state when the cluster failed: the last iterate."""
        last = monitor.last if monitor.last is not None else start
        self._set_coef(np.asarray(last).reshape(n_rows, n_targets))
        self.n_iter_ = len(monitor.history)

    def _code(self, n_workers: int) -> Any:
        stragglers = (
            min(1, n_workers - 1) if self.n_stragglers is None else self.n_stragglers
        )
        return make_code(
            self.scheme,
            n_workers,
            stragglers,
            self.comm_reduction,
            random_state=self.random_state,
        )

    def _initial_coef(self, n_rows: int, n_targets: int) -> np.ndarray:
        """The current model as a start (warm start, partial_fit), else zeros."""
        if hasattr(self, "coef_") and (
            self.warm_start or getattr(self, "_partial", False)
        ):
            coef = np.atleast_2d(self.coef_).T
            if self.fit_intercept:
                coef = np.vstack([coef, np.atleast_2d(self.intercept_)])
            if coef.shape == (n_rows, n_targets):
                return coef.ravel()
        return np.zeros(n_rows * n_targets)

    def _set_coef(self, coef: np.ndarray) -> None:
        weights = coef[:-1] if self.fit_intercept else coef
        intercept = coef[-1] if self.fit_intercept else np.zeros(coef.shape[1])
        self.coef_ = weights.T.copy()
        self.intercept_ = intercept.copy()

    def _scores(self, X: Any) -> np.ndarray:
        """Linear scores: ``X @ coef_.T + intercept_``."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        scores = np.asarray(X @ np.atleast_2d(self.coef_).T) + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _warn_about_accuracy(code: Any, history: list) -> None:
    """Say when rounds had to wait for workers to decode accurately."""
    waited = sum(record.waited_for_accuracy for record in history)
    if waited:
        warnings.warn(
            f"{waited} of {len(history)} rounds waited for more workers: the first "
            f"workers to answer could not decode to rtol={code.rtol:g} with the "
            f"{code.scheme!r} code ({code.describe()}); scheme='auto' picks a "
            "scheme that decodes accurately at this size",
            DecodingAccuracyWarning,
            stacklevel=4,
        )


class _Monitor:
    """Solver callback: history, progress bar, early stopping."""

    def __init__(self, estimator, coded, validation, n_targets, max_iter) -> None:
        self.estimator = estimator
        self.coded = coded
        self.validation = validation
        self.n_targets = n_targets
        self.history: list[dict[str, Any]] = []
        self.best: np.ndarray | None = None
        self.last: np.ndarray | None = None
        self.best_score = -np.inf
        self.no_improvement = 0
        self.bar = None
        if estimator.verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=max_iter, desc=type(estimator).__name__, unit="it")

    def __call__(self, iteration: int, w: np.ndarray, objective: float) -> bool:
        self.last = w.copy()
        record = self.coded.history[-1].as_dict() if self.coded.history else {}
        self.history.append({"iteration": iteration, "objective": objective, **record})
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{objective:.4g}", stragglers=len(record.get("stragglers", ()))
            )
        if self.validation is None:
            return False
        X_val, y_val = self.validation
        estimator = self.estimator
        estimator._set_coef(w.reshape(-1, self.n_targets))
        score = estimator.score(X_val, y_val)
        tol = estimator.tol or 0.0
        if score > self.best_score + tol:
            self.best_score, self.best, self.no_improvement = score, w.copy(), 0
        else:
            self.no_improvement += 1
        return self.no_improvement >= estimator.n_iter_no_change

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _label_counts(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distinct labels and their counts.

    Dask labels are counted block by block on the cluster: only the counts
    come back to the client.
    """
    if not _is_dask(y):
        return np.unique(y, return_counts=True)
    import dask

    parts = dask.compute(
        *(
            dask.delayed(np.unique)(block, return_counts=True)
            for block in y.to_delayed().ravel()
        )
    )
    labels = np.concatenate([values for values, _ in parts])
    counts = np.concatenate([numbers for _, numbers in parts])
    present, slots = np.unique(labels, return_inverse=True)
    return present, np.bincount(slots.ravel(), weights=counts).astype(np.int64)


def _class_weights(class_weight, classes, present, counts) -> np.ndarray:
    """Per-class weights from counts (so dask labels need not be collected)."""
    if class_weight == "balanced":
        full = np.zeros(len(classes))
        full[np.searchsorted(classes, present)] = counts
        if np.any(full == 0):
            raise ValueError("class_weight='balanced' needs every class present in y")
        return full.sum() / (len(classes) * full)
    return compute_class_weight(class_weight, classes=classes, y=present)


class CodedSGDClassifier(ClassifierMixin, _CodedSGD):
    """Linear classifier trained by coded gradient descent on a Dask cluster.

    A drop-in for :class:`sklearn.linear_model.SGDClassifier` that computes
    the full gradient with a gradient code, so up to ``n_stragglers`` slow or
    dead workers never hold up an iteration.  Minimises the mean loss over
    the (weighted) samples plus ``alpha`` times the penalty, as SGDClassifier
    does; with ``penalty="l2"`` and ``loss="log_loss"`` that is
    :class:`~sklearn.linear_model.LogisticRegression` with
    ``C = 1 / (alpha * n_samples)``.

    Parameters
    ----------
    loss : {"log_loss", "hinge", "modified_huber", "squared_hinge"}, default="hinge"
    penalty : {"l2", "l1", "elasticnet"} or None, default="l2"
    alpha : float, default=1e-4
    l1_ratio : float, default=0.15
    fit_intercept : bool, default=True
    max_iter : int, default=1000
        Solver iterations at most (each one or more coded rounds).
    tol : float or None, default=1e-6
        Relative improvement below which the solver counts an iteration as
        stalled (see :func:`dask_gradcode.solvers.minimize`).
    n_iter_no_change : int, default=5
    solver : {"lbfgs", "gd", "nesterov"}, default="lbfgs"
        ``"lbfgs"`` needs a smooth penalty (``"l2"`` or None).
    learning_rate : {"auto", "constant", "optimal", "invscaling", "adaptive"}, default="auto"
        Step schedule of ``solver="gd"``; ``"auto"`` is a line search.
    eta0 : float, default=0.01
    power_t : float, default=0.25
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (NumPy input) and stop
        when its accuracy stops improving for ``n_iter_no_change`` iterations.
    validation_fraction : float, default=0.1
    class_weight : dict, "balanced" or None, default=None
    multi_class : {"ovr", "multinomial"}, default="ovr"
        ``"multinomial"`` (softmax) needs ``loss="log_loss"``.
    warm_start : bool, default=False
    random_state : int or None, default=None
        Seeds the code's random construction and the validation split.
    verbose : int, default=0
        A tqdm progress bar with the loss and stragglers per iteration.
    scheme : str, default="auto"
        A scheme of :func:`dask_gradcode.make_code`.  ``"auto"`` picks, for
        the cluster's size, the exact scheme with the least load whose decode
        is verified to reach ``rtol = 1e-8`` (fractional repetition when
        ``n_stragglers + 1`` divides the number of workers and
        ``comm_reduction == 1``, else the Gaussian MDS code); the fitted
        ``code_`` says which and why.
    n_workers : int, optional
        Workers the code uses; default: every worker of the cluster (with no
        client, of the process's embedded in-process cluster: one worker per
        core, at least 4; see :func:`dask_gradcode.close_embedded_cluster`).
    n_stragglers : int, optional
        Default: 1 (0 on a one-worker cluster).
    comm_reduction : int, default=1
    straggler_model : object, optional
        Injected delays, see :mod:`dask_gradcode.stragglers`.
    scheduler_address : str, optional
        Address of a Dask scheduler to use instead of the current client.
    batch_size : int, optional
        Coded mini-batches: each round uses about ``batch_size`` rows, each
        row drawn by a hash of its index, ``random_state`` and the round (so
        every worker holding it agrees and the decode stays exact for the
        batch), rescaled to an unbiased estimate of the full gradient.  Needs ``solver="gd"`` with a ``learning_rate``
        schedule.  None (default): the full gradient.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray of shape (n_classes,)
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has feature names.
    history_ : list of dict
        Per solver iteration: the objective and the last coded round's
        metrics (see :class:`dask_gradcode.scheduler.RoundRecord`).
    code_ : GradientCode
        The code used.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from dask_gradcode import CodedSGDClassifier
    >>> X, y = make_classification(random_state=0)
    >>> clf = CodedSGDClassifier(loss="log_loss", random_state=0).fit(X, y)  # doctest: +SKIP
    """

    _losses = CLASSIFICATION_LOSSES
    _learned = ("coef_", "intercept_", "classes_")

    def __init__(
        self,
        loss: str = "hinge",
        *,
        penalty: str | None = "l2",
        alpha: float = 1e-4,
        l1_ratio: float = 0.15,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float | None = 1e-6,
        n_iter_no_change: int = 5,
        solver: str = "lbfgs",
        learning_rate: str = "auto",
        eta0: float = 0.01,
        power_t: float = 0.25,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        class_weight: Any = None,
        multi_class: str = "ovr",
        warm_start: bool = False,
        random_state: int | None = None,
        verbose: int = 0,
        scheme: str = "auto",
        n_workers: int | None = None,
        n_stragglers: int | None = None,
        comm_reduction: int = 1,
        straggler_model: Any = None,
        scheduler_address: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(
            loss,
            penalty=penalty,
            alpha=alpha,
            l1_ratio=l1_ratio,
            fit_intercept=fit_intercept,
            max_iter=max_iter,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            solver=solver,
            learning_rate=learning_rate,
            eta0=eta0,
            power_t=power_t,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            scheme=scheme,
            n_workers=n_workers,
            n_stragglers=n_stragglers,
            comm_reduction=comm_reduction,
            straggler_model=straggler_model,
            scheduler_address=scheduler_address,
            batch_size=batch_size,
        )
        self.class_weight = class_weight
        self.multi_class = multi_class

    def _check_params(self) -> None:
        super()._check_params()
        if self.multi_class not in ("ovr", "multinomial"):
            raise ValueError(
                f"multi_class must be 'ovr' or 'multinomial', got {self.multi_class!r}"
            )
        if self.multi_class == "multinomial" and self.loss != "log_loss":
            raise ValueError("multi_class='multinomial' needs loss='log_loss'")

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> CodedSGDClassifier:
        """One solver iteration on ``X, y``, starting from the current model.

        ``classes`` is required on the first call.

        Returns
        -------
        self : object
        """
        self._check_params()
        first = not hasattr(self, "classes_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        self._partial = True
        return self._fit(X, y, sample_weight, 1, reset=first, classes=classes)

    def _fit(
        self, X, y, sample_weight, max_iter, *, reset, classes=None
    ) -> CodedSGDClassifier:
        X, y = self._validate(X, y, reset=reset)
        if hasattr(y, "to_dask_array"):  # a dask series
            y = y.to_dask_array(lengths=True)
        present, counts = _label_counts(y)
        check_classification_targets(present)
        if classes is not None:
            self.classes_ = np.unique(classes)
        elif reset or not hasattr(self, "classes_"):
            self.classes_ = present
        if len(self.classes_) < 2:
            raise ValueError(
                "The number of classes has to be greater than one; got "
                f"{len(self.classes_)} class"
            )
        if not np.isin(present, self.classes_).all():
            raise ValueError(f"y has labels that are not in classes_ {self.classes_}")
        classes_ = self.classes_
        labels = (
            y.map_blocks(
                lambda b: np.searchsorted(classes_, b).astype(np.float64),
                dtype=np.float64,
            )
            if _is_dask(y)
            else np.searchsorted(classes_, y).astype(np.float64)
        )
        weights = self._sample_weight(sample_weight, X)
        if self.class_weight is not None:
            per_class = _class_weights(self.class_weight, classes_, present, counts)
            factor = (
                labels.map_blocks(
                    lambda b: per_class[b.astype(np.intp)], dtype=np.float64
                )
                if _is_dask(labels)
                else per_class[labels.astype(np.intp)]
            )
            weights = factor if weights is None else weights * factor
        n_targets = 1 if len(self.classes_) == 2 else len(self.classes_)
        validation = None
        if self.early_stopping:
            X, labels, weights, X_val, val_labels = self._hold_out(
                X, labels, weights, stratify=True
            )
            validation = (X_val, self.classes_[val_labels.astype(np.intp)])
        self._run(X, labels, weights, n_targets, max_iter, validation)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Confidence scores: ``X @ coef_.T + intercept_``.

        One column per class, or one score (for ``classes_[1]``) when binary.
        """
        return self._scores(X)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class of each row."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(np.intp)]
        return self.classes_[scores.argmax(axis=1)]

    def _has_proba(self) -> bool:
        return self.loss in ("log_loss", "modified_huber")

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (``log_loss`` and ``modified_huber`` only)."""
        scores = self.decision_function(X)
        if self.loss == "log_loss":
            if scores.ndim == 1:
                positive = expit(scores)
                return np.column_stack([1 - positive, positive])
            if self.multi_class == "multinomial":
                return softmax(scores, axis=1)
            probabilities = expit(scores)
        else:
            probabilities = (np.clip(scores, -1, 1) + 1) / 2
            if scores.ndim == 1:
                return np.column_stack([1 - probabilities, probabilities])
        totals = probabilities.sum(axis=1, keepdims=True)
        uniform = np.full_like(probabilities, 1 / probabilities.shape[1])
        return np.divide(probabilities, totals, out=uniform, where=totals > 0)

    @available_if(_has_proba)
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class CodedSGDRegressor(RegressorMixin, _CodedSGD):
    """Linear regressor trained by coded gradient descent on a Dask cluster.

    A drop-in for :class:`sklearn.linear_model.SGDRegressor`.  Minimises the
    mean loss plus ``alpha`` times the penalty; with ``loss="squared_error"``
    (half the squared error) and ``penalty="l2"`` that is
    :class:`~sklearn.linear_model.Ridge` with ``alpha_ridge = alpha * n_samples``
    and the same intercept.

    The parameters other than ``loss`` and ``epsilon`` are those of
    :class:`CodedSGDClassifier` (without ``class_weight`` and ``multi_class``).

    Parameters
    ----------
    loss : {"squared_error", "huber", "epsilon_insensitive"}, default="squared_error"
    epsilon : float, default=0.1
        Width of the ``huber`` and ``epsilon_insensitive`` zones.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : ndarray of shape (1,)
    n_iter_, n_features_in_, feature_names_in_, history_, code_
        As :class:`CodedSGDClassifier`.
    """

    _losses = REGRESSION_LOSSES

    def __init__(
        self,
        loss: str = "squared_error",
        *,
        penalty: str | None = "l2",
        alpha: float = 1e-4,
        l1_ratio: float = 0.15,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float | None = 1e-6,
        n_iter_no_change: int = 5,
        solver: str = "lbfgs",
        learning_rate: str = "auto",
        eta0: float = 0.01,
        power_t: float = 0.25,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        epsilon: float = 0.1,
        warm_start: bool = False,
        random_state: int | None = None,
        verbose: int = 0,
        scheme: str = "auto",
        n_workers: int | None = None,
        n_stragglers: int | None = None,
        comm_reduction: int = 1,
        straggler_model: Any = None,
        scheduler_address: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(
            loss,
            penalty=penalty,
            alpha=alpha,
            l1_ratio=l1_ratio,
            fit_intercept=fit_intercept,
            max_iter=max_iter,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            solver=solver,
            learning_rate=learning_rate,
            eta0=eta0,
            power_t=power_t,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            epsilon=epsilon,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            scheme=scheme,
            n_workers=n_workers,
            n_stragglers=n_stragglers,
            comm_reduction=comm_reduction,
            straggler_model=straggler_model,
            scheduler_address=scheduler_address,
            batch_size=batch_size,
        )

    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None
    ) -> CodedSGDRegressor:
        """One solver iteration on ``X, y``, starting from the current model.

        Returns
        -------
        self : object
        """
        self._check_params()
        self._partial = True
        return self._fit(X, y, sample_weight, 1, reset=not hasattr(self, "coef_"))

    def _fit(self, X, y, sample_weight, max_iter, *, reset) -> CodedSGDRegressor:
        X, y = self._validate(X, y, reset=reset)
        weights = self._sample_weight(sample_weight, X)
        validation = None
        if self.early_stopping:
            X, y, weights, X_val, y_val = self._hold_out(X, y, weights, stratify=False)
            validation = (X_val, y_val)
        self._run(X, y, weights, 1, max_iter, validation)
        return self

    def _set_coef(self, coef: np.ndarray) -> None:
        super()._set_coef(coef)
        self.coef_ = self.coef_.ravel()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted value of each row."""
        return self._scores(X)
