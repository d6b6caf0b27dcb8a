"""Injected wrong results: workers that compute, and send, wrong numbers.

Silent data corruption (a faulty core or memory) makes a worker return a
partial gradient that is wrong without any error.  :class:`WrongResults`
injects it, as the straggler models inject delays, so the integrity checks
(:mod:`~dask_gradcode.codes.integrity`) can be tested and measured.  Pass it
as ``CodedGradient(..., fault_model=WrongResults(...))``.

Pure NumPy: no Dask.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MODES", "WrongResults"]

#: How a faulty worker's results are wrong.
MODES = ("scale", "zeros", "noise")


@dataclass(frozen=True)
class WrongResults:
    """Workers whose computed partial gradients are wrong in every round.

    Parameters
    ----------
    workers : iterable of int
        Physical worker ids (as the straggler models see them) that are
        faulty.
    mode : {"scale", "zeros", "noise"}, default="scale"
        ``"scale"``: every value times ``1 + size``; ``"zeros"``: all zeros;
        ``"noise"``: plus Gaussian noise of ``size`` times the values' root
        mean square (seeded by ``seed``, the round and the worker).
    size : float, default=1e-3
    seed : int, default=0
    first_iteration : int, default=0
        The first round whose results are wrong (the earlier ones are right).
    """

    workers: Iterable[int]
    mode: str = "scale"
    size: float = 1e-3
    seed: int = 0
    first_iteration: int = 0
    _ids: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not np.isfinite(self.size) or self.size < 0:
            raise ValueError(f"size must be finite and >= 0, got {self.size!r}")
        ids = frozenset(int(w) for w in self.workers)
        object.__setattr__(self, "workers", tuple(sorted(ids)))
        object.__setattr__(self, "_ids", ids)

    def corrupt(self, values: np.ndarray, worker: int, iteration: int) -> np.ndarray:
        """``values`` as worker ``worker`` returns them in round ``iteration``."""
        if worker not in self._ids or iteration < self.first_iteration:
            return values
        if self.mode == "zeros":
            return np.zeros_like(values)
        if self.mode == "scale":
            return values * (1.0 + self.size)
        rng = np.random.default_rng((self.seed, iteration, worker))
        rms = float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0
        return values + self.size * rms * rng.standard_normal(values.shape)
