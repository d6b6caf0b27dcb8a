"""One round's collection: replies as they come, until decodable or the deadline.

Every way a worker can fail a round ends here as an erasure of that worker
for the round: a task that raised (``errors``), a worker that died before or
after finishing its task, whose result cannot be fetched any more (``lost``),
and one that had not answered, or whose finished result could not be fetched,
when the deadline passed (``timed_out``).  Whether the rest decodes is the
code's question; what to do when it does not is the caller's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from dask_gradcode.codes import GradientCode, ResponderTracker
from dask_gradcode.scheduler.plans import (
    SPECULATION_MARGIN,
    SPECULATION_MULTIPLIER,
    SPECULATION_QUANTILE,
    Share,
    backup_shares,
)
from dask_gradcode.scheduler.protocol import Reply

__all__ = [
    "Collected",
    "CollectedSplit",
    "collect",
    "collect_all",
    "collect_spares",
    "collect_split",
]


@dataclass
class Collected:
    """What one submission of a round came back with."""

    replies: dict[int, Reply] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)
    errors: dict[int, BaseException] = field(default_factory=dict)
    timed_out: set[int] = field(default_factory=set)
    pending: dict[Any, int] = field(default_factory=dict)
    waited_for_accuracy: bool = False
    arrived: dict[int, float] = field(default_factory=dict)  # seconds after start

    @property
    def failed(self) -> set[int]:
        """Every worker erased in this round."""
        return self.lost | set(self.errors) | self.timed_out


def collect(
    handles: dict[Any, int],
    code: GradientCode,
    *,
    arrivals: Any,
    deadline: float,
    check_interval: float,
    approximate: bool,
    gone: Callable[[set[int]], set[int]],
    started: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Collected:
    """Take replies as they come until the round can be decoded, or the deadline.

    Parameters
    ----------
    handles : dict
        The round's tasks (futures, or direct calls) and their code indices.
    code : GradientCode
    arrivals : arrivals object
        The transport's (:mod:`~dask_gradcode.scheduler.transports`), with
        every handle added: ``wait(timeout)`` returns the calls finished.
    deadline : float
        ``clock()`` after which unanswered workers time out.
    check_interval : float
        Seconds between checks of ``gone`` while waiting.
    approximate : bool
        Approximate mode: stop as soon as the replies decode exactly, or when
        every worker but ``code.n_stragglers`` of them has answered (so
        stragglers are still skipped).
    gone : callable
        Given the pending code indices, returns those whose workers the
        cluster lost.
    started : float, optional
        ``clock()`` of the submission; replies' ``arrived`` times count from
        it (default: now).
    clock : callable, default=time.monotonic
        Every time reading of the loop (the deadline, arrivals).  A
        simulation passes its virtual clock, which its ``arrivals.wait``
        advances (:mod:`dask_gradcode.simulation`).

    Returns
    -------
    Collected
        The caller releases ``pending`` once it has decoded.
    """
    result = Collected(pending=dict(handles))
    # Counts the replies per group as they come: asking after every reply
    # costs O(1) until the set can decode, not O(n) (O(n^2) a round).
    tracker = code.tracker()
    waiting = _Workers(result.pending.values())
    started = clock() if started is None else started
    submitted = len(handles)
    # Whether the workers still answering could decode changes only when one
    # is erased; asking the code once per erasure instead of once per wait
    # keeps the loop linear in the workers (see _hopeless).
    hopeless: tuple[int, bool] | None = None
    while result.pending:
        remaining = deadline - clock()
        # Every call of the batch is filed, even past the decodable set: the
        # batch is gone from the arrivals, and a spare reply is what the
        # integrity check compares (codes.integrity).  At the deadline, the
        # replies already in are read before anyone is declared late.
        enough = False
        for handle, kind, value in arrivals.wait(
            min(check_interval, max(0.0, remaining))
        ):
            worker = _file(handle, kind, value, result, clock() - started)
            if worker is None:
                continue  # released earlier
            waiting.remove(worker)
            if worker in result.replies:
                tracker.add(worker)
            enough = enough or _enough(result, tracker, code, approximate, submitted)
        if enough:
            return result
        if remaining <= 0:
            result.timed_out |= set(result.pending.values())
            break
        lost = gone(waiting.set())
        if lost:
            result.lost |= lost
            result.pending = {f: w for f, w in result.pending.items() if w not in lost}
            waiting = _Workers(result.pending.values())
        # More erasures than the code can lose.  If no worker succeeded yet,
        # wait for the rest: an error every worker raises is a bug to surface,
        # not a failure to re-plan around.
        if not approximate:
            hopeless = _hopeless(result, code, hopeless)
            if hopeless[1] and (result.replies or not result.errors):
                break
    return result


def collect_spares(
    result: Collected,
    *,
    arrivals: Any,
    until: float,
    started: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Add the replies that arrive by ``until`` (and those already in) to ``result``.

    The integrity check compares them with the decoded ones; nobody is
    declared failed here (a worker still computing is a straggler).
    """
    while result.pending:
        remaining = max(0.0, until - clock())
        for handle, kind, value in arrivals.wait(remaining):
            _file(handle, kind, value, result, clock() - started)
        if remaining <= 0:
            return


