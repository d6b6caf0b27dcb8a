"""Codes made of independent groups of workers, each with its own share of the data.

A grouped code is the direct sum of small codes: group ``t`` has its own
workers, its own partitions (``share_t`` of the data) and its own code, and
the gradient is the sum of the groups' sums.  Decoding, its accuracy and its
cache are per group, so their cost and conditioning depend on the group
sizes, not on ``n``.  Groups of the same size share one code object, and with
it one cache of decoding matrices: a full group decodes from the cache
whichever group it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dask_gradcode.codes._base import (
    Accuracy,
    CodeOptions,
    Decoder,
    DenseCode,
    GradientCode,
    UnstableCodeError,
    WorkerEncoder,
    _ranges,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Group", "GroupedCode"]

#: Above this many entries the dense encoding matrix is not materialised.
MAX_DENSE_ENTRIES = 50_000_000


@dataclass(frozen=True)
class Group:
    """One group of a :class:`GroupedCode`.

    Attributes
    ----------
    code : DenseCode
        The group's code, over local worker and partition ids (possibly shared
        with other groups of the same size).
    first_worker, first_partition : int
        Where the group's ids start in the whole code.
    share : float
        The group's share of the data rows.
    """

    code: DenseCode
    first_worker: int
    first_partition: int
    share: float

    @property
    def workers(self) -> range:
        """Global ids of the group's workers."""
        return range(self.first_worker, self.first_worker + self.code.n_workers)


