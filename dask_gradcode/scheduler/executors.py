"""Round executors: submit a round's requests, collect, decode, record.

:class:`CodedRound` runs the static code's round (every usable worker sends
its coded message; decode from the first decodable set); :class:`SplitRound`
runs a split plan (every row once, late shares backed up).  Both use the
parts of a run in :class:`RoundParts` and release what a round no longer
needs through :class:`Releaser`, off the round's path.  Whether a round can
be decoded is judged by :mod:`~dask_gradcode.scheduler.judging`; what the
policy learns by :mod:`~dask_gradcode.scheduler.feedback`.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from distributed import Client

from dask_gradcode.codes._sparse import as_dense
from dask_gradcode.codes.integrity import Consistency, check_replies
from dask_gradcode.scheduler.auditing import Auditor
from dask_gradcode.scheduler.clients import CLOSE_WAIT, bounded_run
from dask_gradcode.scheduler.control import SchedulerStalled
from dask_gradcode.scheduler.feedback import coded_timing, split_timing
from dask_gradcode.scheduler.judging import (
    SplitIncomplete,
    data_fault,
    describe,
    judge_coded,
    split_shortfall,
)
from dask_gradcode.scheduler.layout import Layout
from dask_gradcode.scheduler.membership import Membership, RoundDeadline
from dask_gradcode.scheduler.naming import name_workers
from dask_gradcode.scheduler.plans import Plan, Policy, Share
from dask_gradcode.scheduler.protocol import Batch, RoundRequest
from dask_gradcode.scheduler.records import (
    RoundRecord,
    WorkerErrorWarning,
    WorkerFailureWarning,
    warn_caller,
)
from dask_gradcode.scheduler.rounds import (
    Collected,
    CollectedSplit,
    collect,
    collect_spares,
    collect_split,
)
from dask_gradcode.scheduler.transports import Transport
from dask_gradcode.scheduler.worker import forget_run

__all__ = [
    "FULL_CHECK_GRACE",
    "SPARE_GRACE",
    "VERIFY_EVERY",
    "CodedRound",
    "Releaser",
    "RoundInput",
    "RoundParts",
    "SplitRound",
]

#: Once a coded round can decode, it still takes the replies already in,
#: and those that arrive within this fraction of its wait so far, to check
#: them against each other.  0: only those already in (waiting for more
#: would cost every round its share).
SPARE_GRACE = 0.0

#: Every this many rounds (and in the first), a coded round waits up to
#: ``FULL_CHECK_GRACE`` times its wait so far for its spare replies, so that
#: a wrong worker is caught within this many rounds even when no other
#: round's spares were in when it decoded.  Without stragglers the spares
#: come a moment after the decodable set; with one, the wait costs at most
#: ``FULL_CHECK_GRACE / VERIFY_EVERY`` of a round on average.
VERIFY_EVERY = 10
FULL_CHECK_GRACE = 1.0


class Releaser:
    """Drops a round's unfinished calls: their workers stop computing them.

    A transport whose release blocks (the futures transport's cancels and
    wake-ups go through the scheduler) releases in a background thread, so
    a hung worker never holds up the next round.
    """

    def __init__(self, client: Client, transport: Transport, token: str):
        self.client = client
        self.transport = transport
        self.token = token
        self._background: ThreadPoolExecutor | None = None

    @property
    def started(self) -> bool:
        """Whether the run is open (between :meth:`start` and :meth:`close`)."""
        return self._background is not None

    def start(self) -> None:
        """Open the background thread."""
        self._background = ThreadPoolExecutor(1, thread_name_prefix="gradcode-wake")

    def release(
        self,
        pending: dict[Any, int],
        submission: int,
        addresses: Sequence[str],
        everywhere: Sequence[int] = (),
    ) -> None:
        """Release ``pending`` (handle -> code worker) of ``submission``.

        ``everywhere``: code workers to wake up even without a known pending
        call (a round interrupted while it was submitting).
        """
        if not (pending or everywhere) or self._background is None:
            return
        handles = list(pending)
        targets = sorted({addresses[w] for w in [*pending.values(), *everywhere]})
        # A late worker stops computing a round that is over (and ends its
        # injected delays), so a straggler never falls behind.
        over = (self.token, submission)
        if not self.transport.releases_in_background:
            self.transport.release(handles, targets, over)  # does not block
            return
        self._background.submit(self.transport.release, handles, targets, over)

    def close(self, addresses: Sequence[str] = ()) -> None:
        """Forget the run on ``addresses`` (its workers) and stop the thread.

        Waits for the forget at most ``clients.CLOSE_WAIT`` seconds, never for
        a hung worker: the wake-ups still queued and the forget run in the
        background thread, each bounded by a timeout.  The wait lets the
        workers end their sleeps before the caller releases their actors
        and shards (and, often, closes the cluster, whose workers would
        otherwise be killed mid-sleep and the forget logged as failed).
        """
        background, self._background = self._background, None
        if background is None:
            return
        forgotten = None
        if self.client.status == "running":
            forgotten = background.submit(
                bounded_run,
                self.client,
                forget_run,
                self.token,
                workers=list(addresses) or None,
                timeout=CLOSE_WAIT,
            )
        background.shutdown(wait=False)
        if forgotten is not None:
            with contextlib.suppress(Exception):
                forgotten.result(timeout=CLOSE_WAIT)


@dataclass
class RoundParts:
    """The parts of a run that every round uses."""

    layout: Layout
    transport: Transport
    membership: Membership
    deadline: RoundDeadline
    policy: Policy
    releaser: Releaser
    check_interval: float
    dim: int
    verify: bool = True
    audit_every: int | None = None
    submissions: Iterator[int] = field(default_factory=itertools.count)

    def report_errors(self, errors: dict[int, BaseException]) -> None:
        """Warn about each raising worker; strike it (dropped after MAX_STRIKES)."""
        for worker, error in errors.items():
            address = self.layout.addresses[worker]
            dropped = self.membership.strike(address)
            warn_caller(
                f"{name_workers([worker], self.layout.addresses)} raised "
                f"{describe(error)}; "
                + (
                    f"dropped after {self.membership.strikes[address]} failing "
                    "rounds in a row"
                    if dropped
                    else "the round is computed without it"
                ),
                WorkerErrorWarning,
            )

    def release(
        self, pending: dict[Any, int], submission: int, everywhere: Sequence[int] = ()
    ) -> None:
        """Release a round's unfinished calls (see :meth:`Releaser.release`)."""
        self.releaser.release(pending, submission, self.layout.addresses, everywhere)

    def submit_all(
        self, request: RoundRequest, round_input: RoundInput
    ) -> tuple[Any, dict[Any, int]]:
        """``request`` to every usable worker: the arrivals and each call's worker."""
        arrivals = self.transport.arrivals()
        handles = {}
        for worker in round_input.usable:
            handle = self.transport.submit(worker, request, round_input.weights)
            arrivals.add(handle)
            handles[handle] = worker
        return arrivals, handles

    def suspect_late(self, timed_out: set[int]) -> None:
        """Suspect the workers that missed the deadline, unless the scheduler did.

        Rounds through the scheduler all miss their deadline when it stalls:
        if it does not answer now either, it is the suspect
        (:class:`~.control.SchedulerStalled`), not the workers.
        """
        if not timed_out:
            return
        if self.transport.through_scheduler:
            self.membership.refresh(force=True)
            if self.membership.scheduler_silent:
                raise SchedulerStalled(
                    f"{name_workers(timed_out, self.layout.addresses)} missed the "
                    "round's deadline while the scheduler did not answer either"
                )
        self.membership.suspect([self.layout.addresses[w] for w in timed_out])


