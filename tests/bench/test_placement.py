"""``dask-gradcode bench placement``: a small run measures fresh processes."""

from __future__ import annotations

import json

from dask_gradcode.cli import main
from tests.bench import assert_every_kind_written


def test_bench_placement_small(tmp_path):
    out = tmp_path / "placement"
    status = main(
        [
            "bench",
            "placement",
            "--row-counts",
            "300000",
            "--features",
            "20",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "placement")
    report = json.loads((out / "placement.json").read_text())
    runs = report["placement"]
    assert {(r["code"], r["transport"]) for r in runs} == {
        (code, transport)
        for code in ("uncoded", "replicated s=1")
        for transport in ("direct", "futures")
    }
    for run in runs:
        # the client holds the data (1x) and no copy of it (a copy is 2x)
        assert 0.9 < run["client_peak_over_data"] < 1.8, run
        assert run["worker_peak_over_share"] > 0.5, run
        assert run["placement_s"] > 0 and run["scatter_s"] > 0
    assert {t["target"] for t in report["targets"]} >= {"client peak / data"}
