"""Measure how accurately and how fast codes decode, build and load their workers."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from dask_gradcode.codes._base import DEFAULT_RTOL, GradientCode, probe_sets
from dask_gradcode.codes._validation import check_positive_int, rng_from

__all__ = [
    "StabilityReport",
    "build_times",
    "decoding_stability",
    "default_stragglers",
    "load_against_optimum",
    "stability_grid",
    "stability_table",
    "straggler_sets",
    "worst_over_stragglers",
]


@dataclass(frozen=True)
class StabilityReport:
    """Decoding accuracy and cost of one code over many straggler sets.

    Attributes
    ----------
    scheme, n_workers, n_stragglers, comm_reduction, load : str or number
        The code measured.
    accepted : bool
        Whether :func:`~dask_gradcode.codes.make_code` builds the code with
        its default checks (``rtol = 1e-8``); refused codes are measured
        anyway, to show why.
    n_sets : int
        Straggler sets tried (each of size ``n_stragglers``).
    worst_relative_error : float
        ``max ||g_hat - g|| / ||g||`` over the sets, with i.i.d. standard
        normal partial gradients redrawn for every set (decoded with
        ``approximate=True``, so a set that misses ``rtol`` is measured rather
        than refused).
    median_relative_error : float
        The median of the same.
    worst_error_bound : float
        Largest :attr:`~dask_gradcode.codes.Decoder.error_bound` over the sets.
    inexact_sets : int
        Sets whose decode missed ``rtol``: an exact decode would have raised.
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
    load: float
    accepted: bool
    n_sets: int
    worst_relative_error: float
    median_relative_error: float
    worst_error_bound: float
    inexact_sets: int
    worst_condition_number: float
    cold_decode_seconds: float
    cached_decode_seconds: float

    def as_dict(self) -> dict[str, float | int | str | bool]:
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


def _accepted(code: GradientCode) -> bool:
    """Whether the default build checks pass (what ``make_code`` decides)."""
    return code.worst_case()[0] <= DEFAULT_RTOL


