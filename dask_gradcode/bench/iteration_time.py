"""Coded iteration time on a Dask cluster, side by side for every scheme.

Five measurements, each in the same run and on the same cluster as the
numbers it is compared with:

1. ``stragglers``: every scheme under (a) ``SlowWorkers(n_slow=s)`` drawn anew
   each round and (b) ``ShiftedExponential`` delays on every worker.  For each
   round the *ideal* is the time at which the ``(n - s)``-th fastest worker
   finished its computation plus its injected delay; the *floor* is the bare
   Dask round trip (``n`` pinned no-op tasks collected with ``as_completed``).
2. ``slow-workers``: speed-up over uncoded as the number of slow workers per
   round grows from 0 past ``s``.
3. ``overhead``: coded rounds without stragglers against the floor plus one
   worker's computation, for two data sizes.
4. ``weights``: embedding the weights in every task against scattering them
   once per round, for growing ``dim`` (on worker processes).
5. ``communication`` (the shape of Kadhe et al.'s EC2 experiment): a large
   sparse model over a ``Bandwidth`` link, ``gaussian-mds`` and ``ye-abbe``
   with ``m > 1`` against ``cyclic-repetition`` (``m = 1``) at equal ``s``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from unittest import mock

import numpy as np
import scipy.sparse
from distributed import Client, Future

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.cluster import round_trip_floor
from dask_gradcode.bench.plots import (
    bytes_against_m,
    communication_bars,
    iteration_time_boxes,
    speedup_against_slow_workers,
)
from dask_gradcode.bench.report import Report, machine_description, markdown_table
from dask_gradcode.bench.schemes import (
    Row,
    buildable_codes,
    check_stragglers,
    compared_schemes,
    skipped_note,
)
from dask_gradcode.codes import GradientCode, make_code
from dask_gradcode.scheduler import CodedGradient, RoundRecord, transports
from dask_gradcode.stragglers import Bandwidth, ShiftedExponential, SlowWorkers

__all__ = ["BENCHMARK", "PARTS", "measure", "page", "run"]

NAME = "iteration_time"
Tables = dict[str, list[dict[str, Any]]]
PARTS = ("stragglers", "slow-workers", "overhead", "weights", "communication")
WARMUP = 2
#: Schemes of the communication comparison: (scheme, m); the first is the
#: reference.
COMMUNICATION_SCHEMES = (
    ("cyclic-repetition", 1),
    ("ye-abbe", 2),
    ("ye-abbe", 4),
    ("gaussian-mds", 1),
    ("gaussian-mds", 2),
    ("gaussian-mds", 4),
)


def straggler_schemes(s: int) -> list[tuple[str, int, int]]:
    """(scheme, s, m) rows of the straggler comparison: every scheme."""
    return compared_schemes(s)


def classification_data(
    n_rows: int, n_features: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Dense Gaussian features, labels from a random hyperplane."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features))
    y = (X @ rng.standard_normal(n_features) > 0).astype(float)
    return X, y


def sparse_rows(n_rows: int, dim: int, per_row: int, seed: int = 0) -> Any:
    """A CSR matrix with ``per_row`` random non-zeros in every row."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.integers(0, dim, (n_rows, per_row)), axis=1).ravel()
    indptr = np.arange(0, n_rows * per_row + 1, per_row)
    values = rng.standard_normal(n_rows * per_row)
    return scipy.sparse.csr_matrix((values, indices, indptr), shape=(n_rows, dim))


@dataclass(frozen=True)
class Workload:
    """What a measurement's rounds compute, and the delays injected into them.

    Attributes
    ----------
    X : array or sparse matrix
    y : ndarray
    loss : str
        The objective's name (``"log_loss"``, ``"squared_error"``).
    model : straggler model, optional
    bandwidth : Bandwidth, optional
        The workers' links.
    """

    X: Any
    y: np.ndarray
    loss: str
    model: Any = None
    bandwidth: Bandwidth | None = None


def run_rounds(
    client: Client,
    code: GradientCode,
    work: Workload,
    n_rounds: int,
    transport: Literal["direct", "futures"] | None = None,
) -> list[RoundRecord]:
    """``WARMUP + n_rounds`` coded rounds at fixed weights; the last ``n_rounds``.

    ``transport`` None is the library's default (``--transport``).
    """
    w = np.random.default_rng(1).standard_normal(work.X.shape[1]) * 0.01
    with CodedGradient(
        client,
        code,
        work.X,
        work.y,
        work.loss,
        straggler_model=work.model,
        bandwidth=work.bandwidth,
        transport=transport,
    ) as cg:
        for _ in range(WARMUP + n_rounds):
            cg(w)
    return cg.history[WARMUP:]


