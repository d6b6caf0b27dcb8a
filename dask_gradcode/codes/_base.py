"""The contract every gradient code honours, and the generic decoder.

Every scheme is an encoding tensor ``E`` of shape ``(n_workers, n_partitions,
comm_reduction)``: worker ``i`` sends

    f_i = sum_{j in S_i} sum_u E[i, j, u] * g_j^(u)

where ``g_j^(u)`` is the ``u``-th of the ``m`` zero-padded sub-vectors of
partition ``j``'s partial gradient.  Hearing from the responders ``R``, the
client applies a decoding matrix ``D`` (``|R| x m``) with ``D^T E_R = T`` where
``T[v, j, u] = [u == v]``, so ``g^(v) = sum_i D[i, v] f_i``.  One least-squares
solve therefore decodes every scheme; schemes may add a faster structured
decoder that must agree with it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.linalg.blas import daxpy as axpy

from dask_gradcode.codes._validation import (
    check_partial_gradients,
    check_positive_int,
)

__all__ = ["Decoder", "GradientCode", "NotDecodableError", "WorkerEncoder"]

#: Up to this many message entries in all (2 MiB) the decode stacks them for
#: one matrix product; beyond, it accumulates with axpy (measured crossover).
_STACK_MAX_ELEMENTS = 2**18


class NotDecodableError(ValueError):
    """Raised when the responders cannot determine the full gradient exactly.

    Wait for more workers, or call ``decode(..., approximate=True)`` to get the
    least-squares optimal estimate instead.
    """


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
    exact : bool
        Whether the responders determine the gradient exactly (structurally,
        not up to a numerical tolerance).
    residual : float
        ``||D^T E_R - T||_F``, zero (up to rounding) for an exact decoder.
    relative_error : float
        ``residual**2 / (n_partitions * comm_reduction)``: the expected
        squared error of the decoded gradient relative to the expected
        squared norm of the true one, when partial gradients have i.i.d.
        entries.  Comparable across schemes.
    error_bound : float
        ``||D^T E_R - T||_2``; the decoded gradient ``g_hat`` satisfies
        ``||g_hat - g|| <= error_bound * sqrt(sum_j ||g_j||^2)``.
    condition_number : float
        Condition number of the linear system solved to obtain ``D``
        (1.0 when no system is solved).
    """

    responders: tuple[int, ...]
    coefficients: np.ndarray = field(repr=False)
    exact: bool
    residual: float
    relative_error: float
    error_bound: float
    condition_number: float

    def apply(self, messages: Sequence[np.ndarray], dim: int) -> np.ndarray:
        """Combine messages, in ``responders`` order, into the gradient.

        Short messages are stacked and combined in one matrix product; long
        ones are accumulated with BLAS ``axpy`` straight from each message,
        which reads every message once and never copies them into one array
        (the decode's cost is this pass over the received bytes).
        """
        m = self.coefficients.shape[1]
        length = len(messages[0])
        if len(messages) * length <= _STACK_MAX_ELEMENTS:
            stacked = np.array(messages, dtype=np.float64)
            return (self.coefficients.T @ stacked).reshape(-1)[:dim]
        sub_vectors = np.zeros((m, length))
        for row, message in enumerate(messages):
            for v in range(m):
                # axpy returns early for a zero coefficient: rows that are all
                # zero are checked by the caller instead of by propagation.
                axpy(message, sub_vectors[v], a=self.coefficients[row, v])
        return sub_vectors.reshape(-1)[:dim]

    @property
    def unused(self) -> tuple[int, ...]:
        """Responders whose messages the decoder ignores (all-zero rows)."""
        rows = np.flatnonzero(~self.coefficients.any(axis=1))
        return tuple(self.responders[row] for row in rows)


