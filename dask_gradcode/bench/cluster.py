"""Where a benchmark runs: an embedded LocalCluster or an existing Dask cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from distributed import Client, LocalCluster, as_completed

from dask_gradcode.scheduler import worker_addresses
from dask_gradcode.scheduler.clients import connect, loopback_options

__all__ = ["ClusterTarget", "round_trip_floor"]


@dataclass(frozen=True)
class ClusterTarget:
    """Which cluster a benchmark connects to.

    With neither ``scheduler_address`` nor ``scheduler_file`` every
    measurement starts its own ``LocalCluster`` with one single-thread worker
    per code worker.  Otherwise it connects to that scheduler and uses the
    first workers of the cluster (sorted by address); TLS settings come from
    Dask's configuration (``distributed.comm.tls``) or the scheduler file.

    Parameters
    ----------
    scheduler_address : str, optional
        ``tcp://HOST:PORT`` or ``tls://HOST:PORT`` of a running scheduler.
    scheduler_file : str, optional
        The JSON file ``dask scheduler --scheduler-file`` writes.
    timeout : float, default=30
        Seconds to wait for the connection and for enough workers.
    """

    scheduler_address: str | None = None
    scheduler_file: str | None = None
    timeout: float = 30.0

    @property
    def embedded(self) -> bool:
        """Whether benchmarks start their own LocalCluster."""
        return self.scheduler_address is None and self.scheduler_file is None

    def describe(self) -> str:
        """One phrase naming the cluster, for reports."""
        if self.embedded:
            return "an embedded LocalCluster"
        return f"the cluster at {self.scheduler_address or self.scheduler_file}"

    def count_workers(self) -> int:
        """Workers the cluster has now (an embedded one has as many as asked)."""
        with self.connect(1) as client:
            return len(worker_addresses(client))

    @contextmanager
    def connect(
        self, n_workers: int, *, processes: bool = False, dashboard: bool = False
    ) -> Iterator[Client]:
        """A client with at least ``n_workers`` workers.

        Parameters
        ----------
        n_workers : int
            Workers the measurement needs.
        processes : bool, default=False
            For an embedded cluster: worker processes reached over TCP
            (arguments and results really serialised) instead of in-process
            workers (fast to start, stable timings).
        dashboard : bool, default=False
            For an embedded cluster: serve the dashboard on a free port (of
            127.0.0.1, as every HTTP server of an embedded cluster).
        """
        if self.embedded:
            with (
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=processes,
                    **loopback_options(dashboard=dashboard),
                    # In-process workers would each compare the whole
                    # process's memory with 1/n of the machine, and pause.
                    memory_limit="auto" if processes else 0,
                ) as cluster,
                Client(cluster) as client,
            ):
                client.wait_for_workers(n_workers, timeout=self.timeout)
                yield client
            return
        client = connect(
            self.scheduler_address,
            scheduler_file=self.scheduler_file,
            timeout=self.timeout,
        )
        with client:
            try:
                client.wait_for_workers(n_workers, timeout=self.timeout)
            except TimeoutError as error:
                raise ValueError(
                    f"this measurement needs {n_workers} workers but the cluster "
                    f"has {len(worker_addresses(client))} after {self.timeout:g} s; "
                    "add workers or ask for fewer (see --help)"
                ) from error
            yield client


def _noop(token: int) -> int:
    return token


def round_trip_floor(
    client: Client, n_workers: int, n_rounds: int = 30, warmup: int = 5
) -> np.ndarray:
    """Seconds for ``n_workers`` pinned no-op tasks collected with as_completed.

    The least any coded round on those workers can cost on this cluster.

    Parameters
    ----------
    client : distributed.Client
    n_workers : int
        The first ``n_workers`` workers (sorted by address), as a
        :class:`~dask_gradcode.scheduler.CodedGradient` would use.
    n_rounds : int, default=30
    warmup : int, default=5
        Rounds run first and not reported.

    Returns
    -------
    ndarray of shape (n_rounds,)
        One time per round.
    """
    workers = worker_addresses(client)[:n_workers]
    times = []
    for round_ in range(n_rounds + warmup):
        start = time.perf_counter()
        futures = [
            client.submit(
                _noop,
                round_,
                key=f"gradcode-noop-{time.monotonic_ns()}-{i}",
                workers=[address],
                allow_other_workers=False,
                pure=False,
            )
            for i, address in enumerate(workers)
        ]
        for _ in as_completed(futures):
            pass
        times.append(time.perf_counter() - start)
    return np.array(times[warmup:])