def collect_all(
    handles: dict[Any, int],
    *,
    arrivals: Any,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> Collected:
    """Every handle's reply or erasure, or the deadline: an audit's collection."""
    result = Collected(pending=dict(handles))
    started = clock()
    collect_spares(
        result, arrivals=arrivals, until=deadline, started=started, clock=clock
    )
    result.timed_out |= set(result.pending.values())
    return result


class _Workers:
    """The workers with a call pending, kept up to date as calls finish.

    The loops hand ``gone`` these workers after every wait; counting calls
    per worker as they start and finish spares a pass over every pending
    call each time (``n`` passes of ``n`` a round).
    """

    __slots__ = ("calls",)

    def __init__(self, workers: Iterable[int] = ()) -> None:
        self.calls: dict[int, int] = {}
        for worker in workers:
            self.add(worker)

    def add(self, worker: int) -> None:
        """One more call pending on ``worker``."""
        self.calls[worker] = self.calls.get(worker, 0) + 1

    def remove(self, worker: int) -> None:
        """One call of ``worker`` finished."""
        left = self.calls[worker] - 1
        if left:
            self.calls[worker] = left
        else:
            del self.calls[worker]

    def set(self) -> set[int]:
        """The workers with a pending call (a new set: the caller's to keep)."""
        return set(self.calls)


def _file(
    handle: Any, kind: str, value: Any, result: Collected, arrival: float
) -> int | None:
    """File a finished call of ``result.pending``; its worker (None: released)."""
    worker = result.pending.pop(handle, None)
    if worker is None:
        return None
    _take(kind, value, worker, result)
    if worker in result.replies:
        result.arrived[worker] = arrival
    return worker


def _take(kind: str, value: Any, worker: int, result: Collected) -> None:
    """File one finished call as a reply or an erasure."""
    if kind == "error":
        result.errors[worker] = value
    elif kind == "lost":
        result.lost.add(worker)  # its worker died, with its shard
    else:
        result.replies[worker] = value


def _enough(
    result: Collected,
    tracker: ResponderTracker,
    code: GradientCode,
    approximate: bool,
    submitted: int,
) -> bool:
    # The structural question first: it is all most replies need asked (the
    # accuracy question repeats it), so one call per reply, not two.
    if result.replies and tracker.is_decodable(check_accuracy=False):
        if tracker.is_decodable():
            return True
        result.waited_for_accuracy = True  # decodable, but not to rtol
    if approximate:
        answered = len(result.replies) + len(result.failed)
        return answered >= submitted or len(result.replies) >= max(
            1, submitted - len(result.failed) - code.n_stragglers
        )
    return False


def _hopeless(
    result: Collected, code: GradientCode, last: tuple[int, bool] | None
) -> tuple[int, bool]:
    """Whether the replies and pending workers cannot decode: ``(key, answer)``.

    The workers that could still answer only ever lose members (a pending
    worker is erased); one that replies moves from ``pending`` to
    ``replies``, which leaves ``len(replies) + len(pending)`` as it was.  So
    while that count is unchanged, so is the set, and ``last`` answers.
    """
    key = len(result.replies) + len(result.pending)
    if last is not None and last[0] == key:
        return last
    possible = set(result.replies) | set(result.pending.values())
    return key, not possible or not code.is_decodable(possible)


@dataclass
class CollectedSplit:
    """What a split round came back with.

    ``covered`` maps each share's owner to the replies used for its rows:
    its own reply, or every piece of its backup (a late share's slices may
    be recomputed by several holders, and the share counts as covered only
    when all of them are in); ``computed_by`` maps it to the workers that
    computed them.  ``arrived`` is when each worker's first reply reached the
    client, seconds after submission.
    """

    covered: dict[int, list[Reply]] = field(default_factory=dict)
    computed_by: dict[int, tuple[int, ...]] = field(default_factory=dict)
    backup_parts: dict[int, dict[int, Reply]] = field(default_factory=dict)
    replies: list[tuple[int, int, Reply]] = field(default_factory=list)
    arrived: dict[int, float] = field(default_factory=dict)
    own_arrival: dict[int, float] = field(default_factory=dict)
    backups: dict[int, list[int]] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)
    errors: dict[int, BaseException] = field(default_factory=dict)
    timed_out: set[int] = field(default_factory=set)
    pending: dict[Any, tuple[int, int]] = field(default_factory=dict)

    @property
    def failed(self) -> set[int]:
        """Every worker erased in this round."""
        return self.lost | set(self.errors) | self.timed_out


