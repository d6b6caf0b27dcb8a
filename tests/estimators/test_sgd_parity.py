"""The estimators as drop-ins for SGDClassifier / SGDRegressor: every parameter,
every loss, scikit-learn's objective and partial_fit, every input type, dask out.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dask_gradcode import CodedSGDClassifier, CodedSGDRegressor
from dask_gradcode.codes import make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler import CodedGradient

# Every test runs with the shared `client` of conftest.py (N_WORKERS in-process
# workers): the estimators' fits find it as the default client.
N_WORKERS = 4
pytestmark = pytest.mark.usefixtures("client")


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# ------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(CodedSGDClassifier, SGDClassifier), (CodedSGDRegressor, SGDRegressor)],
)
def test_every_sgd_parameter_with_its_default(ours, theirs):
    params = theirs().get_params()
    assert params.items() <= ours().get_params().items()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing set away from a default: no warning
        model = ours(**params)
    assert model.get_params()["average"] is False


@pytest.mark.parametrize(
    ("params", "warns"),
    [
        ({"n_jobs": 2}, "n_jobs=2 has no effect"),
        ({"average": True}, "average=True has no effect with solver='lbfgs'"),
        (
            {"solver": "lbfgs", "learning_rate": "constant"},
            "learning_rate='constant' has no effect",
        ),
        ({"eta0": 0.5}, "eta0=0.5 has no effect"),
        ({"power_t": 0.3}, "power_t=0.3 has no effect"),
        ({"tol": None, "n_iter_no_change": 3}, "n_iter_no_change=3 has no effect"),
        ({"solver": "gd", "learning_rate": "constant", "power_t": 0.3}, "power_t"),
    ],
)
def test_a_parameter_without_effect_warns(cancer, params, warns):
    X, y = cancer
    with pytest.warns(UserWarning, match=warns):
        CodedSGDClassifier(max_iter=3, **params).fit(X, y)


@pytest.mark.parametrize(
    ("params", "changed"),
    [
        ({"solver": "gd", "learning_rate": "auto"}, {"average": True}),
        ({"solver": "gd", "learning_rate": "auto", "average": True}, {"average": 5}),
        ({"solver": "gd", "learning_rate": "constant", "eta0": 0.5}, {"eta0": 0.1}),
        (
            {"solver": "gd", "learning_rate": "invscaling", "eta0": 1.0},
            {"power_t": 0.9},
        ),
        (
            {"solver": "gd", "learning_rate": "constant", "eta0": 2.0, "tol": 0.1},
            {"learning_rate": "adaptive"},
        ),
        (
            {"solver": "nesterov", "penalty": "elasticnet", "alpha": 0.01},
            {"l1_ratio": 0.9},
        ),
        ({"loss": "huber"}, {"epsilon": 2.0}),
        ({}, {"fit_intercept": False}),
        ({"alpha": 1e-4}, {"alpha": 0.1}),
        ({"penalty": "l2", "alpha": 0.01}, {"penalty": None}),
        ({"early_stopping": True}, {"validation_fraction": 0.4}),
        ({"tol": 1e-2}, {"tol": 1e-2, "n_iter_no_change": 1}),
        (
            {"batch_size": 100, "solver": "gd", "learning_rate": "constant"},
            {"shuffle": False},
        ),
        (
            {"solver": "gd", "learning_rate": "constant", "eta0": 0.5},
            {"solver": "nesterov"},
        ),
    ],
)
def test_every_parameter_changes_the_fit(cancer, params, changed):
    """Each parameter the chosen solver uses really changes the model."""
    X, y = cancer
    # Two workers and few passes: what is checked is the parameter's effect.
    base = {"max_iter": 8, "tol": None, "random_state": 0, "n_workers": 2, **params}
    first = CodedSGDClassifier(**base).fit(X, y)
    second = CodedSGDClassifier(**{**base, **changed}).fit(X, y)
    assert not np.allclose(first.coef_, second.coef_)


def test_warm_start_continues_and_max_iter_counts_passes(cancer):
    X, y = cancer
    model = CodedSGDClassifier(
        solver="gd", learning_rate="constant", max_iter=3, tol=None, warm_start=True
    ).fit(X, y)
    first = model.coef_.copy()
    model.fit(X, y)
    assert model.n_iter_ == 3 and not np.allclose(model.coef_, first)


def test_invalid_values_say_what_to_change(cancer):
    X, y = cancer
    for params, match in [
        ({"n_workers": 0}, "n_workers must be None"),
        ({"n_workers": -2}, "n_workers must be None"),
        ({"average": -1}, "average must be a bool"),
        ({"eta0": -1.0}, "alpha and eta0 must be >= 0"),
        (
            {"solver": "gd", "learning_rate": "constant", "eta0": 0.0},
            "eta0 must be > 0",
        ),
    ]:
        with pytest.raises(ValueError, match=match):
            CodedSGDClassifier(**params).fit(X, y)


# ----------------------------------------------------------------- losses
CLASSIFICATION = [
    "hinge",
    "log_loss",
    "modified_huber",
    "squared_hinge",
    "perceptron",
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
]


@pytest.mark.parametrize("loss", CLASSIFICATION)
def test_every_classification_loss_is_as_good_as_sgd(cancer, loss):
    X, y = cancer
    theirs = SGDClassifier(loss=loss, random_state=0).fit(X, y).score(X, y)
    ours = CodedSGDClassifier(loss=loss, random_state=0).fit(X, y).score(X, y)
    assert ours >= theirs - 0.03


@pytest.mark.parametrize(
    "loss",
    ["squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"],
)
def test_every_regression_loss_is_as_good_as_sgd(diabetes, loss):
    X, y = diabetes
    theirs = SGDRegressor(loss=loss, random_state=0).fit(X, y).score(X, y)
    ours = CodedSGDRegressor(loss=loss, random_state=0).fit(X, y).score(X, y)
    assert ours >= theirs - 0.03


def finite_difference(objective, w, X, y, h=1e-6):
    gradient = np.empty_like(w)
    for i in range(w.size):
        step = np.zeros_like(w)
        step[i] = h
        up = objective.value_and_gradient(w + step, X, y)[0]
        down = objective.value_and_gradient(w - step, X, y)[0]
        gradient[i] = (up - down) / (2 * h)
    return gradient


@pytest.mark.parametrize("loss", CLASSIFICATION)
def test_every_loss_gradient_matches_finite_differences(iris, loss):
    X, y = iris
    model = CodedSGDClassifier(loss=loss, epsilon=0.3)
    model.classes_ = np.unique(y)
    objective = model._objective(3, np.array([1.0, 2.0, 0.5]))
    w = np.random.default_rng(0).standard_normal(objective.n_coef(4)) * 0.3
    _, gradient = objective.value_and_gradient(w, X, y.astype(float))
    np.testing.assert_allclose(
        gradient,
        finite_difference(objective, w, X, y.astype(float)),
        rtol=1e-4,
        atol=1e-4,
    )


# ------------------------------------------------------------- objective
def test_sample_weights_multiply_the_loss_not_the_penalty(cancer):
    """scikit-learn's SGD objective: the mean over n_samples, weights on the loss."""
    X, y = cancer
    weights = np.full(len(y), 2.0)
    C = 1.0
    reference = LogisticRegression(C=C, tol=1e-12, max_iter=20_000).fit(
        X, y, sample_weight=weights
    )
    ours = CodedSGDClassifier(
        loss="log_loss", alpha=1 / (C * len(y)), tol=None, max_iter=5000
    ).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=1e-6)


