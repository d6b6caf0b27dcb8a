"""Rounds on a virtual clock, through the library's own round machinery.

:func:`simulate` runs rounds of a :class:`~dask_gradcode.codes.GradientCode`
the way :class:`~dask_gradcode.scheduler.CodedGradient` runs them, with the
same objects: the policy plans each round
(:mod:`~dask_gradcode.scheduler.plans`), the collection loops of
:mod:`~dask_gradcode.scheduler.rounds` take the replies until the code says
they decode (or until every row of a split round is covered, with
speculative backups), :mod:`~dask_gradcode.scheduler.judging` judges the
round, the code decodes the workers' real encoded messages, and the policy
observes :mod:`~dask_gradcode.scheduler.feedback`'s timing.  Only the
transport is simulated: a reply arrives when a latency function (for example
a trace profile's ``round_times``) says the worker finished, on a virtual
clock that the loops read and that waiting advances.  Nothing sleeps, so
``n = 1024`` workers run on one machine, and the client's own work (plan,
bookkeeping, decode) is measured for real at that ``n``.

Every round's result is checked against the true sum of the partial
gradients: an exact decode that misses it is a library bug and raises.

Pure: no Dask (the scheduler package loads its Dask modules only when one
of their names is used).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dask_gradcode.codes import GradientCode
from dask_gradcode.codes._sparse import as_dense
from dask_gradcode.scheduler.feedback import coded_timing, split_timing
from dask_gradcode.scheduler.judging import judge_coded, split_shortfall
from dask_gradcode.scheduler.plans import Plan, Policy, Share, make_policy
from dask_gradcode.scheduler.protocol import Reply
from dask_gradcode.scheduler.rounds import collect, collect_split

__all__ = [
    "Latency",
    "SimulatedArrivals",
    "SimulatedCall",
    "SimulatedRound",
    "SimulationResult",
    "VirtualClock",
    "simulate",
]

#: ``latency(round, loads)``: each worker's seconds when worker ``w``
#: computes the fraction ``loads[w]`` of the data set in round ``round``
#: (the shape of ``TraceProfile.round_times``).
Latency = Callable[[int, np.ndarray], np.ndarray]

#: Default length of the (virtual) gradient: loss and 100 coefficients, the
#: size of the project's benchmarks; the decode's cost grows with it.
DEFAULT_DIM = 101

#: Rows per partition when ``n_samples`` is not given.
DEFAULT_PARTITION_ROWS = 1000


class VirtualClock:
    """Seconds on a virtual clock: read by calling it, moved by waiting.

    The collection loops take it as their ``clock``; only
    :class:`SimulatedArrivals` moves it.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        """The current virtual time."""
        return self.now


@dataclass(eq=False)
class SimulatedCall:
    """One task of a simulated round on one worker (the handle the loops hold).

    Attributes
    ----------
    worker : int
        The code worker that computes it.
    share : Share or None
        None for a coded task; the rows of a split task (its owner's share,
        or part of it as a backup).
    rows : int
        Rows it computes.
    duration : float
        Seconds from its start until its reply is sent, from the latency
        function.
    message : ndarray
        What the worker sends: its encoded message, or the plain sum of the
        share's rows' partial gradients.
    compute : float
        The part of ``duration`` that grows with the rows: what the worker
        reports as its computation (the rest, the latency at load 0, is the
        task's fixed cost: invocation and communication).
    submitted, started, arrival : float
        Virtual times: added to the arrivals, started computing (after the
        worker's earlier tasks of the round), reply at the client.
    """

    worker: int
    share: Share | None
    rows: int
    duration: float
    message: np.ndarray = field(repr=False)
    compute: float = math.nan
    submitted: float = math.nan
    started: float = math.nan
    arrival: float = math.nan


