"""What a policy learns from a round, tested without a cluster."""

from __future__ import annotations

import numpy as np

from dask_gradcode.codes import make_code
from dask_gradcode.scheduler.feedback import coded_timing, split_timing, work_seconds
from dask_gradcode.scheduler.plans import AdaptivePolicy, Plan, Share, StaticPolicy
from dask_gradcode.scheduler.protocol import Reply
from dask_gradcode.scheduler.rounds import Collected, CollectedSplit

CODE = make_code("cyclic-repetition", 3, 1, random_state=0)


def reply(compute: float, injected: float = 0.0) -> Reply:
    return Reply(np.zeros(2), compute, injected, 1)


def test_a_coded_round_is_keyed_by_physical_worker_and_censors_the_late():
    collected = Collected(
        replies={0: reply(0.1, 0.2), 2: reply(0.3)}, arrived={0: 0.35, 2: 0.4}
    )
    physical = [10, 11, 12]
    timing = coded_timing(
        AdaptivePolicy(), CODE, collected, [0, 1, 2], [5, 5, 5], physical, wall=0.5
    )
    assert timing.plan == "coded" and timing.wall == 0.5
    assert set(timing.tasks) == {10, 11, 12}
    assert timing.tasks[10].work_seconds == 0.1 + 0.2
    assert timing.tasks[10].rows == 5 * len(CODE.partitions(0))
    assert timing.tasks[11].arrival is None  # the round ended without it
    assert work_seconds(None) == 0.0
    # The static policy learns nothing, so nothing is computed for it.
    assert (
        coded_timing(StaticPolicy(), CODE, collected, [0], [5] * 3, physical, 1).tasks
        == {}
    )


def test_a_split_round_reports_each_workers_own_share():
    plan = Plan("split", {0: Share(0, ((0, 0, 4),), 4), 1: Share(1, ((0, 0, 6),), 6)})
    collected = CollectedSplit(
        replies=[(0, 0, reply(0.1)), (0, 1, reply(0.5)), (1, 1, reply(0.9))],
        own_arrival={0: 0.2},
    )
    timing = split_timing(plan, collected, [7, 8], wall=0.3)
    assert timing.plan == "split"
    assert timing.tasks[7].rows == 4 and timing.tasks[7].work_seconds == 0.1
    assert timing.tasks[8].work_seconds == 0.9  # its own reply, not the backup
    assert timing.tasks[8].arrival is None