def test_weighted_ridge_to_1e_6(diabetes):
    X, y = diabetes
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    alpha = 1e-3
    ours = CodedSGDRegressor(alpha=alpha, tol=None, max_iter=5000).fit(
        X, y, sample_weight=weights
    )
    # sum_i w_i (y_i - x_i b)^2 / 2 + alpha n ||b||^2 / 2, Ridge's objective / n
    reference = Ridge(alpha=alpha * len(y)).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-6, atol=1e-6)


def test_one_vs_rest_class_weights_as_scikit_learn_applies_them(iris):
    """Problem k weighs class k by class_weight[k] and the rest by 1."""
    X, y = iris
    class_weight = {0: 3.0, 1: 0.5, 2: 2.0}
    C = 10.0
    ours = CodedSGDClassifier(
        loss="log_loss",
        alpha=1 / (C * len(y)),
        class_weight=class_weight,
        tol=None,
        max_iter=5000,
    ).fit(X, y)
    for k in range(3):
        weights = np.where(y == k, class_weight[k], 1.0)
        binary = LogisticRegression(C=C, tol=1e-12, max_iter=20_000).fit(
            X, (y == k).astype(int), sample_weight=weights
        )
        np.testing.assert_allclose(ours.coef_[k], binary.coef_[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- partial_fit
def test_partial_fit_k_times_is_fit_with_max_iter_k(cancer):
    X, y = cancer
    common = {
        "loss": "log_loss",
        "solver": "gd",
        "learning_rate": "invscaling",
        "eta0": 0.5,
        "scheme": "gaussian-mds",
        "random_state": 0,
    }
    fitted = CodedSGDClassifier(max_iter=5, tol=None, **common).fit(X, y)
    streamed = CodedSGDClassifier(**common)
    for _ in range(5):
        streamed.partial_fit(X, y, classes=[0, 1])
    np.testing.assert_allclose(streamed.coef_, fitted.coef_, rtol=1e-10)
    np.testing.assert_allclose(streamed.intercept_, fitted.intercept_, rtol=1e-10)
    assert streamed.t_ == fitted.t_ == 6


def test_partial_fit_checks_classes_and_refuses_balanced(cancer):
    X, y = cancer
    model = CodedSGDClassifier(loss="log_loss")
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(X, y)
    model.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"not the same as on the first call"):
        model.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(
        ValueError, match=r"'balanced' is not supported for partial_fit\. In order"
    ):
        CodedSGDClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])


