"""The client side of cluster membership: which client, which workers, bounded calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from distributed import Client, LocalCluster, get_client

__all__ = [
    "bounded_run",
    "client_for_fit",
    "heartbeats",
    "n_cluster_workers",
    "worker_addresses",
]

#: Seconds a call to the scheduler may take before it counts as failed.
SCHEDULER_TIMEOUT = 30.0


@contextmanager
def client_for_fit(
    n_workers: int | None = None, scheduler_address: str | None = None
) -> Iterator[Client]:
    """The Dask client a fit should use.

    ``scheduler_address`` if given; else the current client (``with
    Client(...):`` or the default one); else an in-process ``LocalCluster``
    with ``n_workers`` single-thread workers (4 by default), closed when the
    block ends.
    """
    if scheduler_address is not None:
        with Client(scheduler_address, set_as_default=False) as client:
            yield client
        return
    try:
        current = get_client()
    except ValueError:  # no client: start one for this fit
        current = None
    if current is not None:
        yield current
        return
    with (
        LocalCluster(
            n_workers=n_workers or 4,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def heartbeats(client: Client, timeout: float = SCHEDULER_TIMEOUT) -> dict[str, float]:
    """Each worker's address and the scheduler's time of its last heartbeat.

    Asks the scheduler directly (bounded by ``timeout``):
    ``Client.scheduler_info`` returns a cached attribute that the client's
    periodic refresh may have just replaced with one listing no worker.
    """
    identity = client.sync(
        client.scheduler.identity, n_workers=-1, callback_timeout=timeout
    )
    return {
        address: float(info.get("last_seen", 0.0))
        for address, info in identity["workers"].items()
    }


def worker_addresses(client: Client) -> list[str]:
    """Addresses of the cluster's workers now, sorted."""
    return sorted(heartbeats(client))


def n_cluster_workers(client: Client) -> int:
    """How many workers the client's cluster has now."""
    return len(heartbeats(client))


def bounded_run(
    client: Client,
    function: Callable[..., Any],
    *args: Any,
    workers: Sequence[str] | None = None,
    timeout: float = 5.0,
) -> None:
    """``Client.run`` that neither raises for lost workers nor waits past ``timeout``.

    For the bookkeeping broadcasts (waking injected sleeps, forgetting a
    run): a dead or hung worker must not stall the fit; one that missed a
    broadcast only sleeps its injected delay out.
    """
    if client.status != "running":
        return
    try:
        client.sync(
            client._run,
            function,
            *args,
            workers=None if workers is None else list(workers),
            on_error="ignore",
            callback_timeout=timeout,
        )
    except (TimeoutError, OSError):
        pass  # the worker is hung or gone: nothing to wake there
