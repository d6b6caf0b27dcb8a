"""The benchmarks behind `dask-gradcode bench`, each in a small configuration."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

from dask_gradcode.bench import load_benchmark
from dask_gradcode.bench.cluster import ClusterTarget, round_trip_floor
from dask_gradcode.bench.report import Report, markdown_table
from dask_gradcode.cli import BENCHMARKS, main
from tests.bench import assert_every_kind_written, assert_readable_png, png_files
from tests.conftest import in_process_cluster

pytest.importorskip("matplotlib")


def test_report_writes_scalars_to_csv_and_everything_to_json(tmp_path):
    report = Report(
        "demo",
        tables={
            "main": [{"a": 1, "b": 0.5, "walls": np.array([0.1, 0.2])}],
            "extra": [{"c": "x"}],
        },
        markdown="# hi\n",
    )
    written = report.write(tmp_path / "out")
    assert sorted(p.name for p in written) == [
        "demo.csv",
        "demo.json",
        "demo.md",
        "demo_extra.csv",
    ]
    with open(tmp_path / "out" / "demo.csv") as handle:
        assert list(csv.DictReader(handle)) == [{"a": "1", "b": "0.5"}]
    data = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert data["main"][0]["walls"] == [0.1, 0.2]
    assert data["extra"] == [{"c": "x"}]


def test_markdown_table_formats_floats_and_flags():
    table = markdown_table(
        [{"x": 0.123456, "ok": True}, {"x": 2.0, "ok": False}],
        {"x": "x (s)", "ok": "exact"},
    ).splitlines()
    assert table == ["| x (s) | exact |", "|---|---|", "| 0.123 | yes |", "| 2 | no |"]


def test_round_trip_floor_uses_the_first_workers():
    with ClusterTarget().connect(3) as client:
        times = round_trip_floor(client, 2, n_rounds=4, warmup=1)
    assert times.shape == (4,)
    assert np.all(times > 0)


def test_bench_stability_writes_tables_plot_and_page(tmp_path, capsys):
    out = tmp_path / "stability"
    status = main(
        [
            "bench",
            "stability",
            "--workers",
            "10",
            "--sets",
            "5",
            "--all-s-workers",
            "10",
            "--build-workers",
            "10",
            "30",
            "--load-shapes",
            "1",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "decode_stability")
    assert (out / "decode_stability.csv").read_text().startswith("scheme,")
    floors = json.loads((out / "decode_stability.json").read_text())["decode_vs_floor"]
    assert [row["n"] for row in floors] == [10]
    assert floors[0]["floor_ms"] > 0
    page = (out / "decode_stability.md").read_text()
    assert "| gaussian-mds | 10 | 1 | 1 |" in page
    assert "dask-gradcode bench stability --workers 10" in page
    assert "| gaussian-mds | 10 | 1 |" in page  # every s, m = 1
    all_s = json.loads((out / "decode_stability.json").read_text())["all_s"]
    assert {row["scheme"] for row in all_s} >= {"ye-abbe", "gaussian-mds"}
    assert all(row["worst_error_accepted"] <= 1e-8 for row in all_s)
    builds = json.loads((out / "decode_stability.json").read_text())["build_time"]
    assert [row["n"] for row in builds][-1] == 30 and all(r["optimal"] for r in builds)
    loads = json.loads((out / "decode_stability.json").read_text())["load"]
    assert {row["n"] for row in loads} == {2, 3, 4, 5, 6, 7, 8}
    assert all(row["ratio"] == 1 for row in loads if row["scheme"] == "gaussian-mds")
    assert png_files(out) == [
        "decode_stability.png",
        "decode_stability_all_s.png",
        "decode_stability_build_time.png",
        "decode_stability_load.png",
    ]
    for name in png_files(out):
        assert_readable_png(out / name)
    assert "wrote" in capsys.readouterr().out


def test_bench_convergence_exact_schemes_follow_uncoded(tmp_path):
    out = tmp_path / "convergence"
    status = main(
        [
            "bench",
            "convergence",
            "--workers",
            "4",
            "--stragglers",
            "1",
            "--iterations",
            "4",
            "--rows",
            "600",
            "--features",
            "6",
            "--delay",
            "0.05",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "convergence")
    rows = json.loads((out / "convergence.json").read_text())["schemes"]
    uncoded = np.array(rows[0]["objective"])
    assert rows[0]["scheme"] == "uncoded"
    assert uncoded[-1] < uncoded[0]  # it trains
    for row in rows[1:]:
        assert len(row["seconds"]) == 5
        assert np.all(np.diff(row["seconds"]) > 0)
        if row["exact"]:
            np.testing.assert_allclose(row["objective"], uncoded, rtol=1e-9)
    assert any(not row["exact"] for row in rows)  # ignore-stragglers
    assert png_files(out) == ["convergence.png"]
    assert_readable_png(out / "convergence.png")
    assert "| gaussian-mds | 1 | 1 |" in (out / "convergence.md").read_text()


@pytest.mark.worker_processes  # the weights part runs on worker processes
def test_bench_iteration_time_every_part_small(tmp_path):
    out = tmp_path / "iteration"
    status = main(
        [
            "bench",
            "iteration-time",
            "--quick",
            "--workers",
            "4",
            "--stragglers",
            "1",
            "--rounds",
            "2",
            "--rows",
            "800",
            "--delay",
            "0.05",
            "--comm-workers",
            "4",
            "--dim",
            "2000",
            "--bandwidths",
            "50",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "iteration_time")
    tables = json.loads((out / "iteration_time.json").read_text())
    assert set(tables) == {
        "stragglers",
        "slow_workers",
        "overhead",
        "weights",
        "communication",
    }
    sweep = tables["slow_workers"]
    assert sorted({row["n_slow"] for row in sweep}) == [0, 1, 2]
    assert all(
        row["speedup"] == pytest.approx(1.0)
        for row in sweep
        if row["scheme"] == "uncoded"
    )
    comm = tables["communication"]
    assert {row["scenario"] for row in comm} == {"50 MB/s"}
    for row in comm:  # measured bytes are the formula's: m times fewer per worker
        assert row["bytes_per_message"] == pytest.approx(row["formula_bytes"])
    assert png_files(out) == [
        "iteration_time.png",
        "iteration_time_bytes.png",
        "iteration_time_communication.png",
        "iteration_time_speedup.png",
    ]
    for name in png_files(out):
        assert_readable_png(out / name)
    page = (out / "iteration_time.md").read_text()
    for heading in ("## Stragglers", "## Speed-up", "## Overhead", "## Weights"):
        assert heading in page


def test_bench_iteration_time_runs_only_the_parts_asked(tmp_path):
    out = tmp_path / "overhead"
    status = main(
        [
            "bench",
            "iteration-time",
            "--parts",
            "overhead",
            "--workers",
            "3",
            "--stragglers",
            "1",
            "--rounds",
            "2",
            "--rows",
            "300",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert set(json.loads((out / "iteration_time.json").read_text())) == {"overhead"}
    assert png_files(out) == []
    assert "## Stragglers" not in (out / "iteration_time.md").read_text()


@pytest.mark.worker_processes  # both fits run on worker processes
def test_bench_vs_dask_ml_small(tmp_path):
    pytest.importorskip("dask_ml")
    out = tmp_path / "versus"
    status = main(
        [
            "bench",
            "vs-dask-ml",
            "--rows",
            "2000",
            "--features",
            "5",
            "--workers",
            "2",
            "--gap",
            "5e-2",
            "--factor",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "vs_dask_ml")
    fits = json.loads((out / "vs_dask_ml.json").read_text())["fits"]
    assert len(fits) == 8
    assert all(fit["seconds"] is not None for fit in fits)
    assert "dask-ml takes" in (out / "vs_dask_ml.md").read_text()


def test_bench_small_data_profiles_every_stage(tmp_path, monkeypatch):
    import dask_gradcode.bench.small_data as small

    # digits and breast_cancer at full size cost seconds; two small sets here
    monkeypatch.setattr(
        small,
        "datasets",
        lambda rows: {
            "a": make_classification_scaled(300, 5, 0),
            "b": make_classification_scaled(rows, 4, 1),
        },
    )
    monkeypatch.setattr(small, "_searches", lambda X, y, coded: [])
    out = tmp_path / "small"
    assert (
        main(
            [
                "bench",
                "small-data",
                "--rows",
                "400",
                "--repeats",
                "1",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert_every_kind_written(out, "small_data")
    fits = json.loads((out / "small_data.json").read_text())["fits"]
    assert [fit["data"] for fit in fits] == ["a", "b"]
    for fit in fits:
        stages = sum(fit[f"{stage} (s)"] for stage in small.STAGES[1:])
        assert stages == pytest.approx(fit["dask_gradcode (s)"], rel=0.05)
        assert fit["rounds"] >= fit["iterations"] >= 1
    assert "where a fit's time goes" in (out / "small_data.md").read_text().lower()


def make_classification_scaled(rows, features, seed):
    from sklearn.datasets import make_classification

    X, y = make_classification(rows, features, random_state=seed)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def test_a_benchmark_without_matplotlib_fails_before_computing(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    start = time.perf_counter()
    assert main(["bench", "stability", "--no-progress", "--out", "unused"]) == 2
    assert time.perf_counter() - start < 5
    error = capsys.readouterr().err
    assert "needs matplotlib" in error and "dask-gradcode[bench]" in error


def test_bench_on_an_existing_cluster_by_address(tmp_path):
    with in_process_cluster(4) as cluster:
        out = tmp_path / "remote"
        status = main(
            [
                "bench",
                "convergence",
                "--scheduler-address",
                cluster.scheduler_address,
                "--workers",
                "3",
                "--stragglers",
                "1",
                "--iterations",
                "2",
                "--rows",
                "300",
                "--features",
                "4",
                "--delay",
                "0.01",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        assert status == 0
        assert cluster.scheduler_address in (out / "convergence.md").read_text()


def test_demo_on_an_existing_cluster_by_address(capsys):
    with (
        in_process_cluster(3, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        status = main(
            [
                "demo",
                "--scheduler-address",
                cluster.scheduler_address,
                "--workers",
                "3",
                "--iterations",
                "2",
                "--delay",
                "0.01",
            ]
        )
        assert status == 0
        assert not any(client.has_what().values())  # the demo released its data
    out = capsys.readouterr().out
    assert cluster.scheduler_address in out
    assert out.count("| gaussian-mds |") == 2
    assert "left out: fractional-repetition m=1" in out  # 2 does not divide 3


def test_a_cluster_with_too_few_workers_is_a_short_error(capsys):
    with in_process_cluster(2) as cluster:
        status = main(
            [
                "bench",
                "convergence",
                "--scheduler-address",
                cluster.scheduler_address,
                "--workers",
                "3",
                "--timeout",
                "0.5",
                "--rows",
                "100",
            ]
        )
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "needs 3 workers but the cluster has 2" in error


def test_an_unreachable_scheduler_is_a_short_error(capsys):
    status = main(
        ["demo", "--scheduler-address", "tcp://127.0.0.1:1", "--timeout", "0.5"]
    )
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("dask-gradcode: error: cannot reach the scheduler")


def test_a_missing_scheduler_file_honours_the_timeout(tmp_path, capsys):
    start = time.perf_counter()
    status = main(
        [
            "demo",
            "--scheduler-file",
            str(tmp_path / "nowhere.json"),
            "--timeout",
            "0.5",
        ]
    )
    assert time.perf_counter() - start < 10
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no scheduler file at" in error and "after 0.5 s" in error


def test_a_tls_address_without_credentials_says_what_to_configure(capsys):
    status = main(
        ["demo", "--scheduler-address", "tls://127.0.0.1:1", "--timeout", "1"]
    )
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no TLS credentials are configured" in error
    assert "distributed.comm.tls.ca-file" in error


@pytest.mark.parametrize(
    "argv",
    [
        ["bench"],
        ["bench", "nope"],
        ["bench", "iteration-time", "--parts", "nope"],
        ["bench", "convergence", "--workers", "1"],
        ["bench", "vs-dask-ml", "--gap", "-1"],
        ["bench", "stability", "--sets", "many"],
        ["demo", "--scheduler-address", "a", "--scheduler-file", "b"],
    ],
)
def test_bad_bench_options_exit_2_without_a_traceback(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error:" in err


def test_contradicting_values_are_a_one_line_error(capsys):
    status = main(["bench", "convergence", "--workers", "3", "--stragglers", "3"])
    assert status == 2
    assert (
        "stragglers=3 must be between 0 and workers - 1 = 2" in capsys.readouterr().err
    )


CLUSTER_OPTIONS = ("--scheduler-address", "--scheduler-file", "--timeout")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_lists_the_cluster_options_exactly_when_it_takes_them(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", name, "--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    local_only = load_benchmark(name).local_only
    assert all((option in shown) != bool(local_only) for option in CLUSTER_OPTIONS)
    if local_only:
        assert "takes no cluster options" in " ".join(shown.split())
        # given anyway, it is refused with the benchmark's reason
        argv = ["bench", name, "--scheduler-address", "tcp://127.0.0.1:1"]
        assert main([*argv, "--no-progress", "--out", "unused"]) == 2
        error = " ".join(capsys.readouterr().err.split())
        assert f"cannot run on an existing cluster: it {local_only}" in error


def test_every_published_benchmark_has_csv_json_markdown_and_a_figure():
    root = Path(__file__).resolve().parents[2]
    for name in BENCHMARKS:
        benchmark = load_benchmark(name)
        for run in benchmark.published_runs():
            out = run[run.index("--out") + 1] if "--out" in run else "docs"
            assert_every_kind_written(root / out, benchmark.files)


def test_bench_adaptive_small(tmp_path):
    out = tmp_path / "adaptive"
    status = main(
        [
            "bench",
            "adaptive",
            "--workers",
            "3",
            "--stragglers",
            "1",
            "--rows",
            "600",
            "--features",
            "4",
            "--rounds",
            "2",
            "--max-rounds",
            "5",
            "--scenarios",
            "none,persistent",
            "--compute-ms",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "adaptive")
    report = json.loads((out / "adaptive.json").read_text())
    methods = report["methods"]
    assert {row["scenario"] for row in methods} == {"none", "persistent"}
    exact = [row for row in methods if row["method"] != "ignore-stragglers"]
    assert all(row["max_relative_error"] < 1e-8 for row in exact)
    assert report["targets"]
    assert png_files(out) == [
        "adaptive.png",
        "adaptive_rounds_none.png",
        "adaptive_rounds_persistent.png",
    ]
    assert "adaptive" in (out / "adaptive.md").read_text()


def test_bench_transport_small(tmp_path):
    out = tmp_path / "transport"
    status = main(
        [
            "bench",
            "transport",
            "--workers",
            "2",
            "3",
            "--rows",
            "2000",
            "--features",
            "4",
            "--rounds",
            "3",
            "--lbfgs-workers",
            "2",
            "--repeats",
            "1",
            "--skip-search",
            "--gap",
            "1e-3",
            "--max-rounds",
            "60",
            "--kinds",
            "in-process",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "transport")
    report = json.loads((out / "transport.json").read_text())
    rounds = report["rounds"]
    assert {(r["workers"], r["rounds of"]) for r in rounds} == {
        (2, "floor"),
        (2, "full"),
        (3, "floor"),
        (3, "full"),
    }
    assert all(r["direct median ms"] > 0 and r["futures median ms"] > 0 for r in rounds)
    fits = report["fits"]
    assert {f["transport"] for f in fits} == {"futures", "direct"}
    assert all(np.isfinite(f["seconds_to_gap"]) for f in fits)  # both reached it
    assert report["searches"] == []  # --skip-search
    assert (out / "transport.png").exists()
    assert "## Targets" in (out / "transport.md").read_text()


def test_the_transport_grid_search_runs_with_the_defaults_and_no_client():
    from dask_gradcode.bench.transport import grid_searches

    rows = {row["estimator"]: row for row in grid_searches(("direct",))}
    assert set(rows) == {"CodedSGDClassifier(transport='direct')", "SGDClassifier"}
    ours = rows["CodedSGDClassifier(transport='direct')"]
    assert ours["best score"] > 0.8 and ours["ratio to SGDClassifier"] > 0


def test_the_weights_rows_ship_the_weights_the_way_they_name():
    """The scattered row scatters: the futures transport's own limit is patched."""
    from dask_gradcode.bench.iteration_time import _check_shipping, _embedding_limit
    from dask_gradcode.codes import make_code
    from dask_gradcode.scheduler import CodedGradient

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 8)), rng.standard_normal(40)
    w = np.zeros(8)
    code = make_code("gaussian-mds", 3, 1, 1, random_state=0)
    with (
        ClusterTarget().connect(3) as client,
        CodedGradient(client, code, X, y, "squared_error", transport="futures") as cg,
    ):
        with _embedding_limit(-1) as scattered:
            cg(w)
            cg(w)
        with _embedding_limit(np.inf) as embedded:
            cg(w)
    assert scattered == [True, True]
    assert embedded == [False]
    _check_shipping("scattered per round", scattered, True)
    _check_shipping("embedded in each task", embedded, False)


