"""Coded iteration time on a LocalCluster, side by side for every scheme.

Writes ``docs/iteration_time.md``, ``docs/iteration_time.csv`` and
``docs/iteration_time.png``.  Run from the repository root::

    python benchmarks/iteration_time.py           # full run, a few minutes
    python benchmarks/iteration_time.py --quick   # smoke run

Four measurements, each in the same run and on the same cluster as the
numbers it is compared with:

1. Straggler scenarios (``n = 9``, ``s = 2``): every scheme under
   (a) ``SlowWorkers(n_slow=2, delay=0.3 s)`` drawn anew each round and
   (b) ``ShiftedExponential(scale=30 ms)`` on every worker.  For each round
   the *ideal* is the time at which the ``(n - s)``-th fastest worker finished
   its computation plus its injected delay; the *floor* is the bare Dask round
   trip (``n`` pinned no-op tasks collected with ``as_completed``).
2. Weights shipping: embedding the weights in every task against scattering
   them once per round, for growing ``dim``.
3. Communication (the shape of Kadhe et al.'s EC2 experiment): a large sparse
   model over a ``Bandwidth`` link, ``gaussian-mds`` with ``m > 1`` against
   ``cyclic-repetition`` (``m = 1``) and ``ye-abbe`` at equal ``s``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
from pathlib import Path

import numpy as np
import scipy.sparse
from common import local_client, round_trip_floor

import dask_gradcode.scheduler as scheduler_module
from dask_gradcode.codes import make_code
from dask_gradcode.scheduler import CodedGradient
from dask_gradcode.stragglers import Bandwidth, ShiftedExponential, SlowWorkers

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 2
#: Rows of the straggler scenarios (:func:`overhead` also runs 4x this).
STRAGGLER_ROWS = 36_000


def straggler_schemes(n: int, s: int) -> list[tuple[str, int, int]]:
    """(scheme, s, m) rows of the straggler comparison."""
    return [
        ("uncoded", 0, 1),
        ("ignore-stragglers", s, 1),
        ("fractional-repetition", s, 1),
        ("cyclic-repetition", s, 1),
        ("cyclic-mds", s, 1),
        ("ye-abbe", s, 1),
        ("gaussian-mds", s, 1),
        ("gaussian-mds", s, 2),
    ]


def classification_data(n_rows: int, n_features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features))
    y = (X @ rng.standard_normal(n_features) > 0).astype(float)
    return X, y


def run_rounds(client, code, X, y, loss, model, bandwidth, n_rounds):
    w = np.random.default_rng(1).standard_normal(X.shape[1]) * 0.01
    with CodedGradient(
        client, code, X, y, loss, straggler_model=model, bandwidth=bandwidth
    ) as cg:
        for _ in range(WARMUP + n_rounds):
            cg(w)
    return cg.history[WARMUP:]


def ideal_seconds(record, code, model, bandwidth, message_bytes) -> float:
    """When the (n - s)-th fastest worker finished computing plus its delay."""
    n = record.n_workers
    compute_estimate = float(np.median(list(record.compute_seconds.values())))
    finish = []
    for worker in range(n):
        if worker in record.compute_seconds:
            finish.append(
                record.compute_seconds[worker] + record.injected_delay[worker]
            )
            continue
        delay = (
            0.0
            if model is None
            else model.delay(record.iteration, worker, n, compute_estimate)
        )
        if bandwidth is not None:
            delay += bandwidth.transfer_seconds(message_bytes)
        finish.append(compute_estimate + delay)
    return sorted(finish)[n - code.n_stragglers - 1]


def measure(client, code, X, y, loss, model, bandwidth, n_rounds):
    """Floor rounds, then the scheme's rounds, back to back on the same cluster."""
    floor = float(np.mean(round_trip_floor(client, code.n_workers, n_rounds)))
    return floor, run_rounds(client, code, X, y, loss, model, bandwidth, n_rounds)


