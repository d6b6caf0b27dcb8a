"""``n_stragglers="auto"``: measure the workers uncoded, code only where it pays.

A code is insurance: each extra copy of a partition costs computation in
every round, and it pays only when the stragglers it skips cost more.  So a
run with ``n_stragglers="auto"`` starts uncoded (one partition per worker,
the least computation) and measures every worker in every round: the
seconds that do not depend on how much it computes (its reply's overhead,
its injected or real delays) and its computation per row.  From those
measurements, :func:`choose` builds the candidate codes of the run's scheme
(:func:`~dask_gradcode.planner.default_stragglers` tolerances), replays the
measured rounds through each with the library's own rounds, decoders and
policies on a virtual clock (:func:`~dask_gradcode.planner.rank_codes`), and
recommends a code only when it is predicted at least :data:`AUTO_MARGIN`
faster per iteration than uncoded *and* the time it saves over as many
rounds as were measured pays for placing its replicas.

The model of a worker ``w`` in a measured round ``r`` computing the fraction
``l`` of the data set: ``fixed[r, w] + l * n_samples * work_per_row[r, w]``
(:class:`LatencyLog`); the measurements are a two-load trace profile
(:class:`~dask_gradcode.traces.TraceProfile`), so the planner reads them as
it reads a cloud trace.  Slowness that scales with the load shows only in
the computation a worker measures itself; an injected delay counts as fixed.

Coded rounds are measured too, but a coded round is decoded without its
stragglers, whose times it never sees: they are *censored*, logged at the
lower bound the round gives (the last reply it waited for).  That bound is
right for codes that skip at least as many workers and optimistic for codes
that skip fewer, so once a run codes, :func:`choose` only compares codes
that tolerate at least as many stragglers as the current one: a run grows
its insurance on what it measures, and goes back to uncoded only when its
measurements are forgotten (a later run measures uncoded again).

Pure: no Dask.
"""

from __future__ import annotations

import copy
import functools
import math
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dask_gradcode.codes import SCHEMES, GradientCode, make_code
from dask_gradcode.codes._validation import require_single_message_block
from dask_gradcode.planner import PlanRow, default_stragglers, rank_codes
from dask_gradcode.traces import TraceProfile

__all__ = [
    "AUTO_MARGIN",
    "FIRST_DECISION",
    "AutoCode",
    "CodeChoice",
    "LatencyLog",
    "build_code",
    "choose",
    "code_key",
    "measured_profile",
    "round_timings",
]

#: A code is chosen only when predicted at least this much faster per
#: iteration than uncoded: the measured rounds are few and the replay
#: re-uses them, so a smaller predicted gain is within their noise.
AUTO_MARGIN = 0.10

#: Uncoded rounds measured before the first decision (then after twice as
#: many, and so on: the decision costs a replay of every candidate).
FIRST_DECISION = 5

#: Rounds a :class:`LatencyLog` keeps (the newest).
MAX_LOGGED_ROUNDS = 200

#: Rounds a decision replays (the newest): enough for a stable mean, few
#: enough that a decision costs tens of milliseconds.
REPLAYED_ROUNDS = 40

#: Schemes whose messages are whole gradients (``comm_reduction`` 1 only).
_WHOLE_GRADIENT = (
    "uncoded",
    "ignore-stragglers",
    "fractional-repetition",
    "cyclic-repetition",
    "cyclic-mds",
)