def test_partial_fit_over_dask_blocks_in_a_streaming_loop(cancer):
    da = pytest.importorskip("dask.array")
    X, y = cancer
    X_dask, y_dask = da.from_array(X, chunks=(100, 30)), da.from_array(y, chunks=100)
    model = CodedSGDRegressor(learning_rate="constant", eta0=0.1)
    for _ in range(4):  # epochs
        for X_block, y_block in zip(X_dask.blocks, y_dask.blocks, strict=True):
            model.partial_fit(X_block, y_block)
    assert model.t_ == 4 * X_dask.numblocks[0] + 1
    assert model.score(X, y) > 0.5


# --------------------------------------------------------- failing runs
def test_a_diverging_run_raises_instead_of_converging():
    X, y = load_diabetes(return_X_y=True)  # unscaled
    with pytest.raises(ValueError, match=r"Scale the data|Scaling input data"):
        CodedSGDRegressor(solver="gd", learning_rate="optimal").fit(X, y)


def test_overflowing_data_names_the_data(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match=r"Scaling input data|Scale the data|overflow"):
        CodedSGDClassifier(loss="log_loss").fit(X * 1e200, y)


def test_the_convergence_warning_points_at_the_caller(cancer):
    X, y = cancer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CodedSGDClassifier(loss="log_loss", max_iter=2, tol=1e-12).fit(X, y)
    converged = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert converged and converged[0].filename == __file__


def test_objectives_refuse_labels_they_do_not_define(client, cancer):
    X, y = cancer
    code = make_code("gaussian-mds", 4, 1, 1, random_state=0)
    signed = 2 * y - 1.0
    with (
        CodedGradient(client, code, X, signed, "log_loss") as cg,
        pytest.raises(ValueError, match="takes labels 0 and 1"),
    ):
        cg(np.zeros(X.shape[1]))
    with pytest.raises(ValueError, match="takes labels 0 and 1"):
        get_objective("hinge").value_and_gradient(
            np.zeros(2), np.ones((2, 2)), np.array([-1, 1.0])
        )


def test_numpy_integer_random_state_is_the_same_seed(cancer):
    X, y = cancer
    common = {
        "solver": "gd",
        "learning_rate": "constant",
        "batch_size": 60,
        "max_iter": 5,
        "tol": None,
    }
    plain = CodedSGDClassifier(random_state=3, **common).fit(X, y)
    numpy = CodedSGDClassifier(random_state=np.int64(3), **common).fit(X, y)
    np.testing.assert_array_equal(plain.coef_, numpy.coef_)


