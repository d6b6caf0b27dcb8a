"""The contract every gradient code honours, and its self-checking decode.

Every scheme is an encoding tensor ``E`` of shape ``(n_workers, n_partitions,
comm_reduction)``: worker ``i`` sends

    f_i = sum_{j in S_i} sum_u E[i, j, u] * g_j^(u)

where ``g_j^(u)`` is the ``u``-th of the ``m`` zero-padded sub-vectors of
partition ``j``'s partial gradient.  Hearing from the responders ``R``, the
client applies a decoding matrix ``D`` (``|R| x m``) with ``D^T E_R = T`` where
``T[v, j, u] = [u == v]``, so ``g^(v) = sum_i D[i, v] f_i``.

A decoder knows how accurate it is before it touches a message: its residual
``D^T E_R - T`` is exact algebra, and the rounding of the workers' encodes and
of the client's decode grows with ``|D|^T |E_R|``.  Together they bound the
error of the decoded gradient relative to the root-sum-square of the partial
gradients.  A decode whose bound misses the code's ``rtol`` is never returned
as exact: :meth:`GradientCode.decode` raises :class:`InaccurateDecodeError`,
and :meth:`GradientCode.is_decodable` says no, so a scheduler waits for more
workers.  The bound of every decoder is computed once per responder set and
cached with it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import scipy.linalg
from scipy.linalg.blas import daxpy as axpy

from dask_gradcode.codes._errors import (
    InaccurateDecodeError,
    NotDecodableError,
    UnstableCodeError,
)
from dask_gradcode.codes._responders import ResponderChecks
from dask_gradcode.codes._sparse import SparseMessage, as_dense
from dask_gradcode.codes._validation import (
    check_partial_gradients,
    check_positive_int,
    check_rtol,
)

__all__ = [
    "DEFAULT_RTOL",
    "CodeOptions",
    "Decoder",
    "GradientCode",
    "InaccurateDecodeError",
    "NotDecodableError",
    "ResponderTracker",
    "UnstableCodeError",
    "WorkerEncoder",
]

#: Default relative accuracy a decode must reach to count as exact.
DEFAULT_RTOL = 1e-8

#: Unit roundoff of float64.
UNIT_ROUNDOFF = 2.0**-53

#: Up to this many message entries in all (2 MiB) the decode stacks them for
#: one matrix product; beyond, it accumulates with axpy (measured crossover).
_STACK_MAX_ELEMENTS = 2**18


class CodeOptions(TypedDict, total=False):
    """The keyword options every code takes (see :class:`DenseCode`)."""

    requested_stragglers: int | None
    rtol: float
    cache_size: int
    verify: bool


@dataclass(frozen=True)
class WorkerEncoder:
    """What one worker needs to encode: its rows of the encoding tensor.

    Small and picklable, so a scheduler can ship it to the worker instead of
    the whole code.

    Attributes
    ----------
    worker : int
        The worker's id.
    coefficients : ndarray of shape (len(partitions), comm_reduction)
        ``E[worker, partitions(worker), :]``.
    """

    worker: int
    coefficients: np.ndarray = field(repr=False)

    @property
    def comm_reduction(self) -> int:
        """``m``: how many sub-vectors each gradient is cut into."""
        return self.coefficients.shape[1]

    def __call__(self, partial_gradients: np.ndarray) -> np.ndarray:
        """Encode ``(len(partitions), dim)`` partial gradients into one message."""
        gradients = check_partial_gradients(
            partial_gradients, self.coefficients.shape[0], self.worker
        )
        rows, dim = gradients.shape
        m = self.comm_reduction
        length = math.ceil(dim / m)
        padded = np.zeros((rows, m * length))
        padded[:, :dim] = gradients
        blocks = padded.reshape(rows, m, length)
        return np.tensordot(self.coefficients, blocks, axes=([0, 1], [0, 1]))


@dataclass(frozen=True)
class Decoder:
    """A decoding matrix for one responder set, with its accuracy report.

    Attributes
    ----------
    responders : tuple of int
        Worker ids, sorted; row ``r`` of ``coefficients`` belongs to
        ``responders[r]``.
    coefficients : ndarray of shape (len(responders), comm_reduction)
        ``D``: sub-vector ``v`` of the gradient is
        ``sum_r coefficients[r, v] * message[responders[r]]``.
    decodable : bool
        Whether the responders determine the gradient in exact arithmetic
        (the structural property :meth:`GradientCode.is_decodable` starts
        from).
    exact : bool
        Whether the decoded gradient is exact to the code's ``rtol``:
        ``decodable`` and ``error_bound <= rtol``.
    residual : float
        ``||D^T E_R - T||_F``, zero up to rounding for a decodable set.
    relative_error : float
        Expected squared error of the decoded gradient relative to the
        expected squared norm of the true one, when each partition's partial
        gradient has i.i.d. entries with variance proportional to its share of
        the data (``residual**2 / (n_partitions * m)`` for equal partitions).
        Comparable across schemes.
    error_bound : float
        Bound on ``||g_hat - g|| / sqrt(sum_j ||g_j||^2)``: the spectral norm
        of the residual plus the float64 rounding of the workers' encodes and
        of this decode (a first-order estimate, ``u * sqrt(terms) *
        || |D|^T |E_R| ||_2``).
    condition_number : float
        Condition number of the linear system solved to obtain ``D``
        (1.0 when no system is solved).
    """

    responders: tuple[int, ...]
    coefficients: np.ndarray = field(repr=False)
    decodable: bool
    exact: bool
    residual: float
    relative_error: float
    error_bound: float
    condition_number: float

    def apply(
        self, messages: Sequence[np.ndarray | SparseMessage], dim: int
    ) -> np.ndarray:
        """Combine messages, in ``responders`` order, into the gradient.

        Short messages are stacked and combined in one matrix product; long
        ones are accumulated with BLAS ``axpy`` straight from each message,
        which reads every message once and never copies them into one array
        (the decode's cost is this pass over the received bytes).
        """
        m = self.coefficients.shape[1]
        length = len(messages[0])
        sparse = any(isinstance(message, SparseMessage) for message in messages)
        if not sparse and len(messages) * length <= _STACK_MAX_ELEMENTS:
            stacked = np.array(messages, dtype=np.float64)
            return (self.coefficients.T @ stacked).reshape(-1)[:dim]
        sub_vectors = np.zeros((m, length))
        for row, message in enumerate(messages):
            for v in range(m):
                coefficient = self.coefficients[row, v]
                if isinstance(message, SparseMessage):
                    if coefficient:  # only its nonzeros: no dense copy
                        message.add_to(sub_vectors[v], coefficient)
                    continue
                # axpy returns early for a zero coefficient: rows that are all
                # zero are checked by the caller instead of by propagation.
                axpy(message, sub_vectors[v], a=coefficient)
        return sub_vectors.reshape(-1)[:dim]

    @property
    def unused(self) -> tuple[int, ...]:
        """Responders whose messages the decoder ignores (all-zero rows)."""
        rows = np.flatnonzero(~self.coefficients.any(axis=1))
        return tuple(self.responders[row] for row in rows)


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of a decoding matrix: the numbers a :class:`Decoder` reports."""

    residual: float
    relative_error: float
    error_bound: float

    @staticmethod
    def combine(parts: Sequence[tuple[Accuracy, float]]) -> Accuracy:
        """Accuracy of independent blocks decoded into one sum.

        ``parts`` pairs each block's accuracy with its share of the data.
        Errors of the blocks add in the decoded vector, so by Cauchy-Schwarz
        the bounds combine as a root-sum-square.
        """
        return Accuracy(
            residual=math.sqrt(sum(a.residual**2 for a, _ in parts)),
            relative_error=sum(share * a.relative_error for a, share in parts),
            error_bound=math.sqrt(sum(a.error_bound**2 for a, _ in parts)),
        )


def accuracy_of(
    coefficients: np.ndarray,
    rows: np.ndarray,
    target: np.ndarray,
    partition_fractions: np.ndarray,
    encode_terms: int,
) -> Accuracy:
    """Residual and error bound of ``D = coefficients`` against ``E_R = rows``.

    Parameters
    ----------
    coefficients : ndarray of shape (r, m)
    rows : ndarray of shape (r, k * m)
        The responders' rows of the flattened encoding tensor.
    target : ndarray of shape (m, k * m)
    partition_fractions : ndarray of shape (k,)
        Each partition's share of the data (summing to 1).
    encode_terms : int
        The most non-zero terms any worker sums when it encodes.
    """
    m = target.shape[0]
    residual_matrix = coefficients.T @ rows - target
    k = partition_fractions.size
    per_partition = (residual_matrix.reshape(m, k, m) ** 2).sum(axis=(0, 2))
    amplification = _spectral_norm(np.abs(coefficients).T @ np.abs(rows))
    terms = encode_terms + coefficients.shape[0]
    return Accuracy(
        residual=float(np.sqrt(per_partition.sum())),
        relative_error=float(partition_fractions @ per_partition / m),
        error_bound=_spectral_norm(residual_matrix)
        + UNIT_ROUNDOFF * math.sqrt(terms) * amplification,
    )


def _spectral_norm(matrix: np.ndarray) -> float:
    """``||matrix||_2`` of a short wide matrix, through its small Gram matrix."""
    if matrix.size == 0:
        return 0.0
    gram = matrix @ matrix.T
    return float(math.sqrt(max(np.linalg.eigvalsh(gram)[-1], 0.0)))


class GradientCode(ResponderChecks):
    """A gradient code: who stores what, what each worker sends, how to decode.

    Build instances with :func:`dask_gradcode.codes.make_code`.  Subclasses
    describe the placement and encoding and build decoding matrices; this
    class caches them, checks their accuracy, and decodes.

    Attributes
    ----------
    rtol : float
        Relative accuracy an exact decode must reach (see
        :attr:`Decoder.error_bound`).
    requested_stragglers : int
        The ``n_stragglers`` asked for; :attr:`n_stragglers` may be larger.
    verification : str
        How the worst responder sets were checked when the code was built.
    """

    scheme: str = ""
    #: Whether the scheme is approximate by design (it decodes from any
    #: ``n - s`` responders without ever being exact below ``n``).
    approximate_scheme: bool = False

    def _init_contract(
        self,
        *,
        n_stragglers: int,
        requested_stragglers: int | None = None,
        rtol: float = DEFAULT_RTOL,
        cache_size: int = 1024,
        verify: bool = True,
    ) -> None:
        """Set what every code has; with ``verify``, then check the worst sets."""
        self._n_stragglers = int(n_stragglers)
        self.requested_stragglers = int(
            n_stragglers if requested_stragglers is None else requested_stragglers
        )
        self.rtol = check_rtol(rtol)
        self.verification = "not verified"
        self.selection_reason: str | None = None
        self._cache_size = check_positive_int(cache_size, "cache_size")
        self._cache: OrderedDict[frozenset[int], Decoder] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._worker_ids = frozenset(range(self.n_workers))
        if verify:
            self._verify()

    def __getstate__(self) -> dict[str, object]:
        # Codes travel to workers: ship the construction, not the lock, the
        # cache or the id set (rebuilt on arrival).
        state = self.__dict__.copy()
        del state["_cache_lock"]
        state.pop("_worker_ids", None)
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._cache_lock = threading.Lock()
        self._worker_ids = frozenset(range(self.n_workers))

    # ------------------------------------------------------- shape (abstract)
    @property
    def n_workers(self) -> int:
        """Number of workers ``n``."""
        raise NotImplementedError

    @property
    def n_partitions(self) -> int:
        """Number of data partitions ``k`` the data set is cut into."""
        raise NotImplementedError

    @property
    def partition_fractions(self) -> np.ndarray:
        """Each partition's share of the data rows (sums to 1)."""
        raise NotImplementedError

    @property
    def comm_reduction(self) -> int:
        """``m``: each message is ``ceil(dim / m)`` long instead of ``dim``."""
        raise NotImplementedError

    def partitions(self, worker: int) -> list[int]:
        """Partition ids that ``worker`` must hold, in the order ``encode`` expects."""
        raise NotImplementedError

    def worker_encoder(self, worker: int) -> WorkerEncoder:
        """The small, picklable encoder of one worker (what a task ships)."""
        raise NotImplementedError

    @property
    def encoding_matrix(self) -> np.ndarray:
        """``E`` flattened to ``(n_workers, n_partitions * comm_reduction)``.

        Column ``j * comm_reduction + u`` multiplies sub-vector ``u`` of
        partition ``j``.
        """
        raise NotImplementedError

    # ---------------------------------------------------------- shape (common)
    @property
    def n_stragglers(self) -> int:
        """Stragglers tolerated: any ``n_workers - n_stragglers`` responders decode."""
        return self._n_stragglers

    def partition_bounds(self, n_rows: int) -> np.ndarray:
        """Row boundaries of the partitions of an ``n_rows``-row data set.

        Partition ``j`` is rows ``bounds[j]:bounds[j + 1]``.
        """
        edges = np.concatenate([[0.0], np.cumsum(self.partition_fractions)])
        bounds = np.rint(edges / edges[-1] * n_rows).astype(np.intp)
        bounds[-1] = n_rows
        return bounds

    @property
    def load_fraction(self) -> float:
        """Share of the data the busiest worker processes."""
        fractions = self.partition_fractions
        return float(
            max(fractions[self.partitions(w)].sum() for w in range(self.n_workers))
        )

    @property
    def load(self) -> float:
        """Computation load ``d`` in ``n``-ths of the data: ``load_fraction * n``.

        Ye & Abbe's bound is ``d >= s + m``; an optimal code has ``load == s + m``.
        """
        value = self.load_fraction * self.n_workers
        rounded = round(value)
        return float(rounded) if math.isclose(value, rounded) else value

    @property
    def optimal_load_fraction(self) -> float:
        """Ye & Abbe's lower bound ``(s + m) / n`` for the ``s`` and ``m`` asked for."""
        return min(
            1.0, (self.requested_stragglers + self.comm_reduction) / self.n_workers
        )

    @property
    def is_optimal(self) -> bool:
        """Whether the load meets the bound for the requested ``s`` and ``m``.

        The bound: every worker processes at least ``(s + m) / n`` of the data
        (``d >= s + m``), with ``s`` the tolerance asked for, not a larger one
        the construction happens to give.
        """
        return math.isclose(self.load_fraction, self.optimal_load_fraction)

    def message_length(self, dim: int) -> int:
        """Length of every worker's message for a gradient of length ``dim``."""
        return math.ceil(check_positive_int(dim, "dim") / self.comm_reduction)

    def describe(self) -> str:
        """The code's numbers in one line (what ``repr`` shows)."""
        return (
            f"n_workers={self.n_workers}, n_stragglers={self.n_stragglers}, "
            f"comm_reduction={self.comm_reduction}, load={self.load:g}"
        )

    def __repr__(self) -> str:
        text = f"<GradientCode {self.scheme!r}: {self.describe()}>"
        if self.selection_reason:
            text = f"{text[:-1]}; auto: {self.selection_reason}>"
        return text

    # ----------------------------------------------------------------- encode
    def encode(self, worker: int, partial_gradients: np.ndarray) -> np.ndarray:
        """Combine a worker's partial gradients into its one message.

        Parameters
        ----------
        worker : int
            Worker id in ``range(n_workers)``.
        partial_gradients : array-like of shape (len(partitions(worker)), dim)
            Row ``r`` is the gradient over partition ``partitions(worker)[r]``.

        Returns
        -------
        message : ndarray of shape (ceil(dim / comm_reduction),)
        """
        return self.worker_encoder(worker)(partial_gradients)

    # ----------------------------------------------------------------- decode
    def is_decodable(
        self, responders: Iterable[int], *, check_accuracy: bool = True
    ) -> bool:
        """Whether these responders give the full gradient to ``rtol``.

        Structural first (some schemes accept sets smaller than ``n_workers
        - n_stragglers``, for example one survivor per group), then numerical:
        a set whose decode cannot reach ``rtol`` is not decodable, so a
        scheduler waits for more workers.  ``check_accuracy=False`` asks the
        structural question alone (exact arithmetic).
        """
        responder_set = self._check_responders(responders)
        if not self._is_decodable(responder_set):
            return False
        if not check_accuracy or self.approximate_scheme:
            return True
        return self._cached_decoder(responder_set).exact

    def tracker(self) -> ResponderTracker:
        """A :class:`ResponderTracker`: decodability one arrival at a time."""
        return ResponderTracker(self)

    def decoder(
        self, responders: Iterable[int], *, approximate: bool = False
    ) -> Decoder:
        """The (cached) decoding matrix for a responder set.

        Parameters
        ----------
        responders : iterable of int
            Workers whose messages arrived.
        approximate : bool, default=False
            For a set that cannot decode exactly to ``rtol``, return the
            least-squares optimal decoder (Glasgow & Wootters) with its error
            bound instead of raising.

        Raises
        ------
        NotDecodableError
            If the set does not determine the gradient and ``approximate`` is
            False.
        InaccurateDecodeError
            If it does, but not to ``rtol`` in float64, and ``approximate`` is
            False.
        """
        responder_set = self._check_responders(responders)
        if not approximate and not self._is_decodable(responder_set):
            raise NotDecodableError(
                f"{self.scheme} code cannot decode exactly from workers "
                f"{_ranges(responder_set)}: "
                f"{self._why_not_decodable(responder_set)}. "
                "Wait for more workers or pass approximate=True."
            )
        decoder = self._cached_decoder(responder_set)
        if not approximate and not decoder.exact and not self.approximate_scheme:
            raise InaccurateDecodeError(self._inaccuracy_message(decoder))
        return decoder

    def decode(
        self,
        messages: Mapping[int, np.ndarray | SparseMessage],
        dim: int,
        *,
        approximate: bool = False,
        return_info: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, Decoder]:
        """Recover the full gradient (the sum over all partitions).

        Parameters
        ----------
        messages : mapping of int to ndarray
            ``{worker: message}`` for the workers that answered.
        dim : int
            Length of the gradient.
        approximate : bool, default=False
            If the responders cannot decode exactly to ``rtol``, return the
            least-squares optimal estimate rather than raising.
        return_info : bool, default=False
            Also return the :class:`Decoder` used, which reports whether the
            result is exact and its error bound.

        Returns
        -------
        gradient : ndarray of shape (dim,)
        decoder : Decoder
            Only when ``return_info`` is True.

        Raises
        ------
        NotDecodableError
            The responders do not determine the gradient.
        InaccurateDecodeError
            They do, but not to ``rtol`` in float64 (a subclass of
            ``NotDecodableError``).
        """
        length = self.message_length(dim)
        decoder = self.decoder(messages.keys(), approximate=approximate)
        arrays = [_vector(messages[worker]) for worker in decoder.responders]
        if all(a.shape == (length,) and _real(a) for a in arrays):
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                gradient = decoder.apply(arrays, dim)
            # NaN or inf in a message with a non-zero coefficient reaches the
            # result, so checking the short result checks those messages.
            if np.isfinite(gradient).all() and all(
                np.isfinite(_values(messages[worker])).all()
                for worker in decoder.unused
            ):
                return (gradient, decoder) if return_info else gradient
        for worker, array in zip(decoder.responders, arrays, strict=True):
            self._check_message(worker, as_dense(array), length)  # name the culprit
        raise FloatingPointError(
            "decoding overflowed although every message is finite; the messages "
            "are too large for float64 (scale the data or the loss)"
        )

    def clear_cache(self) -> None:
        """Forget every cached decoding matrix."""
        with self._cache_lock:
            self._cache.clear()

    def rescaled_decoder(self, responders: Iterable[int]) -> Decoder:
        """The one-step "ignore the stragglers" baseline for this code.

        Decode as if every worker had answered (the minimum-norm exact
        decoder), drop the missing workers' terms and rescale by
        ``n_workers / len(responders)``.  For the uncoded placement this is
        the ``"ignore-stragglers"`` scheme; :meth:`decoder` with
        ``approximate=True`` is never worse on the same responders.
        """
        ordered = tuple(sorted(self._check_responders(responders)))
        full = self._cached_decoder(frozenset(range(self.n_workers)))
        coefficients = full.coefficients[list(ordered)] * (
            self.n_workers / len(ordered)
        )
        return self._decoder_from(
            ordered, coefficients, 1.0, len(ordered) == self.n_workers
        )

    # ------------------------------------------------------------ verification
    def worst_case(
        self, *, budget: int = 32, n_stragglers: int | None = None
    ) -> tuple[float, int, tuple[int, ...]]:
        """Largest error bound over the responder sets a build checks.

        Returns ``(worst error bound, sets checked, worst responder set)``.
        Each scheme probes the sets most likely to be worst (for cyclic codes
        a contiguous run of stragglers) and a seeded sample of the others, or
        every set of ``n_workers - n_stragglers`` responders when there are at
        most ``budget``.  ``n_stragglers`` defaults to the code's tolerance.
        """
        stragglers = self.n_stragglers if n_stragglers is None else n_stragglers
        worst, checked, worst_set = 0.0, 0, tuple(range(self.n_workers))
        for responders in self._probe_sets(budget, stragglers):
            decoder = self._cached_decoder(frozenset(responders))
            checked += 1
            if not decoder.error_bound <= worst:
                worst, worst_set = decoder.error_bound, decoder.responders
                if not worst <= self.rtol:
                    break  # enough to refuse; the caller says by how much
        return worst, checked, worst_set

    def _verify(self, budget: int = 32) -> None:
        """Refuse the code if a probed responder set misses ``rtol``."""
        worst, checked, worst_set = self.worst_case(budget=budget)
        if not worst <= self.rtol:
            missing = sorted(set(range(self.n_workers)) - set(worst_set))
            raise UnstableCodeError(
                f"{self.scheme!r} cannot decode to rtol={self.rtol:g} with "
                f"{self.describe()}: without workers {_ranges(missing)} the error "
                f"bound is {worst:.1e} (of {checked} responder sets measured). "
                f"{self._unstable_advice()}"
            )
        self.verification = f"worst of {checked} responder sets: {worst:.1e}"

    def _unstable_advice(self) -> str:
        return (
            "Use scheme='auto' (it picks the least-load scheme that is stable "
            "here) or 'gaussian-mds', which is stable at any size."
        )

    def _inaccuracy_message(self, decoder: Decoder) -> str:
        missing = sorted(set(range(self.n_workers)) - set(decoder.responders))
        return (
            f"{self.scheme} code ({self.describe()}) cannot decode without "
            f"workers {_ranges(missing)} to rtol={self.rtol:g}: error bound "
            f"{decoder.error_bound:.1e} (condition number "
            f"{decoder.condition_number:.1e}). Wait for more workers, pass "
            "approximate=True for the estimate and its bound, or use "
            "scheme='auto' or 'gaussian-mds', which stay accurate at any size."
        )

    # ---------------------------------------------------- scheme-specific hooks
    def _is_decodable(self, responders: frozenset[int]) -> bool:
        """Structural decodability (exact arithmetic)."""
        return len(responders) >= self.n_workers - self.n_stragglers

    def _decodable_count(self) -> int | None:
        """``c`` when :meth:`_is_decodable` is exactly ``len(responders) >= c``.

        ``None`` when the rule looks at which workers answered, not only how
        many.  A grouped code counts each group's responders against it
        instead of asking each group.  The default rule is a count; a scheme
        that overrides :meth:`_is_decodable` is ``None`` unless it overrides
        this too.
        """
        if type(self)._is_decodable is GradientCode._is_decodable:
            return self.n_workers - self.n_stragglers
        return None

    def _count_groups(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(group of each worker, responders each group needs)``, or ``None``.

        When :meth:`_is_decodable` is exactly "every group has at least its
        count of responders", a :class:`ResponderTracker` keeps the counts as
        workers arrive instead of asking the rule about the whole set.
        """
        count = self._decodable_count()
        if count is None:
            return None
        # At least one: an empty set is never decodable.
        return np.zeros(self.n_workers, dtype=np.intp), np.array([max(count, 1)])

    def _why_not_decodable(self, responders: frozenset[int]) -> str:
        needed = self.n_workers - self.n_stragglers
        return f"{len(responders)} answered but any {needed} are needed"

    def _build_decoder(self, responders: frozenset[int]) -> Decoder:
        raise NotImplementedError

    def _decoder_from(
        self,
        ordered: tuple[int, ...],
        coefficients: np.ndarray,
        condition: float,
        decodable: bool,
    ) -> Decoder:
        """A :class:`Decoder` for given coefficients, with its accuracy measured."""
        raise NotImplementedError

    def _probe_sets(self, budget: int, n_stragglers: int) -> Iterable[tuple[int, ...]]:
        """Responder sets to check at build time, likely worst first."""
        return probe_sets(self.n_workers, n_stragglers, budget)

    # ------------------------------------------------------------------ cache
    def _cached_decoder(self, responder_set: frozenset[int]) -> Decoder:
        with self._cache_lock:
            cached = self._cache.get(responder_set)
            if cached is not None:
                self._cache.move_to_end(responder_set)
                return cached
        decoder = self._build_decoder(responder_set)
        with self._cache_lock:
            self._cache[responder_set] = decoder
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return decoder

    def _make_decoder(
        self,
        ordered: tuple[int, ...],
        coefficients: np.ndarray,
        condition: float,
        decodable: bool,
        accuracy: Accuracy,
    ) -> Decoder:
        coefficients = np.ascontiguousarray(coefficients, dtype=np.float64)
        coefficients.setflags(write=False)
        return Decoder(
            responders=ordered,
            coefficients=coefficients,
            decodable=decodable,
            exact=decodable and accuracy.error_bound <= self.rtol,
            residual=accuracy.residual,
            relative_error=accuracy.relative_error,
            error_bound=accuracy.error_bound,
            condition_number=condition,
        )

    # -------------------------------------------------------------- validation


class ResponderTracker:
    """Whether a growing set of responders decodes, one arrival at a time.

    A scheduler asks after every arrival; :meth:`GradientCode.is_decodable`
    looks at the whole set each time (``O(n)``, so ``O(n^2)`` a round).  A
    tracker is told each new responder once (:meth:`add`) and answers
    :meth:`is_decodable` exactly as ``code.is_decodable(responders)`` would:
    for codes whose structural rule counts responders per group (uncoded,
    repetition, MDS-like and grouped codes) it keeps the counts, so a set
    that cannot decode yet costs ``O(1)``; the accuracy check, and the rule of
    any other code, still run on the whole set.

    Parameters
    ----------
    code : GradientCode
    """

    def __init__(self, code: GradientCode) -> None:
        self.code = code
        self._responders: set[int] = set()
        self._frozen: frozenset[int] | None = frozenset()
        groups = code._count_groups()
        self._group_of: list[int] | None = None
        if groups is not None:
            group_of, needed = groups
            self._group_of = group_of.tolist()
            self._short = needed.astype(np.int64).tolist()  # still missing
            self._groups_short = len(self._short)

    @property
    def responders(self) -> frozenset[int]:
        """The responders added so far."""
        if self._frozen is None:
            self._frozen = frozenset(self._responders)
        return self._frozen

    def add(self, worker: int) -> None:
        """Count ``worker`` as a responder (again is a no-op)."""
        worker = self.code._check_worker(worker)
        if worker in self._responders:
            return
        self._responders.add(worker)
        self._frozen = None
        if self._group_of is not None:
            group = self._group_of[worker]
            self._short[group] -= 1
            if self._short[group] == 0:
                self._groups_short -= 1

    def is_decodable(self, *, check_accuracy: bool = True) -> bool:
        """``code.is_decodable(responders, check_accuracy=...)``, answered cheaply."""
        if not self._responders:
            raise NotDecodableError("no worker has answered: nothing to decode")
        if self._group_of is None:
            return self.code.is_decodable(
                self.responders, check_accuracy=check_accuracy
            )
        if self._groups_short:
            return False
        if not check_accuracy or self.code.approximate_scheme:
            return True
        return self.code._cached_decoder(self.responders).exact


class DenseCode(GradientCode):
    """A code given by its whole encoding tensor, with a least-squares decoder.

    Parameters
    ----------
    n_stragglers : int
        Stragglers the code tolerates (any ``n_workers - n_stragglers``
        responders determine the gradient).
    supports : sequence of sequence of int
        ``supports[i]`` are the partition ids worker ``i`` holds.
    encoding : ndarray of shape (n_workers, n_partitions, comm_reduction)
        The encoding tensor ``E``; zero outside each worker's support.
    requested_stragglers : int, optional
        The tolerance asked for, when the code gives more.
    rtol : float, default=1e-8
        Relative accuracy an exact decode must reach.
    cache_size : int, default=1024
        Number of responder sets whose decoding matrices are kept.
    verify : bool, default=True
        Check the worst responder sets now and refuse the code if one misses
        ``rtol`` (every decode checks itself either way).
    """

    #: Codes whose every rotation of workers is the same code (circulants):
    #: probing one rotation of a straggler pattern probes them all.
    _rotation_invariant = False

    def __init__(
        self,
        *,
        n_stragglers: int,
        supports: Iterable[Iterable[int]],
        encoding: np.ndarray,
        requested_stragglers: int | None = None,
        rtol: float = DEFAULT_RTOL,
        cache_size: int = 1024,
        verify: bool = True,
    ) -> None:
        encoding = np.asarray(encoding, dtype=np.float64)
        if encoding.ndim != 3:
            raise ValueError(
                "encoding must have shape (n_workers, n_partitions, comm_reduction),"
                f" got {encoding.shape}"
            )
        self._encoding = encoding
        self._encoding.setflags(write=False)
        self._supports = tuple(
            np.sort(np.asarray(support, dtype=np.intp)) for support in supports
        )
        if len(self._supports) != encoding.shape[0]:
            raise ValueError("one support per worker is required")
        self._local_coefficients = tuple(
            self._encoding[worker][support]
            for worker, support in enumerate(self._supports)
        )
        self._encode_terms = max(
            int(np.count_nonzero(c)) for c in self._local_coefficients
        )
        self._init_contract(
            n_stragglers=n_stragglers,
            requested_stragglers=requested_stragglers,
            rtol=rtol,
            cache_size=cache_size,
            verify=verify,
        )

    @property
    def n_workers(self) -> int:
        """Number of workers ``n``."""
        return self._encoding.shape[0]

    @property
    def n_partitions(self) -> int:
        """Number of data partitions ``k`` the data set is cut into (equal)."""
        return self._encoding.shape[1]

    @property
    def partition_fractions(self) -> np.ndarray:
        """Each partition's share of the data: ``1 / n_partitions`` each."""
        return np.full(self.n_partitions, 1.0 / self.n_partitions)

    @property
    def comm_reduction(self) -> int:
        """``m``: each message is ``ceil(dim / m)`` long instead of ``dim``."""
        return self._encoding.shape[2]

    @property
    def encoding_matrix(self) -> np.ndarray:
        """``E`` flattened to ``(n_workers, n_partitions * comm_reduction)``.

        Column ``j * comm_reduction + u`` multiplies sub-vector ``u`` of
        partition ``j``.
        """
        return self._encoding.reshape(self.n_workers, -1).copy()

    def partitions(self, worker: int) -> list[int]:
        """Partition ids that ``worker`` must hold, in the order ``encode`` expects."""
        return self._supports[self._check_worker(worker)].tolist()

    def worker_encoder(self, worker: int) -> WorkerEncoder:
        """The small, picklable encoder of one worker (what a task ships)."""
        worker = self._check_worker(worker)
        return WorkerEncoder(worker, self._local_coefficients[worker])

    # ----------------------------------------------------------------- decode
    def _exact_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        """Decoding matrix for a decodable set, and the condition number solved.

        The default is the generic least-squares solve; schemes override it
        with structured solves that must agree with it.
        """
        return self._least_squares_coefficients(responders)

    def _approximate_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        """Decoder for a set that does not decode: the optimal least squares."""
        return self._least_squares_coefficients(responders)

    def _build_decoder(self, responders: frozenset[int]) -> Decoder:
        ordered = tuple(sorted(responders))
        decodable = self._is_decodable(responders)
        if not decodable:
            coefficients, condition = self._approximate_coefficients(ordered)
            return self._decoder_from(ordered, coefficients, condition, False)
        coefficients, condition = self._exact_coefficients(ordered)
        decoder = self._decoder_from(ordered, coefficients, condition, True)
        if decoder.exact or self.approximate_scheme:
            return decoder
        # A structured solve that misses rtol gets a second opinion from the
        # generic least squares (SVD-based), which may be more accurate.
        generic, generic_condition = self._least_squares_coefficients(ordered)
        alternative = self._decoder_from(ordered, generic, generic_condition, True)
        return min(decoder, alternative, key=lambda d: d.error_bound)

    def _decoder_from(
        self,
        ordered: tuple[int, ...],
        coefficients: np.ndarray,
        condition: float,
        decodable: bool,
    ) -> Decoder:
        rows = self._encoding[list(ordered)].reshape(len(ordered), -1)
        accuracy = accuracy_of(
            coefficients,
            rows,
            self._target(),
            self.partition_fractions,
            self._encode_terms,
        )
        return self._make_decoder(ordered, coefficients, condition, decodable, accuracy)

    def _least_squares_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        """``argmin_D ||D^T E_R - T||_F`` (minimum norm) and the condition of ``E_R``."""
        rows = self._encoding[list(responders)].reshape(len(responders), -1)
        coefficients, _, rank, singular = scipy.linalg.lstsq(
            rows.T, self._target().T, lapack_driver="gelsd"
        )
        kept = singular[:rank]
        condition = float(kept[0] / kept[-1]) if rank else math.inf
        return coefficients, condition

    def _target(self) -> np.ndarray:
        """``T`` flattened to ``(m, n_partitions * m)``."""
        m = self.comm_reduction
        return np.tile(np.eye(m), (1, self.n_partitions))

    def _probe_sets(self, budget: int, n_stragglers: int) -> Iterable[tuple[int, ...]]:
        return probe_sets(
            self.n_workers,
            n_stragglers,
            budget,
            rotations=not self._rotation_invariant,
        )


def probe_sets(
    n_workers: int, n_stragglers: int, budget: int, *, rotations: bool = True
) -> list[tuple[int, ...]]:
    """Responder sets of ``n - s`` workers to check, likely worst first.

    Every such set when there are at most ``budget``.  Otherwise: the
    stragglers as one contiguous run (at several offsets unless the code is
    invariant under rotation), spread evenly, and a seeded random sample, up
    to ``budget`` sets in all.  Contiguous runs are the worst case of every
    polynomial and cyclic construction measured.
    """
    n, s = n_workers, n_stragglers
    everyone = tuple(range(n))
    if s == 0:
        return [everyone]
    if math.comb(n, s) <= budget:
        import itertools

        return [
            tuple(sorted(set(everyone) - set(missing)))
            for missing in itertools.combinations(everyone, s)
        ]
    chosen: dict[tuple[int, ...], None] = {}

    def add(missing: Iterable[int]) -> None:
        responders = tuple(sorted(set(everyone) - {int(w) % n for w in missing}))
        if len(responders) == n - s:
            chosen.setdefault(responders, None)

    offsets = np.linspace(0, n, max(1, budget // 2), endpoint=False).astype(int)
    for offset in offsets if rotations else offsets[:1]:
        add(range(offset, offset + s))
    add(np.linspace(0, n, s, endpoint=False).astype(int))
    rng = np.random.default_rng([n, s, 0x5EED])
    attempts = 0
    while len(chosen) < budget and attempts < 4 * budget:
        add(rng.choice(n, s, replace=False))
        attempts += 1
    return list(chosen)


def _ranges(workers: Iterable[int]) -> str:
    """Worker ids as compact ranges: ``[0..3, 7, 9..11]``."""
    ids = sorted(workers)
    if not ids:
        return "[]"
    parts, start, previous = [], ids[0], ids[0]
    for worker in [*ids[1:], None]:
        if worker is not None and worker == previous + 1:
            previous = worker
            continue
        parts.append(str(start) if start == previous else f"{start}..{previous}")
        if worker is not None:
            start = previous = worker
    return "[" + ", ".join(parts) + "]"


def _vector(message: Any) -> np.ndarray | SparseMessage:
    """A message as an array, or as it came if it is a :class:`SparseMessage`."""
    return message if isinstance(message, SparseMessage) else np.asarray(message)


def _real(message: np.ndarray | SparseMessage) -> bool:
    values = message.values if isinstance(message, SparseMessage) else message
    return values.dtype.kind in "fiu"


def _values(message: Any) -> np.ndarray:
    """The entries a finiteness check must read (a sparse message's nonzeros)."""
    return message.values if isinstance(message, SparseMessage) else np.asarray(message)
