"""The client side of cluster membership: which client, which workers, bounded calls."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from distributed import Client, LocalCluster, get_client, worker_client

__all__ = [
    "bounded_run",
    "client_for_fit",
    "close_embedded_cluster",
    "connect",
    "default_embedded_workers",
    "embedded_client",
    "heartbeats",
    "is_embedded",
    "n_cluster_workers",
    "settle",
    "worker_addresses",
]

logger = logging.getLogger("dask_gradcode")

#: Seconds a call to the scheduler may take before it counts as failed.
SCHEDULER_TIMEOUT = 30.0


def connect(
    address: str | None = None,
    *,
    scheduler_file: str | None = None,
    timeout: float = SCHEDULER_TIMEOUT,
    **options: Any,
) -> Client:
    """A client of an existing scheduler, or an error that says what to fix.

    Bounded by ``timeout`` in every case: a scheduler file that never appears
    and an unreachable address both end in a ``ValueError``, as does a
    ``tls://`` address with no TLS credentials configured.
    """
    where = address or scheduler_file
    if scheduler_file is not None:
        waited_until = time.monotonic() + timeout
        while not os.path.exists(scheduler_file):
            if time.monotonic() > waited_until:
                raise ValueError(
                    f"no scheduler file at {scheduler_file} after {timeout:g} s; "
                    "start one with `dask scheduler --scheduler-file "
                    f"{scheduler_file}` or check the path"
                )
            time.sleep(0.1)
    try:
        return Client(
            address, scheduler_file=scheduler_file, timeout=timeout, **options
        )
    except TypeError as error:
        if "TLS" not in str(error):
            raise
        raise ValueError(
            f"{where} is a TLS address but no TLS credentials are configured: set "
            "distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and "
            "distributed.comm.tls.client.key in Dask's configuration (for "
            "example the environment variables DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
            "..._CLIENT__CERT and ..._CLIENT__KEY), or pass security=Security(...)"
        ) from None
    except (OSError, TimeoutError) as error:
        raise ValueError(
            f"cannot reach the scheduler at {where}: {error}; check the address "
            "(tcp://HOST:PORT or tls://HOST:PORT) and that the scheduler is running"
        ) from error


_EMBEDDED_LOCK = threading.Lock()
_EMBEDDED: dict[str, Any] = {}


def default_embedded_workers() -> int:
    """Workers of the embedded cluster: one per core, at least 4, at most 16."""
    return max(4, min(os.cpu_count() or 1, 16))


def loopback_options(*, dashboard: bool = False) -> dict[str, Any]:
    """``LocalCluster`` options that keep its HTTP servers on this machine.

    An in-process cluster's comms never leave the process, but Dask still
    starts an HTTP server (metrics, and the dashboard if asked) in the
    scheduler and every worker, on all interfaces unless told otherwise:
    these options bind them to 127.0.0.1.
    """
    return {
        "dashboard_address": "127.0.0.1:0",
        "worker_dashboard_address": "127.0.0.1:0",
        "scheduler_kwargs": {"dashboard": dashboard},
    }


def embedded_client(n_workers: int | None = None) -> Client:
    """The process's embedded in-process cluster, started on first use.

    One ``LocalCluster(processes=False)`` of single-thread workers per
    process, shared by every fit that has no client (GridSearchCV candidates,
    cross-validation folds, repeated ``partial_fit`` calls), scaled up when a
    fit asks for more workers than it has, and closed at interpreter exit (or
    by :func:`close_embedded_cluster`).  Asking for more workers than
    :func:`default_embedded_workers` warns: in-process workers share this
    machine's cores, and a real cluster is the way to more.
    """
    wanted = n_workers or default_embedded_workers()
    if wanted > default_embedded_workers():
        warnings.warn(
            f"n_workers={wanted} with no Dask client starts {wanted} in-process "
            f"workers sharing this machine's {os.cpu_count()} cores; for real "
            "parallelism connect to a cluster first (Client(LocalCluster()), "
            "Client('tcp://scheduler:8786'), dask-jobqueue, dask-kubernetes) or "
            "pass scheduler_address",
            RuntimeWarning,
            stacklevel=4,
        )
    with _EMBEDDED_LOCK:
        client = _EMBEDDED.get("client")
        if client is None or client.status != "running":
            cluster = LocalCluster(
                n_workers=max(wanted, default_embedded_workers()),
                threads_per_worker=1,
                processes=False,
                **loopback_options(),
                # Workers in one process would each compare the whole
                # process's memory (every shard, the caller's data) with
                # 1/n of the machine and pause at 80%, stalling the fit.
                memory_limit=0,
            )
            client = Client(cluster, set_as_default=False)
            _EMBEDDED.update(cluster=cluster, client=client, ready=0)
            if not _EMBEDDED.get("registered"):
                atexit.register(close_embedded_cluster)
                _EMBEDDED["registered"] = True
        cluster = _EMBEDDED["cluster"]
        if len(cluster.workers) < wanted:
            cluster.scale(wanted)
        if _EMBEDDED.get("ready", 0) < wanted:
            # Once they are there, in-process workers stay: later fits do not
            # ask the scheduler again (1.4 ms of a 12 ms partial_fit).
            client.wait_for_workers(wanted, timeout=SCHEDULER_TIMEOUT)
            _EMBEDDED["ready"] = len(cluster.workers)
        return client


def is_embedded(client: Client) -> bool:
    """Whether ``client`` is the process's embedded in-process cluster's."""
    return client is not None and _EMBEDDED.get("client") is client


#: Called with the embedded cluster's client before it closes (what lives as
#: long as the cluster, such as the transports' lasting actors, is released).
BEFORE_EMBEDDED_CLOSE: list[Callable[[Client], None]] = []


def close_embedded_cluster() -> None:
    """Close the embedded cluster, if one was started (a later fit starts another)."""
    with _EMBEDDED_LOCK:
        client = _EMBEDDED.pop("client", None)
        cluster = _EMBEDDED.pop("cluster", None)
        _EMBEDDED.pop("ready", None)
    if client is not None:
        for release in BEFORE_EMBEDDED_CLOSE:
            try:
                release(client)
            except Exception:  # closing goes on: the cluster takes it with it
                logger.debug("releasing before close failed", exc_info=True)
        client.close()
    if cluster is not None:
        cluster.close()


@contextmanager
def client_for_fit(
    n_workers: int | None = None, scheduler_address: str | None = None
) -> Iterator[Client]:
    """The Dask client a fit should use.

    ``scheduler_address`` if given; else the current client (``with
    Client(...):`` or the default one); else the process's embedded
    in-process cluster (:func:`embedded_client`), started once and shared.
    A fit that runs inside a task on a worker (dask-ml's ``Incremental``
    calls ``partial_fit`` in tasks) uses ``worker_client()``: the task
    secedes from its worker's thread pool while the fit's own rounds run, so
    they do not queue behind it, and rejoins afterwards.
    """
    if scheduler_address is not None:
        with connect(scheduler_address, set_as_default=False) as client:
            yield client
        return
    if _in_a_task():
        with worker_client() as client:
            yield client
        return
    try:
        current = get_client()
    except ValueError:  # no client: the embedded cluster
        current = None
    yield current if current is not None else embedded_client(n_workers)


_WARNED_LEAVING: set[str] = set()


def warn_if_leaving_its_client(name: str, scheduler_address: str | None) -> None:
    """Warn once when an estimator is pickled away from the client it would use.

    ``GridSearchCV(n_jobs=2)`` and other joblib process pools pickle each
    candidate into another process, where this process's Dask client does
    not exist: the fit there would start that process's own embedded
    cluster.  Nothing to say when the estimator names its scheduler, when
    it is pickled inside a Dask task or for joblib's Dask backend (it then
    runs on the cluster), or when no client is active.
    """
    if scheduler_address is not None or name in _WARNED_LEAVING or _in_a_task():
        return
    if _pickled_by_dask():
        return  # sent to the cluster's workers: it runs where the client is
    try:
        get_client()
    except ValueError:
        return  # no client here: the embedded cluster either way
    import joblib.parallel

    backend, _ = joblib.parallel.get_active_backend()
    if "dask" in type(backend).__name__.lower():
        return
    _WARNED_LEAVING.add(name)
    warnings.warn(
        f"a {name} is being pickled while a Dask client is active; unpickled "
        "in another process (GridSearchCV(n_jobs=2) and joblib's process pools "
        "do this) it cannot use this client and fits on that process's own "
        "embedded cluster instead. To search on this cluster, run the search "
        "with joblib's Dask backend (with joblib.parallel_backend('dask'): "
        "search.fit(X, y)) or n_jobs=None, or pass "
        "scheduler_address=client.scheduler.address",
        RuntimeWarning,
        stacklevel=3,
    )


def _pickled_by_dask() -> bool:
    """Whether Dask's own serialisation is pickling (a task for its workers)."""
    marker = os.sep + os.path.join("distributed", "protocol") + os.sep
    frame: Any = sys._getframe(2)
    while frame is not None:
        if marker in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _in_a_task() -> bool:
    from distributed.worker import thread_state

    return getattr(thread_state, "key", None) is not None and not getattr(
        thread_state, "actor", False
    )