def collect_split(
    shares: dict[int, Share],
    submit: Callable[[int, Share], Any],
    code: GradientCode,
    *,
    arrivals: Any,
    deadline: float,
    check_interval: float,
    gone: Callable[[set[int]], set[int]],
    clock: Callable[[], float] = time.monotonic,
) -> CollectedSplit:
    """Run a split round: every share once, late or failed ones backed up.

    A share whose worker failed (raised, died) is backed up at once; one
    still missing once ``SPECULATION_QUANTILE`` of the shares are in and
    ``SPECULATION_MULTIPLIER`` times their median arrival has passed is backed
    up speculatively.  The first copy of each share to arrive is used.

    Parameters
    ----------
    shares : dict of int to Share
        Each worker's rows.
    submit : callable
        ``submit(worker, share)`` returns the handle of ``share`` on
        ``worker``; it starts when added to ``arrivals``.
    code : GradientCode
        Which workers hold which partitions (for choosing backups).
    arrivals, deadline, check_interval, gone, clock
        As :func:`collect` (``arrivals`` fed the backups as they start).

    Returns
    -------
    CollectedSplit
        Complete when every share is covered; otherwise the erasures say why
        not.  The caller releases ``pending``.
    """
    result = CollectedSplit()
    start = clock()
    busy = _Workers()

    def start_share(worker: int, share: Share) -> None:
        handle = submit(worker, share)
        result.pending[handle] = (worker, share.owner)
        busy.add(worker)
        arrivals.add(handle)

    for worker, share in shares.items():
        start_share(worker, share)
    memo = _Speculation(shares)
    stuck = False  # a backup is due but no holder is free: wait for a reply
    while len(result.covered) < len(shares):
        now = clock()
        if now >= deadline:
            result.timed_out |= {
                w for w, o in result.pending.values() if o not in result.covered
            }
            break
        wait = min(check_interval, deadline - now)
        if not stuck:
            wait = min(wait, _until_speculation(result, shares, start, now, memo))
        arrived = arrivals.wait(max(wait, 0.0))
        for handle, kind, value in arrived:
            entry = result.pending.pop(handle, None)
            if entry is None:
                continue
            busy.remove(entry[0])
            _take_share(kind, value, entry, result, clock() - start)
            if len(result.covered) == len(shares):
                return result
        lost = gone(busy.set())
        if lost:
            result.lost |= lost
            result.pending = {
                f: e for f, e in result.pending.items() if e[0] not in lost
            }
            busy.calls = {w: c for w, c in busy.calls.items() if w not in lost}
        pending_before = len(result.pending)
        _speculate(result, shares, start_share, code, start, clock(), memo, busy)
        due = _until_speculation(result, shares, start, clock(), memo) <= 0
        started_none = len(result.pending) == pending_before
        stuck = due and started_none and not arrived and not lost
        if not result.pending:
            break  # nothing left that could cover the rest
    return result


def _take_share(
    kind: str,
    value: Any,
    entry: tuple[int, int],
    result: CollectedSplit,
    arrival: float,
) -> None:
    worker, owner = entry
    if kind == "error":
        result.errors[worker] = value
    elif kind == "lost":
        result.lost.add(worker)
    else:
        result.replies.append((worker, owner, value))
        result.arrived.setdefault(worker, arrival)
        if owner == worker:
            result.own_arrival[worker] = arrival
        if owner in result.covered:
            return  # an earlier copy of these rows is in: each row counts once
        if owner == worker:
            result.covered[owner] = [value]
            result.computed_by[owner] = (worker,)
            return
        parts = result.backup_parts.setdefault(owner, {})
        parts[worker] = value
        if set(parts) == set(result.backups.get(owner, ())):
            result.covered[owner] = list(parts.values())
            result.computed_by[owner] = tuple(parts)


