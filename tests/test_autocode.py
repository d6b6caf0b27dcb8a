"""The pure decision of ``n_stragglers="auto"``: measurements in, a code out."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dask_gradcode.autocode import (
    AutoCode,
    LatencyLog,
    choose,
    round_timings,
)

N_SAMPLES = 8_000


def _log(fixed: np.ndarray, per_row: float = 1e-6) -> LatencyLog:
    """A log of ``fixed[r, w]`` seconds per round and worker, ``per_row`` work."""
    log = LatencyLog()
    workers = [f"w{i}" for i in range(fixed.shape[1])]
    for row in fixed:
        log.add(workers, row, np.full(len(row), per_row))
    return log


def _workers(n: int) -> list[str]:
    return [f"w{i}" for i in range(n)]


def _one_slow_worker_per_round(n: int, rounds: int, delay: float) -> np.ndarray:
    fixed = np.full((rounds, n), 0.01)
    rng = np.random.default_rng(0)
    fixed[np.arange(rounds), rng.integers(n, size=rounds)] += delay
    return fixed


def test_the_log_is_a_two_load_profile_of_fixed_time_and_work():
    log = LatencyLog()
    log.add(["a", "b"], [0.1, 0.2], [1e-3, 2e-3])
    log.add(["a"], [0.3], [1e-3])  # b not measured: not a round of (a, b)
    assert log.rounds_of(["a", "b"]) == 1 and log.rounds_of(["a"]) == 2
    profile = log.profile(["a", "b"], n_samples=100)
    assert profile.loads.tolist() == [0.0, 0.5]
    # load 0: the fixed seconds; load 1/2: plus 50 rows of work; load 1: 100 rows
    np.testing.assert_allclose(profile.round_times(0, 0.0), [0.1, 0.2])
    np.testing.assert_allclose(profile.round_times(0, 0.5), [0.15, 0.3])
    np.testing.assert_allclose(profile.round_times(0, 1.0), [0.2, 0.4])
    with pytest.raises(ValueError, match="one fixed time and one work time"):
        log.add(["a"], [0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="no measured round"):
        log.profile(["c"], 10)


def test_the_log_keeps_the_newest_rounds():
    log = LatencyLog(max_rounds=3)
    for r in range(5):
        log.add(["a"], [float(r)], [0.0])
    assert len(log) == 3
    assert log.profile(["a"], 10).durations[0, :, 0].tolist() == [2.0, 3.0, 4.0]


def _record(**changes):
    base = {
        "scheme": "uncoded",
        "plan": "coded",
        "attempts": 1,
        "n_workers": 2,
        "failed": (),
        "exact": True,
        "response_seconds": {0: 0.5, 1: 0.9},
        "compute_seconds": {0: 0.1, 1: 0.1},
        "work_seconds": {0: 0.2, 1: 0.4},
    }
    return SimpleNamespace(**{**base, **changes})


def test_an_uncoded_round_gives_fixed_seconds_and_work_per_row():
    fixed, per_row = round_timings(_record(), [100, 200])
    np.testing.assert_allclose(fixed, [0.3, 0.5])
    np.testing.assert_allclose(per_row, [0.002, 0.002])
    # without emulated work, the measured computation is the work
    fixed, _ = round_timings(_record(work_seconds={}), [100, 200])
    np.testing.assert_allclose(fixed, [0.4, 0.8])


def test_a_straggler_a_coded_round_skipped_is_censored_at_its_last_reply():
    record = _record(
        scheme="gaussian-mds",
        n_workers=3,
        response_seconds={0: 0.5, 1: 0.9},
        work_seconds={0: 0.2, 1: 0.4},
    )
    fixed, per_row = round_timings(record, [100, 200, 300])
    # worker 2 took at least 0.9 s; its work at the median 2 ms per row
    np.testing.assert_allclose(per_row, [0.002, 0.002, 0.002])
    np.testing.assert_allclose(fixed, [0.3, 0.5, 0.9 - 0.6])


@pytest.mark.parametrize(
    "changes",
    [
        {"plan": "split"},
        {"attempts": 2},
        {"failed": (1,)},
        {"exact": False},
        {"response_seconds": {}},
    ],
)
def test_rounds_that_say_nothing_reliable_are_not_measured(changes):
    assert round_timings(_record(**changes), [100, 200]) is None


def test_no_decision_before_enough_rounds_and_none_to_make_on_one_worker():
    log = _log(np.full((3, 4), 0.01))
    assert choose(AutoCode(first_decision=4), log, _workers(4), N_SAMPLES) is None
    single = choose(AutoCode(), _log(np.full((1, 1), 0.01)), ["w0"], N_SAMPLES)
    assert single is not None and not single.codes
    assert "one worker" in single.code.selection_reason


def test_without_stragglers_the_extra_computation_never_pays():
    # Equal fixed times, and computation that every replica would repeat.
    log = _log(np.full((10, 8), 0.01), per_row=2e-5)
    choice = choose(AutoCode(), log, _workers(8), N_SAMPLES)
    assert choice is not None and not choice.codes
    assert choice.code.scheme == "uncoded" and choice.code.n_workers == 8
    assert "no code is predicted 10% faster" in choice.reason
    assert choice.code.selection_reason == choice.reason
    assert choice.rows[0].predicted_s <= choice.rows[-1].predicted_s


def test_a_heavy_straggler_each_round_makes_coding_pay():
    log = _log(_one_slow_worker_per_round(8, 20, delay=0.3))
    choice = choose(AutoCode(), log, _workers(8), N_SAMPLES)
    assert choice is not None and choice.codes
    assert choice.code.n_stragglers >= 1 and choice.code.n_workers == 8
    assert "coding pays" in choice.reason and "x faster" in choice.reason
    assert choice.code.selection_reason == choice.reason
    assert choice.measured_rounds == 20


def test_a_gain_within_the_margin_or_below_the_placement_cost_stays_uncoded():
    slight = _log(_one_slow_worker_per_round(8, 20, delay=0.0005))
    within = choose(AutoCode(), slight, _workers(8), N_SAMPLES)
    assert within is not None and not within.codes
    heavy = _log(_one_slow_worker_per_round(8, 20, delay=0.3))
    costly = choose(AutoCode(), heavy, _workers(8), N_SAMPLES, placement_seconds=60)
    assert costly is not None and not costly.codes
    assert "less than placing its replicas" in costly.reason


def test_once_coding_only_codes_that_skip_more_are_compared():
    from dask_gradcode.codes import make_code

    log = _log(_one_slow_worker_per_round(8, 20, delay=0.3))
    current = make_code("gaussian-mds", 8, 2, random_state=0)
    choice = choose(AutoCode(), log, _workers(8), N_SAMPLES, current=current)
    assert choice is not None
    assert {row.n_stragglers for row in choice.rows} >= {2, 4}
    assert min(row.n_stragglers for row in choice.rows) == 2  # no uncoded, no s=1
    # s = 2 already skips the one slow worker: it stays
    assert (choice.code.scheme, choice.code.n_stragglers) == ("gaussian-mds", 2)

    two_slow = _one_slow_worker_per_round(8, 30, delay=0.3)
    two_slow[np.arange(30), (np.arange(30) * 3) % 8] += 0.3
    log = _log(two_slow)
    one = make_code("fractional-repetition", 8, 1)
    grown = choose(AutoCode(), log, _workers(8), N_SAMPLES, current=one)
    assert grown is not None and grown.code.n_stragglers >= 2
    assert (
        "coding pays" in grown.reason and "with fractional-repetition" in grown.reason
    )


def test_the_scheme_and_the_tolerances_are_the_specs():
    log = _log(_one_slow_worker_per_round(8, 20, delay=0.3))
    spec = AutoCode(scheme="cyclic-repetition", stragglers=(2,))
    choice = choose(spec, log, _workers(8), N_SAMPLES)
    assert choice is not None and choice.codes
    assert (choice.code.scheme, choice.code.n_stragglers) == ("cyclic-repetition", 2)
    none_builds = AutoCode(scheme="fractional-repetition", stragglers=(2,))
    refused = choose(none_builds, log, _workers(8), N_SAMPLES)  # 8 % 3 != 0
    assert refused is not None and not refused.codes
    assert "no fractional-repetition code" in refused.reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scheme": "linear"}, "scheme must be one of"),
        ({"scheme": "cyclic-repetition", "comm_reduction": 2}, "comm_reduction"),
        ({"n_workers": 0}, "n_workers must be"),
        ({"margin": -1.0}, "margin must be"),
        ({"first_decision": 0}, "first_decision must be"),
    ],
)
def test_a_bad_spec_says_what_to_change(options, message):
    with pytest.raises(ValueError, match=message):
        AutoCode(**options)


def test_a_runs_own_rounds_are_a_profile_the_planner_reads():
    from dask_gradcode.autocode import measured_profile
    from dask_gradcode.planner import plan

    rounds = [_record(response_seconds={0: 0.5, 1: 0.9 + 0.1 * r}) for r in range(6)]
    rounds.append(_record(scheme="gaussian-mds"))  # coded: left out
    profile = measured_profile(rounds, n_samples=300)
    assert profile.n_rounds == 6 and profile.n_workers == 2
    # load 1/2 of 300 rows: the measured response time, less nothing
    np.testing.assert_allclose(profile.round_times(1, 0.5), [0.5, 1.0])
    table = plan(
        profile, schemes=("uncoded", "cyclic-repetition"), policies=("static",)
    )
    assert {row.scheme for row in table} == {"uncoded", "cyclic-repetition"}
    with pytest.raises(ValueError, match="no complete uncoded round"):
        measured_profile(rounds[-1:], 300)
