"""Round plans and policies: pure bookkeeping, no cluster."""

from __future__ import annotations

import math
import statistics
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dask_gradcode.codes import make_code
from dask_gradcode.scheduler.plans import (
    AdaptivePolicy,
    RoundTiming,
    Share,
    SpeculativePolicy,
    StaticPolicy,
    TaskTiming,
    backup_shares,
    holders,
    make_policy,
    split_shares,
    splittable,
    worker_rows,
)

SCHEMES = ("gaussian-mds", "cyclic-repetition", "fractional-repetition")


def covered_rows(code, shares):
    """For each partition, the sorted list of (lo, hi) rows the shares cover."""
    rows = {}
    for worker, share in shares.items():
        partitions = code.partitions(worker)
        for block, lo, hi in share.slices:
            rows.setdefault(partitions[block], []).append((lo, hi))
    return {j: sorted(r) for j, r in rows.items()}


def assert_each_row_once(code, shares, partition_rows):
    rows = covered_rows(code, shares)
    assert sorted(rows) == [j for j, r in enumerate(partition_rows) if r > 0]
    for partition, ranges in rows.items():
        position = 0
        for lo, hi in ranges:
            assert lo == position  # contiguous, disjoint
            position = hi
        assert position == partition_rows[partition]


@settings(max_examples=30)
@given(
    scheme=st.sampled_from(SCHEMES),
    n=st.integers(3, 16),
    s=st.integers(1, 3),
    data=st.data(),
)
def test_split_shares_cover_every_row_exactly_once(scheme, n, s, data):
    s = min(s, n - 1)
    if scheme == "fractional-repetition" and n % (s + 1):
        n -= n % (s + 1)
    code = make_code(scheme, n, s, 1, random_state=0)
    partition_rows = data.draw(
        st.lists(
            st.integers(0, 500), min_size=code.n_partitions, max_size=code.n_partitions
        )
    )
    dead = data.draw(st.sets(st.integers(0, n - 1), max_size=s))
    usable = [w for w in range(n) if w not in dead]
    speeds = {w: data.draw(st.floats(0.05, 20.0, allow_nan=False)) for w in usable}
    shares = split_shares(code, partition_rows, usable, speeds)
    assert set(shares) <= set(usable)
    assert_each_row_once(code, shares, partition_rows)
    assert sum(share.rows for share in shares.values()) == sum(partition_rows)


def test_split_shares_follow_the_speeds():
    code = make_code("gaussian-mds", 9, 2, 1, random_state=0)
    rows = [9000] * code.n_partitions
    equal = split_shares(code, rows, range(9))
    # Three groups of three workers, each group holding one partition.
    assert {share.rows for share in equal.values()} == {3000}
    slow = split_shares(
        code, rows, range(9), {w: 0.25 if w == 4 else 1.0 for w in range(9)}
    )
    assert slow[4].rows < 0.5 * min(share.rows for w, share in slow.items() if w != 4)
    assert sum(share.rows for share in slow.values()) == 3 * 9000


def test_a_partition_without_a_usable_holder_is_refused():
    code = make_code("cyclic-repetition", 4, 1)
    holders = [w for w in range(4) if 0 in code.partitions(w)]
    usable = [w for w in range(4) if w not in holders]
    with pytest.raises(ValueError, match="no usable holder"):
        split_shares(code, [10] * 4, usable)
    assert not splittable(code, usable)
    assert not splittable(make_code("uncoded", 4, 0), range(4))


def test_backups_go_to_holders_of_each_slice():
    code = make_code("gaussian-mds", 9, 2, 1, random_state=0)
    rows = [900] * code.n_partitions
    shares = split_shares(code, rows, range(9))
    late = shares[0]
    others = [w for w in range(1, 9)]
    backups = backup_shares(code, late, others)
    assert backups and all(share.owner == 0 for share in backups.values())
    assert sum(share.rows for share in backups.values()) == late.rows
    # Each backup slice reads the same rows of the same partition.
    late_rows = sorted((code.partitions(0)[b], lo, hi) for b, lo, hi in late.slices)
    backup_rows = sorted(
        (code.partitions(w)[b], lo, hi)
        for w, share in backups.items()
        for b, lo, hi in share.slices
    )
    assert backup_rows == late_rows
    assert backup_shares(code, late, []) == {}


