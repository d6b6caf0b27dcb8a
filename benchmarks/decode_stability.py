"""Decoding accuracy, conditioning and cost of ye-abbe, gaussian-mds and cyclic-mds.

Writes ``docs/decode_stability.md`` (table), ``docs/decode_stability.csv`` and
``docs/decode_stability.png`` (plot).  Run from the repository root::

    python benchmarks/decode_stability.py            # the full grid, ~10 s
    python benchmarks/decode_stability.py --quick    # a smoke run

Decode times are compared with the Dask round-trip floor measured in the
same run (``n`` pinned no-op tasks through ``as_completed``): the least any
iteration costs, so "negligible" is a ratio, not a guess.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
from pathlib import Path

import numpy as np
from common import dask_round_trip_floor

from dask_gradcode.codes.diagnostics import (
    StabilityReport,
    stability_grid,
    stability_table,
)

ROOT = Path(__file__).resolve().parent.parent


def plot(reports: list[StabilityReport], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_err, ax_cond) = plt.subplots(
        1, 2, figsize=(11, 4.2), constrained_layout=True
    )
    styles = {"ye-abbe": "o-", "gaussian-mds": "s-", "cyclic-mds": "^--"}
    series: dict[tuple[str, int], list[StabilityReport]] = {}
    for r in reports:
        series.setdefault((r.scheme, r.comm_reduction), []).append(r)
    for (scheme, m), rows in sorted(series.items()):
        ns = [r.n_workers for r in rows]
        label = f"{scheme}, m={m}"
        ax_err.semilogy(
            ns,
            [max(r.worst_relative_error, 1e-17) for r in rows],
            styles[scheme],
            label=label,
        )
        ax_cond.semilogy(
            ns, [r.worst_condition_number for r in rows], styles[scheme], label=label
        )
    ax_err.axhline(1e-10, color="grey", lw=0.8, ls=":")
    ax_err.text(11, 2e-10, "target 1e-10", color="grey", fontsize=8)
    ax_err.set(
        xlabel="workers n (s ≈ n/10)",
        ylabel="worst relative decoding error",
        title="Decoding error over random straggler sets",
    )
    ax_cond.set(
        xlabel="workers n (s ≈ n/10)",
        ylabel="worst condition number",
        title="Conditioning of the decoding solve",
    )
    for ax in (ax_err, ax_cond):
        ax.grid(True, which="major", alpha=0.3)
    ax_err.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _first_n(reports, scheme: str, above: float) -> str:
    """Smallest n at which ``scheme``'s worst error exceeds ``above`` (any m)."""
    ns = [
        r.n_workers
        for r in reports
        if r.scheme == scheme and r.worst_relative_error > above
    ]
    return f"n = {min(ns)}" if ns else "no n tried"


def decode_vs_floor_table(reports, floors: dict[int, float]) -> str:
    lines = [
        (
            "| n | Dask floor (ms) | slowest cold decode (ms) | cold / floor "
            "| slowest cached decode (ms) | cached / floor |"
        ),
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for n, floor in sorted(floors.items()):
        at_n = [r for r in reports if r.n_workers == n]
        cold = max(r.cold_decode_seconds for r in at_n)
        cached = max(r.cached_decode_seconds for r in at_n)
        lines.append(
            f"| {n} | {1e3 * floor:.1f} | {1e3 * cold:.3f} | {100 * cold / floor:.2f}% "
            f"| {1e3 * cached:.3f} | {100 * cached / floor:.2f}% |"
        )
    return "\n".join(lines)


def write_markdown(reports, floors, command, path: Path) -> None:
    by_scheme = {
        scheme: [r for r in reports if r.scheme == scheme]
        for scheme in ("ye-abbe", "gaussian-mds", "cyclic-mds")
    }
    gaussian_at_max = [
        r
        for r in by_scheme["gaussian-mds"]
        if r.n_workers == max(r.n_workers for r in reports)
    ]
    text = f"""# Decoding stability

Reproduce with `{command}` (from the repository root, after `make test`
or `pip install -e .[bench]`).

Measured on {platform.machine()} with {os.cpu_count()} cores, Python
{platform.python_version()}, numpy {np.__version__}.  For each code, straggler
sets of size `s` (all of them when there are at most the number of sets
asked for, otherwise distinct random ones), partial gradients redrawn i.i.d.
standard normal for every set, gradient length 1,000.  `s` is about `n/10`,
nudged so that `n - s` is odd (the real cyclic-MDS construction needs it).
`gaussian-mds` reports the tolerance its groups really give: where `s + m`
does not divide `n`, groups are larger and tolerate more, and the sets tried
are that much larger.  "worst cond." is the condition number of the system
solved to decode (the `(n - s)`-point Vandermonde for ye-abbe, the `m x r`
generator blocks for gaussian-mds, the responders' rows of the encoding matrix
for cyclic-mds).

{stability_table(reports)}

![decoding error and conditioning against n](decode_stability.png)

## Reading it

- **ye-abbe**: worst condition number up to
  {max(r.worst_condition_number for r in by_scheme["ye-abbe"]):.1e}; the worst
  relative error first exceeds 1e-10 at {_first_n(reports, "ye-abbe", 1e-10)}
  and exceeds 1 (a useless gradient) at {_first_n(reports, "ye-abbe", 1.0)}.
- **gaussian-mds**: worst relative error over all sizes
  {max(r.worst_relative_error for r in by_scheme["gaussian-mds"]):.1e}; at the
  largest n, {max((r.worst_relative_error for r in gaussian_at_max), default=float("nan")):.1e}
  (goal: <= 1e-10 at n = 100). It only solves small `m x r` systems.
- **cyclic-mds** (m = 1): worst relative error
  {max(r.worst_relative_error for r in by_scheme["cyclic-mds"]):.1e}, worst
  condition number {max(r.worst_condition_number for r in by_scheme["cyclic-mds"]):.1e};
  its conditioning grows with `n` and `s`.

## Decoding cost next to an iteration

Every coded iteration costs at least the Dask round trip: `n` pinned no-op
tasks collected with `distributed.as_completed`, measured in the same run on an
in-process `LocalCluster` with `n` single-thread workers.  Decode times are the
slowest over the schemes at that `n`; "cold" is the first time a straggler
pattern is seen (solve + apply), "cached" a repeated pattern.

{decode_vs_floor_table(reports, floors) if floors else "(floor not measured: run without --no-floor)"}
"""
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid, few sets")
    parser.add_argument("--sets", type=int, default=200, help="straggler sets per code")
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the Dask round-trip measurement"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="output folder")
    args = parser.parse_args()
    if args.quick:
        reports = stability_grid((10, 20), (1, 2), n_sets=20, progress=True)
        command = "python benchmarks/decode_stability.py --quick"
    else:
        reports = stability_grid(n_sets=args.sets, progress=True)
        command = "python benchmarks/decode_stability.py"
    floors = (
        {}
        if args.no_floor
        else {
            n: dask_round_trip_floor(n) for n in sorted({r.n_workers for r in reports})
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "decode_stability.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(reports[0].as_dict()))
        writer.writeheader()
        writer.writerows(r.as_dict() for r in reports)
    write_markdown(reports, floors, command, args.out / "decode_stability.md")
    plot(reports, args.out / "decode_stability.png")
    print(stability_table(reports))
    if floors:
        print()
        print(decode_vs_floor_table(reports, floors))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