def ideal_seconds(
    record: RoundRecord, code: GradientCode, work: Workload, message_bytes: int
) -> float:
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
            if work.model is None
            else work.model.delay(record.iteration, worker, n, compute_estimate)
        )
        if work.bandwidth is not None:
            delay += work.bandwidth.transfer_seconds(message_bytes)
        finish.append(compute_estimate + delay)
    return sorted(finish)[n - code.n_stragglers - 1]


def floor_and_rounds(
    client: Client, code: GradientCode, work: Workload, n_rounds: int
) -> tuple[float, list[RoundRecord]]:
    """Floor rounds, then the scheme's rounds, back to back on the same cluster.

    The floor drifts by tens of percent over a run, so each scheme gets its own.
    """
    floor = float(np.mean(round_trip_floor(client, code.n_workers, n_rounds)))
    return floor, run_rounds(client, code, work, n_rounds)


def summarise(
    scenario: str,
    code: GradientCode,
    records: list[RoundRecord],
    work: Workload,
    floor: float,
    dim: int,
) -> dict[str, Any]:
    """One result row: times, ratios to the ideal and the floor, bytes."""
    walls = np.array([r.wall_seconds for r in records])
    message_bytes = 8 * code.message_length(dim + 1)
    ideals = np.array([ideal_seconds(r, code, work, message_bytes) for r in records])
    return {
        "scenario": scenario,
        "scheme": code.scheme,
        "s": code.n_stragglers,
        "m": code.comm_reduction,
        "load": code.load,
        "floor_ms": 1e3 * floor,
        "mean_ms": 1e3 * walls.mean(),
        "p95_ms": 1e3 * np.percentile(walls, 95),
        "ideal_plus_floor_ms": 1e3 * (ideals.mean() + floor),
        "ratio_to_ideal": walls.mean() / (ideals.mean() + floor),
        "decode_share": float(
            np.mean([r.decode_seconds / r.wall_seconds for r in records])
        ),
        "decode_cpu_share": float(
            np.mean([r.decode_cpu_seconds / r.wall_seconds for r in records])
        ),
        "exact": all(r.exact for r in records),
        "formula_bytes": message_bytes,
        "bytes_per_message": float(
            np.mean([r.bytes_received / len(r.responders) for r in records])
        ),
        "walls": walls,
    }


class _Runner:
    """Shared settings and the progress bar of one run."""

    def __init__(self, session: Session, rounds: int) -> None:
        self.target = session.target
        self.rounds = rounds
        self.bar = session.bar(desc="iteration-time", unit="scheme")
        self.skipped: list[str] = []

    def codes(self, rows: list[Row], n_workers: int) -> list[GradientCode]:
        built, skipped = buildable_codes(rows, n_workers)
        self.skipped += [f"n={n_workers}, {line}" for line in skipped]
        return [code for _, code in built]

    def step(self, text: str) -> None:
        """One measurement finished; ``text`` names it."""
        self.bar.update(1)
        self.bar.set_postfix_str(f"done: {text}")


def straggler_comparison(
    runner: _Runner, n: int, s: int, rows: int, delay: float, quick: bool
) -> list[dict]:
    """Every scheme under slow workers and under shifted-exponential delays."""
    X, y = classification_data(rows, 100)
    scenarios = {
        f"{s} slow workers (+{delay:g} s)": SlowWorkers(s, delay=delay, random_state=0),
        f"shifted exponential ({1e3 * delay / 10:g} ms)": ShiftedExponential(
            scale=delay / 10, random_state=0
        ),
    }
    schemes = straggler_schemes(s)
    if quick:
        schemes = [row for row in schemes if row[0] in ("uncoded", "gaussian-mds")]
    codes = runner.codes(schemes, n)
    results = []
    with runner.target.connect(n) as client:
        for name, model in scenarios.items():
            for code in codes:
                work = Workload(X, y, "log_loss", model)
                floor, records = floor_and_rounds(client, code, work, runner.rounds)
                results.append(summarise(name, code, records, work, floor, 100))
                runner.step(f"{code.scheme} m={code.comm_reduction}")
    return results


