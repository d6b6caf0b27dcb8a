"""Integrity: whether a round's replies agree with each other, and who is wrong.

A gradient code's messages are linear in the partitions' partial gradients:
the responders ``R`` send ``M_R = E_R Q``, with ``E_R`` their rows of the
flattened encoding matrix and ``Q`` the partitions' sub-vectors.  Whenever
``R`` holds more replies than some decodable subset needs, ``E_R`` has a left
null space: every ``h`` with ``h^T E_R = 0`` must give ``h^T M_R = 0`` (two
decodable subsets' decoding vectors differ by such an ``h``, so this is
exactly "every decodable subset gives the same sum").  :func:`check_replies`
measures ``||H^T M_R||`` against ``||M_R||``: a worker whose message is wrong
by more than the rounding of an honest round breaks it, unless its row of
``H`` is zero (nobody else's replies cover its partitions in that round).

Locating the wrong worker needs more than one disagreement:
:func:`locate_faults` takes every worker's unencoded partial gradients (an
*audit* round), finds for each partition the value its holders agree on, and
names the workers whose partials or messages differ from it.  A partition
held by two workers that disagree, with no other evidence, names nobody: two
opinions cannot outvote each other.

Pure NumPy/SciPy: no Dask.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from dask_gradcode.codes._base import GradientCode
from dask_gradcode.codes._sparse import SparseMessage, as_dense

__all__ = [
    "AUDIT_RTOL",
    "VERIFY_RTOL",
    "Consistency",
    "Located",
    "agree",
    "check_replies",
    "locate_faults",
    "parity_checks",
]

#: Smallest disagreement of a round's replies, relative to their norm, that
#: counts as a fault (scaled up by the conditioning of the responders' rows).
#: Honest replies disagree by rounding only: about 1e-16 times the
#: conditioning.
VERIFY_RTOL = 1e-7

#: Two holders' partial gradients of one partition agree when they differ by
#: at most this, relative to the larger (they computed the same rows with the
#: same weights: bit-identical on one machine, rounding apart across BLAS
#: builds).
AUDIT_RTOL = 1e-9

#: Responder sets whose parity checks each code remembers.
_CACHED_SETS = 64


@dataclass(frozen=True)
class ParityChecks:
    """The left null space of a responder set's encoding rows.

    Attributes
    ----------
    responders : tuple of int
        Sorted; row ``r`` of ``basis`` belongs to ``responders[r]``.
    basis : ndarray of shape (len(responders), n_checks)
        Orthonormal columns ``h`` with ``h^T E_R = 0`` (none: no redundancy).
    tolerance : float
        The relative discrepancy above which the replies disagree.
    """

    responders: tuple[int, ...]
    basis: np.ndarray = field(repr=False)
    tolerance: float

    @property
    def n_checks(self) -> int:
        """How many independent checks the set allows (0: unverifiable)."""
        return int(self.basis.shape[1])

    def covers(self, worker: int) -> bool:
        """Whether a wrong message of ``worker`` shows in some check."""
        row = self.basis[self.responders.index(worker)]
        return bool(np.any(np.abs(row) > 1e-12))


@dataclass(frozen=True)
class Consistency:
    """What :func:`check_replies` found.

    Attributes
    ----------
    checked : bool
        Whether the replies held any redundancy to check.
    verified : bool
        Checked, and every decodable subset gives the same sum.
    discrepancy : float
        ``||H^T M|| / ||M||`` (0.0 when not checked).
    tolerance : float
        The discrepancy above which the replies disagree.
    unchecked : tuple of int
        Responders whose messages no check covers.
    """

    checked: bool
    verified: bool
    discrepancy: float
    tolerance: float
    unchecked: tuple[int, ...] = ()


_CACHES: weakref.WeakKeyDictionary[GradientCode, OrderedDict] = (
    weakref.WeakKeyDictionary()
)
_CACHE_LOCK = threading.Lock()


def parity_checks(code: GradientCode, responders: Sequence[int]) -> ParityChecks:
    """The (cached) parity checks of ``responders``' messages under ``code``."""
    key = tuple(sorted(set(responders)))
    with _CACHE_LOCK:
        cache = _CACHES.setdefault(code, OrderedDict())
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
    rows = np.asarray(code.encoding_matrix, dtype=np.float64)[list(key)]
    singular = scipy.linalg.svdvals(rows) if rows.size else np.zeros(0)
    largest = float(singular[0]) if singular.size else 0.0
    rank_tol = max(rows.shape) * np.finfo(np.float64).eps * largest
    kept = singular[singular > rank_tol]
    conditioning = largest / float(kept[-1]) if kept.size else 1.0
    basis = scipy.linalg.null_space(rows.T, rcond=np.finfo(np.float64).eps * 16)
    checks = ParityChecks(key, basis, VERIFY_RTOL * max(1.0, conditioning))
    with _CACHE_LOCK:
        cache[key] = checks
        while len(cache) > _CACHED_SETS:
            cache.popitem(last=False)
    return checks


def _stack(
    messages: Mapping[int, np.ndarray | SparseMessage], order: Sequence[int]
) -> np.ndarray:
    return np.array([as_dense(messages[w]) for w in order], dtype=np.float64)