# ----------------------------------------------------------------- inputs
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "kind", ["dask-frame", "dask-unknown-chunks", "pandas", "sparse"]
)
def test_every_input_type_fits_like_numpy(cancer, kind, weighted):
    da = pytest.importorskip("dask.array")
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y = cancer
    weights = np.random.default_rng(0).uniform(0.5, 2, len(y)) if weighted else None
    # A fixed number of fixed steps: the same iterates, whatever the input.
    common = {
        "loss": "log_loss",
        "solver": "gd",
        "learning_rate": "constant",
        "eta0": 0.5,
        "max_iter": 15,
        "tol": None,
        "random_state": 0,
    }
    reference = CodedSGDClassifier(**common).fit(X, y, sample_weight=weights)
    data, labels, w = X, y, weights
    if kind == "dask-frame":
        data = dd.from_pandas(pd.DataFrame(X), npartitions=4)
        labels = dd.from_pandas(pd.Series(y), npartitions=4)
        w = None if weights is None else da.from_array(weights, chunks=150)
    elif kind == "dask-unknown-chunks":
        keep = da.from_array(np.ones(len(y), dtype=bool), chunks=150)
        data = da.from_array(X, chunks=(150, 30))[keep]
        labels = da.from_array(y, chunks=150)[keep]
        w = None if weights is None else da.from_array(weights, chunks=150)[keep]
        assert np.isnan(data.shape[0])
    elif kind == "pandas":
        data, labels = pd.DataFrame(X), pd.Series(y)
    else:
        data = scipy.sparse.csr_matrix(X)
    model = CodedSGDClassifier(**common).fit(data, labels, sample_weight=w)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-9, atol=1e-12)


def test_dask_in_dask_out_numpy_in_numpy_out(cancer, iris):
    da = pytest.importorskip("dask.array")
    X, y = iris
    model = CodedSGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    lazy = da.from_array(X, chunks=(40, 2))
    for method in ("predict", "predict_proba", "decision_function"):
        eager = getattr(model, method)(X)
        out = getattr(model, method)(lazy)
        assert isinstance(eager, np.ndarray) and hasattr(out, "dask")
        np.testing.assert_allclose(out.compute(), eager)
    assert model.score(lazy, da.from_array(y, chunks=40)) == pytest.approx(
        model.score(X, y)
    )
    Xr, yr = cancer
    regressor = CodedSGDRegressor(random_state=0).fit(Xr, yr)
    lazy_r = da.from_array(Xr, chunks=(100, 30))
    assert hasattr(regressor.predict(lazy_r), "dask")
    assert regressor.score(lazy_r, da.from_array(yr, chunks=100)) == pytest.approx(
        regressor.score(Xr, yr)
    )


# ------------------------------------------------------------ scikit-learn
def test_grid_search_over_average_pipeline_clone_and_pickle(cancer):
    X, y = cancer
    search = GridSearchCV(
        CodedSGDClassifier(solver="gd", learning_rate="auto", max_iter=10, tol=None),
        {"average": [False, True]},
        cv=2,
    ).fit(X, y)
    assert search.best_score_ > 0.9
    pipeline = make_pipeline(StandardScaler(), CodedSGDClassifier(loss="log_loss"))
    pipeline.fit(X, y)
    copy = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_array_equal(copy.predict(X), pipeline.predict(X))
    assert clone(CodedSGDClassifier(average=3)).get_params()["average"] == 3


def test_coef_init_densify_sparsify_and_attributes(cancer):
    X, y = cancer
    start = np.full((1, X.shape[1]), 0.1)
    model = CodedSGDClassifier(loss="log_loss", max_iter=1, tol=None).fit(
        X, y, coef_init=start, intercept_init=[0.5]
    )
    assert not np.allclose(model.coef_, 0)
    assert model.n_iter_ == 1 and model.t_ == 2
    predictions = model.predict(X)
    model.sparsify()
    assert scipy.sparse.issparse(model.coef_)
    np.testing.assert_array_equal(model.predict(X), predictions)
    model.densify()
    assert isinstance(model.coef_, np.ndarray)


def test_dask_ml_incremental_drives_partial_fit(cancer):
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = cancer
    X_dask, y_dask = da.from_array(X, chunks=(150, 30)), da.from_array(y, chunks=150)
    incremental = wrappers.Incremental(
        CodedSGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.5),
        scoring="accuracy",
    )
    incremental.fit(X_dask, y_dask, classes=[0, 1])
    assert incremental.estimator_.t_ == X_dask.numblocks[0] + 1
    assert incremental.score(X_dask, y_dask) > 0.9


