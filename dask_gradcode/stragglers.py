"""Seeded straggler and link-bandwidth models.

Pure: a model answers "how many extra seconds does ``worker`` take in
``iteration``?" as a deterministic function of its ``random_state``, the
iteration and the worker, so runs repeat exactly.  The scheduler applies the
delay inside the worker's task, after the real computation, and ends it early
once the iteration has been decoded without that worker.

Any object with a ``delay(iteration, worker, n_workers, compute_seconds)``
method returning seconds can serve as a straggler model; one whose
``takes_rows`` attribute is true also gets ``rows=`` (the rows the task
computed), as :class:`ComputeTime` and :class:`TraceDelays` do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from dask_gradcode.traces import TraceProfile

__all__ = [
    "Bandwidth",
    "ComputeTime",
    "FailingWorkers",
    "MarkovStragglers",
    "Pareto",
    "ShiftedExponential",
    "SlowWorkers",
    "StragglerModel",
    "TraceDelays",
    "model_delay",
]


def _seed(random_state: int | None) -> int:
    if random_state is None:
        # A SeedSequence made without entropy draws an int of its own.
        return cast(int, np.random.SeedSequence().entropy) % (2**63)
    if isinstance(random_state, bool) or not isinstance(
        random_state, (int, np.integer)
    ):
        raise TypeError(
            f"random_state must be None or an int (models are shipped to workers "
            f"and must repeat), got {random_state!r}"
        )
    return int(random_state)


def _rng(seed: int, *path: int) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``path``."""
    return np.random.default_rng([seed, *path])


def _check_non_negative(value: float, name: str) -> float:
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _check_slowdown(
    delay: float | None, factor: float | None
) -> tuple[float | None, float | None]:
    """``(delay_seconds, factor)`` of a slow worker: exactly one is given."""
    if (delay is None) == (factor is None):
        raise ValueError("pass exactly one of delay (seconds) or factor")
    if factor is not None and not (factor >= 1 and math.isfinite(factor)):
        raise ValueError(f"factor must be a finite number >= 1, got {factor}")
    return (
        None if delay is None else _check_non_negative(delay, "delay"),
        None if factor is None else float(factor),
    )


def _slow_extra(
    delay_seconds: float | None, factor: float | None, compute_seconds: float
) -> float:
    """Extra seconds of a slow worker: the fixed delay, or ``factor - 1`` times."""
    if delay_seconds is not None:
        return delay_seconds
    return (cast(float, factor) - 1.0) * compute_seconds


