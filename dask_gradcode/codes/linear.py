"""Gradient codes from any linear code (Kadhe, Koyluoglu & Ramchandran 2020).

A real ``[N, K, D]`` linear code with generator ``G`` (``K x N``) gives a
gradient code with load ``N``, communication reduction ``m = K`` and straggler
tolerance ``s = D - 1``; an MDS code (``D = N - K + 1``) meets ``d = s + m``.

Placement: workers form groups, every member of a group holds the group's
partitions, sums their partial gradients into ``h``, cuts ``h`` into ``K``
sub-vectors and sends the codeword symbol of its column ``c`` of ``G``:
``sum_u G[u, c] h^(u)``.  Decoding solves one small ``K x r`` system per group
(``r`` = responders in the group), so its conditioning does not grow with the
number of workers.  With ``N | n`` the groups have exactly ``N`` members.
Otherwise the ``q = n // N`` groups are as even as possible (sizes ``N`` or
more) and the data is cut into ``q * N`` partitions, ``N`` per group: every
worker still holds ``N`` partitions and computes the same share, ``1 / q`` of
the data, which is more than the optimal ``(s + m) / n``.  Members beyond
``N`` repeat columns of ``G`` (the Gaussian construction draws extra columns
instead); ``load_fraction`` and ``is_optimal`` say what the code really costs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from dask_gradcode.codes._base import GradientCode
from dask_gradcode.codes._validation import check_load_fits, rng_from

__all__ = ["GaussianMDSCode", "LinearCode", "group_sizes", "straggler_tolerance"]

#: Rank checks allowed when certifying a code's minimum distance exactly.
MAX_RANK_CHECKS = 200_000


def group_sizes(n_workers: int, block_length: int) -> list[int]:
    """``n // N`` group sizes, as even as possible, each at least ``N``."""
    n_groups = n_workers // block_length
    base, extra = divmod(n_workers, n_groups)
    return [base + (1 if t < extra else 0) for t in range(n_groups)]


def straggler_tolerance(generator: np.ndarray) -> int:
    """Largest ``t`` such that every ``N - t`` columns of ``G`` have full row rank.

    Equals the minimum distance minus one.  Exact: it enumerates column
    subsets in increasing size until one size has no rank-deficient subset.

    Raises
    ------
    ValueError
        If certifying it would take more than ``MAX_RANK_CHECKS`` rank checks.
    """
    k, n = generator.shape
    tol = _rank_tolerance(generator)
    checks = 0
    for size in range(k, n + 1):
        checks += math.comb(n, size)
        if checks > MAX_RANK_CHECKS:
            raise ValueError(
                f"certifying the minimum distance of a {k} x {n} generator needs more "
                f"than {MAX_RANK_CHECKS} rank checks; use a shorter code (fewer "
                "columns) or 'gaussian-mds'"
            )
        if all(
            np.linalg.matrix_rank(generator[:, list(cols)], tol=tol) == k
            for cols in itertools.combinations(range(n), size)
        ):
            return n - size
    raise ValueError("generator is rank deficient")  # unreachable after checks


def _rank_tolerance(matrix: np.ndarray) -> float:
    """Singular values below this count as zero (numpy's default, for the whole G)."""
    return float(
        np.linalg.svd(matrix, compute_uv=False).max()
        * max(matrix.shape)
        * np.finfo(np.float64).eps
    )


