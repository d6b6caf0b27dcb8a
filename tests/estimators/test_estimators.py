"""The scikit-learn estimators: sklearn's checks, optima, coded = uncoded iterates."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    make_classification,
    make_regression,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from dask_gradcode import CodedSGDClassifier, CodedSGDRegressor
from dask_gradcode.stragglers import SlowWorkers

# Every test runs with the shared `client` of conftest.py (N_WORKERS in-process
# workers): the estimators' fits find it as the default client.
N_WORKERS = 4
pytestmark = pytest.mark.usefixtures("client")


#: The SGD objective divides the weighted loss by n_samples, which repeating
#: rows changes: scikit-learn lists these two checks as expected failures of
#: its own SGDClassifier and SGDRegressor, for the same reason.
SGD_EXPECTED_FAILURES = {
    name: "sample_weight is not equivalent to removing/repeating samples (as SGD)"
    for name in (
        "check_sample_weight_equivalence_on_dense_data",
        "check_sample_weight_equivalence_on_sparse_data",
    )
}


@parametrize_with_checks(
    # Few iterations, as scikit-learn checks its own SGD, on two workers: the
    # checks are about the API, and every fit pays Dask's round trip per
    # iteration, a little more per worker.
    [
        CodedSGDClassifier(random_state=0, max_iter=5, n_workers=2),
        CodedSGDRegressor(random_state=0, max_iter=5, n_workers=2),
    ],
    expected_failed_checks=lambda estimator: SGD_EXPECTED_FAILURES,
)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)  # convergence on toy data
        check(estimator)


def log_loss_objective(X, y, coef, intercept, C):
    """LogisticRegression's objective divided by n: mean loss + ||w||^2 / (2 C n)."""
    scores = X @ coef.T + intercept
    if scores.shape[1] == 1:
        t = 2 * y - 1
        losses = np.logaddexp(0, -t * scores[:, 0])
    else:
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        losses = log_norm - shifted[np.arange(len(y)), y]
    return losses.mean() + 0.5 / (C * len(y)) * np.sum(coef**2)


@pytest.mark.parametrize("dataset", [load_breast_cancer, load_digits])
def test_reaches_the_logistic_regression_optimum(dataset):
    X, y = dataset(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    C = 1.0
    reference = LogisticRegression(C=C, tol=1e-12, max_iter=20_000).fit(X, y)
    model = CodedSGDClassifier(
        loss="log_loss",
        multi_class="multinomial",
        alpha=1 / (C * len(y)),
        tol=1e-12,
        max_iter=5000,
        random_state=0,
    ).fit(X, y)
    best = log_loss_objective(X, y, reference.coef_, reference.intercept_, C)
    ours = log_loss_objective(X, y, model.coef_, model.intercept_, C)
    assert ours == pytest.approx(best, rel=1e-6)


def test_reaches_the_ridge_optimum():
    X, y = make_regression(400, 8, noise=5.0, random_state=0)
    alpha = 1e-3
    model = CodedSGDRegressor(alpha=alpha, tol=1e-12, random_state=0).fit(X, y)
    reference = Ridge(alpha=alpha * len(y)).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6)
    # the intercept is near 0 on targets of scale ~100: compare on that scale
    assert abs(model.intercept_[0] - reference.intercept_) <= 1e-6 * y.std()


