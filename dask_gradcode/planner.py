"""Does coding pay on this cluster, and with which code?  Rank the candidates.

:func:`plan` builds every candidate ``(scheme, n_stragglers, comm_reduction,
policy)`` that the codes accept at ``n_workers``, replays measured round
times through each with the library's own collection loops, decoders and
policies on a virtual clock (:func:`~dask_gradcode.simulation.simulate`), and
ranks them by predicted iteration time: the virtual-clock time until a round
decodes, plus the client's own cost per round, measured for real.  The
round times come from a trace profile
(:class:`~dask_gradcode.traces.TraceProfile`) or from any latency function
``latency(round, loads) -> seconds per worker``.  When computation dominates
the stragglers, the first row is the uncoded scheme and the table says so:
coding does not pay.

Pure: no Dask.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dask_gradcode.codes import GradientCode, make_code

__all__ = [
    "DEFAULT_COMM_REDUCTIONS",
    "DEFAULT_SCHEMES",
    "PAYS_MARGIN",
    "Candidate",
    "PlanRow",
    "PlanTable",
    "candidates",
    "default_stragglers",
    "plan",
    "rank_codes",
]

#: Latency of a round: ``latency(round, loads)`` gives each worker's seconds
#: when worker ``w`` computes the fraction ``loads[w]`` of the data set.
Latency = Callable[[int, np.ndarray], np.ndarray]

#: Schemes a plan compares (``ignore-stragglers`` decodes approximately).
DEFAULT_SCHEMES = (
    "uncoded",
    "ignore-stragglers",
    "fractional-repetition",
    "cyclic-repetition",
    "gaussian-mds",
)

#: Communication reductions tried for the schemes that have them.
DEFAULT_COMM_REDUCTIONS = (1, 2, 4)

#: Schemes with a communication reduction ``m`` (the others have ``m = 1``).
_REDUCIBLE = ("gaussian-mds",)

#: A code is recommended over uncoded only when it is predicted at least this
#: much faster: replicas cost placement time and memory that the iteration
#: time does not show, and the client's measured cost is noisy.
PAYS_MARGIN = 0.02

#: Policies that split rows among holders need a replicated exact code.
_SPLITTING_POLICIES = ("adaptive", "speculative")


def default_stragglers(n_workers: int) -> tuple[int, ...]:
    """The straggler tolerances compared: 0, 1, 2, 4, 8, 15, 25, 40 and n/5 (< n)."""
    values = {0, 1, 2, 4, 8, 15, 25, 40, n_workers // 5}
    return tuple(sorted(s for s in values if s < n_workers))


@dataclass(frozen=True)
class Candidate:
    """One configuration a plan may recommend."""

    scheme: str
    n_stragglers: int
    comm_reduction: int = 1
    policy: str = "static"

    def build(self, n_workers: int) -> GradientCode:
        """The code of this candidate on ``n_workers`` (raises ValueError if none)."""
        if self.scheme == "uncoded":
            return make_code("uncoded", n_workers, 0)
        return make_code(
            self.scheme,
            n_workers,
            self.n_stragglers,
            self.comm_reduction,
            random_state=0,
        )


def candidates(
    n_workers: int,
    *,
    stragglers: Sequence[int] | None = None,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    comm_reductions: Sequence[int] = DEFAULT_COMM_REDUCTIONS,
    policies: Sequence[str] = ("static", *_SPLITTING_POLICIES),
) -> list[Candidate]:
    """Every candidate to compare (some may not build at ``n_workers``).

    ``uncoded`` once; each other scheme with every tolerance of
    ``stragglers`` from 1 (default :func:`default_stragglers`), with every
    ``comm_reductions`` for ``gaussian-mds``, under the static policy; the
    splitting policies (``adaptive``, ``speculative``) on the exact
    replicated codes with ``m = 1``.
    """
    tolerances = default_stragglers(n_workers) if stragglers is None else stragglers
    chosen: list[Candidate] = []
    for scheme in schemes:
        if scheme == "uncoded":
            chosen.append(Candidate("uncoded", 0))
            continue
        for s in tolerances:
            if s < 1:
                continue
            reductions = comm_reductions if scheme in _REDUCIBLE else (1,)
            for m in reductions:
                for policy in policies:
                    splitting = policy in _SPLITTING_POLICIES
                    if splitting and (scheme == "ignore-stragglers" or m != 1):
                        continue
                    chosen.append(Candidate(scheme, int(s), int(m), policy))
    return chosen


@dataclass(frozen=True)
class PlanRow:
    """One candidate's predicted cost per iteration.

    Attributes
    ----------
    scheme, n_stragglers, comm_reduction, policy
        The candidate.
    load : float
        Fraction of the data set each worker computes in a coded round.
    exact : bool
        Whether its gradients are exact (``ignore-stragglers``' are not).
    mean_iteration_s, p90_iteration_s : float
        Virtual-clock seconds from submission until the round decodes.
    client_ms_per_round : float
        The client's own cost per round (planning, collecting, decoding),
        measured on this machine.
    predicted_s : float
        ``mean_iteration_s`` plus the client's cost: the ranking key.
    """

    scheme: str
    n_stragglers: int
    comm_reduction: int
    policy: str
    load: float
    exact: bool
    mean_iteration_s: float
    p90_iteration_s: float
    client_ms_per_round: float

    @property
    def predicted_s(self) -> float:
        """Predicted seconds per iteration (virtual time plus client cost)."""
        return self.mean_iteration_s + self.client_ms_per_round / 1e3

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (with ``predicted_s``)."""
        return {**asdict(self), "predicted_s": self.predicted_s}


@dataclass(frozen=True)
class PlanTable:
    """Candidates ranked by predicted iteration time, fastest first.

    Attributes
    ----------
    n_workers : int
    rows : tuple of PlanRow
        Exact candidates first in the ranking; an approximate candidate is
        ranked by time too, but :attr:`best` is the fastest *exact* one.
    skipped : tuple of (Candidate, str)
        Candidates that do not build at ``n_workers``, and why.
    """

    n_workers: int
    rows: tuple[PlanRow, ...]
    skipped: tuple[tuple[Candidate, str], ...] = ()

    def __iter__(self) -> Iterator[PlanRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def best(self) -> PlanRow:
        """The recommended candidate: the fastest exact one, if coding pays.

        Uncoded is recommended unless an exact code is predicted at least
        :data:`PAYS_MARGIN` faster per iteration.
        """
        exact = [row for row in self.rows if row.exact]
        if not exact:
            raise ValueError("no exact candidate was simulated")
        fastest, uncoded = exact[0], self.uncoded
        if uncoded is not None and fastest.predicted_s * (1 + PAYS_MARGIN) > (
            uncoded.predicted_s
        ):
            return uncoded
        return fastest

    @property
    def uncoded(self) -> PlanRow | None:
        """The uncoded row, if it was simulated."""
        return next((row for row in self.rows if row.scheme == "uncoded"), None)

    @property
    def advice(self) -> str:
        """One sentence: which configuration to use, and whether coding pays."""
        best, uncoded = self.best, self.uncoded
        if best.scheme == "uncoded":
            return (
                f"use no code: on {self.n_workers} workers no code is predicted "
                f"{PAYS_MARGIN:.0%} faster per iteration than uncoded (its extra "
                "computation costs at least what the stragglers it skips cost)"
            )
        what = (
            f"{best.scheme} with n_stragglers={best.n_stragglers}, "
            f"comm_reduction={best.comm_reduction}, policy={best.policy!r}"
        )
        if uncoded is None:
            return f"use {what}"
        gain = uncoded.predicted_s / best.predicted_s
        return f"use {what}: {gain:.2f}x faster per iteration than uncoded"

    def records(self) -> list[dict[str, Any]]:
        """Every row as a plain dict, in ranking order."""
        return [row.as_dict() for row in self.rows]


def plan(
    profile: Any = None,
    *,
    latency: Latency | None = None,
    n_workers: int | None = None,
    stragglers: Sequence[int] | None = None,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    comm_reductions: Sequence[int] = DEFAULT_COMM_REDUCTIONS,
    policies: Sequence[str] = ("static", *_SPLITTING_POLICIES),
    rounds: int | None = None,
    start_round: int = 0,
    n_samples: int | None = None,
    dim: int = 101,
    seed: int = 0,
    progress: Callable[[Iterator[Any]], Iterator[Any]] | None = None,
) -> PlanTable:
    """Rank every candidate code by predicted iteration time on measured latencies.

    Parameters
    ----------
    profile : TraceProfile, str or path, optional
        Measured round times per worker and load (a folder of
        ``load-<fraction>.csv``, see :mod:`dask_gradcode.traces`).
    latency : callable, optional
        Instead of ``profile``: ``latency(round, loads)`` returns each
        worker's seconds when worker ``w`` computes the fraction ``loads[w]``
        of the data set.
    n_workers : int, optional
        Workers of the cluster to plan for; default the profile's.  A
        profile with fewer workers is wrapped around.
    stragglers, schemes, comm_reductions, policies
        What to compare (see :func:`candidates`).
    rounds : int, optional
        Rounds replayed per candidate; default the profile's rounds (from
        ``start_round``), 20 with a latency function.
    start_round : int, default=0
    n_samples : int, optional
        Rows of the (virtual) data set; matters only for split rounds' shares.
    dim : int, default=101
        Length of each (virtual) gradient message: the decode's cost grows
        with it.
    seed : int, default=0
    progress : callable, optional
        Wraps the candidates' iterator (a ``tqdm``, for example).

    Returns
    -------
    PlanTable
        Ranked by ``mean_iteration_s`` plus the client's cost per round;
        :attr:`PlanTable.best` is the recommended exact configuration and
        :attr:`PlanTable.advice` says whether coding pays.
    """
    latency, n_workers, default_rounds = _latency_of(profile, latency, n_workers)
    rounds = default_rounds - start_round if rounds is None else rounds
    if rounds < 1:
        raise ValueError(
            f"rounds must be >= 1, got {rounds} (start_round={start_round})"
        )
    chosen = candidates(
        n_workers,
        stragglers=stragglers,
        schemes=schemes,
        comm_reductions=comm_reductions,
        policies=policies,
    )
    built, skipped = [], []
    for candidate in chosen:
        try:
            built.append((candidate.build(n_workers), candidate.policy))
        except ValueError as error:
            skipped.append((candidate, str(error)))
    rows = rank_codes(
        built,
        latency,
        rounds=rounds,
        start_round=start_round,
        n_samples=n_samples,
        dim=dim,
        seed=seed,
        progress=progress,
    )
    return PlanTable(n_workers, tuple(rows), tuple(skipped))


def rank_codes(
    entries: Sequence[tuple[GradientCode, str]],
    latency: Latency,
    *,
    rounds: int,
    start_round: int = 0,
    n_samples: int | None = None,
    dim: int = 101,
    seed: int = 0,
    progress: Callable[[Iterator[Any]], Iterator[Any]] | None = None,
) -> list[PlanRow]:
    """Replay ``latency`` through each ``(code, policy)``; rows fastest first.

    The engine of :func:`plan`, for codes already built (``n_stragglers="auto"``
    ranks the codes of one scheme this way).
    """
    from dask_gradcode.simulation import simulate  # the planner's engine

    rows = []
    for code, policy in entries if progress is None else progress(iter(entries)):
        result = simulate(
            code,
            latency,
            rounds=rounds,
            policy=policy,
            start_round=start_round,
            n_samples=n_samples,
            dim=dim,
            seed=seed,
        )
        rows.append(
            PlanRow(
                scheme=code.scheme,
                n_stragglers=code.n_stragglers,
                comm_reduction=code.comm_reduction,
                policy=policy,
                load=_load(code),
                exact=code.scheme != "ignore-stragglers",
                mean_iteration_s=float(result.mean_iteration_s),
                p90_iteration_s=float(result.p90_iteration_s),
                client_ms_per_round=float(result.client_ms_per_round),
            )
        )
    rows.sort(key=lambda row: (row.predicted_s, not row.exact))
    return rows


def _load(code: GradientCode) -> float:
    """Largest fraction of the data set one worker computes in a coded round.

    Partitions need not be the same size (grouped codes size them per
    group), so the fraction is counted in rows.
    """
    rows = np.diff(code.partition_bounds(_ROWS_FOR_LOAD))
    held = max(int(rows[code.partitions(w)].sum()) for w in range(code.n_workers))
    return held / _ROWS_FOR_LOAD


#: Rows the load is counted on: enough that rounding to whole rows is noise.
_ROWS_FOR_LOAD = 10**6


def _latency_of(
    profile: Any, latency: Latency | None, n_workers: int | None
) -> tuple[Latency, int, int]:
    """``(latency, n_workers, rounds)`` from a profile or a latency function."""
    if (profile is None) == (latency is None):
        raise ValueError("pass exactly one of profile or latency")
    if latency is not None:
        if n_workers is None:
            raise ValueError("n_workers is needed with a latency function")
        return latency, int(n_workers), 20
    from dask_gradcode.traces import TraceProfile

    if isinstance(profile, str | os.PathLike):
        profile = TraceProfile.from_folder(profile)
    replay = profile.latency(n_workers)
    n = profile.n_workers if n_workers is None else int(n_workers)
    return replay, n, int(profile.n_rounds)