class GroupedCode(GradientCode):
    """A code made of independent groups (see the module docstring).

    Subclasses call :meth:`_init_groups` with the group codes and shares.
    """

    def _init_groups(
        self,
        parts: Sequence[tuple[DenseCode, float]],
        **options: Unpack[CodeOptions],
    ) -> None:
        groups, worker, partition = [], 0, 0
        for code, share in parts:
            groups.append(Group(code, worker, partition, float(share)))
            worker += code.n_workers
            partition += code.n_partitions
        self._groups = tuple(groups)
        self._group_of = np.repeat(
            np.arange(len(groups)), [g.code.n_workers for g in groups]
        )
        self._n_workers, self._n_partitions = worker, partition
        self._m = groups[0].code.comm_reduction
        self._fractions = np.concatenate(
            [g.share * g.code.partition_fractions for g in groups]
        )
        self._fractions.setflags(write=False)
        # Responders each group needs, when every group's rule is a count
        # (at least one: a group nobody answered never decodes): then
        # decodability is a count per group, not a question to each group.
        counts = [g.code._decodable_count() for g in groups]
        self._needed: np.ndarray | None = None
        if all(count is not None for count in counts):
            self._needed = np.maximum([int(c) for c in counts if c is not None], 1)
        self._needed_total = 0 if self._needed is None else int(self._needed.sum())
        tolerance = min(g.code.n_stragglers for g in groups)
        self._init_contract(n_stragglers=tolerance, **options)

    # ------------------------------------------------------------------ shape
    @property
    def n_workers(self) -> int:
        """Number of workers ``n``."""
        return self._n_workers

    @property
    def n_partitions(self) -> int:
        """Number of data partitions, over all groups."""
        return self._n_partitions

    @property
    def partition_fractions(self) -> np.ndarray:
        """Each partition's share of the data (groups' shares times their own)."""
        return self._fractions

    @property
    def comm_reduction(self) -> int:
        """``m``: each message is ``ceil(dim / m)`` long instead of ``dim``."""
        return self._m

    @property
    def groups(self) -> list[list[int]]:
        """Worker ids of each group."""
        return [list(group.workers) for group in self._groups]

    @property
    def group_codes(self) -> list[DenseCode]:
        """The code of each group (groups of one size share one object)."""
        return [group.code for group in self._groups]

    def _locate(self, worker: int) -> tuple[Group, int]:
        group = self._groups[self._group_of[self._check_worker(worker)]]
        return group, worker - group.first_worker

    def partitions(self, worker: int) -> list[int]:
        """Partition ids that ``worker`` must hold, in the order ``encode`` expects."""
        group, local = self._locate(worker)
        return [group.first_partition + p for p in group.code.partitions(local)]

    def worker_encoder(self, worker: int) -> WorkerEncoder:
        """The small, picklable encoder of one worker (what a task ships)."""
        group, local = self._locate(worker)
        return WorkerEncoder(int(worker), group.code.worker_encoder(local).coefficients)

    @property
    def encoding_matrix(self) -> np.ndarray:
        """``E`` flattened to ``(n_workers, n_partitions * comm_reduction)``.

        Block diagonal over the groups.  Raises for codes too large to
        materialise: use :meth:`partitions` and :meth:`worker_encoder`.
        """
        size = self.n_workers * self.n_partitions * self.comm_reduction
        if size > MAX_DENSE_ENTRIES:
            raise ValueError(
                f"the encoding matrix would have {size:,} entries; read each "
                "worker's part with partitions() and worker_encoder() instead"
            )
        m = self.comm_reduction
        dense = np.zeros((self.n_workers, self.n_partitions * m))
        for group in self._groups:
            columns = slice(
                group.first_partition * m,
                (group.first_partition + group.code.n_partitions) * m,
            )
            dense[group.workers.start : group.workers.stop, columns] = (
                group.code.encoding_matrix
            )
        return dense

    # ----------------------------------------------------------------- decode
    def _split(self, responders: Iterable[int]) -> list[list[int]]:
        """Local ids of the responders in each group."""
        local: list[list[int]] = [[] for _ in self._groups]
        for worker in sorted(responders):
            group = self._group_of[worker]
            local[group].append(worker - self._groups[group].first_worker)
        return local

    def _is_decodable(self, responders: frozenset[int]) -> bool:
        if self._needed is not None:
            # Asked after every arrival: too few responders in all is a no
            # without looking; otherwise one bincount over the group ids.
            if len(responders) < self._needed_total:
                return False
            ids = np.fromiter(responders, dtype=np.intp, count=len(responders))
            answered = np.bincount(self._group_of[ids], minlength=len(self._groups))
            return bool((answered >= self._needed).all())
        return all(
            bool(local) and group.code._is_decodable(frozenset(local))
            for group, local in zip(self._groups, self._split(responders), strict=True)
        )

    def _count_groups(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The groups and their counts, when every group's rule is a count."""
        if self._needed is None:
            return None
        return self._group_of, self._needed

    def _why_not_decodable(self, responders: frozenset[int]) -> str:
        failed = [
            group
            for group, local in zip(self._groups, self._split(responders), strict=True)
            if not local or not group.code._is_decodable(frozenset(local))
        ]
        names = "; ".join(_ranges(group.workers) for group in failed)
        return (
            "every group must be able to decode its own share, and the group(s) "
            f"of workers {names} cannot"
        )

    def _build_decoder(self, responders: frozenset[int]) -> Decoder:
        rows, parts, decodable, condition = [], [], True, 1.0
        for group, local in zip(self._groups, self._split(responders), strict=True):
            if not local:
                decodable = False
                parts.append((_nothing_from(group.code), group.share))
                continue
            decoder = group.code._cached_decoder(frozenset(local))
            decodable &= decoder.decodable
            condition = max(condition, decoder.condition_number)
            rows.append(decoder.coefficients)
            parts.append((_accuracy(decoder), group.share))
        ordered = tuple(sorted(responders))
        return self._make_decoder(
            ordered, np.vstack(rows), condition, decodable, Accuracy.combine(parts)
        )

    def _decoder_from(
        self,
        ordered: tuple[int, ...],
        coefficients: np.ndarray,
        condition: float,
        decodable: bool,
    ) -> Decoder:
        parts, start = [], 0
        for group, local in zip(self._groups, self._split(ordered), strict=True):
            if not local:
                parts.append((_nothing_from(group.code), group.share))
                continue
            block = coefficients[start : start + len(local)]
            start += len(local)
            decoder = group.code._decoder_from(
                tuple(local),
                block,
                condition,
                group.code._is_decodable(frozenset(local)),
            )
            parts.append((_accuracy(decoder), group.share))
        return self._make_decoder(
            ordered, coefficients, condition, decodable, Accuracy.combine(parts)
        )

    # ------------------------------------------------------------ verification
    def group_worst_cases(self, budget: int = 32) -> dict[int, tuple[float, int]]:
        """Worst probed error bound of each distinct group code.

        Returns ``{id(code): (worst bound, sets checked)}``.  Each group code
        is probed with as many stragglers as the whole code tolerates, or its
        own tolerance if smaller.
        """
        worst: dict[int, tuple[float, int]] = {}
        for group in self._groups:
            if id(group.code) not in worst:
                bound, checked, _ = group.code.worst_case(
                    budget=self._group_budget(group.code, budget),
                    n_stragglers=min(group.code.n_stragglers, self.n_stragglers),
                )
                worst[id(group.code)] = (bound, checked)
        return worst

    def _group_budget(self, code: DenseCode, budget: int) -> int:
        """Responder sets to probe in one group code."""
        return budget

    def worst_case(
        self, *, budget: int = 32, n_stragglers: int | None = None
    ) -> tuple[float, int, tuple[int, ...]]:
        """Root-sum-square over the groups of each group's worst probed bound.

        An upper bound on the error bound of any probed pattern, whichever
        groups its stragglers fall in.
        """
        per_code = self.group_worst_cases(budget)
        total = math.sqrt(sum(per_code[id(g.code)][0] ** 2 for g in self._groups))
        checked = sum(count for _, count in per_code.values())
        return total, checked, tuple(range(self.n_workers))

    def _verify(self, budget: int = 32) -> None:
        worst, checked, _ = self.worst_case(budget=budget)
        if not worst <= self.rtol:
            raise UnstableCodeError(
                f"{self.scheme!r} cannot decode to rtol={self.rtol:g} with "
                f"{self.describe()}: its groups' worst responder sets bound the "
                f"error by {worst:.1e} (of {checked} sets measured). "
                f"{self._unstable_advice()}"
            )
        self.verification = (
            f"worst of {checked} responder sets over {len(self._groups)} groups: "
            f"{worst:.1e}"
        )


def _accuracy(decoder: Decoder) -> Accuracy:
    return Accuracy(decoder.residual, decoder.relative_error, decoder.error_bound)


def _nothing_from(code: DenseCode) -> Accuracy:
    """Accuracy of a group nobody answered: its whole sum is missing."""
    k, m = code.n_partitions, code.comm_reduction
    return Accuracy(
        residual=math.sqrt(k * m), relative_error=1.0, error_bound=math.sqrt(k)
    )