@dataclass(frozen=True)
class RoundInput:
    """One attempt of a round, as the façade starts it."""

    iteration: int
    attempt: int
    started: float  # perf_counter() when the call began (all attempts)
    submitted: float  # perf_counter() when this attempt began shipping weights
    usable: list[int]
    weights: Any  # as the transport ships them
    batch: Batch | None
    values: np.ndarray | None = None  # the weights themselves (audits)
    smoothing: float = 0.0  # of the loss's kinks (RoundRequest.smoothing)


def _record(parts: RoundParts, round_input: RoundInput, **fields: Any) -> RoundRecord:
    """The round's record; the layout's re-plan is reported once."""
    code = parts.layout.code
    record = RoundRecord(
        iteration=round_input.iteration,
        attempts=round_input.attempt,
        scheme=code.scheme,
        n_workers=code.n_workers,
        n_stragglers=code.n_stragglers,
        comm_reduction=code.comm_reduction,
        replanned=parts.layout.replanned,
        workers=tuple(parts.layout.addresses),
        **fields,
    )
    parts.layout.replanned = False
    return record


class CodedRound:
    """The static code's round: decode from the first decodable replies."""

    def __init__(self, parts: RoundParts) -> None:
        self.parts = parts
        self.auditor = Auditor(parts)

    def run(
        self, round_input: RoundInput, *, approximate: bool
    ) -> tuple[RoundRecord, np.ndarray]:
        """Submit, collect, judge, decode; raises ``RoundFailure`` when it cannot."""
        parts, code = self.parts, self.parts.layout.code
        submission = next(parts.submissions)
        checking = parts.verify and not approximate and code.n_stragglers > 0
        collected, times = self._collect(round_input, submission, approximate, checking)
        try:
            self._judge(collected, round_input, times.deadline, approximate)
        except BaseException:
            parts.release(collected.pending, submission)
            raise
        messages = {w: reply.message for w, reply in collected.replies.items()}
        times.collected_cpu = time.thread_time()
        try:
            vector, decoder = code.decode(
                messages, 1 + parts.dim, approximate=approximate, return_info=True
            )
            consistency = check_replies(code, messages) if checking else None
        finally:
            times.decoded, times.decoded_cpu = time.perf_counter(), time.thread_time()
            # After decoding, so the cancel and wake-up RPCs do not compete
            # with the decode for the client's CPU.
            parts.release(collected.pending, submission)
        disagreed = consistency is not None and not _agreed(consistency)
        if disagreed and consistency is not None:
            self.auditor.audit(round_input, messages, consistency)
        elif self._spot_check_due(round_input, approximate, consistency):
            used = {w: messages[w] for w in decoder.responders}
            self.auditor.spot_check(round_input, used, round_input.values)
        if not approximate:
            parts.deadline.observe(times.collected - times.submitted)
            parts.policy.observe(
                coded_timing(
                    parts.policy,
                    code,
                    collected,
                    round_input.usable,
                    parts.layout.partition_rows(),
                    parts.layout.physical_ids(),
                    times.collected - round_input.submitted,
                )
            )
        for worker in collected.replies:
            parts.membership.forgive(parts.layout.addresses[worker])
        record = _coded_record(
            parts,
            round_input,
            collected,
            messages,
            times,
            decoder,
            consistency,
            loss=float(vector[0]),
            exact=decoder.exact and not disagreed,
        )
        return record, vector[1:]

    def _collect(
        self,
        round_input: RoundInput,
        submission: int,
        approximate: bool,
        checking: bool,
    ) -> tuple[Collected, _Times]:
        """Submit to every usable worker; collect until decodable, then the spares."""
        parts, code = self.parts, self.parts.layout.code
        request = RoundRequest(
            round_input.iteration,
            submission,
            round_input.batch,
            smoothing=round_input.smoothing,
        )
        arrivals, handles = parts.submit_all(request, round_input)
        times = _Times(submitted=time.perf_counter(), deadline=parts.deadline.seconds())
        try:
            collected = collect(
                handles,
                code,
                arrivals=arrivals,
                deadline=time.monotonic() + times.deadline,
                check_interval=parts.check_interval,
                approximate=approximate,
                gone=parts.layout.gone,
                started=time.monotonic() - (times.submitted - round_input.submitted),
            )
        except BaseException:
            parts.release(dict(handles), submission)
            raise
        times.collected = time.perf_counter()
        if checking and collected.pending:
            full = round_input.iteration % VERIFY_EVERY == 0
            grace = FULL_CHECK_GRACE if full else SPARE_GRACE
            waited = times.collected - times.submitted
            collect_spares(
                collected,
                arrivals=arrivals,
                until=time.monotonic() + grace * waited,
                started=time.monotonic() - (times.collected - round_input.submitted),
            )
        return collected, times

    def _spot_check_due(
        self,
        round_input: RoundInput,
        approximate: bool,
        consistency: Consistency | None,
    ) -> bool:
        """Whether this round's periodic audit (``audit_every``) runs."""
        every = self.parts.audit_every
        return bool(
            every
            and round_input.values is not None
            and round_input.batch is None
            and not approximate
            and not (consistency is not None and consistency.verified)
            and (round_input.iteration + 1) % every == 0
        )

    def _judge(
        self,
        collected: Collected,
        round_input: RoundInput,
        deadline: float,
        approximate: bool,
    ) -> None:
        """Suspect the late, raise the data's own error, report errors, judge."""
        parts, code = self.parts, self.parts.layout.code
        parts.suspect_late(collected.timed_out)
        if (
            collected.errors
            and not approximate
            and not (collected.replies and code.is_decodable(collected.replies))
        ):
            error = data_fault(code, collected, round_input.usable)
            if error is not None:
                raise error
        parts.report_errors(collected.errors)
        judge_coded(
            collected,
            code,
            iteration=round_input.iteration,
            deadline=deadline,
            approximate=approximate,
            addresses=parts.layout.addresses,
        )


