"""``CodedGradient``: coded rounds on a Dask cluster, composed from the policy modules.

A round: refresh membership (and grow the code if workers joined), start one
call per usable worker through the transport (a direct call to its actor, or
a pinned task: :mod:`~dask_gradcode.scheduler.transports`), collect replies
until they decode or the round's deadline passes
(:mod:`~dask_gradcode.scheduler.rounds`), decode, release the rest.  When the
workers that are left cannot decode, the code is re-planned over the
responsive workers (or, with ``on_failure="approximate"``, decoded
approximately) and the round is submitted again at the same weights.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from distributed import Client, Future

from dask_gradcode.codes import GradientCode
from dask_gradcode.objectives import Objective
from dask_gradcode.scheduler.clients import bounded_run
from dask_gradcode.scheduler.membership import Membership, RoundDeadline, replan_code
from dask_gradcode.scheduler.placement import (
    PlacementError,
    check_data,
    place,
    resolve_objective,
)
from dask_gradcode.scheduler.plans import (
    Plan,
    RoundTiming,
    Share,
    StaticPolicy,
    TaskTiming,
    make_policy,
)
from dask_gradcode.scheduler.records import (
    NoWorkersError,
    RoundRecord,
    WorkerErrorWarning,
    WorkerFailureWarning,
)
from dask_gradcode.scheduler.rounds import (
    Collected,
    CollectedSplit,
    collect,
    collect_split,
)
from dask_gradcode.scheduler.transports import (
    TRANSPORTS,
    default_transport,
    make_transport,
)
from dask_gradcode.scheduler.worker import Reply, forget_run
from dask_gradcode.stragglers import Bandwidth

__all__ = ["EMBED_WEIGHTS_MAX_BYTES", "CodedGradient"]

logger = logging.getLogger("dask_gradcode")

#: Weights up to this size travel inside each task; larger ones are scattered
#: once per round to the workers (a direct client-to-worker transfer each), so
#: the scheduler does not relay ``n`` copies.  The iteration-time benchmark
#: measures both on worker processes.
EMBED_WEIGHTS_MAX_BYTES = 1024 * 1024

#: Submissions one round may take (re-plans included) before it gives up.
MAX_ATTEMPTS = 8

#: Seconds a shard transfer may take before its worker counts as hung (plus
#: the shard's size over ``placement.BYTES_PER_SECOND``).
PLACEMENT_TIMEOUT = 10.0


class _SplitIncomplete(Exception):
    """A split round could not cover every share; the round runs coded instead."""


class _Failure(Exception):
    """The workers that are left cannot decode this round with the current code."""

    def __init__(self, reason: str, bad: set[int]) -> None:
        super().__init__(reason)
        self.bad = bad


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
        An injected delay ends as soon as its round has been decoded.  The
        model sees *physical* workers: the workers of the first placement are
        ``0 .. n - 1`` (in code order), workers that join later get the next
        ids, and a worker keeps its id across re-plans.
    bandwidth : float or Bandwidth, optional
        Bytes per second of each worker's link; delays every message by its
        size over the bandwidth.
    on_failure : {"replan", "approximate"}, default="replan"
        What to do when the workers that are left (alive, answering before
        the deadline, not raising) cannot decode exactly: build a new code of
        the same scheme over the responsive workers and place the data again,
        or keep the code and decode approximately (still skipping up to
        ``n_stragglers`` stragglers, and back to exact decoding as soon as
        the live workers can decode exactly).  Either way a
        :class:`WorkerFailureWarning` says what happened.
    round_timeout : float, optional
        Seconds a round waits for a decodable set of replies before the
        workers that have not answered count as failed for that round.  By
        default it is derived from the rounds measured so far: 10 times the
        median wait of the last 20 rounds, between 2 and 60 seconds (30
        seconds for the first round).
    check_interval : float, default=2.0
        Seconds between checks of the cluster's membership (deaths, hung
        workers, workers that joined) while a round waits and between rounds.
    stale_after : float, default=5.0
        A worker whose heartbeat has not reached the scheduler for this long
        is hung: it is left out of rounds until its heartbeats resume, and
        taken back at the next re-plan.
    fit_intercept : bool, default=False
        Append a column of ones to ``X`` on the workers, so the last
        coefficient (per class) is an intercept; ``w`` then has
        ``objective.n_coef(n_features + 1)`` entries.
    policy : {"static", "adaptive", "speculative"} or policy object, default="static"
        What each round computes (:mod:`~dask_gradcode.scheduler.plans`).
        ``"static"``: every round is a coded round.  ``"adaptive"``: each
        round runs either the coded round or a *split* round, in which the
        rows of every partition are split among its holders in proportion to
        their measured speeds (uncoded load, balanced to the workers) and a
        late or failed worker's rows are recomputed by other holders
        (speculative backup tasks), whichever the measured round times say
        is faster.  ``"speculative"``: always split rounds with equal shares.
        Every plan returns the exact gradient; a split round that cannot
        cover every row (its workers and their backups failed) is run again
        as a coded round.  With ``on_failure="approximate"`` in approximate
        mode, rounds are coded.
    transport : {"direct", "futures"}, optional
        How rounds reach the workers; by default Dask's configuration value
        ``gradcode.transport`` (``dask.config.set({"gradcode.transport":
        "futures"})`` or the environment variable
        ``DASK_GRADCODE__TRANSPORT``), else ``"direct"``
        (:mod:`~dask_gradcode.scheduler.transports`).  ``"direct"``: one Dask
        actor per worker, beside its shard, called over the client's own
        connection to the worker, so the scheduler is off the round's path
        (3-6 times lower round-trip latency than futures in this project's
        benchmark); the rounds do not show in the dashboard's task stream.  A
        worker the client cannot reach directly is called through the
        scheduler's proxy (a ``TransportFallbackWarning`` says so).
        ``"futures"``: one pinned Dask task per worker per round, through the
        scheduler (each round shows in the task stream).  Results and
        failure handling are the same: a dead actor's worker is planned out
        and the actors are created again at the re-plan.

    Notes
    -----
    The code is re-planned when it can no longer decode (it shrinks to the
    responsive workers) and when it runs below its planned size or in
    approximate mode while workers that are not in it are available (it
    grows back, up to the size it was built for): scale-ups, workers a nanny
    restarted under a new address, replacements of preempted machines and
    hung workers that resumed all rejoin this way.  A worker whose task
    raises is an erasure of that round (a :class:`WorkerErrorWarning` names
    it); after ``MAX_STRIKES`` rounds in a row it is dropped.  An error every
    worker raises is raised at once, with the worker's traceback.  When no
    worker is left, the round raises :class:`NoWorkersError`; the weights it
    was called with are untouched.

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
        round_timeout: float | None = None,
        check_interval: float = 2.0,
        stale_after: float = 5.0,
        fit_intercept: bool = False,
        policy: str | Any = "static",
        transport: Literal["direct", "futures"] | None = None,
    ) -> None:
        source = "transport"
        if transport is None:
            transport, source = default_transport(), "gradcode.transport in dask.config"
        if transport not in TRANSPORTS:
            raise ValueError(
                f"transport must be one of {list(TRANSPORTS)}, got {transport!r} "
                f"(from {source})"
            )
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
        for name, value in (
            ("check_interval", check_interval),
            ("stale_after", stale_after),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if round_timeout is not None and not round_timeout > 0:
            raise ValueError(
                f"round_timeout must be > 0 seconds or None (derived from the "
                f"rounds measured), got {round_timeout}"
            )
        self.client = client
        self.code = code
        self.straggler_model = straggler_model
        self.bandwidth = bandwidth
        self.on_failure = on_failure
        self.policy = make_policy(policy)
        self.transport = transport
        self._transport = make_transport(transport, client)
        self.check_interval = float(check_interval)
        self.history: list[RoundRecord] = []
        self._data = check_data(X, y, sample_weight)
        self.objective = resolve_objective(loss, self._data[1])
        self.fit_intercept = bool(fit_intercept)
        self.n_samples = int(self._data[0].shape[0])
        self.n_features = int(self._data[0].shape[1])
        self.dim = self.objective.n_coef(self.n_features + self.fit_intercept)
        self.planned_workers = code.n_workers
        self._membership = Membership(client, self.check_interval, stale_after)
        self._deadline = RoundDeadline(round_timeout)
        self._token = uuid.uuid4().hex[:12]
        self._iteration = 0
        self._submissions = itertools.count()
        self._addresses: list[str] = []
        # Straggler models key on physical workers: each address gets an id
        # when first placed (0 .. n - 1 for the first placement), kept across
        # re-plans, so a plan cannot dodge an injected slow worker.
        self._physical: dict[str, int] = {}
        self._shards: list[Future] = []
        self._approximate = False
        self._replanned = False
        self._background: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> CodedGradient:  # noqa: PYI034 (subclasses may override)
        self._membership.refresh(force=True)
        available = self._membership.usable()
        if len(available) < self.code.n_workers:
            raise ValueError(
                f"the code needs {self.code.n_workers} workers but the cluster has "
                f"{len(available)} responsive; build the code with "
                f"n_workers<={len(available)} or add workers to the cluster"
            )
        self._background = ThreadPoolExecutor(1, thread_name_prefix="gradcode-wake")
        try:
            self._place(available[: self.code.n_workers])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the placed data and the workers' bookkeeping (bounded in time)."""
        background, self._background = self._background, None
        if self._shards and self.client.status == "running":
            try:
                self.client.cancel(self._shards)
            except Exception:  # the cluster is going away anyway
                logger.debug("cancelling shards failed", exc_info=True)
        self._shards = []
        self._transport.close()
        if background is not None:
            # Never wait for a hung worker: the last wake-ups and the forget
            # run in the background thread, each bounded by a timeout.
            if self.client.status == "running":
                background.submit(bounded_run, self.client, forget_run, self._token)
            background.shutdown(wait=False)

    @property
    def _no_injected_delay(self) -> bool:
        """No straggler or bandwidth model: no round sleeps, none needs waking."""
        return self.straggler_model is None and self.bandwidth is None

    @property
    def workers(self) -> list[str]:
        """Address of each code worker, in code order."""
        return list(self._addresses)

    # ------------------------------------------------------------ placement
    def _place(self, addresses: Sequence[str]) -> None:
        """Place the shards; workers that die or hang meanwhile are planned out."""
        addresses = list(addresses)
        for _ in range(MAX_ATTEMPTS):
            try:
                shards = place(
                    self.client,
                    self.code,
                    addresses,
                    self._data,
                    fit_intercept=self.fit_intercept,
                    key_prefix=f"gradcode-place-{self._token}-{next(self._submissions)}",
                    timeout=PLACEMENT_TIMEOUT,
                )
                failed = self._transport.bind(shards, addresses)
                if failed:
                    self.client.cancel(shards)
                    raise PlacementError(
                        failed,
                        f"the {self.transport} transport could not reach workers "
                        f"{sorted(failed)}",
                    )
                self._shards = shards
                self._addresses = addresses
                for address in addresses:  # first placement: ids 0 .. n - 1
                    self._physical.setdefault(address, len(self._physical))
                return
            except PlacementError as failure:
                survivors = [
                    a for w, a in enumerate(addresses) if w not in failure.workers
                ]
                self._membership.refresh(force=True)
                self._membership.suspect([addresses[w] for w in failure.workers])
                survivors = [a for a in survivors if self._membership.responsive(a)]
                if not survivors:
                    raise NoWorkersError(
                        f"every worker died or hung while the data was placed ({failure})"
                    ) from None
                self.code = replan_code(self.code, len(survivors))
                addresses = survivors
                self._warn(
                    f"workers {sorted(failure.workers)} failed while the data was "
                    f"placed ({failure}); re-planned on {len(survivors)} workers "
                    f"with {self.code!r}"
                )
        raise NoWorkersError("placement kept failing; the cluster is unstable")

    # --------------------------------------------------------------- rounds
    def __call__(
        self,
        w: Any,
        *,
        batch_fraction: float | None = None,
        batch_seed: int = 0,
        batch_shuffle: bool = True,
    ) -> tuple[float, np.ndarray]:
        """One coded round at weights ``w``: ``(loss, gradient)`` summed over rows.

        With ``batch_fraction``, each row is in the round's batch with
        probability ``batch_fraction`` (decided by a hash of its index, the
        round and ``batch_seed``, so every worker holding it agrees and any
        code sees the same batch), rescaled so the result is an unbiased
        estimate of the full sums: a coded mini-batch.  ``batch_shuffle=False``
        goes through the rows in order instead (round ``r`` takes the rows
        whose index is ``r`` modulo ``round(1 / batch_fraction)``).

        Raises
        ------
        NoWorkersError
            If no worker is left to compute with.
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
            batch = (int(batch_seed), float(batch_fraction), bool(batch_shuffle))
        start = time.perf_counter()
        planned = True
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._maintain()
            try:
                record, gradient = self._round(
                    weights, batch, start, attempt, planned=planned
                )
            except _SplitIncomplete:
                planned = False  # the same round again, coded
                continue
            except _Failure as failure:
                self._adapt(str(failure), failure.bad)
                continue
            self.history.append(record)
            self._iteration += 1
            return record.loss, gradient
        raise NoWorkersError(
            f"round {self._iteration} failed {MAX_ATTEMPTS} times in a row; the "
            "cluster keeps losing workers"
        )

    def _usable(self) -> list[int]:
        """Code workers that are alive, responsive and still hold their shard."""
        self._membership.refresh()
        return [
            worker
            for worker, (address, shard) in enumerate(
                zip(self._addresses, self._shards, strict=True)
            )
            if self._membership.responsive(address)
            and shard.status == "finished"
            and self._transport.ready(worker)
        ]

    def _round(
        self,
        weights: np.ndarray,
        batch: tuple | None,
        start: float,
        attempt: int,
        *,
        planned: bool = True,
    ) -> tuple[RoundRecord, np.ndarray]:
        code, iteration = self.code, self._iteration
        usable = self._usable()
        unusable = set(range(code.n_workers)) - set(usable)
        if not usable:
            raise _Failure("no code worker is responsive", unusable)
        if self._approximate and code.is_decodable(usable):
            self._approximate = False  # the live workers decode exactly again
            self._warn("the live workers decode exactly again; approximate mode ends")
        if not self._approximate and not code.is_decodable(usable):
            raise _Failure(
                f"workers {sorted(unusable)} are gone or hung and the {code.scheme} "
                f"code tolerates {code.n_stragglers}",
                unusable,
            )
        plan = Plan("coded")
        if planned and not self._approximate:
            plan = self.policy.plan(
                code, usable, self._partition_rows(), self._physical_ids()
            )
        submit_start = time.perf_counter()
        weights_arg = self._ship_weights(weights, usable)
        if plan.name == "split":
            return self._split_round(
                weights_arg, batch, plan, usable, start, submit_start, attempt
            )
        # Submissions are numbered per run and never reused: a retried round
        # never meets the keys, results, cancellations or wake-ups of the
        # attempt it replaces.
        submission = next(self._submissions)
        arrivals = self._transport.arrivals()
        futures = {}
        for worker in usable:
            handle = self._transport.submit(
                worker,
                "coded",
                (*self._task_args(worker, weights_arg, iteration, submission), batch),
                key=f"gradcode-round-{iteration}-w{worker}-{self._token}-{submission}",
                inline=self._no_injected_delay,
            )
            arrivals.add(handle)
            futures[handle] = worker
        submitted = time.perf_counter()
        deadline_seconds = self._deadline.seconds()
        try:
            collected = collect(
                futures,
                code,
                arrivals=arrivals,
                deadline=time.monotonic() + deadline_seconds,
                check_interval=self.check_interval,
                approximate=self._approximate,
                gone=self._gone,
                started=time.monotonic() - (submitted - submit_start),
            )
        except BaseException:
            self._release(dict(futures), submission)
            raise
        collected_at = time.perf_counter()
        self._membership.suspect([self._addresses[w] for w in collected.timed_out])
        self._judge(collected, usable, deadline_seconds)
        messages = {w: reply.message for w, reply in collected.replies.items()}
        collected_cpu = time.thread_time()
        try:
            vector, decoder = code.decode(
                messages, 1 + self.dim, approximate=self._approximate, return_info=True
            )
        finally:
            decoded, decoded_cpu = time.perf_counter(), time.thread_time()
            # After decoding, so the cancel and wake-up RPCs do not compete
            # with the decode for the client's CPU.
            self._release(collected.pending, submission)
        if not self._approximate:
            self._deadline.observe(collected_at - submitted)
            self.policy.observe(
                self._coded_timing(collected, usable, collected_at - submit_start)
            )
        for worker in collected.replies:
            self._membership.forgive(self._addresses[worker])
        failed = collected.failed | unusable
        record = RoundRecord(
            iteration=iteration,
            loss=float(vector[0]),
            wall_seconds=decoded - start,
            submit_seconds=submitted - submit_start,
            wait_seconds=collected_at - submitted,
            decode_seconds=decoded - collected_at,
            decode_cpu_seconds=decoded_cpu - collected_cpu,
            responders=decoder.responders,
            stragglers=tuple(sorted(set(usable) - set(collected.replies) - failed)),
            failed=tuple(sorted(failed)),
            errors={w: _describe(e) for w, e in collected.errors.items()},
            timed_out=tuple(sorted(collected.timed_out)),
            deadline_seconds=deadline_seconds,
            attempts=attempt,
            bytes_received=int(sum(messages[w].nbytes for w in decoder.responders)),
            compute_seconds={
                w: r.compute_seconds for w, r in collected.replies.items()
            },
            injected_delay={w: r.injected_delay for w, r in collected.replies.items()},
            exact=decoder.exact,
            error_bound=decoder.error_bound,
            waited_for_accuracy=collected.waited_for_accuracy,
            scheme=code.scheme,
            n_workers=code.n_workers,
            n_stragglers=code.n_stragglers,
            comm_reduction=code.comm_reduction,
            replanned=self._replanned,
            workers=tuple(self._addresses),
            plan="coded",
            response_seconds=dict(collected.arrived),
        )
        self._replanned = False
        return record, vector[1:]

    # ----------------------------------------------------------- split rounds
    def _split_round(
        self,
        weights_arg: Any,
        batch: tuple | None,
        plan: Plan,
        usable: list[int],
        start: float,
        submit_start: float,
        attempt: int,
    ) -> tuple[RoundRecord, np.ndarray]:
        """Every row once: shares by speed, late shares backed up."""
        code, iteration = self.code, self._iteration
        submission = next(self._submissions)
        copies = itertools.count()

        def submit(worker: int, share: Share) -> Any:
            return self._transport.submit(
                worker,
                "sliced",
                (
                    *self._task_args(worker, weights_arg, iteration, submission),
                    share.slices,
                    batch,
                ),
                key=(
                    f"gradcode-split-{iteration}-w{worker}-o{share.owner}-"
                    f"{self._token}-{submission}-{next(copies)}"
                ),
                inline=self._no_injected_delay,
            )

        deadline_seconds = self._deadline.seconds()
        try:
            collected = collect_split(
                plan.shares,
                submit,
                code,
                arrivals=self._transport.arrivals(),
                deadline=time.monotonic() + deadline_seconds,
                check_interval=self.check_interval,
                gone=self._gone,
            )
        except BaseException:
            self._release({}, submission, everywhere=usable)
            raise
        collected_at = time.perf_counter()
        pending = {f: w for f, (w, _) in collected.pending.items()}
        self._membership.suspect([self._addresses[w] for w in collected.timed_out])
        self._report_errors(collected.errors)
        used = [reply for replies in collected.covered.values() for reply in replies]
        if len(collected.covered) < len(plan.shares):
            self._release(pending, submission)
            self._warn(
                f"a split round could not cover every share "
                f"({_split_reasons(collected)}); running round {iteration} coded"
            )
            raise _SplitIncomplete
        planned_rows = sum(share.rows for share in plan.shares.values())
        used_rows = sum(reply.rows for reply in used)
        if used_rows != planned_rows:
            # Never sum a gradient whose rows were not each counted once.
            self._release(pending, submission)
            self._warn(
                f"a split round's replies cover {used_rows} rows "
                f"instead of {planned_rows}; running round {iteration} coded"
            )
            raise _SplitIncomplete
        collected_cpu = time.thread_time()
        vector = np.sum([reply.message for reply in used], axis=0)
        decoded, decoded_cpu = time.perf_counter(), time.thread_time()
        self._release(pending, submission)
        self._deadline.observe(collected_at - submit_start)
        self.policy.observe(
            self._split_timing(plan, collected, collected_at - submit_start)
        )
        for worker in collected.arrived:
            self._membership.forgive(self._addresses[worker])
        responders = tuple(
            sorted({w for workers in collected.computed_by.values() for w in workers})
        )
        late = {o for o, workers in collected.computed_by.items() if workers != (o,)}
        failed = collected.failed | (set(range(code.n_workers)) - set(usable))
        compute: dict[int, float] = {}
        injected: dict[int, float] = {}
        for worker, _, reply in collected.replies:
            compute[worker] = compute.get(worker, 0.0) + reply.compute_seconds
            injected[worker] = injected.get(worker, 0.0) + reply.injected_delay
        record = RoundRecord(
            iteration=iteration,
            loss=float(vector[0]),
            wall_seconds=decoded - start,
            submit_seconds=0.0,  # submissions interleave with the wait
            wait_seconds=collected_at - submit_start,
            decode_seconds=decoded - collected_at,
            decode_cpu_seconds=decoded_cpu - collected_cpu,
            responders=responders,
            stragglers=tuple(sorted(late - failed)),
            failed=tuple(sorted(failed)),
            errors={w: _describe(e) for w, e in collected.errors.items()},
            timed_out=(),
            deadline_seconds=deadline_seconds,
            attempts=attempt,
            bytes_received=int(sum(reply.message.nbytes for reply in used)),
            compute_seconds=compute,
            injected_delay=injected,
            exact=True,
            error_bound=0.0,
            waited_for_accuracy=False,
            scheme=code.scheme,
            n_workers=code.n_workers,
            n_stragglers=code.n_stragglers,
            comm_reduction=code.comm_reduction,
            replanned=self._replanned,
            workers=tuple(self._addresses),
            plan="split",
            response_seconds=dict(collected.own_arrival),
            backups={o: tuple(ws) for o, ws in collected.backups.items()},
        )
        self._replanned = False
        return record, vector[1:]

    def _partition_rows(self) -> np.ndarray:
        return np.diff(self.code.partition_bounds(self.n_samples))

    def _physical_ids(self) -> list[int]:
        return [self._physical[a] for a in self._addresses]

    def _coded_timing(
        self, collected: Collected, usable: list[int], wall: float
    ) -> RoundTiming:
        if isinstance(self.policy, StaticPolicy):
            return RoundTiming("coded", wall, {})  # nothing to learn
        rows = self._partition_rows()
        tasks = {}
        for worker in usable:
            reply = collected.replies.get(worker)
            tasks[self._physical[self._addresses[worker]]] = TaskTiming(
                rows=int(sum(rows[j] for j in self.code.partitions(worker))),
                work_seconds=_work(reply),
                arrival=collected.arrived.get(worker),
            )
        return RoundTiming("coded", wall, tasks)

    def _split_timing(
        self, plan: Plan, collected: CollectedSplit, wall: float
    ) -> RoundTiming:
        own = {w: r for w, o, r in collected.replies if w == o}
        tasks = {
            self._physical[self._addresses[worker]]: TaskTiming(
                rows=share.rows,
                work_seconds=_work(own.get(worker)),
                arrival=collected.own_arrival.get(worker),
            )
            for worker, share in plan.shares.items()
        }
        return RoundTiming("split", wall, tasks)

    def _judge(self, collected: Collected, usable: list[int], deadline: float) -> None:
        """Decide whether what came back can be decoded; raise what cannot."""
        code = self.code
        decodable = bool(collected.replies) and code.is_decodable(collected.replies)
        if collected.errors and not decodable and not self._approximate:
            _raise_if_the_data_is_at_fault(code, collected, usable)
        self._report_errors(collected.errors)
        if not collected.replies:
            if collected.errors and not collected.lost and not collected.timed_out:
                # Every worker that answered raised: a bug in the loss or the
                # data, not a failure to plan around.
                first = next(iter(collected.errors.values()))
                raise first
            raise _Failure(
                f"no worker answered round {self._iteration} within {deadline:.3g} s",
                collected.failed,
            )
        if self._approximate or decodable:
            return
        reasons = []
        if collected.lost:
            reasons.append(f"workers {sorted(collected.lost)} died")
        if collected.timed_out:
            reasons.append(
                f"workers {sorted(collected.timed_out)} did not answer within "
                f"{deadline:.3g} s"
            )
        if collected.errors:
            reasons.append(f"workers {sorted(collected.errors)} raised")
        raise _Failure(
            f"{'; '.join(reasons) or 'too few workers answered'} in round "
            f"{self._iteration}, and the {code.scheme} code tolerates "
            f"{code.n_stragglers}",
            collected.failed,
        )

    def _report_errors(self, errors: dict[int, BaseException]) -> None:
        """Warn about each raising worker; strike it (dropped after MAX_STRIKES)."""
        for worker, error in errors.items():
            address = self._addresses[worker]
            dropped = self._membership.strike(address)
            self._warn(
                f"worker {worker} ({address}) raised {_describe(error)}; "
                + (
                    f"dropped after {self._membership.strikes[address]} failing "
                    "rounds in a row"
                    if dropped
                    else "the round is computed without it"
                ),
                WorkerErrorWarning,
            )

    def _gone(self, pending: set[int]) -> set[int]:
        """Pending code workers whose workers the scheduler no longer lists."""
        live = self._membership.live()
        return {w for w in pending if self._addresses[w] not in live}

    def _task_args(
        self, worker: int, weights_arg: Any, iteration: int, submission: int
    ) -> tuple:
        """The arguments after the shard every round task of ``worker`` starts with."""
        return (
            weights_arg,
            self.objective,
            iteration,
            submission,
            self._physical[self._addresses[worker]],
            self.planned_workers,
            self.straggler_model,
            self.bandwidth,
            self._token,
        )

    def _ship_weights(self, weights: np.ndarray, usable: list[int]) -> Any:
        if weights.nbytes <= EMBED_WEIGHTS_MAX_BYTES or self.transport == "direct":
            # Direct calls carry the weights client-to-worker already.
            return weights
        try:
            return self.client.sync(
                self.client._scatter,
                weights,
                workers=[self._addresses[w] for w in usable],
                broadcast=True,
                hash=False,
                callback_timeout=PLACEMENT_TIMEOUT,
            )
        except (OSError, TimeoutError):
            # A worker hung during the broadcast: send the weights inside the
            # tasks this round (slower, but bounded by the round's deadline).
            return weights

    def _release(
        self,
        pending: dict[Any, int],
        submission: int,
        everywhere: Sequence[int] = (),
    ) -> None:
        """Drop unfinished tasks and end their injected delays, off the hot path.

        ``everywhere``: code workers to wake up even without a known pending
        task (a round interrupted while it was submitting).
        """
        if not (pending or everywhere) or self._background is None:
            return
        handles = list(pending)
        addresses = sorted(
            {self._addresses[w] for w in [*pending.values(), *everywhere]}
        )
        wake = None if self._no_injected_delay else (self._token, submission)
        transport = self._transport
        if not transport.releases_in_background:
            transport.release(handles, addresses, wake)  # does not block
            return
        self._background.submit(transport.release, handles, addresses, wake)

    # ------------------------------------------------------------- failures
    def _adapt(self, reason: str, bad: set[int]) -> None:
        """Re-plan on the responsive workers, or switch to approximate decoding."""
        self._membership.refresh(force=True)
        keep = [
            address
            for worker, address in enumerate(self._addresses)
            if worker not in bad and self._membership.responsive(address)
        ]
        if self.on_failure == "approximate" and keep and not self._approximate:
            self._warn(
                f"{reason}; decoding approximately from the live workers from "
                "now on (on_failure='approximate')"
            )
            self._approximate = True
            return
        others = [a for a in self._membership.usable() if a not in self._addresses]
        addresses = (keep + others)[: self.planned_workers]
        if not addresses:
            raise NoWorkersError(
                f"{reason}, and no responsive worker is left; the round's weights "
                "are untouched"
            )
        self._replan(addresses, reason)

    def _replan(self, addresses: list[str], reason: str) -> None:
        self.code = replan_code(self.code, len(addresses))
        self._warn(
            f"{reason}; re-planned on {len(addresses)} workers with {self.code!r} "
            f"and placed the data again (on_failure={self.on_failure!r})"
        )
        old = self._shards
        self._place(addresses)
        self._approximate = False
        self._replanned = True
        if old:
            try:
                self.client.cancel(old)
            except Exception:  # best effort; they die with the run
                logger.debug("cancelling old shards failed", exc_info=True)

    def _maintain(self) -> None:
        """Between rounds: drop failing workers, take in workers that joined.

        A worker whose task kept raising is planned out of the code; while
        fewer code workers are responsive than the code was planned for (dead,
        hung, or the code shrank) or the run is in approximate mode, workers
        that joined the cluster or resumed heartbeating are planned in, up to
        the planned size.
        """
        self._membership.refresh()
        dropped = [a for a in self._addresses if a in self._membership.dropped]
        keep = [a for a in self._addresses if self._membership.responsive(a)]
        short = len(keep) < self.planned_workers
        if not (dropped or short or self._approximate):
            return
        joined = [a for a in self._membership.usable() if a not in self._addresses]
        addresses = (keep + joined)[: self.planned_workers]
        if not addresses or (not dropped and len(addresses) <= len(keep)):
            return
        changes = []
        if dropped:
            changes.append(f"workers {dropped} kept failing")
        if len(addresses) > len(keep):
            changes.append(f"workers {addresses[len(keep) :]} joined the cluster")
        self._replan(addresses, "; ".join(changes))

    def _warn(
        self, message: str, category: type[Warning] = WorkerFailureWarning
    ) -> None:
        logger.info(message)
        warnings.warn(message, category, stacklevel=4)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _work(reply: Reply | None) -> float:
    return 0.0 if reply is None else reply.compute_seconds + reply.injected_delay


def _split_reasons(collected: CollectedSplit) -> str:
    reasons = []
    if collected.lost:
        reasons.append(f"workers {sorted(collected.lost)} died")
    if collected.timed_out:
        reasons.append(f"workers {sorted(collected.timed_out)} timed out")
    if collected.errors:
        reasons.append(f"workers {sorted(collected.errors)} raised")
    return "; ".join(reasons) or "no backup holder was free"


def _raise_if_the_data_is_at_fault(
    code: GradientCode, collected: Collected, usable: list[int]
) -> None:
    """Raise the error every holder of one partition raised alike.

    Independent failures (out of memory on one node) are erasures to plan
    around; the same error from every worker holding a partition is that
    partition's data or the loss failing, which no re-plan can fix.
    """
    holders: dict[int, list[int]] = {}
    for worker in usable:
        for partition in code.partitions(worker):
            holders.setdefault(partition, []).append(worker)
    for workers in holders.values():
        errors = [collected.errors.get(w) for w in workers]
        if (
            all(e is not None for e in errors)
            and len({_describe(e) for e in errors}) == 1
        ):
            raise errors[0]
