"""The errors a code raises when it cannot decode, or cannot be built stably."""

from __future__ import annotations

__all__ = ["InaccurateDecodeError", "NotDecodableError", "UnstableCodeError"]


class NotDecodableError(ValueError):
    """Raised when the responders cannot determine the full gradient exactly.

    Wait for more workers, or call ``decode(..., approximate=True)`` to get the
    least-squares optimal estimate instead.
    """


class InaccurateDecodeError(NotDecodableError):
    """The responders determine the gradient, but not to the code's ``rtol``.

    In exact arithmetic the decode would be exact; in float64 the responder
    set is too ill-conditioned.  More responders usually fix it; so does a
    numerically stable scheme.
    """


class UnstableCodeError(ValueError):
    """A scheme cannot decode its worst responder sets to ``rtol`` at this size."""
