"""Coded gradient rounds on a Dask cluster: the only module that talks to Dask.

:class:`CodedGradient` places each data partition on the workers a
:class:`~dask_gradcode.codes.GradientCode` assigns, once, and then computes
``(loss, gradient)`` at any weights with one pinned task per worker, decoding
the moment enough workers have answered.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse
from dask import is_dask_collection as _is_dask
from distributed import Client, Future, LocalCluster, as_completed, get_client, wait

from dask_gradcode.codes import GradientCode, make_code
from dask_gradcode.codes._base import WorkerEncoder
from dask_gradcode.objectives import Objective, Softmax, get_objective
from dask_gradcode.stragglers import Bandwidth

__all__ = [
    "CodedGradient",
    "DecodingAccuracyWarning",
    "RoundRecord",
    "WorkerFailureWarning",
    "client_for_fit",
    "worker_addresses",
]

#: Weights up to this size travel inside each task; larger ones are scattered
#: once per round to the workers (a direct client-to-worker transfer each), so
#: the scheduler does not relay ``n`` copies.  benchmarks/iteration_time.py
#: measures both on worker processes.
EMBED_WEIGHTS_MAX_BYTES = 1024 * 1024


class WorkerFailureWarning(RuntimeWarning):
    """More workers failed than the code tolerates; the run adapted."""


class DecodingAccuracyWarning(RuntimeWarning):
    """Rounds waited for more workers because a decodable set missed ``rtol``."""


# --------------------------------------------------------------------- records
@dataclass(frozen=True)
class RoundRecord:
    """What happened in one coded round.  ``as_dict()`` gives a plain dict.

    Attributes
    ----------
    iteration : int
        Round number, from 0.
    loss : float
        Decoded loss, summed over all rows.
    wall_seconds : float
        Time of the whole call, submission to decoded gradient.
    submit_seconds : float
        Time to ship the weights and submit the tasks.
    wait_seconds : float
        Time spent waiting for workers until the responders were decodable.
    decode_seconds : float
        Time to decode (wall clock).
    decode_cpu_seconds : float
        CPU time the decoding thread spent decoding: the decode's own cost,
        without time lost to other threads of the client process.
    responders : tuple of int
        Workers (code indices) whose messages were decoded.
    stragglers : tuple of int
        Live workers that had not answered when the round was decoded.
    failed : tuple of int
        Workers found dead in this round.
    bytes_received : int
        Bytes of the messages decoded.
    compute_seconds : dict of int to float
        Each responder's computation time.
    injected_delay : dict of int to float
        Delay each responder's straggler and bandwidth models added.
    exact : bool
        Whether the gradient is exact to the code's ``rtol`` (False only for
        approximate decoding).
    error_bound : float
        Bound on the decoded gradient's error relative to the root-sum-square
        of the partial gradients, see :class:`~dask_gradcode.codes.Decoder`.
    waited_for_accuracy : bool
        Whether the responders could decode in exact arithmetic earlier than
        they did in float64: the round waited for more workers because the
        first decodable set missed the code's ``rtol``.
    scheme, n_workers, n_stragglers, comm_reduction : str or int
        The code used (it changes after a re-plan).
    replanned : bool
        Whether the code was re-planned before this round.
    """

    iteration: int
    loss: float
    wall_seconds: float
    submit_seconds: float
    wait_seconds: float
    decode_seconds: float
    decode_cpu_seconds: float
    responders: tuple[int, ...]
    stragglers: tuple[int, ...]
    failed: tuple[int, ...]
    bytes_received: int
    compute_seconds: dict[int, float] = field(repr=False)
    injected_delay: dict[int, float] = field(repr=False)
    exact: bool
    error_bound: float
    waited_for_accuracy: bool
    scheme: str
    n_workers: int
    n_stragglers: int
    comm_reduction: int
    replanned: bool

    def as_dict(self) -> dict[str, Any]:
        """The record as a plain dict."""
        return asdict(self)


# ---------------------------------------------------------------- worker side
@dataclass(frozen=True)
class _Shard:
    """What one worker holds for a fit: its encoder and its partitions' rows.

    ``first_rows[r]`` is the data set's index of block ``r``'s first row, so
    that a mini-batch can sample rows by their global index.
    """

    encoder: WorkerEncoder
    partition_ids: tuple[int, ...]
    first_rows: tuple[int, ...]
    blocks: tuple[tuple[Any, np.ndarray, np.ndarray | None], ...]


@dataclass(frozen=True)
class _Reply:
    message: np.ndarray
    compute_seconds: float
    injected_delay: float


_WAKE_LOCK = threading.Lock()
_DECODED: dict[str, int] = {}  # run token -> latest decoded iteration
_SLEEPERS: dict[tuple[str, int], list[threading.Event]] = {}


def _injected_sleep(token: str, iteration: int, seconds: float) -> None:
    """Sleep ``seconds`` unless, or until, ``iteration`` is decoded."""
    wake = threading.Event()
    with _WAKE_LOCK:
        if _DECODED.get(token, -1) >= iteration:
            return
        _SLEEPERS.setdefault((token, iteration), []).append(wake)
    try:
        wake.wait(seconds)
    finally:
        with _WAKE_LOCK:
            sleepers = _SLEEPERS.get((token, iteration), [])
            if wake in sleepers:
                sleepers.remove(wake)
            if not sleepers:
                _SLEEPERS.pop((token, iteration), None)


def _mark_decoded(token: str, iteration: int) -> None:
    """Runs on workers (``Client.run``): end injected sleeps up to ``iteration``."""
    with _WAKE_LOCK:
        _DECODED[token] = max(_DECODED.get(token, -1), iteration)
        for key in [k for k in _SLEEPERS if k[0] == token and k[1] <= iteration]:
            for wake in _SLEEPERS[key]:
                wake.set()


def _forget_run(token: str) -> None:
    """Runs on workers when a CodedGradient closes: wake and forget its sleepers."""
    with _WAKE_LOCK:
        _DECODED.pop(token, None)
        for key in [k for k in _SLEEPERS if k[0] == token]:
            for wake in _SLEEPERS[key]:
                wake.set()
    _release_blas(token)


_BLAS_LOCK = threading.Lock()
_BLAS_RUNS: set[str] = set()  # runs that asked for one BLAS thread per call
_BLAS_LIMITER: Any = None


def _share_cores(token: str) -> bool:
    """Runs on workers: if several share this process, one BLAS thread per call.

    Dask's nanny starts worker processes with ``OMP_NUM_THREADS=1`` and
    friends; workers living in one process (``LocalCluster(processes=False)``)
    get no such setting, and their concurrent multi-threaded BLAS calls
    oversubscribe the cores (measured 30x slower on 2 cores with 12 workers).
    The original limits come back when the last run in this process closes.
    """
    from distributed.worker import Worker
    from threadpoolctl import threadpool_limits

    global _BLAS_LIMITER
    with _BLAS_LOCK:
        if len(Worker._instances) < 2:
            return False
        _BLAS_RUNS.add(token)
        if _BLAS_LIMITER is None:
            _BLAS_LIMITER = threadpool_limits(limits=1, user_api="blas")
        return True


def _release_blas(token: str) -> None:
    global _BLAS_LIMITER
    with _BLAS_LOCK:
        _BLAS_RUNS.discard(token)
        if not _BLAS_RUNS and _BLAS_LIMITER is not None:
            _BLAS_LIMITER.restore_original_limits()
            _BLAS_LIMITER = None


def _coded_round(
    shard: _Shard,
    weights: np.ndarray,
    objective: Objective,
    iteration: int,
    n_workers: int,
    straggler_model: Any,
    bandwidth: Bandwidth | None,
    token: str,
    batch: tuple[int, float] | None = None,
) -> _Reply:
    """One worker's part of a round: partial (loss, gradient)s, encoded."""
    start = time.perf_counter()
    rows = np.empty((len(shard.blocks), 1 + weights.size))
    for row, (partition, block) in enumerate(
        zip(shard.first_rows, shard.blocks, strict=True)
    ):
        scale = 1.0
        if batch is not None:
            block, scale = _sample_block(block, partition, iteration, batch)
        loss, gradient = objective.value_and_gradient(weights, *block)
        rows[row, 0] = scale * loss
        rows[row, 1:] = scale * gradient
    message = shard.encoder(rows)
    compute_seconds = time.perf_counter() - start
    delay = 0.0
    if straggler_model is not None:
        delay += straggler_model.delay(
            iteration, shard.encoder.worker, n_workers, compute_seconds
        )
    if bandwidth is not None:
        delay += bandwidth.transfer_seconds(message.nbytes)
    if delay > 0:
        _injected_sleep(token, iteration, delay)
    return _Reply(message, compute_seconds, delay)


