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
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

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


def holders(code: GradientCode, usable: Sequence[int]) -> dict[int, list[int]]:
    """Usable code workers holding each partition (in worker order)."""
    return _held_by({worker: code.partitions(worker) for worker in usable})


def _held_by(placement: dict[int, list[int]]) -> dict[int, list[int]]:
    """Workers holding each partition, from each worker's partitions."""
    held: dict[int, list[int]] = {}
    for worker, partitions in placement.items():
        for partition in partitions:
            held.setdefault(partition, []).append(worker)
    return held


def splittable(code: GradientCode, usable: Sequence[int]) -> bool:
    """Whether a split round could cover every partition and back any of it up."""
    held = holders(code, usable)
    return len(held) == code.n_partitions and all(len(h) > 1 for h in held.values())


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
    placement = {worker: code.partitions(worker) for worker in usable}
    held = _held_by(placement)
    missing = [j for j in range(code.n_partitions) if j not in held]
    if missing:
        raise ValueError(f"partitions {missing} have no usable holder")
    # Block index of each partition in each worker's shard, looked up once.
    block_of = {
        worker: {partition: block for block, partition in enumerate(partitions)}
        for worker, partitions in placement.items()
    }
    speeds = speeds or {}
    slices: dict[int, list[Slice]] = {w: [] for w in usable}
    # Plain Python: this loop runs n * d times, on lists of d numbers.
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


def backup_shares(
    code: GradientCode,
    late: Share,
    candidates: Sequence[int],
) -> dict[int, Share]:
    """Who recomputes a late worker's rows: for each slice, a candidate holding it.

    Candidates are tried in order (fastest first); a slice goes to the first
    one that holds its partition.  Empty when some slice has no candidate.
    """
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
        per_row = self._per_row(physical)
        return {w: 1.0 / s if s > 0 else 1.0 for w, s in enumerate(per_row)}

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
        per_row = self._per_row(physical)
        overhead = statistics.median(self.overheads) if self.overheads else 0.0
        coded = sorted(
            overhead + per_row[w] * sum(partition_rows[j] for j in code.partitions(w))
            for w in usable
        )
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
        shares = split_shares(code, partition_rows, usable, self.speeds(physical))
        predicted = self.predict(code, usable, partition_rows, physical, shares)
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