def heartbeats(client: Client, timeout: float = SCHEDULER_TIMEOUT) -> dict[str, float]:
    """Each worker's address and the scheduler's time of its last heartbeat.

    Asks the scheduler directly (bounded by ``timeout``):
    ``Client.scheduler_info`` returns a cached attribute that the client's
    periodic refresh may have just replaced with one listing no worker.
    """
    if client.scheduler is None:
        raise RuntimeError("the client is not connected to a scheduler")
    identity = client.sync(
        client.scheduler.identity, n_workers=-1, callback_timeout=timeout
    )
    return {
        address: float(info.get("last_seen", 0.0))
        for address, info in identity["workers"].items()
    }


def ask_heartbeats(client: Client) -> concurrent.futures.Future:
    """:func:`heartbeats` without waiting: a future of the scheduler's answer.

    The answer maps each worker's address to its last heartbeat and its
    status (``"running"``, ``"paused"``, ...).

    For the membership checks inside a round: asking must not hold a round
    up while the scheduler is slow to answer.
    """
    scheduler: Any = client.scheduler
    loop: Any = client.loop
    if scheduler is None or loop is None:
        raise RuntimeError("the client is not connected to a scheduler")

    async def ask() -> dict[str, tuple[float, str]]:
        identity = await scheduler.identity(n_workers=-1)
        return {
            address: (float(info.get("last_seen", 0.0)), str(info.get("status", "")))
            for address, info in identity["workers"].items()
        }

    return asyncio.run_coroutine_threadsafe(ask(), loop.asyncio_loop)


