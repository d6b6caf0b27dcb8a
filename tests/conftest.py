"""Shared test settings, clusters and data: every random thing is seeded.

Layout: the tests mirror the package (``tests/scheduler/test_transports.py``
tests ``dask_gradcode/scheduler/transports.py``; ``tests/test_solvers.py``
tests ``dask_gradcode/solvers.py``).  Every folder is a package, so the same
file name may appear in two folders, and test modules import the plain
functions below as ``from tests.conftest import binary_problem``.

What is here, and when to use which
-----------------------------------
Clusters, all in-process: ``LocalCluster(n_workers, threads_per_worker=1,
processes=False)`` (HTTP on 127.0.0.1 only) and a ``Client`` to it.

- ``client`` (fixture, module scope): one client to a cluster shared by every
  test of a module.  Its size is the module's ``N_WORKERS`` constant (4 when
  the module sets none).  Use it for tests that leave the cluster as they
  found it.  A module whose estimators must find it as the default client
  asks for it in every test with ``pytestmark = pytest.mark.usefixtures(
  "client")``.
- ``own_cluster`` (fixture, function scope): a fresh ``(cluster, client)`` of
  the module's ``N_WORKERS`` size, for one test that damages it (closes or
  retires workers).
- ``local_client`` (fixture, function scope): the factory for any other size
  or cluster options, as many as a test needs:
  ``cluster, client = local_client(3, dashboard_address=":0")``; all of them
  are closed when the test ends.
- ``in_process_client`` (plain function): the context manager all three are
  built on, yielding ``(cluster, client)``; for a fixture of another scope.
- ``in_process_cluster`` (plain function): the cluster alone, for a test that
  connects to it itself (with its own ``security``, for example).

Data:

- ``binary_problem`` (plain function): a seeded binary classification problem
  ``(X, y, w)`` whose seed, shape and labels the caller states; a module
  wraps it in a module-scoped ``data`` fixture, or calls it directly.

Suites that start real ``dask scheduler`` / ``dask worker`` processes carry
the ``worker_processes`` marker (registered in ``pyproject.toml``).  They run
in the default invocation; ``pytest -m "not worker_processes"`` leaves them
out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# `distributed` is imported inside the functions below, not here: imported
# while pytest loads this file, its log handlers would keep pytest's early
# capture stream and report "I/O operation on closed file" at exit.
if TYPE_CHECKING:
    from distributed import Client, LocalCluster

settings.register_profile(
    "repeatable",
    derandomize=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("repeatable")

DEFAULT_WORKERS = 4
"""Workers of the ``client`` and ``own_cluster`` fixtures when a module sets no
``N_WORKERS``."""


def in_process_cluster(n_workers: int, **options: Any) -> LocalCluster:
    """A LocalCluster of ``n_workers`` single-thread in-process workers.

    No dashboard unless ``options`` ask for one (``dashboard_address=":0"``),
    and its HTTP servers on 127.0.0.1 (as the embedded cluster's); any other
    ``options`` (``protocol``, ``security``, ...) go to ``LocalCluster``.
    Use it as a context manager, which closes it.
    """
    from distributed import LocalCluster

    from dask_gradcode.scheduler.clients import loopback_options

    if "dashboard_address" not in options:
        options = {**loopback_options(), **options}
    return LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=False, **options
    )


def binary_problem(
    seed: int,
    n_samples: int,
    n_features: int,
    *,
    noise: bool = True,
    positive_rate: float | None = None,
    weight_scale: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded binary classification problem ``(X, y, w)``.

    Draws, in this order, from ``np.random.default_rng(seed)``: ``X``
    (standard normal, ``n_samples x n_features``); the labels; the weights
    ``w`` at which tests evaluate gradients (standard normal times
    ``weight_scale``).

    The labels are ``y = (X @ b + e > 0)`` for a standard normal ``b`` and,
    when ``noise``, standard normal noise ``e`` (no noise: ``e = 0``, the
    classes are separable).  With ``positive_rate`` they are instead
    independent of ``X``: ``y = (u < positive_rate)`` for uniform ``u``.
    Labels are floats (0.0 / 1.0).
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    if positive_rate is not None:
        y = (rng.random(n_samples) < positive_rate).astype(float)
    else:
        margin = X @ rng.standard_normal(n_features)
        if noise:
            margin = margin + rng.standard_normal(n_samples)
        y = (margin > 0).astype(float)
    w = rng.standard_normal(n_features) * weight_scale
    return X, y, w


@contextmanager
def in_process_client(
    n_workers: int, **options: Any
) -> Iterator[tuple[LocalCluster, Client]]:
    """An :func:`in_process_cluster` and a ``Client`` to it, as ``(cluster, client)``.

    The client is the default client while the block runs; leaving it closes
    the client, then the cluster.
    """
    from distributed import Client

    with (
        in_process_cluster(n_workers, **options) as cluster,
        Client(cluster) as client,
    ):
        yield cluster, client


LocalClientFactory = Callable[..., "tuple[LocalCluster, Client]"]


@pytest.fixture
def local_client() -> Iterator[LocalClientFactory]:
    """Factory: ``local_client(n_workers, **options) -> (cluster, client)``.

    Each call enters an :func:`in_process_client` with ``options`` (the
    newest client is the default one); all of them are closed, newest first,
    when the test ends.
    """
    with ExitStack() as stack:

        def start(n_workers: int, **options: Any) -> tuple[LocalCluster, Client]:
            return stack.enter_context(in_process_client(n_workers, **options))

        yield start


def _module_workers(request: pytest.FixtureRequest) -> int:
    """The requesting module's ``N_WORKERS``, or :data:`DEFAULT_WORKERS`."""
    return getattr(request.module, "N_WORKERS", DEFAULT_WORKERS)


@pytest.fixture(scope="module")
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    """A client to ``N_WORKERS`` in-process workers, shared by the module."""
    with in_process_client(_module_workers(request)) as (_, client):
        yield client


@pytest.fixture
def own_cluster(
    request: pytest.FixtureRequest, local_client: LocalClientFactory
) -> tuple[LocalCluster, Client]:
    """A fresh ``(cluster, client)`` of ``N_WORKERS`` for a test that damages it."""
    return local_client(_module_workers(request))
