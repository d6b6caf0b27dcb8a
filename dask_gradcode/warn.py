"""Warnings that point at the code that called into the library."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import FrameType

__all__ = ["PACKAGE", "warn_from_caller"]

#: This package's folder: frames inside it are the library's own.
PACKAGE = str(Path(__file__).resolve().parent)


def warn_from_caller(
    message: str, category: type[Warning], *, inside: str = PACKAGE
) -> None:
    """Warn with the stack level of the first frame whose file is not ``inside``.

    So a warning points at the user's call (``fit``, or the scikit-learn code
    that called it), not into the library, however deep it was raised.
    """
    # stacklevel 1 is this function, 2 its caller, and so on.
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        level += 1
        frame = frame.f_back
    warnings.warn(message, category, stacklevel=level)