def slow_worker_sweep(
    runner: _Runner, n: int, s: int, rows: int, delay: float, max_slow: int
) -> list[dict]:
    """Speed-up over uncoded with 0 to ``max_slow`` slow workers per round."""
    X, y = classification_data(rows, 100)
    left_out = ("fractional-repetition", "cyclic-mds", "ye-abbe")
    codes = runner.codes(compared_schemes(s, left_out), n)
    results = []
    with runner.target.connect(n) as client:
        for n_slow in range(max_slow + 1):
            model = SlowWorkers(n_slow, delay=delay, random_state=0)
            means = {}
            for code in codes:
                scheme, m = code.scheme, code.comm_reduction
                work = Workload(X, y, "log_loss", model)
                records = run_rounds(client, code, work, runner.rounds)
                means[scheme, m] = np.mean([r.wall_seconds for r in records])
                results.append(
                    {
                        "n_slow": n_slow,
                        "scheme": scheme,
                        "s": code.n_stragglers,
                        "m": m,
                        "mean_ms": 1e3 * means[scheme, m],
                        "exact": all(r.exact for r in records),
                    }
                )
                runner.step(f"{n_slow} slow, {scheme} m={m}")
            for row in results[-len(codes) :]:
                row["speedup"] = means["uncoded", 1] / (1e-3 * row["mean_ms"])
    return results


def overhead(runner: _Runner, n: int, s: int, rows: int) -> list[dict]:
    """Coded rounds without stragglers against the bare floor, two data sizes."""
    results = []
    with runner.target.connect(n) as client:
        for n_rows in (rows, 4 * rows):
            X, y = classification_data(n_rows, 100)
            code = make_code("gaussian-mds", n, s, 1, random_state=0)
            work = Workload(X, y, "log_loss")
            floor, records = floor_and_rounds(client, code, work, runner.rounds)
            compute = np.median(
                [np.median(list(r.compute_seconds.values())) for r in records]
            )
            mean = np.mean([r.wall_seconds for r in records])
            results.append(
                {
                    "rows": n_rows,
                    "floor_ms": 1e3 * floor,
                    "compute_ms": 1e3 * compute,
                    "mean_ms": 1e3 * mean,
                    "ratio": mean / (floor + compute),
                }
            )
            runner.step(f"overhead {n_rows} rows")
    return results


#: The transport of the weights-shipping part: the only one that scatters
#: (the direct transport sends large weights as their own message frame).
WEIGHTS_TRANSPORT: Literal["futures"] = "futures"


