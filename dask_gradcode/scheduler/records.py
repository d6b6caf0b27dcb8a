"""What a coded round reports, and the warnings and errors a fit can raise."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from typing import Any

from dask_gradcode.warn import warn_from_caller

__all__ = [
    "DecodingAccuracyWarning",
    "IntegrityWarning",
    "NoWorkersError",
    "RoundRecord",
    "SchedulerUnavailableError",
    "ToleratedFailureWarning",
    "WorkerErrorWarning",
    "WorkerFailureWarning",
    "WorkerMemoryError",
    "warn_caller",
]

logger = logging.getLogger("dask_gradcode")

_SCHEDULER = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_caller(message: str, category: type[Warning]) -> None:
    """Log ``message`` and warn it from the first frame outside the scheduler.

    The warning points at the code that called into the scheduler (a fit, or
    the user's ``cg(w)``), wherever in the scheduler it was raised.
    """
    logger.info(message)
    warn_from_caller(message, category, inside=_SCHEDULER)


class WorkerFailureWarning(RuntimeWarning):
    """Workers failed, hung or joined beyond what the code tolerates; the run adapted."""


class ToleratedFailureWarning(WorkerFailureWarning):
    """A worker died or hung and the code decoded without it: the fit went on.

    Once per worker and fit; silence it with
    ``warnings.filterwarnings("ignore", category=ToleratedFailureWarning)``
    (the records still list every failure).
    """


class WorkerErrorWarning(RuntimeWarning):
    """A worker's task raised; the round decoded without it."""


class IntegrityWarning(RuntimeWarning):
    """A round's replies disagreed: the workers found wrong were dropped."""


class DecodingAccuracyWarning(RuntimeWarning):
    """Rounds waited for more workers because a decodable set missed ``rtol``."""


class NoWorkersError(RuntimeError):
    """Every worker of the fit is gone (dead, hung or failing) and none joined.

    Raised by a round; the weights the round was asked for are untouched, so
    the caller (an estimator) keeps its last iterate and can resume.
    """


class WorkerMemoryError(MemoryError):
    """The shards would not fit the workers' ``memory_limit``: nothing was sent."""


class SchedulerUnavailableError(NoWorkersError):
    """The Dask scheduler stopped answering (stalled past patience, or dead).

    Raised by a round like :class:`NoWorkersError` (of which it is a
    subclass): the weights are untouched and an estimator keeps its state.
    """


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
        Time of the whole call, submission to decoded gradient, including any
        attempt that failed and the re-plan after it.
    submit_seconds : float
        Time to ship the weights and submit the tasks (last attempt).
    wait_seconds : float
        Time spent waiting for workers until the responders were decodable
        (last attempt).
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
        Workers found dead, hung (no heartbeat, or past the round's
        deadline) or raising in the attempt that decoded.
    errors : dict of int to str
        The error each raising worker's task raised, ``"Type: message"``.
    timed_out : tuple of int
        Workers that had not answered when the round's deadline passed.
    deadline_seconds : float
        The deadline the last attempt waited under.
    attempts : int
        Submissions it took: more than 1 after a re-plan.
    bytes_received : int
        Bytes of the messages decoded.
    compute_seconds : dict of int to float
        Each responder's computation time.
    injected_delay : dict of int to float
        Delay each responder's straggler and bandwidth models added.
    exact : bool
        Whether the gradient is exact to the code's ``rtol`` (False for
        approximate decoding, and for replies that disagreed with no worker
        found wrong).
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
        Whether the code was re-planned (shrunk or grown) before this round.
    workers : tuple of str
        Address of each code worker, in code order.
    plan : {"coded", "split"}
        What the round computed (see :mod:`~dask_gradcode.scheduler.plans`):
        the coded round, or a split round (each row once, late shares backed
        up).
    response_seconds : dict of int to float
        When each code worker's own task's reply reached the client, seconds
        after the round's submission; workers missing were late (their
        replies were not waited for) or failed.
    backups : dict of int to tuple of int
        Split rounds: the workers whose rows were recomputed by others
        (late or failed), and who recomputed them.
    work_seconds : dict of int to float
        The part of each responder's time that grows with the rows it
        computes: its computation plus emulated computation
        (:class:`~dask_gradcode.stragglers.ComputeTime`).
    verified : bool
        Whether spare replies were checked against the decoded ones and
        agreed (:func:`~dask_gradcode.codes.integrity.check_replies`); False
        for a round with no redundancy to check (uncoded, split rounds, no
        spare reply in time).
    discrepancy : float
        The replies' relative disagreement (0.0 when not checked).
    checked_replies : tuple of int
        The replies the check covered (decoded ones and spares).
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
    errors: dict[int, str] = field(repr=False)
    timed_out: tuple[int, ...]
    deadline_seconds: float
    attempts: int
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
    workers: tuple[str, ...] = field(repr=False)
    plan: str = "coded"
    response_seconds: dict[int, float] = field(default_factory=dict, repr=False)
    backups: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False)
    work_seconds: dict[int, float] = field(default_factory=dict, repr=False)
    verified: bool = False
    discrepancy: float = 0.0
    checked_replies: tuple[int, ...] = field(default=(), repr=False)

    def named(self, field_name: str) -> Any:
        """A field of code indices (or keyed by them) with each index's address.

        ``record.named("stragglers")`` is the stragglers' addresses;
        ``record.named("compute_seconds")`` the same dict keyed by address.
        """
        value = getattr(self, field_name)
        if field_name == "backups":  # who was backed up, by whom: both indices
            return {
                self.workers[w]: tuple(self.workers[b] for b in by)
                for w, by in value.items()
            }
        if field_name in _KEYED_FIELDS:
            return {self.workers[w]: v for w, v in value.items()}
        if field_name in _INDEX_FIELDS:
            return tuple(self.workers[w] for w in value)
        raise ValueError(
            f"{field_name!r} holds no code indices; those that do: "
            f"{sorted(_INDEX_FIELDS | _KEYED_FIELDS)}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The record as a plain dict (its dicts copied; the rest is immutable).

        Not ``dataclasses.asdict``: its deep copy cost a tiny fit 0.5 ms per
        iteration.
        """
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {
            name: dict(value) if isinstance(value, dict) else value
            for name, value in values.items()
        }


#: The record's fields of code indices, and of dicts keyed by them.
_INDEX_FIELDS = frozenset(
    {"responders", "stragglers", "failed", "timed_out", "checked_replies"}
)
_KEYED_FIELDS = frozenset(
    {
        "errors",
        "compute_seconds",
        "injected_delay",
        "response_seconds",
        "backups",
        "work_seconds",
    }
)
