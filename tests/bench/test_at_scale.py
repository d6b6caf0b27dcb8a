"""bench at-scale on a slice of the shared Lambda trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dask_gradcode.cli import main
from tests.bench import assert_every_kind_written

pytest.importorskip("matplotlib")

PROFILES = Path(__file__).resolve().parents[3] / "shared" / "data" / "lambda-traces"


def test_at_scale_writes_the_records_the_plan_and_the_pages(tmp_path):
    out = tmp_path / "scale"
    status = main(
        [
            "bench",
            "at-scale",
            "--profile",
            str(PROFILES / "cnn"),
            "--workers",
            "32",
            "--stragglers",
            "0",
            "1",
            "4",
            "--dim",
            "11",
            "--scale-workers",
            "64",
            "--validate-workers",
            "4",
            "--validate-rounds",
            "3",
            "--time-scale",
            "0.02",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "at_scale")
    document = json.loads((out / "at_scale.json").read_text())
    assert document["n_workers"] == 32
    fields = {
        "scheme",
        "n_stragglers",
        "comm_reduction",
        "policy",
        "mean_iteration_s",
        "p90_iteration_s",
        "client_ms_per_round",
    }
    assert all(set(record) == fields for record in document["records"])
    schemes = {r["scheme"] for r in document["records"]}
    assert schemes == {
        "uncoded",
        "ignore-stragglers",
        "fractional-repetition",
        "cyclic-repetition",
        "gaussian-mds",
    }
    assert {r["policy"] for r in document["records"]} == {
        "static",
        "adaptive",
        "speculative",
    }
    assert set(document["plan"]) == fields - {"p90_iteration_s"}
    assert all(r["mean_iteration_s"] > 0.5 for r in document["records"])  # trace times
    for name in ("at_scale.md", "at_scale.csv", "at_scale.png", "at_scale_trace.png"):
        assert (out / name).exists(), name
    page = (out / "at_scale.md").read_text()
    assert "Planner's choice" in page
    assert "| 64 |" in page  # the client's cost at --scale-workers
    assert "## The simulation against live rounds" in page
    validation = json.loads((out / "at_scale.json").read_text())  # the form
    assert "validation" not in validation


def test_at_scale_needs_a_profile(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "at-scale", "--out", "x"])
    assert "--profile" in capsys.readouterr().err
