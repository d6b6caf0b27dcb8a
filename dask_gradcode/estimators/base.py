"""The fit loop both estimators share: parameters, inputs, the coded solver run.

A fit minimises scikit-learn's SGD objective,

    (1 / n_samples) * sum_i sample_weight_i * loss(x_i, y_i) + alpha * penalty(w),

by full-gradient steps whose gradients are coded rounds on a Dask cluster
(:class:`~dask_gradcode.scheduler.CodedGradient`), with a solver of
:mod:`dask_gradcode.solvers`.  The estimators know no coding math: they ask
:func:`~dask_gradcode.codes.make_code` for a code by name.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from dask_gradcode.autocode import AutoCode
from dask_gradcode.codes import SCHEMES, GradientCode, make_code
from dask_gradcode.continuation import minimize_smoothed
from dask_gradcode.estimators.choices import (
    check_fit_kind,
    default_workers,
    fit_solver,
    has_l1,
    ineffective,
    init_defaults,
    smooths_kinks,
)
from dask_gradcode.estimators.columns import UsedColumns
from dask_gradcode.estimators.inputs import (
    as_dask_rows,
    is_dask,
    lazy_rows,
    stored_elements,
)
from dask_gradcode.estimators.monitoring import (
    Monitor,
    warn_about_accuracy,
    warn_from_caller,
)
from dask_gradcode.estimators.transactions import all_or_nothing, keep_last_iterate
from dask_gradcode.objectives import ElasticNet, make_penalty
from dask_gradcode.scheduler import (
    CodedGradient,
    NoWorkersError,
    WorkerMemoryError,
    client_for_fit,
    n_cluster_workers,
)
from dask_gradcode.scheduler.clients import warn_if_leaving_its_client
from dask_gradcode.scheduler.plans import make_policy
from dask_gradcode.scheduler.settings import RunSettings
from dask_gradcode.scheduler.transports import check_transport
from dask_gradcode.solvers import (
    LEARNING_RATES,
    SOLVERS,
    LossAndGradient,
    SolverResult,
    minimize,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["CodedSGD", "LinearModel"]


class LinearModel(BaseEstimator):
    """A fitted linear model: ``coef_``, ``intercept_`` and the scores they give.

    Scores are computed here for NumPy and SciPy input and lazily, block by
    block, for dask input; the estimators turn them into predictions.
    """

    def _set_coef(self, coef: np.ndarray) -> None:
        weights = coef[:-1] if self.fit_intercept else coef
        intercept = coef[-1] if self.fit_intercept else np.zeros(coef.shape[1])
        # scikit-learn's dtypes: coef_ follows X (float32 in, float32 out; the
        # rounds compute in float64), intercept_ is float64.
        self.coef_ = weights.T.astype(getattr(self, "_coef_dtype", np.float64))
        self.intercept_ = intercept.copy()

    def _check_n_features_dask(self, X: Any, reset: bool) -> None:
        if reset:
            self.n_features_in_ = int(X.shape[1])
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input"
            )

    def _scores(self, X: Any) -> Any:
        """Linear scores ``X @ coef_.T + intercept_`` (lazy for dask input)."""
        check_is_fitted(self)
        if is_dask(X):
            self._check_n_features_dask(X, reset=False)
            targets = np.size(self.intercept_)
            model = self._fitted_copy()
            return lazy_rows(X, model._dense_scores, None if targets == 1 else targets)
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        return self._dense_scores(X)

    def _dense_scores(self, X: Any) -> np.ndarray:
        coef = self.coef_
        product = X @ (coef.T.toarray() if _is_sparse(coef) else coef.T)
        scores = np.asarray(product) + self.intercept_
        return scores.ravel() if scores.ndim == 2 and scores.shape[1] == 1 else scores

    def _fitted_copy(self) -> Self:
        """A small copy for the workers: parameters and fitted arrays only."""
        copy = object.__new__(type(self))
        copy.__dict__.update(
            {
                key: value
                for key, value in self.__dict__.items()
                if key not in ("history_", "rounds_", "code_", "_iterate", "_averaged")
            }
        )
        return copy

    def densify(self) -> Self:
        """Convert ``coef_`` to a dense array (the default)."""
        check_is_fitted(self)
        if _is_sparse(self.coef_):
            self.coef_ = self.coef_.toarray()
        return self

    def sparsify(self) -> Self:
        """Convert ``coef_`` to a sparse matrix (cheaper for mostly-zero, l1 models)."""
        check_is_fitted(self)
        self.coef_ = scipy.sparse.csr_matrix(self.coef_)
        return self


class CodedSGD(LinearModel):
    """Shared fit machinery; see the public classes for the parameters."""

    _losses: tuple[str, ...] = ()

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
            "solver": (("auto", *SOLVERS), self.solver),
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
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.n_workers is not None and (
            not _is_int(self.n_workers) or self.n_workers < 1
        ):
            raise ValueError(
                "n_workers must be None (every worker of the cluster) or an "
                f"integer >= 1, got {self.n_workers!r}"
            )
        if not (
            _same(self.n_stragglers, "auto")
            or (_is_int(self.n_stragglers) and self.n_stragglers >= 0)
        ):
            raise ValueError(
                "n_stragglers must be 'auto' (measure the workers, code only "
                f"where it pays) or an integer >= 0, got {self.n_stragglers!r}"
            )
        if not _is_int(self.comm_reduction) or self.comm_reduction < 1:
            raise ValueError(
                f"comm_reduction must be an integer >= 1, got {self.comm_reduction!r}"
            )
        for name in ("alpha", "eta0", "power_t"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.alpha < 0 or self.eta0 < 0:
            raise ValueError("alpha and eta0 must be >= 0")
        if self.l1_ratio is None:
            if self.penalty == "elasticnet":  # scikit-learn's rule and message
                raise ValueError("l1_ratio must be set when penalty is 'elasticnet'")
        elif not 0 <= self.l1_ratio <= 1:
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if self.tol is not None and not self.tol >= 0:
            raise ValueError(f"tol must be >= 0 or None, got {self.tol!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        if not (self.epsilon >= 0 and np.isfinite(self.epsilon)):
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon!r}")
        if not isinstance(self.average, bool) and (
            not _is_int(self.average) or self.average < 1
        ):
            raise ValueError(
                f"average must be a bool or an integer >= 1, got {self.average!r}"
            )
        # Checked where the scheduler makes them, with the same messages.
        if self.n_stragglers == "auto":
            self._code(1, seed=0)  # the scheme and comm_reduction it may grow
        make_policy(self.policy)
        check_transport(self.transport)
        RunSettings.check(audit_every=self.audit_every)
        if self.batch_size is not None:
            if not _is_int(self.batch_size) or self.batch_size < 1:
                raise ValueError(
                    f"batch_size must be an integer >= 1 or None, got {self.batch_size!r}"
                )
            if fit_solver(self) != "gd" or self.learning_rate == "auto":
                raise ValueError(
                    "batch_size (coded mini-batches) needs solver='gd' with a "
                    "learning_rate schedule ('constant', 'optimal', 'invscaling' or "
                    "'adaptive'): line searches and L-BFGS need exact objective values"
                )
        if self.solver == "lbfgs" and has_l1(self):
            raise ValueError(
                f"solver='lbfgs' needs a smooth penalty, got penalty={self.penalty!r}; "
                "use solver='auto' (OWL-QN for l1 and elasticnet), 'owlqn', "
                "'nesterov' or 'gd'"
            )

    def _warn_ineffective(self, *, partial: bool) -> None:
        """Warn about each parameter set away from its default that does nothing here."""
        check_fit_kind(self, partial=partial)
        defaults = init_defaults(type(self))
        for name, reason in ineffective(self, partial=partial):
            value = getattr(self, name)
            if not _same(value, defaults[name]):
                warn_from_caller(f"{name}={value!r} has no effect{reason}", UserWarning)

    def _validate(self, X: Any, y: Any, reset: bool) -> tuple[Any, Any]:
        """Checked ``X, y``: scikit-learn's checks, or dask rows for dask input."""
        if is_dask(X) or is_dask(y):
            if len(X.shape) != 2:
                raise ValueError(
                    f"Expected 2D array, got {len(X.shape)}D array instead"
                )
            self._check_n_features_dask(X, reset)
            if reset and hasattr(X, "columns"):
                self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            checked = as_dask_rows(X, "X"), as_dask_rows(y, "y")
        else:
            checked = validate_data(
                self,
                X,
                y,
                accept_sparse="csr",
                dtype=[np.float64, np.float32],
                reset=reset,
                y_numeric=not isinstance(self, ClassifierMixin),
            )
        if reset or not hasattr(self, "_coef_dtype"):
            dtype = getattr(checked[0], "dtype", None)
            self._coef_dtype = np.float32 if dtype == np.float32 else np.float64
        return checked

    def _sample_weight(self, sample_weight: Any, X: Any) -> Any:
        """scikit-learn's checked weights; dask weights stay on the cluster."""
        if is_dask(X) or is_dask(sample_weight):
            return None if sample_weight is None else as_dask_rows(sample_weight, "w")
        if sample_weight is None:
            return None
        # As scikit-learn: with early stopping, all-zero weights are left to
        # the validation split's more telling error.
        return _check_sample_weight(
            sample_weight, X, allow_all_zero_weights=bool(self.early_stopping)
        )

    def _hold_out(self, X: Any, targets: Any, weights: Any, *, stratify: bool) -> tuple:
        """Split off ``validation_fraction`` for early stopping.

        Returns ``(X, targets, weights, X_val, targets_val, weights_val)``;
        the validation score weighs its rows as the loss does, and all-zero
        validation weights are scikit-learn's error.
        """
        if is_dask(X):
            raise ValueError(
                "early_stopping holds out rows on the client: it needs NumPy, "
                "SciPy or pandas input, not dask (hold out a validation set and "
                "stop on its score yourself, or set early_stopping=False)"
            )
        if weights is None:
            weights = np.ones(X.shape[0])
        # scikit-learn's split (its tests compare against it): the same
        # splitter and random_state, and the rows kept in their order.
        splitter = StratifiedShuffleSplit if stratify else ShuffleSplit
        cv = splitter(
            test_size=self.validation_fraction, random_state=self.random_state
        )
        train, held = next(cv.split(np.zeros((X.shape[0], 1)), targets))
        train, held = np.sort(train), np.sort(held)
        if not np.any(weights[held]):
            raise ValueError(
                "The sample weights for validation set are all zero, consider using a"
                " different random state."
            )
        X, X_val = X[train], X[held]
        targets, targets_val = targets[train], targets[held]
        weights, weights_val = weights[train], weights[held]
        return X, targets, weights, X_val, targets_val, weights_val

    # ------------------------------------------------------------------- fit
    #: Learned attributes a fresh (not warm-started) fit forgets.
    _learned: tuple[str, ...] = ("coef_", "intercept_", "_iterate", "_averaged")

    def fit(
        self,
        X: Any,
        y: Any,
        coef_init: Any = None,
        intercept_init: Any = None,
        sample_weight: Any = None,
    ) -> CodedSGD:
        """Fit on ``X, y`` (NumPy, SciPy sparse, pandas or dask).

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array, dask dataframe} of shape (n_samples, n_features)
        y : array-like or dask array/series of shape (n_samples,)
        coef_init : ndarray, optional
            Initial coefficients (warm start from them).
        intercept_init : ndarray, optional
            Initial intercept.
        sample_weight : array-like or dask array of shape (n_samples,), optional
            Multiplies each sample's loss (not the penalty).

        Returns
        -------
        self : object
        """
        self._check_params()
        self._warn_ineffective(partial=False)
        with all_or_nothing(self, keep_last_iterate=bool(self.warm_start)):
            if not self.warm_start or coef_init is not None:
                for attribute in self._learned:
                    self.__dict__.pop(attribute, None)
            self._init = (coef_init, intercept_init)
            self.t_ = 1
            return self._fit(X, y, sample_weight, self.max_iter, reset=True)

    def _run(
        self,
        client: Any,
        X: Any,
        targets: Any,
        sample_weight: Any,
        objective: Any,
        n_targets: int,
        max_iter: int,
        *,
        partial: bool,
        validation: tuple | None = None,
    ) -> None:
        """Minimise the SGD objective by coded rounds; set the fitted attributes."""
        shape = (self.n_features_in_ + int(self.fit_intercept), n_targets)
        start = self._initial_coef(*shape)
        columns = (
            None
            if partial
            else UsedColumns.of(
                X, start, intercept=self.fit_intercept, n_targets=n_targets
            )
        )
        solved_shape = shape
        if columns is not None:  # solve on the used columns of wide sparse X
            X, start, solved_shape = (
                columns.compact(X),
                columns.compress(start),
                columns.shape,
            )
        penalty = self._penalty(*solved_shape)
        n_samples = int(X.shape[0])
        began = time.perf_counter()
        n_workers = self.n_workers or default_workers(
            n_cluster_workers(client), stored_elements(X), self.n_stragglers
        )
        t0 = int(getattr(self, "t_", 1))
        coded = CodedGradient(
            client,
            self._code(n_workers),
            X,
            targets,
            objective,
            sample_weight=sample_weight,
            straggler_model=self.straggler_model,
            fit_intercept=self.fit_intercept,
            policy=self.policy,
            transport=self.transport,
            audit_every=self.audit_every,
        )
        planned = time.perf_counter()
        with coded:
            placed = time.perf_counter()
            mean_loss = self._mean_loss(coded, n_samples)
            monitor = Monitor(
                self,
                coded,
                validation,
                n_targets,
                max_iter,
                t0=t0,
                average=False
                if fit_solver(self) in ("lbfgs", "owlqn") and not partial
                else self.average,
                averaged=getattr(self, "_averaged", None),
                expand=None if columns is None else columns.expand,
            )
            result = self._solve(
                mean_loss, start, penalty, monitor, shape, max_iter, t0, partial
            )
            solved = time.perf_counter()
            code = coded.code
            warn_about_accuracy(code, coded.history)
        closed = time.perf_counter()
        self.fit_profile_ = _fit_profile(
            coded.history, result.n_iter, began, planned, placed, solved, closed
        )
        self._set_fitted(result, monitor, coded, code, shape)
        self.solver_ = self._steps(partial)[0]
        if not partial and not result.converged and self.tol is not None:
            warn_from_caller(  # scikit-learn's words: its tests match them
                "Maximum number of iteration reached before convergence. "
                "Consider increasing max_iter to improve the fit.",
                ConvergenceWarning,
            )

    def _penalty(self, n_coef_rows: int, n_targets: int) -> ElasticNet:
        """The fit's penalty; the intercept row (the last, if any) is not penalised."""
        mask = np.ones((n_coef_rows, n_targets), dtype=bool)
        if self.fit_intercept:
            mask[-1] = False
        # l1_ratio=None is only allowed where it is not used (not elasticnet).
        l1_ratio = 0.0 if self.l1_ratio is None else self.l1_ratio
        return make_penalty(self.penalty, self.alpha, l1_ratio, mask.ravel())

    def _mean_loss(
        self, coded: CodedGradient, n_samples: int
    ) -> Callable[[float], LossAndGradient]:
        """The mean loss and its gradient by coded rounds, for a smoothing width.

        The function of ``width`` gives the loss with its kinks rounded off
        over that width (0: the loss itself), on mini-batches if asked.
        """
        fraction = (
            None if self.batch_size is None else min(1.0, self.batch_size / n_samples)
        )
        seed = _seed(self.random_state)
        shuffle = bool(self.shuffle)

        def smoothed(width: float) -> LossAndGradient:
            def mean_loss(w: np.ndarray) -> tuple[float, np.ndarray]:
                loss, gradient = coded(
                    w,
                    batch_fraction=fraction,
                    batch_seed=seed,
                    batch_shuffle=shuffle,
                    smoothing=width,
                )
                return loss / n_samples, gradient / n_samples

            return mean_loss

        return smoothed

    def _solve(
        self,
        mean_loss: Callable[[float], LossAndGradient],
        start: np.ndarray,
        penalty: ElasticNet,
        monitor: Monitor,
        shape: tuple[int, int],
        max_iter: int,
        t0: int,
        partial: bool,
    ) -> SolverResult:
        """Run the solver; if the cluster is lost, keep the last iterate and say so."""
        solver, learning_rate, eta0 = self._steps(partial)
        common: dict[str, Any] = {
            "penalty": penalty,
            "solver": solver,
            "max_iter": max_iter,
            "tol": None if partial else self.tol,
            "n_iter_no_change": self.n_iter_no_change,
            "callback": monitor,
            "invalidations": lambda: monitor.coded.faults_found,
        }
        try:
            if smooths_kinks(solver, monitor.coded.objective.kinked, partial=partial):
                return minimize_smoothed(mean_loss, start, **common)
            return minimize(
                mean_loss(0.0),
                start,
                learning_rate=learning_rate,
                eta0=eta0,
                power_t=self.power_t,
                t0=t0,
                **common,
            )
        except (NoWorkersError, WorkerMemoryError) as error:
            keep_last_iterate(self, monitor, start, *shape)
            self.solver_ = solver
            raise type(error)(
                f"{error} (after {len(monitor.history)} iterations)"
            ) from error
        finally:
            monitor.close()

    def _set_fitted(
        self,
        result: SolverResult,
        monitor: Monitor,
        coded: CodedGradient,
        code: Any,
        shape: tuple[int, int],
    ) -> None:
        """The fitted attributes of a finished run."""
        iterate = result.coef  # the last iterate, early stopping too (scikit-learn's)
        self._iterate = monitor.full(iterate).copy()
        mean = None if monitor.mean is None else monitor.full(monitor.mean)
        self._averaged = (mean, monitor.count) if monitor.start else None
        self._set_coef(monitor.full(monitor.current(iterate)).reshape(shape))
        self.n_iter_ = result.n_iter
        self.t_ = result.t
        self.objective_ = result.objective
        self.code_ = code
        self.history_ = monitor.history
        self.rounds_ = list(coded.history)

    def _steps(self, partial: bool) -> tuple[str, str, float]:
        """``(solver, learning_rate, eta0)`` of the run.

        ``partial_fit`` takes one step of the schedule.  The perceptron's loss
        is minimised by ``w = 0`` (line searches and L-BFGS stay there), so it
        is trained as the batch perceptron: constant steps.
        """
        if self.loss == "perceptron":
            constant = self.learning_rate in ("optimal", "auto")
            return (
                "gd",
                "constant" if constant else self.learning_rate,
                1.0 if constant else self.eta0,
            )
        if partial:
            return "gd", self.learning_rate, self.eta0
        return fit_solver(self), self.learning_rate, self.eta0

    def _code(self, n_workers: int, seed: int | None = None) -> GradientCode | AutoCode:
        """The code, or with ``n_stragglers="auto"`` what the run chooses from.

        ``seed`` (default: drawn from ``random_state``) lets a check build it
        without drawing from the caller's RandomState.
        """
        seed = _seed(self.random_state) if seed is None else seed
        if self.n_stragglers == "auto":
            return AutoCode(
                scheme=self.scheme,
                n_workers=n_workers,
                comm_reduction=self.comm_reduction,
                policy=self.policy if isinstance(self.policy, str) else "static",
                random_state=seed,
            )
        return make_code(
            self.scheme,
            n_workers,
            self.n_stragglers,
            self.comm_reduction,
            random_state=seed,
        )

    def _initial_coef(self, n_rows: int, n_targets: int) -> np.ndarray:
        """The start: coef_init/intercept_init, the current model, or zeros."""
        coef_init, intercept_init = getattr(self, "_init", (None, None))
        self._init = (None, None)
        if coef_init is not None or intercept_init is not None:
            coef = np.zeros((n_rows, n_targets))
            if coef_init is not None:
                coef[: self.n_features_in_] = _checked_coef_init(
                    coef_init, n_targets, self.n_features_in_
                ).T
            if intercept_init is not None:
                given = np.asarray(intercept_init, dtype=np.float64)
                allowed = {(n_targets,)} | ({()} if n_targets == 1 else set())
                if given.shape not in allowed:
                    # scikit-learn's message (its tests match it)
                    raise ValueError("Provided intercept_init does not match dataset.")
                if self.fit_intercept:
                    coef[-1] = given.reshape(n_targets)
            return coef.ravel()
        iterate = getattr(self, "_iterate", None)
        if iterate is not None and iterate.size == n_rows * n_targets:
            return iterate.copy()
        return np.zeros(n_rows * n_targets)

    def _client(self):
        """The fit's client (context manager) and dask's scheduler set to it."""
        return client_for_fit(self.n_workers, self.scheduler_address)

    @staticmethod
    def _on_cluster(client: Any):
        """Dask computations in this block run on ``client``'s cluster."""
        return dask.config.set(scheduler=client)

    def __getstate__(self) -> dict[str, Any]:
        warn_if_leaving_its_client(type(self).__name__, self.scheduler_address)
        return super().__getstate__()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _checked_coef_init(coef_init: Any, n_targets: int, n_features: int) -> np.ndarray:
    """``coef_init`` as ``(n_targets, n_features)``, or scikit-learn's error.

    One target (binary classification, regression) takes any shape of
    ``n_features`` values, as scikit-learn's ravel does; several classes take
    exactly ``(n_classes, n_features)``.
    """
    given = np.asarray(coef_init, dtype=np.float64)
    if n_targets == 1:
        if given.size != n_features:
            raise ValueError("Provided coef_init does not match dataset.")
        return given.reshape(1, n_features)
    if given.shape != (n_targets, n_features):
        raise ValueError("Provided ``coef_`` does not match dataset. ")
    return given