class LinearCode(GradientCode):
    """Gradient code from a user's generator matrix.

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    generator : array-like of shape (K, N)
        Real generator matrix with full row rank ``K`` and ``N <= n_workers``
        columns.  ``comm_reduction`` is ``K``; the straggler tolerance is the
        code's minimum distance minus one, computed exactly.
    n_stragglers : int, optional
        Tolerance you need; raises if the code cannot give it.
    comm_reduction : int, optional
        Must equal ``K`` if given.
    """

    scheme = "linear"

    def __init__(
        self,
        n_workers: int,
        generator: Any,
        *,
        n_stragglers: int | None = None,
        comm_reduction: int | None = None,
        **kwargs: Any,
    ) -> None:
        generator = self._check_generator(generator, n_workers)
        k, block_length = generator.shape
        if comm_reduction is not None and comm_reduction != k:
            raise ValueError(
                f"a generator with {k} rows gives comm_reduction={k}; got "
                f"comm_reduction={comm_reduction}. Pass comm_reduction={k} or "
                f"a generator with {comm_reduction} rows"
            )
        sizes = group_sizes(n_workers, block_length)
        columns = [[c % block_length for c in range(size)] for size in sizes]
        self._init_groups(
            generator, sizes, columns, n_stragglers, kwargs, block_length=block_length
        )

    @staticmethod
    def _check_generator(generator: Any, n_workers: int) -> np.ndarray:
        matrix = np.array(generator, dtype=np.float64)
        if matrix.ndim != 2 or 0 in matrix.shape:
            raise ValueError(
                f"generator must be a non-empty 2-D K x N matrix, got shape {matrix.shape}"
            )
        if not np.all(np.isfinite(matrix)):
            raise ValueError("generator contains NaN or inf")
        k, block_length = matrix.shape
        if block_length > n_workers:
            raise ValueError(
                f"generator has N={block_length} columns (the load) but there are only "
                f"{n_workers} workers; use a code with at most {n_workers} columns"
            )
        rank = np.linalg.matrix_rank(matrix)
        if rank < k:
            raise ValueError(
                f"generator is rank deficient: rank {rank} < {k} rows. Remove the "
                f"dependent rows (comm_reduction would then be {rank})"
            )
        return matrix

    def _init_groups(
        self,
        generator: np.ndarray,
        sizes: list[int],
        columns: list[list[int]],
        n_stragglers: int | None,
        kwargs: dict[str, Any],
        block_length: int,
    ) -> None:
        """Place groups, compute the real tolerance, build the encoding."""
        k = generator.shape[0]
        n = sum(sizes)
        self._generator = generator
        self._group_generators = [generator[:, cols] for cols in columns]
        self._rank_tol = _rank_tolerance(generator)
        # Groups with the same columns share a tolerance: certify each once.
        distinct = {tuple(cols): generator[:, cols] for cols in columns}
        tolerance = min(straggler_tolerance(g) for g in distinct.values())
        if n_stragglers is not None and n_stragglers > tolerance:
            raise ValueError(
                f"this generator tolerates only {tolerance} straggler(s) with "
                f"n_workers={n} (minimum distance {tolerance + 1}); pass "
                f"n_stragglers<={tolerance} or a code with larger minimum distance"
            )
        starts = np.cumsum([0, *sizes])
        self._group_of = np.repeat(np.arange(len(sizes)), sizes)
        self._group_members = [
            list(range(starts[t], starts[t + 1])) for t in range(len(sizes))
        ]
        # Every group holds the same number of (equal) partitions, so every
        # worker computes the same share of the data even when groups differ
        # in size; larger groups only add redundancy.
        per_group = block_length
        supports = [
            list(
                range(
                    self._group_of[i] * per_group, (self._group_of[i] + 1) * per_group
                )
            )
            for i in range(n)
        ]
        encoding = np.zeros((n, per_group * len(sizes), k))
        for t, members in enumerate(self._group_members):
            held = supports[members[0]]
            for c, worker in enumerate(members):
                encoding[worker, held, :] = self._group_generators[t][:, c]
        super().__init__(
            n_stragglers=tolerance, supports=supports, encoding=encoding, **kwargs
        )

    @property
    def generator(self) -> np.ndarray:
        """The generator matrix ``G`` (``comm_reduction x block length``)."""
        return self._generator.copy()

    @property
    def groups(self) -> list[list[int]]:
        """Worker ids of each group; a group's members hold the same partitions."""
        return [list(members) for members in self._group_members]

    def _responders_by_group(self, responders: frozenset[int]) -> list[list[int]]:
        by_group: list[list[int]] = [[] for _ in self._group_members]
        for worker in sorted(responders):
            by_group[self._group_of[worker]].append(worker)
        return by_group

    def _group_rank(self, group: int, workers: list[int]) -> int:
        if len(workers) < self.comm_reduction:
            return len(workers)
        cols = [w - self._group_members[group][0] for w in workers]
        return int(
            np.linalg.matrix_rank(
                self._group_generators[group][:, cols], tol=self._rank_tol
            )
        )

    def _failed_groups(self, responders: frozenset[int]) -> list[int]:
        return [
            t
            for t, workers in enumerate(self._responders_by_group(responders))
            if self._group_rank(t, workers) < self.comm_reduction
        ]

    def _is_decodable(self, responders: frozenset[int]) -> bool:
        return not self._failed_groups(responders)

    def _why_not_decodable(self, responders: frozenset[int]) -> str:
        failed = self._failed_groups(responders)
        groups = "; ".join(
            f"{self._group_members[t][0]}..{self._group_members[t][-1]}" for t in failed
        )
        return (
            f"each group needs responders whose columns of the generator have rank "
            f"{self.comm_reduction}, and the group(s) of workers {groups} do not"
        )

    def _exact_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        """Per group, ``pinv`` of the responders' ``K x r`` generator columns.

        Using every responder of a group (not just ``K`` of them) solves an
        overdetermined consistent system, which is never worse conditioned.
        """
        coefficients = np.zeros((len(responders), self.comm_reduction))
        row_of = {worker: row for row, worker in enumerate(responders)}
        condition = 1.0
        for t, workers in enumerate(self._responders_by_group(frozenset(responders))):
            cols = [w - self._group_members[t][0] for w in workers]
            block = self._group_generators[t][:, cols]
            coefficients[[row_of[w] for w in workers]] = np.linalg.pinv(block)
            condition = max(condition, float(np.linalg.cond(block)))
        return coefficients, condition