def summarise(name, code, records, model, bandwidth, floor, dim) -> dict:
    walls = np.array([r.wall_seconds for r in records])
    message_bytes = 8 * code.message_length(dim + 1)
    ideals = np.array(
        [ideal_seconds(r, code, model, bandwidth, message_bytes) for r in records]
    )
    decode_share = np.mean([r.decode_seconds / r.wall_seconds for r in records])
    decode_cpu_share = np.mean([r.decode_cpu_seconds / r.wall_seconds for r in records])
    return {
        "scenario": name,
        "scheme": code.scheme,
        "s": code.n_stragglers,
        "m": code.comm_reduction,
        "load": code.load,
        "floor_ms": 1e3 * floor,
        "mean_ms": 1e3 * walls.mean(),
        "p95_ms": 1e3 * np.percentile(walls, 95),
        "ideal_plus_floor_ms": 1e3 * (ideals.mean() + floor),
        "ratio_to_ideal": walls.mean() / (ideals.mean() + floor),
        "decode_share": decode_share,
        "decode_cpu_share": decode_cpu_share,
        "exact": all(r.exact for r in records),
        "bytes_per_message": message_bytes,
        "walls": walls,
    }


def straggler_comparison(n_rounds: int, quick: bool) -> list[dict]:
    n, s = 9, 2
    X, y = classification_data(STRAGGLER_ROWS, 100)
    scenarios = {
        "2 slow workers (+0.3 s)": SlowWorkers(s, delay=0.3, random_state=0),
        "shifted exponential (30 ms)": ShiftedExponential(scale=0.03, random_state=0),
    }
    schemes = straggler_schemes(n, s)
    if quick:
        schemes = [row for row in schemes if row[0] in ("uncoded", "gaussian-mds")]
    rows = []
    with local_client(n) as client:
        for name, model in scenarios.items():
            for scheme, s_, m in schemes:
                code = make_code(scheme, n, s_, m, random_state=0)
                floor, records = measure(
                    client, code, X, y, "log_loss", model, None, n_rounds
                )
                rows.append(
                    summarise(name, code, records, model, None, floor, X.shape[1])
                )
                print(f"  {name:<30} {scheme:<22} m={m}  {rows[-1]['mean_ms']:8.1f} ms")
    return rows


def overhead(n_rounds: int) -> list[dict]:
    """Coded rounds without stragglers against the bare floor, two data sizes."""
    n = 9
    rows = []
    with local_client(n) as client:
        for n_rows in (STRAGGLER_ROWS, 4 * STRAGGLER_ROWS):
            X, y = classification_data(n_rows, 100)
            code = make_code("gaussian-mds", n, 2, 1, random_state=0)
            floor, records = measure(
                client, code, X, y, "log_loss", None, None, n_rounds
            )
            compute = np.median(
                [np.median(list(r.compute_seconds.values())) for r in records]
            )
            mean = np.mean([r.wall_seconds for r in records])
            rows.append(
                {
                    "rows": n_rows,
                    "floor_ms": 1e3 * floor,
                    "compute_ms": 1e3 * compute,
                    "mean_ms": 1e3 * mean,
                    "ratio": mean / (floor + compute),
                }
            )
            print(f"  overhead rows={n_rows:<7} {rows[-1]['mean_ms']:8.1f} ms")
    return rows