@dataclass(frozen=True)
class AutoCode:
    """What ``n_stragglers="auto"`` chooses from, and how.

    Pass it as the ``code`` of a
    :class:`~dask_gradcode.scheduler.CodedGradient`: the run starts uncoded,
    measures, and grows the code this chooses when it pays.

    Parameters
    ----------
    scheme : str, default="auto"
        The scheme of every candidate code (a name of
        :func:`~dask_gradcode.make_code`; ``"auto"``: the least load that is
        stable at each tolerance).
    n_workers : int, optional
        Workers of the code; default every responsive worker of the cluster.
    comm_reduction : int, default=1
    policy : str, default="static"
        The policy the candidates are replayed (and run) with.
    stragglers : tuple of int, optional
        Tolerances compared; default
        :func:`~dask_gradcode.planner.default_stragglers`.
    margin : float, default=AUTO_MARGIN
    first_decision : int, default=FIRST_DECISION
    random_state : int, default=0
        Seeds the random codes.
    """

    scheme: str = "auto"
    n_workers: int | None = None
    comm_reduction: int = 1
    policy: str = "static"
    stragglers: tuple[int, ...] | None = None
    margin: float = AUTO_MARGIN
    first_decision: int = FIRST_DECISION
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES or self.scheme == "linear":
            raise ValueError(
                f"scheme must be one of {[s for s in SCHEMES if s != 'linear']}, "
                f"got {self.scheme!r}"
            )
        if self.scheme in _WHOLE_GRADIENT:
            require_single_message_block(self.scheme, self.comm_reduction)
        if self.n_workers is not None and not (
            isinstance(self.n_workers, int) and self.n_workers >= 1
        ):
            raise ValueError(f"n_workers must be an int >= 1, got {self.n_workers!r}")
        if not (isinstance(self.comm_reduction, int) and self.comm_reduction >= 1):
            raise ValueError(
                f"comm_reduction must be an int >= 1, got {self.comm_reduction!r}"
            )
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0, got {self.margin}")
        if not (isinstance(self.first_decision, int) and self.first_decision >= 1):
            raise ValueError(
                f"first_decision must be an int >= 1, got {self.first_decision!r}"
            )

    def uncoded(self, n_workers: int, reason: str) -> GradientCode:
        """The uncoded code a run starts with, its ``selection_reason`` set."""
        code = make_code("uncoded", n_workers, 0)
        code.selection_reason = reason
        return code

    def candidates(self, n_workers: int) -> list[GradientCode]:
        """Every code of the scheme with a tolerance of at least 1 that builds."""
        tolerances = (
            default_stragglers(n_workers)
            if self.stragglers is None
            else self.stragglers
        )
        built = []
        for s in sorted({int(s) for s in tolerances if 1 <= s < n_workers}):
            try:
                built.append(
                    build_code(
                        self.scheme,
                        s,
                        self.comm_reduction,
                        n_workers,
                        self.random_state,
                    )
                )
            except ValueError:
                continue  # not at this size (groups, s + m > n, unstable)
        return built


@functools.lru_cache(maxsize=64)
def build_code(scheme: str, s: int, m: int, n: int, seed: int) -> GradientCode:
    """``make_code(scheme, n, s, m)``, verified once per process and shared.

    A decision rebuilds none; copy the code before changing its
    ``selection_reason``.
    """
    return make_code(scheme, n, s, m, random_state=seed)