def decoding_stability(
    code: GradientCode,
    *,
    n_sets: int = 200,
    dim: int = 1_000,
    random_state: object = None,
    sets: Sequence[tuple[int, ...]] | None = None,
) -> StabilityReport:
    """Decode from many straggler sets and report accuracy and timing.

    Parameters
    ----------
    code : GradientCode
        The code to measure (built with ``verify=False`` to measure one that
        ``make_code`` refuses).
    n_sets : int, default=200
        Straggler sets to try (all of them if there are fewer).
    dim : int, default=1000
        Gradient length.
    random_state : None, int or numpy Generator
        Seed for the straggler sets and partial gradients.
    sets : sequence of tuple of int, optional
        Straggler sets to use instead of drawing them.

    Returns
    -------
    StabilityReport
    """
    check_positive_int(n_sets, "n_sets")
    check_positive_int(dim, "dim")
    rng = rng_from(random_state)
    if sets is None:
        sets = straggler_sets(code.n_workers, code.n_stragglers, n_sets, rng)
    errors, bounds, conditions, cold, cached, inexact = [], [], [], [], [], 0
    for stragglers in sets:
        partials = rng.standard_normal((code.n_partitions, dim))
        truth = partials.sum(axis=0)
        messages = {
            worker: code.encode(worker, partials[code.partitions(worker)])
            for worker in range(code.n_workers)
            if worker not in stragglers
        }
        code.clear_cache()
        start = time.perf_counter()
        estimate, decoder = code.decode(
            messages, dim, approximate=True, return_info=True
        )
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        code.decode(messages, dim, approximate=True)
        cached.append(time.perf_counter() - start)
        errors.append(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))
        bounds.append(decoder.error_bound)
        conditions.append(decoder.condition_number)
        inexact += not decoder.exact
    return StabilityReport(
        scheme=code.scheme,
        n_workers=code.n_workers,
        n_stragglers=code.n_stragglers,
        comm_reduction=code.comm_reduction,
        load=code.load,
        accepted=_accepted(code),
        n_sets=len(errors),
        worst_relative_error=float(np.max(errors)),
        median_relative_error=float(np.median(errors)),
        worst_error_bound=float(np.max(bounds)),
        inexact_sets=inexact,
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


def _unchecked(scheme: str, n: int, s: int, m: int, random_state: int) -> GradientCode:
    from dask_gradcode.codes import make_code  # the registry imports this module

    return make_code(scheme, n, s, m, random_state=random_state, verify=False)


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
    ``m = 1``.  Codes are built without the build-time check so that refused
    sizes are measured too (``accepted`` says which).
    """
    grid: Iterable[tuple[str, int, int]] = [
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
        code = _unchecked(scheme, n, default_stragglers(n), m, random_state)
        reports.append(
            decoding_stability(code, n_sets=n_sets, dim=dim, random_state=random_state)
        )
    return reports


def worst_over_stragglers(
    scheme: str,
    n_workers: int,
    comm_reduction: int = 1,
    *,
    n_sets: int = 16,
    dim: int = 64,
    random_state: int = 0,
) -> dict[str, float | int | str]:
    """Worst decoding error of a scheme over every ``s`` it exists for at ``n``.

    For each ``s``, the code is built without the build-time check and
    decoded (``approximate=True``) from the probe sets a build uses (the
    stragglers in one contiguous run first, then a seeded sample).  Returns
    the worst relative error over all ``s`` and where it happened, how many
    ``s`` the default checks refuse, and the worst error among the ``s`` they
    accept (which must be at most ``rtol``).
    """
    n, m = n_workers, comm_reduction
    rng = rng_from(random_state)
    worst, worst_s, worst_accepted, refused, tried = 0.0, -1, 0.0, 0, 0
    for s in range(n - m + 1):
        try:
            code = _unchecked(scheme, n, s, m, random_state)
        except ValueError:
            continue  # the scheme does not exist at this s
        tried += 1
        sets = [
            tuple(sorted(set(range(n)) - set(responders)))
            for responders in probe_sets(n, s, n_sets)
        ]
        report = decoding_stability(code, dim=dim, random_state=rng, sets=sets)
        error = report.worst_relative_error
        if error >= worst:
            worst, worst_s = error, s
        if report.accepted:
            worst_accepted = max(worst_accepted, error)
        else:
            refused += 1
    return {
        "scheme": scheme,
        "n": n,
        "m": m,
        "s_tried": tried,
        "worst_error": worst,
        "worst_at_s": worst_s,
        "s_refused": refused,
        "worst_error_accepted": worst_accepted,
    }


def build_times(
    n_workers: Sequence[int] = (10, 30, 100, 300, 1000),
    shapes: Sequence[tuple[float, int]] = (
        (0.1, 2),
        (0.02, 1),
        (0.3, 1),
        (0.1, 10),
        (0.5, 1),
        (0.9, 2),
    ),
    *,
    scheme: str = "gaussian-mds",
    repeats: int = 3,
    random_state: int = 0,
) -> list[dict[str, float | int | str | bool]]:
    """Time to build (and verify) a code at each ``n`` for several shapes.

    ``shapes`` are ``(s / n, m)`` pairs; ``s`` is rounded and kept at least 1.
    The last two defaults need one cyclic group of all ``n`` workers
    (``s + m > n / 2``), the slowest construction.
    Each build is timed ``repeats`` times and the median kept.
    """
    from dask_gradcode.codes import make_code

    rows: list[dict[str, float | int | str | bool]] = []
    for n in n_workers:
        for fraction, m in shapes:
            s = max(1, round(fraction * n))
            if s + m > n:
                continue
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                code = make_code(scheme, n, s, m, random_state=random_state)
                times.append(time.perf_counter() - start)
            rows.append(
                {
                    "scheme": scheme,
                    "n": n,
                    "s": s,
                    "m": m,
                    "build_seconds": float(np.median(times)),
                    "optimal": bool(code.is_optimal),
                    "groups": len(code.groups) if hasattr(code, "groups") else 1,
                }
            )
    return rows


def load_against_optimum(
    shapes: Sequence[tuple[int, int]] = ((2, 2), (3, 1), (5, 3)),
    schemes: Sequence[str] = ("gaussian-mds", "auto"),
    *,
    random_state: int = 0,
) -> list[dict[str, float | int | str]]:
    """Load of each scheme against the optimum ``(s + m) / n``, ``n`` from ``d`` to ``4d``.

    Also lists Kadhe's equal-share grouping (``"linear"`` with a Gaussian
    generator of ``s + m`` columns), the layout ``gaussian-mds`` used before
    its groups were sized between ``d`` and ``2d - 1``.
    """
    from dask_gradcode.codes import make_code

    rows: list[dict[str, float | int | str]] = []
    for s, m in shapes:
        d = s + m
        generator = np.random.default_rng(random_state).standard_normal((m, d))
        for n in range(d, 4 * d + 1):
            optimum = d / n
            for scheme in (*schemes, "equal-share groups"):
                if scheme == "equal-share groups":
                    code = make_code("linear", n, s, generator=generator)
                else:
                    code = make_code(scheme, n, s, m, random_state=random_state)
                rows.append(
                    {
                        "scheme": scheme
                        if scheme != "auto"
                        else f"auto ({code.scheme})",
                        "s": s,
                        "m": m,
                        "n": n,
                        "load_fraction": code.load_fraction,
                        "optimum": optimum,
                        "ratio": code.load_fraction / optimum,
                    }
                )
    return rows


def stability_table(reports: list[StabilityReport]) -> str:
    """A markdown table of reports, one row each."""
    lines = [
        (
            "| scheme | n | s | m | load | built | sets | worst rel. error "
            "| median rel. error | worst bound | sets missing rtol | worst cond. "
            "| decode cold (ms) | decode cached (ms) |"
        ),
        "|---|--:|--:|--:|--:|:-:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in reports:
        lines.append(
            f"| {r.scheme} | {r.n_workers} | {r.n_stragglers} | {r.comm_reduction} "
            f"| {r.load:g} | {'yes' if r.accepted else 'refused'} | {r.n_sets} "
            f"| {r.worst_relative_error:.1e} | {r.median_relative_error:.1e} "
            f"| {r.worst_error_bound:.1e} | {r.inexact_sets} "
            f"| {r.worst_condition_number:.1e} "
            f"| {1e3 * r.cold_decode_seconds:.3f} "
            f"| {1e3 * r.cached_decode_seconds:.3f} |"
        )
    return "\n".join(lines)