@dataclass
class _Times:
    """When a coded round's stages ended (``perf_counter`` and thread CPU)."""

    submitted: float
    deadline: float  # seconds the round waited under
    collected: float = 0.0
    collected_cpu: float = 0.0
    decoded: float = 0.0
    decoded_cpu: float = 0.0


def _coded_record(
    parts: RoundParts,
    round_input: RoundInput,
    collected: Collected,
    messages: dict[int, Any],
    times: _Times,
    decoder: Any,
    consistency: Consistency | None,
    *,
    loss: float,
    exact: bool,
) -> RoundRecord:
    """A coded round's record (``messages``: every reply's, by worker)."""
    code = parts.layout.code
    replies = collected.replies
    failed = collected.failed | (set(range(code.n_workers)) - set(round_input.usable))
    return _record(
        parts,
        round_input,
        loss=loss,
        wall_seconds=times.decoded - round_input.started,
        submit_seconds=times.submitted - round_input.submitted,
        wait_seconds=times.collected - times.submitted,
        decode_seconds=times.decoded - times.collected,
        decode_cpu_seconds=times.decoded_cpu - times.collected_cpu,
        responders=decoder.responders,
        stragglers=tuple(sorted(set(round_input.usable) - set(replies) - failed)),
        failed=tuple(sorted(failed)),
        errors={w: describe(e) for w, e in collected.errors.items()},
        timed_out=tuple(sorted(collected.timed_out)),
        deadline_seconds=times.deadline,
        bytes_received=int(sum(messages[w].nbytes for w in decoder.responders)),
        compute_seconds={w: r.compute_seconds for w, r in replies.items()},
        injected_delay={w: r.injected_delay for w, r in replies.items()},
        work_seconds={
            w: r.compute_seconds + r.emulated_seconds for w, r in replies.items()
        },
        exact=exact,
        error_bound=decoder.error_bound,
        waited_for_accuracy=collected.waited_for_accuracy,
        plan="coded",
        response_seconds=dict(collected.arrived),
        verified=consistency is not None and consistency.verified,
        discrepancy=0.0 if consistency is None else consistency.discrepancy,
        checked_replies=tuple(sorted(messages)) if consistency else (),
    )