def timing(plan, wall, per_worker, rows=1000, overhead=0.02, late=()):
    """A round where worker p worked ``per_worker[p]`` seconds on ``rows[p]`` rows."""
    tasks = {
        p: TaskTiming(
            rows[p] if isinstance(rows, dict) else rows,
            work,
            None if p in late else overhead + work,
        )
        for p, work in per_worker.items()
    }
    return RoundTiming(plan, wall, tasks)


def drive(policy, code, rounds, round_of):
    """Plan ``rounds`` rounds, feeding back ``round_of(plan)``; the plans run."""
    rows = [9000] * code.n_partitions
    plans = []
    for _ in range(rounds):
        plan = policy.plan(code, range(code.n_workers), rows, range(code.n_workers))
        plans.append(plan.name)
        policy.observe(round_of(plan))
    return plans


def test_adaptive_splits_when_nobody_straggles():
    code = make_code("gaussian-mds", 9, 2, 1, random_state=0)
    per_row = 1e-5  # seconds per row on every worker

    def round_of(plan):
        if plan.name == "split":
            work = {w: per_row * s.rows for w, s in plan.shares.items()}
            rows = {w: s.rows for w, s in plan.shares.items()}
            return timing("split", 0.02 + max(work.values()), work, rows=rows)
        work = {w: per_row * 27000 for w in range(9)}
        return timing("coded", 0.02 + 0.27, work, rows=27000)

    plans = drive(AdaptivePolicy(), code, 60, round_of)
    assert plans.count("coded") == 0  # predicted 3x dearer: never worth a try


def test_adaptive_codes_when_stragglers_hit_every_round():
    code = make_code("gaussian-mds", 9, 2, 1, random_state=0)

    def round_of(plan):
        if plan.name == "split":  # two shares late and backed up every round
            work = {w: 0.09 for w in plan.shares}
            rows = {w: s.rows for w, s in plan.shares.items()}
            return timing("split", 0.35, work, rows=rows, late={3, 7})
        work = {w: 0.27 for w in range(9)}
        return timing("coded", 0.3, work, rows=9000, late={3, 7})

    plans = drive(AdaptivePolicy(explore_every=25), code, 100, round_of)
    assert plans[:4] == ["split", "split", "split", "coded"]
    # Split is measured 3 times (it is close), then only re-tried now and then.
    assert 3 + 1 <= plans.count("split") <= 3 + 100 // 25
    assert plans[-10:].count("coded") >= 9


def test_adaptive_balances_a_persistently_slow_worker():
    code = make_code("gaussian-mds", 9, 2, 1, random_state=0)
    per_row = {w: 4e-5 if w == 4 else 1e-5 for w in range(9)}
    shares_of_4 = []

    def round_of(plan):
        if plan.name == "split":
            shares_of_4.append(plan.shares[4].rows)
            work = {w: per_row[w] * s.rows for w, s in plan.shares.items()}
            rows = {w: s.rows for w, s in plan.shares.items()}
            return timing("split", 0.02 + max(work.values()), work, rows=rows)
        return timing("coded", 0.3, {w: 0.27 for w in range(9)}, rows=27000)

    policy = AdaptivePolicy()
    drive(policy, code, 10, round_of)
    assert shares_of_4[0] == 3000  # equal until measured
    assert shares_of_4[-1] < 0.4 * 3000  # about a quarter of a fast worker's
    speeds = policy.speeds(range(9))
    assert speeds[4] == pytest.approx(speeds[0] / 4)


def test_a_censored_task_counts_as_at_least_as_slow_as_its_round():
    policy = AdaptivePolicy()
    policy.observe(RoundTiming("split", 0.05, {0: TaskTiming(100, 0.03, 0.04)}))
    policy.observe(RoundTiming("split", 1.0, {0: TaskTiming(100, 0.0, None)}))
    assert policy.speeds([0])[0] < 100 / 0.03  # it got slower in the statistics


