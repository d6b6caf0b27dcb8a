"""A pytest plugin: scikit-learn's ``test_sgd.py`` with chosen estimators.

:mod:`~dask_gradcode.bench.sklearn_suite` runs scikit-learn's own test file
in a fresh process with ``-p dask_gradcode.bench._sgd_suite_plugin``:

- ``--sgd-estimators coded`` puts :class:`~dask_gradcode.CodedSGDClassifier`
  and :class:`~dask_gradcode.CodedSGDRegressor` in place of
  ``sklearn.linear_model.SGDClassifier`` and ``SGDRegressor`` before the test
  file is imported (its wrappers and subclasses then build ours);
  ``sklearn`` leaves scikit-learn's own.
- The tests of ``SGDOneClassSVM`` and of the private Cython losses are
  deselected: they test no estimator we offer.
- Every outermost ``fit`` and ``partial_fit`` call is timed, and the coded
  estimators' ``fit_profile_`` after it kept.
- ``--sgd-report PATH`` receives a JSON document: each test's outcome and
  first line of failure, and the call times.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

#: Tests that exercise no estimator we offer: ``SGDOneClassSVM`` and the
#: private Cython loss objects (``sklearn.linear_model._sgd_fast``).
NOT_APPLICABLE = re.compile(
    r"oneclass|one_class|ocsvm|OneClass|test_loss_|test_gradient_squared_hinge"
)

_state: dict[str, Any] = {
    "tests": {},
    "calls": {"fit": [], "partial_fit": []},
    "profiles": {"fit": [], "partial_fit": []},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sgd-suite")
    group.addoption("--sgd-estimators", choices=("coded", "sklearn"), default="coded")
    group.addoption("--sgd-report", default=None)


def pytest_configure(config: pytest.Config) -> None:
    import sklearn.linear_model

    if config.getoption("--sgd-estimators") == "coded":
        from dask_gradcode import CodedSGDClassifier, CodedSGDRegressor

        sklearn.linear_model.SGDClassifier = CodedSGDClassifier
        sklearn.linear_model.SGDRegressor = CodedSGDRegressor
    depth = {"calls": 0}
    for cls in (sklearn.linear_model.SGDClassifier, sklearn.linear_model.SGDRegressor):
        for name in ("fit", "partial_fit"):
            setattr(cls, name, _timed(getattr(cls, name), name, depth))


def _timed(method: Callable[..., Any], name: str, depth: dict[str, int]) -> Any:
    """``method``, recording the time of each call not made inside another."""

    @functools.wraps(method)
    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth["calls"] += 1
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            depth["calls"] -= 1
            if depth["calls"] == 0:
                _state["calls"][name].append(time.perf_counter() - start)
                profile = getattr(self, "fit_profile_", None)  # the coded ones'
                if profile is not None:
                    _state["profiles"][name].append(dict(profile))

    return timed


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    kept = [item for item in items if not NOT_APPLICABLE.search(item.nodeid)]
    dropped = [item for item in items if NOT_APPLICABLE.search(item.nodeid)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tests = _state["tests"]
    entry = tests.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
    if report.when == "call" and hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        entry["message"] = message.strip().splitlines()[0][:300] if message else ""
    elif report.skipped:
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--sgd-report")
    if path:
        with open(path, "w") as out:
            json.dump(_state, out)
