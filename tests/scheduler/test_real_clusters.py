"""Coded rounds against separate scheduler/worker processes, and over TLS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

from dask_gradcode.codes import make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler import TRANSPORTS, CodedGradient, TransportFallbackWarning
from dask_gradcode.stragglers import SlowWorkers
from tests.conftest import binary_problem, in_process_cluster

DASK = shutil.which("dask", path=os.path.dirname(sys.executable))


def problem(seed=0):
    X, y, w = binary_problem(
        seed=seed, n_samples=400, n_features=6, positive_rate=0.4, weight_scale=0.2
    )
    return X, y, w, get_objective("log_loss").value_and_gradient(w, X, y)


def run_rounds(client, n_workers):
    """Exact rounds, a slow worker skipped, with each transport."""
    X, y, w, (loss, gradient) = problem()
    code = make_code("gaussian-mds", n_workers, 1, 2, random_state=0)
    model = SlowWorkers(workers=[n_workers - 1], delay=3.0)
    for transport in TRANSPORTS:
        with (
            warnings.catch_warnings(),
            CodedGradient(
                client,
                code,
                X,
                y,
                "log_loss",
                straggler_model=model,
                transport=transport,
            ) as cg,
        ):
            # the client reaches every worker: no fallback to the proxy
            warnings.simplefilter("error", TransportFallbackWarning)
            for _ in range(3):
                start = time.perf_counter()
                got_loss, got_gradient = cg(w)
                assert time.perf_counter() - start < 2.5
                assert got_loss == pytest.approx(loss, rel=1e-9)
                np.testing.assert_allclose(
                    got_gradient, gradient, rtol=1e-9, atol=1e-12
                )
        assert all(n_workers - 1 not in r.responders for r in cg.history)


@pytest.fixture
def process_cluster(tmp_path: Path):
    """`dask scheduler` and `dask worker` as separate processes on localhost."""
    if DASK is None:
        pytest.skip("the dask command is not installed next to this Python")
    scheduler_file = tmp_path / "scheduler.json"
    common = {
        "cwd": tmp_path,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
    }
    scheduler = subprocess.Popen(
        [
            DASK,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        ],
        **common,
    )
    processes = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        processes.append(
            subprocess.Popen(
                [
                    DASK,
                    "worker",
                    address,
                    "--nworkers",
                    "3",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                ],
                **common,
            )
        )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(3, timeout=60)
            yield client
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.worker_processes
def test_coded_rounds_on_separate_scheduler_and_worker_processes(process_cluster):
    run_rounds(process_cluster, 3)


@pytest.fixture
def tls_cluster():
    """An in-process LocalCluster that only speaks TLS, and its credentials."""
    pytest.importorskip("cryptography")
    from distributed.security import Security

    security = Security.temporary()
    with in_process_cluster(4, protocol="tls://", security=security) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        yield cluster, security


def test_coded_rounds_on_a_tls_secured_cluster(tls_cluster):
    cluster, security = tls_cluster
    with Client(cluster, security=security) as client:
        run_rounds(client, 4)


@pytest.mark.worker_processes
def test_bench_runs_on_a_cluster_named_by_its_scheduler_file(process_cluster, tmp_path):
    from dask_gradcode.cli import main

    out = tmp_path / "results"
    status = main(
        [
            "bench",
            "convergence",
            "--scheduler-file",
            str(tmp_path / "scheduler.json"),
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
    assert "scheduler.json" in (out / "convergence.md").read_text()


def test_cli_reaches_a_tls_cluster_through_dask_config(tls_cluster, tmp_path, capsys):
    """TLS settings for --scheduler-address come from Dask's configuration."""
    import dask

    from dask_gradcode.cli import main

    cluster, security = tls_cluster
    config = {"distributed.comm.require-encryption": True}
    for key, pem in (
        ("ca-file", security.tls_ca_file),
        ("client.cert", security.tls_client_cert),
        ("client.key", security.tls_client_key),
    ):
        path = tmp_path / f"{key}.pem"
        path.write_text(pem)
        config[f"distributed.comm.tls.{key}"] = str(path)
    with dask.config.set(config):
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
    assert cluster.scheduler_address in capsys.readouterr().out
