"""Coded gradient descent on Dask: train without waiting for stragglers."""

from __future__ import annotations

from dask_gradcode.codes import GradientCode, NotDecodableError, make_code

__all__ = ["GradientCode", "NotDecodableError", "__version__", "make_code"]

__version__ = "0.1.0"
