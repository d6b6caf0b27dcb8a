"""Measurements shared by the benchmarks."""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np


def _noop(token: int) -> int:
    return token


@contextmanager
def local_client(n_workers: int, *, processes: bool = False):
    """A LocalCluster with one single-thread worker per code worker.

    In-process by default (fast to start, stable timings); ``processes=True``
    makes every worker a process reached over TCP, so task arguments and
    results are really serialised and sent.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers)
        yield client


def round_trip_floor(
    client, n_workers: int, n_rounds: int = 30, warmup: int = 5
) -> np.ndarray:
    """Seconds for ``n_workers`` pinned no-op tasks collected with as_completed.

    The least any coded round on those workers can cost on this cluster.
    Returns one time per round (after ``warmup`` rounds).
    """
    from distributed import as_completed

    from dask_gradcode.scheduler import worker_addresses

    workers = worker_addresses(client)[:n_workers]
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
        for _ in as_completed(futures, loop=client.loop):
            pass
        times.append(time.perf_counter() - start)
    return np.array(times[warmup:])


def dask_round_trip_floor(n_workers: int, n_rounds: int = 30) -> float:
    """Median :func:`round_trip_floor` on a fresh ``n_workers`` LocalCluster."""
    with local_client(n_workers) as client:
        return float(np.median(round_trip_floor(client, n_workers, n_rounds)))
