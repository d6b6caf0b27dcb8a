"""Round plans: what each worker computes in a round, chosen from measurements.

Placement is paid once; rounds are paid every iteration.  With each partition
on several workers, a round can choose what every worker computes:

- ``"coded"``: every worker computes all its partitions and sends its coded
  message; the round decodes from any ``n - s`` workers (the static code).
- ``"split"``: the rows of every partition are split among the workers that
  hold it, in proportion to their measured speeds, so every worker computes
  about ``1 / n`` of the data (uncoded speed) and sends the plain sum of its
  rows' gradients; a worker that is late past its expected time has its rows
  recomputed by other holders (speculative backup tasks, as Spark and
  MapReduce do), and the first copy of each share to arrive is used.  Each row
  counts exactly once: the gradient is exact.

Policies choose the plan of each round:

- :class:`StaticPolicy` (``"static"``) always plans ``"coded"``;
- :class:`SpeculativePolicy` (``"speculative"``) always plans ``"split"``
  with equal shares: backup tasks alone;
- :class:`AdaptivePolicy` (``"adaptive"``) keeps running statistics of each
  physical worker's seconds per row, of the per-task overhead and of each
  plan's measured round times; it balances split shares to the measured
  speeds, plans the plan with the lower expected round time, and tries the
  other plan now and then when it might have become the cheaper one.

This module is pure bookkeeping: no Dask.
"""

from __future__ import annotations

import math
import statistics
import sys
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from dask_gradcode.codes import GradientCode
from dask_gradcode.scheduler.protocol import Slice

__all__ = [
    "POLICIES",
    "AdaptivePolicy",
    "Plan",
    "Policy",
    "RoundTiming",
    "Share",
    "SpeculativePolicy",
    "StaticPolicy",
    "TaskTiming",
    "backup_shares",
    "make_policy",
    "split_shares",
    "worker_rows",
]

#: A share is backed up once it is this many times later than the arrival of
#: the share at ``SPECULATION_QUANTILE`` (Spark's ``spark.speculation.multiplier``).
SPECULATION_MULTIPLIER = 1.5

#: ... and at least this many seconds later (jitter of a round trip).
SPECULATION_MARGIN = 0.02

#: ... which needs this share of the shares in (Spark's ``quantile`` is 0.75;
#: 0.5 still backs up when ``s`` of ``2 s + 1`` workers are late).
SPECULATION_QUANTILE = 0.5


@dataclass(frozen=True)
class Share:
    """Rows one worker computes in a split round (for itself or as a backup)."""

    owner: int  # the code worker whose share this is
    slices: tuple[Slice, ...]
    rows: int


@dataclass(frozen=True)
class Plan:
    """One round's plan.

    Attributes
    ----------
    name : {"coded", "split"}
    shares : dict of int to Share
        For ``"split"``: each code worker's rows.
    """

    name: str
    shares: dict[int, Share] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskTiming:
    """What one worker's own task of a round measured.

    Attributes
    ----------
    rows : int
        Rows it computed (all its partitions in a coded round).
    work_seconds : float
        Computation plus injected delay, measured on the worker.
    arrival : float or None
        Seconds from submission until its reply reached the client; ``None``
        when the round ended without it (censored: it took at least
        ``RoundTiming.wall``).
    """

    rows: int
    work_seconds: float = 0.0
    arrival: float | None = None


@dataclass(frozen=True)
class RoundTiming:
    """One round as the policy sees it: its plan, wall time and tasks."""

    plan: str
    wall: float
    tasks: dict[int, TaskTiming]  # physical worker -> its own task


@runtime_checkable
class Policy(Protocol):
    """What ``CodedGradient(policy=...)`` accepts besides a name.

    ``plan`` chooses the next round's plan for the usable code workers
    (``partition_rows``: rows of each partition; ``physical``: each code
    worker's physical id); ``observe`` learns from the round that ran.
    """

    def plan(
        self,
        code: GradientCode,
        usable: Sequence[int],
        partition_rows: Sequence[int],
        physical: Sequence[int],
    ) -> Plan:
        """The plan of the next round."""
        ...

    def observe(self, timing: RoundTiming) -> None:
        """Learn from one round's timing."""
        ...


