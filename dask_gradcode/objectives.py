"""Losses and penalties of linear models: values, gradients, proximal steps.

Pure numpy/scipy.  Every objective works on a linear score ``z = X @ W``
(``W`` is the coefficient vector, or for :class:`Softmax` a
``(n_features, n_classes)`` matrix stored flat) and returns the loss **summed
over rows** (weighted by ``sample_weight``) with its gradient in ``W``.  ``X``
may be a dense array or a scipy sparse matrix.

Classification losses take labels in ``{0, 1}`` (``Softmax``: ``0..K-1``);
margin losses use ``t = 2 y - 1`` internally, as scikit-learn's SGD does.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from scipy.special import expit, log_expit, logsumexp

__all__ = [
    "OBJECTIVES",
    "ElasticNet",
    "EpsilonInsensitive",
    "Hinge",
    "Huber",
    "LogLoss",
    "ModifiedHuber",
    "Objective",
    "OneVsRest",
    "Perceptron",
    "SignedTargets",
    "Softmax",
    "SquaredEpsilonInsensitive",
    "SquaredError",
    "SquaredHinge",
    "WithIntercept",
    "get_objective",
    "make_penalty",
]


class WithIntercept:
    """``X`` with a column of ones appended, without a copy of ``X``.

    Stands in for ``np.hstack([X, ones])`` (or its sparse counterpart)
    wherever an objective uses its design matrix: ``X @ coef`` (the last
    coefficient, or the last row of a coefficient matrix, is the intercept)
    and ``X.T @ slopes`` (the intercept's gradient is the slopes' sum).  A
    worker stores its rows once and wraps them each round; the wrapper costs
    nothing to build.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_rows, n_features)

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> (WithIntercept(X) @ np.array([1.0, 1.0, 10.0])).tolist()
    [13.0, 17.0]
    >>> (WithIntercept(X).T @ np.array([1.0, 1.0])).tolist()
    [4.0, 6.0, 2.0]
    """

    __slots__ = ("X", "shape")

    def __init__(self, X: Any) -> None:
        self.X = X
        self.shape = (X.shape[0], X.shape[1] + 1)

    def __matmul__(self, coef: np.ndarray) -> np.ndarray:
        coef = np.asarray(coef)
        return np.asarray(self.X @ coef[:-1]) + coef[-1]

    @property
    def T(self) -> _InterceptTranspose:
        """The transpose, for ``X.T @ slopes``."""
        return _InterceptTranspose(self.X)


class _InterceptTranspose:
    __slots__ = ("X",)

    def __init__(self, X: Any) -> None:
        self.X = X

    def __matmul__(self, slopes: np.ndarray) -> np.ndarray:
        slopes = np.asarray(slopes)
        top = np.asarray(self.X.T @ slopes)
        return np.concatenate([top, slopes.sum(axis=0, keepdims=True)], axis=0)


class Objective:
    """A loss ``sum_i sample_weight_i * loss(z_i, y_i)`` of a linear score ``z``.

    Subclasses implement :meth:`pointwise`; :meth:`value_and_gradient` does
    the linear algebra.
    """

    name: str = ""

    def n_coef(self, n_features: int) -> int:
        """Length of the flat coefficient vector for ``n_features`` columns."""
        return n_features

    #: Whether labels must be 0 or 1 (classification losses).
    binary_labels: bool = False

    #: Whether the loss has kinks (points without a derivative): the
    #: quasi-Newton solvers then minimise :meth:`smoothed` versions of it.
    kinked: bool = False

    def smoothed(self, width: float) -> Objective:
        """The loss with each kink rounded off over ``width`` (Huber smoothing).

        Below the loss by at most ``width / 2`` per row, with a derivative
        that is continuous; itself for a loss without kinks or ``width=0``.
        """
        del width
        return self

    def pointwise(self, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-row loss and its derivative in ``z``."""
        raise NotImplementedError

    def check_labels(self, y: np.ndarray) -> None:
        """Raise if ``y`` holds labels this loss does not define (not a silent loss).

        Classification losses take labels 0 and 1 (they use ``t = 2 y - 1``);
        ``{-1, +1}`` labels would be read as a wrong ``t = -3``.
        """
        if not self.binary_labels or y.size == 0:
            return
        y = np.asarray(y)
        if not np.all((y == 0) | (y == 1)):
            found = np.unique(y[(y != 0) & (y != 1)])[:5]
            raise ValueError(
                f"loss {self.name!r} takes labels 0 and 1; got {found.tolist()}. "
                "Map the classes to 0 and 1 (the estimators do it for you), or use "
                "a regression loss for real-valued targets"
            )

    def value_and_gradient(
        self,
        coef: np.ndarray,
        X: Any,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> tuple[float, np.ndarray]:
        """Loss summed over the rows of ``X`` and its gradient in ``coef``.

        Parameters
        ----------
        coef : ndarray of shape (n_coef(n_features),)
            Coefficients (no intercept: pass :class:`WithIntercept` ``(X)``,
            or a column of ones, for one).
        X : ndarray, scipy sparse matrix or WithIntercept of shape (n_rows, n_features)
        y : ndarray of shape (n_rows,)
        sample_weight : ndarray of shape (n_rows,), optional

        Returns
        -------
        loss : float
        gradient : ndarray of shape (n_coef(n_features),)
        """
        self.check_labels(y)
        z = X @ coef
        losses, slopes = self.pointwise(np.asarray(z), y)
        if sample_weight is not None:
            losses = losses * sample_weight
            slopes = slopes * sample_weight
        gradient = np.asarray(X.T @ slopes).ravel()
        return float(losses.sum()), gradient

    def __repr__(self) -> str:
        # An objective is its parameters (as for ``==``): ``Huber(epsilon=0.1)``.
        fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))