class GaussianMDSCode(LinearCode):
    """Random Gaussian MDS generator in the linear-code framework.

    ``G`` (``m x (s + m)``, i.i.d. standard normal) generates an MDS code with
    probability 1, so the code tolerates ``s`` stragglers at load
    ``d = s + m`` (optimal) whenever ``d`` divides ``n_workers``.  Otherwise
    groups are larger than ``d`` and get extra Gaussian columns; the load grows
    and the tolerance reported is what the larger groups give.

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    n_stragglers : int
        Stragglers tolerated (at least).
    comm_reduction : int
        ``m``.
    random_state : None, int or numpy Generator
        Seed for ``G``.
    n_candidates : int, default=8
        Generators drawn; the one whose worst ``m x m`` column submatrix is best
        conditioned is kept (deterministic for a fixed ``random_state``).
    """

    scheme = "gaussian-mds"

    def __init__(
        self,
        n_workers: int,
        n_stragglers: int,
        comm_reduction: int,
        *,
        random_state: object = None,
        n_candidates: int = 8,
        **kwargs: Any,
    ) -> None:
        n, s, m = n_workers, n_stragglers, comm_reduction
        load = s + m
        check_load_fits(self.scheme, n, load)
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        sizes = group_sizes(n, load)
        rng = rng_from(random_state)
        candidates = [rng.standard_normal((m, max(sizes))) for _ in range(n_candidates)]
        generator = min(candidates, key=lambda g: _worst_square_condition(g, rng))
        columns = [list(range(size)) for size in sizes]
        self._init_groups(generator, sizes, columns, None, kwargs, block_length=load)

    def _group_rank(self, group: int, workers: list[int]) -> int:
        # MDS (certified at construction): any m columns have full rank.
        return min(len(workers), self.comm_reduction)


def _worst_square_condition(
    generator: np.ndarray, rng: np.random.Generator, max_subsets: int = 5_000
) -> float:
    """Largest condition number over ``m x m`` column submatrices (sampled if many)."""
    m, n = generator.shape
    if math.comb(n, m) <= max_subsets:
        subsets = np.array(list(itertools.combinations(range(n), m)))
    else:
        subsets = np.array(
            [np.sort(rng.choice(n, size=m, replace=False)) for _ in range(max_subsets)]
        )
    return float(np.linalg.cond(generator[:, subsets].transpose(1, 0, 2)).max())
