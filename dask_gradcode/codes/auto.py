"""``scheme="auto"``: the exact scheme with the least load that is stable at a size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dask_gradcode.codes._base import GradientCode

__all__ = ["choose_code"]

#: Why each scheme is preferred when loads tie, best first.
_MERITS = {
    "uncoded": "no redundancy is needed",
    "fractional-repetition": (
        "a decode that adds one reply per group, exact in floating point"
    ),
    "gaussian-mds": "small per-group solves that stay well conditioned at any n",
    "cyclic-repetition": "a least-squares decode over random coefficients",
    "cyclic-mds": "a least-squares decode over a cyclic MDS code",
    "ye-abbe": "a polynomial interpolation",
}


def _candidates(n: int, s: int, m: int) -> list[tuple[float, int, str]]:
    """``(predicted load fraction, preference, scheme)`` for the schemes that exist."""
    rows = []
    if s == 0 and m == 1:
        rows.append((1 / n, "uncoded"))
    if m == 1 and n % (s + 1) == 0:
        rows.append(((s + 1) / n, "fractional-repetition"))
    if s + m <= n:
        rows.append(((s + m) / n, "gaussian-mds"))
        rows.append(((s + m) / n, "ye-abbe"))
    if m == 1:
        rows.append(((s + 1) / n, "cyclic-repetition"))
        if s == 0 or (n - s) % 2:
            rows.append(((s + 1) / n, "cyclic-mds"))
    order = list(_MERITS)
    return sorted((load, order.index(scheme), scheme) for load, scheme in rows)


def choose_code(
    build: Callable[..., GradientCode],
    n_workers: int,
    n_stragglers: int,
    comm_reduction: int,
    **options: Any,
) -> GradientCode:
    """Build the exact scheme with the least load that decodes to ``rtol`` here.

    ``build(scheme, n, s, m, **options)`` builds and verifies one scheme (it is
    :func:`~dask_gradcode.codes.make_code`).  Schemes are tried in order of
    their load at this size, ties broken by how robust their decode is; the
    first that builds with the load it promises wins.  The chosen code's
    ``selection_reason`` (shown by ``repr``) says what was chosen and why.

    Raises
    ------
    ValueError
        If no exact scheme exists or is stable at this size.
    """
    n, s, m = n_workers, n_stragglers, comm_reduction
    best: GradientCode | None = None
    refused: list[str] = []
    for predicted, _, scheme in _candidates(n, s, m):
        try:
            code = build(scheme, n, s, m, **options)
        except ValueError as error:
            refused.append(f"{scheme}: {error}")
            continue
        if best is None or code.load_fraction < best.load_fraction - 1e-12:
            best = code
        if code.load_fraction <= predicted + 1e-12:
            break
    if best is None:
        raise ValueError(
            f"no exact scheme decodes to the tolerance with n_workers={n}, "
            f"n_stragglers={s}, comm_reduction={m}: " + " | ".join(refused)
        )
    optimal = " (the optimum (s + m) / n)" if best.is_optimal else ""
    skipped = (
        f"; {', '.join(r.split(':')[0] for r in refused)} refused at this size"
        if refused
        else ""
    )
    best.selection_reason = (
        f"chose {best.scheme!r}, the least load among exact schemes verified to "
        f"decode to rtol={best.rtol:g} here: {best.load_fraction:.3g} of the data "
        f"per worker{optimal}, with {_MERITS[best.scheme]}{skipped}"
    )
    return best
