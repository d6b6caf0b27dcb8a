"""The codes a comparison can build on a given number of workers."""

from __future__ import annotations

from collections.abc import Iterable

from dask_gradcode.codes import GradientCode, make_code

__all__ = ["buildable_codes", "check_stragglers", "compared_schemes", "skipped_note"]


Row = tuple[str, int, int]

#: Every scheme the comparisons run, in their order: (scheme, tolerates the
#: comparison's s, m).  uncoded, the reference, tolerates none.
COMPARED = (
    ("uncoded", False, 1),
    ("ignore-stragglers", True, 1),
    ("fractional-repetition", True, 1),
    ("cyclic-repetition", True, 1),
    ("cyclic-mds", True, 1),
    ("ye-abbe", True, 1),
    ("gaussian-mds", True, 1),
    ("gaussian-mds", True, 2),
)


def compared_schemes(s: int, leave_out: Iterable[str] = ()) -> list[Row]:
    """``(scheme, s, m)`` rows of a comparison at ``s``, but the schemes left out."""
    left_out = set(leave_out)
    return [
        (scheme, s if tolerant else 0, m)
        for scheme, tolerant, m in COMPARED
        if scheme not in left_out
    ]


def check_stragglers(stragglers: int, workers: int) -> None:
    """Raise if ``stragglers`` is no tolerance ``workers`` workers can have.

    Checked before building: a comparison that only left the codes out would
    run uncoded alone.
    """
    if not 0 <= stragglers < workers:
        raise ValueError(
            f"stragglers={stragglers} must be between 0 and workers - 1 = {workers - 1}"
        )


def buildable_codes(
    rows: Iterable[Row], n_workers: int, random_state: int = 0
) -> tuple[list[tuple[Row, GradientCode]], list[str]]:
    """Build each ``(scheme, n_stragglers, comm_reduction)`` on ``n_workers``.

    Some schemes exist only for some sizes (fractional repetition needs
    ``s + 1`` to divide ``n``, cyclic MDS an odd ``n - s``, ...); a comparison
    runs the others and says which it left out and why.

    Returns
    -------
    built : list of (row, GradientCode)
        Each row that could be built with its code, in the order given (a
        code may tolerate more stragglers than its row asked for).
    skipped : list of str
        ``"scheme m=M: reason"`` for each one that could not.
    """
    built, skipped = [], []
    for row in rows:
        scheme, stragglers, comm_reduction = row
        try:
            code = make_code(
                scheme, n_workers, stragglers, comm_reduction, random_state=random_state
            )
        except ValueError as error:
            skipped.append(f"{scheme} m={comm_reduction}: {error}")
        else:
            built.append((row, code))
    return built, skipped


def skipped_note(skipped: list[str]) -> str:
    """A markdown paragraph listing the schemes left out, or nothing."""
    if not skipped:
        return ""
    items = "\n".join(f"- {line}" for line in skipped)
    return f"Left out at this size:\n\n{items}\n"
