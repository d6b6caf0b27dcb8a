"""Codes without vector splitting: uncoded, ignore-stragglers, and repetition.

Fractional and cyclic repetition follow Tandon, Lei, Dimakis & Karampatziakis,
"Gradient Coding: Avoiding Stragglers in Distributed Learning" (ICML 2017).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dask_gradcode.codes._base import CodeOptions, Decoder, DenseCode
from dask_gradcode.codes._validation import rng_from

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "CyclicRepetitionCode",
    "FractionalRepetitionCode",
    "IgnoreStragglersCode",
    "UncodedCode",
    "cyclic_supports",
]


def cyclic_supports(n_workers: int, load: int) -> np.ndarray:
    """Worker ``i`` holds partitions ``i, i+1, ..., i+load-1`` (mod ``n_workers``).

    Row ``i`` of the ``(n_workers, load)`` result lists worker ``i``'s.
    """
    return (np.arange(n_workers)[:, None] + np.arange(load)[None, :]) % n_workers


def _identity_encoding(n_workers: int) -> np.ndarray:
    return np.eye(n_workers)[:, :, None]


class UncodedCode(DenseCode):
    """One partition per worker; the client waits for every worker.

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    """

    scheme = "uncoded"

    def __init__(self, n_workers: int, **kwargs: Unpack[CodeOptions]) -> None:
        super().__init__(
            n_stragglers=0,
            supports=[[i] for i in range(n_workers)],
            encoding=_identity_encoding(n_workers),
            **kwargs,
        )

    def _exact_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        return np.ones((len(responders), 1)), 1.0


class IgnoreStragglersCode(DenseCode):
    """Uncoded placement; decode by rescaling the sum of whoever answered.

    The estimate ``(n / |R|) * sum_{i in R} f_i`` is unbiased when stragglers
    are uniformly random, but never exact unless every worker answers.  It is
    the simplest approximate baseline, and the one decode in this package that
    is not the least-squares optimum: that would be the plain sum
    ``sum_{i in R} f_i`` (smaller residual, but biased towards zero).
    :meth:`~GradientCode.decoder` gives the rescaled sum whether or not
    ``approximate`` is passed; ``decodable`` and ``exact`` are true only when
    every worker answered.

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    n_stragglers : int
        How many workers the client does not wait for.
    """

    scheme = "ignore-stragglers"
    approximate_scheme = True

    def __init__(
        self, n_workers: int, n_stragglers: int, **kwargs: Unpack[CodeOptions]
    ) -> None:
        super().__init__(
            n_stragglers=n_stragglers,
            supports=[[i] for i in range(n_workers)],
            encoding=_identity_encoding(n_workers),
            **kwargs,
        )

    def _probe_sets(self, budget: int, n_stragglers: int) -> list[tuple[int, ...]]:
        # Approximate by design: only the full set must decode exactly.
        return [tuple(range(self.n_workers))]

    def _build_decoder(self, responders: frozenset[int]) -> Decoder:
        ordered = tuple(sorted(responders))
        scale = self.n_workers / len(ordered)
        coefficients = np.full((len(ordered), 1), scale)
        return self._decoder_from(
            ordered, coefficients, 1.0, len(ordered) == self.n_workers
        )


class FractionalRepetitionCode(DenseCode):
    """Groups of ``s + 1`` workers share ``s + 1`` partitions and send their sum.

    Decoding picks one responder per group: no linear solve, exact in floating
    point.  Needs ``(n_stragglers + 1)`` to divide ``n_workers``.

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    n_stragglers : int
        Stragglers tolerated; ``n_stragglers + 1`` must divide ``n_workers``.
    """

    scheme = "fractional-repetition"

    def __init__(
        self, n_workers: int, n_stragglers: int, **kwargs: Unpack[CodeOptions]
    ) -> None:
        group = n_stragglers + 1
        if n_workers % group:
            valid = [s for s in range(n_workers) if n_workers % (s + 1) == 0]
            raise ValueError(
                f"fractional repetition needs n_stragglers + 1 to divide n_workers; "
                f"{group} does not divide {n_workers}. Valid n_stragglers for "
                f"n_workers={n_workers}: {valid}, or use 'cyclic-repetition'"
            )
        self._group_size = group
        supports = [
            list(range((i // group) * group, (i // group + 1) * group))
            for i in range(n_workers)
        ]
        encoding = np.zeros((n_workers, n_workers, 1))
        for worker, support in enumerate(supports):
            encoding[worker, support, 0] = 1.0
        super().__init__(
            n_stragglers=n_stragglers, supports=supports, encoding=encoding, **kwargs
        )

    def _missing_groups(self, responders: frozenset[int]) -> list[int]:
        answered = {worker // self._group_size for worker in responders}
        n_groups = self.n_workers // self._group_size
        return [g for g in range(n_groups) if g not in answered]

    def _is_decodable(self, responders: frozenset[int]) -> bool:
        # Every group needs a responder.  Asked after every arrival: fewer
        # responders than groups is a no without looking, and the groups
        # answered are counted in one numpy pass instead of a Python set.
        n_groups = self.n_workers // self._group_size
        if len(responders) < n_groups:
            return False
        ids = np.fromiter(responders, dtype=np.intp, count=len(responders))
        answered = np.bincount(ids // self._group_size, minlength=n_groups)
        return bool(answered.all())

    def _count_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Each group of ``s + 1`` workers needs one responder."""
        n_groups = self.n_workers // self._group_size
        return np.arange(self.n_workers) // self._group_size, np.ones(n_groups)

    def _why_not_decodable(self, responders: frozenset[int]) -> str:
        size = self._group_size
        missing = ", ".join(
            f"{g * size}..{(g + 1) * size - 1}"
            for g in self._missing_groups(responders)
        )
        return f"no worker answered in group(s) of workers {missing}"

    def _exact_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        coefficients = np.zeros((len(responders), 1))
        seen: set[int] = set()
        for row, worker in enumerate(responders):
            group = worker // self._group_size
            if group not in seen:
                seen.add(group)
                coefficients[row, 0] = 1.0
        return coefficients, 1.0


