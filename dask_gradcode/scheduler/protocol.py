"""The round protocol: what the client sends a worker for a round, and what comes back.

A run binds one :class:`RoundContext` per worker when its data is placed
(the objective, the injected-delay models, the run's token and the worker's
physical id: everything that is the same for every round), and each round
sends a small :class:`RoundRequest` (iteration, submission, batch, and the
rows of a split round).  The weights travel as each transport chooses (inside
the request, as their own frame, or scattered once): see
:mod:`~dask_gradcode.scheduler.transports`.  The worker answers with a
:class:`Reply`.

Pure data: no Dask.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from dask_gradcode.codes._sparse import SparseMessage
from dask_gradcode.objectives import Objective
from dask_gradcode.stragglers import Bandwidth

__all__ = ["Batch", "Reply", "RoundContext", "RoundRequest", "Slice"]

#: ``(block index in the worker's shard, first row, end row)``, rows local to the block.
Slice = tuple[int, int, int]


class Batch(NamedTuple):
    """A coded mini-batch: which rows a round takes (see ``sample_block``)."""

    seed: int
    fraction: float
    shuffle: bool = True


@dataclass(frozen=True)
class RoundContext:
    """What every round of one worker shares within a run: bound once.

    Attributes
    ----------
    objective : Objective
    token : str
        The run's identifier (early wake-ups of injected delays key on it).
    worker_id : int
        The physical worker's stable id (straggler models key on it).
    n_workers : int
        The size the code was planned for (straggler models see it).
    straggler_model, bandwidth : optional
        Injected delays (:mod:`~dask_gradcode.stragglers`).
    fault_model : optional
        Injected wrong results (:class:`~dask_gradcode.faults.WrongResults`).
    """

    objective: Objective
    token: str
    worker_id: int
    n_workers: int
    straggler_model: Any = None
    bandwidth: Bandwidth | None = None
    fault_model: Any = None

    @property
    def sleeps(self) -> bool:
        """Whether a round may sleep an injected delay (then it can be woken)."""
        return self.straggler_model is not None or self.bandwidth is not None


@dataclass(frozen=True)
class RoundRequest:
    """One round of one worker.

    Attributes
    ----------
    iteration : int
        The round's number (drives straggler models and mini-batches).
    submission : int
        This attempt's number, unique within the run: a retried round never
        meets the results, cancellations or wake-ups of the attempt it
        replaces.
    batch : Batch or None
        The round's mini-batch; None for every row.
    slices : tuple of Slice or None
        None for a coded round (every partition of the shard, encoded);
        otherwise a split round's share: the plain sum over these rows.
    weights : ndarray or None
        The weights, when they travel inside the request (else beside it).
    audit : bool
        An audit of a coded round: the worker sends its partitions' partial
        (loss, gradient)s unencoded, one row each (see
        :func:`~dask_gradcode.codes.integrity.locate_faults`).
    smoothing : float
        The width the loss's kinks are rounded off over
        (:meth:`~dask_gradcode.objectives.Objective.smoothed`); 0 for the
        loss itself.
    """

    iteration: int
    submission: int
    batch: Batch | None = None
    slices: tuple[Slice, ...] | None = None
    weights: np.ndarray | None = None
    audit: bool = False
    smoothing: float = 0.0

    @property
    def kind(self) -> str:
        """``"coded"``, ``"split"`` or ``"audit"``."""
        if self.audit:
            return "audit"
        return "coded" if self.slices is None else "split"

    def carrying(self, weights: np.ndarray | None) -> RoundRequest:
        """The same request with ``weights`` inside it (None: sent beside it)."""
        return replace(self, weights=weights)


@dataclass(frozen=True)
class Reply:
    """One worker's answer to a round.

    A coded round's ``message`` is a :class:`~dask_gradcode.codes.SparseMessage`
    when it is mostly zeros (wide sparse rows); the decoders take either.
    """

    message: np.ndarray | SparseMessage
    compute_seconds: float
    injected_delay: float
    rows: int = 0
    #: Of ``injected_delay``, the emulated computation
    #: (:func:`~dask_gradcode.stragglers.model_work`).
    emulated_seconds: float = 0.0
    #: The round was over before this worker finished it: nothing computed.
    dropped: bool = False