class SimulatedArrivals:
    """The transport side of a simulated round: what the collection loops consume.

    A task starts when it is added (``add``, as a direct call does) and its
    worker is free: a worker runs its tasks of a round one after another, so
    a backup queues behind the worker's own task.  Its reply arrives
    ``duration + overhead`` after it started.  ``wait(timeout)`` advances the
    clock to the earliest pending arrival when that is within ``timeout``
    (else by ``timeout``) and returns every reply that has arrived by then.

    A zero timeout with nothing arrived models the loop polling until the
    next reply: the clock moves to it.  (A split round's loop polls when a
    backup is due but no holder of the late rows is free yet; on a live
    cluster time passes while it polls, and nothing changes until the next
    reply.)

    Parameters
    ----------
    clock : VirtualClock
    overhead : float, default=0.0
        Seconds from a worker finishing to its reply reaching the client (the
        worker is free meanwhile).
    start : float, optional
        When every worker is free (default: the clock's time now): workers
        start each round idle, their unfinished tasks of the round before
        released.

    Attributes
    ----------
    spent : float
        Real seconds spent inside ``add`` and ``wait`` (and in the
        simulation's task building): the simulated transport's cost, which
        the client's measured cost excludes.
    """

    def __init__(
        self, clock: VirtualClock, *, overhead: float = 0.0, start: float | None = None
    ) -> None:
        self.clock = clock
        self.overhead = float(overhead)
        self.free_at = clock.now if start is None else float(start)
        self._busy_until: dict[int, float] = {}
        self._heap: list[tuple[float, int, SimulatedCall]] = []
        self._order = itertools.count()
        self.spent = 0.0
        self.calls: list[SimulatedCall] = []

    def add(self, call: SimulatedCall) -> None:
        """Start ``call`` once its worker is free; its reply is due after that."""
        began = time.perf_counter()
        now = self.clock.now
        start = max(now, self._busy_until.get(call.worker, self.free_at))
        call.submitted, call.started = now, start
        finished = start + call.duration
        call.arrival = finished + self.overhead
        self._busy_until[call.worker] = finished
        heapq.heappush(self._heap, (call.arrival, next(self._order), call))
        self.calls.append(call)
        self.spent += time.perf_counter() - began

    def wait(self, timeout: float) -> list[tuple[SimulatedCall, str, Reply]]:
        """Advance the clock by up to ``timeout``; the replies arrived by then."""
        began = time.perf_counter()
        clock, heap = self.clock, self._heap
        arrived: list[tuple[SimulatedCall, str, Reply]] = []
        if not heap:
            if 0 < timeout < math.inf:
                clock.now += timeout
        elif timeout <= 0 and heap[0][0] > clock.now:
            pass  # as a real transport's: only what is in already
        elif heap[0][0] <= clock.now + timeout:
            clock.now = max(clock.now, heap[0][0])
            while heap and heap[0][0] <= clock.now:
                call = heapq.heappop(heap)[2]
                compute = call.duration if math.isnan(call.compute) else call.compute
                reply = Reply(call.message, compute, 0.0, call.rows)
                arrived.append((call, "reply", reply))
        else:
            clock.now += timeout
        self.spent += time.perf_counter() - began
        return arrived


@dataclass(frozen=True)
class SimulatedRound:
    """One simulated round.

    Attributes
    ----------
    iteration : int
        The round's number (what the latency function was asked for).
    plan : {"coded", "split"}
    wall_s : float
        Virtual seconds from submission until the replies decoded (coded) or
        covered every row (split): the round's iteration time on the cluster,
        the client's own cost not included.
    client_s : float
        Real seconds of the client's own work in the round: the policy's
        plan, the collection loop's bookkeeping, judging, the decode (or the
        split round's sum) and the policy's observation.  The simulated
        transport's cost is excluded.
    responders : tuple of int
        Workers whose replies were used.
    backups : int
        Backup tasks started (split rounds).
    exact : bool
        Whether the decode reported itself exact (always, for split rounds).
    error : float
        ``||result - true sum|| / sqrt(sum_j ||g_j||^2)``, measured against
        the true sum of the partial gradients (the scale of the codes'
        ``error_bound``).
    error_bound : float
        The decoder's own bound on ``error`` (0 for split rounds).
    matched : bool
        Whether ``error`` is within the code's ``rtol`` (always, when exact:
        otherwise :func:`simulate` raises).
    """

    iteration: int
    plan: str
    wall_s: float
    client_s: float
    responders: tuple[int, ...]
    backups: int
    exact: bool
    error: float
    error_bound: float
    matched: bool