def test_the_speeds_key_on_physical_workers():
    policy = AdaptivePolicy()
    policy.observe(
        RoundTiming(
            "split",
            0.1,
            {10: TaskTiming(100, 0.4, 0.42), 11: TaskTiming(100, 0.1, 0.12)},
        )
    )
    # Code worker 0 is physical 11 after a re-plan: it keeps 11's speed.
    speeds = policy.speeds([11, 10])
    assert speeds[0] == pytest.approx(4 * speeds[1])


def test_static_and_speculative_plans():
    code = make_code("gaussian-mds", 6, 1, 1, random_state=0)
    rows = [60] * code.n_partitions
    assert StaticPolicy().plan(code, range(6), rows, range(6)).name == "coded"
    split = SpeculativePolicy().plan(code, range(6), rows, range(6))
    assert split.name == "split"
    assert_each_row_once(code, split.shares, rows)
    uncoded = make_code("uncoded", 6, 0)
    assert (
        SpeculativePolicy().plan(uncoded, range(6), [1] * 6, range(6)).name == "coded"
    )


def test_make_policy_names_the_choices():
    assert isinstance(make_policy("adaptive"), AdaptivePolicy)
    policy = AdaptivePolicy(explore_every=3)
    assert make_policy(policy) is policy
    with pytest.raises(ValueError, match="adaptive"):
        make_policy("fast")
    with pytest.raises(TypeError, match="plan and observe"):
        make_policy(object())
    with pytest.raises(ValueError, match="explore_margin"):
        AdaptivePolicy(explore_margin=0.5)


def test_random_speeds_never_lose_rows():
    rng = np.random.default_rng(0)
    code = make_code("gaussian-mds", 12, 3, 2, random_state=0)
    for _ in range(20):
        rows = rng.integers(0, 1000, code.n_partitions).tolist()
        speeds = dict(enumerate(rng.uniform(0.01, 10, 12)))
        shares = split_shares(code, rows, range(12), speeds)
        assert_each_row_once(code, shares, rows)


@pytest.mark.parametrize(("n", "s", "m"), [(1000, 50, 1), (300, 120, 10)])
def test_large_codes_split_every_row_once_and_back_up_any_share(n, s, m):
    rng = np.random.default_rng(n)
    code = make_code("gaussian-mds", n, s, m, random_state=0)
    rows = rng.integers(0, 500, code.n_partitions).tolist()
    usable = sorted(rng.choice(n, n - s, replace=False).tolist())  # s gone
    shares = split_shares(code, rows, usable, dict(enumerate(rng.uniform(0.1, 10, n))))
    assert_each_row_once(code, shares, rows)
    late = max(shares.values(), key=lambda share: share.rows)
    others = [w for w in usable if w != late.owner]
    backups = backup_shares(code, late, others)
    assert sum(share.rows for share in backups.values()) == late.rows


def test_an_unbalanced_first_split_does_not_count_against_the_balanced_one():
    """Two workers 4x slower: the equal first split is dearer than coding.

    The balanced split (predicted from the measured speeds) is what counts
    afterwards, not the time of the equal split measured before them.
    """
    code = make_code("gaussian-mds", 9, 2, 1, random_state=0)
    per_row = {w: 4e-5 if w in (1, 5) else 1e-5 for w in range(9)}
    walls = []

    def round_of(plan):
        if plan.name == "split":
            work = {w: per_row[w] * s.rows for w, s in plan.shares.items()}
            rows = {w: s.rows for w, s in plan.shares.items()}
            walls.append(0.02 + max(work.values()))
            return timing("split", walls[-1], work, rows=rows)
        work = {w: per_row[w] * 9000 for w in range(9)}  # a partition each
        walls.append(0.02 + 0.09)  # the 7th fastest of 9 is a fast worker
        return timing("coded", walls[-1], work, rows=9000, late={1, 5})

    plans = drive(AdaptivePolicy(), code, 30, round_of)
    assert walls[0] > 0.11  # the equal split waited for the slow workers
    assert plans.count("coded") == 0
    assert max(walls[1:]) < 0.07  # balanced: 27000 rows over 7.5 fast workers