class _CodeIndex:
    """Who holds what in one code, looked up once per code instead of per round.

    A round at ``n`` workers asks for every worker's partitions (``n * d``
    ids); a code never changes its placement, so the answers are kept here,
    with each usable set's holders of every partition, as numpy arrays.
    """

    def __init__(self, code: GradientCode) -> None:
        n, k = code.n_workers, code.n_partitions
        self.n_workers, self.n_partitions = n, k
        self.parts = [list(code.partitions(w)) for w in range(n)]
        self.lengths = np.array([len(p) for p in self.parts], dtype=np.intp)
        flat = [j for parts in self.parts for j in parts]
        self.flat = np.array(flat, dtype=np.intp)
        self.flat_worker = np.repeat(np.arange(n, dtype=np.intp), self.lengths)
        # Index of each partition in its worker's list: the last one for a
        # split share, the first one for a backup (as ``list.index``), which
        # differ only for a worker listing a partition twice.
        last: list[dict[int, int]] = []
        first: list[dict[int, int]] = []
        for parts in self.parts:
            last.append({j: b for b, j in enumerate(parts)})
            seen: dict[int, int] = {}
            for b, j in enumerate(parts):
                seen.setdefault(j, b)
            first.append(seen)
        self.first_block = first
        self.flat_last_block = np.array(
            [last[w][j] for w, parts in enumerate(self.parts) for j in parts],
            dtype=np.intp,
        )
        # Every worker's partitions padded with ``k`` (a partition of no
        # rows), so a worker's rows are one gather and one row sum.
        width = int(self.lengths.max(initial=0))
        self.padded = np.full((n, max(width, 1)), k, dtype=np.intp)
        columns = np.arange(len(flat)) - np.repeat(
            np.cumsum(self.lengths) - self.lengths, self.lengths
        )
        self.padded[self.flat_worker, columns] = self.flat
        self.all_holders = self._holding(tuple(range(n)))
        self._holdings: dict[tuple[int, ...], _Holding] = {}
        self._rows: tuple[tuple[int, ...], np.ndarray] | None = None

    def holding(self, usable: tuple[int, ...]) -> _Holding:
        """The holders of every partition among ``usable`` (cached per set)."""
        holding = self._holdings.get(usable)
        if holding is None:
            holding = self._holding(usable)
            if len(self._holdings) >= _HOLDINGS_KEPT:
                self._holdings.pop(next(iter(self._holdings)))
            self._holdings[usable] = holding
        return holding

    def _holding(self, usable: tuple[int, ...]) -> _Holding:
        workers = np.array(usable, dtype=np.intp)
        starts = np.cumsum(self.lengths) - self.lengths
        take = (
            np.concatenate(
                [np.arange(starts[w], starts[w] + self.lengths[w]) for w in workers]
            )
            if len(workers)
            else np.zeros(0, dtype=np.intp)
        ).astype(np.intp)
        partition = self.flat[take]
        # Stable: within a partition, holders stay in the order of ``usable``
        # (and of each worker's list), the order a Python loop appends them.
        order = np.argsort(partition, kind="stable")
        partition = partition[order]
        owner = self.flat_worker[take][order]
        block = self.flat_last_block[take][order]
        size = max(self.n_partitions, int(partition.max(initial=-1)) + 1)
        counts = np.bincount(partition, minlength=size)
        position = np.arange(len(partition)) - np.repeat(
            np.cumsum(counts) - counts, counts
        )
        width = max(1, int(counts.max(initial=0)))
        owners = np.full((size, width), -1, dtype=np.intp)
        blocks = np.zeros((size, width), dtype=np.intp)
        owners[partition, position] = owner
        blocks[partition, position] = block
        return _Holding(usable, owners, blocks, counts)

    def worker_rows(self, partition_rows: Sequence[int]) -> np.ndarray | None:
        """Rows of every worker's partitions; ``None`` unless the rows are ints."""
        rows = np.asarray(partition_rows)
        if rows.dtype.kind not in "iu" or rows.shape != (self.n_partitions,):
            return None
        key = tuple(rows.tolist())
        if self._rows is None or self._rows[0] != key:
            extended = np.append(rows.astype(np.int64), 0)
            self._rows = (key, extended[self.padded].sum(axis=1))
        return self._rows[1]


