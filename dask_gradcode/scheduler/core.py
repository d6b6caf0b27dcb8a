"""``CodedGradient``: the façade a fit talks to.

It checks the settings (:mod:`~.settings`), opens and closes the run, and
runs each call's attempt loop: keep the layout up to date (:mod:`~.layout`,
deciding with :mod:`~.judging`), start a round (the policy's plan,
:mod:`~.plans`), let an executor run it (:mod:`~.executors`: submit through
the transport, collect, judge, decode) and, when the workers that are left
cannot decode, re-plan the code over the responsive workers (or, with
``on_failure="approximate"``, decode approximately) and submit the round
again at the same weights.  ``docs/architecture.md`` shows how a round flows.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import numpy as np
from distributed import Client

from dask_gradcode.autocode import AutoCode, CodeChoice
from dask_gradcode.codes import GradientCode
from dask_gradcode.objectives import Objective
from dask_gradcode.scheduler.auditing import WrongWorkers
from dask_gradcode.scheduler.autocoding import AutoCoding
from dask_gradcode.scheduler.clients import n_cluster_workers
from dask_gradcode.scheduler.control import SchedulerStalled, SchedulerWatch
from dask_gradcode.scheduler.executors import (
    CodedRound,
    Releaser,
    RoundInput,
    RoundParts,
    SplitRound,
)
from dask_gradcode.scheduler.judging import (
    RoundFailure,
    SplitIncomplete,
    failure_addresses,
    growth,
    tolerated_note,
)
from dask_gradcode.scheduler.layout import MAX_ATTEMPTS, Layout
from dask_gradcode.scheduler.membership import Membership, RoundDeadline
from dask_gradcode.scheduler.naming import name_workers
from dask_gradcode.scheduler.placement import check_data, resolve_objective
from dask_gradcode.scheduler.plans import Plan, Policy, make_policy
from dask_gradcode.scheduler.protocol import Batch, RoundContext
from dask_gradcode.scheduler.records import (
    NoWorkersError,
    RoundRecord,
    ToleratedFailureWarning,
    WorkerFailureWarning,
    warn_caller,
)
from dask_gradcode.scheduler.settings import RunSettings, check_batch, check_weights
from dask_gradcode.scheduler.transports import check_transport, make_transport
from dask_gradcode.stragglers import Bandwidth

__all__ = ["CodedGradient"]


class CodedGradient:
    r"""Full ``(loss, gradient)`` of a linear-model loss by coded computation.

    Use it as a context manager: entering places the data on the workers,
    leaving releases it.  Each call ``cg(w)`` runs one coded round and returns
    ``(loss, gradient)`` **summed over all rows**; ``cg.history`` gets one
    :class:`RoundRecord` per round, and ``cg.faults_found`` counts the times
    an audit found workers wrong and dropped them.

    Parameters
    ----------
    client : distributed.Client
        The cluster to run on; it needs at least ``code.n_workers`` workers.
    code : GradientCode or AutoCode
        Which worker holds which partition and how they encode.  An
        :class:`~dask_gradcode.autocode.AutoCode` (what the estimators'
        ``n_stragglers="auto"`` passes) starts uncoded, measures each
        worker's round times, and grows a code of its scheme in the
        background when the measurements predict that it pays
        (:mod:`~dask_gradcode.scheduler.autocoding`; :attr:`code_choice`
        says what was decided and why).  The embedded in-process cluster
        never codes this way.
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
    fault_model : object with a ``corrupt`` method, optional
        Injected wrong results, e.g.
        :class:`~dask_gradcode.faults.WrongResults`: the workers it names
        compute wrong partial gradients, for testing the integrity checks.
    verify : bool, default=True
        Check each coded round's spare replies against the decoded ones and
        audit a disagreement (see Notes); False skips both (every round is
        then unverified).
    audit_every : int, optional
        Off by default.  Every ``audit_every`` th coded round that no spare
        reply verified (every uncoded round, for one), the client recomputes
        one responder's message from the caller's rows (the responders take
        turns) and drops that worker if it differs: detection for plans with
        no redundancy, at the cost of the client computing ``1 / n`` of the
        data every ``audit_every`` rounds.  NumPy, SciPy and pandas input
        only (the client does not hold dask input's rows); rounds of a
        mini-batch are not audited.

    Notes
    -----
    **Integrity.** A coded round takes, besides the first decodable replies,
    those already in when it can decode (in the first round and every
    :data:`~.executors.VERIFY_EVERY` th, 10, it waits up to as long again
    as its wait for them), and checks that they agree (every decodable
    subset gives the same sum:
    :func:`~dask_gradcode.codes.integrity.check_replies`); ``verified`` in
    its record says so.  When they disagree, an audit round asks every
    worker for its partitions' partial gradients unencoded, names the
    workers that differ from their partitions' other holders, drops them
    (an :class:`IntegrityWarning` names their addresses) and computes the
    round again without them.  Where two holders of a partition disagree
    with no third opinion, both are dropped.  Rounds without spare replies
    (uncoded codes, split rounds, a straggler using up the code's
    tolerance, spares that came too late) are unverified: a wrong worker's
    message may be decoded there before a checked round catches it.  A
    solver given ``invalidations=lambda: cg.faults_found``
    (:func:`~dask_gradcode.solvers.minimize`; the estimators pass it) then
    forgets the values it saw and goes on from its current point.

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
        code: GradientCode | AutoCode,
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
        policy: str | Policy = "static",
        transport: Literal["direct", "futures"] | None = None,
        fault_model: Any = None,
        verify: bool = True,
        audit_every: int | None = None,
    ) -> None:
        self.transport = check_transport(transport)
        self.settings = RunSettings.check(
            straggler_model=straggler_model,
            bandwidth=bandwidth,
            on_failure=on_failure,
            round_timeout=round_timeout,
            check_interval=check_interval,
            stale_after=stale_after,
            fit_intercept=fit_intercept,
            fault_model=fault_model,
            verify=verify,
            audit_every=audit_every,
        )
        self.client = client
        self.policy = make_policy(policy)
        self.history: list[RoundRecord] = []
        self.faults_found = 0
        self._noted: set[str] = set()  # workers whose tolerated failure was said
        data = check_data(X, y, sample_weight)
        self.objective = resolve_objective(loss, data[1])
        self.n_samples = int(data[0].shape[0])
        self.n_features = int(data[0].shape[1])
        self.dim = self.objective.n_coef(self.n_features + self.settings.fit_intercept)
        self._auto: AutoCoding | None = None
        if isinstance(code, AutoCode):
            self._auto = AutoCoding(code, client, self.n_samples, self.dim)
            n_workers = code.n_workers or n_cluster_workers(client)
            code = code.uncoded(n_workers, "n_stragglers='auto': not placed yet")
        self._token = uuid.uuid4().hex[:12]
        self._transport = make_transport(self.transport, client)
        self._membership = Membership(
            client, self.settings.check_interval, self.settings.stale_after
        )
        self._watch = SchedulerWatch(client, self._membership)
        context = RoundContext(
            self.objective,
            self._token,
            worker_id=-1,  # each worker's is set when it is placed
            n_workers=code.n_workers,
            straggler_model=self.settings.straggler_model,
            bandwidth=self.settings.bandwidth,
            fault_model=self.settings.fault_model,
        )
        self._layout = Layout(
            client,
            code,
            data,
            transport=self._transport,
            membership=self._membership,
            context=context,
            fit_intercept=self.settings.fit_intercept,
            warn=self._warn,
        )
        self._releaser = Releaser(client, self._transport, self._token)
        parts = RoundParts(
            layout=self._layout,
            transport=self._transport,
            membership=self._membership,
            deadline=RoundDeadline(self.settings.round_timeout),
            policy=self.policy,
            releaser=self._releaser,
            check_interval=self.settings.check_interval,
            dim=self.dim,
            verify=self.settings.verify,
            audit_every=self.settings.audit_every,
        )
        self._coded = CodedRound(parts)
        self._split = SplitRound(parts)
        self._iteration = 0
        self._approximate = False

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
        self._releaser.start()
        chosen = available[: self.code.n_workers]
        try:
            if self._auto is not None:
                self._layout.code = self._auto.first_code(chosen)
            began = time.perf_counter()
            self._layout.place(chosen)
            if self._auto is not None:
                self._auto.placed(time.perf_counter() - began)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the placed data and the workers' bookkeeping (bounded in time)."""
        # Sleepers woken first, then actors, then the shards they refer to.
        self._releaser.close(self._layout.addresses)
        self._transport.close()
        self._layout.close()

    @property
    def code(self) -> GradientCode:
        """The code the next round runs (re-plans replace it)."""
        return self._layout.code

    @property
    def code_choice(self) -> CodeChoice | None:
        """With an ``AutoCode``: what was decided so far, and why (else None)."""
        return None if self._auto is None else self._auto.choice

    @property
    def planned_workers(self) -> int:
        """The size the code was built for; a shrunk code grows back to it."""
        return self._layout.planned_workers

    @property
    def workers(self) -> list[str]:
        """Address of each code worker, in code order."""
        return list(self._layout.addresses)

    @property
    def shards(self) -> list[Any]:
        """The placed shards' futures, in code order."""
        return list(self._layout.shards)

    @property
    def on_failure(self) -> str:
        """``"replan"`` or ``"approximate"``."""
        return self.settings.on_failure

    # --------------------------------------------------------------- rounds
    def __call__(
        self,
        w: Any,
        *,
        batch_fraction: float | None = None,
        batch_seed: int = 0,
        batch_shuffle: bool = True,
        smoothing: float = 0.0,
    ) -> tuple[float, np.ndarray]:
        """One coded round at weights ``w``: ``(loss, gradient)`` summed over rows.

        With ``batch_fraction``, each row is in the round's batch with
        probability ``batch_fraction`` (decided by a hash of its index, the
        round and ``batch_seed``, so every worker holding it agrees and any
        code sees the same batch), rescaled so the result is an unbiased
        estimate of the full sums: a coded mini-batch.  ``batch_shuffle=False``
        goes through the rows in order instead (round ``r`` takes the rows
        whose index is ``r`` modulo ``round(1 / batch_fraction)``).
        ``smoothing`` > 0 computes the loss with its kinks rounded off over
        that width (:meth:`~dask_gradcode.objectives.Objective.smoothed`;
        the quasi-Newton solvers minimise hinge-like losses this way).

        Raises
        ------
        NoWorkersError
            If no worker is left to compute with.
        SchedulerUnavailableError
            If the scheduler has not answered for ``SCHEDULER_PATIENCE`` (60 s)
            or the client's connection to it is closed (a subclass of
            ``NoWorkersError``).  Shorter stalls cost the direct transport's
            rounds nothing; the futures transport's rounds wait for the
            scheduler and go on.
        """
        if not self._releaser.started:
            raise RuntimeError(
                "use CodedGradient as a context manager: with ... as cg:"
            )
        weights = check_weights(w, self.dim)
        batch = check_batch(batch_fraction, batch_seed, batch_shuffle)
        if not smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        start = time.perf_counter()
        planned = True
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._watch.check()
            try:
                self._maintain()
                record, gradient = self._round(
                    weights,
                    batch,
                    start,
                    attempt,
                    planned=planned,
                    smoothing=float(smoothing),
                )
            except SchedulerStalled:
                self._watch.wait()  # the same round again once it answers
                continue
            except (OSError, TimeoutError):
                if self._watch.answers():
                    raise  # not the scheduler's: the error is the caller's
                self._watch.wait()
                continue
            except SplitIncomplete:
                planned = False  # the same round again, coded
                continue
            except WrongWorkers:
                # Dropped: the same round again without them.  Rounds that
                # decoded their replies unchecked may have returned wrong
                # values; ``faults_found`` tells the solver to forget those.
                self.faults_found += 1
                continue
            except RoundFailure as failure:
                if not self._watch.answers():
                    self._watch.wait()  # the scheduler's failure, not the workers'
                    continue
                self._adapt(str(failure), failure.bad)
                continue
            self.history.append(record)
            self._note_tolerated(record)
            if self._auto is not None:
                self._auto.observe(record, self._layout)
            self._iteration += 1
            return record.loss, gradient
        raise NoWorkersError(
            f"round {self._iteration} failed {MAX_ATTEMPTS} times in a row; the "
            "cluster keeps losing workers"
        )

    def _round(
        self,
        weights: np.ndarray,
        batch: Batch | None,
        start: float,
        attempt: int,
        *,
        planned: bool = True,
        smoothing: float = 0.0,
    ) -> tuple[RoundRecord, np.ndarray]:
        """One attempt: check the usable workers, plan, ship weights, execute."""
        code = self.code
        usable = self._layout.usable()
        unusable = set(range(code.n_workers)) - set(usable)
        if not usable:
            raise RoundFailure("no code worker is responsive", unusable)
        if self._approximate and code.is_decodable(usable):
            self._approximate = False  # the live workers decode exactly again
            self._warn("the live workers decode exactly again; approximate mode ends")
        if not self._approximate and not code.is_decodable(usable):
            raise RoundFailure(
                f"{name_workers(unusable, self._layout.addresses)} are gone or "
                f"hung and the {code.scheme} code tolerates {code.n_stragglers}",
                unusable,
            )
        plan = Plan("coded")
        if planned and not self._approximate:
            plan = self.policy.plan(
                code, usable, self._layout.partition_rows(), self._layout.physical_ids()
            )
        submitted = time.perf_counter()
        addresses = [self._layout.addresses[w] for w in usable]
        round_input = RoundInput(
            iteration=self._iteration,
            attempt=attempt,
            started=start,
            submitted=submitted,
            usable=usable,
            weights=self._transport.ship_weights(weights, addresses),
            batch=batch,
            values=weights,
            smoothing=smoothing,
        )
        if plan.name == "split":
            return self._split.run(round_input, plan)
        return self._coded.run(round_input, approximate=self._approximate)

    # ------------------------------------------------------------- failures
    def _adapt(self, reason: str, bad: set[int]) -> None:
        """Re-plan on the responsive workers, or switch to approximate decoding."""
        self._membership.refresh(force=True)
        keep, addresses = failure_addresses(
            self._layout.addresses,
            bad,
            self._membership.responsive,
            self._membership.usable(),
            self.planned_workers,
        )
        if self.on_failure == "approximate" and keep and not self._approximate:
            self._warn(
                f"{reason}; decoding approximately from the live workers from "
                "now on (on_failure='approximate')"
            )
            self._approximate = True
            return
        if not addresses:
            raise NoWorkersError(
                f"{reason}, and no responsive worker is left; the round's weights "
                "are untouched"
            )
        self._replan(addresses, reason)

    def _replan(self, addresses: list[str], reason: str) -> None:
        self._layout.replan(addresses, reason, self.on_failure)
        self._approximate = False

    def _maintain(self) -> None:
        """Between rounds: drop failing workers, take in workers that joined."""
        self._membership.refresh()
        change = growth(
            self._layout.addresses,
            self._membership.dropped,
            self._membership.responsive,
            self._membership.usable(),
            self.planned_workers,
            self._approximate,
        )
        if change is not None:
            self._replan(change.addresses, change.reason)
        if self._auto is not None:
            self._auto.maintain(self._layout)

    def _note_tolerated(self, record: RoundRecord) -> None:
        """Say once per worker that the code decoded without it (died or hung).

        Raising workers have their own warning; re-plans and approximate
        decoding theirs.
        """
        if not record.exact:
            return
        failed = [
            w
            for w in record.failed
            if w not in record.errors and record.workers[w] not in self._noted
        ]
        if not failed:
            return
        self._noted.update(record.workers[w] for w in failed)
        note = tolerated_note(
            record.iteration, failed, record.timed_out, record.workers, record.scheme
        )
        self._warn(note, ToleratedFailureWarning)

    @staticmethod
    def _warn(message: str, category: type[Warning] = WorkerFailureWarning) -> None:
        warn_caller(message, category)