@pytest.mark.parametrize(
    ("scheme", "n_stragglers", "comm_reduction"),
    [
        ("gaussian-mds", 1, 1),
        ("gaussian-mds", 1, 2),
        ("cyclic-repetition", 1, 1),
        ("fractional-repetition", 1, 1),
        ("ye-abbe", 2, 2),
    ],
)
def test_exact_schemes_give_the_iterates_of_uncoded_gradient_descent(
    scheme, n_stragglers, comm_reduction
):
    X, y = make_classification(300, 6, random_state=0)
    common = {
        "loss": "log_loss",
        "solver": "gd",
        "learning_rate": "constant",
        "eta0": 0.5,
        "max_iter": 15,
        "tol": None,
        "random_state": 0,
    }
    uncoded = CodedSGDClassifier(scheme="uncoded", n_stragglers=0, **common).fit(X, y)
    coded = CodedSGDClassifier(
        scheme=scheme,
        n_stragglers=n_stragglers,
        comm_reduction=comm_reduction,
        straggler_model=SlowWorkers(n_stragglers, delay=2.0, random_state=1),
        **common,
    ).fit(X, y)
    np.testing.assert_allclose(coded.coef_, uncoded.coef_, rtol=1e-8)
    np.testing.assert_allclose(
        coded.intercept_, uncoded.intercept_, rtol=1e-8, atol=1e-12
    )
    assert coded.n_iter_ == 15
    assert all(len(record["stragglers"]) >= 1 for record in coded.history_)


def test_same_random_state_gives_the_same_model():
    X, y = make_classification(200, 5, random_state=1)
    first = CodedSGDClassifier(loss="log_loss", random_state=3).fit(X, y)
    again = CodedSGDClassifier(loss="log_loss", random_state=3).fit(X, y)
    # equal up to rounding: which workers answer first (and so the order the
    # decode sums in) varies from run to run
    np.testing.assert_allclose(first.coef_, again.coef_, rtol=1e-10)


def test_pipeline_grid_search_and_clone():
    X, y = make_classification(200, 5, random_state=0)
    pipeline = make_pipeline(
        StandardScaler(), CodedSGDClassifier(loss="log_loss", random_state=0)
    )
    search = GridSearchCV(pipeline, {"codedsgdclassifier__alpha": [1e-4, 1e-2]}, cv=2)
    search.fit(X, y)
    assert search.best_score_ > 0.8
    copy = clone(CodedSGDClassifier(alpha=0.5, scheme="cyclic-repetition"))
    assert copy.get_params()["alpha"] == 0.5 and not hasattr(copy, "coef_")


def test_sample_weight_class_weight_partial_fit_and_early_stopping():
    X, y = make_classification(300, 5, weights=[0.8], random_state=0)
    balanced = CodedSGDClassifier(
        loss="log_loss", class_weight="balanced", random_state=0
    ).fit(X, y)
    plain = CodedSGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    assert balanced.predict(X).mean() > plain.predict(X).mean()
    model = CodedSGDClassifier(loss="log_loss", random_state=0)
    for _ in range(3):
        model.partial_fit(X, y, classes=[0, 1])
    assert model.score(X, y) > 0.7
    stopped = CodedSGDClassifier(
        loss="log_loss",
        early_stopping=True,
        n_iter_no_change=2,
        tol=1e-3,
        random_state=0,
    ).fit(X, y)
    assert stopped.n_iter_ < 100
    probabilities = plain.predict_proba(X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_history_and_progress_bar(capsys):
    X, y = make_classification(200, 4, random_state=0)
    model = CodedSGDClassifier(loss="log_loss", verbose=1, random_state=0).fit(X, y)
    assert len(model.history_) == model.n_iter_
    record = model.history_[-1]
    assert {
        "objective",
        "wall_seconds",
        "responders",
        "stragglers",
        "bytes_received",
    } <= set(record)
    assert "CodedSGDClassifier" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"loss": "nope"}, "loss 'nope' is not supported"),
        ({"scheme": "nope"}, "scheme must be one of"),
        ({"n_stragglers": 4}, "n_stragglers <= 3"),
        ({"penalty": "l1", "solver": "lbfgs"}, "solver='auto' \\(OWL-QN"),
        (
            {"comm_reduction": 2, "scheme": "cyclic-repetition"},
            "comm_reduction must be 1",
        ),
        ({"n_workers": 9}, "needs 9 workers but the cluster has 4"),
        ({"multi_class": "multinomial"}, "needs loss='log_loss'"),
    ],
)
def test_invalid_parameters_say_what_to_change(params, match):
    X, y = make_classification(60, 3, n_informative=2, n_redundant=0, random_state=0)
    with pytest.raises(ValueError, match=match):
        CodedSGDClassifier(**params).fit(X, y)