@dataclass(frozen=True)
class SimulationResult:
    """The rounds of one :func:`simulate` run, and their summary."""

    scheme: str
    n_workers: int
    n_stragglers: int
    comm_reduction: int
    policy: str
    rounds: tuple[SimulatedRound, ...]

    @property
    def iteration_s(self) -> np.ndarray:
        """Each round's virtual seconds."""
        return np.array([r.wall_s for r in self.rounds], dtype=float)

    @property
    def mean_iteration_s(self) -> float:
        """Mean virtual seconds per round (the client's cost not included)."""
        return float(self.iteration_s.mean())

    @property
    def p90_iteration_s(self) -> float:
        """90th percentile of the rounds' virtual seconds."""
        return float(np.percentile(self.iteration_s, 90))

    @property
    def client_ms_per_round(self) -> float:
        """Mean real milliseconds of the client's own work per round."""
        return float(np.mean([r.client_s for r in self.rounds]) * 1e3)

    @property
    def split_fraction(self) -> float:
        """Share of the rounds that ran a split plan."""
        return float(np.mean([r.plan == "split" for r in self.rounds]))

    @property
    def exact(self) -> bool:
        """Whether every round decoded exactly."""
        return all(r.exact for r in self.rounds)

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain numbers (for JSON)."""
        return {
            "scheme": self.scheme,
            "n_workers": self.n_workers,
            "n_stragglers": self.n_stragglers,
            "comm_reduction": self.comm_reduction,
            "policy": self.policy,
            "rounds": len(self.rounds),
            "mean_iteration_s": self.mean_iteration_s,
            "p90_iteration_s": self.p90_iteration_s,
            "client_ms_per_round": self.client_ms_per_round,
            "split_fraction": self.split_fraction,
            "exact": self.exact,
            "max_error": max(r.error for r in self.rounds),
        }


class _Cluster:
    """The simulated workers of one run: their data and their messages.

    The partial gradients are one seeded random matrix, ``(n_partitions,
    dim)``; a partition's partial is spread evenly over its rows, so a split
    share's message is ``rows / partition_rows`` of each of its partitions'
    partials, and every row counted once sums to the true total exactly (up
    to rounding).  Coded messages are encoded once per worker with its real
    encoder and reused every round: the workers' cost is not the client's.
    """

    def __init__(
        self,
        code: GradientCode,
        latency: Latency,
        partition_rows: Sequence[int],
        dim: int,
        seed: int,
    ) -> None:
        self.code = code
        self.latency = latency
        self.partition_rows = np.asarray(partition_rows, dtype=np.int64)
        self.row_counts = [int(r) for r in partition_rows]  # as live rounds pass them
        self.total_rows = int(self.partition_rows.sum())
        rng = np.random.default_rng(seed)
        self.partials = rng.standard_normal((code.n_partitions, dim))
        self.truth = self.partials.sum(axis=0)
        self.scale = float(np.sqrt((self.partials**2).sum()))
        self.held = [list(code.partitions(w)) for w in range(code.n_workers)]
        self.coded_rows = [int(self.partition_rows[h].sum()) for h in self.held]
        self.coded_messages = [
            code.worker_encoder(w)(self.partials[self.held[w]])
            for w in range(code.n_workers)
        ]
        self._split_messages: dict[tuple[int, tuple[Any, ...]], np.ndarray] = {}
        self._fixed: tuple[int, np.ndarray] | None = None

    def durations(self, iteration: int, loads: np.ndarray) -> np.ndarray:
        """Each worker's seconds for ``loads`` in this round, checked."""
        seconds = np.asarray(self.latency(iteration, loads), dtype=float)
        if seconds.shape != (self.code.n_workers,):
            raise ValueError(
                f"latency(round, loads) must return {self.code.n_workers} "
                f"durations, got shape {seconds.shape}"
            )
        if not np.all(np.isfinite(seconds)) or np.any(seconds < 0):
            raise ValueError(
                f"latency returned a negative or non-finite duration in round "
                f"{iteration}"
            )
        return seconds

    def fixed(self, iteration: int) -> np.ndarray:
        """Each worker's seconds at load 0 this round: a task's fixed cost.

        A live worker reports only its computation (``compute_seconds``);
        the rest of its reply's time (invocation, transfer) is overhead to
        the policies.  The latency at load 0 is that fixed part.
        """
        if self._fixed is None or self._fixed[0] != iteration:
            zeros = np.zeros(self.code.n_workers)
            self._fixed = (iteration, self.durations(iteration, zeros))
        return self._fixed[1]

    def split_message(self, worker: int, share: Share) -> np.ndarray:
        """The plain sum of ``share``'s rows' partials, as ``worker`` computes it."""
        key = (worker, share.slices)
        message = self._split_messages.get(key)
        if message is None:
            held = self.held[worker]
            partitions = [held[block] for block, _, _ in share.slices]
            fractions = [
                (hi - lo) / self.partition_rows[held[block]]
                for block, lo, hi in share.slices
            ]
            message = np.asarray(fractions) @ self.partials[partitions]
            if len(self._split_messages) > 64 * self.code.n_workers:
                self._split_messages.clear()  # shares changed: forget old ones
            self._split_messages[key] = message
        return message

    def error(self, result: np.ndarray) -> float:
        """Distance to the true sum, relative to the partials' root-sum-square."""
        return float(np.linalg.norm(result - self.truth)) / self.scale


