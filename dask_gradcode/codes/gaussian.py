"""Random Gaussian MDS gradient codes at the optimal load for every ``n``.

Kadhe, Koyluoglu & Ramchandran's construction puts ``d = s + m`` workers in a
group that holds one share of the data, and gives each member a column of a
random Gaussian ``m x d`` generator: optimal, and decoded by ``m x m`` solves,
but only when ``d`` divides ``n``.  Here the ``n`` workers form ``q = n // d``
groups of sizes between ``d`` and ``2d - 1`` (the ``n - q d`` extra workers
spread as evenly as possible), and each group gets a share of the data
proportional to its size.  A group of exactly ``d`` is Kadhe's; a larger group
of ``g`` workers uses :class:`CyclicGaussianGroup`, a cyclic placement in which
each member holds ``d`` of the group's ``g`` partitions.  Every worker then
processes ``d / n`` of the data, the bound ``(s + m) / n``, and every decode is
a small per-group solve whose conditioning depends on the group, not on ``n``.

:class:`CyclicGaussianGroup` is the linear-code framework with a random real
``[g, g - s]`` code: an ``g x (g - s)`` Gaussian evaluation matrix ``Phi``
(any ``g - s`` rows invertible with probability one) and an ``m x (g - s)``
Gaussian read-out ``Psi``.  Partition ``j``'s coefficients lie in the null
space of ``Phi``'s rows of the workers that do not hold it (dimension ``m``),
normalised so that ``Psi`` reads off its ``m`` sub-vectors; any ``g - s``
responders recover the code's coefficients with ``pinv(Phi_R)`` and ``Psi``
turns them into the sum.  Ye & Abbe's scheme is this construction with a real
Vandermonde ``Phi``, whose conditioning grows exponentially; a Gaussian
``Phi``'s grows polynomially.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dask_gradcode.codes._base import DEFAULT_RTOL, DenseCode
from dask_gradcode.codes._grouped import GroupedCode
from dask_gradcode.codes._validation import check_load_fits, rng_from
from dask_gradcode.codes.linear import GeneratorGroup, group_sizes, pseudo_inverse
from dask_gradcode.codes.repetition import cyclic_supports

__all__ = ["CyclicGaussianGroup", "GaussianMDSCode", "optimal_group_sizes"]

#: Work (about ``g * e * (g - s)**2`` flops for the null spaces) above which a
#: cyclic group is not built and the code falls back to equal-share groups.
MAX_CYCLIC_WORK = 4e8

#: Entries of a cyclic group's encoding tensor (``g * g * m``) above which the
#: code falls back to equal-share groups.
MAX_CYCLIC_ENTRIES = 2e7

#: Independent draws tried for a cyclic group before falling back.
CYCLIC_DRAWS = 3


def optimal_group_sizes(n_workers: int, load: int) -> list[int]:
    """``n // d`` group sizes between ``d`` and ``2d - 1``, extras spread evenly."""
    n_groups = n_workers // load
    extra_each, remainder = divmod(n_workers - n_groups * load, n_groups)
    return [load + extra_each + (1 if t < remainder else 0) for t in range(n_groups)]


def _probe_budget(m: int, size: int) -> int:
    """Responder sets to probe per group: fewer when each solve is large."""
    return int(max(1, min(32, 2e8 / (max(m, size) ** 3 + 1))))