class _Speculation:
    """What the split loop remembers between its waits, to ask less each time.

    Each memo is exact: the loop would compute the same answer again.

    - ``typical``: the arrival at the quantile rank, for the number of own
      shares in (``own_arrival`` only grows: each worker's own share is
      submitted once, and a late share is never backed up onto its owner).
    - ``tried``: what the last pass of :func:`_speculate` saw when it
      started no backup (``due``, the candidates in order, the failed
      workers).  With the same again, every share it would try is one that
      pass tried with the same pool and :func:`backup_shares` (a pure
      function) found no backup for.
    - ``owners_are_keys``: every share is keyed by its owner (as
      :func:`split_shares` makes them), so the shares still waiting can be
      counted from ``covered`` and ``backups`` instead of scanned.
    """

    __slots__ = ("owners_are_keys", "rank", "tried", "typical", "typical_at")

    def __init__(self, shares: dict[int, Share]) -> None:
        self.rank = max(1, math.ceil(SPECULATION_QUANTILE * len(shares)))
        self.typical_at = -1
        self.typical = math.nan
        self.tried: tuple[bool, tuple[int, ...], frozenset[int]] | None = None
        self.owners_are_keys = all(s.owner == o for o, s in shares.items())


def _waiting(
    result: CollectedSplit, shares: dict[int, Share], memo: _Speculation | None
) -> bool:
    """Whether some share is neither covered nor backed up."""
    if memo is not None and memo.owners_are_keys:
        # covered and backups are keyed by owners, all of them keys of shares.
        both = sum(1 for o in result.backups if o in result.covered)
        return len(result.covered) + len(result.backups) - both < len(shares)
    return any(o not in result.covered and o not in result.backups for o in shares)


def _until_speculation(
    result: CollectedSplit,
    shares: dict[int, Share],
    start: float,
    now: float,
    memo: _Speculation | None = None,
) -> float:
    """Seconds until a late share may be backed up (inf: none to, or too few in).

    The trigger is ``SPECULATION_MULTIPLIER`` times the arrival of the share
    at the ``SPECULATION_QUANTILE`` (the median share's arrival, by default),
    and at least ``SPECULATION_MARGIN`` after it; ``start`` and ``now`` are
    readings of the round's clock.
    """
    rank = max(1, math.ceil(SPECULATION_QUANTILE * len(shares)))
    if len(result.own_arrival) < rank or not _waiting(result, shares, memo):
        return math.inf
    if memo is not None and memo.typical_at == len(result.own_arrival):
        typical = memo.typical
    else:
        typical = sorted(result.own_arrival.values())[rank - 1]
        if memo is not None:
            memo.typical_at, memo.typical = len(result.own_arrival), typical
    trigger = max(SPECULATION_MULTIPLIER * typical, typical + SPECULATION_MARGIN)
    return max(0.0, start + trigger - now)


def _speculate(
    result: CollectedSplit,
    shares: dict[int, Share],
    start_share: Callable[[int, Share], None],
    code: GradientCode,
    start: float,
    now: float,
    memo: _Speculation | None = None,
    pending: _Workers | None = None,
) -> None:
    """Back up the shares whose worker failed, or is late past the trigger.

    ``pending``: the workers with a call pending, when the loop keeps them
    (else read from ``result.pending``).
    """
    failed = result.failed
    due = _until_speculation(result, shares, start, now, memo) <= 0
    if not due and not any(
        o in shares and o not in result.covered and o not in result.backups
        for o in failed
    ):
        return  # nothing to back up: no share is late, none failed
    busy: Container[int] = (
        {w for w, _ in result.pending.values()} if pending is None else pending.calls
    )
    # Idle workers, fastest first; a failed worker's rows may also queue
    # behind a busy worker's task (nobody may be idle yet).
    candidates = sorted(
        (w for w in result.arrived if w not in failed and w not in busy),
        key=lambda w: result.arrived[w],
    )
    seen = (due, tuple(candidates), frozenset(failed))
    if memo is not None and memo.tried == seen:
        return  # the same pass as the last, which found no backup
    started = False
    for owner, late in shares.items():
        if owner in result.covered or owner in result.backups:
            continue
        pool = candidates
        if owner in failed:
            pool = candidates + [
                w for w in shares if w not in failed and w not in candidates
            ]
        elif not due:
            continue
        backups = backup_shares(code, late, pool)
        if not backups:
            continue
        started = True
        result.backups[owner] = list(backups)
        for backup_worker, share in backups.items():
            start_share(backup_worker, share)
        # Spread the next backups over the other candidates first: this
        # backup's workers move to the end (in place: a few removals from a
        # list of every idle worker, not a rebuild of it per backup).
        for backup_worker in backups:
            if backup_worker in candidates:
                candidates.remove(backup_worker)
        candidates.extend(backups)
    if memo is not None:
        memo.tried = None if started else seen
