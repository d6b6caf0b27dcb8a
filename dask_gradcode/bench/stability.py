"""Decoding accuracy, conditioning and cost of the codes; build time and load.

Four parts: the decoding error and conditioning of ye-abbe, gaussian-mds and
cyclic-mds against ``n`` (``s`` about ``n / 10``); the worst error over every
``s`` of each scheme (and over the ``s`` the build checks accept); the time
to build gaussian-mds up to ``n = 1000``; and the load of gaussian-mds and
``scheme="auto"`` against the optimum ``(s + m) / n`` for ``n`` from ``d`` to
``4 d``.  Decode times are compared with the Dask round-trip floor measured
in the same run (``n`` pinned no-op tasks through ``as_completed``): the least
any iteration costs, so "negligible" is a ratio, not a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.cluster import ClusterTarget, round_trip_floor
from dask_gradcode.bench.plots import (
    build_time_against_n,
    error_against_n,
    load_against_n,
    worst_error_over_s,
)
from dask_gradcode.bench.report import Report, machine_description, markdown_table
from dask_gradcode.codes import DEFAULT_RTOL
from dask_gradcode.codes.diagnostics import (
    StabilityReport,
    build_times,
    load_against_optimum,
    stability_grid,
    stability_table,
    worst_over_stragglers,
)

__all__ = ["BENCHMARK", "measure", "page", "run"]

NAME = "decode_stability"


#: Schemes whose worst error over every s is measured.
ALL_S_SCHEMES = ("ye-abbe", "cyclic-mds", "cyclic-repetition", "gaussian-mds")


def measure(session: Session, o: Options) -> Measured:
    """Measure decoding stability, build time and load as ``n`` grows.

    ``o.workers`` are the numbers of workers of the first part (``s`` is
    about ``n / 10``; cyclic-mds only has ``m = 1`` of ``o.comm_reductions``);
    ``o.load_shapes`` are ``s, m`` pairs, flattened; an empty
    ``o.all_s_workers``, ``o.build_workers`` or ``o.load_shapes`` skips that
    part.  The Dask round-trip floor (with ``o.floor``) is measured on the
    session's target.  Returns the tables; ``facts["reports"]`` holds the
    first part's StabilityReports.
    """
    load_shapes = o.load_shapes
    if len(load_shapes) % 2:
        raise ValueError(
            f"load_shapes takes s, m pairs; got {len(load_shapes)} numbers"
        )
    reports = stability_grid(
        tuple(o.workers),
        tuple(o.comm_reductions),
        n_sets=o.sets,
        progress=session.progress,
    )
    all_s = _all_s(o.all_s_workers, o.comm_reductions, session)
    builds = build_times(tuple(o.build_workers)) if o.build_workers else []
    shapes = list(zip(load_shapes[::2], load_shapes[1::2], strict=True))
    loads = load_against_optimum(shapes) if shapes else []
    floors = _floors(session.target, reports) if o.floor else {}
    return Measured(
        {
            "codes": [r.as_dict() for r in reports],
            "all_s": all_s,
            "build_time": builds,
            "load": loads,
            "decode_vs_floor": decode_against_floor(reports, floors),
        },
        facts={"reports": reports},
    )


def _floors(
    target: ClusterTarget, reports: Sequence[StabilityReport]
) -> dict[int, float]:
    """The median round-trip floor at each ``n`` the cluster has the workers for."""
    floors: dict[int, float] = {}
    largest = None if target.embedded else target.count_workers()
    for n in sorted({r.n_workers for r in reports}):
        if largest is not None and n > largest:
            continue  # an existing cluster too small for this n
        with target.connect(n) as client:
            floors[n] = float(np.median(round_trip_floor(client, n)))
    return floors


def run(**options: Any) -> Report:
    """Measure, then write the page: ``BENCHMARK.run(**options)``."""
    return BENCHMARK.run(**options)


def page(measured: Measured, session: Session) -> Page:
    """The figures and the markdown page of a measurement."""
    reports = measured.facts["reports"]
    tables = measured.tables
    figures = {"": error_against_n(reports)}
    if tables["all_s"]:
        figures["all_s"] = worst_error_over_s(tables["all_s"], DEFAULT_RTOL)
    if tables["build_time"]:
        figures["build_time"] = build_time_against_n(tables["build_time"])
    if tables["load"]:
        figures["load"] = load_against_n(tables["load"])
    return Page(_markdown(reports, tables, session), figures)


def _all_s(
    workers: Sequence[int], comm_reductions: Sequence[int], session: Session
) -> list[dict]:
    grid = [
        (scheme, n, m)
        for n in workers
        for scheme in ALL_S_SCHEMES
        for m in comm_reductions
        if m == 1 or scheme in ("ye-abbe", "gaussian-mds")
    ]
    return [
        worst_over_stragglers(scheme, n, m)
        for scheme, n, m in session.bar(grid, desc="every s", unit="code")
    ]


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
    if not reports:
        return ""
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
            "is a useless gradient); "
            f"{sum(not r.accepted for r in chosen)} of {len(chosen)} sizes refused "
            "by make_code."
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


ALL_S_COLUMNS = {
    "scheme": "scheme",
    "n": "n",
    "m": "m",
    "s_tried": "s tried",
    "worst_error": "worst error, every s",
    "worst_at_s": "at s",
    "s_refused": "s refused",
    "worst_error_accepted": "worst error, s accepted",
}

BUILD_COLUMNS = {
    "n": "n",
    "s": "s",
    "m": "m",
    "groups": "groups",
    "optimal": "optimal load",
    "build_seconds": "build + verify (s)",
}


def _all_s_reading(rows: Sequence[dict]) -> str:
    if not rows:
        return "(not measured)"
    lines = []
    for scheme in ALL_S_SCHEMES:
        chosen = [r for r in rows if r["scheme"] == scheme]
        if not chosen:
            continue
        worst = max(chosen, key=lambda r: r["worst_error"])
        accepted = max(r["worst_error_accepted"] for r in chosen)
        refused = sum(r["s_refused"] for r in chosen)
        tried = sum(r["s_tried"] for r in chosen)
        lines.append(
            f"- **{scheme}**: worst error {worst['worst_error']:.1e} (n = "
            f"{worst['n']}, m = {worst['m']}, s = {worst['worst_at_s']}); "
            f"{refused} of {tried} sizes refused; the sizes it builds decode "
            f"within {accepted:.1e}."
        )
    return "\n".join(lines)


def _build_reading(rows: Sequence[dict]) -> str:
    if not rows:
        return "(not measured)"
    largest = max(r["n"] for r in rows)
    slowest = max(
        (r for r in rows if r["n"] == largest), key=lambda r: r["build_seconds"]
    )
    return (
        f"The slowest build at n = {largest} took {slowest['build_seconds']:.2f} s "
        f"(s = {slowest['s']}, m = {slowest['m']}); "
        f"{sum(not r['optimal'] for r in rows)} of {len(rows)} builds fell back "
        "to equal-share groups."
    )


def _load_reading(rows: Sequence[dict]) -> str:
    if not rows:
        return "(not measured)"
    lines = []
    for scheme in dict.fromkeys(r["scheme"].split(" (")[0] for r in rows):
        chosen = [r for r in rows if r["scheme"].split(" (")[0] == scheme]
        worst = max(chosen, key=lambda r: r["ratio"])
        optimal = sum(abs(r["ratio"] - 1) < 1e-9 for r in chosen)
        lines.append(
            f"- **{scheme}**: optimal at {optimal} of {len(chosen)} sizes; worst "
            f"{worst['ratio']:.2f} x the optimum (n = {worst['n']}, s = "
            f"{worst['s']}, m = {worst['m']})."
        )
    return "\n".join(lines)


def _markdown(
    reports: Sequence[StabilityReport],
    tables: dict[str, list[dict[str, Any]]],
    session: Session,
) -> str:
    all_s, builds, loads = tables["all_s"], tables["build_time"], tables["load"]
    floor_rows = tables["decode_vs_floor"]
    if floor_rows:
        floor_text = markdown_table(floor_rows, FLOOR_COLUMNS)
    else:
        floor_text = "(floor not measured: run without --no-floor)"
    all_s_table = markdown_table(all_s, ALL_S_COLUMNS) if all_s else ""
    build_table = markdown_table(builds, BUILD_COLUMNS) if builds else ""
    return f"""# Decoding stability, build time and load

