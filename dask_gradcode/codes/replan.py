"""Re-planning a code: the closest code of the same scheme on fewer or more workers.

``make_code`` is looked up on the package at call time: the package imports
this module while it is being initialised.
"""

from __future__ import annotations

from dask_gradcode import codes
from dask_gradcode.codes._base import GradientCode

__all__ = ["replan_code"]


def replan_code(
    code: GradientCode, n_workers: int, *, n_stragglers: int | None = None
) -> GradientCode:
    """The closest code of the same scheme on ``n_workers`` workers.

    Keeps ``comm_reduction`` and as many stragglers as the scheme allows on
    that many workers (up to ``n_stragglers``, default the code's requested
    tolerance); falls back to ``comm_reduction=1`` and finally to the uncoded
    scheme.  A code chosen by ``scheme="auto"`` is chosen again; a
    ``"linear"`` code keeps its generator while the survivors can hold its
    block length, else becomes ``"gaussian-mds"``.
    """
    wanted = code.requested_stragglers if n_stragglers is None else n_stragglers
    scheme = "auto" if code.selection_reason else code.scheme
    if scheme == "linear":
        try:
            return codes.make_code(
                "linear",
                n_workers,
                None,
                generator=code.generator,  # type: ignore[attr-defined]
                rtol=code.rtol,
            )
        except ValueError:
            scheme = "gaussian-mds"
    for m in dict.fromkeys((code.comm_reduction, 1)):
        for s in range(min(wanted, n_workers - 1), -1, -1):
            try:
                return codes.make_code(
                    scheme, n_workers, s, m, random_state=0, rtol=code.rtol
                )
            except ValueError:
                continue
    return codes.make_code("uncoded", n_workers, 0)