def _signed(y: np.ndarray) -> np.ndarray:
    return 2.0 * y - 1.0


class LogLoss(Objective):
    """Logistic loss ``log(1 + exp(-t z))`` with ``t = 2 y - 1``, labels in {0, 1}."""

    name = "log_loss"
    binary_labels = True

    def pointwise(self, z, y):
        """Per-row loss and its derivative in ``z``."""
        t = _signed(y)
        return -log_expit(t * z), -t * expit(-t * z)


class SquaredError(Objective):
    """Half squared error ``(z - y)^2 / 2``."""

    name = "squared_error"

    def pointwise(self, z, y):
        """Per-row loss and its derivative in ``z``."""
        residual = z - y
        return 0.5 * residual**2, residual


class Hinge(Objective):
    """Hinge loss ``max(0, threshold - t z)``, labels in {0, 1}.

    At the kink the derivative is taken as ``-t`` (``t z <= threshold``), as
    scikit-learn's SGD does: that is what moves the perceptron off zero.

    Parameters
    ----------
    threshold : float, default=1.0
        1 for the hinge of a linear SVM, 0 for the perceptron.
    """

    name = "hinge"
    binary_labels = True
    kinked = True
    width = 0.0  # of the smoothing (:meth:`smoothed`); 0 is the loss itself

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = float(threshold)

    def smoothed(self, width: float) -> Objective:
        """The hinge rounded off over ``width`` below its kink (see the base)."""
        return _with_width(self, width)

    def pointwise(self, z, y):
        """Per-row loss and its derivative in ``z``."""
        t = _signed(y)
        margin = self.threshold - t * z
        if self.width > 0:
            losses, ramp = _rounded_kink(margin, self.width)
            return losses, -t * ramp
        active = margin >= 0
        return np.maximum(margin, 0.0), np.where(active, -t, 0.0)

    def __repr__(self) -> str:
        smoothing = f"width={self.width}" if self.width else ""
        if self.threshold == 1.0:
            return f"Hinge({smoothing})"
        return (
            f"Hinge(threshold={self.threshold}{', ' if smoothing else ''}{smoothing})"
        )


