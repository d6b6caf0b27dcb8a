"""Measurements shared by the benchmarks."""

from __future__ import annotations

import time

import numpy as np


def _noop(token: int) -> int:
    return token


def dask_round_trip_floor(n_workers: int, n_rounds: int = 30, warmup: int = 5) -> float:
    """Median seconds for ``n_workers`` pinned no-op tasks collected with as_completed.

    Runs on an in-process ``LocalCluster`` with one thread per worker: the
    least any coded iteration on ``n_workers`` workers can cost on this machine.
    """
    from distributed import Client, LocalCluster, as_completed

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers)
        workers = sorted(client.scheduler_info()["workers"])
        times = []
        for round_ in range(n_rounds + warmup):
            start = time.perf_counter()
            futures = [
                client.submit(
                    _noop,
                    round_,
                    key=f"noop-{round_}-{i}",
                    workers=[address],
                    allow_other_workers=False,
                    pure=False,
                )
                for i, address in enumerate(workers)
            ]
            for _ in as_completed(futures):
                pass
            times.append(time.perf_counter() - start)
    return float(np.median(times[warmup:]))
