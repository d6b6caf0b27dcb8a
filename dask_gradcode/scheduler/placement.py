"""Placement: input checks, and each worker's shard, sent once and pinned there."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import scipy.sparse
from dask import is_dask_collection as _is_dask
from distributed import Client, Future

from dask_gradcode.codes import GradientCode
from dask_gradcode.objectives import Objective, Softmax, get_objective
from dask_gradcode.scheduler.clients import heartbeats, memory_limits
from dask_gradcode.scheduler.judging import memory_shortfall
from dask_gradcode.scheduler.naming import name_workers
from dask_gradcode.scheduler.records import WorkerMemoryError
from dask_gradcode.scheduler.worker import as_block, build_shard

__all__ = ["PlacementError", "check_data", "place", "resolve_objective"]

logger = logging.getLogger("dask_gradcode")

#: Slowest transfer a shard is allowed before its worker counts as hung.
BYTES_PER_SECOND = 10e6


def _nbytes(shard: Any) -> int:
    from dask.sizeof import sizeof

    return int(sizeof(shard.blocks))


class PlacementError(Exception):
    """Some workers died or hung while their shards were being placed.

    Attributes
    ----------
    workers : set of int
        Code indices of the workers whose shards did not arrive.
    """

    def __init__(self, workers: set[int], reason: str) -> None:
        super().__init__(reason)
        self.workers = workers


def place(
    client: Client,
    code: GradientCode,
    addresses: Sequence[str],
    data: tuple[Any, Any, Any],
    *,
    fit_intercept: bool,
    key_prefix: str,
    timeout: float,
) -> list[Future]:
    """Send each worker the partitions ``code`` assigns to it, once.

    NumPy/SciPy/pandas input is split on the client and scattered to each
    worker; dask input is computed partition by partition on the cluster and
    assembled into shards by tasks pinned to their workers.  Each transfer is
    bounded by ``timeout``.

    Raises
    ------
    PlacementError
        Naming the workers whose shards did not arrive (dead or hung).
    WorkerMemoryError
        Before anything is sent, when a worker's shard would take more than
        ``SHARD_MEMORY_FRACTION`` of its ``memory_limit``.
    """
    X = data[0]
    bounds = code.partition_bounds(X.shape[0])
    check_memory(client, code, addresses, data, bounds)
    if _is_dask(X):
        return _place_dask(
            client, code, addresses, data, bounds, fit_intercept, key_prefix, timeout
        )
    shards: list[Any] = []
    failed: set[int] = set()
    for worker, address in enumerate(addresses):
        shard = shard_of(code, worker, data, bounds, fit_intercept=fit_intercept)
        try:
            shards.append(
                _send(
                    client, shard, address, timeout + _nbytes(shard) / BYTES_PER_SECOND
                )
            )
        except (OSError, TimeoutError, KeyError) as error:  # died or hung
            failed.add(worker)
            shards.append(None)
            reason = f"{type(error).__name__}: {error}"
    placed = [s for s in shards if s is not None]
    if not failed:
        failed = _not_arrived(client, shards, addresses)
        reason = f"the shards of {name_workers(failed, addresses)} did not arrive"
    if failed:
        client.cancel(placed)
        raise PlacementError(failed, reason)
    return shards


def _send(client: Client, shard: Any, address: str, timeout: float) -> Future:
    """Scatter ``shard`` to ``address``, straight from the client if it can.

    A direct scatter serialises the shard's arrays without a copy on the
    client and sends them once; through the scheduler (Dask's default) the
    client holds a serialised copy and the scheduler relays every byte.  A
    worker the client cannot connect to is reached through the scheduler.
    Bounded as a whole: a hung target must not stall the fit.
    """

    def scatter(direct: bool) -> Future:
        return client.sync(
            client._scatter,
            shard,
            workers=[address],
            hash=False,
            direct=direct,
            callback_timeout=timeout,
        )

    try:
        return scatter(direct=True)
    except OSError as error:
        # A timeout is a hung worker (TimeoutError is an OSError): the relay
        # would wait for it again.
        if isinstance(error, TimeoutError):
            raise
        logger.debug("direct scatter to %s failed; relaying", address, exc_info=True)
    return scatter(direct=False)  # no route from the client: relay it


def _not_arrived(
    client: Client, shards: list[Future], addresses: Sequence[str]
) -> set[int]:
    """Workers whose shard is not where it was sent (or no longer anywhere).

    A scatter to a worker that died a moment before can "succeed" without the
    data arriving, and a shard can be lost between its scatter and this
    check: ask the scheduler where each one really is.
    """
    for _ in range(2):
        lost = {w for w, future in enumerate(shards) if future.status != "finished"}
        if lost:
            return lost
        try:
            where = client.who_has(shards)
        except Exception:  # a shard was cancelled meanwhile: look again
            logger.debug("who_has failed while placing", exc_info=True)
            continue
        live = set(heartbeats(client))
        return {
            worker
            for worker, (future, address) in enumerate(
                zip(shards, addresses, strict=True)
            )
            if address not in live or address not in where.get(future.key, ())
        }
    return {w for w, future in enumerate(shards) if future.status != "finished"} or set(
        range(len(shards))
    )


def shard_of(
    code: GradientCode,
    worker: int,
    data: tuple,
    bounds: np.ndarray,
    *,
    fit_intercept: bool,
) -> Any:
    """Code worker ``worker``'s shard of in-memory data (views of its rows)."""
    partitions = code.partitions(worker)
    return build_shard(
        code.worker_encoder(worker),
        partitions,
        [int(bounds[j]) for j in partitions],
        *(_block(data, bounds, j) for j in partitions),
        intercept=fit_intercept,
    )


def _block(data: tuple, bounds: np.ndarray, partition: int) -> tuple:
    X, y, sample_weight = data
    rows = slice(bounds[partition], bounds[partition + 1])
    weights = None if sample_weight is None else sample_weight[rows]
    return as_block(X[rows], y[rows], weights)


def _place_dask(
    client: Client,
    code: GradientCode,
    addresses: Sequence[str],
    data: tuple,
    bounds: np.ndarray,
    fit_intercept: bool,
    key_prefix: str,
    timeout: float,
) -> list[Future]:
    """Compute each partition on the cluster, then assemble shards on their workers."""
    import dask

    X, y, sample_weight = data
    blocks = [
        dask.delayed(as_block)(
            X[bounds[j] : bounds[j + 1]],
            y[bounds[j] : bounds[j + 1]],
            None if sample_weight is None else sample_weight[bounds[j] : bounds[j + 1]],
        )
        for j in range(code.n_partitions)
    ]
    block_futures = client.compute(blocks)
    shards = [
        client.submit(
            build_shard,
            code.worker_encoder(worker),
            code.partitions(worker),
            [int(bounds[j]) for j in code.partitions(worker)],
            *(block_futures[j] for j in code.partitions(worker)),
            intercept=fit_intercept,
            key=f"{key_prefix}-w{worker}",
            workers=[address],
            allow_other_workers=False,
            pure=False,
        )
        for worker, address in enumerate(addresses)
    ]
    await_graph(client, block_futures, shards, addresses, stale_after=timeout)
    failed = set()
    for worker, future in enumerate(shards):
        if future.status == "error":
            future.result()  # the data's own error, with its traceback
        if future.status != "finished":
            failed.add(worker)
    del block_futures
    if failed:
        client.cancel(shards)
        raise PlacementError(
            failed, f"the shards of {name_workers(failed, addresses)} did not arrive"
        )
    return shards


def _bytes_per_row(data: tuple[Any, Any, Any]) -> float:
    """Bytes one row of ``(X, y, sample_weight)`` takes, as placed (float64)."""
    X, _, sample_weight = data
    n_rows = max(1, int(X.shape[0]))
    if scipy.sparse.issparse(X):
        sparse: Any = X
        x_bytes = int(sparse.nnz) * (8 + 4) + 8 * (n_rows + 1)  # CSR, int32
    else:
        x_bytes = 8 * n_rows * int(X.shape[1])
    return x_bytes / n_rows + 8 * (1 + (sample_weight is not None))


def check_memory(
    client: Client,
    code: GradientCode,
    addresses: Sequence[str],
    data: tuple[Any, Any, Any],
    bounds: np.ndarray,
) -> None:
    """Refuse, before sending anything, shards that would not fit the workers."""
    limits = memory_limits(client)
    if not any(limits.get(a, (None, 0))[0] for a in addresses):
        return
    per_row = _bytes_per_row(data)
    rows = np.diff(bounds)
    share = {
        address: int(per_row * sum(int(rows[j]) for j in code.partitions(worker)))
        for worker, address in enumerate(addresses)
    }
    reason = memory_shortfall(share, limits)
    if reason is not None:
        raise WorkerMemoryError(reason)


def await_graph(
    client: Client,
    blocks: Sequence[Future],
    shards: Sequence[Future],
    addresses: Sequence[str],
    *,
    stale_after: float,
    poll: float = 0.05,
    check_interval: float = 1.0,
) -> None:
    """Wait for dask input's graph for as long as it computes.

    A graph that takes minutes (parquet, ETL, object storage) is waited for,
    with a progress bar of its partitions once it has taken two seconds.
    The wait ends when every shard is placed, when a block raises (its own
    error is raised), when a worker a shard waits for leaves the cluster, or
    when the cluster stops making progress: no block finished and no
    heartbeat of a target worker reached the scheduler for ``stale_after``
    seconds (the workers are hung, not slow).
    """
    from tqdm.auto import tqdm

    beats: dict[str, float] = {}
    progress_at = time.monotonic()
    done = 0
    with tqdm(
        total=len(blocks), desc="computing the dask input", unit="partition", delay=2
    ) as bar:
        while any(f.status == "pending" for f in shards):
            finished = 0
            for block in blocks:
                if block.status == "error":
                    block.result()  # the graph's own error, with its traceback
                finished += block.status == "finished"
            now = time.monotonic()
            if finished > done:
                bar.update(finished - done)
                done, progress_at = finished, now
            if now - progress_at > check_interval:
                live = heartbeats(client)
                waiting = {
                    a
                    for a, f in zip(addresses, shards, strict=True)
                    if f.status == "pending"
                }
                if waiting - set(live):
                    return  # a target died: its shard will never arrive
                for address in waiting:
                    if beats.get(address) != live[address]:
                        beats[address] = live[address]
                        progress_at = now  # it is alive: the graph is just slow
                if now - progress_at > stale_after:
                    return  # nothing finished and nobody heartbeat: hung
            time.sleep(poll)


# ------------------------------------------------------------------ checks
def check_data(X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    """Arrays the scheduler can slice by rows, with shapes checked."""
    X = _rows_container(X, "X", ndim=2)
    y = _rows_container(y, "y", ndim=1)
    if sample_weight is not None:
        sample_weight = _rows_container(sample_weight, "sample_weight", ndim=1)
    n_rows = X.shape[0]
    for name, values in (("y", y), ("sample_weight", sample_weight)):
        if values is not None and values.shape[0] != n_rows:
            raise ValueError(
                f"X has {n_rows} rows but {name} has {values.shape[0]}; pass one "
                f"{name} entry per row"
            )
    if n_rows == 0:
        raise ValueError("X has no rows")
    return X, y, sample_weight


def _rows_container(data: Any, name: str, *, ndim: int) -> Any:
    if hasattr(data, "to_dask_array"):  # dask dataframe or series
        data = data.to_dask_array(lengths=True)
    if _is_dask(data):
        if any(math.isnan(size) for size in data.shape):
            data = data.compute_chunk_sizes()
        if data.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-D, got shape {data.shape}")
        return data.astype(np.float64)
    if scipy.sparse.issparse(data):
        if ndim != 2:
            raise ValueError(f"{name} must be a dense 1-D array")
        data = scipy.sparse.csr_matrix(cast(Any, data), dtype=np.float64)
        if not np.all(np.isfinite(data.data)):
            raise ValueError(f"{name} contains NaN or inf")
        return data
    array = np.asarray(data, dtype=np.float64)
    if ndim == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array.ravel()
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def resolve_objective(loss: str | Objective, y: Any) -> Objective:
    """The objective for ``loss``; ``"softmax"`` counts the classes in ``y``."""
    if loss == "softmax":
        top = y.max().compute() if _is_dask(y) else y.max()
        return Softmax(n_classes=max(int(top) + 1, 2))
    return get_objective(loss)
