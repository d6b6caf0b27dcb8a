"""A stalled or dead `dask scheduler` process under a running fit.

The scheduler is SIGSTOPped or SIGKILLed while rounds run on healthy
`dask worker` processes.  A stall must cost the direct transport's rounds
nothing and the futures transport's rounds only the wait; a dead scheduler
must end the fit within a bounded time with an error that names it.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dask_gradcode.bench.processes import ProcessCluster
from dask_gradcode.codes import make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler import CodedGradient, SchedulerUnavailableError
from dask_gradcode.scheduler import membership as membership_module
from tests.conftest import binary_problem

N = 4

pytestmark = [
    pytest.mark.worker_processes,
    pytest.mark.filterwarnings("ignore::dask_gradcode.scheduler.WorkerFailureWarning"),
]


@pytest.fixture(scope="module")
def problem():
    X, y, w = binary_problem(
        seed=2, n_samples=800, n_features=5, positive_rate=0.5, weight_scale=0.3
    )
    return X, y, w, get_objective("log_loss").value_and_gradient(w, X, y)


def coded(cluster, problem, transport):
    X, y, _, _ = problem
    code = make_code("cyclic-repetition", N, 1, random_state=0)
    return CodedGradient(
        cluster.client,
        code,
        X,
        y,
        "log_loss",
        transport=transport,
        check_interval=0.5,
        stale_after=2.0,
    )


def rounds_while_stopped(cluster, cg, w, seconds):
    """Rounds while the scheduler is stopped for ``seconds``, and 1 s after."""
    cluster.stop(cluster.scheduler_pid)
    resume = threading.Timer(seconds, cluster.resume, [cluster.scheduler_pid])
    resume.start()
    began = time.monotonic()
    results = []
    try:
        while time.monotonic() - began < seconds + 1.0:
            results.append(cg(w))
    finally:
        resume.join()
    return results


@pytest.mark.parametrize(("transport", "stall"), [("direct", 8.0), ("futures", 5.0)])
def test_a_scheduler_stall_kills_no_fit(problem, transport, stall):
    _, _, w, (loss, gradient) = problem
    with ProcessCluster(N) as cluster, coded(cluster, problem, transport) as cg:
        for _ in range(3):
            cg(w)
        results = rounds_while_stopped(cluster, cg, w, stall)
        for got_loss, got_gradient in results:
            assert got_loss == pytest.approx(loss, rel=1e-9)
            np.testing.assert_allclose(got_gradient, gradient, rtol=1e-9, atol=1e-12)
        during = cg.history[3:]
        assert cg.code.n_workers == N  # nobody was taken for hung
        assert not any(r.failed or r.timed_out for r in during)
        slowest = max(r.wall_seconds for r in during)
        if transport == "direct":
            # Rounds that do not need the scheduler never waited for it.
            assert slowest < 1.0 and len(during) > 20
        else:
            assert slowest < stall + 3.0  # the wait, then on


@pytest.mark.parametrize("transport", ["direct", "futures"])
def test_a_dead_scheduler_is_named_within_its_patience(problem, transport, monkeypatch):
    _, _, w, _ = problem
    monkeypatch.setattr(membership_module, "SCHEDULER_PATIENCE", 3.0)
    with ProcessCluster(N) as cluster, coded(cluster, problem, transport) as cg:
        cg(w)
        address = cluster.address
        cluster.kill(cluster.scheduler_pid)
        began = time.monotonic()
        with pytest.raises(SchedulerUnavailableError, match="scheduler") as error:
            while time.monotonic() - began < 60:
                cg(w)
        assert time.monotonic() - began < 3.0 + 10.0
        assert address in str(error.value) and "untouched" in str(error.value)


@pytest.mark.parametrize("nanny", [False, True])
def test_a_memory_limited_cluster_is_refused_naming_memory(nanny):
    from dask_gradcode import CodedSGDClassifier
    from dask_gradcode.scheduler import WorkerMemoryError

    X = np.random.default_rng(0).standard_normal((300_000, 100))  # 240 MB
    y = (X[:, 0] > 0).astype(int)
    with ProcessCluster(3, nanny=nanny, memory_limit="300MB") as cluster:
        model = CodedSGDClassifier(n_stragglers=1, n_workers=3, max_iter=2)
        began = time.monotonic()
        with (
            cluster.client.as_current(),
            pytest.raises(WorkerMemoryError, match="memory_limit") as error,
        ):
            model.fit(X, y)  # each of 3 workers would hold 2/3 of the data
        assert time.monotonic() - began < 10  # refused before sending
        assert "more workers" in str(error.value)
        assert not cluster.client.who_has()  # nothing was sent
        assert not hasattr(model, "coef_")
