"""The layout of a run: which worker holds which shard, and changing it.

:class:`Layout` owns the code, the code workers' addresses, their placed
shards and the physical worker ids straggler models key on.  It places the
data (planning out workers that die or hang meanwhile), binds each worker's
shard and round context to the transport, re-plans onto other workers and
answers which code workers are usable for a round.  It also grows a code in
the background (:meth:`Layout.grow`): the new code's shards are placed while
rounds go on with the current ones, and taken into use between rounds.  What
to re-plan onto is decided by :mod:`~dask_gradcode.scheduler.judging`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
from dask import is_dask_collection
from distributed import Client, Future

from dask_gradcode.codes import GradientCode, replan_code
from dask_gradcode.codes._sparse import as_dense
from dask_gradcode.scheduler.membership import Membership
from dask_gradcode.scheduler.naming import name_workers
from dask_gradcode.scheduler.placement import PlacementError, place, shard_of
from dask_gradcode.scheduler.protocol import RoundContext, RoundRequest
from dask_gradcode.scheduler.records import NoWorkersError
from dask_gradcode.scheduler.transports import Transport
from dask_gradcode.scheduler.worker import run_round

__all__ = ["MAX_ATTEMPTS", "PLACEMENT_TIMEOUT", "Layout"]

logger = logging.getLogger("dask_gradcode")

#: Placements (and submissions of one round, re-plans included) before giving up.
MAX_ATTEMPTS = 8

#: Seconds a shard transfer may take before its worker counts as hung (plus
#: the shard's size over ``placement.BYTES_PER_SECOND``).
PLACEMENT_TIMEOUT = 10.0


class Layout:
    """The code, its workers and their shards.

    Parameters
    ----------
    client : distributed.Client
    code : GradientCode
        The code of the first placement; its size is the planned size the
        layout grows back to.
    data : tuple
        ``(X, y, sample_weight)`` as :func:`~.placement.check_data` returns it.
    transport : Transport
        Bound to every placement's shards.
    membership : Membership
    context : RoundContext
        The run's round context; each worker's gets its physical id.
    fit_intercept : bool
    warn : callable
        ``warn(message)`` reports a re-plan.
    """

    def __init__(
        self,
        client: Client,
        code: GradientCode,
        data: tuple[Any, Any, Any],
        *,
        transport: Transport,
        membership: Membership,
        context: RoundContext,
        fit_intercept: bool,
        warn: Callable[[str], None],
    ) -> None:
        self.client = client
        self.code = code
        self.planned_workers = code.n_workers
        self.addresses: list[str] = []
        self.shards: list[Future] = []
        # Straggler models key on physical workers: each address gets an id
        # when first placed (0 .. n - 1 for the first placement), kept across
        # re-plans, so a plan cannot dodge an injected slow worker.
        self.physical: dict[str, int] = {}
        #: Whether the layout changed since the last round record said so.
        self.replanned = False
        self._data = data
        self._transport = transport
        self._membership = membership
        self._context = context
        self._fit_intercept = fit_intercept
        self._warn = warn
        self._placements = 0
        self._growing: tuple[GradientCode, list[str], ThreadFuture] | None = None
        self._grower: ThreadPoolExecutor | None = None

    @property
    def n_samples(self) -> int:
        """Rows of the data set."""
        return int(self._data[0].shape[0])

    def expected_message(
        self, worker: int, weights: np.ndarray, *, smoothing: float = 0.0
    ) -> np.ndarray | None:
        """Code worker ``worker``'s message at ``weights``, computed here.

        From the caller's own rows (NumPy, SciPy or pandas input) by the
        workers' own round function, with no injected fault or delay; None
        for dask input, whose rows live only on the cluster.
        """
        if is_dask_collection(self._data[0]):
            return None
        bounds = self.code.partition_bounds(self.n_samples)
        shard = shard_of(
            self.code, worker, self._data, bounds, fit_intercept=self._fit_intercept
        )
        honest = replace(
            self._context,
            token=f"{self._context.token}-audit",  # never a live round's
            straggler_model=None,
            bandwidth=None,
            fault_model=None,
        )
        request = RoundRequest(0, 0, weights=weights, smoothing=smoothing)
        reply = run_round(shard, honest, request)
        return as_dense(reply.message)

    def physical_ids(self) -> list[int]:
        """Each code worker's physical id, in code order."""
        return [self.physical[a] for a in self.addresses]

    def partition_rows(self) -> list[int]:
        """Rows of each partition of the current code."""
        return [int(r) for r in np.diff(self.code.partition_bounds(self.n_samples))]

    # ------------------------------------------------------------ placement
    def place(self, addresses: Sequence[str]) -> None:
        """Place the shards; workers that die or hang meanwhile are planned out."""
        addresses = list(addresses)
        for _ in range(MAX_ATTEMPTS):
            try:
                self._place_once(addresses)
                return
            except PlacementError as failure:
                addresses = self._survivors(addresses, failure)
        raise NoWorkersError("placement kept failing; the cluster is unstable")

    def _place_once(self, addresses: list[str]) -> None:
        physical = dict(self.physical)
        for address in addresses:  # first placement: ids 0 .. n - 1
            physical.setdefault(address, len(physical))
        self._placements += 1  # every attempt's keys are new
        shards = place(
            self.client,
            self.code,
            addresses,
            self._data,
            fit_intercept=self._fit_intercept,
            key_prefix=f"gradcode-place-{self._context.token}-{self._placements}",
            timeout=PLACEMENT_TIMEOUT,
        )
        contexts = self._contexts(addresses, physical)
        failed = self._transport.bind(shards, addresses, contexts)
        if failed:
            self.client.cancel(shards)
            raise PlacementError(
                failed,
                f"the {self._transport.name} transport could not reach workers "
                f"{sorted(failed)}",
            )
        self.shards, self.addresses, self.physical = shards, addresses, physical

    def _contexts(
        self, addresses: Sequence[str], physical: dict[str, int]
    ) -> list[RoundContext]:
        """The run's round context for each worker, with its physical id."""
        return [replace(self._context, worker_id=physical[a]) for a in addresses]

    def _survivors(self, addresses: list[str], failure: PlacementError) -> list[str]:
        """The workers to place on after ``failure``; re-plans the code onto them."""
        survivors = [a for w, a in enumerate(addresses) if w not in failure.workers]
        self._membership.refresh(force=True)
        self._membership.suspect([addresses[w] for w in failure.workers])
        survivors = [a for a in survivors if self._membership.responsive(a)]
        if not survivors:
            raise NoWorkersError(
                f"every worker died or hung while the data was placed ({failure})"
            ) from None
        self.code = replan_code(self.code, len(survivors))
        self._warn(
            f"{name_workers(failure.workers, addresses)} failed while the data "
            f"was placed ({failure}); re-planned on {len(survivors)} workers "
            f"with {self.code!r}"
        )
        return survivors

    def replan(self, addresses: list[str], reason: str, on_failure: str) -> None:
        """A code of the same scheme on ``addresses``, and the data placed again."""
        before = self.code
        self.code = replan_code(before, len(addresses))
        # code_ says what runs now, and why it is not the code the fit began with.
        self.code.selection_reason = (
            f"re-planned from {before.scheme} on {before.n_workers} workers "
            f"(s={before.n_stragglers}) to {len(addresses)} workers: {reason}"
        )
        self._warn(
            f"{reason}; re-planned on {len(addresses)} workers with {self.code!r} "
            f"and placed the data again (on_failure={on_failure!r})"
        )
        self._stop_growing()  # it was for the old workers
        old = self.shards
        self.place(addresses)
        self.replanned = True
        if old:
            try:
                self.client.cancel(old)
            except Exception:  # best effort; they die with the run
                logger.debug("cancelling old shards failed", exc_info=True)

    # ------------------------------------------------------------ growth
    def grow(self, code: GradientCode) -> None:
        """Start placing ``code`` on the current workers, in the background.

        Rounds go on with the current shards; :meth:`adopt_grown` takes the
        new ones into use once they are all placed.
        """
        if self._growing is not None:
            return
        if code.n_workers != len(self.addresses):
            raise ValueError(
                f"a grown code must keep the {len(self.addresses)} workers, got "
                f"{code.n_workers}"
            )
        if self._grower is None:
            self._grower = ThreadPoolExecutor(1, thread_name_prefix="gradcode-grow")
        self._placements += 1
        addresses = list(self.addresses)
        future = self._grower.submit(
            place,
            self.client,
            code,
            addresses,
            self._data,
            fit_intercept=self._fit_intercept,
            key_prefix=f"gradcode-grow-{self._context.token}-{self._placements}",
            timeout=PLACEMENT_TIMEOUT,
        )
        self._growing = (code, addresses, future)

    @property
    def growing(self) -> bool:
        """Whether a code is being placed in the background."""
        return self._growing is not None

    def adopt_grown(self) -> bool | None:
        """Use the grown code if its shards are placed (between rounds).

        Returns True when the grown code is now the code, False when its
        placement failed or the workers changed meanwhile (it is dropped),
        None while it is still being placed.
        """
        if self._growing is None or not self._growing[2].done():
            return None
        code, addresses, future = self._growing
        self._growing = None
        try:
            shards = future.result()
        except PlacementError as failure:
            logger.info("growing %r failed: %s", code, failure)
            return False
        if addresses != self.addresses:
            self.client.cancel(shards)
            return False
        contexts = self._contexts(addresses, self.physical)
        if self._transport.bind(shards, addresses, contexts):
            self.client.cancel(shards)
            # The old shards are still placed (on the same workers): bind them
            # again.
            self._transport.bind(self.shards, self.addresses, contexts)
            return False
        old, self.shards, self.code = self.shards, shards, code
        self.replanned = True
        self.client.cancel(old)
        return True

    def _stop_growing(self) -> None:
        """Drop a growth in flight (waits for its placement, bounded)."""
        if self._growing is not None:
            future = self._growing[2]
            self._growing = None
            try:
                self.client.cancel(future.result(timeout=PLACEMENT_TIMEOUT))
            except Exception:  # failed or still hung: its keys die with the run
                logger.debug("dropping a growth failed", exc_info=True)
        if self._grower is not None:
            self._grower.shutdown(wait=False, cancel_futures=True)
            self._grower = None

    # --------------------------------------------------------------- rounds
    def usable(self) -> list[int]:
        """Code workers that are alive, responsive and still hold their shard."""
        self._membership.refresh()
        return [
            worker
            for worker, (address, shard) in enumerate(
                zip(self.addresses, self.shards, strict=True)
            )
            if self._membership.responsive(address)
            and shard.status == "finished"
            and self._transport.ready(worker)
        ]

    def gone(self, pending: set[int]) -> set[int]:
        """Pending code workers whose workers the scheduler no longer lists."""
        live = self._membership.live()
        return {w for w in pending if self.addresses[w] not in live}

    def close(self) -> None:
        """Release the placed shards (bounded: a cancel is one message)."""
        self._stop_growing()
        if self.shards and self.client.status == "running":
            try:
                self.client.cancel(self.shards)
            except Exception:  # the cluster is going away anyway
                logger.debug("cancelling shards failed", exc_info=True)
        self.shards = []