def weights_shipping(runner: _Runner, quick: bool) -> list[dict]:
    """Round time with weights embedded in each task vs scattered once per round.

    With the futures transport, the one that scatters large weights; on
    worker processes over TCP: in-process workers pass task arguments by
    reference, which would hide the cost being measured.  Raises
    RuntimeError if the rounds did not ship the weights as the row says.
    """
    n = 4
    dims = (1_000, 100_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    results = []
    with runner.target.connect(n, processes=True) as client:
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
                with _embedding_limit(limit) as scattered:
                    work = Workload(X, y, "squared_error")
                    records = run_rounds(
                        client, code, work, runner.rounds, WEIGHTS_TRANSPORT
                    )
                _check_shipping(how, scattered, limit < 0)
                results.append(
                    {
                        "dim": dim,
                        "how": how,
                        "transport": WEIGHTS_TRANSPORT,
                        "submit_ms": 1e3 * np.mean([r.submit_seconds for r in records]),
                        "mean_ms": 1e3 * np.mean([r.wall_seconds for r in records]),
                    }
                )
                runner.step(f"weights dim={dim}")
    return results


@contextmanager
def _embedding_limit(limit: float) -> Iterator[list[bool]]:
    """Patch the futures transport's size limit; list whether each round scattered.

    The transport reads the limit from its own module at each round, so
    that is where it is patched.
    """
    ship = transports.FuturesTransport.ship_weights
    scattered: list[bool] = []

    def counted(self: Any, weights: np.ndarray, addresses: Sequence[str]) -> Any:
        shipped = ship(self, weights, addresses)
        scattered.append(isinstance(shipped, Future))
        return shipped

    with (
        mock.patch.object(transports, "EMBED_WEIGHTS_MAX_BYTES", limit),
        mock.patch.object(transports.FuturesTransport, "ship_weights", counted),
    ):
        yield scattered


def _check_shipping(how: str, scattered: list[bool], expected: bool) -> None:
    """Fail loudly when a row would not measure what it names."""
    if not scattered or any(flag != expected for flag in scattered):
        raise RuntimeError(
            f"weights shipping, {how!r}: {sum(scattered)} of {len(scattered)} "
            f"{WEIGHTS_TRANSPORT}-transport rounds scattered the weights; the row "
            "would not measure what it says"
        )


def communication_comparison(
    runner: _Runner, n: int, s: int, dim: int, bandwidths: Sequence[float]
) -> list[dict]:
    """Large sparse model over links of several speeds: bytes against load."""
    X = sparse_rows(12_000, dim, per_row=40)
    y = (np.random.default_rng(0).random(12_000) < 0.5).astype(float)
    model = ShiftedExponential(scale=0.01, random_state=0)
    codes = runner.codes([(scheme, s, m) for scheme, m in COMMUNICATION_SCHEMES], n)
    results = []
    with runner.target.connect(n) as client:
        for speed in bandwidths:
            link = Bandwidth(speed)
            for code in codes:
                work = Workload(X, y, "log_loss", model, link)
                floor, records = floor_and_rounds(client, code, work, runner.rounds)
                name = f"{speed / 1e6:g} MB/s"
                results.append(summarise(name, code, records, work, floor, dim))
                runner.step(f"{name} {code.scheme} m={code.comm_reduction}")
    return results


def measure(session: Session, o: Options) -> Measured:
    """Measure iteration time of every scheme; see the module docstring.

    ``o.workers`` and ``o.stragglers`` are the ``n`` and ``s`` of the
    straggler, slow-worker and overhead parts (``s`` is also the number of
    slow workers of the first scenario, each ``o.delay`` seconds late; the
    shifted-exponential scale is a tenth of it); ``o.rows`` rows of 100
    features; ``o.rounds`` measured rounds per scheme after 2 warm-up
    rounds.  The communication part runs on ``o.comm_workers`` workers, a
    sparse model of ``o.dim`` coefficients, links of ``o.bandwidths`` MB/s.
    ``o.parts`` are which of :data:`PARTS` run; ``o.quick`` runs fewer
    schemes and sizes.  Returns one table per part run; facts: ``comm_dim``
    (the communication part's coefficients) and the schemes ``skipped``.
    """
    workers, stragglers, rows, quick = o.workers, o.stragglers, o.rows, o.quick
    parts, bandwidths, delay = o.parts, o.bandwidths, o.delay
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown parts {unknown}; choose from {list(PARTS)}")
    check_stragglers(stragglers, workers)
    comm_dim = min(o.dim, 50_000) if quick else o.dim
    middle = len(bandwidths) // 2
    speeds = bandwidths[middle : middle + 1] if quick else bandwidths
    max_slow = min(workers - 1, stragglers + (1 if quick else 2))
    parts_run = {
        "stragglers": lambda runner: straggler_comparison(
            runner, workers, stragglers, rows, delay, quick
        ),
        "slow-workers": lambda runner: slow_worker_sweep(
            runner, workers, stragglers, rows, delay, max_slow
        ),
        "overhead": lambda runner: overhead(runner, workers, stragglers, rows),
        "weights": lambda runner: weights_shipping(runner, quick),
        "communication": lambda runner: communication_comparison(
            runner, o.comm_workers, stragglers, comm_dim, [1e6 * b for b in speeds]
        ),
    }
    runner = _Runner(session, o.rounds)
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for part, measure_part in parts_run.items():
            if part in parts:
                results[part.replace("-", "_")] = measure_part(runner)
    finally:
        runner.bar.close()
    skipped = list(dict.fromkeys(runner.skipped))
    return Measured(results, facts={"comm_dim": comm_dim, "skipped": skipped})


def run(**options: Any) -> Report:
    """Measure, then write the page: ``BENCHMARK.run(**options)``."""
    return BENCHMARK.run(**options)


def page(measured: Measured, session: Session) -> Page:
    """The figures of the parts run and the markdown page."""
    results, o = measured.tables, measured.options
    n, s = o.workers, o.stragglers
    figures = {}
    if "stragglers" in results:
        figures[""] = iteration_time_boxes(results["stragglers"], f"n={n}, s={s}")
    if "slow_workers" in results:
        figures["speedup"] = speedup_against_slow_workers(
            results["slow_workers"],
            f"n={n}, slow workers +{o.delay:g} s, drawn anew each round",
        )
    if "communication" in results:
        title = (
            f"n={o.comm_workers}, s={s}, {measured.facts['comm_dim']:,} coefficients"
        )
        figures["communication"] = communication_bars(
            results["communication"], "cyclic-repetition", title
        )
        figures["bytes"] = bytes_against_m(results["communication"], title)
    markdown = _markdown(measured, session) + skipped_note(measured.facts["skipped"])
    return Page(markdown, figures)


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


SLOW_WORKER_COLUMNS = {
    "n_slow": "slow workers",
    "scheme": "scheme",
    "s": "s",
    "m": "m",
    "mean_ms": "mean (ms)",
    "speedup": "speed-up over uncoded",
    "exact": "exact",
}


OVERHEAD_COLUMNS = {
    "rows": "rows",
    "floor_ms": "floor (ms)",
    "compute_ms": "compute (ms)",
    "mean_ms": "round (ms)",
    "ratio": "round / (floor + compute)",
}


WEIGHTS_COLUMNS = {
    "dim": "dim",
    "how": "weights",
    "transport": "transport",
    "submit_ms": "submit (ms)",
    "mean_ms": "round (ms)",
}


def _straggler_section(tables: Tables, n: int, s: int, rows: int) -> str:
    results = tables["stragglers"]
    slow = results[0]["scenario"]
    uncoded = next(
        r["mean_ms"]
        for r in results
        if r["scenario"] == slow and r["scheme"] == "uncoded"
    )
    speedups = ", ".join(
        f"{r['scheme']} m={r['m']}: {uncoded / r['mean_ms']:.1f}x"
        for r in results
        if r["scenario"] == slow and r["scheme"] not in ("uncoded", "ignore-stragglers")
    )
    exact = [r for r in results if r["exact"] and r["scheme"] != "uncoded"]
    everything = results + tables.get("communication", [])
    return f"""## Stragglers: n = {n}, s = {s}, logistic loss on {rows:,} x 100

{markdown_table(results, STRAGGLER_COLUMNS)}

![iteration time distributions per scheme](iteration_time.png)

- Speed-up over uncoded with {slow}: {speedups}.
- Worst mean / (ideal + floor) over the exact coded schemes:
  {max(r["ratio_to_ideal"] for r in exact):.2f}.
- Largest share of an iteration spent decoding:
  {100 * max(r["decode_share"] for r in everything):.2f}% of the wall time,
  {100 * max(r["decode_cpu_share"] for r in everything):.2f}% counting only the
  decoding thread's CPU time. The difference is time the decode waited for the
  process's other threads (in-process workers still computing the round's
  late results).
"""


def _slow_worker_section(tables: Tables, n: int) -> str:
    results = tables["slow_workers"]
    return f"""## Speed-up against the number of slow workers (n = {n})

Each round the given number of workers, drawn anew, is late; every scheme runs
the same rounds. An exact code waits for a slow worker only once more workers
are slow than it tolerates (and gaussian-mds, whose groups decode
independently, often not even then); `ignore-stragglers` never waits but its
gradient is approximate.

{markdown_table(results, SLOW_WORKER_COLUMNS)}

![speed-up against the number of slow workers](iteration_time_speedup.png)
"""


def _overhead_section(tables: Tables, n: int, s: int) -> str:
    results = tables["overhead"]
    return f"""## Overhead without stragglers

gaussian-mds, n = {n}, s = {s}, no injected delay: the coded round against the
floor plus one worker's median computation time, for two data sizes. The ratio
is what the library adds to a bare Dask round trip and a worker's own
computation; on an embedded cluster the workers share this machine's cores, so
they do not all compute in parallel.

{markdown_table(results, OVERHEAD_COLUMNS)}
"""


def _weights_section(tables: Tables) -> str:
    limit = int(transports.EMBED_WEIGHTS_MAX_BYTES) // 1024
    return f"""## Weights shipping

With the {WEIGHTS_TRANSPORT} transport, the only one that scatters (the direct
transport sends large weights as a message frame of each call), weights up to
{limit} KiB travel inside each task (they reach the worker with the task, no
extra round trip); larger weights are scattered to the round's workers with
`client.scatter(w, workers=..., broadcast=True)` and the tasks reference the
one key. Each row forces its way by patching that limit, and the run checks
that every round shipped the weights as the row says. Measured on 4 worker
*processes* over TCP (in-process workers would pass the weights by reference
and hide the cost), gaussian-mds with m = 1, tiny sparse data so the shipping
dominates:

{markdown_table(tables["weights"], WEIGHTS_COLUMNS)}
"""


def _communication_section(tables: Tables, n: int, s: int, dim: int) -> str:
    results = tables["communication"]
    lines = []
    for speed in dict.fromkeys(r["scenario"] for r in results):
        at_speed = [r for r in results if r["scenario"] == speed]
        reference = at_speed[0]
        changes = ", ".join(
            f"{r['scheme']} m={r['m']} "
            f"{100 * (r['mean_ms'] / reference['mean_ms'] - 1):+.0f}%"
            for r in at_speed[1:]
        )
        lines.append(
            f"- {speed}: against {reference['scheme']} "
            f"({reference['mean_ms']:.1f} ms): {changes}"
        )
    columns = STRAGGLER_COLUMNS | {"bytes_per_message": "bytes / message (measured)"}
    text = "\n".join(lines)
    return f"""## Communication: n = {n}, s = {s}, sparse logistic regression over slow links

The shape of Kadhe et al.'s EC2 experiment: a large model ({dim:,}
coefficients, so each uncoded message is {8 * (dim + 1) / 1e6:.1f} MB), each
worker's link delays its message by size / bandwidth, plus shifted-exponential
delays (10 ms). A larger `m` sends `m` times fewer bytes but raises the load to
`s + m` partitions per worker, so which wins depends on the link. The paper
reports 16% lower mean iteration time for its Gaussian MDS code against
earlier gradient codes on EC2.

{markdown_table(results, columns)}

{text}

![mean iteration time against cyclic repetition per link speed](iteration_time_communication.png)

Bytes each worker sent per iteration (measured: the decoded messages' size)
against `m`, with the load each choice of `m` costs:

![bytes per worker against m](iteration_time_bytes.png)
"""


def _markdown(measured: Measured, session: Session) -> str:
    tables, o = measured.tables, measured.options
    workers, stragglers = o.workers, o.stragglers
    sections = []
    if "stragglers" in tables:
        sections.append(_straggler_section(tables, workers, stragglers, o.rows))
    if "slow_workers" in tables:
        sections.append(_slow_worker_section(tables, workers))
    if "overhead" in tables:
        sections.append(_overhead_section(tables, workers, stragglers))
    if "weights" in tables:
        sections.append(_weights_section(tables))
    if "communication" in tables:
        sections.append(
            _communication_section(
                tables, o.comm_workers, stragglers, measured.facts["comm_dim"]
            )
        )
    body = "\n".join(sections)
    return f"""# Iteration time

{session.reproduce()}

Measured on {machine_description()}, on {session.target.describe()} with one
single-thread worker per code worker. Each scheme runs {o.rounds} rounds after
{WARMUP} warm-up rounds. "ideal" is, per round, the time at which the
`(n - s)`-th fastest worker finished its computation plus its injected delay;
"floor" is the bare Dask round trip (`n` pinned no-op tasks collected with
`as_completed`), measured on the same cluster right before each scheme's
rounds, because it drifts by tens of percent over a run. `ignore-stragglers`
is approximate (it waits for `n - s` workers and rescales).

{body}"""


def _part(text: str) -> str:
    """An argparse type: one of :data:`PARTS`."""
    if text not in PARTS:
        raise argparse.ArgumentTypeError(
            f"unknown part {text!r}; choose from {', '.join(PARTS)}"
        )
    return text


BENCHMARK = Benchmark(
    "iteration-time",
    files=NAME,
    help="iteration time of every scheme under stragglers, speed-up against slow "
    "workers, overhead, weights shipping, bytes against m over slow links",
    measure=measure,
    page=page,
    options=(
        opt.workers(9),
        opt.stragglers(2, 0, "stragglers s tolerated, and slow"),
        opt.rounds(30, "measured rounds per scheme"),
        opt.rows(36_000, 1),
        opt.delay(0.3),
        opt.option(
            "--comm-workers", 12, opt.at_least(2), "workers of the communication part"
        ),
        opt.option(
            "--dim", 200_000, opt.positive, "coefficients of the communication part"
        ),
        opt.option(
            "--bandwidths",
            (25.0, 100.0, 400.0),
            opt.positive_float,
            "link speeds of the communication part",
            nargs="+",
            metavar="MB_PER_S",
        ),
        opt.option("--parts", PARTS, _part, "what to run", nargs="+", metavar="PART"),
        opt.switch("--quick", False, "fewer schemes and sizes: a smoke run"),
    ),
    # measured with the futures transport, the default before the direct one
    published=("--transport", "futures"),
)
