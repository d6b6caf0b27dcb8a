"""Audits: when a round's replies disagree, find the workers that are wrong.

:class:`Auditor` runs an audit round at the disagreeing round's weights (every
usable worker sends its partitions' partial gradients unencoded), asks
:func:`~dask_gradcode.codes.integrity.locate_faults` who differs from their
partitions' other holders, and drops those workers from the run: they are
left out of every later round and re-plan, like workers whose tasks keep
raising.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from dask_gradcode.codes._sparse import SparseMessage, as_dense
from dask_gradcode.codes.integrity import (
    VERIFY_RTOL,
    Consistency,
    agree,
    locate_faults,
)
from dask_gradcode.scheduler.naming import name_workers
from dask_gradcode.scheduler.protocol import RoundRequest
from dask_gradcode.scheduler.records import IntegrityWarning, warn_caller
from dask_gradcode.scheduler.rounds import collect_all

if TYPE_CHECKING:
    from dask_gradcode.scheduler.executors import RoundInput, RoundParts

__all__ = ["Auditor", "WrongWorkers"]


class WrongWorkers(Exception):
    """Workers were found wrong and dropped: compute the round again without them.

    Attributes
    ----------
    workers : set of int
        Code indices of the dropped workers.
    """

    def __init__(self, reason: str, workers: set[int]) -> None:
        super().__init__(reason)
        self.workers = workers


class Auditor:
    """Audit rounds of one run (see the module's description)."""

    def __init__(self, parts: RoundParts) -> None:
        self.parts = parts

    def audit(
        self,
        round_input: RoundInput,
        messages: Mapping[int, np.ndarray | SparseMessage],
        consistency: Consistency,
    ) -> None:
        """Find and drop the wrong workers; raises :class:`WrongWorkers` if any.

        Returns without raising when nobody can be named (the replies
        disagreed, but every audited partial and message agrees with the
        others): the caller records the round as neither verified nor exact.
        """
        parts, code = self.parts, self.parts.layout.code
        partials = self._partials(round_input)
        located = locate_faults(code, partials, messages)
        suspects = set(located.faulty)
        for partition in located.undecided:
            suspects |= {
                w for w in partials if partition in code.partitions(w)
            }  # two opinions and no third: neither can be trusted
        if not suspects:
            return
        addresses = [parts.layout.addresses[w] for w in sorted(suspects)]
        parts.membership.dropped.update(addresses)
        how = (
            "its results differ from the other holders of its partitions"
            if not located.undecided
            else "two holders of a partition disagree and no third can tell "
            "which is wrong, so both are dropped"
        )
        reason = (
            f"round {round_input.iteration}: the replies disagree (relative "
            f"discrepancy {consistency.discrepancy:.2g}, tolerance "
            f"{consistency.tolerance:.2g}); an audit found "
            f"{name_workers(suspects, parts.layout.addresses)} wrong: {how}. Dropped from "
            "this fit; the round is computed again without "
            + ("it" if len(addresses) == 1 else "them")
        )
        warn_caller(reason, IntegrityWarning)
        raise WrongWorkers(reason, suspects)

    def spot_check(
        self,
        round_input: RoundInput,
        messages: Mapping[int, np.ndarray | SparseMessage],
        weights: np.ndarray | None,
    ) -> bool:
        """Recompute one responder's message on the client; drop it if wrong.

        The periodic audit (``audit_every``) for rounds with nothing to
        compare (uncoded codes, no spare reply): the responders take turns,
        and the client computes the chosen one's partitions from the
        caller's own rows.  Returns whether a check ran (not for dask
        input, whose rows the client does not hold); raises
        :class:`WrongWorkers` when the message differs.
        """
        parts = self.parts
        if weights is None or not messages:
            return False
        responders = sorted(messages)
        worker = responders[round_input.iteration % len(responders)]
        expected = parts.layout.expected_message(
            worker, weights, smoothing=round_input.smoothing
        )
        if expected is None:
            return False
        got = np.asarray(as_dense(messages[worker]), dtype=np.float64)
        if agree(got, expected, VERIFY_RTOL):
            return True
        address = parts.layout.addresses[worker]
        parts.membership.dropped.add(address)
        scale = max(float(np.linalg.norm(expected)), float(np.linalg.norm(got)))
        reason = (
            f"round {round_input.iteration}: the audit recomputed the message of "
            f"{name_workers([worker], parts.layout.addresses)} on the client and it differs "
            f"(relative difference {np.linalg.norm(got - expected) / scale:.2g}). "
            "Dropped from this fit; the round is computed again without it"
        )
        warn_caller(reason, IntegrityWarning)
        raise WrongWorkers(reason, {worker})

    def _partials(self, round_input: RoundInput) -> dict[int, np.ndarray]:
        """Every usable worker's unencoded partials at the round's weights."""
        parts = self.parts
        submission = next(parts.submissions)
        request = RoundRequest(
            round_input.iteration,
            submission,
            round_input.batch,
            audit=True,
            smoothing=round_input.smoothing,
        )
        arrivals, handles = parts.submit_all(request, round_input)
        collected = collect_all(
            handles,
            arrivals=arrivals,
            deadline=time.monotonic() + parts.deadline.seconds(),
        )
        parts.release(collected.pending, submission)
        return {
            w: np.asarray(reply.message)
            for w, reply in collected.replies.items()
            if isinstance(reply.message, np.ndarray)
            and reply.message.ndim == 2
            and not reply.dropped
        }