def _agreed(consistency: Consistency) -> bool:
    """Checked and agreed, or nothing to check: only a disagreement is audited."""
    return consistency.verified or not consistency.checked


class SplitRound:
    """A split plan's round: every row once, shares by speed, late ones backed up."""

    def __init__(self, parts: RoundParts) -> None:
        self.parts = parts

    def run(
        self, round_input: RoundInput, plan: Plan
    ) -> tuple[RoundRecord, np.ndarray]:
        """Run ``plan``; raises :class:`SplitIncomplete` when a row is missing."""
        parts, code = self.parts, self.parts.layout.code
        submission = next(parts.submissions)

        def submit(worker: int, share: Share) -> Any:
            request = RoundRequest(
                round_input.iteration,
                submission,
                round_input.batch,
                share.slices,
                smoothing=round_input.smoothing,
            )
            return parts.transport.submit(worker, request, round_input.weights)

        deadline_seconds = parts.deadline.seconds()
        try:
            collected = collect_split(
                plan.shares,
                submit,
                code,
                arrivals=parts.transport.arrivals(),
                deadline=time.monotonic() + deadline_seconds,
                check_interval=parts.check_interval,
                gone=parts.layout.gone,
            )
        except BaseException:
            parts.release({}, submission, everywhere=round_input.usable)
            raise
        collected_at = time.perf_counter()
        pending = {f: w for f, (w, _) in collected.pending.items()}
        try:
            parts.suspect_late(collected.timed_out)
        except SchedulerStalled:
            parts.release(pending, submission)
            raise
        parts.report_errors(collected.errors)
        shortfall = split_shortfall(collected, plan, parts.layout.addresses)
        if shortfall is not None:
            parts.release(pending, submission)
            warn_caller(
                f"{shortfall}; running round {round_input.iteration} coded",
                WorkerFailureWarning,
            )
            raise SplitIncomplete
        used = [reply for replies in collected.covered.values() for reply in replies]
        collected_cpu = time.thread_time()
        vector = np.sum([as_dense(reply.message) for reply in used], axis=0)
        decoded, decoded_cpu = time.perf_counter(), time.thread_time()
        parts.release(pending, submission)
        wall = collected_at - round_input.submitted
        parts.deadline.observe(wall)
        parts.policy.observe(
            split_timing(plan, collected, parts.layout.physical_ids(), wall)
        )
        for worker in collected.arrived:
            parts.membership.forgive(parts.layout.addresses[worker])
        record = _record(
            parts,
            round_input,
            loss=float(vector[0]),
            wall_seconds=decoded - round_input.started,
            submit_seconds=0.0,  # submissions interleave with the wait
            wait_seconds=wall,
            decode_seconds=decoded - collected_at,
            decode_cpu_seconds=decoded_cpu - collected_cpu,
            bytes_received=int(sum(reply.message.nbytes for reply in used)),
            **_split_fields(collected, round_input.usable, code.n_workers),
            deadline_seconds=deadline_seconds,
            exact=True,
            error_bound=0.0,
            waited_for_accuracy=False,
            plan="split",
        )
        return record, vector[1:]


