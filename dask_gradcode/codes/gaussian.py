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

from dask_gradcode.codes._base import DEFAULT_RTOL, CodeOptions, DenseCode
from dask_gradcode.codes._grouped import GroupedCode
from dask_gradcode.codes._validation import check_load_fits, rng_from
from dask_gradcode.codes.linear import GeneratorGroup, group_sizes, pseudo_inverse
from dask_gradcode.codes.repetition import cyclic_supports

__all__ = ["CyclicGaussianGroup", "GaussianMDSCode", "optimal_group_sizes"]

#: Work (about ``g**2 (g - s) m`` flops for the encoding) above which a cyclic
#: group is not built and the code falls back to equal-share groups.
MAX_CYCLIC_WORK = 2e9

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


#: Above this much work (``g * e**3`` flops) the null spaces are updated
#: window by window instead of solved one by one.
DIRECT_NULL_SPACE_WORK = 3e8

#: A sliding update is refactorised from scratch this often.
REFACTOR_EVERY = 32


def _window_null_spaces(evaluation: np.ndarray, spare: int) -> np.ndarray:
    """A basis of the null space of each cyclic window of ``spare`` rows.

    Window ``j`` is rows ``j + 1 .. j + spare`` (mod ``g``), the workers that
    do not hold partition ``j``.  With ``P`` the window's first ``spare``
    columns and ``Q`` the other ``m``, the null space is spanned by
    ``[-P^-1 Q; I]``.  Small problems solve each window; large ones slide the
    window one row at a time with a Sherman-Morrison update of ``P^-1`` and
    ``P^-1 Q`` (``O(e^2 + e m)`` per step instead of ``O(e^3)``), refactorised
    every ``REFACTOR_EVERY`` steps and whenever an update is ill-conditioned.
    Every decoder built on them still has its own accuracy checked.
    """
    g, dimension = evaluation.shape
    m = dimension - spare
    square, rest = evaluation[:, :spare], evaluation[:, spare:]
    if g * spare**3 <= DIRECT_NULL_SPACE_WORK:
        windows = (np.arange(g)[:, None] + 1 + np.arange(spare)[None, :]) % g
        solved = np.linalg.solve(square[windows], rest[windows])
    else:
        solved = np.empty((g, spare, m))
        slot_rows = np.empty(spare, dtype=np.intp)  # worker in each slot of P
        for worker in range(1, spare + 1):
            slot_rows[worker % spare] = worker % g
        # Both are set at j = 0, which always refactorises.
        inverse = np.empty((spare, spare))
        current = np.empty((spare, m))
        for j in range(g):
            if j:  # worker j leaves the window, worker j + spare joins
                slot, leaving, joining = j % spare, j, (j + spare) % g
                slot_rows[slot] = joining
            refresh = j % REFACTOR_EVERY == 0
            if not refresh:
                delta = square[joining] - square[leaving]
                z = inverse[:, slot].copy()
                beta = 1.0 + delta @ z
                refresh = abs(beta) < 1e-6  # the update would lose accuracy
            if refresh:
                inverse = np.linalg.inv(square[slot_rows])
                current = inverse @ rest[slot_rows]
            else:
                current += np.outer(
                    z / beta, rest[joining] - rest[leaving] - delta @ current
                )
                inverse -= np.outer(z / beta, delta @ inverse)
            solved[j] = current
    basis = np.empty((g, dimension, m))
    basis[:, :spare, :] = -solved
    basis[:, spare:, :] = np.eye(m)
    return basis


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
        null_spaces = _window_null_spaces(evaluation, spare)  # (g, dimension, m)
        readout = self._best_readout(null_spaces, rng, n_readouts)
        normalised = null_spaces @ np.linalg.inv(readout @ null_spaces)
        # Every worker's coefficient on every partition in one product; the
        # workers outside a partition's holders get (numerically) zero.
        encoding = evaluation @ normalised.transpose(1, 0, 2).reshape(dimension, -1)
        encoding = encoding.reshape(g, g, m)
        held = np.zeros((g, g), dtype=bool)
        held[np.arange(g)[:, None], cyclic_supports(g, load)] = True
        encoding[~held] = 0.0
        self._evaluation = evaluation
        self._readout = readout
        super().__init__(
            n_stragglers=s,
            supports=cyclic_supports(g, load),
            encoding=encoding,
            **kwargs,
        )

    @staticmethod
    def _best_readout(
        null_spaces: np.ndarray, rng: np.random.Generator, n_readouts: int
    ) -> np.ndarray:
        """A read-out that keeps every partition's normalisation well conditioned.

        Partition ``j``'s coefficients are ``N_j (Psi N_j)^-1``: they blow up
        when ``Psi`` is nearly orthogonal to one partition's null space.  Of
        random candidates and the top eigenvectors of the sum of the null
        spaces' projectors, the one whose worst ``Psi N_j`` has the largest
        smallest singular value is kept, then improved by gradient ascent on
        ``sum_j log |det(Psi N_j)|`` (which pushes ``Psi`` away from the
        partitions it is nearly orthogonal to).  Large groups with large ``m``
        skip the search.
        """
        g, dimension, m = null_spaces.shape
        candidates = [rng.standard_normal((m, dimension)) for _ in range(n_readouts)]
        if g * dimension * m * m > 3e8:
            return candidates[0]
        bases, _ = np.linalg.qr(null_spaces)  # orthonormal (g, dimension, m)

        def smallest(readout: np.ndarray) -> float:
            rows = np.linalg.qr(readout.T)[0].T
            return float(np.linalg.svd(rows @ bases, compute_uv=False)[:, -1].min())

        if g * dimension**2 * m <= 3e8:
            energy = np.einsum("jdu,jeu->de", bases, bases)
            candidates.append(np.linalg.eigh(energy)[1][:, -m:].T)
        best = max(candidates, key=smallest)
        ascended = np.linalg.qr(best.T)[0].T
        for _ in range(30):
            inverses = np.linalg.inv(ascended @ bases)
            gradient = np.einsum("juv,jru->vr", inverses, bases) / g
            ascended = np.linalg.qr((ascended + 0.5 * gradient).T)[0].T
        return max((best, ascended), key=smallest)

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
        common: CodeOptions = {"rtol": rtol, "cache_size": cache_size}
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
        self._init_groups(
            parts,
            requested_stragglers=s,
            rtol=rtol,
            cache_size=cache_size,
            verify=verify,
        )

    def _optimal_parts(
        self,
        n: int,
        s: int,
        m: int,
        sizes: list[int],
        rng: np.random.Generator,
        n_candidates: int,
        common: CodeOptions,
    ) -> list[tuple[DenseCode, float]] | None:
        load = s + m
        codes: dict[int, DenseCode] = {}
        for size in sorted(set(sizes)):
            if size == load:
                codes[size] = self._best_generator_group(
                    m, load, rng, n_candidates, common
                )
                continue
            work = size * size * (size - s) * m
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
        common: CodeOptions,
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
        generator: np.ndarray, tolerance: int, common: CodeOptions
    ) -> GeneratorGroup:
        return GeneratorGroup(generator, tolerance, mds=True, verify=False, **common)

    @staticmethod
    def _cyclic_group(
        size: int, s: int, m: int, rng: np.random.Generator, common: CodeOptions
    ) -> CyclicGaussianGroup | None:
        """The best of a few draws by their worst probed set, or None if all miss."""
        budget = _probe_budget(m, size - s)
        # A large group costs up to a second to draw: one draw, not three.
        count = CYCLIC_DRAWS if size <= 200 else 1
        draws = [
            CyclicGaussianGroup(size, s, m, rng=rng, verify=False, **common)
            for _ in range(count)
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