# ------------------------------------- vectorised plans == the plain loops
def plain_held_by(code, usable):
    held = {}
    for worker in dict.fromkeys(usable):
        for partition in code.partitions(worker):
            held.setdefault(partition, []).append(worker)
    return held


def plain_split_shares(code, partition_rows, usable, speeds=None):
    """``split_shares`` as one Python loop over partitions and holders."""
    placement = {worker: code.partitions(worker) for worker in usable}
    held = plain_held_by(code, usable)
    missing = [j for j in range(code.n_partitions) if j not in held]
    if missing:
        raise ValueError(f"partitions {missing} have no usable holder")
    block_of = {
        worker: {partition: block for block, partition in enumerate(partitions)}
        for worker, partitions in placement.items()
    }
    speeds = speeds or {}
    slices = {w: [] for w in usable}
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


def plain_backup_shares(code, late, candidates):
    owner_partitions = code.partitions(late.owner)
    assigned = {}
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
            return {}
    return {
        worker: Share(late.owner, tuple(parts), sum(hi - lo for _, lo, hi in parts))
        for worker, parts in assigned.items()
    }


def plain_predicted_coded(policy, code, usable, partition_rows, physical):
    per_row = policy._per_row(physical)
    overhead = statistics.median(policy.overheads) if policy.overheads else 0.0
    coded = sorted(
        overhead + per_row[w] * sum(partition_rows[j] for j in code.partitions(w))
        for w in usable
    )
    needed = code.n_workers - code.n_stragglers
    return coded[needed - 1] if needed <= len(coded) else math.inf


def outcome(call):
    try:
        return ("value", call())
    except (TypeError, ValueError) as error:
        return (type(error), str(error))


PLAIN_CODES = {}


def plain_code(scheme, n, s, m):
    if (scheme, n, s, m) not in PLAIN_CODES:
        PLAIN_CODES[scheme, n, s, m] = make_code(scheme, n, s, m, random_state=0)
    return PLAIN_CODES[scheme, n, s, m]


@settings(max_examples=150, deadline=None)
@given(
    scheme=st.sampled_from((*SCHEMES, "uncoded")),
    n=st.integers(2, 30),
    s=st.integers(0, 8),
    m=st.integers(1, 3),
    data=st.data(),
)
def test_vectorised_plans_answer_as_the_plain_loops(scheme, n, s, m, data):
    """Shares, backups, holders and predictions equal the loops', exactly."""
    if scheme == "uncoded":
        s, m = 0, 1
    elif scheme == "gaussian-mds":
        m = min(m, n - 1)
        s = min(s, n - m)
    else:
        m, s = 1, min(s, n - 1)
        while scheme == "fractional-repetition" and n % (s + 1):
            s -= 1
    code = plain_code(scheme, n, s, m)
    # Usable sets in any order, with repeats, as a caller may pass them.
    usable = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n + 3))
    rows = data.draw(
        st.lists(
            st.integers(0, 700), min_size=code.n_partitions, max_size=code.n_partitions
        )
    )
    speeds = data.draw(
        st.one_of(
            st.none(),
            st.dictionaries(
                st.integers(0, n - 1),
                st.one_of(
                    st.floats(0.0, 50.0),
                    st.floats(-1.0, 0.0),
                    st.sampled_from([1.0, 2.0, 0.1, 1e-300]),
                ),
            ),
        )
    )
    assert holders(code, usable) == plain_held_by(code, usable)
    assert list(holders(code, usable)) == list(plain_held_by(code, usable))
    held = plain_held_by(code, usable)
    plain_splittable = len(held) == code.n_partitions and all(
        len(h) > 1 for h in held.values()
    )
    assert splittable(code, usable) == plain_splittable
    for _ in range(2):  # the second answer comes from the cache
        fast = outcome(lambda: split_shares(code, rows, usable, speeds))
        plain = outcome(lambda: plain_split_shares(code, rows, usable, speeds))
        assert fast == plain
        if fast[0] == "value":
            assert list(fast[1]) == list(plain[1])
    assert worker_rows(code, rows) == [
        sum(rows[j] for j in code.partitions(w)) for w in range(n)
    ]
    if fast[0] != "value" or not fast[1]:
        return
    late = fast[1][data.draw(st.sampled_from(sorted(fast[1])))]
    candidates = data.draw(st.lists(st.integers(0, n - 1), max_size=n + 2))
    backups = backup_shares(code, late, candidates)
    assert backups == plain_backup_shares(code, late, candidates)
    assert list(backups) == list(plain_backup_shares(code, late, candidates))
    policy = AdaptivePolicy()
    for worker in range(n):
        if data.draw(st.booleans()):
            policy.seconds_per_row[worker] = deque(
                data.draw(st.lists(st.floats(1e-6, 1e-2), min_size=1, max_size=5))
            )
    policy.overheads.extend(data.draw(st.lists(st.floats(0.0, 0.1), max_size=4)))
    physical = list(range(n))
    predicted = policy.predict(code, usable, rows, physical, fast[1])
    assert predicted["coded"] == plain_predicted_coded(
        policy, code, usable, rows, physical
    )


