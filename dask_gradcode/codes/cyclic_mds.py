"""Gradient codes from real cyclic MDS codes.

Raviv, Tamo, Tandon & Dimakis, "Gradient Coding from Cyclic MDS Codes and
Expander Graphs" (ICML 2018).  The encoding matrix is the circulant of a
minimum-weight codeword of a cyclic ``[n, n - s]`` MDS code containing the
all-ones vector: any ``n - s`` of its rows span the code, so they decode.

The codeword is computed from its spectrum with one FFT rather than by
expanding its generator polynomial: expanding ``prod (x - root)`` loses every
digit once ``2**s * eps`` exceeds the coefficients (at ``n = 100, s = 99`` the
expanded codeword was noise), while each spectral value is a product of
distances between roots of unity, accurate to a few ulps.  What remains is the
code's own conditioning: with the stragglers in one contiguous run, decoding
extrapolates a trigonometric polynomial across the gap, and the error grows
exponentially with the gap (measured: ``n = 100, s = 9`` reaches 3e-7).  Such
sizes are refused when the code is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dask_gradcode.codes._base import CodeOptions, DenseCode
from dask_gradcode.codes.repetition import cyclic_supports

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["CyclicMDSCode", "cyclic_mds_codeword"]


def cyclic_mds_codeword(n_workers: int, n_stragglers: int) -> np.ndarray:
    """Coefficients ``c_0..c_s`` of the real generator polynomial of the code.

    The zeros are the ``s`` consecutive powers ``omega^j`` of
    ``omega = exp(2 pi i / n)`` centred on ``n / 2``: consecutive zeros make
    the code MDS (BCH bound), symmetry about ``n / 2`` makes the coefficients
    real, and excluding ``omega^0 = 1`` puts the all-ones vector in the code.
    Such a centred set exists exactly when ``n - s`` is odd.

    The coefficients are the inverse DFT of the polynomial's values at the
    ``n``-th roots of unity, each evaluated as a product of root distances.
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
    points = np.exp(2j * np.pi * np.arange(n) / n)
    zeros = np.exp(2j * np.pi * np.arange(first, first + s) / n)
    values = np.prod(points[:, None] - zeros[None, :], axis=1)
    # c_j = (1/n) sum_l g(omega^l) omega^(-jl); coefficients beyond s vanish.
    coefficients = (np.fft.fft(values) / n).real[: s + 1]
    return coefficients / np.abs(coefficients).max()


class CyclicMDSCode(DenseCode):
    """Circulant encoding from a real cyclic MDS code (``comm_reduction == 1``).

    Worker ``i`` holds partitions ``i..i+s`` (mod ``n``) and sends
    ``sum_t c_t g_{i+t}``.  Requires ``n_workers - n_stragglers`` odd for a
    real-valued code, and a size at which its worst responder sets decode to
    ``rtol`` (small ``s``, or ``s`` close to ``n``).

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    n_stragglers : int
        Stragglers tolerated; ``n_workers - n_stragglers`` must be odd (or
        ``n_stragglers`` zero).
    """

    scheme = "cyclic-mds"
    _rotation_invariant = True

    def __init__(
        self, n_workers: int, n_stragglers: int, **kwargs: Unpack[CodeOptions]
    ) -> None:
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

    def _unstable_advice(self) -> str:
        return (
            "A contiguous run of stragglers makes this code extrapolate across "
            "the gap. Use scheme='auto', 'cyclic-repetition' (same placement, "
            "random coefficients) or 'gaussian-mds'."
        )