def simulate(
    code: GradientCode,
    latency: Latency,
    *,
    rounds: int,
    policy: str | Policy = "static",
    n_samples: int | None = None,
    dim: int = DEFAULT_DIM,
    start_round: int = 0,
    seed: int = 0,
    overhead: float = 0.0,
) -> SimulationResult:
    """Run ``rounds`` rounds of ``code`` on a virtual clock, as live rounds run.

    Each round, as :class:`~dask_gradcode.scheduler.CodedGradient` runs it:
    the policy plans it; a coded plan submits one task per worker, collects
    with :func:`~dask_gradcode.scheduler.rounds.collect` until the code says
    the replies decode, judges and decodes them; a split plan runs
    :func:`~dask_gradcode.scheduler.rounds.collect_split` (every share once,
    late shares backed up) and sums the shares; the policy then observes the
    round's timing.  Replies arrive at the virtual times ``latency`` gives;
    every worker answers (no failures, no deadline).

    Parameters
    ----------
    code : GradientCode
        The code, as built for a live run (its decodability checks and
        decoders are the ones used).
    latency : callable
        ``latency(round, loads) -> seconds``, one per worker: how long worker
        ``w`` takes to compute the fraction ``loads[w]`` of the data set in
        round ``round`` (``TraceProfile.round_times`` has this shape).  A
        backup task asks for its worker's seconds at its own load.
    rounds : int
        Rounds to run.
    policy : str or Policy, default="static"
        A name of :data:`~dask_gradcode.scheduler.POLICIES` or a policy
        object (used as is: it keeps what it learns).
    n_samples : int, optional
        Rows of the virtual data set (they matter for split shares); default
        1000 per partition.
    dim : int, default=101
        Length of the gradient vector (the decode's cost grows with it).
    start_round : int, default=0
        The first round's number.
    seed : int, default=0
        Seeds the partial gradients.
    overhead : float, default=0.0
        Seconds from a worker finishing to its reply reaching the client.

    Returns
    -------
    SimulationResult

    Raises
    ------
    AssertionError
        If a round's result misses the true sum: an exact decode off by more
        than the code's ``rtol``, or an approximate one beyond its own error
        bound (a bug in the library).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if overhead < 0 or not math.isfinite(overhead):
        raise ValueError(f"overhead must be finite and >= 0, got {overhead}")
    policy = make_policy(policy)
    n_workers = code.n_workers
    if n_samples is None:
        n_samples = DEFAULT_PARTITION_ROWS * code.n_partitions
    if n_samples < code.n_partitions:
        raise ValueError(
            f"n_samples must be at least n_partitions={code.n_partitions}, "
            f"got {n_samples}"
        )
    partition_rows = [int(r) for r in np.diff(code.partition_bounds(n_samples))]
    cluster = _Cluster(code, latency, partition_rows, dim, seed)
    clock = VirtualClock()
    records = [
        _simulated_round(cluster, policy, iteration, clock, overhead)
        for iteration in range(start_round, start_round + rounds)
    ]
    return SimulationResult(
        scheme=code.scheme,
        n_workers=n_workers,
        n_stragglers=code.n_stragglers,
        comm_reduction=code.comm_reduction,
        policy=str(getattr(policy, "name", type(policy).__name__)),
        rounds=tuple(records),
    )


_RoundOutcome = tuple[np.ndarray, float, tuple[int, ...], int, bool, float]


def _simulated_round(
    cluster: _Cluster,
    policy: Policy,
    iteration: int,
    clock: VirtualClock,
    overhead: float,
) -> SimulatedRound:
    """One round, planned by ``policy``, its result checked against the truth."""
    code = cluster.code
    usable = list(range(code.n_workers))
    physical = usable
    arrivals = SimulatedArrivals(clock, overhead=overhead)
    began = time.perf_counter()
    plan = policy.plan(code, usable, cluster.row_counts, physical)
    if plan.name == "split":
        result, wall, responders, backups, exact, bound = _split_round(
            cluster, plan, iteration, policy, arrivals, clock, physical
        )
    else:
        result, wall, responders, backups, exact, bound = _coded_round(
            cluster, iteration, policy, arrivals, clock, usable, physical
        )
    client = time.perf_counter() - began - arrivals.spent
    error = cluster.error(result)
    matched = error <= code.rtol
    if exact and not matched:
        raise AssertionError(
            f"round {iteration} of {code!r} ({plan.name}) decoded as exact "
            f"but is {error:.2e} off the true sum (rtol {code.rtol:g})"
        )
    # The bound is first-order in the rounding: a little slack for it.
    if not exact and error > bound * (1 + 1e-6) + 1e-12:
        raise AssertionError(
            f"round {iteration} of {code!r}: approximate decode is "
            f"{error:.2e} off the true sum, beyond its bound {bound:.2e}"
        )
    return SimulatedRound(
        iteration=iteration,
        plan=plan.name,
        wall_s=wall,
        client_s=client,
        responders=responders,
        backups=backups,
        exact=exact,
        error=error,
        error_bound=bound,
        matched=matched,
    )


def _coded_round(
    cluster: _Cluster,
    iteration: int,
    policy: Policy,
    arrivals: SimulatedArrivals,
    clock: VirtualClock,
    usable: list[int],
    physical: list[int],
) -> _RoundOutcome:
    """A coded round as ``CodedRound.run`` runs it (exact mode)."""
    code = cluster.code
    began = time.perf_counter()
    loads = np.zeros(code.n_workers)
    loads[usable] = [cluster.coded_rows[w] / cluster.total_rows for w in usable]
    seconds = cluster.durations(iteration, loads)
    fixed = cluster.fixed(iteration)
    handles = {}
    for worker in usable:
        call = SimulatedCall(
            worker,
            None,
            cluster.coded_rows[worker],
            float(seconds[worker]),
            cluster.coded_messages[worker],
            compute=max(0.0, float(seconds[worker] - fixed[worker])),
        )
        handles[call] = worker
    arrivals.spent += time.perf_counter() - began
    for call in handles:
        arrivals.add(call)
    submitted = clock.now
    collected = collect(
        handles,
        code,
        arrivals=arrivals,
        deadline=math.inf,
        check_interval=math.inf,
        approximate=False,
        gone=_nobody_gone,
        started=submitted,
        clock=clock,
    )
    wall = clock.now - submitted
    judge_coded(
        collected, code, iteration=iteration, deadline=math.inf, approximate=False
    )
    messages = {w: reply.message for w, reply in collected.replies.items()}
    vector, decoder = code.decode(
        messages, cluster.partials.shape[1], approximate=False, return_info=True
    )
    policy.observe(
        coded_timing(
            policy,
            code,
            collected,
            usable,
            cluster.row_counts,
            physical,
            wall,
        )
    )
    return (
        vector,
        wall,
        decoder.responders,
        0,
        decoder.exact,
        decoder.error_bound,
    )


def _split_round(
    cluster: _Cluster,
    plan: Plan,
    iteration: int,
    policy: Policy,
    arrivals: SimulatedArrivals,
    clock: VirtualClock,
    physical: list[int],
) -> _RoundOutcome:
    """A split round as ``SplitRound.run`` runs it."""
    code = cluster.code
    began = time.perf_counter()
    loads = np.zeros(code.n_workers)
    for worker, share in plan.shares.items():
        loads[worker] = share.rows / cluster.total_rows
    own_seconds = cluster.durations(iteration, loads)
    arrivals.spent += time.perf_counter() - began

    def submit(worker: int, share: Share) -> SimulatedCall:
        # The transport's side: its cost is not the client's.
        began = time.perf_counter()
        if share.owner == worker:
            seconds = float(own_seconds[worker])
        else:  # a backup: this worker's seconds at the backup's own load
            backup_loads = np.zeros(code.n_workers)
            backup_loads[worker] = share.rows / cluster.total_rows
            seconds = float(cluster.durations(iteration, backup_loads)[worker])
        compute = max(0.0, seconds - float(cluster.fixed(iteration)[worker]))
        call = SimulatedCall(
            worker,
            share,
            share.rows,
            seconds,
            cluster.split_message(worker, share),
            compute=compute,
        )
        arrivals.spent += time.perf_counter() - began
        return call

    submitted = clock.now
    collected = collect_split(
        plan.shares,
        submit,
        code,
        arrivals=arrivals,
        deadline=math.inf,
        check_interval=math.inf,
        gone=_nobody_gone,
        clock=clock,
    )
    wall = clock.now - submitted
    shortfall = split_shortfall(collected, plan)
    if shortfall is not None:  # every simulated worker answers: cannot happen
        raise AssertionError(f"round {iteration}: {shortfall}")
    used = [reply for replies in collected.covered.values() for reply in replies]
    vector = np.sum([as_dense(reply.message) for reply in used], axis=0)
    policy.observe(split_timing(plan, collected, physical, wall))
    responders = tuple(
        sorted({w for workers in collected.computed_by.values() for w in workers})
    )
    backups = sum(len(workers) for workers in collected.backups.values())
    return vector, wall, responders, backups, True, 0.0


def _nobody_gone(pending: set[int]) -> set[int]:
    """Simulated workers never leave the cluster."""
    return set()
