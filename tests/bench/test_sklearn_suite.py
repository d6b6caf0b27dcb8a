"""bench sklearn-suite: scikit-learn's test_sgd.py with our estimators swapped in."""

from __future__ import annotations

import json

from dask_gradcode.bench import sklearn_suite
from dask_gradcode.cli import main
from tests.bench import assert_every_kind_written


def test_each_known_failure_has_a_kind_and_a_reason():
    for name, (kind, reason) in sklearn_suite.KNOWN_FAILURES.items():
        assert kind in sklearn_suite.KINDS and kind != "unexplained", name
        assert len(reason) > 20, name


def test_a_failure_is_explained_by_its_case_then_by_its_function(monkeypatch):
    monkeypatch.setattr(
        sklearn_suite,
        "KNOWN_FAILURES",
        {
            "test_a": ("internal", "every case"),
            "test_b[SGDClassifier]": ("trajectory", "this case"),
        },
    )
    explain = sklearn_suite.explain
    assert explain("test_sgd.py::test_a[SGDRegressor-1]") == ("internal", "every case")
    assert explain("test_sgd.py::test_b[SGDClassifier]") == ("trajectory", "this case")
    assert explain("test_sgd.py::test_b[SGDRegressor]") == ("unexplained", "")


def test_the_suite_runs_scikit_learns_tests_on_both_estimators(tmp_path):
    out = tmp_path / "suite"
    select = "test_sgd_clf or test_sgd_l1_ratio_not_used or test_sgd_dtype_match"
    argv = ["bench", "sklearn-suite", "--select", select, "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    assert_every_kind_written(out, "sklearn_suite")
    tables = json.loads((out / "sklearn_suite.json").read_text())
    theirs, ours = tables["summary"]
    assert theirs["estimators"] == "scikit-learn SGD" and ours["estimators"] == "coded"
    assert theirs["tests"] == ours["tests"] > 4
    assert theirs["passed"] == theirs["tests"]  # scikit-learn passes its own tests
    assert ours["fits"] >= ours["tests"] and ours["median fit (ms)"] > 0
    assert ours["passed"] + ours["failed"] + ours["skipped"] == ours["tests"]
    page = (out / "sklearn_suite.md").read_text()
    assert "test_sgd.py" in page and f"-k {select!r}" in page


def test_one_class_svm_and_private_loss_tests_are_left_out():
    from dask_gradcode.bench._sgd_suite_plugin import NOT_APPLICABLE

    for name in (
        "test_partial_fit_oneclass[SGDOneClassSVM]",
        "test_loss_hinge",
        "test_gradient_squared_hinge",
        "test_ocsvm_vs_sgdocsvm",
    ):
        assert NOT_APPLICABLE.search(name)
    assert not NOT_APPLICABLE.search("test_sgd_clf[SGDClassifier]")