def weights_shipping(n_rounds: int, quick: bool) -> list[dict]:
    """Round time with weights embedded in each task vs scattered once per round.

    On worker processes over TCP: in-process workers pass task arguments by
    reference, which would hide the cost being measured.
    """
    n = 4
    dims = (1_000, 100_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    rows = []
    original = scheduler_module.EMBED_WEIGHTS_MAX_BYTES
    with local_client(n, processes=True) as client:
        for dim in dims:
            X = scipy.sparse.random(
                40, dim, density=10 / dim, format="csr", random_state=0
            )
            y = np.random.default_rng(0).standard_normal(40)
            code = make_code("gaussian-mds", n, 1, 1, random_state=0)
            for how, limit in (
                ("embedded in each task", np.inf),
                ("scattered per round", -1),
            ):
                scheduler_module.EMBED_WEIGHTS_MAX_BYTES = limit
                try:
                    records = run_rounds(
                        client, code, X, y, "squared_error", None, None, n_rounds
                    )
                finally:
                    scheduler_module.EMBED_WEIGHTS_MAX_BYTES = original
                rows.append(
                    {
                        "dim": dim,
                        "how": how,
                        "submit_ms": 1e3 * np.mean([r.submit_seconds for r in records]),
                        "mean_ms": 1e3 * np.mean([r.wall_seconds for r in records]),
                    }
                )
                print(f"  weights dim={dim:<9} {how:<22} {rows[-1]['mean_ms']:8.1f} ms")
    return rows


def sparse_rows(n_rows: int, dim: int, per_row: int, seed: int = 0):
    """A CSR matrix with ``per_row`` random non-zeros in every row."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.integers(0, dim, (n_rows, per_row)), axis=1).ravel()
    indptr = np.arange(0, n_rows * per_row + 1, per_row)
    values = rng.standard_normal(n_rows * per_row)
    return scipy.sparse.csr_matrix((values, indices, indptr), shape=(n_rows, dim))


#: Link speeds of the communication comparison, bytes per second.
BANDWIDTHS = (25e6, 100e6, 400e6)


def communication_comparison(n_rounds: int, quick: bool) -> list[dict]:
    """Large sparse model over links of several speeds: bytes against load."""
    n, s = 12, 2
    dim = 50_000 if quick else 200_000
    X = sparse_rows(12_000, dim, per_row=40)
    y = (np.random.default_rng(0).random(12_000) < 0.5).astype(float)
    model = ShiftedExponential(scale=0.01, random_state=0)
    schemes = [
        ("cyclic-repetition", 1),
        ("ye-abbe", 2),
        ("ye-abbe", 4),
        ("gaussian-mds", 2),
        ("gaussian-mds", 4),
    ]
    rows = []
    with local_client(n) as client:
        for speed in BANDWIDTHS[1:2] if quick else BANDWIDTHS:
            link = Bandwidth(speed)
            for scheme, m in schemes:
                code = make_code(scheme, n, s, m, random_state=0)
                floor, records = measure(
                    client, code, X, y, "log_loss", model, link, n_rounds
                )
                name = f"{speed / 1e6:g} MB/s"
                rows.append(summarise(name, code, records, model, link, floor, dim))
                print(f"  {name:<10} {scheme:<20} m={m}  {rows[-1]['mean_ms']:8.1f} ms")
    return rows


def plot(rows: list[dict], comm_rows: list[dict], path: Path) -> None:
    """Box plots of the straggler scenarios; the communication comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    fig, axes = plt.subplots(
        1,
        len(scenarios) + 1,
        figsize=(5.2 * (len(scenarios) + 1), 4.6),
        constrained_layout=True,
    )
    for ax, scenario in zip(axes, scenarios, strict=False):
        chosen = [r for r in rows if r["scenario"] == scenario]
        ax.boxplot(
            [1e3 * r["walls"] for r in chosen],
            tick_labels=[f"{r['scheme']}\nm={r['m']}" for r in chosen],
            showfliers=True,
        )
        ax.set_yscale("log")
        ax.set(ylabel="iteration time (ms, log scale)", title=f"n=9, s=2: {scenario}")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    ax = axes[-1]
    speeds = list(dict.fromkeys(r["scenario"] for r in comm_rows))
    schemes = list(dict.fromkeys((r["scheme"], r["m"]) for r in comm_rows))
    width = 0.8 / len(speeds)
    for k, speed in enumerate(speeds):
        at_speed = {
            (r["scheme"], r["m"]): r for r in comm_rows if r["scenario"] == speed
        }
        base = at_speed[("cyclic-repetition", 1)]["mean_ms"]
        ax.bar(
            np.arange(len(schemes)) + (k - (len(speeds) - 1) / 2) * width,
            [at_speed[key]["mean_ms"] / base for key in schemes],
            width,
            label=f"{speed} links",
        )
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(schemes)), [f"{sch}\nm={m}" for sch, m in schemes])
    ax.set(
        ylabel="mean iteration time / cyclic-repetition",
        title="n=12, s=2, 200,000 coefficients",
    )
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict], columns: dict[str, str]) -> str:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            value = row[key]
            cells.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


