"""``n_stragglers="auto"`` in a run: measure uncoded, grow the code when it pays.

:class:`AutoCoding` is what a :class:`~dask_gradcode.scheduler.CodedGradient`
given an :class:`~dask_gradcode.autocode.AutoCode` runs beside its rounds:

1. the first placement is uncoded (one partition per worker) unless the
   cluster's workers were measured in earlier runs and the measurements say
   which code pays;
2. each round's per-worker times (a coded round's stragglers censored at
   the bound it gives, see :mod:`~dask_gradcode.autocode`) go into the cluster's
   :class:`~dask_gradcode.autocode.LatencyLog`, remembered in this process
   for later runs on the same workers (for :data:`MEMORY_SECONDS`) and data
   width;
3. after :data:`~dask_gradcode.autocode.FIRST_DECISION` rounds of the run
   were measured, and after twice as many each time since,
   :func:`~dask_gradcode.autocode.choose` decides on the newest remembered
   rounds; a code that pays (or, once coding, one that tolerates more and
   pays more) is placed in the background while the rounds go on
   (:meth:`~.layout.Layout.grow`) and taken into use between two rounds.

The process's embedded in-process cluster never codes: its workers share one
interpreter, so they stall together and a code cannot skip them.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from distributed import Client

from dask_gradcode.autocode import (
    AutoCode,
    CodeChoice,
    LatencyLog,
    build_code,
    choose,
    code_key,
    round_timings,
)
from dask_gradcode.codes import GradientCode
from dask_gradcode.scheduler.clients import is_embedded
from dask_gradcode.scheduler.layout import Layout
from dask_gradcode.scheduler.records import RoundRecord

__all__ = ["MEMORY_SECONDS", "AutoCoding", "forget_measurements"]

logger = logging.getLogger("dask_gradcode")

#: How long a cluster's measurements are trusted: a run after that measures
#: again (uncoded) instead of coding on what the workers did long ago.
MEMORY_SECONDS = 1800.0

_MEMORY_LOCK = threading.Lock()


@dataclass
class _Memory:
    """What a cluster's runs measured, and the code the last one settled on."""

    log: LatencyLog = field(default_factory=LatencyLog)
    code: tuple[str, int, int] | None = None
    stamp: float = field(default_factory=time.monotonic)


_MEMORY: dict[tuple[str, int], _Memory] = {}

EMBEDDED_REASON = (
    "n_stragglers='auto': uncoded: the embedded in-process cluster's workers share "
    "one interpreter and stall together, so a code cannot skip them; pass "
    "n_stragglers=k to code anyway, or connect a cluster of worker processes"
)


def forget_measurements() -> None:
    """Forget every cluster's remembered round times (the next runs measure again)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


def _memory_for(key: tuple[str, int]) -> _Memory:
    """The cluster's memory for this data width, a new one if none or too old."""
    with _MEMORY_LOCK:
        memory = _MEMORY.get(key)
        if memory is None or time.monotonic() - memory.stamp > MEMORY_SECONDS:
            memory = _MEMORY[key] = _Memory()
        return memory


class AutoCoding:
    """Measure a run's rounds; grow the code :func:`choose` picks.

    Parameters
    ----------
    spec : AutoCode
    client : distributed.Client
    n_samples : int
        Rows of the data set.
    dim : int
        Length of the gradient (the key measurements are remembered under,
        with the scheduler's address: the work per row depends on it).
    """

    def __init__(
        self, spec: AutoCode, client: Client, n_samples: int, dim: int
    ) -> None:
        self.spec = spec
        self.n_samples = n_samples
        self.dim = dim
        self.embedded = is_embedded(client)
        self._memory = _memory_for((str(client.scheduler_info()["address"]), dim))
        self.log = self._memory.log
        self.choice: CodeChoice | None = None
        self._next_decision = spec.first_decision
        self._measured = 0  # rounds of this run
        self._placement_seconds = 0.0

    def first_code(self, addresses: Sequence[str]) -> GradientCode:
        """The code of the first placement on ``addresses``.

        Uncoded (measuring) unless the workers' remembered measurements
        already say which code pays.  A cluster whose last run coded starts
        from that code (its censored rounds cannot speak for uncoded).
        """
        n = len(addresses)
        if self.embedded:
            return self._settle(
                CodeChoice(self.spec.uncoded(n, EMBEDDED_REASON), EMBEDDED_REASON)
            )
        remembered = choose(
            self.spec,
            self.log,
            list(addresses),
            self.n_samples,
            dim=self.dim,
            current=self._remembered_code(n),
        )
        if remembered is None:
            return self.spec.uncoded(
                n,
                "n_stragglers='auto': uncoded while measuring the workers (a "
                f"code is considered after {self._next_decision} measured rounds)",
            )
        # Decided on what earlier runs measured: decide again once this run
        # has measured as much.
        self._next_decision = max(self._next_decision, remembered.measured_rounds)
        if remembered.codes or n < 2:
            self._remember(remembered.code)
            return self._settle(remembered)
        self.choice = remembered
        return self.spec.uncoded(n, f"{remembered.reason}; measuring on")

    def _remembered_code(self, n: int) -> GradientCode | None:
        key = self._memory.code
        if key is None or key[0] == "uncoded":
            return None
        try:
            code = copy.copy(build_code(*key, n, self.spec.random_state))
        except ValueError:  # not at this size
            return None
        code.selection_reason = (
            "n_stragglers='auto': the code the last run on these workers settled on"
        )
        return code

    def _remember(self, code: GradientCode) -> None:
        with _MEMORY_LOCK:
            self._memory.code = code_key(code)

    def placed(self, seconds: float) -> None:
        """How long the first placement took (a grown code is charged for it)."""
        self._placement_seconds = seconds

    def observe(self, record: RoundRecord, layout: Layout) -> None:
        """Log ``record``'s per-worker times (censored stragglers at their bound)."""
        if self.embedded:
            return
        code, partition_rows = layout.code, layout.partition_rows()
        worker_rows = [
            sum(partition_rows[p] for p in code.partitions(w))
            for w in range(code.n_workers)
        ]
        timings = round_timings(record, worker_rows)
        if timings is not None:
            self.log.add(list(layout.addresses), *timings)
            with _MEMORY_LOCK:
                self._memory.stamp = time.monotonic()
            self._measured += 1

    def maintain(self, layout: Layout) -> None:
        """Between rounds: adopt a grown code, or decide whether to grow one."""
        if self.embedded:
            return
        if layout.growing:
            adopted = layout.adopt_grown()
            if adopted:
                self._remember(layout.code)
            elif adopted is False:
                logger.info("the chosen code could not be placed; measuring on")
            return
        if self._measured < self._next_decision:
            return
        self._next_decision = 2 * self._measured
        choice = choose(
            self.spec,
            self.log,
            list(layout.addresses),
            self.n_samples,
            dim=self.dim,
            placement_seconds=self._placement_seconds,
            current=layout.code,
        )
        if choice is None:
            return
        if code_key(choice.code) == code_key(layout.code):
            if not choice.codes:
                self.choice = choice
                layout.code.selection_reason = choice.reason
            return
        logger.info("%s", choice.reason)
        self.choice = choice
        layout.grow(choice.code)

    def _settle(self, choice: CodeChoice) -> GradientCode:
        self.choice = choice
        return choice.code
