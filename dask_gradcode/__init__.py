"""Coded gradient descent on Dask: train without waiting for stragglers."""

from __future__ import annotations

from typing import Any

from dask_gradcode.codes import GradientCode, NotDecodableError, make_code

__all__ = [
    "CodedSGDClassifier",
    "CodedSGDRegressor",
    "GradientCode",
    "NotDecodableError",
    "__version__",
    "close_embedded_cluster",
    "make_code",
    "plan",
    "plot_rounds",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The estimators import Dask; the pure codes must not pay for that.
    if name in ("CodedSGDClassifier", "CodedSGDRegressor"):
        from dask_gradcode import estimators

        return getattr(estimators, name)
    if name == "close_embedded_cluster":
        from dask_gradcode.scheduler import close_embedded_cluster

        return close_embedded_cluster
    if name == "plan":
        from dask_gradcode.planner import plan

        return plan
    if name == "plot_rounds":
        from dask_gradcode.plotting import plot_rounds

        return plot_rounds
    raise AttributeError(f"module 'dask_gradcode' has no attribute {name!r}")