def _with_width(objective: Any, width: float) -> Any:
    """A copy of ``objective`` smoothed over ``width`` (``objective`` for 0)."""
    if not width >= 0:
        raise ValueError(f"width must be >= 0, got {width}")
    if width == 0:
        return objective
    smoothed = copy.copy(objective)
    smoothed.width = float(width)
    return smoothed


def _rounded_kink(excess: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """``max(0, excess)`` rounded off over ``width``, and its derivative.

    0 below 0, ``excess^2 / (2 width)`` up to ``width``, ``excess - width /
    2`` beyond: the Moreau envelope of the ramp (Huber smoothing).
    """
    ramp = np.clip(excess / width, 0.0, 1.0)
    losses = np.where(
        excess >= width,
        excess - 0.5 * width,
        np.where(excess > 0, 0.5 * excess**2 / width, 0.0),
    )
    return losses, ramp


class Perceptron(Hinge):
    """The perceptron's loss ``max(0, -t z)``: the hinge with threshold 0."""

    name = "perceptron"

    def __init__(self) -> None:
        super().__init__(threshold=0.0)

    def __repr__(self) -> str:
        return f"Perceptron({f'width={self.width}' if self.width else ''})"


class SquaredHinge(Objective):
    """Squared hinge ``max(0, 1 - t z)^2``."""

    name = "squared_hinge"
    binary_labels = True

    def pointwise(self, z, y):
        """Per-row loss and its derivative in ``z``."""
        t = _signed(y)
        margin = np.maximum(1.0 - t * z, 0.0)
        return margin**2, -2.0 * t * margin


class ModifiedHuber(Objective):
    """Modified Huber: ``max(0, 1 - t z)^2`` for ``t z >= -1``, else ``-4 t z``."""

    name = "modified_huber"
    binary_labels = True

    def pointwise(self, z, y):
        """Per-row loss and its derivative in ``z``."""
        t = _signed(y)
        tz = t * z
        quadratic = np.maximum(1.0 - tz, 0.0)
        linear = tz < -1.0
        losses = np.where(linear, -4.0 * tz, quadratic**2)
        slopes = np.where(linear, -4.0 * t, -2.0 * t * quadratic)
        return losses, slopes


class Huber(Objective):
    """Huber loss: quadratic within ``epsilon`` of the target, linear beyond.

    Parameters
    ----------
    epsilon : float, default=0.1
        Width of the quadratic zone (scikit-learn's SGDRegressor default).
    """

    name = "huber"

    def __init__(self, epsilon: float = 0.1) -> None:
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.epsilon = float(epsilon)

    def pointwise(self, z, y):
        """Per-row loss and its derivative in ``z``."""
        residual = z - y
        eps = self.epsilon
        inside = np.abs(residual) <= eps
        losses = np.where(
            inside, 0.5 * residual**2, eps * np.abs(residual) - 0.5 * eps**2
        )
        slopes = np.where(inside, residual, eps * np.sign(residual))
        return losses, slopes


class EpsilonInsensitive(Objective):
    """``max(0, |z - y| - epsilon)``: errors below ``epsilon`` cost nothing.

    Parameters
    ----------
    epsilon : float, default=0.1
    """

    name = "epsilon_insensitive"
    kinked = True
    width = 0.0  # of the smoothing (:meth:`smoothed`); 0 is the loss itself

    def __init__(self, epsilon: float = 0.1) -> None:
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)

    def pointwise(self, z, y):
        """Per-row loss and its derivative in ``z``."""
        residual = z - y
        excess = np.abs(residual) - self.epsilon
        if self.width > 0:
            losses, ramp = _rounded_kink(excess, self.width)
            return losses, np.sign(residual) * ramp
        active = excess > 0
        return np.where(active, excess, 0.0), np.where(active, np.sign(residual), 0.0)

    def smoothed(self, width: float) -> Objective:
        """The loss rounded off over ``width`` beyond ``epsilon`` (see the base)."""
        return _with_width(self, width) if self.kinked else self


