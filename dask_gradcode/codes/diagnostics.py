"""Measure how accurately and how fast a code decodes, over many straggler sets."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from dask_gradcode.codes._base import GradientCode
from dask_gradcode.codes._validation import check_positive_int, rng_from

__all__ = [
    "StabilityReport",
    "decoding_stability",
    "default_stragglers",
    "stability_grid",
    "stability_table",
    "straggler_sets",
]


@dataclass(frozen=True)
class StabilityReport:
    """Decoding accuracy and cost of one code over many straggler sets.

    Attributes
    ----------
    scheme, n_workers, n_stragglers, comm_reduction, load : str or int
        The code measured.
    n_sets : int
        Straggler sets tried (each of size ``n_stragglers``).
    worst_relative_error : float
        ``max ||g_hat - g|| / ||g||`` over the sets, with i.i.d. standard
        normal partial gradients redrawn for every set.
    median_relative_error : float
        The median of the same.
    worst_condition_number : float
        Largest condition number of the system solved to decode.
    cold_decode_seconds : float
        Median time of ``decode`` with an empty decoder cache.
    cached_decode_seconds : float
        Median time of ``decode`` when the responder set was seen before.
    """

    scheme: str
    n_workers: int
    n_stragglers: int
    comm_reduction: int
    load: int
    n_sets: int
    worst_relative_error: float
    median_relative_error: float
    worst_condition_number: float
    cold_decode_seconds: float
    cached_decode_seconds: float

    def as_dict(self) -> dict[str, float | int | str]:
        """The report as a plain dict (for CSV / JSON)."""
        return asdict(self)


def straggler_sets(
    n_workers: int, n_stragglers: int, n_sets: int, rng: np.random.Generator
) -> list[tuple[int, ...]]:
    """Straggler sets to try: all of them, or ``n_sets`` distinct random ones.

    Every set of ``n_stragglers`` workers is returned when there are at most
    ``n_sets``; otherwise ``n_sets`` distinct sets drawn uniformly.
    """
    if math.comb(n_workers, n_stragglers) <= n_sets:
        return list(itertools.combinations(range(n_workers), n_stragglers))
    chosen: set[tuple[int, ...]] = set()
    while len(chosen) < n_sets:
        draw = rng.choice(n_workers, size=n_stragglers, replace=False)
        chosen.add(tuple(sorted(draw.tolist())))
    return sorted(chosen)


def decoding_stability(
    code: GradientCode,
    *,
    n_sets: int = 200,
    dim: int = 1_000,
    random_state: object = None,
) -> StabilityReport:
    """Decode from many straggler sets and report accuracy and timing.

    Parameters
    ----------
    code : GradientCode
        The code to measure.
    n_sets : int, default=200
        Straggler sets to try (all of them if there are fewer).
    dim : int, default=1000
        Gradient length.
    random_state : None, int or numpy Generator
        Seed for the straggler sets and partial gradients.

    Returns
    -------
    StabilityReport
    """
    check_positive_int(n_sets, "n_sets")
    check_positive_int(dim, "dim")
    rng = rng_from(random_state)
    errors, conditions, cold, cached = [], [], [], []
    for stragglers in straggler_sets(code.n_workers, code.n_stragglers, n_sets, rng):
        partials = rng.standard_normal((code.n_partitions, dim))
        truth = partials.sum(axis=0)
        messages = {
            worker: code.encode(worker, partials[code.partitions(worker)])
            for worker in range(code.n_workers)
            if worker not in stragglers
        }
        code.clear_cache()
        start = time.perf_counter()
        estimate, decoder = code.decode(messages, dim, return_info=True)
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        code.decode(messages, dim)
        cached.append(time.perf_counter() - start)
        errors.append(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))
        conditions.append(decoder.condition_number)
    return StabilityReport(
        scheme=code.scheme,
        n_workers=code.n_workers,
        n_stragglers=code.n_stragglers,
        comm_reduction=code.comm_reduction,
        load=code.load,
        n_sets=len(errors),
        worst_relative_error=float(np.max(errors)),
        median_relative_error=float(np.median(errors)),
        worst_condition_number=float(np.max(conditions)),
        cold_decode_seconds=float(np.median(cold)),
        cached_decode_seconds=float(np.median(cached)),
    )


def default_stragglers(n_workers: int) -> int:
    """About ``n / 10`` stragglers, nudged up so that ``n - s`` is odd.

    An odd ``n - s`` lets the real ``"cyclic-mds"`` construction join the
    comparison at the same ``s`` as every other scheme.
    """
    s = max(1, round(n_workers / 10))
    return s + 1 if (n_workers - s) % 2 == 0 else s


def stability_grid(
    n_workers: tuple[int, ...] = (10, 20, 30, 50, 100),
    comm_reductions: tuple[int, ...] = (1, 2, 4),
    schemes: tuple[str, ...] = ("ye-abbe", "gaussian-mds", "cyclic-mds"),
    *,
    n_sets: int = 200,
    dim: int = 1_000,
    random_state: int = 0,
    progress: bool = False,
) -> list[StabilityReport]:
    """:func:`decoding_stability` over a grid of ``(scheme, n, m)``.

    ``s`` is :func:`default_stragglers` of ``n``; schemes that send whole
    gradients (``"cyclic-mds"``, ``"cyclic-repetition"``, ...) only run at
    ``m = 1``.
    """
    from dask_gradcode.codes import make_code  # the registry imports this module

    grid = [
        (scheme, n, m)
        for n in n_workers
        for m in comm_reductions
        for scheme in schemes
        if m == 1 or scheme in ("ye-abbe", "gaussian-mds")
    ]
    if progress:
        from tqdm.auto import tqdm

        grid = tqdm(grid, desc="decoding stability", unit="code")
    reports = []
    for scheme, n, m in grid:
        code = make_code(scheme, n, default_stragglers(n), m, random_state=random_state)
        reports.append(
            decoding_stability(code, n_sets=n_sets, dim=dim, random_state=random_state)
        )
    return reports


def stability_table(reports: list[StabilityReport]) -> str:
    """A markdown table of reports, one row each."""
    lines = [
        (
            "| scheme | n | s | m | load | sets | worst rel. error | median rel. error "
            "| worst cond. | decode cold (ms) | decode cached (ms) |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in reports:
        lines.append(
            f"| {r.scheme} | {r.n_workers} | {r.n_stragglers} | {r.comm_reduction} "
            f"| {r.load} | {r.n_sets} | {r.worst_relative_error:.1e} "
            f"| {r.median_relative_error:.1e} | {r.worst_condition_number:.1e} "
            f"| {1e3 * r.cold_decode_seconds:.3f} "
            f"| {1e3 * r.cached_decode_seconds:.3f} |"
        )
    return "\n".join(lines)