{session.reproduce()}

Measured on {machine_description()}.  Every decode checks its own accuracy:
its error bound (the residual of the decoding matrix plus float64 rounding,
relative to the root-sum-square of the partial gradients) must reach the
code's `rtol` (default `1e-8`), or the decode raises instead of returning an
"exact" gradient; `make_code` refuses a scheme at a size where the worst
responder sets it measures (the stragglers in one contiguous run, spread out,
and a seeded sample) miss it.  The codes below are built without that check,
so that refused sizes are measured too ("built" says what `make_code` does).

## Error against n, s about n/10

For each code, straggler sets of size `s` (all of them when there are at
most the number of sets asked for, otherwise distinct random ones), partial
gradients redrawn i.i.d. standard normal for every set, gradient length
1,000, decoded with `approximate=True` so that inaccurate sets are measured
rather than refused ("sets missing rtol" counts those an exact decode would
have refused).  `s` is about `n/10`, nudged so that `n - s` is odd (the real
cyclic-MDS construction needs it).  "worst cond." is the condition number of
the system solved to decode (the `(n - s)`-point Vandermonde for ye-abbe,
the per-group generator blocks or evaluation matrices for gaussian-mds, the
responders' rows of the encoding matrix for cyclic-mds).

{stability_table(list(reports))}

![decoding error and conditioning against n](decode_stability.png)

{_reading(reports)}

## Worst error over every s

For every `s` a scheme exists for at each `n` (and `m = 1, 2` where the
scheme has `m`), the probe sets a build checks plus a seeded sample (16
sets), gradient length 64.  "s refused" counts the sizes `make_code`
refuses; the last column is the worst error among the sizes it builds.

{all_s_table}

{"![worst error over every s](decode_stability_all_s.png)" if all_s else ""}

{_all_s_reading(all_s)}

## Building gaussian-mds up to n = 1000

Median of three builds (construction plus the build-time check) for several
shapes `s / n, m`.

{build_table}

{"![build time against n](decode_stability_build_time.png)" if builds else ""}

{_build_reading(builds)}

## Load against the optimum

Share of the data the busiest worker processes, over Ye & Abbe's bound
`(s + m) / n`, for `n` from `d = s + m` to `4 d`.  "equal-share groups" is
Kadhe et al.'s grouping as gaussian-mds used it before (every group of
`d` or more workers holds `1 / (n // d)` of the data); gaussian-mds now sizes
its groups between `d` and `2d - 1` and shares the data by group size.