def _build_shard(
    encoder: WorkerEncoder,
    partition_ids: Sequence[int],
    first_rows: Sequence[int],
    *blocks: tuple,
) -> _Shard:
    return _Shard(encoder, tuple(partition_ids), tuple(first_rows), tuple(blocks))


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


def _sample_block(
    block: tuple, first_row: int, iteration: int, batch: tuple[int, float]
) -> tuple[tuple, float]:
    """The rows of a mini-batch round, and the factor that keeps the sum unbiased.

    Each row is in the batch with probability ``fraction``, decided by a hash
    of its global index, the seed and the round: every holder of a row makes
    the same decision (so the coded sum stays exact for the batch), and the
    batch is the same whatever the code's partitions (so coded and uncoded
    fits see the same batches).  Rescaling by ``1 / fraction`` keeps the sum
    unbiased.
    """
    seed, fraction = batch
    X, y, sample_weight = block
    n_rows = X.shape[0]
    if n_rows == 0 or fraction >= 1:
        return block, 1.0
    rows = np.flatnonzero(
        _row_uniforms(seed, iteration, first_row + np.arange(n_rows)) < fraction
    )
    weights = None if sample_weight is None else sample_weight[rows]
    return (X[rows], y[rows], weights), 1.0 / fraction


def _as_block(X: Any, y: Any, sample_weight: Any, intercept: bool = False) -> tuple:
    if scipy.sparse.issparse(X):
        X = scipy.sparse.csr_matrix(X, dtype=np.float64)
        if intercept:
            ones = scipy.sparse.csr_matrix(np.ones((X.shape[0], 1)))
            X = scipy.sparse.hstack([X, ones], format="csr")
    else:
        X = np.asarray(X, dtype=np.float64)
        if intercept:
            X = np.hstack([X, np.ones((X.shape[0], 1))])
    y = np.asarray(y, dtype=np.float64)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
    return X, y, sample_weight


