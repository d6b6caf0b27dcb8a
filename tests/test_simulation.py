"""The virtual-clock simulation: hand-computed round times, checked results."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dask_gradcode.codes import make_code
from dask_gradcode.scheduler.plans import AdaptivePolicy, Plan, Share
from dask_gradcode.simulation import (
    SimulatedArrivals,
    SimulatedCall,
    VirtualClock,
    simulate,
)


def linear_latency(round_: int, loads: np.ndarray) -> np.ndarray:
    """Worker ``w`` takes ``(1 + w)`` seconds per whole data set."""
    return (1 + np.arange(len(loads))) * loads


def per_quarter(base: list[float]):
    """Worker ``w`` takes ``base[w]`` seconds per quarter of the data set."""

    def latency(round_: int, loads: np.ndarray) -> np.ndarray:
        return np.asarray(base) * loads * 4

    return latency


@pytest.mark.parametrize(
    ("scheme", "n_stragglers", "comm_reduction", "expected", "slowest_skipped"),
    [
        # Every worker is needed: the slowest, 8 x 1/8 of the data.
        ("uncoded", 0, 1, 8 * 1 / 8, 0),
        # Load 2/8, any 7 decode: the 7th fastest, 7 x 2/8.
        ("cyclic-repetition", 1, 1, 7 * 2 / 8, 1),
        # Load 3/8, any 6 decode: 6 x 3/8.
        ("gaussian-mds", 2, 1, 6 * 3 / 8, 2),
        # Load (s + m)/n = 4/8, any 6 decode: 6 x 4/8.
        ("gaussian-mds", 2, 2, 6 * 4 / 8, 2),
        # One per group {0,1} ... {6,7}: the last group's faster worker, 7 x 2/8.
        ("fractional-repetition", 1, 1, 7 * 2 / 8, 1),
    ],
)
def test_a_coded_round_ends_when_the_first_decodable_set_is_in(
    scheme, n_stragglers, comm_reduction, expected, slowest_skipped
):
    code = make_code(
        scheme, n_workers=8, n_stragglers=n_stragglers, comm_reduction=comm_reduction
    )
    result = simulate(code, linear_latency, rounds=3)
    assert [r.wall_s for r in result.rounds] == pytest.approx([expected] * 3)
    assert result.mean_iteration_s == pytest.approx(expected)
    assert result.p90_iteration_s == pytest.approx(expected)
    for record in result.rounds:
        assert record.plan == "coded"
        assert record.exact and record.matched
        assert record.error < 1e-12
        assert record.client_s > 0
        # The slowest workers are the ones skipped.
        skipped = set(range(8)) - set(record.responders)
        assert skipped == set(range(8 - slowest_skipped, 8))
    assert result.client_ms_per_round > 0
    assert result.as_dict()["scheme"] == scheme


def test_ignore_stragglers_waits_for_n_minus_s_and_is_checked_against_its_bound():
    code = make_code("ignore-stragglers", n_workers=8, n_stragglers=2)
    result = simulate(code, linear_latency, rounds=2)
    for record in result.rounds:
        assert record.wall_s == pytest.approx(6 / 8)  # 6 of 8, each 1/8
        assert record.responders == tuple(range(6))
        assert not record.exact and not record.matched
        assert 0 < record.error <= record.error_bound
    assert not result.exact


def test_reply_overhead_adds_to_every_arrival():
    code = make_code("uncoded", n_workers=4, n_stragglers=0)
    result = simulate(code, linear_latency, rounds=1, overhead=0.5)
    assert result.rounds[0].wall_s == pytest.approx(4 / 4 + 0.5)


def test_latency_sees_the_rounds_and_the_loads():
    seen = []

    def latency(round_: int, loads: np.ndarray) -> np.ndarray:
        seen.append((round_, loads.copy()))
        return np.ones(len(loads))

    code = make_code("cyclic-repetition", n_workers=4, n_stragglers=1)
    simulate(code, latency, rounds=2, start_round=5)
    # Each round asks for the workers' loads and for load 0 (a task's fixed
    # cost, which a live worker does not report as computation).
    assert sorted(r for r, _ in seen) == [5, 5, 6, 6]
    loaded = [loads for _, loads in seen if loads.any()]
    assert len(loaded) == 2
    np.testing.assert_allclose(loaded[0], [0.5] * 4)  # two of four partitions


def test_workers_report_as_computation_only_what_grows_with_their_load():
    observed = []

    class Recording:
        def plan(self, code, usable, partition_rows, physical):
            return Plan("coded")

        def observe(self, timing):
            observed.append(timing)

    def latency(round_: int, loads: np.ndarray) -> np.ndarray:
        return 0.25 + 2.0 * np.asarray(loads)  # fixed cost 0.25 s a task

    code = make_code("cyclic-repetition", n_workers=4, n_stragglers=1)
    simulate(code, latency, rounds=1, policy=Recording())
    (timing,) = observed
    assert timing.tasks  # a policy that learns gets every task's timing
    for task in timing.tasks.values():
        if task.arrival is not None:
            assert task.work_seconds == pytest.approx(2.0 * 0.5)
            assert task.arrival == pytest.approx(0.25 + 2.0 * 0.5)


def test_a_wrong_latency_is_refused():
    code = make_code("uncoded", n_workers=4, n_stragglers=0)
    with pytest.raises(ValueError, match="4 durations"):
        simulate(code, lambda r, loads: np.ones(3), rounds=1)
    with pytest.raises(ValueError, match="non-finite"):
        simulate(code, lambda r, loads: -loads - 1, rounds=1)


def test_a_speculative_round_backs_up_the_late_share():
    # Equal shares of 1/8 each; the 4th arrival (the median) is at 4/8, so
    # backups are due at 1.5 x 4/8 = 0.75.  Worker 7's rows are held only by
    # itself and by workers 6 (late too) and 0: worker 0 takes its slice of
    # partition 0 at 0.75; its slice of partition 7 has no free holder, so
    # its own reply (8/8) ends the round.
    code = make_code("cyclic-repetition", n_workers=8, n_stragglers=1)
    result = simulate(code, linear_latency, rounds=2, policy="speculative")
    for record in result.rounds:
        assert record.plan == "split"
        assert record.exact and record.matched and record.error < 1e-12
        assert record.wall_s == pytest.approx(1.0)


def test_backups_queue_behind_their_workers_earlier_tasks():
    # Cyclic repetition on 4 workers: worker i holds partitions i and i + 1.
    # Workers 1 and 3 are slow.  Own shares (a quarter each) arrive from
    # worker 0 at 1 s and worker 2 at 2 s: backups are due at 1.5 x 2 = 3 s.
    # Worker 1's slices of partitions 1 and 2 go to workers 0 (0.5 s at an
    # eighth) and 2 (1 s); worker 3's slices of partitions 0 and 3 then go
    # to the same two workers, each queued behind its first backup:
    # worker 0's second piece arrives at 3 + 0.5 + 0.5 = 4 s, worker 2's at
    # 3 + 1 + 1 = 5 s.  Without queueing the round would end at 4 s.
    code = make_code("cyclic-repetition", n_workers=4, n_stragglers=1)
    result = simulate(code, per_quarter([1, 10, 2, 10]), rounds=1, policy="speculative")
    record = result.rounds[0]
    assert record.plan == "split"
    assert record.backups == 4
    assert record.wall_s == pytest.approx(5.0)
    assert set(record.responders) == {0, 2}
    assert record.exact and record.error < 1e-12


def test_simulated_arrivals_run_a_workers_calls_one_after_another():
    clock = VirtualClock(10.0)
    arrivals = SimulatedArrivals(clock, overhead=0.25)
    message = np.zeros(1)
    own = SimulatedCall(0, None, 4, 2.0, message)
    other = SimulatedCall(1, None, 4, 1.0, message)
    arrivals.add(own)
    arrivals.add(other)
    assert arrivals.wait(0.5) == []  # nothing due within 0.5 s
    assert clock() == pytest.approx(10.5)
    backup = SimulatedCall(0, Share(1, ((0, 0, 2),), 2), 2, 1.0, message)
    arrivals.add(backup)  # worker 0 is busy until 12: it queues
    assert (backup.submitted, backup.started) == (10.5, 12.0)
    assert backup.arrival == pytest.approx(13.25)
    [(handle, kind, reply)] = arrivals.wait(10.0)  # up to the next arrival only
    assert (handle, kind, clock()) == (other, "reply", 11.25)
    assert (reply.compute_seconds, reply.rows) == (1.0, 4)
    assert arrivals.wait(0.0) == []  # polling: only what is in, as a transport
    assert clock() == pytest.approx(11.25)
    assert [h for h, _, _ in arrivals.wait(5.0)] == [own]
    assert clock() == pytest.approx(12.25)
    assert [h for h, _, _ in arrivals.wait(5.0)] == [backup]
    assert arrivals.wait(1.0) == [] and clock() == pytest.approx(14.25)
    assert arrivals.spent > 0


def test_the_adaptive_policy_learns_every_workers_speed():
    policy = AdaptivePolicy()
    code = make_code("cyclic-repetition", n_workers=6, n_stragglers=1)
    n_samples = 6000
    result = simulate(
        code, linear_latency, rounds=6, policy=policy, n_samples=n_samples
    )
    assert result.policy == "adaptive"
    assert all(r.exact and r.error < 1e-12 for r in result.rounds)
    assert len(policy.times["split"]) == 6  # every round observed
    # Worker w computes a row in (1 + w) / n_samples seconds.
    for worker in range(6):
        samples = policy.seconds_per_row[worker]
        assert np.median(samples) == pytest.approx((1 + worker) / n_samples)
    # Balanced shares beat equal ones: the last split round is faster.
    assert result.rounds[-1].wall_s < result.rounds[0].wall_s


def test_an_exact_decode_off_the_true_sum_raises(monkeypatch):
    code = make_code("cyclic-repetition", n_workers=4, n_stragglers=1)
    decode = code.decode

    def wrong(*args, **kwargs):
        vector, decoder = decode(*args, **kwargs)
        return vector + 1e-3, decoder

    monkeypatch.setattr(code, "decode", wrong)
    with pytest.raises(AssertionError, match="off the true sum"):
        simulate(code, linear_latency, rounds=1)


def test_results_are_seeded():
    code = make_code("gaussian-mds", n_workers=6, n_stragglers=1)
    first = simulate(code, linear_latency, rounds=2, seed=3, policy="adaptive")
    again = simulate(code, linear_latency, rounds=2, seed=3, policy="adaptive")
    assert [r.wall_s for r in first.rounds] == [r.wall_s for r in again.rounds]
    assert [r.error for r in first.rounds] == [r.error for r in again.rounds]


def test_the_simulation_does_not_import_dask():
    script = (
        "import sys\n"
        "import dask_gradcode.simulation\n"
        "assert 'distributed' not in sys.modules\n"
        "import dask_gradcode.scheduler as scheduler\n"
        "assert scheduler.__doc__.startswith('Coded gradient rounds')\n"
        "assert 'distributed' not in sys.modules\n"
        "from dask_gradcode.scheduler import CodedGradient, rounds\n"
        "assert 'distributed' in sys.modules and scheduler.POLICIES\n"
        "assert scheduler.rounds is rounds and CodedGradient.__name__\n"
        "assert not hasattr(scheduler, 'no_such_name')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def heavy_tailed(n_workers: int, seed: int = 0):
    """Seconds per round and worker: proportional to the load, Pareto slowdowns."""

    def latency(round_: int, loads: np.ndarray) -> np.ndarray:
        slowdown = 1 + np.random.default_rng([seed, round_]).pareto(1.5, n_workers)
        return 0.01 + loads * n_workers * slowdown

    return latency


@pytest.mark.parametrize(
    ("scheme", "n_stragglers"),
    [("cyclic-repetition", 2), ("fractional-repetition", 3), ("gaussian-mds", 3)],
)
@pytest.mark.parametrize("policy", ["speculative", "adaptive"])
def test_the_split_loops_memos_do_not_change_its_decisions(
    monkeypatch, scheme, n_stragglers, policy
):
    from dask_gradcode.scheduler import rounds

    code = make_code(scheme, n_workers=24, n_stragglers=n_stragglers)
    latency = heavy_tailed(24)
    memoised = simulate(code, latency, rounds=12, policy=policy)
    speculate, until = rounds._speculate, rounds._until_speculation
    # The loop without its memos: every question asked afresh.
    monkeypatch.setattr(rounds, "_speculate", lambda *args: speculate(*args[:6]))
    monkeypatch.setattr(rounds, "_until_speculation", lambda *args: until(*args[:4]))
    fresh = simulate(code, latency, rounds=12, policy=policy)

    def decisions(result):
        return [(r.plan, r.wall_s, r.backups, r.responders) for r in result.rounds]

    assert decisions(memoised) == decisions(fresh)
    assert sum(r.backups for r in fresh.rounds) > 0  # backups were decided


def test_collect_reads_its_deadline_on_the_clock_it_is_given():
    from dask_gradcode.scheduler.rounds import collect

    code = make_code("cyclic-repetition", n_workers=4, n_stragglers=1)
    clock = VirtualClock(100.0)
    arrivals = SimulatedArrivals(clock)
    handles = {}
    for worker, seconds in enumerate([1.0, 2.0, 5.0, 6.0]):
        call = SimulatedCall(worker, None, 1, seconds, np.zeros(1))
        arrivals.add(call)
        handles[call] = worker
    collected = collect(
        handles,
        code,
        arrivals=arrivals,
        deadline=104.0,
        check_interval=10.0,
        approximate=False,
        gone=lambda pending: set(),
        clock=clock,
    )
    # Two replies in, then nothing until the deadline: the rest time out then.
    assert set(collected.replies) == {0, 1}
    assert collected.arrived == {0: 1.0, 1: 2.0}
    assert collected.timed_out == {2, 3}
    assert clock() == 104.0


def test_the_summary_is_plain_numbers():
    import json

    code = make_code("gaussian-mds", n_workers=6, n_stragglers=1)
    result = simulate(code, linear_latency, rounds=3, policy="adaptive")
    summary = json.loads(json.dumps(result.as_dict()))
    assert summary["n_workers"] == 6 and summary["rounds"] == 3
    assert summary["mean_iteration_s"] == pytest.approx(result.mean_iteration_s)
    assert 0 <= summary["split_fraction"] <= 1
