"""Gradient codes from any linear code (Kadhe, Koyluoglu & Ramchandran 2020).

A real ``[N, K, D]`` linear code with generator ``G`` (``K x N``) gives a
gradient code with load ``N``, communication reduction ``m = K`` and straggler
tolerance ``s = D - 1``; an MDS code (``D = N - K + 1``) meets ``d = s + m``.

Placement: workers form groups, every member of a group holds the group's
data, computes its gradient ``h``, cuts ``h`` into ``K`` sub-vectors and sends
the codeword symbol of its column ``c`` of ``G``: ``sum_u G[u, c] h^(u)``.
Decoding solves one small ``K x r`` system per group (``r`` = responders in
the group), so its conditioning does not grow with the number of workers.

With a user's generator the ``q = n // N`` groups are as even as possible
(``N`` members or more, repeating columns of ``G``) and each holds ``1 / q`` of
the data: optimal when ``N`` divides ``n``, ``load_fraction = 1 / q``
otherwise.  :class:`~dask_gradcode.codes.gaussian.GaussianMDSCode` reaches the
optimal load at every ``n``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np

from dask_gradcode.codes._base import DenseCode
from dask_gradcode.codes._grouped import GroupedCode

__all__ = [
    "GeneratorGroup",
    "LinearCode",
    "SampledCertificationWarning",
    "group_sizes",
    "pseudo_inverse",
    "straggler_tolerance",
]

#: Rank checks allowed when certifying a code's minimum distance exactly.
MAX_RANK_CHECKS = 200_000

#: Column subsets checked when the exact certification is out of reach.
SAMPLED_RANK_CHECKS = 2_000


class SampledCertificationWarning(UserWarning):
    """A generator's straggler tolerance was checked on a sample of column subsets."""


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
                f"than {MAX_RANK_CHECKS} rank checks; pass the n_stragglers you need "
                "(it is then checked on a sample of column subsets), use a shorter "
                "code, or use 'gaussian-mds'"
            )
        if all(
            np.linalg.matrix_rank(generator[:, list(cols)], tol=tol) == k
            for cols in itertools.combinations(range(n), size)
        ):
            return n - size
    raise ValueError("generator is rank deficient")  # unreachable after checks


def sampled_rank_failures(
    generator: np.ndarray, n_stragglers: int, n_checks: int, seed: int = 0
) -> list[tuple[int, ...]]:
    """Column subsets of size ``N - s`` (a seeded sample) with rank below ``K``."""
    k, n = generator.shape
    tol = _rank_tolerance(generator)
    rng = np.random.default_rng([n, k, n_stragglers, seed])
    failures = []
    for _ in range(n_checks):
        cols = tuple(sorted(rng.choice(n, n - n_stragglers, replace=False).tolist()))
        if np.linalg.matrix_rank(generator[:, list(cols)], tol=tol) < k:
            failures.append(cols)
    return failures


