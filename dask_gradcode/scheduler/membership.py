"""Membership: who is alive, who is hung, who is struck out; the round deadline.

Physical workers are identified by address.  A worker is *live* while the
scheduler lists it, and *responsive* while its heartbeats keep arriving (a
stopped process stays listed for minutes, until the scheduler's
``worker-ttl``, but its heartbeats stop at once).  Workers whose tasks keep
raising are struck and, after ``MAX_STRIKES`` rounds in a row, dropped from
every later code.  The round deadline comes from the rounds measured so far.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import statistics
import time
from collections import deque

from distributed import Client

from dask_gradcode.scheduler.clients import SCHEDULER_TIMEOUT, ask_heartbeats
from dask_gradcode.scheduler.records import WorkerFailureWarning, warn_caller

__all__ = [
    "MAX_STRIKES",
    "REFRESH_TIMEOUT",
    "SCHEDULER_PATIENCE",
    "Membership",
    "RoundDeadline",
]

#: Rounds in a row a worker's task may raise before it is dropped.
MAX_STRIKES = 3

#: Seconds a membership refresh waits for the scheduler.  A refresh that
#: times out keeps the last view: a stalled scheduler delays nothing that
#: does not need it, and says nothing about the workers.
REFRESH_TIMEOUT = 2.0

#: Seconds the scheduler may stay silent (stalled or dead) before a fit
#: gives up on it with a :class:`SchedulerUnavailableError`.
SCHEDULER_PATIENCE = 60.0


class Membership:
    """The cluster's workers as the fit sees them.

    Parameters
    ----------
    client : distributed.Client
    check_interval : float
        Seconds between refreshes of the scheduler's worker list.
    stale_after : float
        A worker whose heartbeat has not changed for this long is hung.
    """

    def __init__(self, client: Client, check_interval: float, stale_after: float):
        self.client = client
        self.check_interval = check_interval
        self.stale_after = stale_after
        self._beats: dict[str, tuple[float, float]] = {}  # address -> (beat, seen at)
        self._refreshed = -math.inf
        self._suspects: dict[str, float] = {}  # address -> beat when suspected
        self.strikes: dict[str, int] = {}
        self.dropped: set[str] = set()
        #: ``time.monotonic()`` of the first refresh the scheduler did not
        #: answer, since it last answered (None while it answers).
        self.silent_since: float | None = None
        self._every_beat_stale = False
        self._asking: concurrent.futures.Future | None = None
        self._asked = -math.inf
        self._answering_since = -math.inf
        #: Workers Dask's memory manager paused: slow, so out of the rounds.
        self.paused: set[str] = set()
        self._warned_paused: set[str] = set()

    @property
    def scheduler_silent(self) -> bool:
        """Whether the scheduler missed the last refresh (stalled, or gone)."""
        return self.silent_since is not None

    def refresh(self, *, force: bool = False, timeout: float | None = None) -> None:
        """Ask the scheduler for its workers, at most every ``check_interval``.

        Without ``force`` the question is asked in the background and its
        answer taken at a later call: a round never waits for the scheduler.
        ``force`` (and the first refresh) waits up to ``timeout`` (default
        :data:`REFRESH_TIMEOUT`).  A question unanswered for
        ``REFRESH_TIMEOUT`` makes the scheduler *silent*
        (:attr:`silent_since`); the last view stays.
        """
        now = time.monotonic()
        self._take_answer(0.0)
        if not force and self._refreshed > -math.inf:
            if now - self._refreshed >= self.check_interval and self._asking is None:
                self._ask(now)
            elif self._asking is not None and now - self._asked > REFRESH_TIMEOUT:
                self._fall_silent(self._asked)
            return
        if timeout is None:
            # The first answer of a run may be slow on a busy scheduler.
            first = self._refreshed == -math.inf
            timeout = SCHEDULER_TIMEOUT if first else REFRESH_TIMEOUT
        if self._asking is None:
            self._ask(now)
        self._take_answer(max(0.05, timeout))
        if self._asking is not None:
            self._fall_silent(self._asked)

    def _ask(self, now: float) -> None:
        try:
            self._asking, self._asked = ask_heartbeats(self.client), now
        except RuntimeError:
            self._fall_silent(now)  # no scheduler connection at all

    def _fall_silent(self, since: float) -> None:
        if self.silent_since is None:
            self.silent_since = since

    def _take_answer(self, timeout: float) -> None:
        """Take the scheduler's answer if it came within ``timeout``."""
        if self._asking is None:
            return
        try:
            beats = self._asking.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            return
        except (OSError, RuntimeError, asyncio.CancelledError):
            self._asking = None
            self._fall_silent(self._asked)
            return
        self._asking = None
        self._update(beats, time.monotonic())

    def _update(self, answer: dict[str, tuple[float, str]], now: float) -> None:
        """The scheduler answered: each worker's last heartbeat and status."""
        beats = {address: beat for address, (beat, _) in answer.items()}
        paused = {
            address for address, (_, status) in answer.items() if status == "paused"
        }
        for address in sorted(paused - self.paused - self._warned_paused):
            self._warned_paused.add(address)
            warn_caller(
                f"worker {address} is paused by Dask's memory manager (its memory "
                "is above the pause fraction of its memory_limit): its rounds are "
                "computed without it while it is paused",
                WorkerFailureWarning,
            )
        self.paused = paused
        if self.silent_since is not None or now - self._refreshed > self.stale_after:
            # Back from a silence: the beats it has not processed yet say
            # nothing, so staleness counts from now.
            self._answering_since = now
        self.silent_since = None
        self._refreshed = now
        for address, beat in beats.items():
            previous = self._beats.get(address)
            if previous is None or previous[0] != beat:
                self._beats[address] = (beat, now)  # client clock: no skew
        for address in set(self._beats) - set(beats):
            del self._beats[address]
        for address, beat in list(self._suspects.items()):
            # A heartbeat newer than the suspicion: the worker is back.
            if address not in beats or beats[address] != beat:
                del self._suspects[address]
        # Every heartbeat stale at once is the scheduler's delay (it stalled
        # and has not processed the beats yet), not every worker hanging.
        self._every_beat_stale = bool(self._beats) and all(
            now - seen > self.stale_after for _, seen in self._beats.values()
        )

    def silent_for(self) -> float:
        """Seconds since the scheduler last missed an answer (0.0 while it answers)."""
        if self.silent_since is None:
            return 0.0
        return time.monotonic() - self.silent_since

    def live(self) -> set[str]:
        """Addresses the scheduler lists (refreshed if due)."""
        self.refresh()
        return set(self._beats)

    def responsive(self, address: str) -> bool:
        """Listed, heartbeating, not suspected of hanging and not dropped.

        While the scheduler is silent, or every heartbeat is stale at once,
        heartbeats say nothing (the scheduler is behind, not the workers):
        only the rounds' own deadlines judge the workers then.  A worker
        Dask's memory manager paused is not responsive while it is paused.
        """
        entry = self._beats.get(address)
        fresh = (
            self.scheduler_silent
            or self._every_beat_stale
            # Judged at the scheduler's last answer, not now: a scheduler
            # that stopped answering cannot make its workers look hung.
            or self._refreshed - max(entry[1], self._answering_since)
            <= self.stale_after
            if entry is not None
            else False
        )
        return (
            entry is not None
            and address not in self.dropped
            and address not in self._suspects
            and address not in self.paused
            and fresh
        )

    def suspect(self, addresses: set[str] | list[str]) -> None:
        """Workers that missed a deadline or a transfer: out until they heartbeat.

        A worker is taken back only once the scheduler has a heartbeat from it
        newer than the suspicion, so a stopped process (which sends none) is
        never planned in, however recently it last beat.
        """
        for address in addresses:
            entry = self._beats.get(address)
            if entry is not None:
                self._suspects[address] = entry[0]

    def usable(self) -> list[str]:
        """Responsive workers, sorted by address."""
        self.refresh()
        return sorted(a for a in self._beats if self.responsive(a))

    def strike(self, address: str) -> bool:
        """Count a raising round; returns True when the worker is dropped."""
        self.strikes[address] = self.strikes.get(address, 0) + 1
        if self.strikes[address] >= MAX_STRIKES:
            self.dropped.add(address)
            return True
        return False

    def forgive(self, address: str) -> None:
        """A worker answered: its strikes start again."""
        self.strikes.pop(address, None)


class RoundDeadline:
    """How long a round may wait for a decodable set of replies.

    Parameters
    ----------
    timeout : float or None
        A fixed deadline in seconds, or None to derive one: ``factor`` times
        the median wait of the last ``window`` rounds, between ``floor`` and
        ``ceiling`` (``first`` before any round was measured).
    """

    def __init__(
        self,
        timeout: float | None,
        *,
        floor: float = 2.0,
        ceiling: float = 60.0,
        first: float = 30.0,
        factor: float = 10.0,
        window: int = 20,
    ) -> None:
        self.timeout = timeout
        self.floor, self.ceiling, self.first, self.factor = (
            floor,
            ceiling,
            first,
            factor,
        )
        self._waits: deque[float] = deque(maxlen=window)

    def seconds(self) -> float:
        """The deadline of the next round, in seconds after its submission."""
        if self.timeout is not None:
            return self.timeout
        if not self._waits:
            return self.first
        typical = statistics.median(self._waits)
        return min(self.ceiling, max(self.floor, self.factor * typical))

    def observe(self, wait_seconds: float) -> None:
        """Record how long a successful round waited."""
        self._waits.append(wait_seconds)
