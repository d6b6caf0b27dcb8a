"""Peak resident memory, sampled every millisecond in a thread.

The benchmarks that state memory targets (``placement``, ``end-to-end``) run
each measurement in a fresh process and sample it: the client's process
alone, or it and every process it started (cluster, workers, a JVM), summed.
Workers sample themselves through :func:`start_sampling` and
:func:`stop_sampling` (``Client.run``).
"""

from __future__ import annotations

import threading

__all__ = ["PeakMemory", "start_sampling", "stop_sampling"]


class PeakMemory:
    """Resident memory of this process (``tree``: and its descendants), sampled.

    Sampling starts on creation; :meth:`stop` ends it.

    Attributes
    ----------
    start : int
        Bytes held when sampling began.
    """

    def __init__(self, *, tree: bool = False) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process()
        self._tree = tree
        self.start = self.peak = self._rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        processes = [self._root]
        if self._tree:
            processes += self._root.children(recursive=True)
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except self._psutil.Error:  # ended between listing and reading
                continue
        return total

    def _sample(self) -> None:
        while not self._done.wait(0.001):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> int:
        """The peak, in bytes."""
        self._done.set()
        self._thread.join()
        return max(self.peak, self._rss())


_SAMPLER: list[PeakMemory] = []


def start_sampling() -> None:
    """Runs on a worker (``Client.run``): start sampling its memory."""
    _SAMPLER[:] = [PeakMemory()]


def stop_sampling() -> int:
    """Runs on a worker: its peak above what it held when sampling began, bytes."""
    sampler = _SAMPLER.pop()
    return sampler.stop() - sampler.start