def pseudo_inverse(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Moore-Penrose inverse of a full-rank matrix and its condition number.

    A square matrix is inverted by LU, with the Frobenius condition number (an
    upper bound on the 2-norm one); others take one SVD.  LU is five times
    faster at 1000 x 1000, which is what a large generator group solves.
    """
    if matrix.shape[0] == matrix.shape[1] and matrix.shape[0] > 64:
        inverse = np.linalg.inv(matrix)
        condition = float(np.linalg.norm(matrix) * np.linalg.norm(inverse))
        return inverse, condition
    u, singular, vt = np.linalg.svd(matrix, full_matrices=False)
    inverse = (vt.T / singular) @ u.T
    return inverse, float(singular[0] / singular[-1])


def _rank_tolerance(matrix: np.ndarray) -> float:
    """Singular values below this count as zero (numpy's default, for the whole G)."""
    return float(
        np.linalg.svd(matrix, compute_uv=False).max()
        * max(matrix.shape)
        * np.finfo(np.float64).eps
    )


class GeneratorGroup(DenseCode):
    """One group of the linear-code framework: every member holds one partition.

    Member ``c`` sends ``sum_u generator[u, c] h^(u)``; any members whose
    columns have full row rank decode, by one pseudo-inverse.

    Parameters
    ----------
    generator : ndarray of shape (m, n_members)
        One column per member (columns may repeat).
    n_stragglers : int
        The group's certified tolerance.
    rank_tolerance : float, optional
        Singular values below it count as zero in the rank test (default:
        numpy's, for ``generator``).
    mds : bool, default=False
        Whether any ``m`` columns are known to have full rank (a Gaussian
        generator), which turns the rank test into a count.
    """

    scheme = "linear-group"

    def __init__(
        self,
        generator: np.ndarray,
        n_stragglers: int,
        *,
        rank_tolerance: float | None = None,
        mds: bool = False,
        **kwargs: Any,
    ) -> None:
        self._generator = np.asarray(generator, dtype=np.float64)
        members = self._generator.shape[1]
        self._rank_tol = (
            _rank_tolerance(self._generator)
            if rank_tolerance is None
            else rank_tolerance
        )
        self._mds = mds
        super().__init__(
            n_stragglers=n_stragglers,
            supports=[[0]] * members,
            encoding=self._generator.T[:, None, :],
            **kwargs,
        )

    @property
    def generator(self) -> np.ndarray:
        """The group's generator columns (``m x members``)."""
        return self._generator.copy()

    def _is_decodable(self, responders: frozenset[int]) -> bool:
        m = self.comm_reduction
        if len(responders) < m:
            return False
        if self._mds:
            return True
        block = self._generator[:, sorted(responders)]
        return int(np.linalg.matrix_rank(block, tol=self._rank_tol)) == m

    def _decodable_count(self) -> int | None:
        """``m`` when any ``m`` columns have full rank; otherwise a rank test."""
        return self.comm_reduction if self._mds else None

    def _why_not_decodable(self, responders: frozenset[int]) -> str:
        return (
            f"the responders' columns of the generator must have rank "
            f"{self.comm_reduction}"
        )

    def _exact_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        """``pinv`` of the responders' ``m x r`` generator columns.

        Using every responder (not just ``m`` of them) solves an
        overdetermined consistent system, which is never worse conditioned.
        """
        return pseudo_inverse(self._generator[:, list(responders)])

    def _probe_sets(self, budget: int, n_stragglers: int) -> list[tuple[int, ...]]:
        sets = super()._probe_sets(budget, n_stragglers)
        return [s for s in sets if self._is_decodable(frozenset(s))]


class LinearCode(GroupedCode):
    """Gradient code from a user's generator matrix.

    Parameters
    ----------
    n_workers : int
        Number of workers.
    generator : array-like of shape (K, N)
        Real generator matrix with full row rank ``K`` and ``N <= n_workers``
        columns.  ``comm_reduction`` is ``K``; the straggler tolerance is the
        code's minimum distance minus one, certified exactly when that takes
        at most ``MAX_RANK_CHECKS`` rank checks.
    n_stragglers : int, optional
        Tolerance you need; raises if the code cannot give it.  Required when
        the exact certification is out of reach: it is then checked on
        ``SAMPLED_RANK_CHECKS`` random column subsets (a
        :class:`SampledCertificationWarning` says so, and
        :attr:`certification` records it).
    comm_reduction : int, optional
        Must equal ``K`` if given.
    rtol, cache_size, verify
        As for every code (see :func:`~dask_gradcode.codes.make_code`).
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
        self._generator = generator
        sizes = group_sizes(n_workers, block_length)
        rank_tol = _rank_tolerance(generator)
        verify = kwargs.pop("verify", True)
        codes: dict[int, GeneratorGroup] = {}
        certifications = []
        for size in sorted(set(sizes)):
            columns = generator[:, [c % block_length for c in range(size)]]
            tolerance, how = self._certify(columns, n_stragglers, n_workers)
            certifications.append(how)
            codes[size] = GeneratorGroup(
                columns,
                tolerance,
                rank_tolerance=rank_tol,
                verify=False,
                rtol=kwargs.get("rtol", 1e-8),
            )
        self.certification = "; ".join(dict.fromkeys(certifications))
        self._init_groups(
            [(codes[size], 1 / len(sizes)) for size in sizes],
            requested_stragglers=n_stragglers,
            verify=verify,
            **kwargs,
        )

    @staticmethod
    def _certify(
        columns: np.ndarray, n_stragglers: int | None, n_workers: int
    ) -> tuple[int, str]:
        """The group's tolerance and how it was established."""
        try:
            tolerance = straggler_tolerance(columns)
        except ValueError:
            if n_stragglers is None:
                raise
            if n_stragglers >= columns.shape[1] - columns.shape[0] + 1:
                raise ValueError(
                    f"a {columns.shape[0]} x {columns.shape[1]} generator tolerates at "
                    f"most {columns.shape[1] - columns.shape[0]} stragglers (Singleton "
                    f"bound); pass n_stragglers<={columns.shape[1] - columns.shape[0]}"
                ) from None
            failures = sampled_rank_failures(columns, n_stragglers, SAMPLED_RANK_CHECKS)
            if failures:
                missing = sorted(set(range(columns.shape[1])) - set(failures[0]))
                raise ValueError(
                    f"this generator does not tolerate {n_stragglers} stragglers with "
                    f"n_workers={n_workers}: without columns {missing} its rank "
                    "drops; pass a smaller n_stragglers or a code with larger "
                    "minimum distance"
                ) from None
            how = (
                f"sampled: {SAMPLED_RANK_CHECKS} random sets of "
                f"{columns.shape[1] - n_stragglers} columns had full rank"
            )
            warnings.warn(
                f"the straggler tolerance {n_stragglers} of this "
                f"{columns.shape[0]} x {columns.shape[1]} generator is checked on "
                f"{SAMPLED_RANK_CHECKS} random column subsets, not certified "
                f"exactly (that needs more than {MAX_RANK_CHECKS} rank checks); every "
                "decode still checks its own accuracy",
                SampledCertificationWarning,
                stacklevel=5,
            )
            return n_stragglers, how
        if n_stragglers is not None and n_stragglers > tolerance:
            raise ValueError(
                f"this generator tolerates only {tolerance} straggler(s) with "
                f"n_workers={n_workers} (minimum distance {tolerance + 1}); pass "
                f"n_stragglers<={tolerance} or a code with larger minimum distance"
            )
        return tolerance, "exact: minimum distance certified"

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

    @property
    def generator(self) -> np.ndarray:
        """The generator matrix ``G`` (``comm_reduction x block length``)."""
        return self._generator.copy()

    def _unstable_advice(self) -> str:
        return (
            "Some sets of columns of this generator are nearly dependent; use a "
            "better-conditioned generator, or 'gaussian-mds'."
        )