def _split_fields(
    collected: CollectedSplit, usable: Sequence[int], n_workers: int
) -> dict[str, Any]:
    """Who computed a split round, who was late or failed, and their timings."""
    responders = tuple(
        sorted({w for workers in collected.computed_by.values() for w in workers})
    )
    late = {o for o, workers in collected.computed_by.items() if workers != (o,)}
    failed = collected.failed | (set(range(n_workers)) - set(usable))
    compute: dict[int, float] = {}
    injected: dict[int, float] = {}
    work: dict[int, float] = {}
    for worker, _, reply in collected.replies:
        compute[worker] = compute.get(worker, 0.0) + reply.compute_seconds
        injected[worker] = injected.get(worker, 0.0) + reply.injected_delay
        work[worker] = (
            work.get(worker, 0.0) + reply.compute_seconds + reply.emulated_seconds
        )
    return {
        "responders": responders,
        "stragglers": tuple(sorted(late - failed)),
        "failed": tuple(sorted(failed)),
        "errors": {w: describe(e) for w, e in collected.errors.items()},
        "timed_out": (),
        "compute_seconds": compute,
        "injected_delay": injected,
        "work_seconds": work,
        "response_seconds": dict(collected.own_arrival),
        "backups": {o: tuple(ws) for o, ws in collected.backups.items()},
    }