def test_the_auto_solver_picks_owlqn_for_l1_and_the_schedule_when_asked(cancer):
    from sklearn.linear_model import LogisticRegression

    X, y = cancer
    n = len(y)
    C = 0.1
    model = CodedSGDClassifier(
        loss="log_loss", penalty="l1", alpha=1 / (C * n), tol=1e-10, max_iter=500
    ).fit(X, y)
    assert model.solver_ == "owlqn"
    reference = LogisticRegression(
        l1_ratio=1.0, C=C, solver="saga", tol=1e-12, max_iter=20_000
    )
    reference.fit(X, y)

    def objective(coef, intercept):
        z = X @ coef.ravel() + intercept
        return np.mean(np.logaddexp(0, -np.where(y == 1, 1, -1) * z)) + np.abs(
            coef
        ).sum() / (C * n)

    ours = objective(model.coef_, model.intercept_[0])
    best = objective(reference.coef_, reference.intercept_[0])
    assert ours == pytest.approx(best, rel=1e-6)
    assert set(np.flatnonzero(model.coef_)) == set(np.flatnonzero(reference.coef_))
    scheduled = CodedSGDClassifier(learning_rate="constant", eta0=0.1, max_iter=3)
    assert scheduled.fit(X, y).solver_ == "gd"
    assert CodedSGDClassifier(max_iter=3).fit(X, y).solver_ == "lbfgs"


@pytest.mark.parametrize(
    ("penalty", "l1_ratio", "Reference"),
    [("l1", 1.0, "Lasso"), ("elasticnet", 0.5, "ElasticNet")],
)
def test_l1_and_elasticnet_reach_lasso_and_elastic_net_optima(
    diabetes, penalty, l1_ratio, Reference
):
    """The same objective: ``mean(0.5 (y - Xw - b)^2) + alpha R(w)``."""
    import sklearn.linear_model

    X, y = diabetes
    alpha = 5.0
    model = CodedSGDRegressor(
        penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, tol=1e-12, max_iter=2000
    ).fit(X, y)
    assert model.solver_ == "owlqn"
    reference = getattr(sklearn.linear_model, Reference)(alpha=alpha, tol=1e-12)
    if Reference == "ElasticNet":
        reference.set_params(l1_ratio=l1_ratio)
    reference.set_params(max_iter=100_000).fit(X, y)

    def objective(coef, intercept):
        residual = y - X @ coef - intercept
        l1 = np.abs(coef).sum()
        return np.mean(0.5 * residual**2) + alpha * (
            l1_ratio * l1 + 0.5 * (1 - l1_ratio) * coef @ coef
        )

    ours = objective(model.coef_, model.intercept_[0])
    best = objective(reference.coef_, reference.intercept_)
    assert ours == pytest.approx(best, rel=1e-7)
    assert set(np.flatnonzero(model.coef_)) == set(np.flatnonzero(reference.coef_))
    assert np.flatnonzero(model.coef_).size < X.shape[1]  # a sparse optimum


@pytest.mark.parametrize("Estimator", [CodedSGDClassifier, CodedSGDRegressor])
def test_float32_input_gives_a_float32_model_at_the_float64_optimum(
    cancer, diabetes, Estimator
):
    X, y = cancer if Estimator is CodedSGDClassifier else diabetes
    common = {"alpha": 1e-3, "tol": 1e-10, "max_iter": 500, "random_state": 0}
    if Estimator is CodedSGDClassifier:
        common["loss"] = "log_loss"
    single = Estimator(**common).fit(X.astype(np.float32), y)
    double = Estimator(**common).fit(X, y)
    assert single.coef_.dtype == np.float32
    assert double.coef_.dtype == np.float64
    np.testing.assert_allclose(single.coef_, double.coef_, rtol=1e-4, atol=1e-5)
    scores = getattr(single, "decision_function", single.predict)
    got = scores(X.astype(np.float32))
    assert got.dtype == np.float64  # as scikit-learn's SGD (a float64 intercept)
    reference = getattr(double, "decision_function", double.predict)(X)
    np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-4)


def test_shuffle_false_asks_for_what_a_full_gradient_does(cancer):
    X, y = cancer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CodedSGDClassifier(shuffle=False, max_iter=3, tol=None).fit(X, y)


