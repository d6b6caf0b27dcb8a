"""Pure decisions about rounds and layouts, tested without a cluster."""

from __future__ import annotations

import numpy as np
import pytest

from dask_gradcode.codes import make_code
from dask_gradcode.scheduler.judging import (
    RoundFailure,
    data_fault,
    erasure_reasons,
    failure_addresses,
    growth,
    judge_coded,
    split_shortfall,
)
from dask_gradcode.scheduler.plans import Plan, Share
from dask_gradcode.scheduler.protocol import Reply
from dask_gradcode.scheduler.rounds import Collected, CollectedSplit


def reply(rows: int = 1) -> Reply:
    return Reply(np.zeros(3), 0.0, 0.0, rows)


CODE = make_code("cyclic-repetition", 4, 1, random_state=0)  # each partition twice


def test_decodable_replies_pass_and_too_few_name_each_erasure():
    enough = Collected(replies={w: reply() for w in (0, 1, 2)}, lost={3})
    judge_coded(enough, CODE, iteration=0, deadline=1.0, approximate=False)
    short = Collected(
        replies={0: reply(), 1: reply()},
        lost={2},
        timed_out={3},
    )
    with pytest.raises(RoundFailure) as failure:
        judge_coded(short, CODE, iteration=5, deadline=2.0, approximate=False)
    message = str(failure.value)
    assert "code worker 2 died" in message
    assert "code worker 3 did not answer within 2 s" in message
    assert "round 5" in message and "tolerates 1" in message
    assert failure.value.bad == {2, 3}


def test_approximate_mode_decodes_whatever_answered():
    short = Collected(replies={0: reply()}, lost={1, 2, 3})
    judge_coded(short, CODE, iteration=0, deadline=1.0, approximate=True)


def test_an_error_every_answering_worker_raised_is_raised_itself():
    error = ZeroDivisionError("bad loss")
    everyone = Collected(errors={w: error for w in range(4)})
    with pytest.raises(ZeroDivisionError, match="bad loss"):
        judge_coded(everyone, CODE, iteration=0, deadline=1.0, approximate=False)
    # A death besides the errors: a failure to plan around, not the data's fault.
    mixed = Collected(errors={0: error}, lost={1, 2, 3})
    with pytest.raises(RoundFailure, match="no worker answered round 0"):
        judge_coded(mixed, CODE, iteration=0, deadline=1.0, approximate=False)


def test_the_same_error_from_every_holder_of_a_partition_is_the_datas():
    holders = [w for w in range(4) if 0 in CODE.partitions(w)]
    same = Collected(errors={w: ValueError("row 7 is NaN") for w in holders})
    assert str(data_fault(CODE, same, range(4))) == "row 7 is NaN"
    different = Collected(
        errors={w: ValueError(f"worker {w} out of memory") for w in holders}
    )
    assert data_fault(CODE, different, range(4)) is None
    one = Collected(errors={holders[0]: ValueError("row 7 is NaN")})
    assert data_fault(CODE, one, range(4)) is None


def test_erasure_reasons_list_deaths_timeouts_and_errors():
    collected = Collected(lost={1}, timed_out={2}, errors={3: OSError()})
    assert erasure_reasons(collected) == [
        "code worker 1 died",
        "code worker 2 timed out",
        "code worker 3 raised",
    ]
    addresses = ["tcp://h:1", "tcp://h:2", "tcp://h:3", "tcp://h:4"]
    both = Collected(lost={1, 3})
    assert erasure_reasons(both, addresses=addresses) == [
        "workers tcp://h:2 (code worker 1), tcp://h:4 (code worker 3) died"
    ]
    assert erasure_reasons(Collected()) == []


def test_a_split_round_is_summed_only_when_every_row_counts_once():
    plan = Plan("split", {0: Share(0, ((0, 0, 5),), 5), 1: Share(1, ((0, 0, 5),), 5)})
    whole = CollectedSplit(covered={0: [reply(5)], 1: [reply(5)]})
    assert split_shortfall(whole, plan) is None
    missing = CollectedSplit(covered={0: [reply(5)]}, lost={1})
    assert split_shortfall(missing, plan) == (
        "a split round could not cover every share (code worker 1 died)"
    )
    no_backup = CollectedSplit(covered={0: [reply(5)]})
    assert "no backup holder was free" in split_shortfall(no_backup, plan)
    twice = CollectedSplit(covered={0: [reply(5), reply(5)], 1: [reply(5)]})
    assert split_shortfall(twice, plan) == (
        "a split round's replies cover 15 rows instead of 10"
    )


def test_a_failure_keeps_the_responsive_survivors_and_tops_them_up():
    addresses = ["a", "b", "c", "d"]
    keep, chosen = failure_addresses(
        addresses,
        bad={1},
        responsive=lambda a: a != "c",
        usable=["a", "d", "e", "f"],
        planned=4,
    )
    assert keep == ["a", "d"]
    assert chosen == ["a", "d", "e", "f"]
    keep, chosen = failure_addresses(
        addresses, {0, 1, 2, 3}, lambda a: True, usable=[], planned=4
    )
    assert keep == chosen == []


def test_growth_drops_failing_workers_and_takes_in_joined_ones():
    everyone = lambda address: True
    assert growth(["a", "b"], set(), everyone, ["a", "b", "c"], 2, False) is None
    dropped = growth(
        ["a", "b"], {"b"}, lambda a: a != "b", ["a", "c"], planned=2, approximate=False
    )
    assert dropped is not None
    assert dropped.addresses == ["a", "c"]
    assert (
        dropped.reason
        == "worker b (code worker 1) kept failing; worker c joined the cluster"
    )
    shrunk = growth(
        ["a"], set(), everyone, ["a", "b", "c"], planned=3, approximate=False
    )
    assert shrunk is not None and shrunk.addresses == ["a", "b", "c"]
    # Short, but nobody joined: nothing to change.
    assert growth(["a"], set(), everyone, ["a"], planned=3, approximate=False) is None
    # Approximate mode with every planned worker responsive: nothing to change.
    assert growth(["a", "b"], set(), everyone, ["a", "b", "c"], 2, True) is None


def test_shards_are_weighed_against_each_workers_memory_limit_and_use():
    from dask_gradcode.scheduler.judging import memory_shortfall

    mib = 2**20
    limits = {
        "a": (1000 * mib, 100 * mib),
        "b": (1000 * mib, 300 * mib),
        "c": (None, 0),
    }
    shares = {"a": 400 * mib, "b": 400 * mib, "c": 10**12}
    reason = memory_shortfall(shares, limits)  # b: 400 > 0.6 * 1000 - 300
    assert reason is not None and reason.startswith("1 of 3 workers")
    assert "b would hold 400 MiB" in reason and "300 MiB its process uses" in reason
    assert "more workers" in reason and "n_stragglers" in reason
    assert memory_shortfall({"a": 400 * mib, "c": 10**12}, limits) is None
