"""Messages that are mostly zeros, sent as their nonzeros.

A worker whose rows use few of many columns (hashed text) computes a partial
gradient that is zero almost everywhere; sending its nonzeros instead of the
dense vector cuts the reply (and the decode, which only adds what is there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SPARSE_MAX_DENSITY",
    "SPARSE_MIN_LENGTH",
    "SparseMessage",
    "sparse_or_dense",
]

#: A message is sent sparse when at most this share of it is nonzero (an
#: index and a value cost 1.5 times a dense entry).
SPARSE_MAX_DENSITY = 0.25

#: Shorter messages always go dense: the saving would be a few kilobytes.
SPARSE_MIN_LENGTH = 4096


@dataclass(frozen=True)
class SparseMessage:
    """A message vector of ``length`` entries, zero except at ``indices``.

    Attributes
    ----------
    indices : ndarray of int32
        Sorted, distinct positions of the nonzeros.
    values : ndarray of float64
    length : int
    """

    indices: np.ndarray
    values: np.ndarray
    length: int

    def __len__(self) -> int:
        return self.length

    @property
    def nbytes(self) -> int:
        """Bytes the message carries."""
        return int(self.indices.nbytes + self.values.nbytes)

    @property
    def shape(self) -> tuple[int]:
        """``(length,)``, as the dense vector's."""
        return (self.length,)

    def toarray(self) -> np.ndarray:
        """The dense vector."""
        dense = np.zeros(self.length)
        dense[self.indices] = self.values
        return dense

    def add_to(self, out: np.ndarray, scale: float) -> None:
        """``out += scale * self`` touching only the nonzeros."""
        out[self.indices] += scale * self.values


def sparse_or_dense(message: np.ndarray) -> np.ndarray | SparseMessage:
    """``message`` as a :class:`SparseMessage` when that is much smaller."""
    if message.ndim != 1 or message.size < SPARSE_MIN_LENGTH:
        return message
    nonzero = np.flatnonzero(message)
    if nonzero.size > SPARSE_MAX_DENSITY * message.size:
        return message
    return SparseMessage(nonzero.astype(np.int32), message[nonzero], int(message.size))


def as_dense(message: np.ndarray | SparseMessage) -> np.ndarray:
    """The dense vector of either kind of message."""
    return message.toarray() if isinstance(message, SparseMessage) else message