class SquaredEpsilonInsensitive(EpsilonInsensitive):
    """``max(0, |z - y| - epsilon)^2``.

    Parameters
    ----------
    epsilon : float, default=0.1
    """

    name = "squared_epsilon_insensitive"
    kinked = False

    def pointwise(self, z, y):
        """Per-row loss and its derivative in ``z``."""
        residual = z - y
        excess = np.maximum(np.abs(residual) - self.epsilon, 0.0)
        return excess**2, 2.0 * np.sign(residual) * excess


class SignedTargets(Objective):
    """A regression loss used for classification: labels {0, 1} become targets -1, +1.

    scikit-learn's SGDClassifier accepts the regression losses; it fits them
    to ``t = 2 y - 1``.

    Parameters
    ----------
    regression : Objective
        ``squared_error``, ``huber``, ``epsilon_insensitive`` or
        ``squared_epsilon_insensitive``.
    """

    binary_labels = True

    def __init__(self, regression: Objective) -> None:
        if regression.binary_labels or isinstance(regression, _MultiClass):
            raise TypeError(f"{regression!r} is not a regression loss")
        self.regression = regression
        self.name = regression.name

    @property
    def kinked(self) -> bool:  # type: ignore[override]
        """As the regression loss's."""
        return self.regression.kinked

    def smoothed(self, width: float) -> Objective:
        """The smoothed regression loss against ``2 y - 1``."""
        return SignedTargets(self.regression.smoothed(width))

    def pointwise(self, z, y):
        """The regression loss against ``2 y - 1``."""
        return self.regression.pointwise(z, _signed(y))

    def __repr__(self) -> str:
        return f"SignedTargets({self.regression!r})"


class _MultiClass(Objective):
    """Coefficients as a ``(n_features, n_classes)`` matrix stored flat."""

    min_classes = 2

    def __init__(self, n_classes: int) -> None:
        if int(n_classes) != n_classes or n_classes < self.min_classes:
            raise ValueError(
                f"n_classes must be an integer >= {self.min_classes}, got {n_classes}"
            )
        self.n_classes = int(n_classes)

    def n_coef(self, n_features: int) -> int:
        """``n_features * n_classes``."""
        return n_features * self.n_classes

    def _scores_and_labels(self, coef, X, y) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(X @ np.asarray(coef).reshape(-1, self.n_classes))
        labels = np.asarray(y).astype(np.intp)
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ValueError(
                f"{self.name} labels must be integers in 0..{self.n_classes - 1}"
            )
        return scores, labels


class Softmax(_MultiClass):
    """Multinomial logistic loss (cross-entropy of the softmax).

    The coefficients are a ``(n_features, n_classes)`` matrix stored flat
    (row-major); labels are integers ``0..n_classes-1``.

    Parameters
    ----------
    n_classes : int
        Number of classes, at least 2.
    """

    name = "softmax"

    def value_and_gradient(self, coef, X, y, sample_weight=None):
        """Cross-entropy summed over rows, and its gradient (flat)."""
        scores, labels = self._scores_and_labels(coef, X, y)
        log_norm = logsumexp(scores, axis=1)
        losses = log_norm - scores[np.arange(labels.size), labels]
        slopes = np.exp(scores - log_norm[:, None])
        slopes[np.arange(labels.size), labels] -= 1.0
        if sample_weight is not None:
            losses = losses * sample_weight
            slopes = slopes * sample_weight[:, None]
        gradient = np.asarray(X.T @ slopes).ravel()
        return float(losses.sum()), gradient

    def __repr__(self) -> str:
        return f"Softmax(n_classes={self.n_classes})"