def test_bad_data_gets_scikit_learns_errors():
    X, y = make_classification(60, 3, n_informative=2, n_redundant=0, random_state=0)
    with pytest.raises(ValueError, match="NaN"):
        CodedSGDClassifier().fit(np.where(X > 1, np.nan, X), y)
    with pytest.raises(ValueError, match="greater than one"):
        CodedSGDClassifier().fit(X, np.zeros(60))
    with pytest.raises(ValueError, match="Unknown label type"):
        CodedSGDClassifier().fit(X, np.linspace(0, 1, 60))


def test_fits_without_a_client_share_one_embedded_cluster():
    script = (
        "import warnings\n"
        "from sklearn.datasets import make_classification\n"
        "from sklearn.model_selection import cross_val_score\n"
        "from dask_gradcode import CodedSGDClassifier\n"
        "from dask_gradcode.scheduler import embedded_client\n"
        "X, y = make_classification(100, 4, random_state=0)\n"
        "model = CodedSGDClassifier(loss='log_loss', random_state=0).fit(X, y)\n"
        "first = embedded_client().scheduler.address\n"
        "# n_stragglers='auto' never codes the embedded cluster, and says why\n"
        "assert model.code_.scheme == 'uncoded', model.code_\n"
        "assert 'embedded in-process cluster' in model.code_.selection_reason\n"
        "from dask_gradcode.stragglers import SlowWorkers\n"
        "slow = SlowWorkers(workers=[0], delay=0.05)\n"
        "coded = CodedSGDClassifier(n_stragglers=1, straggler_model=slow, max_iter=3)\n"
        "assert coded.fit(X, y).code_.n_stragglers == 1  # an int: that code\n"
        "cross_val_score(CodedSGDClassifier(loss='log_loss'), X, y, cv=3)\n"
        "model.partial_fit(X, y)\n"
        "assert embedded_client().scheduler.address == first\n"
        "from distributed import get_client\n"
        "try:\n"
        "    get_client()\n"
        "    raise SystemExit('the embedded client became the default client')\n"
        "except ValueError:\n"
        "    pass\n"
        "import os, psutil\n"
        "listening = {c.laddr.ip for c in psutil.Process(os.getpid()).net_connections()\n"
        "             if c.status == psutil.CONN_LISTEN}\n"
        "assert listening <= {'127.0.0.1'}, listening  # loopback only\n"
        "print(model.score(X, y) > 0.8)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]  # closed cleanly at exit
    assert out.stdout.strip().endswith("True"), out.stderr[-2000:]
    # No warning a user did not cause: Dask's own logs stay quiet.
    assert "distributed" not in out.stderr and "dangling" not in out.stderr, out.stderr


def test_more_embedded_workers_than_cores_warn(monkeypatch):
    from dask_gradcode.scheduler import clients

    monkeypatch.setattr(clients, "default_embedded_workers", lambda: 2)
    with pytest.warns(RuntimeWarning, match="in-process workers sharing"):
        clients.embedded_client(3)


def test_coded_mini_batches_follow_uncoded_mini_batches():
    X, y = make_classification(400, 5, random_state=0)
    common = {
        "loss": "log_loss",
        "solver": "gd",
        "learning_rate": "invscaling",
        "eta0": 0.5,
        "batch_size": 60,
        "max_iter": 20,
        "tol": None,
        "random_state": 0,
    }
    uncoded = CodedSGDClassifier(scheme="uncoded", n_stragglers=0, **common).fit(X, y)
    coded = CodedSGDClassifier(
        scheme="gaussian-mds",
        n_stragglers=1,
        straggler_model=SlowWorkers(1, delay=2.0, random_state=0),
        **common,
    ).fit(X, y)
    np.testing.assert_allclose(coded.coef_, uncoded.coef_, rtol=1e-8)
    assert coded.score(X, y) > 0.8
    with pytest.raises(ValueError, match=r"batch_size .* needs solver='gd'"):
        CodedSGDClassifier(batch_size=10, solver="lbfgs").fit(X, y)
    assert CodedSGDClassifier(batch_size=10, max_iter=3).fit(X, y).solver_ == "gd"


def test_dask_dataframe_input_with_a_dask_series_of_string_labels():
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y = make_classification(240, 4, random_state=0)
    names = np.array(["no", "yes"])[y]
    frame = dd.from_pandas(pd.DataFrame(X, columns=list("abcd")), npartitions=4)
    labels = dd.from_pandas(pd.Series(names), npartitions=4)
    kwargs = {
        "loss": "log_loss",
        "tol": 1e-10,
        "class_weight": "balanced",
        "random_state": 0,
    }
    lazy = CodedSGDClassifier(**kwargs).fit(frame, labels)
    eager = CodedSGDClassifier(**kwargs).fit(X, names)
    assert list(lazy.classes_) == ["no", "yes"]
    np.testing.assert_allclose(lazy.coef_, eager.coef_, rtol=1e-6, atol=1e-8)


def _failing():
    from dask_gradcode.stragglers import FailingWorkers

    return FailingWorkers("all", iterations=range(2, 10**6), error=ValueError)


@pytest.mark.filterwarnings("ignore::dask_gradcode.scheduler.WorkerErrorWarning")
@pytest.mark.parametrize("Estimator", [CodedSGDClassifier, CodedSGDRegressor])
def test_a_failed_fit_leaves_the_estimator_as_it_was(Estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    X, y = make_classification(200, 4, random_state=0)
    unfitted = Estimator(
        random_state=0, n_workers=2, n_stragglers=1, straggler_model=_failing()
    )
    with pytest.raises(ValueError, match="injected"):
        unfitted.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(unfitted)
    assert not hasattr(unfitted, "classes_") and not hasattr(unfitted, "t_")

    model = Estimator(random_state=0, n_workers=2, n_stragglers=1).fit(X, y)
    before = dict(model.__dict__)
    model.set_params(straggler_model=_failing(), early_stopping=True)
    with pytest.raises(ValueError, match="injected"):
        model.fit(X[:, :3], y)  # new width, classes, early stopping: all undone
    after = {k: v for k, v in model.__dict__.items() if k not in model.get_params()}
    assert after.keys() == {k for k in before if k not in model.get_params()}
    for name, value in after.items():
        assert value is before[name], name  # the previous model, untouched
    assert model.predict(X).shape == (200,)


def test_pickling_away_from_the_active_client_warns_once(monkeypatch):
    import pickle

    import joblib

    from dask_gradcode.scheduler import clients

    monkeypatch.setattr(clients, "_WARNED_LEAVING", set())
    model = CodedSGDRegressor()
    with pytest.warns(RuntimeWarning, match="parallel_backend\\('dask'\\)"):
        pickle.dumps(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.dumps(model)  # once per process
        monkeypatch.setattr(clients, "_WARNED_LEAVING", set())
        pickle.dumps(CodedSGDRegressor(scheduler_address="tcp://127.0.0.1:1"))
        with joblib.parallel_backend("dask"):
            pickle.dumps(model)  # the search runs on the cluster: nothing to say


def test_audit_every_is_passed_on_and_checked():
    X, y = make_classification(300, 4, random_state=0)
    common = {"random_state": 0, "n_workers": 2, "max_iter": 30}
    plain = CodedSGDClassifier(**common).fit(X, y)
    audited = CodedSGDClassifier(audit_every=1, **common).fit(X, y)
    np.testing.assert_allclose(audited.coef_, plain.coef_)  # honest workers
    with pytest.raises(ValueError, match="audit_every must be a positive int"):
        CodedSGDClassifier(audit_every=-1).fit(X, y)


@pytest.mark.filterwarnings("ignore::dask_gradcode.scheduler.WorkerErrorWarning")
@pytest.mark.filterwarnings("ignore::dask_gradcode.scheduler.WorkerFailureWarning")
def test_code_describes_the_code_in_use_after_a_replan():
    from dask_gradcode.stragglers import FailingWorkers

    X, y = make_classification(400, 4, random_state=0)
    failing = FailingWorkers([0], iterations=range(2, 10**6), others_delay=0.01)
    model = CodedSGDClassifier(
        random_state=0, n_workers=4, n_stragglers=1, straggler_model=failing
    ).fit(X, y)
    assert model.code_.n_workers == 3 == model.rounds_[-1].n_workers
    assert "re-planned from" in model.code_.selection_reason


@pytest.mark.parametrize("Estimator", [CodedSGDClassifier, CodedSGDRegressor])
def test_scikit_learns_own_rules_for_l1_ratio_early_stopping_and_power_t(Estimator):
    X, y = make_classification(200, 4, random_state=0)
    common = {"n_workers": 2, "max_iter": 3, "tol": None, "random_state": 0}
    with_none = Estimator(l1_ratio=None, **common).fit(X, y)  # not used with l2
    plain = Estimator(**common).fit(X, y)
    np.testing.assert_allclose(with_none.coef_, plain.coef_)
    with pytest.raises(ValueError, match="l1_ratio must be set when penalty is"):
        Estimator(l1_ratio=None, penalty="elasticnet").fit(X, y)
    partial = {"classes": np.unique(y)} if Estimator is CodedSGDClassifier else {}
    with pytest.raises(ValueError, match="early_stopping should be False with"):
        Estimator(early_stopping=True).partial_fit(X, y, **partial)
    with pytest.warns(FutureWarning, match="Negative values for `power_t`"):
        Estimator(power_t=-0.5, **common).fit(X, y)


@pytest.mark.parametrize("Estimator", [CodedSGDClassifier, CodedSGDRegressor])
def test_dtypes_messages_and_warnings_follow_scikit_learn(Estimator):
    from sklearn.exceptions import ConvergenceWarning

    X, y = make_classification(200, 4, random_state=0)
    common = {"n_workers": 2, "random_state": 0}
    model = Estimator(max_iter=3, tol=None, **common).fit(X.astype(np.float32), y)
    assert model.coef_.dtype == np.float32 and model.intercept_.dtype == np.float64
    assert Estimator(max_iter=3, tol=None, **common).fit(X, y).coef_.dtype == np.float64
    with pytest.raises(ValueError, match="Provided coef_init does not match dataset"):
        Estimator(**common).fit(X, y, coef_init=np.zeros(3))
    with pytest.raises(ValueError, match="Provided intercept_init does not match"):
        Estimator(**common).fit(X, y, intercept_init=np.zeros(2))
    with pytest.warns(ConvergenceWarning, match="Maximum number of iteration reached"):
        Estimator(max_iter=1, **common).fit(X, y)
    from sklearn.model_selection import train_test_split

    stratify = y if Estimator is CodedSGDClassifier else None
    _, validation_rows = train_test_split(  # the estimator's own split
        np.arange(200), test_size=0.5, random_state=0, stratify=stratify
    )
    weights = np.ones(200)
    weights[validation_rows] = 0.0
    early = Estimator(early_stopping=True, validation_fraction=0.5, **common)
    with pytest.raises(ValueError, match="validation set are all zero"):
        early.fit(X, y, sample_weight=weights)


def test_a_multiclass_coef_init_of_the_wrong_shape_gets_scikit_learns_message():
    X, y = make_classification(300, 5, n_informative=3, n_classes=3, random_state=0)
    with pytest.raises(ValueError, match="Provided ``coef_`` does not match dataset"):
        CodedSGDClassifier(n_workers=2).fit(X, y, coef_init=np.zeros((2, 5)))