@pytest.mark.parametrize(
    ("scattered", "expected"),
    [([], True), ([], False), ([True, False], True), ([False], True), ([True], False)],
)
def test_a_weights_row_that_did_not_ship_as_named_fails_loudly(scattered, expected):
    from dask_gradcode.bench.iteration_time import _check_shipping

    with pytest.raises(RuntimeError, match="would not measure what it says"):
        _check_shipping("a row", scattered, expected)


def test_every_option_default_is_declared_once_and_quoted_in_the_help(capsys):
    from dask_gradcode.bench import load_benchmark

    for name in BENCHMARKS:
        benchmark = load_benchmark(name)
        with pytest.raises(SystemExit):
            main(["bench", name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for option in benchmark.options:
            if not option.is_flag:
                default = option.default
                if isinstance(default, tuple):
                    default = " ".join(map(str, default))
                assert f"(default: {default})" in text, (name, option.flags)


def test_a_benchmark_refuses_an_option_it_does_not_have():
    from dask_gradcode.bench.convergence import run

    with pytest.raises(TypeError, match=r"no options \['iteration'\]"):
        run(iteration=3)


def test_the_command_line_loads_no_benchmark_until_a_bench_command():
    import subprocess
    import sys

    code = (
        "import sys; from dask_gradcode.cli import build_parser; "
        "build_parser().parse_args(['stability']); "
        "print(sorted(m for m in sys.modules if m.startswith('dask_gradcode.bench.'))"
        ", 'distributed' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split("]")[-1].strip() == "False"  # no Dask for `stability`
    assert "dask_gradcode.bench.convergence" not in out