STRAGGLER_COLUMNS = {
    "scenario": "scenario",
    "scheme": "scheme",
    "s": "s",
    "m": "m",
    "load": "load",
    "mean_ms": "mean (ms)",
    "p95_ms": "p95 (ms)",
    "floor_ms": "floor (ms)",
    "ideal_plus_floor_ms": "ideal + floor (ms)",
    "ratio_to_ideal": "mean / (ideal + floor)",
    "decode_share": "decode share (wall)",
    "decode_cpu_share": "decode share (CPU)",
    "exact": "exact",
}


def write_markdown(rows, overhead_rows, weight_rows, comm_rows, command, path) -> None:
    def mean_of(scenario, scheme, m=1):
        return next(
            r["mean_ms"]
            for r in rows
            if r["scenario"] == scenario and r["scheme"] == scheme and r["m"] == m
        )

    slow = "2 slow workers (+0.3 s)"
    tolerant = [
        r
        for r in rows
        if r["scenario"] == slow and r["scheme"] not in ("uncoded", "ignore-stragglers")
    ]
    speedups = {
        f"{r['scheme']} m={r['m']}": mean_of(slow, "uncoded") / r["mean_ms"]
        for r in tolerant
    }
    exact_rows = [r for r in rows if r["exact"] and r["scheme"] != "uncoded"]
    worst_ratio = max(r["ratio_to_ideal"] for r in exact_rows)
    worst_decode = max(r["decode_share"] for r in rows + comm_rows)
    worst_decode_cpu = max(r["decode_cpu_share"] for r in rows + comm_rows)
    comm_lines = []
    for speed in dict.fromkeys(r["scenario"] for r in comm_rows):
        at_speed = [r for r in comm_rows if r["scenario"] == speed]
        reference = next(r for r in at_speed if r["scheme"] == "cyclic-repetition")
        changes = ", ".join(
            f"{r['scheme']} m={r['m']} {100 * (r['mean_ms'] / reference['mean_ms'] - 1):+.0f}%"
            for r in at_speed
            if r is not reference
        )
        comm_lines.append(
            f"- {speed}: against cyclic-repetition ({reference['mean_ms']:.1f} ms): {changes}"
        )
    comm_lines = "\n".join(comm_lines)
    overhead_text = (
        f"{overhead_rows[0]['ratio']:.2f} with {overhead_rows[0]['rows']:,} rows and "
        f"{overhead_rows[1]['ratio']:.2f} with {overhead_rows[1]['rows']:,}"
    )
    text = f"""# Iteration time

Reproduce with `{command}` (from the repository root, after `make test`).

Measured on {platform.machine()} with {os.cpu_count()} cores, Python
{platform.python_version()}: an in-process `LocalCluster` with one single-thread
worker per code worker. Each scheme runs {len(rows[0]["walls"])} rounds after
{WARMUP} warm-up rounds. "ideal" is, per round, the time at which the
`(n - s)`-th fastest worker finished its computation plus its injected delay;
"floor" is the bare Dask round trip (`n` pinned no-op tasks collected with
`as_completed`), measured on the same cluster right before each scheme's
rounds, because it drifts by tens of percent over a run.
`ignore-stragglers` is approximate (it waits for `n - s` workers and rescales).

## Stragglers: n = 9, s = 2, logistic loss on {STRAGGLER_ROWS:,} x 100

{table(rows, STRAGGLER_COLUMNS)}

![iteration times](iteration_time.png)

- Speed-up over uncoded with 2 slow workers (target >= 3x):
  {", ".join(f"{k}: {v:.1f}x" for k, v in speedups.items())}.
- Worst mean / (ideal + floor) over the exact coded schemes: {worst_ratio:.2f}
  (target <= 1.15).
- Largest share of an iteration spent decoding: {100 * worst_decode:.2f}% of the
  wall time, {100 * worst_decode_cpu:.2f}% counting only the decoding thread's CPU
  time (target < 2%). The difference is time the decode waited for the
  process's other threads: here the in-process workers that are still
  computing the round's late results.

## Overhead without stragglers

gaussian-mds, n = 9, s = 2, no injected delay: the coded round against the
floor plus one worker's median computation time, for two data sizes. The
ratio ({overhead_text}) is what the library adds to a bare Dask round trip
and a worker's own computation. Nine in-process workers share
{os.cpu_count()} cores here; while a `CodedGradient` runs on workers that share
a process it limits BLAS to one thread per call (worker processes started by
Dask's nanny already are), without which concurrent BLAS calls oversubscribe
the cores.

{table(overhead_rows, {"rows": "rows", "floor_ms": "floor (ms)", "compute_ms": "compute (ms)", "mean_ms": "round (ms)", "ratio": "round / (floor + compute)"})}

## Weights shipping

Weights up to {scheduler_module.EMBED_WEIGHTS_MAX_BYTES // 1024} KiB travel inside
each task (they reach the worker with the task, no extra round trip); larger
weights are scattered to the round's workers with
`client.scatter(w, workers=..., broadcast=True)`, one direct client-to-worker
transfer each, and the tasks reference the one key.  Measured on 4 worker
*processes* over TCP (in-process workers would pass the weights by reference
and hide the cost), gaussian-mds with m = 1, tiny sparse data so the shipping
dominates:

{table(weight_rows, {"dim": "dim", "how": "weights", "submit_ms": "submit (ms)", "mean_ms": "round (ms)"})}

## Communication: n = 12, s = 2, sparse logistic regression, links of 25 to 400 MB/s

The shape of Kadhe et al.'s EC2 experiment: a large model (200,000
coefficients, so each uncoded message is 1.6 MB), each worker's link delays its
message by size / bandwidth, plus shifted-exponential delays (10 ms).  A larger
`m` sends `m` times fewer bytes but raises the load to `s + m` partitions per
worker, so which wins depends on the link.  The paper reports 16% lower mean iteration time
for its Gaussian MDS code against earlier gradient codes on EC2.

{table(comm_rows, STRAGGLER_COLUMNS | {"bytes_per_message": "bytes / message"})}

{comm_lines}
"""
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds and schemes")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per scheme")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="output folder")
    args = parser.parse_args()
    rounds = 5 if args.quick else args.rounds
    command = "python benchmarks/iteration_time.py" + (" --quick" if args.quick else "")
    print("stragglers:")
    rows = straggler_comparison(rounds, args.quick)
    print("overhead:")
    overhead_rows = overhead(rounds)
    print("weights shipping:")
    weight_rows = weights_shipping(rounds, args.quick)
    print("communication:")
    comm_rows = communication_comparison(rounds, args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "iteration_time.csv", "w", newline="") as handle:
        fields = [*STRAGGLER_COLUMNS, "bytes_per_message"]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows + comm_rows)
    write_markdown(
        rows,
        overhead_rows,
        weight_rows,
        comm_rows,
        command,
        args.out / "iteration_time.md",
    )
    plot(rows, comm_rows, args.out / "iteration_time.png")
    print((args.out / "iteration_time.md").read_text())


if __name__ == "__main__":
    main()