# ---------------------------------------------------------------- client side
class _Failure(Exception):
    """The live workers can no longer decode with the current code."""


class CodedGradient:
    r"""Full ``(loss, gradient)`` of a linear-model loss by coded computation.

    Use it as a context manager: entering places the data on the workers,
    leaving releases it.  Each call ``cg(w)`` runs one coded round and returns
    ``(loss, gradient)`` **summed over all rows**; ``cg.history`` gets one
    :class:`RoundRecord` per round.

    Parameters
    ----------
    client : distributed.Client
        The cluster to run on; it needs at least ``code.n_workers`` workers.
    code : GradientCode
        Which worker holds which partition and how they encode.
    X : array-like, scipy sparse matrix, dask array or dask dataframe
        Shape ``(n_samples, n_features)``.  NumPy/SciPy/pandas input is split
        on the client and sent to its workers; dask input is materialised
        partition by partition on the workers, never on the client.
    y : array-like, dask array or dask series of shape (n_samples,)
    loss : str or Objective
        A name from :mod:`dask_gradcode.objectives` (``"log_loss"`` with
        labels in {0, 1}, ``"squared_error"``, ...) or an objective object.
        ``"softmax"`` infers the number of classes from ``y``.
    sample_weight : array-like of shape (n_samples,), optional
    straggler_model : object with a ``delay`` method, optional
        Injected delays, e.g. :class:`~dask_gradcode.stragglers.SlowWorkers`.
        An injected delay ends as soon as its round has been decoded.
    bandwidth : float or Bandwidth, optional
        Bytes per second of each worker's link; delays every message by its
        size over the bandwidth.
    on_failure : {"replan", "approximate"}, default="replan"
        What to do once the live workers can no longer decode exactly (more
        than ``n_stragglers`` died): build a new code of the same scheme over
        the survivors and place the data again, or keep the code and decode
        approximately from every live worker.  Either way a
        :class:`WorkerFailureWarning` is issued and the round is recomputed at
        the same weights.
    check_interval : float, default=2.0
        Seconds between liveness checks while a round waits.
    fit_intercept : bool, default=False
        Append a column of ones to ``X`` on the workers, so the last
        coefficient (per class) is an intercept; ``w`` then has
        ``objective.n_coef(n_features + 1)`` entries.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> from dask_gradcode.codes import make_code
    >>> with LocalCluster(n_workers=4, processes=False) as cluster, \\
    ...         Client(cluster) as client:                      # doctest: +SKIP
    ...     code = make_code("gaussian-mds", 4, 1, 1, random_state=0)
    ...     with CodedGradient(client, code, X, y, "log_loss") as cg:
    ...         loss, gradient = cg(np.zeros(X.shape[1]))
    """

    def __init__(
        self,
        client: Client,
        code: GradientCode,
        X: Any,
        y: Any,
        loss: str | Objective,
        *,
        sample_weight: Any = None,
        straggler_model: Any = None,
        bandwidth: float | Bandwidth | None = None,
        on_failure: Literal["replan", "approximate"] = "replan",
        check_interval: float = 2.0,
        fit_intercept: bool = False,
    ) -> None:
        if on_failure not in ("replan", "approximate"):
            raise ValueError(
                f"on_failure must be 'replan' or 'approximate', got {on_failure!r}"
            )
        if straggler_model is not None and not callable(
            getattr(straggler_model, "delay", None)
        ):
            raise TypeError(
                "straggler_model needs a delay(iteration, worker, n_workers, "
                f"compute_seconds) method; got {straggler_model!r}"
            )
        if bandwidth is not None and not isinstance(bandwidth, Bandwidth):
            bandwidth = Bandwidth(bandwidth)
        if not check_interval > 0:
            raise ValueError(f"check_interval must be > 0, got {check_interval}")
        self.client = client
        self.code = code
        self.straggler_model = straggler_model
        self.bandwidth = bandwidth
        self.on_failure = on_failure
        self.check_interval = float(check_interval)
        self.history: list[RoundRecord] = []
        self._X, self._y, self._sample_weight = _check_data(X, y, sample_weight)
        self.objective = _resolve_objective(loss, self._y)
        self.fit_intercept = bool(fit_intercept)
        self.n_features = int(self._X.shape[1])
        self.dim = self.objective.n_coef(self.n_features + self.fit_intercept)
        self._token = uuid.uuid4().hex[:12]
        self._iteration = 0
        self._addresses: list[str] = []
        self._shards: list[Future] = []
        self._approximate = False
        self._replanned = False
        self._waited_for_accuracy = False
        self._background: ThreadPoolExecutor | None = None
        self._live: set[str] = set()
        self._submissions = itertools.count()
        self._live_checked = -math.inf

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> CodedGradient:  # noqa: PYI034 (subclasses may override)
        available = self._live_addresses(fresh=True)
        if len(available) < self.code.n_workers:
            raise ValueError(
                f"the code needs {self.code.n_workers} workers but the cluster has "
                f"{len(available)}; build the code with n_workers<={len(available)} "
                "or add workers to the cluster"
            )
        self._background = ThreadPoolExecutor(1, thread_name_prefix="gradcode-wake")
        try:
            self.client.run(_share_cores, self._token)
            self._place(sorted(available)[: self.code.n_workers])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the placed data and the workers' bookkeeping."""
        if self._background is not None:
            self._background.shutdown(wait=True)
            self._background = None
        if self._shards:
            self.client.cancel(self._shards)
            self._shards = []
        if self.client.status == "running":
            try:
                self.client.run(_forget_run, self._token)
            except OSError:  # workers already gone: nothing to forget
                pass

    @property
    def workers(self) -> list[str]:
        """Address of each code worker, in code order."""
        return list(self._addresses)

    # ------------------------------------------------------------ placement
    def _place(self, addresses: Sequence[str]) -> None:
        """Send each worker the partitions the code assigns to it, once."""
        code = self.code
        self._addresses = list(addresses)
        bounds = code.partition_bounds(self._X.shape[0])
        if _is_dask(self._X):
            self._shards = self._place_dask(bounds)
        else:
            self._shards = [
                self.client.scatter(
                    _build_shard(
                        code.worker_encoder(worker),
                        code.partitions(worker),
                        [int(bounds[j]) for j in code.partitions(worker)],
                        *(self._block(bounds, j) for j in code.partitions(worker)),
                    ),
                    workers=[address],
                    hash=False,
                )
                for worker, address in enumerate(self._addresses)
            ]

    def _block(self, bounds: np.ndarray, partition: int) -> tuple:
        rows = slice(bounds[partition], bounds[partition + 1])
        weights = None if self._sample_weight is None else self._sample_weight[rows]
        return _as_block(self._X[rows], self._y[rows], weights, self.fit_intercept)

    def _place_dask(self, bounds: np.ndarray) -> list[Future]:
        """Compute each partition on the cluster, then assemble shards on their workers."""
        import dask

        blocks = [
            dask.delayed(_as_block)(
                self._X[bounds[j] : bounds[j + 1]],
                self._y[bounds[j] : bounds[j + 1]],
                None
                if self._sample_weight is None
                else self._sample_weight[bounds[j] : bounds[j + 1]],
                self.fit_intercept,
            )
            for j in range(self.code.n_partitions)
        ]
        block_futures = self.client.compute(blocks)
        shards = [
            self.client.submit(
                _build_shard,
                self.code.worker_encoder(worker),
                self.code.partitions(worker),
                [int(bounds[j]) for j in self.code.partitions(worker)],
                *(block_futures[j] for j in self.code.partitions(worker)),
                key=f"gradcode-place-w{worker}-{self._token}-{next(self._submissions)}",
                workers=[address],
                allow_other_workers=False,
                pure=False,
            )
            for worker, address in enumerate(self._addresses)
        ]
        wait(shards)
        for future in shards:
            if future.status != "finished":
                future.result()  # raise the worker's error here, with its traceback
        del block_futures
        return shards

    # --------------------------------------------------------------- rounds
    def __call__(
        self, w: Any, *, batch_fraction: float | None = None, batch_seed: int = 0
    ) -> tuple[float, np.ndarray]:
        """One coded round at weights ``w``: ``(loss, gradient)`` summed over rows.

        With ``batch_fraction``, each row is in the round's batch with
        probability ``batch_fraction`` (decided by a hash of its index, the
        round and ``batch_seed``, so every worker holding it agrees and any
        code sees the same batch), rescaled so the result is an unbiased
        estimate of the full sums: a coded mini-batch.
        """
        if self._background is None:
            raise RuntimeError(
                "use CodedGradient as a context manager: with ... as cg:"
            )
        weights = np.asarray(w, dtype=np.float64).ravel()
        if weights.shape != (self.dim,):
            raise ValueError(
                f"w must have {self.dim} entries (one per coefficient), got "
                f"{np.shape(w)}"
            )
        if not np.all(np.isfinite(weights)):
            raise ValueError("w contains NaN or inf")
        batch = None
        if batch_fraction is not None:
            if not 0 < batch_fraction <= 1:
                raise ValueError(
                    f"batch_fraction must be in (0, 1], got {batch_fraction}"
                )
            batch = (int(batch_seed), float(batch_fraction))
        while True:
            try:
                record, gradient = self._round(weights, batch)
            except _Failure as failure:
                self._adapt(str(failure))
                continue
            self.history.append(record)
            self._iteration += 1
            return record.loss, gradient

    def _live_addresses(self, *, fresh: bool = False) -> set[str]:
        """Workers the scheduler knows, asked at most every ``check_interval``.

        A worker that dies with its data is seen at once (its shard future is
        cancelled); this catches workers retired with their data moved away.
        """
        now = time.monotonic()
        if fresh or now - self._live_checked > self.check_interval:
            self._live = set(worker_addresses(self.client))
            self._live_checked = now
        return self._live

    def _alive(self) -> list[int]:
        live = self._live_addresses()
        return [
            worker
            for worker, (address, shard) in enumerate(
                zip(self._addresses, self._shards, strict=True)
            )
            if address in live and shard.status == "finished"
        ]

    def _round(
        self, weights: np.ndarray, batch: tuple[int, float] | None = None
    ) -> tuple[RoundRecord, np.ndarray]:
        code, iteration = self.code, self._iteration
        start = time.perf_counter()
        alive = self._alive()
        failed = sorted(set(range(code.n_workers)) - set(alive))
        if not alive or (not self._approximate and not code.is_decodable(alive)):
            raise _Failure(
                f"{len(failed)} of {code.n_workers} workers are gone and the "
                f"{code.scheme} code tolerates {code.n_stragglers}"
            )
        weights_arg = self._ship_weights(weights, alive)
        # A retried round (after a re-plan) must never meet the keys, results or
        # late cancellations of the attempt it replaces.
        attempt = next(self._submissions)
        futures = {
            self.client.submit(
                _coded_round,
                self._shards[worker],
                weights_arg,
                self.objective,
                iteration,
                code.n_workers,
                self.straggler_model,
                self.bandwidth,
                self._token,
                batch,
                key=f"gradcode-round-{iteration}-w{worker}-{self._token}-{attempt}",
                workers=[self._addresses[worker]],
                allow_other_workers=False,
                pure=False,
            ): worker
            for worker in alive
        }
        submitted = time.perf_counter()
        self._waited_for_accuracy = False
        replies, lost, pending = self._collect(futures, alive)
        collected = time.perf_counter()
        failed = sorted(set(failed) | lost)
        messages = {worker: reply.message for worker, reply in replies.items()}
        collected_cpu = time.thread_time()
        try:
            vector, decoder = code.decode(
                messages, 1 + self.dim, approximate=self._approximate, return_info=True
            )
        finally:
            decoded, decoded_cpu = time.perf_counter(), time.thread_time()
            # After decoding, so the cancel and wake-up RPCs do not compete
            # with the decode for the client's CPU.
            self._release(pending)
        stragglers = sorted(set(alive) - set(replies) - lost)
        record = RoundRecord(
            iteration=iteration,
            loss=float(vector[0]),
            wall_seconds=decoded - start,
            submit_seconds=submitted - start,
            wait_seconds=collected - submitted,
            decode_seconds=decoded - collected,
            decode_cpu_seconds=decoded_cpu - collected_cpu,
            responders=decoder.responders,
            stragglers=tuple(stragglers),
            failed=tuple(failed),
            bytes_received=int(sum(messages[w].nbytes for w in decoder.responders)),
            compute_seconds={w: r.compute_seconds for w, r in replies.items()},
            injected_delay={w: r.injected_delay for w, r in replies.items()},
            exact=decoder.exact,
            error_bound=decoder.error_bound,
            waited_for_accuracy=self._waited_for_accuracy,
            scheme=code.scheme,
            n_workers=code.n_workers,
            n_stragglers=code.n_stragglers,
            comm_reduction=code.comm_reduction,
            replanned=self._replanned,
        )
        self._replanned = False
        return record, vector[1:]

    def _ship_weights(self, weights: np.ndarray, alive: list[int]) -> Any:
        if weights.nbytes <= EMBED_WEIGHTS_MAX_BYTES:
            return weights
        return self.client.scatter(
            weights,
            workers=[self._addresses[w] for w in alive],
            broadcast=True,
            hash=False,
        )

    def _collect(
        self, futures: dict[Future, int], alive: list[int]
    ) -> tuple[dict[int, _Reply], set[int], dict[Future, int]]:
        """Take replies as they come until decodable.

        Returns the replies, the workers found dead, and the futures still
        pending, which the caller releases once it has decoded.
        """
        code = self.code
        replies: dict[int, _Reply] = {}
        lost: set[int] = set()
        pending = dict(futures)
        try:
            while pending:
                for future in self._completed(pending):
                    worker = pending.pop(future)
                    if future.status == "cancelled":  # its worker died with its data
                        lost.add(worker)
                        continue
                    replies[worker] = future.result()  # a worker's exception surfaces
                    if self._enough(replies, alive, lost):
                        return replies, lost, pending
                live = self._live_addresses(fresh=True)
                lost |= {w for w in pending.values() if self._addresses[w] not in live}
                pending = {f: w for f, w in pending.items() if w not in lost}
                possible = set(replies) | set(pending.values())
                if not self._approximate and not (
                    possible and code.is_decodable(possible)
                ):
                    raise _Failure(
                        f"workers {sorted(lost)} died during round {self._iteration}; "
                        f"the {code.scheme} code tolerates {code.n_stragglers}"
                    )
            if not replies:
                raise _Failure(f"no worker answered round {self._iteration}")
            return replies, lost, pending
        except BaseException:
            self._release(pending)
            raise

    def _enough(
        self, replies: dict[int, _Reply], alive: list[int], lost: set[int]
    ) -> bool:
        if self._approximate:
            return set(replies) | lost >= set(alive)
        if self.code.is_decodable(replies):
            return True
        if self.code.is_decodable(replies, check_accuracy=False):
            self._waited_for_accuracy = True  # decodable, but not to rtol
        return False

    def _completed(self, pending: dict[Future, int]) -> Iterator[Future]:
        """Futures as they finish; returns after ``check_interval`` without one."""
        finished = as_completed(
            list(pending), loop=self.client.loop, timeout=self.check_interval
        )
        try:
            yield from finished
        except (TimeoutError, asyncio.TimeoutError):  # distinct before Python 3.11
            return

    def _release(self, pending: dict[Future, int]) -> None:
        """Cancel unfinished tasks and end their injected delays, off the hot path."""
        if not pending or self._background is None:
            return
        futures = list(pending)
        addresses = [self._addresses[w] for w in pending.values()]
        injected = self.straggler_model is not None or self.bandwidth is not None
        iteration, token, client = self._iteration, self._token, self.client

        def release() -> None:
            client.cancel(futures)
            if injected:
                client.run(_mark_decoded, token, iteration, workers=addresses)

        self._background.submit(release)

    # ------------------------------------------------------------- failures
    def _adapt(self, reason: str) -> None:
        """Re-plan on the survivors, or switch to approximate decoding."""
        self._live_addresses(fresh=True)
        survivors = sorted(self._addresses[w] for w in self._alive())
        if not survivors:
            raise RuntimeError(f"{reason}, and no worker is left") from None
        if self.on_failure == "approximate":
            if self._approximate:
                raise RuntimeError(f"{reason}, and no worker is left") from None
            warnings.warn(
                f"{reason}; decoding approximately from the {len(survivors)} live "
                "workers from now on (on_failure='approximate')",
                WorkerFailureWarning,
                stacklevel=3,
            )
            self._approximate = True
            return
        self.code = replan_code(self.code, len(survivors))
        warnings.warn(
            f"{reason}; re-planned on the {len(survivors)} surviving workers with "
            f"{self.code!r} and placed the data again (on_failure='replan')",
            WorkerFailureWarning,
            stacklevel=3,
        )
        self.client.cancel(self._shards)
        self._place(survivors)
        self._replanned = True