def round_timings(
    record: Any, worker_rows: Sequence[int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(fixed seconds, work seconds per row)`` per worker of one round.

    ``record`` is a :class:`~dask_gradcode.scheduler.RoundRecord`;
    ``worker_rows`` the rows each worker computed in it.  A worker that
    replied has ``fixed = response - work``.  A straggler a coded round was
    decoded without is *censored*: it took at least as long as the last
    reply the round waited for, so it gets that lower bound (less the work
    its rows take at the responders' median work per row).  None unless the
    round is an exact coded-plan round of every worker at its first attempt
    with no failure.
    """
    n = len(worker_rows)
    if (
        record.plan != "coded"
        or record.attempts != 1
        or record.n_workers != n
        or record.failed
        or not record.exact
        or not record.response_seconds
    ):
        return None
    work_of = record.work_seconds or record.compute_seconds
    rows = np.maximum(np.asarray(worker_rows, dtype=float), 1.0)
    replied = [w for w in range(n) if w in record.response_seconds]
    per_row = np.zeros(n)
    fixed = np.zeros(n)
    for w in replied:
        work = work_of.get(w, 0.0)
        per_row[w] = work / rows[w]
        fixed[w] = max(record.response_seconds[w] - work, 0.0)
    censored = [w for w in range(n) if w not in record.response_seconds]
    if censored:
        typical = float(np.median(per_row[replied]))
        waited = max(record.response_seconds.values())
        for w in censored:
            per_row[w] = typical
            fixed[w] = max(waited - typical * rows[w], 0.0)
    return fixed, per_row


def measured_profile(records: Sequence[Any], n_samples: int) -> TraceProfile:
    """A live cluster's own measurements as a trace profile, for :func:`plan`.

    ``records`` are a run's rounds (``CodedGradient.history``, or a fitted
    estimator's ``rounds_`` after an uncoded fit: ``n_stragglers=0``, or
    ``"auto"`` while it measured); the complete uncoded rounds among them
    are read as :class:`LatencyLog` reads them, for data of ``n_samples``
    rows.

    Examples
    --------
    >>> model = CodedSGDClassifier(n_stragglers=0).fit(X, y)  # doctest: +SKIP
    >>> table = dask_gradcode.plan(measured_profile(model.rounds_, len(X)))  # doctest: +SKIP
    >>> table.advice  # doctest: +SKIP
    """
    log = LatencyLog(max_rounds=max(len(records), 1))
    n_workers = 0
    rows_of: dict[int, list[int]] = {}  # per size: every round of it shares them
    for record in records:
        if record.scheme != "uncoded":
            continue
        if record.n_workers not in rows_of:
            bounds = make_code("uncoded", record.n_workers, 0).partition_bounds(
                n_samples
            )
            rows_of[record.n_workers] = np.diff(bounds).tolist()
        timings = round_timings(record, rows_of[record.n_workers])
        if timings is not None:
            log.add(list(range(record.n_workers)), *timings)
            n_workers = record.n_workers
    if not n_workers:
        raise ValueError(
            "no complete uncoded round among the records: fit with "
            "n_stragglers=0 (or 'auto' before it codes) to measure every worker"
        )
    return log.profile(list(range(n_workers)), n_samples)


class LatencyLog:
    """Measured uncoded rounds, per worker: fixed seconds and work per row.

    Workers are named by any hashable key (a scheduler keys them by
    address), so the rounds of several runs on the same workers add up.

    Parameters
    ----------
    max_rounds : int, default=MAX_LOGGED_ROUNDS
        Rounds kept (the newest).
    """

    def __init__(self, max_rounds: int = MAX_LOGGED_ROUNDS) -> None:
        self._rounds: deque[dict[Hashable, tuple[float, float]]] = deque(
            maxlen=max_rounds
        )

    def add(
        self,
        workers: Sequence[Hashable],
        fixed_s: Sequence[float] | np.ndarray,
        work_s_per_row: Sequence[float] | np.ndarray,
    ) -> None:
        """One round: each worker's fixed seconds and work seconds per row."""
        if not len(workers) == len(fixed_s) == len(work_s_per_row):
            raise ValueError("one fixed time and one work time per worker")
        self._rounds.append(
            {
                worker: (float(fixed), float(work))
                for worker, fixed, work in zip(
                    workers, fixed_s, work_s_per_row, strict=True
                )
            }
        )

    def __len__(self) -> int:
        return len(self._rounds)

    def rounds_of(self, workers: Sequence[Hashable]) -> int:
        """Rounds that measured every one of ``workers``."""
        return len(self._covering(workers))

    def _covering(self, workers: Sequence[Hashable]) -> list[dict]:
        return [r for r in self._rounds if all(w in r for w in workers)]

    def profile(
        self, workers: Sequence[Hashable], n_samples: int, newest: int | None = None
    ) -> TraceProfile:
        """The rounds that measured all ``workers`` as a two-load trace profile.

        Load 0 takes the fixed seconds, load ``1 / n`` adds the computation of
        ``n_samples / n`` rows; the profile extrapolates linearly above.
        ``newest``: only the newest that many rounds.
        """
        rounds = self._covering(workers)[-(newest or 0) :]
        if not rounds:
            raise ValueError("no measured round covers these workers")
        fixed = np.array([[r[w][0] for w in workers] for r in rounds])
        per_row = np.array([[r[w][1] for w in workers] for r in rounds])
        share = 1.0 / len(workers)
        loaded = fixed + per_row * n_samples * share
        return TraceProfile(
            "measured", np.array([0.0, share]), np.stack([fixed, loaded])
        )


@dataclass(frozen=True)
class CodeChoice:
    """What :func:`choose` decided, and why.

    Attributes
    ----------
    code : GradientCode
        The chosen code (uncoded when coding does not pay); its
        ``selection_reason`` is :attr:`reason`.
    reason : str
    rows : tuple of PlanRow
        The candidates as replayed, fastest first (empty when nothing was
        replayed).
    measured_rounds : int
    """

    code: GradientCode
    reason: str
    rows: tuple[PlanRow, ...] = field(default=(), repr=False)
    measured_rounds: int = 0

    @property
    def codes(self) -> bool:
        """Whether the choice is a code with redundancy (not uncoded)."""
        return self.code.scheme != "uncoded"


def choose(
    spec: AutoCode,
    log: LatencyLog,
    workers: Sequence[Hashable],
    n_samples: int,
    *,
    dim: int = 101,
    placement_seconds: float = 0.0,
    current: GradientCode | None = None,
) -> CodeChoice | None:
    """Decide from the measured rounds whether, and with which code, to code.

    Parameters
    ----------
    spec : AutoCode
    log : LatencyLog
    workers : sequence
        The run's workers, in code order (keys of ``log``).
    n_samples : int
        Rows of the data set.
    dim : int, default=101
        Length of a gradient message (the replayed decodes' cost).
    placement_seconds : float, default=0.0
        What placing the data once (uncoded) took; a code with load ``d``
        is charged ``d - 1`` times it.
    current : GradientCode, optional
        The run's code, if it codes: then only codes tolerating at least as
        many stragglers are compared, with it instead of uncoded.

    Returns
    -------
    CodeChoice or None
        None while fewer than ``spec.first_decision`` rounds measured every
        worker.
    """
    n = len(workers)
    measured = log.rounds_of(workers)
    if n < 2:
        return _stay(spec, n, "one worker: there is nothing to code", measured)
    if measured < spec.first_decision:
        return None
    # The run's code when it codes (its rounds cannot speak for fewer stragglers).
    coding = current if current is not None and current.scheme != "uncoded" else None
    floor = coding.n_stragglers if coding is not None else 1
    codes = [c for c in spec.candidates(n) if c.n_stragglers >= floor]
    if not codes:
        return _stay(
            spec,
            n,
            f"no {spec.scheme} code with a tolerance >= 1 builds on {n} workers",
            measured,
        )
    baseline = coding if coding is not None else spec.uncoded(n, "")
    entries = [(baseline, spec.policy if coding is not None else "static")]
    entries += [(c, spec.policy) for c in codes if code_key(c) != code_key(baseline)]
    rows = _replay(entries, log, workers, n_samples, measured, dim)
    base = next(row for row in rows if code_key(row) == code_key(baseline))
    best = next(row for row in rows if row.exact)
    saved = (base.predicted_s - best.predicted_s) * measured
    extra_placement = placement_seconds * max(best.load * n - 1, 0.0)
    against = _what(base) if coding is not None else "uncoded"
    if best is base or best.predicted_s * (1 + spec.margin) > base.predicted_s:
        if coding is not None:
            return _keep(coding, rows, measured)
        closest = next(row for row in rows if row.exact and row is not base)
        return _stay(
            spec,
            n,
            f"no code is predicted {spec.margin:.0%} faster per iteration than "
            f"uncoded ({_ms(base)} per round measured over {measured} rounds; "
            f"the fastest code, {_what(closest)}, {_ms(closest)})",
            measured,
            rows,
        )
    if saved < extra_placement:
        if coding is not None:
            return _keep(coding, rows, measured)
        return _stay(
            spec,
            n,
            f"{_what(best)} is predicted {_ms(best)} per round against "
            f"{_ms(base)} uncoded, but over {measured} rounds that saves "
            f"{saved:.2f} s, less than placing its replicas "
            f"(~{extra_placement:.2f} s)",
            measured,
            rows,
        )
    code = copy.copy(next(c for c in codes if code_key(c) == code_key(best)))
    reason = (
        f"n_stragglers='auto': coding pays: measured {measured} rounds on "
        f"{n} workers, {_what(best)} predicted {_ms(best)} per round against "
        f"{_ms(base)} with {against} ({base.predicted_s / best.predicted_s:.2f}x "
        "faster)"
    )
    code.selection_reason = reason
    return CodeChoice(code, reason, tuple(rows), measured)


def _replay(
    entries: list[tuple[GradientCode, str]],
    log: LatencyLog,
    workers: Sequence[Hashable],
    n_samples: int,
    measured: int,
    dim: int,
) -> list[PlanRow]:
    """The candidates ranked on the newest measured rounds."""
    return rank_codes(
        entries,
        profile_latency(log, workers, n_samples),
        rounds=min(measured, REPLAYED_ROUNDS),
        n_samples=max(n_samples, max(c.n_partitions for c, _ in entries)),
        dim=dim,
    )


def _keep(current: GradientCode, rows: Sequence[PlanRow], measured: int) -> CodeChoice:
    """A coding run keeps its code: nothing that skips more pays more."""
    return CodeChoice(current, current.selection_reason or "", tuple(rows), measured)


def profile_latency(
    log: LatencyLog, workers: Sequence[Hashable], n_samples: int
) -> Any:
    """The replay of the newest :data:`REPLAYED_ROUNDS` rounds of ``workers``."""
    return log.profile(workers, n_samples, newest=REPLAYED_ROUNDS).latency(len(workers))


def code_key(code: Any) -> tuple[str, int, int]:
    """``(scheme, n_stragglers, comm_reduction)`` of a code or a plan row."""
    return (code.scheme, code.n_stragglers, code.comm_reduction)


def _stay(
    spec: AutoCode,
    n: int,
    why: str,
    measured: int,
    rows: Sequence[PlanRow] = (),
) -> CodeChoice:
    reason = f"n_stragglers='auto': uncoded: {why}"
    return CodeChoice(spec.uncoded(max(n, 1), reason), reason, tuple(rows), measured)


def _what(row: PlanRow) -> str:
    return f"{row.scheme} with n_stragglers={row.n_stragglers}"


def _ms(row: PlanRow) -> str:
    return f"{row.predicted_s * 1e3:.1f} ms"
