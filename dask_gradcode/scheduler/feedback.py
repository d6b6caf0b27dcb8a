"""What a policy learns from a round: its timing, by physical worker.

Pure bookkeeping (no Dask): the round executors call these after a round
decoded and hand the result to ``policy.observe``.
"""

from __future__ import annotations

from collections.abc import Sequence

from dask_gradcode.codes import GradientCode
from dask_gradcode.scheduler.plans import (
    Plan,
    Policy,
    RoundTiming,
    StaticPolicy,
    TaskTiming,
    worker_rows,
)
from dask_gradcode.scheduler.protocol import Reply
from dask_gradcode.scheduler.rounds import Collected, CollectedSplit

__all__ = ["coded_timing", "split_timing", "work_seconds"]


def work_seconds(reply: Reply | None) -> float:
    """Computation plus injected delay, as measured on the worker (0 if none)."""
    return 0.0 if reply is None else reply.compute_seconds + reply.injected_delay


def coded_timing(
    policy: Policy,
    code: GradientCode,
    collected: Collected,
    usable: Sequence[int],
    partition_rows: Sequence[int],
    physical: Sequence[int],
    wall: float,
) -> RoundTiming:
    """A coded round's timing; ``physical[w]`` is code worker ``w``'s physical id."""
    if isinstance(policy, StaticPolicy):
        return RoundTiming("coded", wall, {})  # nothing to learn
    tasks = {}
    # From the code's cached placement: summing each worker's partitions
    # here would be n * d lookups a round.
    rows = worker_rows(code, partition_rows)
    for worker in usable:
        if not (type(worker) is int and 0 <= worker < code.n_workers):
            code.partitions(worker)  # the code's own check of the id
        tasks[physical[worker]] = TaskTiming(
            rows=int(rows[worker]),
            work_seconds=work_seconds(collected.replies.get(worker)),
            arrival=collected.arrived.get(worker),
        )
    return RoundTiming("coded", wall, tasks)


def split_timing(
    plan: Plan, collected: CollectedSplit, physical: Sequence[int], wall: float
) -> RoundTiming:
    """A split round's timing: each worker's own share."""
    own = {w: r for w, o, r in collected.replies if w == o}
    tasks = {
        physical[worker]: TaskTiming(
            rows=share.rows,
            work_seconds=work_seconds(own.get(worker)),
            arrival=collected.own_arrival.get(worker),
        )
        for worker, share in plan.shares.items()
    }
    return RoundTiming("split", wall, tasks)
