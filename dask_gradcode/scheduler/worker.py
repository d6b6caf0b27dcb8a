"""Code that runs on the workers: one worker's part of a coded round.

Everything here is shipped to workers inside tasks (or called there by
``Client.run``); it holds no reference to the client.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.sparse

from dask_gradcode.codes._base import WorkerEncoder
from dask_gradcode.codes._sparse import SparseMessage, sparse_or_dense
from dask_gradcode.objectives import WithIntercept
from dask_gradcode.scheduler.protocol import Reply, RoundContext, RoundRequest
from dask_gradcode.stragglers import model_delay, model_work

__all__ = [
    "Reply",
    "Shard",
    "as_block",
    "build_shard",
    "forget_run",
    "mark_decoded",
    "run_round",
    "sample_block",
]


@dataclass(frozen=True)
class Shard:
    """What one worker holds for a fit: its encoder and its partitions' rows.

    ``first_rows[r]`` is the data set's index of block ``r``'s first row, so
    that a mini-batch can sample rows by their global index.
    """

    encoder: WorkerEncoder
    partition_ids: tuple[int, ...]
    first_rows: tuple[int, ...]
    blocks: tuple[tuple[Any, np.ndarray, np.ndarray | None], ...]
    #: Whether rounds append a column of ones to each block's ``X``
    #: (:class:`~dask_gradcode.objectives.WithIntercept`: no copy is stored).
    intercept: bool = False

    def design(self, X: Any) -> Any:
        """``X`` as the objective sees it (with the intercept's column)."""
        return WithIntercept(X) if self.intercept else X


# --------------------------------------------------------- injected delays
_WAKE_LOCK = threading.Lock()
#: run token -> highest submission whose round is decoded (inf once closed).
_DECODED: OrderedDict[str, float] = OrderedDict()
_SLEEPERS: dict[tuple[str, int], list[threading.Event]] = {}
#: Runs remembered per worker process (closed runs stay as tombstones so a
#: straggler still computing when its run closed does not sleep afterwards).
_REMEMBERED_RUNS = 1024


def _injected_sleep(token: str, submission: int, seconds: float) -> None:
    """Sleep ``seconds`` unless, or until, ``submission``'s round is decoded."""
    wake = threading.Event()
    with _WAKE_LOCK:
        if _DECODED.get(token, -1) >= submission:
            return
        _SLEEPERS.setdefault((token, submission), []).append(wake)
    try:
        wake.wait(seconds)
    finally:
        with _WAKE_LOCK:
            sleepers = _SLEEPERS.get((token, submission), [])
            if wake in sleepers:
                sleepers.remove(wake)
            if not sleepers:
                _SLEEPERS.pop((token, submission), None)


def _record(token: str, submission: float) -> None:
    _DECODED[token] = max(_DECODED.get(token, -1), submission)
    _DECODED.move_to_end(token)
    while len(_DECODED) > _REMEMBERED_RUNS:
        _DECODED.popitem(last=False)
    for key in [k for k in _SLEEPERS if k[0] == token and k[1] <= submission]:
        for wake in _SLEEPERS[key]:
            wake.set()


def mark_decoded(token: str, submission: int) -> None:
    """Runs on workers (``Client.run``): end injected sleeps up to ``submission``.

    Submissions are numbered per run and never reused, so waking the sleepers
    of a failed attempt cannot cut short the delays of its retry.
    """
    with _WAKE_LOCK:
        _record(token, submission)


def note_submission(token: str, submission: int) -> None:
    """A worker received ``submission``: every earlier one of its run is over.

    The client submits a round only after the previous one was decoded (or
    its attempt abandoned), so a newer request drops whatever older ones are
    still queued or running on this worker.
    """
    with _WAKE_LOCK:
        if _DECODED.get(token, -1) < submission - 1:
            _record(token, submission - 1)


def is_dropped(token: str, submission: int) -> bool:
    """Whether ``submission``'s round is over (decoded, superseded or closed)."""
    with _WAKE_LOCK:
        return _DECODED.get(token, -1) >= submission


class RoundDropped(Exception):
    """The round was decoded without this worker: stop computing it."""


def _check_live(request: RoundRequest, context: RoundContext) -> None:
    if is_dropped(context.token, request.submission):
        raise RoundDropped


def forget_run(token: str) -> None:
    """Runs on workers when a run closes: wake its sleepers, refuse new ones."""
    with _WAKE_LOCK:
        _record(token, math.inf)


# -------------------------------------------------------------- BLAS threads
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMIT: Any = None
_BLAS_CONTROLLER: Any = None


def _workers_in_this_process() -> int:
    from distributed.worker import Worker

    return len(Worker._instances)


@contextmanager
def _one_blas_thread_while_sharing() -> Iterator[None]:
    """While a round task runs, one BLAS thread per call if workers share a process.

    Dask's nanny starts worker processes with ``OMP_NUM_THREADS=1`` and
    friends; workers living in one process (``LocalCluster(processes=False)``)
    get no such setting, and their concurrent multi-threaded BLAS calls
    oversubscribe the cores (measured 30x slower on 2 cores with 12 workers).
    The limit is held only while round tasks run, not for a whole fit.
    """
    global _BLAS_USERS, _BLAS_LIMIT, _BLAS_CONTROLLER
    if _workers_in_this_process() < 2:
        yield
        return
    with _BLAS_LOCK:
        _BLAS_USERS += 1
        if _BLAS_CONTROLLER is None:  # inspecting the libraries costs ~0.5 ms: once
            from threadpoolctl import ThreadpoolController

            _BLAS_CONTROLLER = ThreadpoolController()
        if _BLAS_LIMIT is None:
            _BLAS_LIMIT = _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if not _BLAS_USERS and _BLAS_LIMIT is not None:
                _BLAS_LIMIT.restore_original_limits()
                _BLAS_LIMIT = None


# -------------------------------------------------------------------- rounds
def run_round(
    shard: Shard,
    context: RoundContext,
    request: RoundRequest,
    weights: np.ndarray | None = None,
) -> Reply:
    """One worker's part of a round: its coded message, or a split round's sum.

    A coded round (``request.slices`` None) computes every partition of the
    shard and encodes the partial (loss, gradient)s; a split round sums them
    over ``request.slices`` (its share, or the share of a late worker it backs
    up).  ``weights`` are given when they travel beside the request.  The
    straggler model is a pure function of its seed, ``request.iteration`` and
    ``context.worker_id``; ``request.submission`` identifies the attempt for
    the early wake-up of injected delays.
    """
    if weights is None:
        weights = request.weights
    if weights is None:
        raise ValueError("a round request needs weights, inside it or beside it")
    note_submission(context.token, request.submission)
    start = time.perf_counter()
    message: np.ndarray | SparseMessage
    try:
        _check_live(request, context)
        with _one_blas_thread_while_sharing():
            if request.slices is None:
                message, rows = _coded_message(shard, weights, context, request)
            else:
                total, rows = _sliced_sum(shard, weights, context, request)
                if not np.all(np.isfinite(total)):
                    raise FloatingPointError(
                        "the loss or its gradient overflowed on this worker's rows; "
                        "scale the data (StandardScaler) or the loss"
                    )
                message = total
    except RoundDropped:
        # Nobody waits for it: a small reply the client discards, not an
        # error (no warning per dropped round in the worker's log).
        return Reply(np.empty(0), time.perf_counter() - start, 0.0, dropped=True)
    return _reply(message, time.perf_counter() - start, rows, context, request)


def _coded_message(
    shard: Shard, weights: np.ndarray, context: RoundContext, request: RoundRequest
) -> tuple[np.ndarray | SparseMessage, int]:
    """Every partition's (loss, gradient), encoded; and the shard's row count.

    An audit request gets the partials unencoded (one row per partition).

    Raises RoundDropped between two chunks of rows (or before encoding) once
    the round is over.
    """
    partials = np.empty((len(shard.blocks), 1 + weights.size))
    for row, (first_row, block) in enumerate(
        zip(shard.first_rows, shard.blocks, strict=True)
    ):
        if row:
            _check_live(request, context)
        scale = 1.0
        if request.batch is not None:
            block, scale = sample_block(
                block, first_row, request.iteration, request.batch
            )
        loss, gradient = _block_value_and_gradient(
            shard, weights, block, context, request
        )
        partials[row, 0] = scale * loss
        partials[row, 1:] = scale * gradient
    rows = sum(block[1].shape[0] for block in shard.blocks)
    _check_live(request, context)
    if context.fault_model is not None:
        partials = context.fault_model.corrupt(
            partials, context.worker_id, request.iteration
        )
    if request.audit:
        return partials, rows
    return sparse_or_dense(shard.encoder(partials)), rows


#: Elements of ``X`` a worker evaluates between two checks that its round is
#: still wanted (a few milliseconds of computation): a round decoded without
#: this worker stops it within one chunk, not at the end of a partition.
CHUNK_ELEMENTS = 1 << 22


def _block_value_and_gradient(
    shard: Shard,
    weights: np.ndarray,
    block: tuple[Any, np.ndarray, np.ndarray | None],
    context: RoundContext,
    request: RoundRequest,
) -> tuple[float, np.ndarray]:
    """One block's summed (loss, gradient), in chunks of rows.

    The objectives are sums over rows (every code relies on it), so the
    chunks' sums are the block's; between chunks, a round that is over
    raises RoundDropped.
    """
    X, y, sample_weight = block
    objective = context.objective.smoothed(request.smoothing)
    n_rows = y.shape[0]
    step = max(1024, CHUNK_ELEMENTS // max(1, X.shape[1]))
    if n_rows <= step:
        return objective.value_and_gradient(weights, shard.design(X), y, sample_weight)
    loss = 0.0
    gradient = np.zeros(weights.size)
    for lo in range(0, n_rows, step):
        if lo:
            _check_live(request, context)
        hi = min(n_rows, lo + step)
        part_loss, part_gradient = objective.value_and_gradient(
            weights,
            shard.design(X[lo:hi]),
            y[lo:hi],
            None if sample_weight is None else sample_weight[lo:hi],
        )
        loss += part_loss
        gradient += part_gradient
    return loss, gradient


def _sliced_sum(
    shard: Shard, weights: np.ndarray, context: RoundContext, request: RoundRequest
) -> tuple[np.ndarray, int]:
    """The plain sum of (loss, gradient) over the request's slices; their rows."""
    total = np.zeros(1 + weights.size)
    rows = 0
    for index, (block_index, lo, hi) in enumerate(request.slices or ()):
        if index:
            _check_live(request, context)
        X, y, sample_weight = shard.blocks[block_index]
        block = (
            X[lo:hi],
            y[lo:hi],
            None if sample_weight is None else sample_weight[lo:hi],
        )
        scale = 1.0
        if request.batch is not None:
            first = shard.first_rows[block_index] + lo
            block, scale = sample_block(block, first, request.iteration, request.batch)
        loss, gradient = _block_value_and_gradient(
            shard, weights, block, context, request
        )
        total[0] += scale * loss
        total[1:] += scale * gradient
        rows += hi - lo
    if context.fault_model is not None:
        total = context.fault_model.corrupt(total, context.worker_id, request.iteration)
    return total, rows


def _reply(
    message: np.ndarray | SparseMessage,
    compute_seconds: float,
    rows: int,
    context: RoundContext,
    request: RoundRequest,
) -> Reply:
    """The task's reply, after the injected straggler and transfer delays."""
    delay = emulated = 0.0
    if context.straggler_model is not None:
        emulated = model_work(context.straggler_model, rows)
        delay += model_delay(
            context.straggler_model,
            request.iteration,
            context.worker_id,
            context.n_workers,
            compute_seconds,
            rows,
        )
    if context.bandwidth is not None:
        delay += context.bandwidth.transfer_seconds(message.nbytes)
    if delay > 0:
        _injected_sleep(context.token, request.submission, delay)
    return Reply(message, compute_seconds, delay, rows, emulated)


def build_shard(
    encoder: WorkerEncoder,
    partition_ids: Sequence[int],
    first_rows: Sequence[int],
    *blocks: tuple,
    intercept: bool = False,
) -> Shard:
    """Assemble a shard (runs on its worker, from blocks placed there)."""
    return Shard(
        encoder, tuple(partition_ids), tuple(first_rows), tuple(blocks), intercept
    )


def _row_uniforms(seed: int, iteration: int, rows: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) that depend only on ``(seed, iteration, row)``.

    A counter-based hash (SplitMix64's finaliser) of the global row index: any
    worker holding a row draws the same number for it, however the data was
    cut into partitions.
    """
    mix = np.uint64(
        (int(seed) * 0x9E3779B97F4A7C15 + int(iteration) * 0xD1B54A32D192ED03) % 2**64
    )
    with np.errstate(over="ignore"):
        x = rows.astype(np.uint64) + mix
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def sample_block(
    block: tuple, first_row: int, iteration: int, batch: tuple[Any, ...]
) -> tuple[tuple, float]:
    """The rows of a mini-batch round, and the factor that keeps the sum unbiased.

    Each row is in the batch with probability ``fraction``, decided by a hash
    of its global index, the seed and the round: every holder of a row makes
    the same decision (so the coded sum stays exact for the batch), and the
    batch is the same whatever the code's partitions (so coded and uncoded
    fits see the same batches).  Rescaling by ``1 / fraction`` keeps the sum
    unbiased.  With ``shuffle`` False (a third item of ``batch``) the batches
    go through the rows in order instead: round ``r`` takes every row whose
    index is ``r`` modulo ``round(1 / fraction)``.
    """
    seed, fraction, *rest = batch
    shuffle = rest[0] if rest else True
    X, y, sample_weight = block
    n_rows = X.shape[0]
    if n_rows == 0 or fraction >= 1:
        return block, 1.0
    indices = first_row + np.arange(n_rows)
    if shuffle:
        rows = np.flatnonzero(_row_uniforms(seed, iteration, indices) < fraction)
        scale = 1.0 / fraction
    else:  # the rows in order: round r takes every period-th row, from r
        period = max(1, round(1.0 / fraction))
        rows = np.flatnonzero(indices % period == iteration % period)
        scale = float(period)
    weights = None if sample_weight is None else sample_weight[rows]
    return (X[rows], y[rows], weights), scale


def as_block(X: Any, y: Any, sample_weight: Any) -> tuple:
    """One partition's ``(X, y, sample_weight)`` as float64 (CSR for sparse).

    No copy of a float64 array's rows (a view of the caller's array); the
    intercept's column is never materialised (:attr:`Shard.intercept`).
    """
    if scipy.sparse.issparse(X):
        X = scipy.sparse.csr_matrix(cast(Any, X), dtype=np.float64)
    else:
        X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
    return X, y, sample_weight
