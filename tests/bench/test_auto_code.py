"""``dask-gradcode bench auto``: a small run writes its tables, targets and page."""

from __future__ import annotations

import json

from dask_gradcode.cli import main
from tests.bench import assert_every_kind_written, png_files


def test_bench_auto_small(tmp_path):
    out = tmp_path / "auto"
    status = main(
        [
            "bench",
            "auto",
            "--workers",
            "4",
            "--stragglers",
            "1",
            "--rows",
            "2000",
            "--straggler-rows",
            "800",
            "--features",
            "4",
            "--max-iter",
            "3",
            "--repeats",
            "1",
            "--tolerances",
            "1",
            "--scenarios",
            "persistent",
            "--compute-ms",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "auto")
    report = json.loads((out / "auto.json").read_text())
    fits = report["fits"]
    clusters = {row["cluster"] for row in fits}
    assert clusters == {"embedded in-process", "2 worker processes", "persistent"}
    embedded = [r for r in fits if r["cluster"] == "embedded in-process"]
    assert all(
        r["code"] == "uncoded s=0" for r in embedded if r["method"].startswith("auto")
    )
    assert {t["setting"] for t in report["targets"]} == clusters
    assert png_files(out) == ["auto.png"]
    assert "selection_reason" in (out / "auto.md").read_text()