class OneVsRest(_MultiClass):
    """``K`` binary problems at once: class ``k`` against the rest.

    The coefficients are a ``(n_features, n_classes)`` matrix stored flat
    (row-major); column ``k`` scores class ``k``.  The objective is the sum of
    the ``K`` binary losses, which are independent, so minimising it solves the
    ``K`` one-vs-rest problems of scikit-learn's SGDClassifier together, from
    one placement of the data.

    Parameters
    ----------
    binary : Objective
        A binary classification loss (labels in {0, 1}).
    n_classes : int
        Number of classes, at least 3.
    class_weights : array-like of shape (n_classes,), optional
        As scikit-learn's one-vs-rest applies ``class_weight``: in problem
        ``k`` the rows of class ``k`` (the positives) weigh
        ``class_weights[k]`` and every other row weighs 1.
    """

    name = "one_vs_rest"
    min_classes = 3

    def __init__(
        self, binary: Objective, n_classes: int, class_weights: Any = None
    ) -> None:
        if isinstance(binary, _MultiClass):
            raise TypeError("one-vs-rest needs a binary loss")
        super().__init__(n_classes)
        self.binary = binary
        self.class_weights = (
            None
            if class_weights is None
            else tuple(float(w) for w in np.asarray(class_weights).ravel())
        )
        if self.class_weights is not None and len(self.class_weights) != n_classes:
            raise ValueError(
                f"class_weights needs one weight per class ({n_classes}), got "
                f"{len(self.class_weights)}"
            )

    @property
    def kinked(self) -> bool:  # type: ignore[override]
        """As the binary loss's."""
        return self.binary.kinked

    def smoothed(self, width: float) -> Objective:
        """The same problems with the binary loss smoothed."""
        smoothed = copy.copy(self)
        smoothed.binary = self.binary.smoothed(width)
        return smoothed

    def value_and_gradient(self, coef, X, y, sample_weight=None):
        """Sum of the binary losses, and the gradient (flat)."""
        scores, labels = self._scores_and_labels(coef, X, y)
        total = 0.0
        slopes = np.empty_like(scores)
        for k in range(self.n_classes):
            positive = labels == k
            losses, slopes[:, k] = self.binary.pointwise(
                scores[:, k], positive.astype(np.float64)
            )
            weights = sample_weight
            if self.class_weights is not None and self.class_weights[k] != 1.0:
                factor = np.where(positive, self.class_weights[k], 1.0)
                weights = factor if weights is None else weights * factor
            if weights is not None:
                losses = losses * weights
                slopes[:, k] *= weights
            total += float(losses.sum())
        return total, np.asarray(X.T @ slopes).ravel()

    def __repr__(self) -> str:
        weights = (
            ""
            if self.class_weights is None
            else f", class_weights={list(self.class_weights)}"
        )
        return f"OneVsRest({self.binary!r}, n_classes={self.n_classes}{weights})"


#: Objectives by name; ``Softmax`` needs ``n_classes``.
OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (
        LogLoss,
        SquaredError,
        Hinge,
        SquaredHinge,
        ModifiedHuber,
        Huber,
        EpsilonInsensitive,
        SquaredEpsilonInsensitive,
        Perceptron,
        Softmax,
    )
}


def get_objective(loss: str | Objective, **params: Any) -> Objective:
    """An objective from its name (with its parameters) or an instance.

    Examples
    --------
    >>> get_objective("huber", epsilon=1.0)
    Huber(epsilon=1.0)
    >>> get_objective("softmax", n_classes=3)
    Softmax(n_classes=3)
    """
    if isinstance(loss, Objective):
        if params:
            raise TypeError("pass parameters to the objective's constructor instead")
        return loss
    if loss not in OBJECTIVES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(OBJECTIVES)}")
    try:
        return OBJECTIVES[loss](**params)
    except TypeError as error:
        raise TypeError(f"loss {loss!r}: {error}") from None


