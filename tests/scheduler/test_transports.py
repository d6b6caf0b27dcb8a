"""The direct transport: off the scheduler's path, same results, clear fallbacks."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from distributed import get_task_stream

from dask_gradcode import CodedSGDClassifier, CodedSGDRegressor
from dask_gradcode.codes import make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler import (
    TRANSPORTS,
    CodedGradient,
    TransportFallbackWarning,
)
from dask_gradcode.scheduler.transports import (
    INLINE_SECONDS,
    DirectTransport,
    FuturesTransport,
    RoundServer,
)
from dask_gradcode.stragglers import SlowWorkers
from tests.conftest import binary_problem

# The shared `client` has N_WORKERS workers.
N_WORKERS = 4


@pytest.fixture(scope="module")
def data():
    return binary_problem(seed=11, n_samples=800, n_features=5)


def reference(X, y, w):
    return get_objective("log_loss").value_and_gradient(w, X, y)


def assert_exact(result, expected):
    assert result[0] == pytest.approx(expected[0], rel=1e-10)
    np.testing.assert_allclose(result[1], expected[1], rtol=1e-10, atol=1e-12)


def round_keys(tasks):
    return {t["key"] for t in tasks if "gradcode-round" in str(t["key"])}


def test_direct_rounds_bypass_the_scheduler_and_futures_rounds_do_not(client, data):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 1, random_state=0)
    seen = {}
    for transport in TRANSPORTS:
        with (
            CodedGradient(client, code, X, y, "log_loss", transport=transport) as cg,
            get_task_stream(client) as stream,
        ):
            for _ in range(3):
                assert_exact(cg(w), reference(X, y, w))
        seen[transport] = round_keys(stream.data)
    assert len(seen["futures"]) >= 3 * (N_WORKERS - 1)  # one task per worker per round
    assert not seen["direct"]  # actor calls: no task on the scheduler


def test_an_unreachable_worker_is_called_through_the_scheduler(
    client, data, monkeypatch
):
    """A client that cannot open connections to workers (NAT, a gateway)."""
    X, y, w = data

    def refuse(self, address):
        raise OSError(f"no route to {address}")

    monkeypatch.setattr(DirectTransport, "_connection", refuse)
    code = make_code("gaussian-mds", N_WORKERS, 1, 1, random_state=0)
    cg = CodedGradient(client, code, X, y, "log_loss", transport="direct")
    with pytest.warns(TransportFallbackWarning, match="scheduler's proxy"):
        cg.__enter__()
    with cg:
        for _ in range(3):
            assert_exact(cg(w), reference(X, y, w))
    assert all(r.exact for r in cg.history)


def test_injected_delays_end_as_soon_as_a_direct_round_decodes(client, data):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 1, random_state=0)
    model = SlowWorkers(workers=[0], delay=30.0)
    with CodedGradient(
        client, code, X, y, "log_loss", straggler_model=model, transport="direct"
    ) as cg:
        for _ in range(3):  # each needs the actor thread worker 0 slept in
            assert_exact(cg(w), reference(X, y, w))
    assert sum(r.wall_seconds for r in cg.history) < 5.0
    assert all(0 not in r.responders for r in cg.history)


#: When each busy call of ``BusyWorker`` ended (the in-process workers share it).
_BUSY_CALLS: list[float] = []


class BusyWorker:
    """A really slow worker: each call holds its thread (not an injected sleep).

    The wait is not one the round's end can wake, as a slow computation; it
    sleeps rather than spins so that the in-process workers sharing this
    interpreter's lock are not slowed too.
    """

    def __init__(self, worker: int, seconds: float) -> None:
        self.worker, self.seconds = worker, seconds

    def delay(self, iteration, worker, n_workers, compute_seconds=0.0):
        if worker == self.worker:
            time.sleep(self.seconds)
            _BUSY_CALLS.append(time.perf_counter())
        return 0.0


@pytest.mark.parametrize("transport", ["direct", "futures"])
def test_a_slow_worker_never_computes_rounds_that_are_over(client, data, transport):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 1, random_state=0)
    _BUSY_CALLS.clear()
    with CodedGradient(
        client,
        code,
        X,
        y,
        "log_loss",
        straggler_model=BusyWorker(worker=2, seconds=0.3),
        transport=transport,
    ) as cg:
        for _ in range(8):  # each decodes without worker 2, in milliseconds
            assert_exact(cg(w), reference(X, y, w))
    ended = time.perf_counter()
    time.sleep(1.0)
    # Rounds that were over when it got to them were dropped unstarted: it
    # was idle within one busy call of the fit's end (not 8 x 0.3 s later).
    assert len(_BUSY_CALLS) < 8, len(_BUSY_CALLS)
    assert max(_BUSY_CALLS) - ended < 0.35, max(_BUSY_CALLS) - ended
    assert all(2 not in r.responders for r in cg.history)


def test_the_actor_computes_small_rounds_inline_and_large_ones_in_its_thread(
    monkeypatch,
):
    """Inline only with no injected delay and a last round under INLINE_SECONDS."""
    import asyncio
    import threading

    from distributed.protocol import pickle

    from dask_gradcode.scheduler import transports
    from dask_gradcode.scheduler.protocol import Reply, RoundContext, RoundRequest

    threads = []

    def fake_round(shard, context, request, weights=None):
        threads.append(threading.current_thread().name)
        return Reply(np.zeros(2), request.weights[0], 0.0, 1)

    class FakeWorker:
        def __init__(self):
            self.executors = {"actor": ThreadPoolExecutor(1)}

    quiet = RoundContext(get_objective("log_loss"), "token", 0, 1)
    sleepy = RoundContext(
        get_objective("log_loss"),
        "token",
        0,
        1,
        straggler_model=SlowWorkers(workers=[1], delay=1.0),
    )
    server = RoundServer(shard=None, context=quiet)
    calls = [
        (quiet, INLINE_SECONDS / 10),
        (quiet, INLINE_SECONDS * 10),
        (quiet, 0.0),
        (sleepy, 0.0),
        (quiet, 0.0),
    ]

    async def run():
        for context, seconds in calls:
            server.context = context
            request = RoundRequest(0, 0, weights=np.array([seconds]))
            reply = pickle.loads(await server.round(pickle.dumps(request)))
            assert reply.compute_seconds == seconds

    monkeypatch.setattr(transports, "run_round", fake_round)
    monkeypatch.setattr(transports, "get_worker", FakeWorker)
    asyncio.run(run())
    main = threading.current_thread().name
    # first: no measurement yet (thread); after a fast round: inline (even a
    # slow one); after a slow one: thread; injected delays on: thread; after
    # a fast round again: inline.
    assert [name == main for name in threads] == [False, True, False, False, True]


@pytest.mark.parametrize("estimator", [CodedSGDClassifier, CodedSGDRegressor])
def test_estimators_fit_the_same_model_with_either_transport(client, data, estimator):
    X, y, _ = data
    target = y if estimator is CodedSGDClassifier else X @ np.arange(5.0)
    coefs = {}
    for transport in TRANSPORTS:
        model = estimator(
            n_workers=N_WORKERS, max_iter=20, random_state=0, transport=transport
        )
        with client.as_current():
            model.fit(X, target)
        coefs[transport] = model.coef_
    np.testing.assert_allclose(coefs["direct"], coefs["futures"], rtol=1e-8, atol=1e-10)


def test_a_bad_transport_is_refused(client, data):
    X, y, _ = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 1, random_state=0)
    with pytest.raises(
        ValueError, match=r"transport must be one of \['direct', 'futures'\]"
    ):
        CodedGradient(client, code, X, y, "log_loss", transport="udp")
    with client.as_current(), pytest.raises(ValueError, match="transport must be"):
        CodedSGDClassifier(transport="udp").fit(X, y)


def test_the_default_transport_comes_from_dask_config(client, data):
    import dask.config

    from dask_gradcode.cli import build_parser

    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 1, random_state=0)
    assert CodedGradient(client, code, X, y, "log_loss").transport == "direct"
    with dask.config.set({"gradcode.transport": "futures"}):
        with CodedGradient(client, code, X, y, "log_loss") as cg:
            assert_exact(cg(w), reference(X, y, w))
        assert cg.transport == "futures"
        assert isinstance(cg._transport, FuturesTransport)
    with (
        dask.config.set({"gradcode.transport": "zmq"}),
        pytest.raises(ValueError, match=r"got 'zmq' \(from gradcode.transport"),
    ):
        CodedGradient(client, code, X, y, "log_loss")
    args = build_parser().parse_args(["bench", "adaptive", "--transport", "futures"])
    assert args.transport == "futures"


class _WorkerAwareLoss(type(get_objective("log_loss"))):  # type: ignore[misc]
    """The log loss, asking ``distributed.get_worker()`` as user code may."""

    def value_and_gradient(self, coef, X, y, sample_weight=None):
        from distributed import get_worker

        assert get_worker().address.startswith("inproc://")
        return super().value_and_gradient(coef, X, y, sample_weight)


class _Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = __import__("threading").Lock()


class _LossRaisingUnpicklable(type(get_objective("log_loss"))):  # type: ignore[misc]
    def value_and_gradient(self, coef, X, y, sample_weight=None):
        raise _Unpicklable


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_objectives_may_ask_for_their_worker_under_every_transport(
    client, data, transport
):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 1, random_state=0)
    with CodedGradient(
        client, code, X, y, _WorkerAwareLoss(), transport=transport
    ) as cg:
        for _ in range(3):  # the actor's thread first, then inline
            assert_exact(cg(w), reference(X, y, w))


def test_an_error_that_cannot_be_pickled_is_the_workers_error_not_a_lost_worker(
    client, data
):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 1, random_state=0)
    with (
        CodedGradient(
            client, code, X, y, _LossRaisingUnpicklable(), transport="direct"
        ) as cg,
        pytest.raises(
            RuntimeError, match=r"_Unpicklable: holds a lock.*cannot be pickled"
        ),
    ):
        cg(w)


def test_the_embedded_cluster_binds_each_run_to_lasting_actors(data):
    """No actor is created per run there, and each run's binding ends with it."""
    from dask_gradcode.scheduler import (
        close_embedded_cluster,
        embedded_client,
        transports,
    )

    X, y, w = data
    embedded = embedded_client()
    code = make_code("cyclic-repetition", 3, 1, random_state=0)
    seen = []
    for _ in range(2):
        with CodedGradient(embedded, code, X, y, "log_loss") as cg:
            loss, gradient = cg(w)
            seen.append(dict(transports._HOSTS[embedded]))
        expected_loss, expected_gradient = reference(X, y, w)
        assert loss == pytest.approx(expected_loss, rel=1e-12)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-12)
    assert seen[0] == seen[1] and len(seen[0]) >= 3  # the same actors, reused
    for host in seen[0].values():
        assert host.result().bindings().result() == []  # unbound at the run's end
    close_embedded_cluster()  # releases them first (a later fit starts afresh)
    assert embedded not in transports._HOSTS
    assert all(host.status == "cancelled" for host in seen[0].values())
