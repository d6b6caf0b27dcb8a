"""The communication-efficient polynomial scheme of Ye & Abbe.

Ye & Abbe, "Communication-Computation Efficient Gradient Coding" (ICML 2018).
Worker ``i`` (node ``alpha_i``) holds the ``d = s + m`` partitions
``i..i+d-1`` (mod ``n``) and sends ``F(alpha_i)`` where

    F(x) = sum_j p_j(x) q_j(x),   p_j(x) = prod_{i not holding j} (x - alpha_i)

has degree ``n - s - 1`` and its top ``m`` coefficients are the ``m``
sub-vectors of the full gradient (the "recursive" choice of ``q_j``).  Any
``n - s`` evaluations interpolate ``F``: a Vandermonde solve whose condition
number grows exponentially with ``n - s`` for real nodes.  The construction
is kept as published (it is the baseline the linear-code framework improves
on); sizes whose worst responder sets miss ``rtol`` are refused when the code
is built (measured: with Chebyshev nodes, ``n - s`` up to about 20).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from dask_gradcode.codes._base import DenseCode
from dask_gradcode.codes._validation import check_load_fits
from dask_gradcode.codes.repetition import cyclic_supports

__all__ = ["YeAbbeCode", "chebyshev_nodes"]


def chebyshev_nodes(n: int) -> np.ndarray:
    """Chebyshev points of the first kind on ``[-1, 1]``.

    They are the best-conditioned real nodes for polynomial interpolation.
    """
    return np.cos((2 * np.arange(n) + 1) * np.pi / (2 * n))


def _recursive_combination(elementary: np.ndarray, m: int) -> np.ndarray:
    """The matrix ``M`` with ``v = M g`` of Ye & Abbe's recursive choice.

    ``v_{m-1} = g_{m-1}`` and ``v_u = g_u - sum_{t>=1} e_t v_{u+t}``, so that
    the top ``m`` coefficients of ``p_j(x) q_j(x)`` are ``g_j``'s sub-vectors.
    """
    combination = np.zeros((m, m))
    for u in range(m - 1, -1, -1):
        combination[u, u] = 1.0
        for t in range(1, m - u):
            combination[u] -= elementary[t] * combination[u + t]
    return combination


class YeAbbeCode(DenseCode):
    """Polynomial (Vandermonde) gradient code, any ``comm_reduction >= 1``.

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    n_stragglers : int
        Stragglers tolerated.
    comm_reduction : int
        ``m``; the load is ``n_stragglers + comm_reduction``.
    nodes : array-like of shape (n_workers,), optional
        Distinct real evaluation points, one per worker.  Defaults to
        Chebyshev points on ``[-1, 1]``.
    """

    scheme = "ye-abbe"

    def __init__(
        self,
        n_workers: int,
        n_stragglers: int,
        comm_reduction: int,
        *,
        nodes: Any = None,
        **kwargs: Any,
    ) -> None:
        n, s, m = n_workers, n_stragglers, comm_reduction
        load = s + m
        check_load_fits(self.scheme, n, load)
        alphas = self._check_nodes(nodes, n)
        supports = cyclic_supports(n, load)
        encoding = np.zeros((n, n, m))
        for j in range(n):
            holders = {i for i in range(n) if (j - i) % n < load}
            others = np.array([i for i in range(n) if i not in holders], dtype=np.intp)
            elementary = np.poly(alphas[others]) if others.size else np.ones(1)
            combination = _recursive_combination(
                np.pad(elementary, (0, m)), m
            )  # padding covers n - load < m - 1
            for i in holders:
                p_value = np.prod(alphas[i] - alphas[others])
                powers = alphas[i] ** np.arange(m)
                encoding[i, j] = p_value * (powers @ combination)
        self._nodes = alphas
        super().__init__(n_stragglers=s, supports=supports, encoding=encoding, **kwargs)

    @property
    def nodes(self) -> np.ndarray:
        """Evaluation point of each worker."""
        return self._nodes.copy()

    @staticmethod
    def _check_nodes(nodes: Any, n: int) -> np.ndarray:
        if nodes is None:
            return chebyshev_nodes(n)
        alphas = np.asarray(nodes, dtype=np.float64)
        if alphas.shape != (n,) or not np.all(np.isfinite(alphas)):
            raise ValueError(f"nodes must be {n} finite reals, one per worker")
        if np.unique(alphas).size != n:
            raise ValueError(
                "nodes must be distinct: equal nodes make decoding singular"
            )
        return alphas

    def _exact_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        """Interpolate ``F`` from the responders' nodes, keep its top ``m`` coefficients."""
        degree = self.n_workers - self.n_stragglers
        vandermonde = self._nodes[list(responders), None] ** np.arange(degree)
        q, r = np.linalg.qr(vandermonde)
        top = scipy.linalg.solve_triangular(
            r[-self.comm_reduction :, -self.comm_reduction :],
            q[:, -self.comm_reduction :].T,
        )
        # Row v of the pseudo-inverse's last m rows is sub-vector v of the sum;
        # with R upper triangular those rows depend only on R's trailing block.
        return top.T, float(np.linalg.cond(vandermonde))

    def _unstable_advice(self) -> str:
        return (
            "Decoding interpolates a polynomial of degree n - s - 1 at real "
            "nodes, whose condition number grows exponentially with n - s. Use "
            "'gaussian-mds' (the same load s + m, stable at any size) or "
            "scheme='auto', or fewer workers per ye-abbe code."
        )