def check_replies(
    code: GradientCode, messages: Mapping[int, np.ndarray | SparseMessage]
) -> Consistency:
    """Whether the replies agree: every decodable subset gives the same sum.

    Parameters
    ----------
    code : GradientCode
    messages : mapping of int to ndarray or SparseMessage
        Every reply the round has, spare ones included.

    Returns
    -------
    Consistency
        ``checked`` is False when the replies are no more than one decodable
        set needs (nothing to compare): the round is unverified, not wrong.
    """
    checks = parity_checks(code, list(messages))
    if not checks.n_checks:
        return Consistency(False, False, 0.0, checks.tolerance, checks.responders)
    stacked = _stack(messages, checks.responders)
    scale = float(np.linalg.norm(stacked))
    residual = float(np.linalg.norm(checks.basis.T @ stacked))
    discrepancy = residual / scale if scale > 0 else 0.0
    unchecked = tuple(w for w in checks.responders if not checks.covers(w))
    return Consistency(
        True,
        bool(np.isfinite(discrepancy) and discrepancy <= checks.tolerance),
        discrepancy,
        checks.tolerance,
        unchecked,
    )


@dataclass(frozen=True)
class Located:
    """What an audit found.

    Attributes
    ----------
    faulty : tuple of int
        Workers whose partial gradients or messages differ from what their
        partitions' holders agree on.
    undecided : tuple of int
        Partitions whose holders disagree with no majority and no other
        evidence: whoever is wrong there cannot be named.
    consensus : dict of int to ndarray
        Each partition's agreed partial gradient, where one is known.
    """

    faulty: tuple[int, ...]
    undecided: tuple[int, ...]
    consensus: dict[int, np.ndarray] = field(repr=False)


def agree(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    """Whether ``a`` and ``b`` differ by at most ``rtol`` times the larger norm."""
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    return bool(np.linalg.norm(a - b) <= rtol * scale)


def _clusters(
    values: dict[int, np.ndarray], rtol: float
) -> list[tuple[list[int], np.ndarray]]:
    """Holders grouped by agreement (each group: its members and a value)."""
    groups: list[tuple[list[int], np.ndarray]] = []
    for worker, value in sorted(values.items()):
        for members, representative in groups:
            if agree(value, representative, rtol):
                members.append(worker)
                break
        else:
            groups.append(([worker], value))
    return groups


def locate_faults(
    code: GradientCode,
    partials: Mapping[int, np.ndarray],
    messages: Mapping[int, np.ndarray | SparseMessage] | None = None,
    *,
    rtol: float = AUDIT_RTOL,
) -> Located:
    """Name the workers whose results disagree with their partitions' holders.

    Parameters
    ----------
    code : GradientCode
    partials : mapping of int to ndarray of shape (len(code.partitions(w)), dim)
        Each audited worker's unencoded partial gradients, in the order of
        ``code.partitions(w)``.
    messages : mapping of int to ndarray or SparseMessage, optional
        The coded messages of the round that disagreed, at the same weights:
        a worker whose message is not the encoding of the agreed partials is
        faulty too (its fault is in encoding or in sending).
    rtol : float, default=AUDIT_RTOL

    Returns
    -------
    Located
    """
    by_partition: dict[int, dict[int, np.ndarray]] = {}
    for worker, rows in partials.items():
        for row, partition in enumerate(code.partitions(worker)):
            by_partition.setdefault(partition, {})[worker] = np.asarray(rows[row])
    agreed_somewhere: set[int] = set()
    ties: list[tuple[int, list[list[int]]]] = []
    faulty: set[int] = set()
    consensus: dict[int, np.ndarray] = {}
    for partition, values in by_partition.items():
        groups = _clusters(values, rtol)
        for members, _ in groups:
            if len(members) > 1:
                agreed_somewhere.update(members)
        sizes = sorted((len(m) for m, _ in groups), reverse=True)
        if len(groups) == 1 or sizes[0] > sizes[1]:
            members, value = max(groups, key=lambda g: len(g[0]))
            consensus[partition] = value
            faulty.update(w for m, _ in groups if m is not members for w in m)
        else:
            ties.append((partition, [m for m, _ in groups]))
    undecided = []
    for partition, groups_of_tie in ties:
        # Two opinions: the one whose members agree with somebody elsewhere
        # stands, when it is the only one that does.
        trusted = [m for m in groups_of_tie if all(w in agreed_somewhere for w in m)]
        if len(trusted) == 1:
            members = trusted[0]
            consensus[partition] = by_partition[partition][members[0]]
            faulty.update(w for m in groups_of_tie if m is not members for w in m)
        else:
            undecided.append(partition)
    if messages is not None:
        faulty.update(_wrong_messages(code, messages, consensus, faulty))
    return Located(tuple(sorted(faulty)), tuple(sorted(undecided)), consensus)


def _wrong_messages(
    code: GradientCode,
    messages: Mapping[int, np.ndarray | SparseMessage],
    consensus: dict[int, np.ndarray],
    faulty: set[int],
) -> set[int]:
    """Workers whose message is not the encoding of their partitions' consensus."""
    wrong = set()
    for worker, message in messages.items():
        if worker in faulty:
            continue
        held = code.partitions(worker)
        if not all(p in consensus for p in held):
            continue
        expected = code.encode(worker, np.array([consensus[p] for p in held]))
        if not agree(as_dense(message), expected, VERIFY_RTOL):
            wrong.add(worker)
    return wrong