class CyclicGaussianGroup(DenseCode):
    """A cyclic ``(g, s, m)`` gradient code with load ``s + m`` from Gaussian matrices.

    Worker ``i`` holds partitions ``i .. i + s + m - 1`` (mod ``g``).  See
    the module docstring for the construction.

    Parameters
    ----------
    n_workers : int
        ``g``, the group's workers (and partitions); more than ``s + m``.
    n_stragglers : int
        ``s``.
    comm_reduction : int
        ``m``.
    rng : numpy Generator
        Source of ``Phi`` and ``Psi``.
    n_readouts : int, default=4
        ``Psi`` candidates; the one whose normalisation is best conditioned
        over all partitions is kept.
    """

    scheme = "cyclic-gaussian-group"

    def __init__(
        self,
        n_workers: int,
        n_stragglers: int,
        comm_reduction: int,
        *,
        rng: np.random.Generator,
        n_readouts: int = 4,
        **kwargs: Any,
    ) -> None:
        g, s, m = n_workers, n_stragglers, comm_reduction
        load = s + m
        if not load < g:
            raise ValueError(f"a cyclic group needs more than s + m = {load} workers")
        spare = g - load  # workers that do not hold a given partition
        dimension = g - s
        evaluation = rng.standard_normal((g, dimension))
        # Partition j is held by workers j-load+1..j; the next `spare` do not.
        outsiders = (np.arange(g)[:, None] + 1 + np.arange(spare)[None, :]) % g
        # The last m columns of a complete QR of Phi[outsiders]^T span its null
        # space (a QR is several times faster than an SVD here).
        q, _ = np.linalg.qr(evaluation[outsiders].transpose(0, 2, 1), mode="complete")
        null_spaces = q[:, :, spare:]  # (g, dimension, m)
        # The read-out closest on average to every partition's null space
        # (top eigenvectors of the sum of their projectors) keeps each
        # normalisation well conditioned; random ones are the fallback.
        energy = np.einsum("jdu,jeu->de", null_spaces, null_spaces)
        readouts = [np.linalg.eigh(energy)[1][:, -m:].T] + [
            rng.standard_normal((m, dimension)) for _ in range(n_readouts - 1)
        ]
        readout = min(readouts, key=lambda r: np.linalg.cond(r @ null_spaces).max())
        normalised = null_spaces @ np.linalg.inv(readout @ null_spaces)
        holders = (np.arange(g)[:, None] - np.arange(load)[None, :]) % g
        encoding = np.zeros((g, g, m))
        encoding[holders, np.arange(g)[:, None], :] = np.einsum(
            "jhr,jru->jhu", evaluation[holders], normalised
        )
        self._evaluation = evaluation
        self._readout = readout
        super().__init__(
            n_stragglers=s,
            supports=cyclic_supports(g, load),
            encoding=encoding,
            **kwargs,
        )

    def _exact_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        """``D^T = Psi pinv(Phi_R)``: recover the code's coefficients, read off the sum."""
        inverse, condition = pseudo_inverse(self._evaluation[list(responders)])
        return inverse.T @ self._readout.T, condition