class StragglerModel:
    """Base class: extra seconds per ``(iteration, worker)``.

    Parameters
    ----------
    random_state : int or None
        Seed.  ``None`` draws one seed at construction, so a model object
        still gives the same delays wherever it is evaluated.
    """

    def __init__(self, random_state: int | None = None) -> None:
        self.random_state = _seed(random_state)

    def delay(
        self, iteration: int, worker: int, n_workers: int, compute_seconds: float = 0.0
    ) -> float:
        """Seconds to add to ``worker``'s reply in ``iteration``."""
        raise NotImplementedError

    def delays(
        self, iteration: int, n_workers: int, compute_seconds: float = 0.0
    ) -> np.ndarray:
        """The delay of every worker in ``iteration``."""
        return np.array(
            [
                self.delay(iteration, worker, n_workers, compute_seconds)
                for worker in range(n_workers)
            ]
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class ShiftedExponential(StragglerModel):
    """Every worker waits ``shift + Exp(scale)`` seconds, independently.

    The classic model of gradient-coding papers (e.g. Lee et al. 2018).

    Parameters
    ----------
    scale : float
        Mean of the exponential part, seconds.
    shift : float, default=0.0
        Constant part, seconds.
    random_state : int or None
    """

    def __init__(
        self, scale: float, shift: float = 0.0, random_state: int | None = None
    ) -> None:
        super().__init__(random_state)
        self.scale = _check_non_negative(scale, "scale")
        self.shift = _check_non_negative(shift, "shift")

    def delay(self, iteration, worker, n_workers, compute_seconds=0.0):
        """``shift + Exp(scale)`` for this ``(iteration, worker)``."""
        draw = _rng(self.random_state, iteration, worker).exponential(self.scale)
        return self.shift + float(draw)


class Pareto(StragglerModel):
    """Heavy-tailed delays: ``scale * (U**(-1/shape) - 1)`` seconds, ``U`` uniform.

    Most workers are nearly on time; a few are very late.  The delay is zero at
    best and has mean ``scale / (shape - 1)`` for ``shape > 1`` (a Lomax, or
    Pareto II, distribution).

    Parameters
    ----------
    scale : float
        Seconds.
    shape : float, default=2.0
        Tail index; smaller means heavier tails.  Must be > 0.
    random_state : int or None
    """

    def __init__(
        self, scale: float, shape: float = 2.0, random_state: int | None = None
    ) -> None:
        super().__init__(random_state)
        self.scale = _check_non_negative(scale, "scale")
        if not shape > 0:
            raise ValueError(f"shape must be > 0, got {shape}")
        self.shape = float(shape)

    def delay(self, iteration, worker, n_workers, compute_seconds=0.0):
        """Pareto-distributed delay for this ``(iteration, worker)``."""
        draw = _rng(self.random_state, iteration, worker).pareto(self.shape)
        return self.scale * float(draw)


class SlowWorkers(StragglerModel):
    """Some workers are slow: by a fixed ``delay`` or by a ``factor``.

    Exactly one way of choosing them:

    - ``n_slow=k``: ``k`` workers drawn anew each iteration;
    - ``p=q``: each worker independently with probability ``q`` per iteration;
    - ``workers=[...]``: the same named workers every iteration.

    Parameters
    ----------
    n_slow : int, optional
    p : float, optional
    workers : iterable of int, optional
    delay : float, optional
        Extra seconds of a slow worker.
    factor : float, optional
        A slow worker takes ``factor`` times its computation time
        (``factor >= 1``); the extra is ``(factor - 1) * compute_seconds``.
    random_state : int or None
    """

    def __init__(
        self,
        n_slow: int | None = None,
        *,
        p: float | None = None,
        workers: Iterable[int] | None = None,
        delay: float | None = None,
        factor: float | None = None,
        random_state: int | None = None,
    ) -> None:
        super().__init__(random_state)
        chosen = [n_slow is not None, p is not None, workers is not None]
        if sum(chosen) != 1:
            raise ValueError("pass exactly one of n_slow, p or workers")
        slowdown = _check_slowdown(delay, factor)
        if n_slow is not None and (int(n_slow) != n_slow or n_slow < 0):
            raise ValueError(f"n_slow must be an integer >= 0, got {n_slow}")
        if p is not None and not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.n_slow = None if n_slow is None else int(n_slow)
        self.p = None if p is None else float(p)
        self.workers = None if workers is None else tuple(sorted(set(workers)))
        self.delay_seconds, self.factor = slowdown

    def slow_workers(self, iteration: int, n_workers: int) -> list[int]:
        """Which workers are slow in ``iteration``."""
        if self.workers is not None:
            return [w for w in self.workers if w < n_workers]
        rng = _rng(self.random_state, iteration)
        if self.n_slow is not None:
            if self.n_slow > n_workers:
                raise ValueError(
                    f"n_slow={self.n_slow} but there are only {n_workers} workers"
                )
            return sorted(rng.choice(n_workers, self.n_slow, replace=False).tolist())
        return np.flatnonzero(rng.random(n_workers) < cast(float, self.p)).tolist()

    def delay(self, iteration, worker, n_workers, compute_seconds=0.0):
        """Extra seconds if ``worker`` is slow in ``iteration``, else 0."""
        if worker not in self.slow_workers(iteration, n_workers):
            return 0.0
        return _slow_extra(self.delay_seconds, self.factor, compute_seconds)


class MarkovStragglers(StragglerModel):
    """Correlated straggling: each worker a two-state (fast/slow) Markov chain.

    Straggling measured on clouds is correlated in time (a slow machine tends
    to stay slow for a while; Johri, Yardi & Bodas, arXiv 2105.06124).  Each
    worker starts fast and, every iteration, turns slow with probability
    ``p_slow`` or, when slow, recovers with probability ``p_recover``; the
    chain of a worker is a pure function of ``(random_state, worker)``, so
    runs repeat.  The long-run share of slow rounds is
    ``p_slow / (p_slow + p_recover)``; a slow spell lasts ``1 / p_recover``
    rounds on average.

    Parameters
    ----------
    p_slow : float
        Probability per iteration that a fast worker turns slow.
    p_recover : float
        Probability per iteration that a slow worker recovers.
    delay : float, optional
        Extra seconds of a slow worker.
    factor : float, optional
        A slow worker takes ``factor`` times its computation time.
    random_state : int or None
    """

    def __init__(
        self,
        p_slow: float,
        p_recover: float,
        *,
        delay: float | None = None,
        factor: float | None = None,
        random_state: int | None = None,
    ) -> None:
        super().__init__(random_state)
        for name, value in (("p_slow", p_slow), ("p_recover", p_recover)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        slowdown = _check_slowdown(delay, factor)
        self.p_slow, self.p_recover = float(p_slow), float(p_recover)
        self.delay_seconds, self.factor = slowdown
        self._chains: dict[int, list[bool]] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_chains"] = {}  # recomputed where it is needed
        return state

    def is_slow(self, iteration: int, worker: int) -> bool:
        """Whether ``worker`` is slow in ``iteration`` (its chain, from iteration 0)."""
        chain = self._chains.setdefault(worker, [False])
        while len(chain) <= iteration:
            # Uniforms in fixed blocks of 256 steps: the chain does not depend
            # on which iterations were asked for first.
            t = len(chain)
            block = _rng(self.random_state, worker, t // 256).random(256)
            u = block[t % 256]
            chain.append(u >= self.p_recover if chain[-1] else u < self.p_slow)
        return chain[iteration]

    def delay(self, iteration, worker, n_workers, compute_seconds=0.0):
        """Extra seconds if ``worker`` is slow in ``iteration``, else 0."""
        if not self.is_slow(iteration, worker):
            return 0.0
        return _slow_extra(self.delay_seconds, self.factor, compute_seconds)


class ComputeTime:
    """Emulated computation: each task takes ``seconds_per_row`` per row it computes.

    ``n`` workers sharing a few cores of one machine do not behave like ``n``
    machines: their computations queue for the cores.  This model makes each
    worker's computation take ``seconds_per_row * rows`` seconds of sleep on
    top of the (small) real one, as if every worker had a core of its own,
    so load trade-offs (a coded round computes ``d`` partitions per worker, a
    split round ``1 / n`` of the rows) show on one machine.  ``then`` is a
    straggler model applied on top, seeing the emulated computation time as
    ``compute_seconds`` (so ``SlowWorkers(factor=4)`` makes a worker four times
    slower at it).

    Parameters
    ----------
    seconds_per_row : float
        Emulated seconds per row.
    then : straggler model, optional
    """

    takes_rows = True

    def __init__(self, seconds_per_row: float, then: object = None) -> None:
        self.seconds_per_row = _check_non_negative(seconds_per_row, "seconds_per_row")
        if then is not None and not callable(getattr(then, "delay", None)):
            raise TypeError(f"then must be a straggler model, got {then!r}")
        self.then = then

    def delay(
        self,
        iteration: int,
        worker: int,
        n_workers: int,
        compute_seconds: float = 0.0,
        rows: int = 0,
    ) -> float:
        """The emulated computation of ``rows`` rows, then ``then``'s delay."""
        work = self.seconds_per_row * rows
        if self.then is None:
            return work
        return work + model_delay(
            self.then, iteration, worker, n_workers, compute_seconds + work, rows
        )

    def work_seconds(self, rows: int) -> float:
        """The emulated computation alone: what the load makes longer."""
        return self.seconds_per_row * rows

    def __repr__(self) -> str:
        return f"ComputeTime({self.seconds_per_row!r}, then={self.then!r})"


class TraceDelays:
    """Replays measured round times: a :class:`~dask_gradcode.traces.TraceProfile`.

    Worker ``worker`` (the physical worker id; it wraps modulo the trace's
    workers) in iteration ``iteration`` (wrapping modulo the trace's rounds)
    computed ``rows`` rows, a load of ``rows / n_samples`` of the data set;
    the trace says such a round takes ``d = profile.duration(iteration,
    worker, rows / n_samples)`` seconds (interpolated in the load, see
    :mod:`dask_gradcode.traces`).  The measured times already include the
    computation of that load, so by default the injected delay is what is
    left of ``time_scale * d`` once the real computation is done::

        delay = max(0, time_scale * d - compute_seconds)

    and a worker's round takes the trace's (scaled) time, or its real
    computation when that is longer.  ``subtract_compute=False`` injects
    ``time_scale * d`` on top of the computation instead.  ``rows`` are the
    rows the worker reports having computed (a coded round: its whole shard,
    every partition it holds; a split round: its share), so a code's extra copies
    show as a higher load.

    Parameters
    ----------
    profile : TraceProfile or path-like
        The profile, or the folder to read it from
        (:meth:`TraceProfile.from_folder`).
    time_scale : float, default=1.0
        Every trace time is multiplied by it (>= 0): below 1 to replay a
        cloud's seconds as this machine's milliseconds.
    n_samples : int, optional
        Rows of the data set the fit computes on (``X.shape[0]``), so that
        the ``rows`` a worker reports become its load.  Required before the
        first round; a fit on other data (a cross-validation fold) needs its
        own (:meth:`with_n_samples`).
    subtract_compute : bool, default=True
        Whether the real computation counts towards the trace's time.

    Examples
    --------
    >>> from dask_gradcode.traces import TraceProfile
    >>> profile = TraceProfile("toy", [0.0, 1.0], [[[1.0, 2.0]], [[3.0, 6.0]]])
    >>> model = TraceDelays(profile, time_scale=0.1, n_samples=1000)
    >>> round(model.delay(0, 1, 2, compute_seconds=0.05, rows=500), 6)
    0.35
    """

    takes_rows = True

    def __init__(
        self,
        profile: TraceProfile | str | os.PathLike,
        *,
        time_scale: float = 1.0,
        n_samples: int | None = None,
        subtract_compute: bool = True,
    ) -> None:
        if isinstance(profile, (str, os.PathLike)):
            profile = TraceProfile.from_folder(profile)
        if not isinstance(profile, TraceProfile):
            raise TypeError(
                f"profile must be a TraceProfile or a folder, got {profile!r}"
            )
        self.profile = profile
        self.time_scale = _check_non_negative(time_scale, "time_scale")
        if n_samples is not None and (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, (int, np.integer))
            or n_samples < 1
        ):
            raise ValueError(
                f"n_samples must be the data set's number of rows (an int >= 1), "
                f"got {n_samples!r}"
            )
        self.n_samples = None if n_samples is None else int(n_samples)
        self.subtract_compute = bool(subtract_compute)

    def with_n_samples(self, n_samples: int) -> TraceDelays:
        """The same model for a data set of ``n_samples`` rows."""
        return TraceDelays(
            self.profile,
            time_scale=self.time_scale,
            n_samples=n_samples,
            subtract_compute=self.subtract_compute,
        )

    def load(self, rows: int) -> float:
        """The fraction of the data set that ``rows`` rows are: ``rows / n_samples``."""
        if self.n_samples is None:
            raise ValueError(
                "TraceDelays needs n_samples, the data set's number of rows, to "
                "turn the rows a worker computed into its load: "
                "TraceDelays(profile, n_samples=X.shape[0])"
            )
        if rows < 0:
            raise ValueError(f"rows must be >= 0, got {rows}")
        return rows / self.n_samples

    def trace_seconds(self, iteration: int, worker: int, rows: int) -> float:
        """``time_scale * d(iteration, worker, rows / n_samples)``: the round's time."""
        load = self.load(rows)
        return self.time_scale * self.profile.duration(iteration, worker, load)

    def delay(
        self,
        iteration: int,
        worker: int,
        n_workers: int,
        compute_seconds: float = 0.0,
        rows: int = 0,
    ) -> float:
        """The trace's time for this round, less the real computation (>= 0)."""
        seconds = self.trace_seconds(iteration, worker, rows)
        if self.subtract_compute:
            return max(0.0, seconds - compute_seconds)
        return seconds

    def __repr__(self) -> str:
        return (
            f"TraceDelays({self.profile.name!r}, time_scale={self.time_scale!r}, "
            f"n_samples={self.n_samples!r}, subtract_compute={self.subtract_compute!r})"
        )


def model_work(model: Any, rows: int) -> float:
    """The part of ``model``'s delay that is emulated computation of ``rows`` rows.

    A model with a ``work_seconds(rows)`` method (:class:`ComputeTime`)
    emulates computation; its delay grows with the rows a task computes, as a
    real computation would.  Other models' delays are 0 here.
    """
    work = getattr(model, "work_seconds", None)
    return 0.0 if work is None else float(work(rows))


def model_delay(
    model: Any,
    iteration: int,
    worker: int,
    n_workers: int,
    compute_seconds: float,
    rows: int,
) -> float:
    """``model``'s delay, passing ``rows`` to a model whose ``takes_rows`` is true."""
    if getattr(model, "takes_rows", False):
        return model.delay(iteration, worker, n_workers, compute_seconds, rows=rows)
    return model.delay(iteration, worker, n_workers, compute_seconds)


class FailingWorkers:
    """Fault injection: chosen workers' tasks raise in chosen iterations.

    For testing how a fit survives a worker whose computation fails (out of
    memory on one node, say): ``delay`` raises ``error(message)`` on the
    worker, inside its task, instead of returning a delay.

    Parameters
    ----------
    workers : iterable of int
        Code indices of the failing workers (``"all"``: every worker).
    iterations : iterable of int, optional
        Iterations in which they fail (a ``range`` for "from iteration k
        on"); every iteration by default.
    error : type of Exception, default=MemoryError
    others_delay : float, default=0.0
        Seconds every other worker is late, so that the failures reach the
        client before the round can decode without them.
    """

    def __init__(
        self,
        workers: Iterable[int] | str,
        iterations: Iterable[int] | None = None,
        error: type[Exception] = MemoryError,
        others_delay: float = 0.0,
    ) -> None:
        self.others_delay = _check_non_negative(others_delay, "others_delay")
        self.workers: str | frozenset[int] = (
            "all" if workers == "all" else frozenset(cast(Iterable[int], workers))
        )
        # A range stays a range: membership is O(1) and it may be huge.
        self.iterations = (
            iterations
            if iterations is None or isinstance(iterations, range)
            else frozenset(iterations)
        )
        if not (isinstance(error, type) and issubclass(error, Exception)):
            raise TypeError(f"error must be an Exception class, got {error!r}")
        self.error = error

    def delay(
        self, iteration: int, worker: int, n_workers: int, compute_seconds: float = 0.0
    ) -> float:
        """Raise for a failing ``(iteration, worker)``; else ``others_delay``."""
        failing = self.workers == "all" or worker in self.workers
        if failing and (self.iterations is None or iteration in self.iterations):
            raise self.error(
                f"injected failure of worker {worker} in iteration {iteration}"
            )
        return 0.0 if failing else self.others_delay

    def __repr__(self) -> str:
        workers = (
            self.workers if isinstance(self.workers, str) else sorted(self.workers)
        )
        return f"FailingWorkers(workers={workers!r}, error={self.error.__name__})"


class Bandwidth:
    """A link of ``bytes_per_second`` between each worker and the client.

    A message of ``nbytes`` is delayed ``latency + nbytes / bytes_per_second``
    seconds, so sending ``m`` times fewer bytes shows up as time saved, even
    on one machine.

    Parameters
    ----------
    bytes_per_second : float
        Link speed, > 0.
    latency : float, default=0.0
        Seconds added to every message.
    """

    def __init__(self, bytes_per_second: float, latency: float = 0.0) -> None:
        if not (bytes_per_second > 0 and math.isfinite(bytes_per_second)):
            raise ValueError(
                f"bytes_per_second must be a finite number > 0, got {bytes_per_second}"
            )
        self.bytes_per_second = float(bytes_per_second)
        self.latency = _check_non_negative(latency, "latency")

    def transfer_seconds(self, nbytes: int) -> float:
        """Seconds to send ``nbytes`` over the link."""
        return self.latency + nbytes / self.bytes_per_second

    def __repr__(self) -> str:
        return f"Bandwidth(bytes_per_second={self.bytes_per_second}, latency={self.latency})"