class ElasticNet:
    """``alpha * ((1 - l1_ratio) / 2 * ||w||^2 + l1_ratio * ||w||_1)``.

    scikit-learn's SGD penalty: ``"l2"`` is ``l1_ratio=0``, ``"l1"`` is
    ``l1_ratio=1``.  The squared part is smooth (it goes into the gradient);
    the absolute part is handled by its proximal step, soft-thresholding.

    Parameters
    ----------
    alpha : float, default=0.0
        Strength, >= 0.
    l1_ratio : float, default=0.0
        Share of the l1 part, in [0, 1].
    mask : ndarray of bool, optional
        Which coefficients are penalised (leave the intercept out).
    """

    def __init__(
        self, alpha: float = 0.0, l1_ratio: float = 0.0, mask: np.ndarray | None = None
    ) -> None:
        if not (alpha >= 0 and np.isfinite(alpha)):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
        if not 0 <= l1_ratio <= 1:
            raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio}")
        self.alpha = float(alpha)
        self.l1_ratio = float(l1_ratio)
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)

    @property
    def l2_strength(self) -> float:
        """``alpha * (1 - l1_ratio)``."""
        return self.alpha * (1.0 - self.l1_ratio)

    @property
    def l1_strength(self) -> float:
        """``alpha * l1_ratio``."""
        return self.alpha * self.l1_ratio

    def _penalised(self, w: np.ndarray) -> np.ndarray:
        return w if self.mask is None else np.where(self.mask, w, 0.0)

    def smooth(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient of the squared part."""
        penalised = self._penalised(w)
        return (
            0.5 * self.l2_strength * float(penalised @ penalised),
            self.l2_strength * penalised,
        )

    def nonsmooth(self, w: np.ndarray) -> float:
        """Value of the absolute part."""
        return self.l1_strength * float(np.abs(self._penalised(w)).sum())

    def value(self, w: np.ndarray) -> float:
        """The whole penalty."""
        return self.smooth(w)[0] + self.nonsmooth(w)

    def prox(self, w: np.ndarray, step: float) -> np.ndarray:
        """``argmin_u nonsmooth(u) + ||u - w||^2 / (2 step)``: soft-thresholding."""
        threshold = step * self.l1_strength
        if threshold == 0:
            return w
        shrunk = np.sign(w) * np.maximum(np.abs(w) - threshold, 0.0)
        return shrunk if self.mask is None else np.where(self.mask, shrunk, w)

    def prox_whole(self, w: np.ndarray, step: float) -> np.ndarray:
        """``argmin_u value(u) + ||u - w||^2 / (2 step)``: both parts implicitly.

        Soft-thresholding, then the squared part's shrink ``1 / (1 + step *
        l2_strength)``, which stays stable for any step (an explicit step
        ``1 - step * l2_strength`` overshoots once it is below -1).
        """
        shrunk = self.prox(w, step) / (1.0 + step * self.l2_strength)
        return shrunk if self.mask is None else np.where(self.mask, shrunk, w)

    def __repr__(self) -> str:
        return f"ElasticNet(alpha={self.alpha}, l1_ratio={self.l1_ratio})"


def make_penalty(
    penalty: str | None,
    alpha: float,
    l1_ratio: float = 0.15,
    mask: np.ndarray | None = None,
) -> ElasticNet:
    """scikit-learn's penalty names as an :class:`ElasticNet`.

    Examples
    --------
    >>> make_penalty("l1", 0.1)
    ElasticNet(alpha=0.1, l1_ratio=1.0)
    """
    ratios = {None: 0.0, "l2": 0.0, "l1": 1.0, "elasticnet": l1_ratio}
    if penalty not in ratios:
        raise ValueError(
            f"unknown penalty {penalty!r}; choose 'l2', 'l1', 'elasticnet' or None"
        )
    return ElasticNet(0.0 if penalty is None else alpha, ratios[penalty], mask)
