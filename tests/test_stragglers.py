"""Straggler and bandwidth models are seeded pure functions."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from dask_gradcode.stragglers import Bandwidth, Pareto, ShiftedExponential, SlowWorkers

MODELS = [
    ShiftedExponential(scale=0.5, shift=0.1, random_state=0),
    Pareto(scale=0.2, shape=1.5, random_state=0),
    SlowWorkers(2, delay=1.0, random_state=0),
    SlowWorkers(p=0.3, factor=4.0, random_state=0),
]


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_delays_are_a_pure_function_of_seed_iteration_and_worker(model):
    first = [model.delay(it, w, 8, 0.01) for it in range(5) for w in range(8)]
    clone = pickle.loads(pickle.dumps(model))
    again = [clone.delay(it, w, 8, 0.01) for w in range(8) for it in range(5)]
    assert sorted(first) == sorted(again)
    assert first == [clone.delay(it, w, 8, 0.01) for it in range(5) for w in range(8)]
    assert all(d >= 0 for d in first)
    assert len(set(first)) > 1  # iterations and workers differ


def test_different_seeds_differ():
    a = ShiftedExponential(1.0, random_state=1).delays(0, 10)
    b = ShiftedExponential(1.0, random_state=2).delays(0, 10)
    assert not np.array_equal(a, b)


def test_unseeded_models_still_repeat_once_built():
    model = ShiftedExponential(1.0)
    assert model.delay(3, 1, 4) == pickle.loads(pickle.dumps(model)).delay(3, 1, 4)


def test_shifted_exponential_mean():
    model = ShiftedExponential(scale=0.5, shift=0.2, random_state=0)
    draws = [model.delay(it, 0, 1) for it in range(4000)]
    assert np.mean(draws) == pytest.approx(0.7, rel=0.05)
    assert min(draws) >= 0.2


def test_slow_workers_draws_exactly_n_slow_anew_each_iteration():
    model = SlowWorkers(3, delay=2.0, random_state=0)
    patterns = {tuple(model.slow_workers(it, 10)) for it in range(20)}
    assert all(len(p) == 3 for p in patterns)
    assert len(patterns) > 10
    delays = model.delays(4, 10)
    assert sorted(np.flatnonzero(delays).tolist()) == model.slow_workers(4, 10)
    assert set(delays) == {0.0, 2.0}


def test_slow_workers_with_probability_and_fixed_set():
    model = SlowWorkers(p=0.25, delay=1.0, random_state=0)
    fraction = np.mean([len(model.slow_workers(it, 40)) / 40 for it in range(200)])
    assert fraction == pytest.approx(0.25, abs=0.02)
    fixed = SlowWorkers(workers=[1, 3], factor=3.0)
    assert fixed.delay(7, 1, 4, compute_seconds=0.5) == pytest.approx(1.0)
    assert fixed.delay(7, 2, 4, compute_seconds=0.5) == 0.0


def test_bandwidth_delays_by_size():
    link = Bandwidth(1e6, latency=0.01)
    assert link.transfer_seconds(500_000) == pytest.approx(0.51)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: SlowWorkers(delay=1.0), "exactly one of n_slow, p or workers"),
        (lambda: SlowWorkers(2, p=0.1, delay=1.0), "exactly one of n_slow"),
        (lambda: SlowWorkers(2), "exactly one of delay"),
        (lambda: SlowWorkers(2, delay=1.0, factor=2.0), "exactly one of delay"),
        (lambda: SlowWorkers(p=1.5, delay=1.0), r"p must be in \[0, 1\]"),
        (lambda: SlowWorkers(2, factor=0.5), "factor must be"),
        (lambda: SlowWorkers(2, delay=-1.0), "delay must be"),
        (lambda: ShiftedExponential(-1.0), "scale must be"),
        (lambda: Pareto(1.0, shape=0), "shape must be > 0"),
        (lambda: Bandwidth(0), "bytes_per_second"),
        (
            lambda: ShiftedExponential(1.0, random_state=np.random.default_rng()),
            "random_state",
        ),
    ],
)
def test_bad_parameters_say_what_to_change(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_more_slow_workers_than_workers_is_an_error():
    with pytest.raises(ValueError, match="only 3 workers"):
        SlowWorkers(4, delay=1.0).slow_workers(0, 3)


def test_compute_time_emulates_rows_then_applies_the_model_on_top():
    from dask_gradcode.stragglers import ComputeTime, model_delay

    alone = ComputeTime(0.001)
    assert alone.delay(0, 0, 3, compute_seconds=0.5, rows=200) == pytest.approx(0.2)
    slower = ComputeTime(0.001, then=SlowWorkers(workers=[1], factor=4))
    # the slow worker is four times slower at the emulated work (and the real)
    assert slower.delay(0, 1, 3, compute_seconds=0.0, rows=200) == pytest.approx(0.8)
    assert slower.delay(0, 0, 3, compute_seconds=0.0, rows=200) == pytest.approx(0.2)
    assert model_delay(alone, 0, 0, 3, 0.0, 50) == pytest.approx(0.05)
    # a model without takes_rows is called without rows
    assert model_delay(SlowWorkers(workers=[0], delay=0.3), 0, 0, 3, 0.0, 50) == 0.3
    assert pickle.loads(pickle.dumps(slower)).delay(0, 1, 3, 0.0, rows=10) == (
        pytest.approx(0.04)
    )


def test_compute_time_rejects_bad_arguments():
    from dask_gradcode.stragglers import ComputeTime

    with pytest.raises(ValueError, match="seconds_per_row"):
        ComputeTime(-1.0)
    with pytest.raises(TypeError, match="straggler model"):
        ComputeTime(0.001, then=3)


# ---------------------------------------------------------------- TraceDelays
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lambda-traces"


@pytest.fixture(scope="module")
def toy_profile():
    from dask_gradcode.traces import TraceProfile

    # 2 rounds x 2 workers at loads 0 and 1.
    return TraceProfile(
        "toy", [0.0, 1.0], [[[1.0, 2.0], [3.0, 4.0]], [[3.0, 6.0], [5.0, 4.0]]]
    )


def test_trace_delays_inject_the_scaled_trace_time_less_the_computation(toy_profile):
    from dask_gradcode.stragglers import TraceDelays

    model = TraceDelays(toy_profile, time_scale=0.1, n_samples=1000)
    # Worker 1, round 0, 500 rows: load 0.5, d = (2 + 6) / 2 = 4 s, scaled 0.4 s.
    assert model.load(500) == 0.5
    assert model.trace_seconds(0, 1, 500) == pytest.approx(0.4)
    assert model.delay(0, 1, 2, 0.05, rows=500) == pytest.approx(0.35)
    assert model.delay(0, 1, 2, 0.5, rows=500) == 0.0  # computation took longer
    # Rounds and physical workers wrap around the trace.
    assert model.delay(2, 3, 8, 0.0, rows=500) == model.delay(0, 1, 8, 0.0, rows=500)
    assert model.delay(1, 0, 2, 0.0, rows=250) == pytest.approx(0.1 * 3.5)
    # Loads below the smallest and above the largest measured one.
    assert model.delay(0, 0, 2, rows=0) == pytest.approx(0.1)
    assert model.delay(0, 0, 2, rows=2000) == pytest.approx(0.1 * 5.0)
    on_top = TraceDelays(
        toy_profile, time_scale=0.1, n_samples=1000, subtract_compute=False
    )
    assert on_top.delay(0, 1, 2, 0.05, rows=500) == pytest.approx(0.4)


def test_trace_delays_get_the_rows_through_model_delay(toy_profile):
    from dask_gradcode.stragglers import TraceDelays, model_delay

    model = TraceDelays(toy_profile, n_samples=10)
    assert model.takes_rows
    assert model_delay(model, 1, 1, 2, 0.0, 10) == 4.0
    assert model_delay(model, 1, 1, 2, 0.0, 0) == 4.0
    assert model_delay(model, 0, 0, 2, 0.0, 5) == 2.0


def test_trace_delays_read_a_folder_and_pickle_small():
    from dask_gradcode.stragglers import TraceDelays
    from dask_gradcode.traces import TraceProfile

    assert SHARED.is_dir(), f"the shared traces are missing: {SHARED}"
    folder = SHARED / "cnn-long"
    model = TraceDelays(folder, time_scale=0.01, n_samples=600)
    same = TraceDelays(str(folder), time_scale=0.01, n_samples=600)
    profile = TraceProfile.from_folder(folder)
    assert model.profile.name == "cnn-long"
    assert np.array_equal(same.profile.durations, profile.durations)
    # Worker 300 is the trace's worker 44; 150 rows of 600 is load 0.25.
    assert model.delay(31, 300, 1024, 0.001, rows=150) == pytest.approx(
        0.01 * profile.durations[1, 1, 44] - 0.001
    )
    data = pickle.dumps(model)
    assert len(data) < profile.durations.nbytes + 10_000
    clone = pickle.loads(data)
    delays = [
        model.delay(it, w, 16, 0.0, rows=100) for it in range(3) for w in range(16)
    ]
    assert delays == [
        clone.delay(it, w, 16, 0.0, rows=100) for it in range(3) for w in range(16)
    ]
    assert "cnn-long" in repr(model) and "n_samples=600" in repr(model)


def test_trace_delays_need_n_samples_to_know_the_load(toy_profile):
    from dask_gradcode.stragglers import TraceDelays

    model = TraceDelays(toy_profile, time_scale=0.5)
    with pytest.raises(ValueError, match=r"needs n_samples.*n_samples=X\.shape\[0\]"):
        model.delay(0, 0, 2, 0.0, rows=10)
    bound = model.with_n_samples(20)
    assert bound.n_samples == 20 and model.n_samples is None
    assert bound.delay(0, 0, 2, 0.0, rows=10) == pytest.approx(0.5 * 2.0)
    assert bound.time_scale == 0.5 and bound.profile is toy_profile


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"profile": 3}, TypeError, "TraceProfile or a folder"),
        ({"time_scale": -1.0}, ValueError, "time_scale"),
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": 10.0}, ValueError, "n_samples"),
        ({"n_samples": True}, ValueError, "n_samples"),
    ],
)
def test_trace_delays_reject_bad_arguments(toy_profile, kwargs, error, match):
    from dask_gradcode.stragglers import TraceDelays

    kwargs = {"profile": toy_profile, **kwargs}
    with pytest.raises(error, match=match):
        TraceDelays(kwargs.pop("profile"), **kwargs)


def test_trace_delays_reject_a_folder_without_loads(tmp_path):
    from dask_gradcode.stragglers import TraceDelays

    with pytest.raises(ValueError, match="holds no load files"):
        TraceDelays(tmp_path, n_samples=10)


@pytest.mark.parametrize("subtract_compute", [True, False])
def test_a_live_round_injects_the_trace_time_of_each_workers_load(
    client, subtract_compute
):
    from dask_gradcode.codes import make_code
    from dask_gradcode.scheduler import CodedGradient
    from dask_gradcode.stragglers import TraceDelays
    from tests.conftest import binary_problem

    X, y, w = binary_problem(0, 400, 5)
    code = make_code("cyclic-repetition", 4, 1, random_state=0)
    model = TraceDelays(
        SHARED / "cnn",
        time_scale=0.02,
        n_samples=X.shape[0],
        subtract_compute=subtract_compute,
    )
    with CodedGradient(client, code, X, y, "log_loss", straggler_model=model) as cg:
        for _ in range(3):
            cg(w)
    for record in cg.history:
        assert record.injected_delay
        for worker, injected in record.injected_delay.items():
            # Each worker holds 2 of the 4 partitions of 100 rows: load 0.5.
            rows = 100 * len(code.partitions(worker))
            assert model.load(rows) == 0.5
            expected = model.trace_seconds(record.iteration, worker, rows)
            if subtract_compute:
                expected = max(0.0, expected - record.compute_seconds[worker])
            assert injected == expected
            assert injected > 0