class GradientCode:
    """A gradient code: who stores what, what each worker sends, how to decode.

    Build instances with :func:`dask_gradcode.codes.make_code`; subclasses
    supply the encoding tensor and, optionally, a structured decoder.

    Parameters
    ----------
    n_stragglers : int
        Stragglers the code tolerates (``decode`` is exact from any
        ``n_workers - n_stragglers`` responders).
    supports : sequence of sequence of int
        ``supports[i]`` are the partition ids worker ``i`` holds.
    encoding : ndarray of shape (n_workers, n_partitions, comm_reduction)
        The encoding tensor ``E``; zero outside each worker's support.
    cache_size : int, default=1024
        Number of responder sets whose decoding matrices are kept.
    """

    scheme: str = ""

    def __init__(
        self,
        *,
        n_stragglers: int,
        supports: Iterable[Iterable[int]],
        encoding: np.ndarray,
        cache_size: int = 1024,
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
            np.asarray(sorted(support), dtype=np.intp) for support in supports
        )
        if len(self._supports) != encoding.shape[0]:
            raise ValueError("one support per worker is required")
        self._n_stragglers = int(n_stragglers)
        self._cache_size = check_positive_int(cache_size, "cache_size")
        self._cache: OrderedDict[tuple[frozenset[int], bool], Decoder] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._full_decoder: np.ndarray | None = None
        self._local_coefficients = tuple(
            self._encoding[worker][support]
            for worker, support in enumerate(self._supports)
        )

    def __getstate__(self) -> dict[str, object]:
        # Codes travel to workers: ship the construction, not the lock or cache.
        state = self.__dict__.copy()
        del state["_cache_lock"]
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ shape
    @property
    def n_workers(self) -> int:
        """Number of workers ``n``."""
        return self._encoding.shape[0]

    @property
    def n_partitions(self) -> int:
        """Number of data partitions ``k`` the data set is split into."""
        return self._encoding.shape[1]

    @property
    def n_stragglers(self) -> int:
        """Stragglers tolerated: any ``n_workers - n_stragglers`` responders decode."""
        return self._n_stragglers

    @property
    def comm_reduction(self) -> int:
        """``m``: each message is ``ceil(dim / m)`` long instead of ``dim``."""
        return self._encoding.shape[2]

    @property
    def load(self) -> int:
        """Computation load ``d``: the most partitions any worker holds."""
        return max(len(support) for support in self._supports)

    @property
    def load_fraction(self) -> float:
        """Share of the data the busiest worker processes: ``load / n_partitions``."""
        return self.load / self.n_partitions

    @property
    def is_optimal(self) -> bool:
        """Whether the load meets Ye & Abbe's bound with equality.

        The bound: every worker processes at least ``(s + m) / n`` of the data
        (``d >= s + m`` partitions when ``n_partitions == n_workers``).
        """
        bound = (self.n_stragglers + self.comm_reduction) / self.n_workers
        return math.isclose(self.load_fraction, bound)

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

    def message_length(self, dim: int) -> int:
        """Length of every worker's message for a gradient of length ``dim``."""
        return math.ceil(check_positive_int(dim, "dim") / self.comm_reduction)

    def __repr__(self) -> str:
        return (
            f"<GradientCode {self.scheme!r}: n_workers={self.n_workers}, "
            f"n_stragglers={self.n_stragglers}, comm_reduction={self.comm_reduction}, "
            f"load={self.load}>"
        )

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

    def worker_encoder(self, worker: int) -> WorkerEncoder:
        """The small, picklable encoder of one worker (what a task ships)."""
        worker = self._check_worker(worker)
        return WorkerEncoder(worker, self._local_coefficients[worker])

    # ----------------------------------------------------------------- decode
    def is_decodable(self, responders: Iterable[int]) -> bool:
        """Whether these responders determine the full gradient.

        Structural, not a count: some schemes accept sets smaller than
        ``n_workers - n_stragglers`` (for example one survivor per group).
        """
        return self._is_decodable(self._check_responders(responders))

    def decoder(
        self, responders: Iterable[int], *, approximate: bool = False
    ) -> Decoder:
        """The (cached) decoding matrix for a responder set.

        Parameters
        ----------
        responders : iterable of int
            Workers whose messages arrived.
        approximate : bool, default=False
            For a set that ``is_decodable`` rejects, return the least-squares
            optimal decoder (Glasgow & Wootters) instead of raising.

        Raises
        ------
        NotDecodableError
            If the set is not decodable and ``approximate`` is False.
        """
        responder_set = self._check_responders(responders)
        decodable = self._is_decodable(responder_set)
        if not decodable and not approximate:
            raise NotDecodableError(
                f"{self.scheme} code cannot decode exactly from workers "
                f"{sorted(responder_set)}: {self._why_not_decodable(responder_set)}. "
                "Wait for more workers or pass approximate=True."
            )
        key = (responder_set, decodable)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        decoder = self._build_decoder(responder_set, decodable)
        with self._cache_lock:
            self._cache[key] = decoder
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return decoder

    def decode(
        self,
        messages: Mapping[int, np.ndarray],
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
            If the responders are not decodable, return the least-squares
            optimal estimate rather than raising ``NotDecodableError``.
        return_info : bool, default=False
            Also return the :class:`Decoder` used, which reports whether the
            result is exact and its error bound.

        Returns
        -------
        gradient : ndarray of shape (dim,)
        decoder : Decoder
            Only when ``return_info`` is True.
        """
        length = self.message_length(dim)
        decoder = self.decoder(messages.keys(), approximate=approximate)
        arrays = [np.asarray(messages[worker]) for worker in decoder.responders]
        if all(a.shape == (length,) and a.dtype.kind in "fiu" for a in arrays):
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                gradient = decoder.apply(arrays, dim)
            # NaN or inf in a message with a non-zero coefficient reaches the
            # result, so checking the short result checks those messages.
            if np.isfinite(gradient).all() and all(
                np.isfinite(messages[worker]).all() for worker in decoder.unused
            ):
                return (gradient, decoder) if return_info else gradient
        for worker, array in zip(decoder.responders, arrays, strict=True):
            self._check_message(worker, array, length)  # name the culprit
        raise FloatingPointError(
            "decoding overflowed although every message is finite; the messages "
            "are too large for float64 (scale the data or the loss)"
        )

    def clear_cache(self) -> None:
        """Forget every cached decoding matrix."""
        with self._cache_lock:
            self._cache.clear()

    # ---------------------------------------------------- scheme-specific hooks
    def _is_decodable(self, responders: frozenset[int]) -> bool:
        return len(responders) >= self.n_workers - self.n_stragglers

    def _why_not_decodable(self, responders: frozenset[int]) -> str:
        needed = self.n_workers - self.n_stragglers
        return f"{len(responders)} answered but any {needed} are needed"

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
        """Decoder for a set ``is_decodable`` rejects: the optimal least squares."""
        return self._least_squares_coefficients(responders)

    def _decodes_exactly(self, responders: frozenset[int], decodable: bool) -> bool:
        return decodable

    # ------------------------------------------------------------ generic math
    def _least_squares_coefficients(
        self, responders: tuple[int, ...]
    ) -> tuple[np.ndarray, float]:
        """``argmin_D ||D^T E_R - T||_F`` and the condition number of ``E_R``."""
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

    def _build_decoder(self, responders: frozenset[int], decodable: bool) -> Decoder:
        ordered = tuple(sorted(responders))
        if decodable:
            coefficients, condition = self._exact_coefficients(ordered)
        else:
            coefficients, condition = self._approximate_coefficients(ordered)
        return self._make_decoder(
            ordered,
            coefficients,
            condition,
            self._decodes_exactly(responders, decodable),
        )

    def _make_decoder(
        self,
        ordered: tuple[int, ...],
        coefficients: np.ndarray,
        condition: float,
        exact: bool,
    ) -> Decoder:
        rows = self._encoding[list(ordered)].reshape(len(ordered), -1)
        residual_matrix = coefficients.T @ rows - self._target()
        residual = float(np.linalg.norm(residual_matrix))
        coefficients = np.ascontiguousarray(coefficients)
        coefficients.setflags(write=False)
        return Decoder(
            responders=ordered,
            coefficients=coefficients,
            exact=exact,
            residual=residual,
            relative_error=residual**2 / (self.n_partitions * self.comm_reduction),
            error_bound=float(np.linalg.norm(residual_matrix, 2)),
            condition_number=condition,
        )

    def rescaled_decoder(self, responders: Iterable[int]) -> Decoder:
        """The one-step "ignore the stragglers" baseline for this code.

        Decode as if every worker had answered (the minimum-norm exact
        decoder), drop the missing workers' terms and rescale by
        ``n_workers / len(responders)``.  For the uncoded placement this is
        the ``"ignore-stragglers"`` scheme; :meth:`decoder` with
        ``approximate=True`` is never worse on the same responders.
        """
        ordered = tuple(sorted(self._check_responders(responders)))
        if self._full_decoder is None:
            self._full_decoder = self._least_squares_coefficients(
                tuple(range(self.n_workers))
            )[0]
        coefficients = self._full_decoder[list(ordered)] * (
            self.n_workers / len(ordered)
        )
        return self._make_decoder(
            ordered, coefficients, 1.0, len(ordered) == self.n_workers
        )

    # -------------------------------------------------------------- validation
    def _check_worker(self, worker: int) -> int:
        if isinstance(worker, bool) or not isinstance(worker, (int, np.integer)):
            raise TypeError(f"worker ids are integers, got {worker!r}")
        if not 0 <= worker < self.n_workers:
            raise ValueError(
                f"worker {worker} does not exist: ids run from 0 to {self.n_workers - 1}"
            )
        return int(worker)

    def _check_responders(self, responders: Iterable[int]) -> frozenset[int]:
        responder_set = frozenset(self._check_worker(w) for w in responders)
        if not responder_set:
            raise NotDecodableError("no worker has answered: nothing to decode")
        return responder_set

    @staticmethod
    def _check_message(worker: int, message: np.ndarray, length: int) -> np.ndarray:
        array = np.asarray(message)
        if array.shape != (length,):
            raise ValueError(
                f"message from worker {worker} has shape {array.shape}; every message "
                f"for this gradient must be a vector of length {length} "
                "(ceil(dim / comm_reduction))"
            )
        if array.dtype.kind not in "fiu":
            raise ValueError(
                f"message from worker {worker} has dtype {array.dtype}; send real numbers"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"message from worker {worker} contains NaN or inf; check that "
                "worker's data and loss"
            )
        return array