class GaussianMDSCode(GroupedCode):
    """Random Gaussian MDS gradient code at the optimal load (Kadhe et al.).

    Tolerates ``s`` stragglers with messages ``m`` times shorter and every
    worker processing ``(s + m) / n`` of the data, for every ``n >= s + m``
    (see the module docstring).  When the one larger group this needs would be
    too costly to build (``g (g - s - m) (g - s)**2 > 4e8`` or ``g**2 m >
    2e7``) or misses ``rtol``, the code falls back to Kadhe's equal-share
    groups (every group holds ``1 / (n // d)`` of the data; :attr:`layout`
    says so and :attr:`is_optimal` is False).

    Parameters
    ----------
    n_workers : int
        Number of workers.
    n_stragglers : int
        Stragglers tolerated.
    comm_reduction : int
        ``m``.
    random_state : None, int or numpy Generator
        Seed for the Gaussian matrices.
    n_candidates : int, default=4
        Generators drawn for the groups of exactly ``s + m``; the one whose
        worst probed responder set decodes most accurately is kept.
    rtol, cache_size, verify
        As for every code (see :func:`~dask_gradcode.codes.make_code`).
    """

    scheme = "gaussian-mds"

    def __init__(
        self,
        n_workers: int,
        n_stragglers: int,
        comm_reduction: int,
        *,
        random_state: object = None,
        n_candidates: int = 4,
        rtol: float = DEFAULT_RTOL,
        cache_size: int = 1024,
        verify: bool = True,
    ) -> None:
        n, s, m = n_workers, n_stragglers, comm_reduction
        load = s + m
        check_load_fits(self.scheme, n, load)
        if isinstance(n_candidates, bool) or not isinstance(n_candidates, int):
            raise TypeError(f"n_candidates must be an integer, got {n_candidates!r}")
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        rng = rng_from(random_state)
        common = {"rtol": rtol, "cache_size": cache_size}
        sizes = optimal_group_sizes(n, load)
        parts = self._optimal_parts(n, s, m, sizes, rng, n_candidates, common)
        if parts is None:
            sizes = group_sizes(n, load)
            generator = rng.standard_normal((m, max(sizes)))
            codes = {
                size: self._generator_group(generator[:, :size], size - m, common)
                for size in set(sizes)
            }
            parts = [(codes[size], 1 / len(sizes)) for size in sizes]
            self.layout = (
                f"{len(sizes)} equal-share groups of sizes {_sizes(sizes)} (the "
                f"optimal layout's group of {max(optimal_group_sizes(n, load))} "
                "workers is out of reach at this size)"
            )
        else:
            self.layout = (
                f"{len(sizes)} groups of sizes {_sizes(sizes)}, data shared by size"
            )
        self._init_groups(parts, requested_stragglers=s, verify=verify, **common)

    def _optimal_parts(
        self,
        n: int,
        s: int,
        m: int,
        sizes: list[int],
        rng: np.random.Generator,
        n_candidates: int,
        common: dict[str, Any],
    ) -> list[tuple[DenseCode, float]] | None:
        load = s + m
        codes: dict[int, DenseCode] = {}
        for size in sorted(set(sizes)):
            if size == load:
                codes[size] = self._best_generator_group(
                    m, load, rng, n_candidates, common
                )
                continue
            work = size * (size - load) * (size - s) ** 2
            if work > MAX_CYCLIC_WORK or size * size * m > MAX_CYCLIC_ENTRIES:
                return None
            code = self._cyclic_group(size, s, m, rng, common)
            if code is None:
                return None
            codes[size] = code
        return [(codes[size], size / n) for size in sizes]

    def _best_generator_group(
        self,
        m: int,
        load: int,
        rng: np.random.Generator,
        n_candidates: int,
        common: dict[str, Any],
    ) -> GeneratorGroup:
        budget = _probe_budget(m, load)
        # Large generators are costly to probe: fewer candidates.
        count = max(1, min(n_candidates, budget // 2))
        candidates = [
            self._generator_group(rng.standard_normal((m, load)), load - m, common)
            for _ in range(count)
        ]
        return min(candidates, key=lambda c: c.worst_case(budget=budget)[0])

    @staticmethod
    def _generator_group(
        generator: np.ndarray, tolerance: int, common: dict[str, Any]
    ) -> GeneratorGroup:
        return GeneratorGroup(generator, tolerance, mds=True, verify=False, **common)

    @staticmethod
    def _cyclic_group(
        size: int, s: int, m: int, rng: np.random.Generator, common: dict[str, Any]
    ) -> CyclicGaussianGroup | None:
        """The best of a few draws by their worst probed set, or None if all miss."""
        budget = _probe_budget(m, size - s)
        draws = [
            CyclicGaussianGroup(size, s, m, rng=rng, verify=False, **common)
            for _ in range(CYCLIC_DRAWS)
        ]
        worst = [code.worst_case(budget=budget)[0] for code in draws]
        best = int(np.argmin(worst))
        return draws[best] if worst[best] <= common["rtol"] else None

    def _group_budget(self, code: DenseCode, budget: int) -> int:
        return min(budget, _probe_budget(self.comm_reduction, code.n_workers))

    def describe(self) -> str:
        """The code's numbers in one line (what ``repr`` shows)."""
        return f"{super().describe()}, groups={_sizes([len(g) for g in self.groups])}"


def _sizes(sizes: list[int]) -> str:
    """``[12 x 3, 13 x 2]``-style summary of group sizes."""
    counts: dict[int, int] = {}
    for size in sizes:
        counts[size] = counts.get(size, 0) + 1
    return (
        "["
        + ", ".join(
            f"{size}" if count == 1 else f"{size} x {count}"
            for size, count in sorted(counts.items())
        )
        + "]"
    )
