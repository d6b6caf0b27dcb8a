"""Straggler and bandwidth models are seeded pure functions."""

from __future__ import annotations

import pickle

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