def replan_code(code: GradientCode, n_workers: int) -> GradientCode:
    """The closest code of the same scheme on ``n_workers`` workers.

    Keeps ``comm_reduction`` and as many stragglers as the scheme allows on
    that many workers; falls back to ``comm_reduction=1`` and finally to the
    uncoded scheme.  A ``"linear"`` code keeps its generator while the
    survivors can hold its block length, else becomes ``"gaussian-mds"``.
    """
    scheme = code.scheme
    if scheme == "linear":
        try:
            return make_code(
                "linear",
                n_workers,
                None,
                generator=code.generator,  # type: ignore[attr-defined]
            )
        except ValueError:
            scheme = "gaussian-mds"
    for m in dict.fromkeys((code.comm_reduction, 1)):
        for s in range(min(code.n_stragglers, n_workers - 1), -1, -1):
            try:
                return make_code(scheme, n_workers, s, m, random_state=0)
            except ValueError:
                continue
    return make_code("uncoded", n_workers, 0)


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


def worker_addresses(client: Client) -> list[str]:
    """Addresses of the cluster's workers now, sorted.

    Asks the scheduler directly: ``Client.scheduler_info`` returns a cached
    attribute that the client's periodic refresh may have just replaced with
    one listing no worker.
    """
    return sorted(client.sync(client.scheduler.identity, n_workers=-1)["workers"])


def n_cluster_workers(client: Client) -> int:
    """How many workers the client's cluster has now."""
    return len(worker_addresses(client))


# ------------------------------------------------------------------ helpers
def _check_data(X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
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
        data = scipy.sparse.csr_matrix(data, dtype=np.float64)
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


def _resolve_objective(loss: str | Objective, y: Any) -> Objective:
    if loss == "softmax":
        top = y.max().compute() if _is_dask(y) else y.max()
        return Softmax(n_classes=max(int(top) + 1, 2))
    return get_objective(loss)