def memory_limits(client: Client) -> dict[str, tuple[int | None, int]]:
    """Each worker's ``memory_limit`` (None: none) and the memory it uses now."""
    scheduler: Any = client.scheduler
    if scheduler is None:
        raise RuntimeError("the client is not connected to a scheduler")
    identity = client.sync(
        scheduler.identity, n_workers=-1, callback_timeout=SCHEDULER_TIMEOUT
    )
    return {
        address: (
            int(info.get("memory_limit") or 0) or None,
            int((info.get("metrics") or {}).get("memory") or 0),
        )
        for address, info in identity["workers"].items()
    }


def worker_addresses(client: Client) -> list[str]:
    """Addresses of the cluster's workers now, sorted."""
    return sorted(heartbeats(client))


def n_cluster_workers(client: Client) -> int:
    """How many workers the client's cluster has now.

    The embedded cluster's are in this process: counted without asking the
    scheduler (0.7 ms of a 10 ms ``partial_fit``).
    """
    cluster = _EMBEDDED.get("cluster") if is_embedded(client) else None
    if cluster is not None:
        return len(cluster.workers)
    return len(heartbeats(client))


#: Seconds a closing run waits for its workers to take its last messages
#: (wake-ups, forgetting the run), so they end their sleeps before their
#: actors and shards go; a hung worker is not waited for longer.
CLOSE_WAIT = 0.3


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


def settle(
    client: Client,
    futures: Sequence[Any],
    addresses: Sequence[str],
    timeout: float,
    *,
    poll: float = 0.005,
    check_interval: float = 1.0,
) -> None:
    """Wait until every future pinned to ``addresses`` left "pending", or not.

    Returns after ``timeout``, or as soon as the worker of a pending future
    leaves the cluster (it will never finish).  Unlike ``distributed.wait``
    it needs no default client (the embedded cluster's is not one).  Polls
    every 0.25 ms at first, backing off to ``poll``: most futures it waits
    for (actors beside placed shards) finish within a millisecond.
    """
    started = time.monotonic()
    checked = started
    pause = min(poll, 0.00025)
    while any(f.status == "pending" for f in futures):
        now = time.monotonic()
        if now - started > timeout:
            return
        if now - checked > check_interval:
            checked = now
            live = set(heartbeats(client))
            if any(
                address not in live
                for address, future in zip(addresses, futures, strict=True)
                if future.status == "pending"
            ):
                return  # a target died
        time.sleep(pause)
        pause = min(2 * pause, poll)
