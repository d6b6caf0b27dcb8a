"""The control plane: telling a stalled or dead scheduler from hung workers.

Rounds of the direct transport never touch the scheduler, and membership
checks ask it in the background (:class:`~.membership.Membership`), so a
scheduler that pauses for seconds costs those rounds nothing.  Rounds of the
futures transport go through it: when their workers all time out while the
scheduler does not answer either, the scheduler is the suspect, not them
(:class:`SchedulerStalled`); the fit waits for it and computes the round
again.  A scheduler silent for longer than
:data:`~.membership.SCHEDULER_PATIENCE` (or a client whose connection is
closed) ends the fit with a :class:`~.records.SchedulerUnavailableError`
naming it; the weights are untouched.
"""

from __future__ import annotations

import time

from distributed import Client

from dask_gradcode.scheduler import membership as _membership
from dask_gradcode.scheduler.membership import Membership
from dask_gradcode.scheduler.records import SchedulerUnavailableError

__all__ = ["SchedulerStalled", "SchedulerWatch"]

#: Client states in which nothing reaches the scheduler any more.
_CLOSED = ("closing", "closed", "failed")


class SchedulerStalled(Exception):
    """A round's workers timed out while the scheduler was silent too."""


class SchedulerWatch:
    """Whether the fit's scheduler answers; how long to wait for it.

    Parameters
    ----------
    client : distributed.Client
    membership : Membership
        Whose refreshes tell when the scheduler last answered.
    patience : float, optional
        Seconds of silence tolerated; by default
        :data:`~.membership.SCHEDULER_PATIENCE` (read when checked).
    """

    def __init__(
        self,
        client: Client,
        membership: Membership,
        patience: float | None = None,
    ) -> None:
        self.client = client
        self.membership = membership
        self._patience = patience

    @property
    def patience(self) -> float:
        """Seconds of silence tolerated."""
        if self._patience is not None:
            return self._patience
        return _membership.SCHEDULER_PATIENCE

    def address(self) -> str:
        """The scheduler's address, as the client knows it."""
        scheduler = self.client.scheduler
        return str(getattr(scheduler, "address", None) or "(unknown address)")

    def check(self) -> None:
        """Raise when the scheduler has been silent past patience, or is closed."""
        if self.client.status in _CLOSED:
            raise self._unavailable(
                f"the client's connection to the Dask scheduler at "
                f"{self.address()} is {self.client.status}"
            )
        silent = self.membership.silent_for()
        if silent > self.patience:
            raise self._unavailable(
                f"the Dask scheduler at {self.address()} has not answered for "
                f"{silent:.0f} s (stopped, overloaded or dead; a fit waits "
                f"{self.patience:.0f} s for it)"
            )

    def answers(self) -> bool:
        """Ask the scheduler now (bounded); whether it answered."""
        self.membership.refresh(force=True)
        return not self.membership.scheduler_silent

    def wait(self) -> None:
        """Wait until the scheduler answers again; raise past patience."""
        delay = 0.05
        while not self.answers():
            self.check()
            time.sleep(delay)
            delay = min(1.0, 2 * delay)

    def _unavailable(self, reason: str) -> SchedulerUnavailableError:
        return SchedulerUnavailableError(
            f"{reason}; the round's weights are untouched (an estimator keeps "
            "its last iterate with warm_start=True). Check the scheduler's "
            "health and logs, then fit again"
        )
