"""A Dask cluster of separate processes on localhost, whose workers can be hurt.

``dask scheduler`` and one ``dask worker`` process per worker (with or without
a nanny), started with the ``dask`` command next to this Python.  The fault
benchmark and the fault-injection tests stop (``SIGSTOP``), resume
(``SIGCONT``) and kill (``SIGKILL``) individual workers, and add new ones.
Everything it starts is terminated when the block ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from distributed import Client

__all__ = ["ProcessCluster", "dask_command"]


def dask_command() -> str:
    """The ``dask`` executable of this Python's environment."""
    found = shutil.which("dask", path=os.path.dirname(sys.executable))
    if found is None:
        raise RuntimeError(
            "the dask command is not installed next to this Python "
            f"({sys.executable}); install dask[distributed] into this environment"
        )
    return found


class ProcessCluster:
    """Scheduler and worker processes on localhost.

    Parameters
    ----------
    n_workers : int
        Worker processes to start.
    nanny : bool, default=False
        Start each worker under a nanny (which restarts it, under a new
        address, when it dies).
    startup_timeout : float, default=90
        Seconds to wait for the scheduler and the workers.
    memory_limit : str, optional
        Each worker's ``--memory-limit`` (for example ``"300MB"``); by
        default Dask's (its share of the machine).

    Attributes
    ----------
    client : distributed.Client
        Connected to the scheduler while the block runs.
    address : str
        The scheduler's address.
    """

    def __init__(
        self,
        n_workers: int,
        *,
        nanny: bool = False,
        startup_timeout: float = 90.0,
        memory_limit: str | None = None,
    ) -> None:
        self.n_workers = n_workers
        self.nanny = nanny
        self.memory_limit = memory_limit
        self.startup_timeout = startup_timeout
        self._processes: list[subprocess.Popen] = []
        self._stopped: set[int] = set()
        self._folder: tempfile.TemporaryDirectory | None = None
        self._client: Client | None = None
        self.address = ""

    @property
    def client(self) -> Client:
        """The client connected to the scheduler (only while the block runs)."""
        if self._client is None:
            raise RuntimeError(
                "the ProcessCluster has not started: use it in a with block"
            )
        return self._client

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> ProcessCluster:  # noqa: PYI034
        self._folder = tempfile.TemporaryDirectory(prefix="gradcode-cluster-")
        folder = Path(self._folder.name)
        scheduler_file = folder / "scheduler.json"
        try:
            self._spawn(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            )
            deadline = time.monotonic() + self.startup_timeout
            while not scheduler_file.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the dask scheduler did not start")
                time.sleep(0.05)
            self.address = json.loads(scheduler_file.read_text())["address"]
            for _ in range(self.n_workers):
                self._spawn_worker()
            self._client = Client(self.address, timeout=self.startup_timeout)
            self._client.wait_for_workers(self.n_workers, timeout=self.startup_timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close(timeout=10)
            self._client = None
        # Nothing here needs a graceful goodbye: kill, then reap.
        for process in reversed(self._processes):
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            process.wait(timeout=30)
        self._stopped.clear()
        self._processes = []
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    @property
    def scheduler_pid(self) -> int:
        """The ``dask scheduler`` process's id (only while the block runs)."""
        if not self._processes:
            raise RuntimeError("the ProcessCluster has not started")
        return self._processes[0].pid

    def _spawn(self, *arguments: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [dask_command(), *arguments],
            cwd=self._folder.name if self._folder else None,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._processes.append(process)
        return process

    def _spawn_worker(self) -> subprocess.Popen:
        return self._spawn(
            "worker",
            self.address,
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--nanny" if self.nanny else "--no-nanny",
            *(
                ()
                if self.memory_limit is None
                else ("--memory-limit", self.memory_limit)
            ),
        )

    # ----------------------------------------------------------------- faults
    def add_worker(self, wait: bool = True) -> None:
        """Start one more worker process (and wait until the scheduler lists it).

        Waits for a new address rather than for a worker count: a killed worker
        may still be listed until the scheduler notices it is gone.
        """
        before = set(self.workers())
        process = self._spawn_worker()
        if not wait:
            return
        deadline = time.monotonic() + self.startup_timeout
        while not set(self.workers()) - before:
            if process.poll() is not None:
                raise RuntimeError(
                    f"a new dask worker exited with {process.returncode}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"a new dask worker did not register within {self.startup_timeout} s"
                )
            time.sleep(0.1)

    def workers(self) -> list[str]:
        """Worker addresses the scheduler lists, sorted."""
        client = self.client
        scheduler = client.scheduler
        assert scheduler is not None  # a connected client has its scheduler's rpc
        info = client.sync(scheduler.identity, n_workers=-1, callback_timeout=30)
        return sorted(info["workers"])

    def pids(self) -> dict[str, int]:
        """Process id of each worker that answers (stopped workers do not)."""
        return self.client.run(os.getpid, on_error="ignore")

    def stop(self, pid: int) -> None:
        """Freeze a worker process (``SIGSTOP``): it stays listed but goes silent."""
        self._signal(pid, signal.SIGSTOP)
        self._stopped.add(pid)

    def resume(self, pid: int) -> None:
        """Let a stopped worker process run again (``SIGCONT``)."""
        self._signal(pid, signal.SIGCONT)
        self._stopped.discard(pid)

    def kill(self, pid: int) -> None:
        """Kill a worker process (``SIGKILL``): no goodbye to the scheduler."""
        self._signal(pid, signal.SIGKILL)
        self._stopped.discard(pid)

    @staticmethod
    def _signal(pid: int, which: signal.Signals) -> None:
        try:
            os.kill(pid, which)
        except ProcessLookupError:
            pass  # already gone