def _fit_profile(
    history: Sequence[Any],
    n_iter: int,
    began: float,
    planned: float,
    placed: float,
    solved: float,
    closed: float,
) -> dict[str, float]:
    """Where a fit's time went, from the run's clock readings and its rounds."""
    rounds = sum(record.wall_seconds for record in history)
    return {
        "code_seconds": planned - began,
        "placement_seconds": placed - planned,
        "round_seconds": rounds,
        "decode_seconds": sum(r.decode_seconds for r in history),
        "solver_seconds": solved - placed - rounds,
        "close_seconds": closed - solved,
        "rounds": len(history),
        "iterations": n_iter,
    }


def _is_sparse(coef: Any) -> bool:
    """Whether ``coef_`` is a SciPy sparse matrix (after :meth:`CodedSGD.sparsify`).

    ``scipy.sparse.issparse`` as a plain bool: its stubs narrow to an abstract
    base without ``T`` or ``toarray``.
    """
    return scipy.sparse.issparse(coef)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default) and type(value) is type(default)
    except (TypeError, ValueError):
        return False


def _seed(random_state: Any) -> int:
    """An int seed from None, an int (NumPy's too) or a RandomState.

    None draws from NumPy's global random state, as scikit-learn's
    ``check_random_state(None)`` does: fresh randomness for each fit unless
    ``np.random.seed`` fixed it.
    """
    if random_state is None:
        return int(check_random_state(None).randint(np.iinfo(np.int32).max))
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    raise ValueError(
        f"random_state must be None, an int or a RandomState, got {random_state!r}"
    )
