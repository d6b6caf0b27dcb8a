"""``CodedSGDClassifier``: scikit-learn's ``SGDClassifier``, trained by coded rounds."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets

from dask_gradcode.estimators.base import CodedSGD
from dask_gradcode.estimators.choices import check_partial_fit
from dask_gradcode.estimators.inputs import (
    as_dask_rows,
    class_weights,
    is_dask,
    label_counts,
    lazy_rows,
)
from dask_gradcode.estimators.transactions import all_or_nothing
from dask_gradcode.objectives import (
    OBJECTIVES,
    Objective,
    OneVsRest,
    SignedTargets,
    Softmax,
    get_objective,
)

__all__ = ["CodedSGDClassifier"]

CLASSIFICATION_LOSSES = (
    "hinge",
    "log_loss",
    "modified_huber",
    "squared_hinge",
    "perceptron",
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
)
_REGRESSION_LOSSES = (
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
)


class CodedSGDClassifier(ClassifierMixin, CodedSGD):
    """Linear classifier trained by coded gradient descent on a Dask cluster.

    A drop-in for :class:`sklearn.linear_model.SGDClassifier`: the same
    parameters with the same defaults, the same objective — the mean over the
    samples of the (sample-weighted) loss plus ``alpha`` times the penalty —
    and the same one-vs-rest treatment of several classes, minimised by
    full-gradient steps whose gradients are computed with a gradient code, so
    up to ``n_stragglers`` slow or dead workers never hold up an iteration.
    By default (``n_stragglers="auto"``) a fit pays for no redundancy until
    the workers' measured round times say a code pays.
    With ``penalty="l2"`` and ``loss="log_loss"`` the optimum is
    :class:`~sklearn.linear_model.LogisticRegression`'s with
    ``C = 1 / (alpha * n_samples)`` (sample weights included).

    Parameters
    ----------
    loss : str, default="hinge"
        ``"hinge"``, ``"log_loss"``, ``"modified_huber"``,
        ``"squared_hinge"``, ``"perceptron"``, or a regression loss
        (``"squared_error"``, ``"huber"``, ``"epsilon_insensitive"``,
        ``"squared_epsilon_insensitive"``) fitted to targets -1 and +1, as
        scikit-learn does.  The perceptron's loss is minimised by ``w = 0``,
        so ``"perceptron"`` is trained as the batch perceptron whatever the
        solver: full-gradient steps of ``learning_rate="constant"`` with step
        ``eta0`` (1 when ``learning_rate`` is ``"optimal"`` or ``"auto"``).
    penalty : {"l2", "l1", "elasticnet"} or None, default="l2"
    alpha : float, default=1e-4
        Strength of the penalty.
    l1_ratio : float or None, default=0.15
        Share of l1 in ``"elasticnet"``; None is allowed with the other
        penalties (it is not used there), as in scikit-learn.
    fit_intercept : bool, default=True
        The intercept is not penalised.
    max_iter : int, default=1000
        Passes over the data at most: each iteration is one full-gradient step
        (one or, with a line search, a few coded rounds).
    tol : float or None, default=1e-3
        scikit-learn's stopping rule on the objective: stop once it has not
        dropped below ``best - tol`` for ``n_iter_no_change`` iterations in a
        row (on the validation score with ``early_stopping``).  None: run
        ``max_iter`` iterations.
    shuffle : bool, default=True
        Only with ``batch_size``: random mini-batches (True) or the rows in
        order (False).  A full-gradient step has no order to shuffle; setting
        it to False without ``batch_size`` warns.
    verbose : int, default=0
        A tqdm progress bar with the objective and stragglers per iteration.
    epsilon : float, default=0.1
        Width of the ``huber`` and ``*epsilon_insensitive`` zones.
    n_jobs : None, default=None
        No effect (it warns when set): the parallelism is the Dask cluster's
        workers.
    random_state : int, RandomState or None, default=None
        Seeds the code's random construction, the mini-batches and the
        early-stopping split.  None is scikit-learn's: fresh randomness from
        NumPy's global random state (fixed by ``np.random.seed``).
    learning_rate : {"optimal", "constant", "invscaling", "adaptive", "auto"}, default="optimal"
        The step schedule of ``solver="gd"`` and of ``partial_fit``, with
        scikit-learn's formulas, ``t`` counting full-gradient steps (where
        scikit-learn's SGD counts samples); ``"auto"`` is a backtracking line
        search.  ``"optimal"`` takes large first steps on a full gradient:
        prefer ``"auto"`` with ``solver="gd"``.  No effect with the other
        solvers (it warns when set).
    eta0 : float, default=0.01
        Initial step of ``"constant"``, ``"invscaling"``, ``"adaptive"``.
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (not dask input) and stop
        when its accuracy (weighted by the rows' sample weights) has not
        improved by ``tol`` for ``n_iter_no_change`` iterations; as in
        scikit-learn, the last model is kept.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=5
    class_weight : dict, "balanced" or None, default=None
        As scikit-learn applies it: with two classes each sample weighs its
        class's weight; with more, problem ``k`` of one-vs-rest weighs class
        ``k``'s samples by ``class_weight[k]`` and the others by 1.
    warm_start : bool, default=False
        Start ``fit`` from the current model.
    average : bool or int, default=False
        Return the average of the iterates (from step ``average`` on for an
        int) with ``solver="gd"``, ``"nesterov"`` and in ``partial_fit``
        (carried across calls).
    solver : {"auto", "lbfgs", "owlqn", "gd", "nesterov"}, default="auto"
        ``"auto"``: ``"gd"`` (the ``learning_rate`` schedule, full-gradient
        steps) when ``learning_rate``, or ``eta0`` or ``power_t`` where the
        default schedule uses them, is set away from its default, or
        ``batch_size`` is set, ``"owlqn"`` for ``"l1"`` and ``"elasticnet"``,
        ``"lbfgs"`` otherwise; the fitted ``solver_`` says which ran.
        ``"lbfgs"`` needs a smooth penalty (``"l2"`` or None); ``"owlqn"`` is
        orthant-wise L-BFGS (Spark MLlib's l1 solver: exact zeros at
        quasi-Newton speed); ``"gd"`` is proximal gradient descent with
        ``learning_rate``; ``"nesterov"`` is accelerated proximal gradient.
    multi_class : {"ovr", "multinomial"}, default="ovr"
        ``"multinomial"`` (softmax) needs ``loss="log_loss"``.
    scheme : str, default="auto"
        A scheme of :func:`dask_gradcode.make_code`.  ``"auto"`` picks, for
        the cluster's size, the exact scheme with the least load whose decode
        is verified to reach ``rtol = 1e-8``; the fitted ``code_`` says which
        and why.
    n_workers : int, optional
        Workers the code uses; default: every worker of the cluster (with no
        client, of the process's embedded in-process cluster: one worker per
        core, at least 4; see :func:`dask_gradcode.close_embedded_cluster`),
        except for small data with ``n_stragglers`` ``"auto"`` or 0: one
        worker per 2^18 stored elements of ``X``, at least one (each worker
        costs every round a message).
    n_stragglers : int or "auto", default="auto"
        Slow or dead workers a round can skip.  ``"auto"``: start uncoded (no
        redundant computation), measure every worker's round times, and
        grow a code of ``scheme`` (placed in the background while the rounds
        go on) when replaying the measured rounds predicts that it is at
        least 10% faster per iteration and repays its placement
        (:mod:`dask_gradcode.autocode`).  A cluster's measurements are
        remembered in this process, so a later fit on the same workers starts
        with the code they call for.  The embedded in-process cluster (no
        client) never codes under ``"auto"``: its workers stall together.
        ``code_`` says what was chosen and why.  An int: that code, always.
    comm_reduction : int, default=1
    straggler_model : object, optional
        Injected delays, see :mod:`dask_gradcode.stragglers`.
    scheduler_address : str, optional
        Address of a Dask scheduler to use instead of the current client.
    batch_size : int, optional
        Coded mini-batches: each round uses about ``batch_size`` rows, each
        row drawn by a hash of its index, ``random_state`` and the round (so
        every worker holding it agrees and the decode stays exact for the
        batch), rescaled to an unbiased estimate of the full gradient.  Needs
        ``solver="gd"`` with a ``learning_rate`` schedule.  None (default):
        the full gradient.
    policy : {"static", "adaptive", "speculative"}, default="static"
        What each round computes (see
        :class:`~dask_gradcode.scheduler.CodedGradient`): ``"static"`` runs
        the code every round; ``"adaptive"`` chooses each round between the
        code and a split round balanced to the measured worker speeds, with
        speculative backups, from the round times it measures;
        ``"speculative"`` always splits.  The gradient is exact either way.
    transport : {"direct", "futures"}, optional
        How rounds reach the workers; None (default): Dask's configuration
        value ``gradcode.transport``, else ``"direct"`` (see
        :class:`~dask_gradcode.scheduler.CodedGradient`): ``"direct"``, calls
        to one Dask actor per worker over the client's own connections, the
        scheduler off the round's path (several times lower latency per
        round); ``"futures"``, one pinned Dask task per worker per round
        through the scheduler, shown in the dashboard's task stream.
    audit_every : int, optional
        Off by default.  Every ``audit_every`` th round that no spare reply
        verified (every round of an uncoded plan, which has nothing to
        compare), the client recomputes one worker's reply from the rows it
        holds and drops that worker if the reply is wrong (see
        :class:`~dask_gradcode.scheduler.CodedGradient`); NumPy, SciPy and
        pandas input.  Coded rounds check their spare replies whatever this
        says.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray of shape (n_classes,)
    n_iter_ : int
        Iterations of the last ``fit`` (passes over the data).
    t_ : int
        Full-gradient steps taken plus one (``partial_fit`` continues the
        schedule from it).  scikit-learn's SGD counts samples instead.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has feature names.
    objective_ : float
        The objective at the returned model.
    history_ : list of dict
        Per iteration: the objective and the round's metrics (see
        :class:`dask_gradcode.scheduler.RoundRecord`).
    code_ : GradientCode
        The code of the last round (its ``repr`` says what ``scheme="auto"``
        and ``n_stragglers="auto"`` chose, and why).
    rounds_ : list of RoundRecord
        Every round of the last fit (line-search rounds included), for
        :func:`dask_gradcode.plot_rounds`.
    fit_profile_ : dict
        Where the last fit's time went: ``code_seconds`` (building the code),
        ``placement_seconds`` (placing the data on the workers),
        ``round_seconds`` (the coded rounds, ``decode_seconds`` of it),
        ``solver_seconds`` (the solver between rounds), ``close_seconds``,
        and the counts of ``rounds`` and ``iterations``.
    """

    _losses = CLASSIFICATION_LOSSES
    #: The losses it accepts, each with the objective that computes it (the
    #: class attribute scikit-learn's SGDClassifier has by this name).
    loss_functions: ClassVar[dict[str, type[Objective]]] = {
        name: OBJECTIVES[name] for name in CLASSIFICATION_LOSSES
    }

    def __init__(
        self,
        loss: str = "hinge",
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
        n_jobs: int | None = None,
        random_state: Any = None,
        learning_rate: str = "optimal",
        eta0: float = 0.01,
        power_t: float = 0.5,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        class_weight: Any = None,
        warm_start: bool = False,
        average: bool | int = False,
        solver: str = "auto",
        multi_class: str = "ovr",
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
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.average = average
        self.solver = solver
        self.multi_class = multi_class
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

    def _check_params(self) -> None:
        super()._check_params()
        if self.multi_class not in ("ovr", "multinomial"):
            raise ValueError(
                f"multi_class must be 'ovr' or 'multinomial', got {self.multi_class!r}"
            )
        if self.multi_class == "multinomial" and self.loss != "log_loss":
            raise ValueError("multi_class='multinomial' needs loss='log_loss'")

    # ------------------------------------------------------------------- fit
    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> CodedSGDClassifier:
        """One pass over ``X, y``: one gradient step from the current model.

        As scikit-learn's: ``classes`` (every label ``y`` may ever hold) is
        required on the first call and must not change afterwards; the step
        follows the ``learning_rate`` schedule, continuing from ``t_``;
        ``class_weight="balanced"`` is refused (it needs all the data).  The
        batch is placed on the cluster once per call; the cluster (the
        current client's, or the embedded one) is the same across calls.

        Returns
        -------
        self : object
        """
        self._check_params()
        check_partial_fit(self)  # before the classes, as scikit-learn
        if self.class_weight == "balanced":
            raise ValueError(  # scikit-learn's words: its tests match them
                "class_weight 'balanced' is not supported for partial_fit. In order "
                "to use 'balanced' weights, use compute_class_weight('balanced', "
                "classes=classes, y=y). In place of y you can use a large enough "
                "sample of the full training set target to properly estimate the "
                "class frequency distributions. Pass the resulting weights as the "
                "class_weight parameter."
            )
        first = not hasattr(self, "classes_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        if (
            not first
            and classes is not None
            and not np.array_equal(np.unique(classes), self.classes_)
        ):
            raise ValueError(
                f"classes={np.unique(classes).tolist()} is not the same as on "
                f"the first call to partial_fit ({self.classes_.tolist()})"
            )
        self._warn_ineffective(partial=True)
        with all_or_nothing(self, keep_last_iterate=True):
            if first:
                self.t_ = 1
            return self._fit(
                X, y, sample_weight, 1, reset=first, classes=classes, partial=True
            )

    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        max_iter: int,
        *,
        reset: bool,
        classes: Any = None,
        partial: bool = False,
    ) -> CodedSGDClassifier:
        with self._client() as client, self._on_cluster(client):
            X, y = self._validate(X, y, reset=reset)
            present, counts = label_counts(y)
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
                raise ValueError(
                    f"y has labels {np.setdiff1d(present, self.classes_).tolist()} "
                    f"that are not in classes_ {self.classes_.tolist()}"
                )
            classes_ = self.classes_
            labels = (
                y.map_blocks(
                    lambda b: np.searchsorted(classes_, b).astype(np.float64),
                    dtype=np.float64,
                )
                if is_dask(y)
                else np.searchsorted(classes_, y).astype(np.float64)
            )
            weights = self._sample_weight(sample_weight, X)
            n_targets = 1 if len(classes_) == 2 else len(classes_)
            per_class = None
            if self.class_weight is not None:
                per_class = class_weights(self.class_weight, classes_, present, counts)
            if per_class is not None and (
                n_targets == 1 or self.multi_class == "multinomial"
            ):
                # Two classes (and softmax): each sample weighs its class's weight.
                table = per_class  # bound now: the dask blocks run later
                factor = (
                    labels.map_blocks(
                        lambda b, table=table: table[b.astype(np.intp)],
                        dtype=np.float64,
                    )
                    if is_dask(labels)
                    else table[labels.astype(np.intp)]
                )
                weights = factor if weights is None else weights * factor
                per_class = None
            validation = None
            if self.early_stopping and not partial:
                X, labels, weights, X_val, val_labels, val_weights = self._hold_out(
                    X, labels, weights, stratify=True
                )
                validation = (
                    X_val,
                    classes_[val_labels.astype(np.intp)],
                    val_weights,
                )
            objective = self._objective(n_targets, per_class)
            self._run(
                client,
                X,
                labels,
                weights,
                objective,
                n_targets,
                max_iter,
                partial=partial,
                validation=validation,
            )
        return self

    def _objective(self, n_targets: int, per_class: Any) -> Any:
        if self.loss in ("huber", "epsilon_insensitive", "squared_epsilon_insensitive"):
            binary = get_objective(self.loss, epsilon=self.epsilon)
        else:
            binary = get_objective(self.loss)
        if self.loss in _REGRESSION_LOSSES:
            binary = SignedTargets(binary)
        if n_targets == 1:
            return binary
        if self.multi_class == "multinomial":
            return Softmax(n_targets)
        return OneVsRest(binary, n_targets, class_weights=per_class)

    # -------------------------------------------------------------- predict
    def decision_function(self, X: Any) -> Any:
        """Confidence scores: ``X @ coef_.T + intercept_``.

        One column per class, or one score (for ``classes_[1]``) when binary.
        A dask ``X`` gives a lazy dask array, computed block by block.
        """
        return self._scores(X)

    def predict(self, X: Any) -> Any:
        """Predicted class of each row (a lazy dask array for dask ``X``)."""
        if is_dask(X):
            return lazy_rows(X, self._fitted_copy()._predict_block, None)
        return self._predict_block(X)

    def _predict_block(self, X: Any) -> np.ndarray:
        scores = self._scores(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(np.intp)]
        return self.classes_[scores.argmax(axis=1)]

    def _has_proba(self) -> bool:
        if self.loss not in ("log_loss", "modified_huber"):
            # scikit-learn's: available_if chains it as the cause
            raise AttributeError(
                f"probability estimates are not available for loss={self.loss!r}"
            )
        return True

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> Any:
        """Class probabilities (``log_loss`` and ``modified_huber`` only)."""
        if is_dask(X):
            return lazy_rows(X, self._fitted_copy()._proba_block, len(self.classes_))
        return self._proba_block(X)

    def _proba_block(self, X: Any) -> np.ndarray:
        scores = self._scores(X)
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
    def predict_log_proba(self, X: Any) -> Any:
        """Log of :meth:`predict_proba`."""
        probabilities = self.predict_proba(X)
        if is_dask(probabilities):
            import dask.array as da

            return da.log(probabilities)
        with np.errstate(divide="ignore"):
            return np.log(probabilities)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy (computed on the cluster for dask input)."""
        if not (is_dask(X) or is_dask(y)):
            return super().score(X, y, sample_weight)
        predicted = self.predict(X)
        truth = as_dask_rows(y, "y") if is_dask(y) else np.asarray(y)
        correct = predicted == truth
        if sample_weight is None:
            return float(correct.mean().compute())
        weights = sample_weight
        return float(((correct * weights).sum() / weights.sum()).compute())
