"""Measured round times of real workers: trace profiles.

A *profile* is a folder of CSV files ``load-<fraction>.csv``, one per measured
computation load (the fraction of the data set every worker computed while it
was measured), with columns ``round, worker, started_s, finished_s``.  A
worker's round time is ``finished_s - started_s``.  The shared folders under
``../shared/data/lambda-traces/`` (256 AWS Lambda workers, loads 0 to 1) are
in this form.

The model of a round time, exactly: a worker ``w`` with load ``l`` in round
``r`` takes ``d(r, w, l)``, the linear interpolation in ``l`` between the two
nearest measured loads of that ``(round, worker)``; below the smallest
measured load it takes that load's time; above the largest, the linear
extrapolation from the two largest (floored at 0 s: a steeply falling last
segment cannot make a time negative).  A profile of one measured load gives
that load's time at every load.  Rounds and workers beyond the trace wrap
around: round ``r`` is the trace's round ``r % n_rounds`` and worker ``w``
its worker ``w % n_workers``, so a 256-worker trace can drive 1024 simulated
workers.

Gaps in the data are errors, never filled in: every load file must hold
exactly one row per ``(round, worker)`` of the grid ``0 .. R - 1`` by
``0 .. W - 1`` (no missing or repeated pair, no missing round or worker id),
with finite times and ``finished_s >= started_s``, and every load file must
have the same ``R`` and ``W``.  The error names the file, and the line or the
missing pairs.

Pure NumPy: nothing here imports Dask.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["COLUMNS", "TraceProfile"]

COLUMNS = ("round", "worker", "started_s", "finished_s")
"""The columns of a load file (in any order; no others)."""

_PREFIX, _SUFFIX = "load-", ".csv"


def _check_load(value: float, what: str) -> float:
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{what} must be a finite number >= 0, got {value}")
    return value


class TraceProfile:
    """Measured per-worker round times at several computation loads.

    Parameters
    ----------
    name : str
        What the profile is called (:meth:`from_folder`: the folder's name).
    loads : array_like of float, shape (L,)
        The measured loads, distinct, finite and >= 0 (they are sorted, with
        ``durations``, if given out of order).
    durations : array_like of float, shape (L, R, W)
        Seconds worker ``w`` took in round ``r`` at load ``loads[k]``:
        ``durations[k, r, w]``; finite and >= 0.

    Attributes
    ----------
    name : str
    loads : ndarray, shape (L,)
        Sorted measured loads.
    durations : ndarray, shape (L, R, W)
        Seconds, ``finished_s - started_s``, read-only.

    Examples
    --------
    >>> profile = TraceProfile("toy", [0.0, 1.0], [[[1.0, 2.0]], [[3.0, 6.0]]])
    >>> profile.round_times(0, 0.5).tolist()
    [2.0, 4.0]
    >>> profile.duration(round=5, worker=3, load=2.0)  # wraps to worker 1
    10.0
    """

    def __init__(self, name: str, loads: np.ndarray, durations: np.ndarray) -> None:
        loads = np.array(loads, dtype=float, ndmin=1)
        durations = np.array(durations, dtype=float)
        if loads.ndim != 1 or loads.size == 0:
            raise ValueError(f"loads must be a non-empty 1-d array, got {loads!r}")
        if not (np.all(np.isfinite(loads)) and np.all(loads >= 0)):
            raise ValueError(f"loads must be finite numbers >= 0, got {loads.tolist()}")
        if len(np.unique(loads)) != loads.size:
            raise ValueError(f"loads must be distinct, got {loads.tolist()}")
        if durations.ndim != 3 or durations.shape[0] != loads.size:
            raise ValueError(
                f"durations must have shape (loads, rounds, workers) = "
                f"({loads.size}, R, W), got {durations.shape}"
            )
        if durations.shape[1] == 0 or durations.shape[2] == 0:
            raise ValueError(
                f"a profile needs rounds and workers, got {durations.shape}"
            )
        if not (np.all(np.isfinite(durations)) and np.all(durations >= 0)):
            raise ValueError("durations must be finite numbers of seconds >= 0")
        order = np.argsort(loads, kind="stable")
        self.name = str(name)
        self.loads = loads[order]
        self.durations = np.ascontiguousarray(durations[order])
        self.loads.setflags(write=False)
        self.durations.setflags(write=False)

    # ------------------------------------------------------------- loading
    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> TraceProfile:
        """Read a profile: every ``load-<fraction>.csv`` of the folder ``path``.

        Other files of the folder (a README) are ignored.

        Parameters
        ----------
        path : str or path-like
            The folder.

        Returns
        -------
        TraceProfile
            Named after the folder.

        Raises
        ------
        FileNotFoundError
            If ``path`` is not a folder.
        ValueError
            If it holds no load file, a load file's name or columns are not
            as described, its data has a gap (see the module's description)
            or the load files do not share one grid of rounds and workers.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"no trace profile folder at {folder}")
        files = sorted(
            f
            for f in folder.iterdir()
            if f.name.startswith(_PREFIX) and f.name.endswith(_SUFFIX) and f.is_file()
        )
        if not files:
            raise ValueError(
                f"{folder} holds no load files: a profile is a folder of "
                f"{_PREFIX}<fraction>{_SUFFIX} files"
            )
        loads: list[float] = []
        grids: list[np.ndarray] = []
        shape: tuple[int, ...] | None = None
        for file in files:
            load = _load_of(file)
            if load in loads:
                raise ValueError(
                    f"{folder}: two files measure load {load} ({file.name} and "
                    f"{files[loads.index(load)].name})"
                )
            grid = _read_load_file(file)
            if shape is not None and grid.shape != shape:
                raise ValueError(
                    f"{file}: {grid.shape[0]} rounds x {grid.shape[1]} workers, but "
                    f"{files[0].name} has {shape[0]} x {shape[1]}: every load "
                    f"must be measured on the same rounds and workers"
                )
            shape = grid.shape
            loads.append(load)
            grids.append(grid)
        return cls(folder.resolve().name, np.array(loads), np.stack(grids))

    # ---------------------------------------------------------------- sizes
    @property
    def n_rounds(self) -> int:
        """Rounds measured per load, ``R``."""
        return int(self.durations.shape[1])

    @property
    def n_workers(self) -> int:
        """Workers measured, ``W``."""
        return int(self.durations.shape[2])

    # ---------------------------------------------------------------- model
    def round_times(
        self,
        round: int,
        loads: float | np.ndarray,
        workers: np.ndarray | None = None,
    ) -> np.ndarray:
        """Every worker's time in ``round`` at its load: ``d(round, w, load_w)``.

        Vectorised (no loop over workers).

        Parameters
        ----------
        round : int
            Round, >= 0; wraps modulo :attr:`n_rounds`.
        loads : float or array_like of float
            One load for every worker, or one per entry of ``workers``;
            finite and >= 0.
        workers : array_like of int, optional
            Worker ids, >= 0; wrap modulo :attr:`n_workers` (ids may exceed
            it).  Default: ``0 .. n_workers - 1``.

        Returns
        -------
        ndarray of float, shape (len(workers),)
            Seconds.
        """
        r = _check_index(round, "round") % self.n_rounds
        if workers is None:
            columns = np.arange(self.n_workers)
        else:
            ids = np.asarray(workers)
            if ids.ndim != 1 or not (
                ids.size == 0 or np.issubdtype(ids.dtype, np.integer)
            ):
                raise ValueError(
                    f"workers must be a 1-d array of ints, got {workers!r}"
                )
            if ids.size and ids.min() < 0:
                raise ValueError(f"worker ids must be >= 0, got {ids.min()}")
            columns = ids.astype(np.intp) % self.n_workers
        at = np.asarray(loads, dtype=float)
        if at.ndim > 1 or (at.ndim == 1 and at.shape[0] != columns.shape[0]):
            raise ValueError(
                f"loads must be a number or one per worker ({columns.shape[0]}), "
                f"got shape {at.shape}"
            )
        if not (np.all(at >= 0) and np.all(np.isfinite(at))):
            raise ValueError(f"loads must be finite numbers >= 0, got {loads!r}")
        return self._interpolate(self.durations[:, r, :], at, columns)

    def duration(self, round: int, worker: int, load: float) -> float:
        """Seconds ``worker`` takes in ``round`` at ``load``: ``d(round, worker, load)``.

        Parameters
        ----------
        round, worker : int
            Wrap around the trace (>= 0).
        load : float
            Fraction of the data set it computes, >= 0.

        Returns
        -------
        float
        """
        worker = _check_index(worker, "worker")
        return float(
            self.round_times(round, _check_load(load, "load"), np.array([worker]))[0]
        )

    def at_load(self, load: float) -> np.ndarray:
        """Every measured round's and worker's time at ``load``.

        Parameters
        ----------
        load : float
            >= 0.

        Returns
        -------
        ndarray, shape (n_rounds, n_workers)
        """
        at = _check_load(load, "load")
        flat = self.durations.reshape(self.loads.size, -1)
        times = self._interpolate(flat, at, slice(None))
        return times.reshape(self.n_rounds, self.n_workers)

    def _interpolate(
        self, slab: np.ndarray, at: np.ndarray | float, columns: np.ndarray | slice
    ) -> np.ndarray:
        """``slab[:, columns]`` (``slab`` of shape (L, N)) interpolated at ``at``."""
        grid = self.loads
        if grid.size == 1:
            out = slab[0, columns]
            return np.broadcast_to(out, np.broadcast(out, at).shape).astype(float)
        below = np.searchsorted(grid, at, side="right") - 1
        below = np.clip(below, 0, grid.size - 2)
        lower = grid[below]
        t = np.maximum((at - lower) / (grid[below + 1] - lower), 0.0)
        # (1 - t) a + t b is exact at both ends: t = 0 gives a, t = 1 gives b.
        out = (1.0 - t) * slab[below, columns] + t * slab[below + 1, columns]
        return np.maximum(out, 0.0)

    # ------------------------------------------------------------ summaries
    def order_statistics(self, load: float) -> np.ndarray:
        """The ``k``-th fastest worker's time at ``load``, averaged over rounds.

        Parameters
        ----------
        load : float

        Returns
        -------
        ndarray, shape (n_workers,)
            Entry ``k`` is the mean over rounds of each round's ``k + 1``-th
            smallest time (the last one: the slowest worker).
        """
        return np.sort(self.at_load(load), axis=1).mean(axis=0)

    def summary(self, load: float) -> dict[str, float]:
        """Per-round median, 90th percentile and maximum over workers at ``load``.

        Each statistic is taken over the workers of each round, then
        averaged over rounds.

        Parameters
        ----------
        load : float

        Returns
        -------
        dict
            ``median_s``, ``p90_s``, ``max_s`` (seconds) and
            ``slowest_over_median`` (the mean of each round's slowest time
            over its median).
        """
        times = self.at_load(load)
        median = np.median(times, axis=1)
        slowest = times.max(axis=1)
        return {
            "median_s": float(median.mean()),
            "p90_s": float(np.quantile(times, 0.9, axis=1).mean()),
            "max_s": float(slowest.mean()),
            "slowest_over_median": float(np.mean(slowest / median)),
        }

    def latency(
        self, n_workers: int | None = None
    ) -> Callable[[int, np.ndarray], np.ndarray]:
        """``latency(round, loads)`` for ``n_workers`` (default the trace's) workers.

        The callable the simulation and the planner replay: worker ``w`` (the
        trace's ``w`` modulo its workers) computing ``loads[w]`` in ``round``.
        """
        n = self.n_workers if n_workers is None else int(n_workers)
        if n < 1:
            raise ValueError(f"n_workers must be >= 1, got {n}")
        workers = np.arange(n)

        def latency(round: int, loads: np.ndarray) -> np.ndarray:
            return self.round_times(round, loads, workers)

        return latency

    def scaled(self, time_scale: float) -> TraceProfile:
        """The same profile with every time multiplied by ``time_scale`` (>= 0)."""
        factor = _check_load(time_scale, "time_scale")
        return TraceProfile(self.name, self.loads, self.durations * factor)

    def __repr__(self) -> str:
        return (
            f"TraceProfile({self.name!r}, loads={self.loads.tolist()}, "
            f"n_rounds={self.n_rounds}, n_workers={self.n_workers})"
        )


def _check_index(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return int(value)


def _load_of(file: Path) -> float:
    """The load a file's name ``load-<fraction>.csv`` states."""
    text = file.name[len(_PREFIX) : -len(_SUFFIX)]
    try:
        load = float(text)
    except ValueError:
        raise ValueError(
            f"{file}: a load file is named {_PREFIX}<fraction>{_SUFFIX}, "
            f"and {text!r} is not a number"
        ) from None
    if not (load >= 0 and math.isfinite(load)):
        raise ValueError(f"{file}: the load must be a finite number >= 0, got {load}")
    return load


def _read_load_file(file: Path) -> np.ndarray:
    """One load file's round times, shape (rounds, workers); gaps are errors."""
    with file.open() as stream:
        header = [name.strip() for name in stream.readline().split(",")]
        has_rows = any(line.strip() for line in stream)
    if sorted(header) != sorted(COLUMNS):
        raise ValueError(
            f"{file}: the columns must be {', '.join(COLUMNS)}; got {', '.join(header)}"
        )
    if not has_rows:
        raise ValueError(f"{file}: no measurements")
    try:
        table = np.loadtxt(file, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from None
    column = {name: table[:, header.index(name)] for name in COLUMNS}
    line = 2 + np.arange(table.shape[0])  # the file's line numbers, header = 1
    for name in COLUMNS:
        bad = ~np.isfinite(column[name])
        if bad.any():
            raise ValueError(f"{file}, line {line[bad][0]}: {name} is not a number")
    for name in ("round", "worker"):
        bad = (column[name] != np.floor(column[name])) | (column[name] < 0)
        if bad.any():
            raise ValueError(
                f"{file}, line {line[bad][0]}: {name} must be an integer >= 0, "
                f"got {column[name][bad][0]}"
            )
    seconds = column["finished_s"] - column["started_s"]
    if (seconds < 0).any():
        first = np.flatnonzero(seconds < 0)[0]
        raise ValueError(
            f"{file}, line {line[first]}: finished_s is before started_s "
            f"({column['finished_s'][first]} < {column['started_s'][first]})"
        )
    rounds = column["round"].astype(np.intp)
    workers = column["worker"].astype(np.intp)
    shape = (int(rounds.max()) + 1, int(workers.max()) + 1)
    counts = np.zeros(shape, dtype=np.intp)
    np.add.at(counts, (rounds, workers), 1)
    if (counts > 1).any():
        r, w = np.argwhere(counts > 1)[0]
        raise ValueError(f"{file}: round {r}, worker {w} is measured more than once")
    if (counts == 0).any():
        missing = np.argwhere(counts == 0)
        shown = ", ".join(f"(round {r}, worker {w})" for r, w in missing[:5])
        raise ValueError(
            f"{file}: {len(missing)} (round, worker) measurements missing of the "
            f"{shape[0]} x {shape[1]} grid: {shown}"
            + (", ..." if len(missing) > 5 else "")
        )
    grid = np.empty(shape)
    grid[rounds, workers] = seconds
    return grid
