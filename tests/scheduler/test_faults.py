"""Fault injection against separate `dask scheduler` / `dask worker` processes.

Each test hurts the workers of a real process cluster on localhost (SIGSTOP,
SIGCONT, SIGKILL, failing tasks, added workers, nanny restarts) while a fit
runs, and states the outcome: every round returns the exact gradient (or a
clear error), within a bounded time.  The cluster is shared by the module and
repaired (workers resumed or added) after each test.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from dask_gradcode import CodedSGDClassifier
from dask_gradcode.bench.processes import ProcessCluster
from dask_gradcode.codes import make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler import (
    TRANSPORTS,
    CodedGradient,
    NoWorkersError,
    ToleratedFailureWarning,
    WorkerErrorWarning,
    WorkerFailureWarning,
)
from dask_gradcode.scheduler.transports import _FutureArrivals
from dask_gradcode.stragglers import FailingWorkers
from tests.conftest import binary_problem

N = 5

pytestmark = [
    pytest.mark.worker_processes,
    pytest.mark.filterwarnings(
        "ignore::dask_gradcode.scheduler.WorkerFailureWarning",
        "ignore::dask_gradcode.scheduler.WorkerErrorWarning",
    ),
]


@pytest.fixture(scope="module")
def cluster():
    with ProcessCluster(N) as processes:
        yield processes


@pytest.fixture
def repaired(cluster):
    """The shared cluster, brought back to N responsive workers afterwards."""
    yield cluster
    for pid in list(cluster._stopped):
        cluster.resume(pid)
    while len(cluster.workers()) < N:
        cluster.add_worker()


@pytest.fixture(scope="module")
def problem():
    X, y, w = binary_problem(
        seed=0, n_samples=600, n_features=6, positive_rate=0.4, weight_scale=0.2
    )
    return X, y, w, get_objective("log_loss").value_and_gradient(w, X, y)


def assert_exact(result, expected):
    loss, gradient = result
    assert loss == pytest.approx(expected[0], rel=1e-9)
    np.testing.assert_allclose(gradient, expected[1], rtol=1e-9, atol=1e-12)


def coded(cluster, problem, code, **options):
    X, y, _, _ = problem
    options.setdefault("check_interval", 0.5)
    options.setdefault("stale_after", 2.0)
    return CodedGradient(cluster.client, code, X, y, "log_loss", **options)


def exact_rounds_until_grown_back(cg, cluster, w, expected, timeout=30.0):
    """Exact rounds until the code is back to N live workers (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (
        cg.code.n_workers == N and set(cg.workers) <= set(cluster.workers())
    ):
        assert_exact(cg(w), expected)
        time.sleep(0.2)


def pid_of(cluster, address):
    return cluster.pids()[address]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stopped_workers_within_and_beyond_tolerance_then_resumed(
    repaired, problem, transport
):
    """SIGSTOP of s workers: exact at full speed; of s + 1: one slow round, re-plan.

    Outcome: every round exact; the round that meets more hung workers than
    the code tolerates ends at its deadline (a couple of seconds) with a
    re-plan; after SIGCONT the code grows back to all five workers.
    """
    cluster, (_, _, w, expected) = repaired, problem
    code = make_code("gaussian-mds", N, 1, 1, random_state=0)
    with coded(cluster, problem, code, transport=transport) as cg:
        for _ in range(3):
            assert_exact(cg(w), expected)
        first, second = (pid_of(cluster, a) for a in cg.workers[:2])
        cluster.stop(first)
        for _ in range(4):
            start = time.perf_counter()
            assert_exact(cg(w), expected)
            assert time.perf_counter() - start < 2.0  # s hung: not waited for
        cluster.stop(second)
        start = time.perf_counter()
        with pytest.warns(WorkerFailureWarning, match="re-planned on 3 workers"):
            assert_exact(cg(w), expected)
        assert time.perf_counter() - start < cg.history[-1].deadline_seconds + 8
        assert cg.code.n_workers == 3
        for _ in range(3):
            assert_exact(cg(w), expected)
        cluster.resume(first)
        cluster.resume(second)
        deadline = time.monotonic() + 30
        while cg.code.n_workers < N and time.monotonic() < deadline:
            assert_exact(cg(w), expected)
            time.sleep(0.2)
        assert cg.code.n_workers == N  # grown back: the hung workers rejoined
        assert_exact(cg(w), expected)


def test_a_tolerated_death_is_said_once_by_address(repaired, problem):
    """A worker killed within the tolerance: one note naming it, then records only."""
    cluster, (_, _, w, expected) = repaired, problem
    code = make_code("gaussian-mds", N, 1, 1, random_state=0)
    with coded(cluster, problem, code) as cg:
        assert_exact(cg(w), expected)
        victim = cg.workers[2]
        cluster.kill(pid_of(cluster, victim))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(6):
                assert_exact(cg(w), expected)
    notes = [c for c in caught if issubclass(c.category, ToleratedFailureWarning)]
    assert len(notes) == 1, [str(c.message) for c in caught]
    note = str(notes[0].message)
    assert f"worker {victim} (code worker 2) is dead or unresponsive" in note
    assert note.endswith("the gaussian-mds code decoded without it")
    assert cg.history[-1].named("failed") == (victim,)
    assert cg.code.n_workers == N  # tolerated: no re-plan


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kills_at_random_moments_never_crash_a_fit(repaired, problem, transport):
    """SIGKILL at random moments of a round, s and then s + 1 at a time.

    Outcome: every round returns the exact gradient; the code shrinks when
    the kills exceed its tolerance and grows back when workers are added.
    """
    cluster, (_, _, w, expected) = repaired, problem
    code = make_code("gaussian-mds", N, 1, 1, random_state=0)
    rng = random.Random(7)
    with coded(cluster, problem, code, transport=transport) as cg:
        assert_exact(cg(w), expected)
        for victims in (1, 1, 2, 1, 2, 1):
            targets = rng.sample(cg.workers, victims)
            pids = [pid_of(cluster, a) for a in targets]
            delay = rng.uniform(0.0, 0.3)
            killer = threading.Timer(delay, lambda p=pids: [cluster.kill(x) for x in p])
            killer.start()
            for _ in range(6):
                assert_exact(cg(w), expected)
            killer.join()
            for _ in range(victims):
                cluster.add_worker()
            exact_rounds_until_grown_back(cg, cluster, w, expected)
            # grown back: every code worker is a live one, the new ones included
            assert cg.code.n_workers == N
            assert set(cg.workers) <= set(cluster.workers())


@pytest.mark.parametrize(
    ("policy", "transport"),
    [("speculative", "futures"), ("adaptive", "futures"), ("adaptive", "direct")],
)
def test_split_rounds_survive_hung_and_killed_workers(
    repaired, problem, policy, transport
):
    """Split rounds (shares by speed, backups) meet a SIGSTOP, then a SIGKILL.

    Outcome: every round exact and bounded; a hung worker's shares are
    backed up by the other holders of its rows, a killed worker's too, and
    the code grows back when a worker is added.
    """
    cluster, (_, _, w, expected) = repaired, problem
    code = make_code("gaussian-mds", N, 1, 1, random_state=0)
    with coded(cluster, problem, code, policy=policy, transport=transport) as cg:
        for _ in range(3):
            assert_exact(cg(w), expected)
        hung, dead = (pid_of(cluster, a) for a in cg.workers[1:3])
        cluster.stop(hung)
        for _ in range(4):
            start = time.perf_counter()
            assert_exact(cg(w), expected)
            assert time.perf_counter() - start < cg.history[-1].deadline_seconds + 8
        cluster.resume(hung)
        killer = threading.Timer(0.05, cluster.kill, (dead,))
        killer.start()
        for _ in range(4):
            assert_exact(cg(w), expected)
        killer.join()
        cluster.add_worker()
        exact_rounds_until_grown_back(cg, cluster, w, expected)
        assert cg.code.n_workers == N
        assert {r.plan for r in cg.history} >= {"split"}
        assert_exact(cg(w), expected)


def test_a_kill_between_the_task_and_the_fetch_is_an_erasure(
    repaired, problem, monkeypatch
):
    """The worker finished its task and died before the client fetched it.

    Outcome: that reply is an erasure ("already forgotten" is not an error),
    and the round decodes exactly from the others, with no re-plan.
    """
    from distributed import wait

    cluster, (_, _, w, expected) = repaired, problem
    code = make_code("gaussian-mds", N, 1, 1, random_state=0)
    original_add, original_wait = _FutureArrivals.add, _FutureArrivals.wait
    submitted = {}
    killed = {}

    def add(self, future):
        submitted[future] = len(submitted)  # code order: one task per worker
        original_add(self, future)

    def kill_then_fetch(self, timeout):
        if not killed:
            wait(list(submitted))  # every task finished, nothing fetched yet
            killed[0] = pid_of(cluster, cg.workers[0])
            cluster.kill(killed[0])
            time.sleep(0.5)  # let the scheduler notice
        return original_wait(self, timeout)

    with coded(cluster, problem, code, transport="futures") as cg:
        assert_exact(cg(w), expected)
        monkeypatch.setattr(_FutureArrivals, "add", add)
        monkeypatch.setattr(_FutureArrivals, "wait", kill_then_fetch)
        assert_exact(cg(w), expected)
        monkeypatch.setattr(_FutureArrivals, "add", original_add)
        monkeypatch.setattr(_FutureArrivals, "wait", original_wait)
        assert killed
        record = cg.history[-1]
        assert 0 not in record.responders
        assert record.attempts == 1 and record.exact


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_kill_during_enter_and_a_hung_worker_at_close(
    repaired, problem, monkeypatch, transport
):
    """SIGKILL while the data is placed; SIGSTOP when the fit closes.

    Outcome: entering re-plans on the survivors and every round is exact;
    closing with a hung worker returns at once instead of waiting for it.
    """
    cluster, (_, _, w, expected) = repaired, problem
    client = cluster.client
    original = client._scatter
    pids = cluster.pids()
    state = {"calls": 0}

    async def kill_second_target(data, workers=None, **options):
        state["calls"] += 1
        if state["calls"] == 2:
            cluster.kill(pids[workers[0]])
            await asyncio.sleep(0.5)
        return await original(data, workers=workers, **options)

    monkeypatch.setattr(client, "_scatter", kill_second_target)
    code = make_code("gaussian-mds", N, 1, 1, random_state=0)
    with pytest.warns(WorkerFailureWarning, match="failed while the data was placed"):
        cg = coded(cluster, problem, code, transport=transport).__enter__()
    monkeypatch.setattr(client, "_scatter", original)
    try:
        assert cg.code.n_workers == N - 1
        for _ in range(3):
            assert_exact(cg(w), expected)
        cluster.stop(pid_of(cluster, cg.workers[0]))
    finally:
        start = time.perf_counter()
        cg.close()
        assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_raising_worker_is_an_erasure_then_dropped_and_a_bug_surfaces(
    repaired, problem, transport
):
    """A task that raises (MemoryError on one node) vs an error every task raises.

    Outcome: one raising worker is an erasure with a warning naming it, and
    after three rounds it is planned out of the code; a ValueError every
    worker raises surfaces at once with the worker's message.
    """
    cluster, (_, _, w, expected) = repaired, problem
    code = make_code("gaussian-mds", N, 1, 1, random_state=0)
    failing = FailingWorkers(workers=[2], others_delay=0.3)
    with coded(
        cluster, problem, code, straggler_model=failing, transport=transport
    ) as cg:
        named = rf"worker {cg.workers[2]} \(code worker 2\) raised MemoryError"
        with pytest.warns(WorkerErrorWarning, match=named):
            assert_exact(cg(w), expected)
        assert 2 in cg.history[-1].errors
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(4):
                assert_exact(cg(w), expected)
        assert cg.code.n_workers == N - 1  # dropped after three failing rounds
    everyone = FailingWorkers(workers="all", error=ValueError)
    with coded(
        cluster, problem, code, straggler_model=everyone, transport=transport
    ) as cg:
        start = time.perf_counter()
        with pytest.raises(ValueError, match="injected failure"):
            cg(w)
        assert time.perf_counter() - start < 5.0


def test_losing_every_worker_keeps_the_last_iterate(repaired):
    """Every worker killed during a warm-started estimator's fit.

    Outcome: ``NoWorkersError`` saying what happened; the estimator is the
    last good iterate as a whole model (it predicts, its records are those
    of this fit), so fitting again continues from it.
    """
    cluster = repaired
    X, y = make_classification(400, 5, random_state=0)
    model = CodedSGDClassifier(
        loss="log_loss",
        solver="gd",
        learning_rate="constant",
        eta0=0.1,
        max_iter=10_000,
        tol=None,
        n_stragglers=1,
        random_state=0,
        warm_start=True,
    )
    pids = list(cluster.pids().values())
    killer = threading.Timer(2.0, lambda: [cluster.kill(p) for p in pids])
    killer.start()
    with (
        cluster.client.as_current(),
        pytest.raises(NoWorkersError, match="last good iterate is kept"),
    ):
        model.fit(X, y)
    killer.join()
    assert model.coef_.shape == (1, 5) and np.any(model.coef_ != 0)
    assert 0 < model.n_iter_ < 10_000
    assert model.predict(X).shape == (400,)
    assert len(model.history_) == model.n_iter_ and model.rounds_
    assert not hasattr(model, "fit_profile_")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_nanny_restart_rejoins_under_a_new_address(problem, transport):
    """A worker process killed under its nanny comes back with a new address.

    Outcome: every round exact; the restarted worker is planned back into the
    code in place of the dead one.
    """
    _, _, w, expected = problem
    with ProcessCluster(3, nanny=True) as cluster:
        code = make_code("gaussian-mds", 3, 1, 1, random_state=0)
        with coded(cluster, problem, code, transport=transport) as cg:
            assert_exact(cg(w), expected)
            victim = cg.workers[1]
            cluster.kill(pid_of(cluster, victim))
            deadline = time.monotonic() + 60
            while victim in cg.workers or len(cluster.workers()) < 3:
                assert time.monotonic() < deadline, "the nanny's worker never rejoined"
                assert_exact(cg(w), expected)
                time.sleep(0.2)
            assert_exact(cg(w), expected)
            assert set(cg.workers) == set(cluster.workers())
