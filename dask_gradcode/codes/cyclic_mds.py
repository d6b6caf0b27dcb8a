"""Gradient codes from real cyclic MDS codes.

Raviv, Tamo, Tandon & Dimakis, "Gradient Coding from Cyclic MDS Codes and
Expander Graphs" (ICML 2018).  The encoding matrix is the circulant of a
minimum-weight codeword of a cyclic ``[n, n - s]`` MDS code containing the
all-ones vector: any ``n - s`` of its rows span the code, so they decode.
"""

from __future__ import annotations

import numpy as np

from dask_gradcode.codes._base import GradientCode
from dask_gradcode.codes.repetition import cyclic_supports

__all__ = ["CyclicMDSCode", "cyclic_mds_codeword"]


def cyclic_mds_codeword(n_workers: int, n_stragglers: int) -> np.ndarray:
    """Coefficients ``c_0..c_s`` of the real generator polynomial of the code.

    The roots are the ``s`` consecutive powers ``omega^j`` of
    ``omega = exp(2 pi i / n)`` centred on ``n / 2``: consecutive roots make the
    code MDS (BCH bound), symmetry about ``n / 2`` makes the coefficients
    real, and excluding ``omega^0 = 1`` puts the all-ones vector in the code.
    Such a centred set exists exactly when ``n - s`` is odd.
    """
    n, s = n_workers, n_stragglers
    if s and (n - s) % 2 == 0:
        raise ValueError(
            f"'cyclic-mds' has a real construction only when n_workers - n_stragglers "
            f"is odd (got {n} - {s} = {n - s}); use n_stragglers={s - 1} or "
            f"{s + 1}, or 'cyclic-repetition', which has the same placement and "
            "works for every (n_workers, n_stragglers)"
        )
    first = (n - s + 1) // 2
    roots = np.exp(2j * np.pi * np.arange(first, first + s) / n)
    coefficients = np.atleast_1d(np.poly(roots))[::-1]
    # The root set is closed under conjugation; what is left is rounding.
    return coefficients.real / np.abs(coefficients.real).max()


class CyclicMDSCode(GradientCode):
    """Circulant encoding from a real cyclic MDS code (``comm_reduction == 1``).

    Worker ``i`` holds partitions ``i..i+s`` (mod ``n``) and sends
    ``sum_t c_t g_{i+t}``.  Requires ``n_workers - n_stragglers`` odd for a
    real-valued code.

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    n_stragglers : int
        Stragglers tolerated.
    """

    scheme = "cyclic-mds"

    def __init__(self, n_workers: int, n_stragglers: int, **kwargs: object) -> None:
        n, s = n_workers, n_stragglers
        codeword = cyclic_mds_codeword(n, s)
        encoding = np.zeros((n, n, 1))
        for i, support in enumerate(cyclic_supports(n, s + 1)):
            encoding[i, support, 0] = codeword
        super().__init__(
            n_stragglers=s,
            supports=cyclic_supports(n, s + 1),
            encoding=encoding,
            **kwargs,
        )