@dataclass(frozen=True, eq=False)
class _Holding:
    """The usable holders of every partition: row ``j`` lists partition ``j``'s.

    ``owners[j, :counts[j]]`` are code workers in the order of ``usable``
    (``-1`` pads), ``blocks`` the partition's index in each one's shard.
    """

    usable: tuple[int, ...]
    owners: np.ndarray
    blocks: np.ndarray
    counts: np.ndarray
    last: dict[tuple[object, ...], dict[int, Share]] = field(default_factory=dict)


#: Usable sets whose holders are kept per code (a run sees few: the usable
#: set changes only when a worker is lost or joins).
_HOLDINGS_KEPT = 8

_INDEXES: weakref.WeakKeyDictionary[GradientCode, _CodeIndex] = (
    weakref.WeakKeyDictionary()
)
_INDEXES_LOCK = threading.Lock()


def _index(code: GradientCode) -> _CodeIndex:
    """The code's :class:`_CodeIndex`, built on first use."""
    with _INDEXES_LOCK:
        index = _INDEXES.get(code)
        if index is None:
            index = _INDEXES[code] = _CodeIndex(code)
        return index


def _usable_tuple(code: GradientCode, usable: Sequence[int]) -> tuple[int, ...]:
    """``usable`` without repeats, in order, as Python ints.

    An id that is not a Python int in range goes through the code's own check
    (:meth:`~dask_gradcode.codes.GradientCode.partitions`), which raises for
    one the code refuses, as the per-worker lookups always did.
    """
    n = code.n_workers
    workers = []
    for worker in dict.fromkeys(usable):
        if not (type(worker) is int and 0 <= worker < n):
            code.partitions(worker)
            worker = int(worker)
        workers.append(worker)
    return tuple(dict.fromkeys(workers))


def holders(code: GradientCode, usable: Sequence[int]) -> dict[int, list[int]]:
    """Usable code workers holding each partition (in worker order)."""
    index = _index(code)
    return _held_by(
        {worker: list(index.parts[worker]) for worker in _usable_tuple(code, usable)}
    )


def _held_by(placement: dict[int, list[int]]) -> dict[int, list[int]]:
    """Workers holding each partition, from each worker's partitions."""
    held: dict[int, list[int]] = {}
    for worker, partitions in placement.items():
        for partition in partitions:
            held.setdefault(partition, []).append(worker)
    return held


def splittable(code: GradientCode, usable: Sequence[int]) -> bool:
    """Whether a split round could cover every partition and back any of it up."""
    counts = _index(code).holding(_usable_tuple(code, usable)).counts
    present = counts[counts > 0]
    return len(present) == code.n_partitions and bool((present > 1).all())


def worker_rows(code: GradientCode, partition_rows: Sequence[int]) -> list[int]:
    """Rows each code worker computes in a coded round (all its partitions).

    ``sum(partition_rows[j] for j in code.partitions(w))`` for every worker,
    gathered from the code's cached placement.
    """
    rows = _index(code).worker_rows(partition_rows)
    if rows is None:  # not integers: the sums as Python adds them
        return [
            sum(partition_rows[j] for j in code.partitions(w))
            for w in range(code.n_workers)
        ]
    return rows.tolist()


def split_shares(
    code: GradientCode,
    partition_rows: Sequence[int],
    usable: Sequence[int],
    speeds: dict[int, float] | None = None,
) -> dict[int, Share]:
    """Split every partition's rows among its usable holders, by speed.

    Parameters
    ----------
    code : GradientCode
    partition_rows : sequence of int
        Rows of each partition.
    usable : sequence of int
        Code workers that may compute.
    speeds : dict of int to float, optional
        Relative speed of each usable worker (rows per second); equal when
        missing.  A partition's rows go to its holders in proportion to
        their speeds, so the loads stay balanced as speeds differ.

    Returns
    -------
    dict of int to Share
        Only workers with rows.

    Raises
    ------
    ValueError
        If a partition has no usable holder.
    """
    workers = _usable_tuple(code, usable)
    index = _index(code)
    holding = index.holding(workers)
    missing = np.flatnonzero(holding.counts[: code.n_partitions] == 0).tolist()
    if missing:
        raise ValueError(f"partitions {missing} have no usable holder")
    speeds = speeds or {}
    weights = [max(speeds.get(w, 1.0), 0.0) for w in workers]
    if not all(type(x) is float and math.isfinite(x) for x in weights):
        # Infinite, NaN or non-float speeds: the plain loop's own arithmetic.
        return _split_loop(index, workers, partition_rows, speeds)
    rows = [int(partition_rows[j]) for j in range(len(holding.counts))]
    # The same plan is asked for round after round (equal shares, or speeds
    # that have not changed): the last answer is kept per usable set.
    key = (tuple(rows), tuple(weights))
    cached = holding.last.get(key)
    if cached is None:
        cached = _split(holding, rows, weights)
        holding.last.clear()
        holding.last[key] = cached
    return dict(cached)


