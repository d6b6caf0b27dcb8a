"""Trace profiles: reading load files, interpolating in load, wrapping around."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dask_gradcode.traces import COLUMNS, TraceProfile

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lambda-traces"

# A toy profile: 2 rounds x 3 workers at loads 0.25, 0.5 and 1.
TOY = {
    0.25: [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
    0.5: [[2.0, 2.0, 5.0], [4.0, 7.0, 6.0]],
    1.0: [[4.0, 1.0, 6.0], [8.0, 7.0, 9.0]],
}
NAMES = {0.25: "load-0.25.csv", 0.5: "load-0.500.csv", 1.0: "load-1.csv"}


HEADER = ",".join(COLUMNS)


def write_load(path: Path, rows, header=HEADER):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def grid_rows(durations):
    """Rows of a load file; start times are exact binary fractions."""
    return [
        (r, w, r * 16 + w * 0.5, r * 16 + w * 0.5 + d)
        for r, round_ in enumerate(durations)
        for w, d in enumerate(round_)
    ]


@pytest.fixture
def toy_folder(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    for load, durations in TOY.items():
        write_load(folder / NAMES[load], grid_rows(durations))
    (folder / "README.md").write_text("not a load file\n")
    return folder


@pytest.fixture
def toy(toy_folder):
    return TraceProfile.from_folder(toy_folder)


def test_a_folder_reads_into_sorted_loads_and_durations(toy):
    assert toy.name == "toy"
    assert toy.loads.tolist() == [0.25, 0.5, 1.0]
    assert toy.durations.shape == (3, 2, 3)
    assert (toy.n_rounds, toy.n_workers) == (2, 3)
    assert toy.durations.tolist() == [TOY[0.25], TOY[0.5], TOY[1.0]]
    assert "toy" in repr(toy)


@pytest.mark.parametrize("load", [0.25, 0.5, 1.0])
def test_at_a_measured_load_the_measured_times_exactly(toy, load):
    for r in range(2):
        assert toy.round_times(r, load).tolist() == TOY[load][r]


@pytest.mark.parametrize(
    ("round_", "load", "expected"),
    [
        (0, 0.375, [1.5, 2.0, 4.0]),  # halfway between 0.25 and 0.5
        (1, 0.75, [6.0, 7.0, 7.5]),  # halfway between 0.5 and 1
        (0, 0.3, [1.2, 2.0, 3.4]),
    ],
)
def test_between_measured_loads_linear_interpolation(toy, round_, load, expected):
    assert toy.round_times(round_, load) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("load", [0.0, 0.1, 0.2499])
def test_below_the_smallest_load_its_times(toy, load):
    assert toy.round_times(0, load).tolist() == TOY[0.25][0]
    assert toy.round_times(1, load).tolist() == TOY[0.25][1]


def test_above_the_largest_load_extrapolation_from_the_two_largest(toy):
    # Slopes between 0.5 and 1 in round 0: 4, -2 and 2 seconds per unit load.
    assert toy.round_times(0, 1.5) == pytest.approx([6.0, 0.0, 7.0], abs=1e-12)
    # ... floored at 0 where the extrapolated time would be negative.
    assert toy.round_times(0, 2.0) == pytest.approx([8.0, 0.0, 8.0], abs=1e-12)
    assert toy.round_times(1, 2.0) == pytest.approx([16.0, 7.0, 15.0], abs=1e-12)


def test_rounds_and_workers_wrap_around(toy):
    assert toy.round_times(2, 0.25).tolist() == TOY[0.25][0]
    assert toy.round_times(5, 0.5).tolist() == TOY[0.5][1]
    workers = np.arange(9)
    assert toy.round_times(3, 1.0, workers).tolist() == TOY[1.0][1] * 3
    assert toy.duration(4, 7, 0.5) == TOY[0.5][0][1]


def test_vectorised_equals_scalar(toy):
    rng = np.random.default_rng(0)
    workers = rng.integers(0, 40, size=25)
    loads = rng.uniform(0, 2, size=25)
    for r in (0, 1, 7):
        scalar = [
            toy.duration(r, int(w), float(u))
            for w, u in zip(workers, loads, strict=True)
        ]
        assert toy.round_times(r, loads, workers).tolist() == scalar
        same = toy.round_times(r, 0.4, workers)
        assert same.tolist() == [toy.duration(r, int(w), 0.4) for w in workers]


def test_one_load_per_worker_by_default(toy):
    assert toy.round_times(0, np.array([0.0, 0.5, 1.5])) == pytest.approx(
        [1.0, 2.0, 7.0], abs=1e-12
    )
    assert toy.round_times(0, 0.5, []).shape == (0,)


def test_a_single_measured_load_is_constant_in_load():
    profile = TraceProfile("one", [0.5], [[[1.0, 2.0]]])
    assert profile.round_times(0, 0.0).tolist() == [1.0, 2.0]
    assert profile.round_times(3, np.array([2.0, 0.1])).tolist() == [1.0, 2.0]
    assert profile.duration(0, 1, 9.0) == 2.0


def test_loads_given_out_of_order_are_sorted_with_their_durations():
    profile = TraceProfile("p", [1.0, 0.0], [[[3.0]], [[1.0]]])
    assert profile.loads.tolist() == [0.0, 1.0]
    assert profile.duration(0, 0, 0.5) == 2.0


def test_summaries_average_each_rounds_statistics(toy):
    assert toy.order_statistics(0.25).tolist() == [2.5, 3.5, 4.5]
    summary = toy.summary(0.25)
    assert summary["median_s"] == pytest.approx(3.5)
    assert summary["p90_s"] == pytest.approx((2.8 + 5.8) / 2)
    assert summary["max_s"] == pytest.approx(4.5)
    assert summary["slowest_over_median"] == pytest.approx((3 / 2 + 6 / 5) / 2)
    assert toy.at_load(0.375)[0] == pytest.approx([1.5, 2.0, 4.0])


def test_scaled_multiplies_every_time(toy):
    half = toy.scaled(0.5)
    assert half.name == toy.name
    assert half.durations.tolist() == (toy.durations * 0.5).tolist()
    assert half.duration(0, 2, 0.375) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="time_scale"):
        toy.scaled(-1.0)


def test_latency_replays_the_trace_on_any_number_of_workers(toy):
    loads = np.linspace(0.0, 1.0, 2 * toy.n_workers + 1)
    replay = toy.latency(len(loads))
    workers = np.arange(len(loads))
    for round_ in range(toy.n_rounds + 1):
        np.testing.assert_array_equal(
            replay(round_, loads), toy.round_times(round_, loads, workers)
        )
    assert len(toy.latency()(0, 0.5)) == toy.n_workers
    with pytest.raises(ValueError, match="n_workers must be >= 1"):
        toy.latency(0)


def test_a_profile_pickles_and_is_read_only(toy):
    clone = pickle.loads(pickle.dumps(toy))
    assert clone.name == toy.name
    assert np.array_equal(clone.loads, toy.loads)
    assert np.array_equal(clone.durations, toy.durations)
    assert clone.round_times(1, 0.7).tolist() == toy.round_times(1, 0.7).tolist()
    with pytest.raises(ValueError, match="read-only"):
        toy.durations[0, 0, 0] = 1.0


def test_the_module_does_not_import_dask():
    code = (
        "import sys, dask_gradcode.traces; "
        "assert not {'dask', 'distributed'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p: p.round_times(0, -0.1), ValueError, "loads must be finite"),
        (lambda p: p.round_times(0, np.nan), ValueError, "loads must be finite"),
        (lambda p: p.round_times(0, [0.1, 0.2]), ValueError, "one per worker"),
        (lambda p: p.round_times(0, [[0.1]]), ValueError, "one per worker"),
        (lambda p: p.round_times(-1, 0.1), ValueError, "round must be >= 0"),
        (lambda p: p.round_times(0.5, 0.1), TypeError, "round must be an int"),
        (lambda p: p.round_times(0, 0.1, [-1]), ValueError, "worker ids"),
        (lambda p: p.round_times(0, 0.1, [0.5]), ValueError, "array of ints"),
        (lambda p: p.duration(0, -2, 0.1), ValueError, "worker must be >= 0"),
        (lambda p: p.duration(0, 0, -0.5), ValueError, "load must be"),
        (lambda p: p.at_load(-1.0), ValueError, "load must be"),
    ],
)
def test_bad_arguments_say_what_is_wrong(toy, call, error, match):
    with pytest.raises(error, match=match):
        call(toy)


@pytest.mark.parametrize(
    ("loads", "durations", "match"),
    [
        ([], np.zeros((0, 1, 1)), "non-empty"),
        ([-0.5], np.ones((1, 1, 1)), "loads must be finite"),
        ([0.5, 0.5], np.ones((2, 1, 1)), "distinct"),
        ([0.5], np.ones((2, 1, 1)), "shape"),
        ([0.5], np.ones((1, 1)), "shape"),
        ([0.5], np.ones((1, 0, 3)), "rounds and workers"),
        ([0.5], -np.ones((1, 1, 1)), "durations must be finite"),
        ([0.5], np.full((1, 1, 1), np.nan), "durations must be finite"),
    ],
)
def test_bad_arrays_are_refused(loads, durations, match):
    with pytest.raises(ValueError, match=match):
        TraceProfile("bad", loads, durations)


def test_a_missing_folder_or_one_without_load_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trace profile folder"):
        TraceProfile.from_folder(tmp_path / "nowhere")
    (tmp_path / "other.csv").write_text("round,worker,started_s,finished_s\n")
    with pytest.raises(ValueError, match="holds no load files"):
        TraceProfile.from_folder(tmp_path)


def test_file_names_must_state_a_load_at_least_0(toy_folder):
    write_load(toy_folder / "load--0.5.csv", grid_rows(TOY[0.5]))
    with pytest.raises(ValueError, match=r"finite number >= 0, got -0\.5"):
        TraceProfile.from_folder(toy_folder)
    (toy_folder / "load--0.5.csv").rename(toy_folder / "load-half.csv")
    with pytest.raises(ValueError, match="'half' is not a number"):
        TraceProfile.from_folder(toy_folder)


def test_two_files_of_one_load(toy_folder):
    write_load(toy_folder / "load-0.5.csv", grid_rows(TOY[0.5]))
    with pytest.raises(ValueError, match=r"two files measure load 0\.5"):
        TraceProfile.from_folder(toy_folder)


def test_columns_in_another_order_are_read_by_name(toy_folder):
    rows = [(f, s, w, r) for r, w, s, f in grid_rows(TOY[0.5])]
    write_load(
        toy_folder / NAMES[0.5], rows, header="finished_s,started_s,worker,round"
    )
    assert TraceProfile.from_folder(toy_folder).durations[1].tolist() == TOY[0.5]


@pytest.mark.parametrize(
    "header",
    [
        "round,worker,started_s,finished_s,memory_mb",
        "round,worker,finished_s",
        "round,worker,start,finished_s",
    ],
)
def test_a_file_with_other_columns(toy_folder, header):
    rows = [(*row, 0) for row in grid_rows(TOY[0.5])]
    write_load(toy_folder / NAMES[0.5], rows, header=header)
    with pytest.raises(ValueError, match="columns must be round, worker, started_s"):
        TraceProfile.from_folder(toy_folder)


def test_a_file_without_measurements(toy_folder):
    write_load(toy_folder / NAMES[0.5], [])
    with pytest.raises(ValueError, match="no measurements"):
        TraceProfile.from_folder(toy_folder)


def test_load_files_must_share_rounds_and_workers(toy_folder):
    write_load(toy_folder / NAMES[0.5], grid_rows(TOY[0.5][:1]))  # one round
    with pytest.raises(ValueError, match=r"1 rounds x 3 workers.* 2 x 3"):
        TraceProfile.from_folder(toy_folder)
    write_load(toy_folder / NAMES[0.5], grid_rows([r[:2] for r in TOY[0.5]]))
    with pytest.raises(ValueError, match="2 rounds x 2 workers"):
        TraceProfile.from_folder(toy_folder)


def test_a_missing_measurement_is_an_error_not_a_guess(toy_folder):
    rows = grid_rows(TOY[0.5])
    write_load(toy_folder / NAMES[0.5], rows[:4] + rows[5:])  # round 1, worker 1
    with pytest.raises(ValueError, match=r"1 \(round, worker\).*round 1, worker 1"):
        TraceProfile.from_folder(toy_folder)


def test_a_missing_round_id_is_a_gap(toy_folder):
    rows = [(2 * r, w, s, f) for r, w, s, f in grid_rows(TOY[0.5])]  # rounds 0, 2
    write_load(toy_folder / NAMES[0.5], rows)
    with pytest.raises(ValueError, match=r"3 \(round, worker\).*round 1, worker 0"):
        TraceProfile.from_folder(toy_folder)


def test_a_repeated_measurement(toy_folder):
    rows = grid_rows(TOY[0.5])
    write_load(toy_folder / NAMES[0.5], [*rows, rows[2]])
    with pytest.raises(ValueError, match="round 0, worker 2 is measured more than"):
        TraceProfile.from_folder(toy_folder)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ((0, 1, "nan", 3.0), "line 3: started_s is not a number"),
        ((0, 1, 1.0, "inf"), "line 3: finished_s is not a number"),
        ((0, 1, 1.0, ""), "could not convert"),
        ((0, 1.5, 1.0, 2.0), "line 3: worker must be an integer >= 0, got 1.5"),
        ((-1, 1, 1.0, 2.0), "line 3: round must be an integer >= 0"),
        ((0, 1, 3.0, 2.5), r"line 3: finished_s is before started_s \(2.5 < 3.0\)"),
    ],
)
def test_a_bad_measurement_names_its_line(toy_folder, row, match):
    rows = grid_rows(TOY[0.5])
    rows[1] = row
    write_load(toy_folder / NAMES[0.5], rows)
    with pytest.raises(ValueError, match=match):
        TraceProfile.from_folder(toy_folder)


def test_a_zero_duration_is_a_measurement(toy_folder):
    rows = grid_rows(TOY[0.5])
    rows[1] = (0, 1, 2.0, 2.0)
    write_load(toy_folder / NAMES[0.5], rows)
    assert TraceProfile.from_folder(toy_folder).duration(0, 1, 0.5) == 0.0


# ------------------------------------------------------- the shared profiles
@pytest.fixture(scope="module", params=["cnn", "cnn-long"])
def shared(request):
    # The shared data sits beside the repository; missing, it is a failure.
    assert SHARED.is_dir(), f"the shared traces are missing: {SHARED}"
    return TraceProfile.from_folder(SHARED / request.param)


def test_the_shared_profiles_load_whole(shared):
    rounds = {"cnn": 20, "cnn-long": 30}[shared.name]
    assert shared.loads.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert shared.durations.shape == (5, rounds, 256)
    assert (shared.n_rounds, shared.n_workers) == (rounds, 256)
    assert shared.durations.min() > 0


def test_the_shared_profiles_match_their_readme(shared):
    """README: median round 0.64 s at load 0, 1.78 / 1.79 s at load 1, slowest
    of 256 about 2.5 times the median at load 0."""
    at_one = {"cnn": 1.78, "cnn-long": 1.79}[shared.name]
    assert np.median(shared.durations[0]) == pytest.approx(0.64, abs=0.005)
    assert np.median(shared.durations[-1]) == pytest.approx(at_one, abs=0.005)
    summary = shared.summary(0.0)
    assert summary["median_s"] == pytest.approx(0.64, abs=0.02)
    assert summary["slowest_over_median"] == pytest.approx(2.5, rel=0.1)
    # Computation costs: every quarter of the data adds to the median round.
    medians = [shared.summary(load)["median_s"] for load in shared.loads]
    assert np.all(np.diff(medians) > 0.1)


def test_a_256_worker_trace_drives_1024_workers(shared):
    workers = np.arange(1024)
    loads = np.random.default_rng(1).uniform(0, 1, 1024)
    times = shared.round_times(33, loads, workers)
    assert times.shape == (1024,)
    again = shared.round_times(33 % shared.n_rounds, loads[:256])
    assert times[512:768].tolist() == shared.round_times(33, loads[512:768]).tolist()
    assert times[:256].tolist() == again.tolist()
    picks = [0, 255, 256, 700, 1023]
    assert times[picks].tolist() == [
        shared.duration(33, w, float(loads[w])) for w in picks
    ]
