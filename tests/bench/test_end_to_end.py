"""``dask-gradcode bench end-to-end``: every system, each in a fresh process."""

from __future__ import annotations

import json

from dask_gradcode.bench import end_to_end
from dask_gradcode.cli import main
from tests.bench import assert_every_kind_written


def test_bench_end_to_end_small(tmp_path, monkeypatch):
    # Spark is optional (no dependency of the project): leave it out here.
    monkeypatch.setattr(end_to_end, "spark_available", lambda: "not in this test")
    out = tmp_path / "e2e"
    status = main(
        [
            "bench",
            "end-to-end",
            "--rows",
            "3000",
            "--features",
            "10",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "end_to_end")
    systems = json.loads((out / "end_to_end.json").read_text())["systems"]
    assert [s["system"] for s in systems] == list(end_to_end.SYSTEMS[:-1])
    for system in systems:
        assert system["fit_s"] > 0 and system["peak_gib"] > 0
        assert system["gap"] >= 0 and system["gap"] == system["gap"]
        if system["system"].startswith(("ours", "scikit-learn")):
            assert system["gap"] < 1e-8, system  # the same optimum
    assert (
        "Spark MLlib was not measured: not in this test"
        in (out / "end_to_end.md").read_text()
    )