def test_bad_worker_ids_are_refused_as_before():
    code = make_code("cyclic-repetition", 6, 2, random_state=0)
    rows = [10] * 6
    for bad in (6, -1, True, 1.5):
        for call in (
            lambda b=bad: split_shares(code, rows, [0, 1, b]),
            lambda b=bad: holders(code, [b, 0]),
            lambda b=bad: splittable(code, [b]),
        ):
            fast = outcome(call)
            assert fast[0] in (TypeError, ValueError)
    late = split_shares(code, rows, range(6))[0]
    for bad in (6, -1, True, 1.5):
        assert outcome(lambda b=bad: backup_shares(code, late, [b])) == outcome(
            lambda b=bad: plain_backup_shares(code, late, [b])
        )
    # numpy integers are worker ids, as the codes accept them.
    assert split_shares(code, rows, np.arange(6)) == split_shares(code, rows, range(6))


def test_infinite_or_nan_speeds_take_the_plain_arithmetic():
    code = make_code("gaussian-mds", 9, 2, 1, random_state=0)
    rows = [900] * code.n_partitions
    for speeds in ({0: math.nan}, {1: 0.0, 2: 0.0}, {3: np.float32(2.0)}):
        assert split_shares(code, rows, range(9), speeds) == plain_split_shares(
            code, rows, range(9), speeds
        )
    assert outcome(lambda: split_shares(code, rows, range(9), {0: math.inf})) == (
        outcome(lambda: plain_split_shares(code, rows, range(9), {0: math.inf}))
    )


@pytest.mark.parametrize(
    ("scheme", "n", "s", "m"),
    [("gaussian-mds", 300, 40, 4), ("cyclic-repetition", 120, 30, 1)],
)
def test_vectorised_split_matches_the_loop_on_many_holders(scheme, n, s, m):
    """Long rows of holders: the running sums and totals round as the loop's."""
    rng = np.random.default_rng(n)
    code = make_code(scheme, n, s, m, random_state=0)
    for trial in range(4):
        usable = sorted(rng.choice(n, n - s // 2, replace=False).tolist())
        if trial % 2:
            usable = list(range(n))
        rows = rng.integers(0, 5000, code.n_partitions).tolist()
        speeds = {w: float(rng.lognormal(0, 2)) for w in usable}
        shares = split_shares(code, rows, usable, speeds)
        assert shares == plain_split_shares(code, rows, usable, speeds)
        late = shares[usable[trial]]
        candidates = rng.permutation(usable).tolist()
        assert backup_shares(code, late, candidates) == plain_backup_shares(
            code, late, candidates
        )
