"""Decoding accuracy, conditioning and cost of ye-abbe, gaussian-mds and cyclic-mds.

Decode times are compared with the Dask round-trip floor measured in the same
run (``n`` pinned no-op tasks through ``as_completed``): the least any
iteration costs, so "negligible" is a ratio, not a guess.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dask_gradcode.bench.cluster import ClusterTarget, round_trip_floor
from dask_gradcode.bench.plots import error_against_n
from dask_gradcode.bench.report import Report, machine_description, markdown_table
from dask_gradcode.codes.diagnostics import (
    StabilityReport,
    stability_grid,
    stability_table,
)

__all__ = ["run"]

NAME = "decode_stability"


def run(
    *,
    workers: Sequence[int] = (10, 20, 30, 50, 100),
    comm_reductions: Sequence[int] = (1, 2),
    sets: int = 200,
    floor: bool = True,
    target: ClusterTarget = ClusterTarget(),  # noqa: B008 (frozen, immutable)
    command: str = "dask-gradcode bench stability",
    progress: bool = True,
) -> Report:
    """Measure decoding stability over random straggler sets as ``n`` grows.

    Parameters
    ----------
    workers : sequence of int
        Numbers of workers ``n``; ``s`` is about ``n / 10``.
    comm_reductions : sequence of int
        Values of ``m`` (cyclic-mds only has ``m = 1``).
    sets : int, default=200
        Straggler sets per code.
    floor : bool, default=True
        Also measure the Dask round-trip floor at each ``n`` to set the decode
        time against.
    target : ClusterTarget
        Where the floor is measured.
    command : str
        The command line that reproduces the run, quoted in the report.
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    Report
    """
    reports = stability_grid(
        tuple(workers), tuple(comm_reductions), n_sets=sets, progress=progress
    )
    floors: dict[int, float] = {}
    if floor:
        largest = None if target.embedded else target.count_workers()
        for n in sorted({r.n_workers for r in reports}):
            if largest is not None and n > largest:
                continue  # an existing cluster too small for this n
            with target.connect(n) as client:
                floors[n] = float(np.median(round_trip_floor(client, n)))
    floor_rows = decode_against_floor(reports, floors)
    return Report(
        NAME,
        tables={
            "codes": [r.as_dict() for r in reports],
            "decode_vs_floor": floor_rows,
        },
        figures={"": error_against_n(reports)},
        markdown=_markdown(reports, floor_rows, command, target),
    )


def decode_against_floor(
    reports: Sequence[StabilityReport], floors: dict[int, float]
) -> list[dict[str, float]]:
    """Slowest cold and cached decode at each ``n`` against that ``n``'s floor."""
    rows = []
    for n, floor in sorted(floors.items()):
        at_n = [r for r in reports if r.n_workers == n]
        cold = max(r.cold_decode_seconds for r in at_n)
        cached = max(r.cached_decode_seconds for r in at_n)
        rows.append(
            {
                "n": n,
                "floor_ms": 1e3 * floor,
                "cold_ms": 1e3 * cold,
                "cold_percent": 100 * cold / floor,
                "cached_ms": 1e3 * cached,
                "cached_percent": 100 * cached / floor,
            }
        )
    return rows


def _first_n(reports: Sequence[StabilityReport], above: float) -> str:
    """Where the worst error first exceeds ``above`` (any m), in words."""
    ns = [r.n_workers for r in reports if r.worst_relative_error > above]
    if ns:
        return f"exceeds {above:g} from n = {min(ns)}"
    return f"stays below {above:g} up to n = {max(r.n_workers for r in reports)}"


def _reading(reports: Sequence[StabilityReport]) -> str:
    lines = []
    largest = max(r.n_workers for r in reports)
    for scheme in ("ye-abbe", "gaussian-mds", "cyclic-mds"):
        chosen = [r for r in reports if r.scheme == scheme]
        if not chosen:
            continue
        at_largest = max(
            (r.worst_relative_error for r in chosen if r.n_workers == largest),
            default=float("nan"),
        )
        lines.append(
            f"- **{scheme}**: worst relative error "
            f"{max(r.worst_relative_error for r in chosen):.1e} over all sizes, "
            f"{at_largest:.1e} at n = {largest}; worst condition number "
            f"{max(r.worst_condition_number for r in chosen):.1e}; the worst error "
            f"{_first_n(chosen, 1e-10)} and {_first_n(chosen, 1.0)} (an error of 1 "
            "is a useless gradient)."
        )
    return "\n".join(lines)


FLOOR_COLUMNS = {
    "n": "n",
    "floor_ms": "Dask floor (ms)",
    "cold_ms": "slowest cold decode (ms)",
    "cold_percent": "cold / floor (%)",
    "cached_ms": "slowest cached decode (ms)",
    "cached_percent": "cached / floor (%)",
}


def _markdown(reports, floor_rows, command, target) -> str:
    if floor_rows:
        floor_text = markdown_table(floor_rows, FLOOR_COLUMNS)
    else:
        floor_text = "(floor not measured: run without --no-floor)"
    return f"""# Decoding stability

Reproduce with `{command}` (from the repository root, after `make test` or
`pip install -e .[bench]`).

Measured on {machine_description()}.  For each code, straggler sets of size `s`
(all of them when there are at most the number of sets asked for, otherwise
distinct random ones), partial gradients redrawn i.i.d. standard normal for
every set, gradient length 1,000.  `s` is about `n/10`, nudged so that `n - s`
is odd (the real cyclic-MDS construction needs it).  `gaussian-mds` reports
the tolerance its groups really give: where `s + m` does not divide `n`,
groups are larger and tolerate more, and the sets tried are that much larger.
"worst cond." is the condition number of the system solved to decode (the
`(n - s)`-point Vandermonde for ye-abbe, the `m x r` generator blocks for
gaussian-mds, the responders' rows of the encoding matrix for cyclic-mds).

{stability_table(list(reports))}

![decoding error and conditioning against n](decode_stability.png)

## Reading it

{_reading(reports)}

Random Gaussian MDS codes only solve small `m x r` systems, which is why they
stay accurate as `n` grows; Ye-Abbe's Vandermonde system grows with `n - s`.

## Decoding cost next to an iteration

Every coded iteration costs at least the Dask round trip: `n` pinned no-op
tasks collected with `distributed.as_completed`, measured in the same run on
{target.describe()} with `n` single-thread workers.  Decode times are the
slowest over the schemes at that `n`; "cold" is the first time a straggler
pattern is seen (solve + apply), "cached" a repeated pattern.

{floor_text}
"""
