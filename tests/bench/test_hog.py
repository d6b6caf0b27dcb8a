"""``dask-gradcode bench hog``: a small run pins its workers and a real hog."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from dask_gradcode.bench.hog import pin
from dask_gradcode.cli import main
from tests.bench import assert_every_kind_written


def test_pin_sets_every_thread_of_a_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pin(child.pid, {0})
        threads = os.listdir(f"/proc/{child.pid}/task")
        assert all(os.sched_getaffinity(int(t)) == {0} for t in threads)
    finally:
        child.kill()
        child.wait()


def test_bench_hog_small(tmp_path):
    out = tmp_path / "hog"
    status = main(
        [
            "bench",
            "hog",
            "--rows",
            "4000",
            "--features",
            "5",
            "--gap",
            "1e-3",
            "--max-rounds",
            "20",
            "--repeats",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    assert_every_kind_written(out, "hog")
    report = json.loads((out / "hog.json").read_text())
    fits = report["fits"]
    assert {(r["condition"], r["method"]) for r in fits} == {
        (condition, method)
        for condition in ("no hog", "hog")
        for method in ("uncoded", "static", "adaptive", "dask-ml")
    }
    assert all(r["seconds_to_gap"] > 0 for r in fits)
    assert len(report["targets"]) == 2