class CyclicRepetitionCode(DenseCode):
    """Cyclic supports of size ``s + 1`` with random coefficients (Tandon et al.).

    Draw ``H`` (``s x n``, Gaussian, ``H 1 = 0``); row ``i`` of the encoding
    matrix has ``B[i, i] = 1`` and its other ``s`` entries solve
    ``H[:, i+1..i+s] x = -H[:, i]``, so every row lies in ``null(H)``, which
    contains the all-ones vector; any ``n - s`` rows span it with probability 1.

    Parameters
    ----------
    n_workers : int
        Number of workers (and partitions).
    n_stragglers : int
        Stragglers tolerated: each worker holds ``n_stragglers + 1``
        partitions.
    random_state : None, int or numpy Generator
        Seed for ``H``.
    """

    scheme = "cyclic-repetition"

    def __init__(
        self,
        n_workers: int,
        n_stragglers: int,
        *,
        random_state: object = None,
        **kwargs: Unpack[CodeOptions],
    ) -> None:
        n, s = n_workers, n_stragglers
        rng = rng_from(random_state)
        encoding = np.zeros((n, n, 1))
        if s == 0:
            encoding[:, :, 0] = np.eye(n)
        else:
            free = rng.standard_normal((s, n - 1))
            parity = np.hstack([free, -free.sum(axis=1, keepdims=True)])
            for i in range(n):
                others = [(i + t) % n for t in range(1, s + 1)]
                encoding[i, i, 0] = 1.0
                encoding[i, others, 0] = np.linalg.solve(
                    parity[:, others], -parity[:, i]
                )
        super().__init__(
            n_stragglers=s,
            supports=cyclic_supports(n, s + 1),
            encoding=encoding,
            **kwargs,
        )
