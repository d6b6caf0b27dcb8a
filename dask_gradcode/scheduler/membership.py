"""Membership: who is alive, who is hung, who is struck out; the round deadline.

Physical workers are identified by address.  A worker is *live* while the
scheduler lists it, and *responsive* while its heartbeats keep arriving (a
stopped process stays listed for minutes, until the scheduler's
``worker-ttl``, but its heartbeats stop at once).  Workers whose tasks keep
raising are struck and, after ``MAX_STRIKES`` rounds in a row, dropped from
every later code.  The round deadline comes from the rounds measured so far.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque

from distributed import Client

from dask_gradcode.scheduler.clients import heartbeats

__all__ = ["MAX_STRIKES", "Membership", "RoundDeadline"]

#: Rounds in a row a worker's task may raise before it is dropped.
MAX_STRIKES = 3


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

    def refresh(self, *, force: bool = False) -> None:
        """Ask the scheduler for its workers, at most every ``check_interval``."""
        now = time.monotonic()
        if not force and now - self._refreshed < self.check_interval:
            return
        beats = heartbeats(self.client)
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

    def live(self) -> set[str]:
        """Addresses the scheduler lists (refreshed if due)."""
        self.refresh()
        return set(self._beats)

    def responsive(self, address: str) -> bool:
        """Listed, heartbeating, not suspected of hanging and not dropped."""
        entry = self._beats.get(address)
        return (
            entry is not None
            and address not in self.dropped
            and address not in self._suspects
            and time.monotonic() - entry[1] <= self.stale_after
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
