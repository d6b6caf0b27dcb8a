"""Fit on the columns the data uses: wide sparse input, solved in its own size.

Hashed or one-hot text features (``HashingVectorizer``'s ``2**20`` columns)
are mostly columns no row uses.  Their loss gradient is zero in every round,
and every penalty scikit-learn's SGD offers keeps a zero coefficient at zero
(L2 shrinks towards it, L1's proximal step leaves it), so a fit that starts
at zero on them ends at zero on them: the optimum is the optimum of the
problem restricted to the used columns, padded with zeros.  Solving that
smaller problem makes every round's weights and messages, and every solver
step, the size of the used columns instead of the declared ones.

Pure NumPy/SciPy: no Dask, no coding math.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.sparse

__all__ = ["COMPACT_BELOW", "UsedColumns"]

#: Compact only when the used columns are at most this share of the declared
#: ones: below it the smaller rounds and solver steps repay the remapping.
COMPACT_BELOW = 0.5


@dataclass(frozen=True)
class UsedColumns:
    """The columns a sparse ``X`` uses, and the maps between the two sizes.

    Coefficient vectors are flat ``(rows, n_targets)`` arrays, row-major: one
    row per column of ``X``, then the intercept's row when ``intercept``.

    Attributes
    ----------
    used : ndarray of int
        The used columns, sorted.
    n_features : int
        Columns of the full ``X``.
    intercept : bool
    n_targets : int
    """

    used: np.ndarray
    n_features: int
    intercept: bool
    n_targets: int

    @classmethod
    def of(
        cls, X: Any, start: np.ndarray, *, intercept: bool, n_targets: int
    ) -> UsedColumns | None:
        """The compaction of ``X`` for a fit from ``start``, or None if none pays.

        None unless ``X`` is a SciPy sparse matrix whose used columns are at
        most :data:`COMPACT_BELOW` of its columns, and ``start`` is zero on
        every unused column (a warm start away from zero there would move).
        """
        if not scipy.sparse.issparse(X):
            return None
        X = scipy.sparse.csr_matrix(cast(Any, X))
        n_features = int(X.shape[1])
        seen = np.zeros(n_features, dtype=bool)  # O(nnz), unlike a sort
        seen[X.indices] = True
        used = np.flatnonzero(seen)
        if used.size == 0 or used.size > COMPACT_BELOW * n_features:
            return None
        columns = cls(used, n_features, intercept, n_targets)
        if np.any(columns._rows(start)[columns._unused_mask()]):
            return None
        return columns

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, n_targets)`` of a compact coefficient vector."""
        return (self.used.size + int(self.intercept), self.n_targets)

    def compact(self, X: Any) -> scipy.sparse.csr_matrix:
        """``X`` with only its used columns (the same nonzeros, renumbered)."""
        X = scipy.sparse.csr_matrix(X)
        renumber = np.zeros(self.n_features, dtype=X.indices.dtype)
        renumber[self.used] = np.arange(self.used.size, dtype=X.indices.dtype)
        indices = renumber[X.indices]
        return scipy.sparse.csr_matrix(
            (X.data, indices, X.indptr), shape=(X.shape[0], self.used.size)
        )

    def compress(self, coef: np.ndarray) -> np.ndarray:
        """A full coefficient vector's used rows (and intercept row), flat."""
        return self._rows(coef)[self._kept_rows()].ravel()

    def expand(self, coef: np.ndarray) -> np.ndarray:
        """A compact coefficient vector padded with zeros to the full size, flat."""
        full = np.zeros((self.n_features + int(self.intercept), self.n_targets))
        full[self._kept_rows()] = np.asarray(coef).reshape(self.shape)
        return full.ravel()

    def _rows(self, coef: np.ndarray) -> np.ndarray:
        return np.asarray(coef).reshape(-1, self.n_targets)

    def _kept_rows(self) -> np.ndarray:
        if not self.intercept:
            return self.used
        return np.append(self.used, self.n_features)

    def _unused_mask(self) -> np.ndarray:
        mask = np.ones(self.n_features + int(self.intercept), dtype=bool)
        mask[self._kept_rows()] = False
        return mask