def test_setting_the_default_schedules_parameters_runs_the_schedule(diabetes):
    """The regressor's default schedule is invscaling: eta0 and power_t tune it."""
    X, y = diabetes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "has no effect" warning either
        model = CodedSGDRegressor(power_t=0.5, max_iter=3, tol=None).fit(X, y)
    assert model.solver_ == "gd"
    assert CodedSGDRegressor(eta0=0.02, max_iter=3, tol=None).fit(X, y).solver_ == "gd"
    assert CodedSGDRegressor(max_iter=3, tol=None).fit(X, y).solver_ == "lbfgs"
    # the classifier's default schedule ("optimal") uses neither
    with pytest.warns(UserWarning, match="eta0=0.5 has no effect"):
        CodedSGDClassifier(eta0=0.5, max_iter=3, tol=None).fit(X[:40], y[:40] > 150)


def test_loss_functions_and_the_reason_predict_proba_is_missing():
    """As scikit-learn's test_sgd_predict_proba_method_access."""
    assert set(CodedSGDClassifier.loss_functions) >= {"hinge", "log_loss", "huber"}
    assert set(CodedSGDRegressor.loss_functions) == {
        "squared_error",
        "huber",
        "epsilon_insensitive",
        "squared_epsilon_insensitive",
    }
    with pytest.raises(AttributeError, match="has no attribute 'predict_proba'") as e:
        CodedSGDClassifier(loss="hinge").predict_proba  # noqa: B018
    assert isinstance(e.value.__cause__, AttributeError)
    assert "probability estimates are not available for loss='hinge'" in str(
        e.value.__cause__
    )


@pytest.mark.parametrize("Estimator", [CodedSGDClassifier, CodedSGDRegressor])
def test_early_stopping_holds_out_scikit_learns_rows_in_their_order(iris, Estimator):
    """As scikit-learn's test_validation_set_not_used_for_training."""
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    X, y = iris
    common = {"learning_rate": "constant", "eta0": 0.01, "tol": None, "max_iter": 5}
    stopped = Estimator(
        early_stopping=True,
        validation_fraction=0.4,
        random_state=np.random.RandomState(42),
        **common,
    ).fit(X, y)
    splitter = (
        StratifiedShuffleSplit if Estimator is CodedSGDClassifier else ShuffleSplit
    )
    train, _ = next(splitter(test_size=0.4, random_state=42).split(X, y))
    train = np.sort(train)
    plain = Estimator(random_state=np.random.RandomState(42), **common)
    np.testing.assert_array_equal(stopped.coef_, plain.fit(X[train], y[train]).coef_)


def test_scikit_learns_messages_for_partial_fit_and_validation_weights(iris):
    X, y = iris
    with pytest.raises(ValueError, match="early_stopping should be False with"):
        CodedSGDClassifier(early_stopping=True).partial_fit(X, y)  # before classes
    with pytest.raises(ValueError, match="validation set are all zero"):
        CodedSGDClassifier(early_stopping=True, random_state=0).fit(
            X, y, sample_weight=np.zeros(len(y))
        )
    with pytest.raises(ValueError, match="at least one non-zero"):
        CodedSGDClassifier().fit(X, y, sample_weight=np.zeros(len(y)))


def test_a_large_l2_penalty_with_a_constant_step_stays_finite(iris):
    """scikit-learn's test_large_regularization: the l2 shrink is implicit here."""
    X, y = load_iris(return_X_y=True)  # unscaled, as there
    model = CodedSGDClassifier(
        alpha=1e5, learning_rate="constant", eta0=0.1, tol=None, max_iter=6
    )
    with np.errstate(all="raise"):
        model.fit(X, y)
    assert np.abs(model.coef_).max() < 1e-4  # scikit-learn: exactly 0


def test_hinge_with_l1_reaches_the_sparse_optimum_by_smoothing():
    """scikit-learn's test_sgd_l1 data: the LP optimum is w = (-1, 0, 0, 0, 0, 1)."""
    from tests.test_continuation import X4, Y4

    model = CodedSGDClassifier(
        penalty="l1", alpha=0.2, fit_intercept=False, tol=1e-6, max_iter=2000
    ).fit(X4, Y4)
    np.testing.assert_array_equal(np.flatnonzero(model.coef_), [0, 5])
    t = 2 * Y4 - 1
    objective = (
        np.maximum(0, 1 - t * (X4 @ model.coef_.ravel())).mean()
        + 0.2 * np.abs(model.coef_).sum()
    )
    assert objective == pytest.approx(0.4, abs=5e-4)
    assert (model.predict(X4) == Y4).all()