def _split_loop(
    index: _CodeIndex,
    workers: tuple[int, ...],
    partition_rows: Sequence[int],
    speeds: dict[int, float],
) -> dict[int, Share]:
    """:func:`split_shares` one partition and holder at a time, in Python numbers."""
    placement = {worker: index.parts[worker] for worker in workers}
    held = _held_by(placement)
    block_of = {
        worker: {partition: block for block, partition in enumerate(partitions)}
        for worker, partitions in placement.items()
    }
    slices: dict[int, list[Slice]] = {w: [] for w in workers}
    for partition in sorted(held):
        owners = held[partition]
        weights = [max(speeds.get(w, 1.0), 0.0) for w in owners]
        total = sum(weights)
        if not total > 0:
            weights, total = [1.0] * len(owners), float(len(owners))
        n_rows = int(partition_rows[partition])
        lo, cumulative = 0, 0.0
        for position, (worker, weight) in enumerate(zip(owners, weights, strict=True)):
            cumulative += weight
            last = position == len(owners) - 1
            hi = n_rows if last else min(n_rows, round(cumulative / total * n_rows))
            if hi > lo:
                slices[worker].append((block_of[worker][partition], lo, hi))
                lo = hi
    return {
        worker: Share(worker, tuple(parts), sum(hi - lo for _, lo, hi in parts))
        for worker, parts in slices.items()
        if parts
    }