{"![load against n](decode_stability_load.png)" if loads else ""}

{_load_reading(loads)}

## Decoding cost next to an iteration

Every coded iteration costs at least the Dask round trip: `n` pinned no-op
tasks collected with `distributed.as_completed`, measured in the same run on
{session.target.describe()} with `n` single-thread workers.  Decode times are the
slowest over the schemes at that `n`; "cold" is the first time a straggler
pattern is seen (solve, accuracy check, apply), "cached" a repeated pattern.

{floor_text}
"""


def _skippable(flag: str, default: tuple[int, ...], text: str) -> opt.Option:
    """Numbers of workers at which a part runs; none skips it."""
    return opt.option(
        flag, default, opt.at_least(2), f"{text} (none: skip)", nargs="*", metavar="N"
    )


BENCHMARK = Benchmark(
    "stability",
    files=NAME,
    help="decoding error, conditioning and cost against n, worst error over every "
    "s, gaussian-mds build time up to n = 1000, load against the optimum",
    measure=measure,
    page=page,
    transport=False,
    options=(
        opt.workers((10, 20, 30, 50, 100), 2, "numbers of workers n (s is about n/10)"),
        opt.option(
            "--comm-reductions",
            (1, 2),
            opt.positive,
            "communication reductions m",
            nargs="+",
            metavar="M",
        ),
        opt.option("--sets", 200, opt.positive, "straggler sets per code"),
        _skippable(
            "--all-s-workers",
            (10, 20, 30, 50, 100),
            "numbers of workers at which every s is measured",
        ),
        _skippable(
            "--build-workers",
            (10, 30, 100, 300, 1000),
            "numbers of workers at which gaussian-mds build time is measured",
        ),
        opt.option(
            "--load-shapes",
            (2, 2, 3, 1, 5, 3),
            opt.at_least(0),
            "s m pairs whose load is measured for n from s+m to 4(s+m) (none: skip)",
            nargs="*",
            metavar="S M",
        ),
        opt.switch("--no-floor", True, "skip the Dask round-trip measurement", "floor"),
    ),
)