def _split(
    holding: _Holding, rows: list[int], weights: list[float]
) -> dict[int, Share]:
    """:func:`split_shares` for checked inputs, vectorised over the partitions.

    Does in numpy what a loop over partitions and their holders does in
    Python floats, step by step: each holder's weight, their sum (Python's
    ``sum``, whose rounding numpy's pairwise sums do not reproduce), the
    running sum along the holders (``cumsum`` adds in order, as the loop
    does), and the boundaries ``min(rows, round(cumulative / total * rows))``
    (``rint`` rounds half to even, as ``round`` does).
    """
    owners, counts = holding.owners, holding.counts
    held = owners >= 0
    workers = np.array(holding.usable, dtype=np.intp)
    # Each worker's weight, by worker id (``-1`` pads read the extra zero).
    weight_of = np.zeros(int(workers.max(initial=0)) + 2)
    weight_of[workers] = weights
    matrix = weight_of[owners]
    cumulative = np.cumsum(matrix, axis=1)
    if sys.version_info < (3, 12):
        # Python's sum of floats adds in order, as the running sum does
        # (the zeros padding a row add nothing).
        totals = cumulative[:, -1].copy()
    else:
        # Python's sum of floats is compensated (Neumaier) since 3.12.
        totals = np.array(
            [
                sum(row[:c])
                for row, c in zip(matrix.tolist(), counts.tolist(), strict=True)
            ]
        )
    equal = ~(totals > 0)  # no speed known: equal shares
    if equal.any():
        matrix[equal] = held[equal].astype(np.float64)
        totals[equal] = counts[equal]
        cumulative[equal] = np.cumsum(matrix[equal], axis=1)
    n_rows = np.array(rows, dtype=np.int64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        hi = np.minimum(n_rows, np.rint(cumulative / totals[:, None] * n_rows))
    hi = np.where(held, hi, 0).astype(np.int64)
    last = np.maximum(counts - 1, 0)
    hi[np.arange(len(counts)), last] = n_rows[:, 0]
    lo = np.zeros_like(hi)
    lo[:, 1:] = hi[:, :-1]
    keep = held & (hi > lo)
    if not keep.any():
        return {}  # no rows at all
    # Partition-major order, then grouped by worker (stable): each worker's
    # slices come in increasing partition order, as the loop appends them.
    owner = owners[keep]
    order = np.argsort(owner, kind="stable")
    owner = owner[order]
    los, his = lo[keep][order], hi[keep][order]
    slices = list(
        zip(
            holding.blocks[keep][order].tolist(),
            los.tolist(),
            his.tolist(),
            strict=True,
        )
    )
    starts = np.concatenate([[0], np.flatnonzero(np.diff(owner)) + 1])
    ends = [*starts[1:].tolist(), len(owner)]
    segments = {
        worker: (a, b, total)
        for worker, a, b, total in zip(
            owner[starts].tolist(),
            starts.tolist(),
            ends,
            np.add.reduceat(his - los, starts).tolist(),
            strict=True,
        )
    }
    shares = {}
    for worker in holding.usable:
        segment = segments.get(worker)
        if segment is not None:
            a, b, total = segment
            shares[worker] = Share(worker, tuple(slices[a:b]), total)
    return shares


def backup_shares(
    code: GradientCode,
    late: Share,
    candidates: Sequence[int],
) -> dict[int, Share]:
    """Who recomputes a late worker's rows: for each slice, a candidate holding it.

    Candidates are tried in order (fastest first); a slice goes to the first
    one that holds its partition.  Empty when some slice has no candidate.
    """
    n = code.n_workers
    valid = type(late.owner) is int and 0 <= late.owner < n
    if not (valid and all(type(c) is int and 0 <= c < n for c in candidates)):
        return _backup_shares_checked(code, late, candidates)
    index = _index(code)
    owner_partitions = index.parts[late.owner]
    partitions = [owner_partitions[block] for block, _, _ in late.slices]
    if not partitions:
        return {}
    # The first candidate (in order) holding each slice's partition: the
    # holder of least rank, ranks being positions in ``candidates``.
    rank = np.full(n + 1, len(candidates), dtype=np.intp)
    for position, candidate in reversed(list(enumerate(candidates))):
        rank[candidate] = position
    all_holders = index.all_holders
    wanted = np.array(partitions, dtype=np.intp)
    if wanted.max() >= all_holders.owners.shape[0] or wanted.min() < 0:
        return _backup_shares_checked(code, late, candidates)
    holder_rows = all_holders.owners[wanted]  # -1 pads rank n: never first
    ranks = rank[holder_rows]
    best = ranks.min(axis=1)
    if (best >= len(candidates)).any():
        return {}  # nobody else holds it: no backup possible
    chosen = [candidates[r] for r in best.tolist()]
    assigned: dict[int, list[Slice]] = {}
    for (_, lo, hi), partition, candidate in zip(
        late.slices, partitions, chosen, strict=True
    ):
        block = index.first_block[candidate][partition]
        assigned.setdefault(candidate, []).append((block, lo, hi))
    return {
        worker: Share(late.owner, tuple(parts), sum(hi - lo for _, lo, hi in parts))
        for worker, parts in assigned.items()
    }


def _backup_shares_checked(
    code: GradientCode, late: Share, candidates: Sequence[int]
) -> dict[int, Share]:
    """:func:`backup_shares` through the code's own lookups (they check the ids)."""
    owner_partitions = code.partitions(late.owner)
    assigned: dict[int, list[Slice]] = {}
    for block, lo, hi in late.slices:
        partition = owner_partitions[block]
        for candidate in candidates:
            held = code.partitions(candidate)
            if partition in held:
                assigned.setdefault(candidate, []).append(
                    (held.index(partition), lo, hi)
                )
                break
        else:
            return {}  # nobody else holds it: no backup possible
    return {
        worker: Share(late.owner, tuple(parts), sum(hi - lo for _, lo, hi in parts))
        for worker, parts in assigned.items()
    }


class StaticPolicy:
    """Every round runs the static code."""

    name = "static"

    def plan(
        self,
        code: GradientCode,
        usable: Sequence[int],
        partition_rows: Sequence[int],
        physical: Sequence[int],
    ) -> Plan:
        """The coded plan."""
        return Plan("coded")

    def observe(self, timing: RoundTiming) -> None:
        """Nothing to learn."""


class SpeculativePolicy(StaticPolicy):
    """Every round splits the rows equally among holders; late shares backed up.

    Speculative backup tasks alone, as Spark and MapReduce run them: uncoded
    load, and a late worker costs its detection time plus one recomputation.
    Codes whose partitions have a single holder run coded.
    """

    name = "speculative"

    def plan(
        self,
        code: GradientCode,
        usable: Sequence[int],
        partition_rows: Sequence[int],
        physical: Sequence[int],
    ) -> Plan:
        """A split plan with equal shares."""
        if not splittable(code, usable):
            return Plan("coded")
        return Plan("split", split_shares(code, partition_rows, usable))


class AdaptivePolicy:
    """Plan each round from measured worker speeds and plan round times.

    Every worker's seconds per row is the median of its last ``memory``
    measurements (a worker that is slow every round is slow in the
    statistics; one that was slow once is not); a task the round ended
    without counts as at least as slow as the round was long.  Split shares
    follow these speeds.  Each plan's round time is predicted from the
    speeds (a coded round waits for its ``n - s``-th fastest worker over its
    whole shard, a split round for its slowest share) and corrected by the
    median of its last ``window`` residuals (measured minus predicted: the
    stragglers' and backups' cost), so rounds measured before the shares were
    balanced do not count against the balanced plan, and one pause of the
    whole machine does not rule a plan out for good.  Before every worker
    has been measured, a plan's estimate is the median of its measured
    rounds.
    The cheaper plan runs; the other is tried again after ``explore_every``
    rounds when its estimate is within ``explore_margin`` of the chosen
    one's, so a change of regime (stragglers coming or going) is noticed, and
    until it has been measured ``min_samples`` times, so one unlucky round
    cannot rule it out.

    Parameters
    ----------
    explore_every : int, default=25
    explore_margin : float, default=1.3
    window : int, default=10
    memory : int, default=5
    min_samples : int, default=3
    """

    name = "adaptive"

    def __init__(
        self,
        explore_every: int = 25,
        explore_margin: float = 1.3,
        window: int = 10,
        memory: int = 5,
        min_samples: int = 3,
    ) -> None:
        if min(explore_every, window, memory, min_samples) < 1:
            raise ValueError(
                "explore_every, window, memory and min_samples must be >= 1"
            )
        if not explore_margin >= 1:
            raise ValueError(f"explore_margin must be >= 1, got {explore_margin}")
        self.explore_every = int(explore_every)
        self.explore_margin = float(explore_margin)
        self.times: dict[str, deque[float]] = {
            "coded": deque(maxlen=window),
            "split": deque(maxlen=window),
        }
        self.residuals: dict[str, deque[float]] = {
            "coded": deque(maxlen=window),
            "split": deque(maxlen=window),
        }
        self._predicted: dict[str, float] = {}
        self.last_run: dict[str, int] = {}
        self.seconds_per_row: dict[int, deque[float]] = {}
        self.overheads: deque[float] = deque(maxlen=10 * window)
        self.memory = int(memory)
        self.min_samples = int(min_samples)
        self.rounds = 0
        self.estimates: dict[str, float] = {}

    # ---------------------------------------------------------- statistics
    def observe(self, timing: RoundTiming) -> None:
        """Learn from one round: its plan's time, its workers' speeds."""
        self.times[timing.plan].append(timing.wall)
        if timing.plan in self._predicted:
            self.residuals[timing.plan].append(
                timing.wall - self._predicted.pop(timing.plan)
            )
        self._predicted.clear()
        self.last_run[timing.plan] = self.rounds
        overhead = statistics.median(self.overheads) if self.overheads else 0.0
        for worker, task in timing.tasks.items():
            if task.rows <= 0:
                continue
            samples = self.seconds_per_row.setdefault(worker, deque(maxlen=self.memory))
            if task.arrival is not None:
                samples.append(task.work_seconds / task.rows)
                self.overheads.append(max(0.0, task.arrival - task.work_seconds))
            else:
                # Censored: it worked at least as long as the round lasted.
                bound = max(0.0, timing.wall - overhead) / task.rows
                if not samples or bound > statistics.median(samples):
                    samples.append(bound)

    def speeds(self, physical: Sequence[int]) -> dict[int, float]:
        """Rows per second of each code worker (the median worker's when unknown)."""
        return _speeds_of(self._per_row(physical))

    def _per_row(self, physical: Sequence[int]) -> list[float]:
        measured = {
            p: statistics.median(s) for p, s in self.seconds_per_row.items() if s
        }
        known = [measured[p] for p in physical if p in measured]
        default = statistics.median(known) if known else 0.0
        return [measured.get(p, default) for p in physical]

    # ------------------------------------------------------------ planning
    def predict(
        self,
        code: GradientCode,
        usable: Sequence[int],
        partition_rows: Sequence[int],
        physical: Sequence[int],
        shares: dict[int, Share],
    ) -> dict[str, float]:
        """Round time of each plan predicted from the speeds (no stragglers)."""
        return self._predict(
            code, usable, partition_rows, self._per_row(physical), shares
        )

    def _predict(
        self,
        code: GradientCode,
        usable: Sequence[int],
        partition_rows: Sequence[int],
        per_row: list[float],
        shares: dict[int, Share],
    ) -> dict[str, float]:
        """:meth:`predict` from the seconds per row of each code worker."""
        overhead = statistics.median(self.overheads) if self.overheads else 0.0
        _usable_tuple(code, usable)  # the code's checks of the ids
        # Each worker's rows come from the code's cached placement: summing
        # them worker by worker is n * d lookups a round.
        rows = worker_rows(code, partition_rows)
        coded = sorted(overhead + per_row[w] * rows[w] for w in usable)
        needed = code.n_workers - code.n_stragglers
        split = max(
            (overhead + per_row[w] * share.rows for w, share in shares.items()),
            default=math.inf,
        )
        return {
            "coded": coded[needed - 1] if needed <= len(coded) else math.inf,
            "split": split,
        }

    def plan(
        self,
        code: GradientCode,
        usable: Sequence[int],
        partition_rows: Sequence[int],
        physical: Sequence[int],
    ) -> Plan:
        """The plan of the next round."""
        self.rounds += 1
        if not splittable(code, usable):
            return Plan("coded")
        # The medians of every worker's samples, once for the shares and the
        # prediction alike.
        per_row = self._per_row(physical)
        shares = split_shares(code, partition_rows, usable, _speeds_of(per_row))
        predicted = self._predict(code, usable, partition_rows, per_row, shares)
        informed = bool(self.overheads) and all(
            self.seconds_per_row.get(physical[w]) for w in usable
        )
        estimate = {}
        for name, times in self.times.items():
            if informed and self.residuals[name]:
                estimate[name] = predicted[name] + statistics.median(
                    self.residuals[name]
                )
            elif informed or not times:
                estimate[name] = predicted[name]
            else:
                estimate[name] = statistics.median(times)
        if not self.times["split"]:
            estimate["split"] = 0.0  # try splitting first: no price if nobody is slow
        self._predicted = dict(predicted) if informed else {}
        self.estimates = estimate
        best = min(estimate, key=lambda name: estimate[name])
        other = "coded" if best == "split" else "split"
        stale = self.rounds - self.last_run.get(other, -math.inf) > self.explore_every
        close = estimate[other] <= self.explore_margin * estimate[best]
        if close and (stale or len(self.times[other]) < self.min_samples):
            best = other  # measure it: one unlucky round must not rule it out
        if best == "coded":
            return Plan("coded")
        return Plan("split", shares)


def _speeds_of(per_row: list[float]) -> dict[int, float]:
    """Rows per second from seconds per row (1.0 where none is measured)."""
    return {w: 1.0 / s if s > 0 else 1.0 for w, s in enumerate(per_row)}


#: Policy names accepted by ``CodedGradient(policy=...)``.
POLICIES: dict[str, type[StaticPolicy | AdaptivePolicy]] = {
    "static": StaticPolicy,
    "speculative": SpeculativePolicy,
    "adaptive": AdaptivePolicy,
}


def make_policy(policy: str | Policy) -> Policy:
    """A policy object from a name in :data:`POLICIES` or a policy object."""
    message = (
        f"policy must be one of {sorted(POLICIES)} or an object with plan and "
        f"observe methods; got {policy!r}"
    )
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise ValueError(message)
        return POLICIES[policy]()
    if callable(getattr(policy, "plan", None)) and callable(
        getattr(policy, "observe", None)
    ):
        return policy
    raise TypeError(message)
