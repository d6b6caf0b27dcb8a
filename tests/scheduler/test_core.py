"""CodedGradient on real LocalClusters: exactness, early decoding, failures."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import scipy.sparse

from dask_gradcode.codes import SCHEMES, make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler import (
    TRANSPORTS,
    CodedGradient,
    WorkerFailureWarning,
    replan_code,
    worker_addresses,
)
from dask_gradcode.stragglers import SlowWorkers, StragglerModel
from tests.conftest import binary_problem

# `client` (shared) and `own_cluster` (one test's) have N_WORKERS workers.
N_WORKERS = 6


@pytest.fixture(scope="module")
def data():
    return binary_problem(seed=0, n_samples=600, n_features=8)


def reference(X, y, w, loss="log_loss", sample_weight=None):
    return get_objective(loss).value_and_gradient(w, X, y, sample_weight)


def assert_close(result, expected, rtol=1e-9):
    loss, gradient = result
    assert loss == pytest.approx(expected[0], rel=rtol)
    np.testing.assert_allclose(
        gradient, expected[1], rtol=rtol, atol=rtol * np.abs(expected[1]).max()
    )


def code_for(scheme, n=N_WORKERS):
    if scheme == "linear":
        return make_code(
            "linear", n, None, generator=[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
        )
    if scheme == "uncoded":
        return make_code("uncoded", n, 0)
    if scheme == "cyclic-mds":
        return make_code("cyclic-mds", n, 1)
    m = 2 if scheme in ("ye-abbe", "gaussian-mds") else 1
    return make_code(
        scheme, n, 2 if scheme != "fractional-repetition" else 1, m, random_state=0
    )


EXACT = [s for s in SCHEMES if s not in ("ignore-stragglers", "auto")]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("scheme", EXACT)
def test_exact_schemes_match_a_single_process_gradient_whoever_straggles(
    transport, client, data, scheme
):
    X, y, w = data
    code = code_for(scheme)
    expected = reference(X, y, w)
    rng = np.random.default_rng(1)
    for _ in range(3):
        slow = rng.choice(N_WORKERS, code.n_stragglers, replace=False).tolist()
        model = SlowWorkers(workers=slow, delay=5.0)
        with CodedGradient(
            client, code, X, y, "log_loss", transport=transport, straggler_model=model
        ) as cg:
            start = time.perf_counter()
            assert_close(cg(w), expected)
            elapsed = time.perf_counter() - start
            record = cg.history[-1]
        assert not set(slow) & set(record.responders)  # decoded before they finished
        assert elapsed < 2.0
        assert record.exact and record.error_bound < 1e-9


def test_history_records_metrics(client, data):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 2, random_state=0)
    with CodedGradient(
        client,
        code,
        X,
        y,
        "log_loss",
        straggler_model=SlowWorkers(workers=[4], delay=3.0),
    ) as cg:
        for _ in range(3):
            cg(w)
    assert [r.iteration for r in cg.history] == [0, 1, 2]
    record = cg.history[-1].as_dict()
    assert 4 in record["stragglers"] and 4 not in record["responders"]
    assert record["bytes_received"] == len(
        record["responders"]
    ) * 8 * code.message_length(9)
    assert 0 < record["decode_seconds"] < record["wall_seconds"]
    assert record["wait_seconds"] <= record["wall_seconds"]
    assert set(record["compute_seconds"]) <= set(range(N_WORKERS))
    assert record["scheme"] == "gaussian-mds" and not record["replanned"]


class FirstTwoRounds(StragglerModel):
    """Worker 0 is very slow in round 0, worker 1 in round 1."""

    def delay(self, iteration, worker, n_workers, compute_seconds=0.0):
        return 4.0 if (iteration, worker) in ((0, 0), (1, 1)) else 0.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cancelled_delay_does_not_slow_the_next_round(transport, client, data):
    """Round 1 needs worker 0, whose stale round-0 task must stop sleeping."""
    X, y, w = data
    code = make_code("cyclic-repetition", N_WORKERS, 1, random_state=0)
    with CodedGradient(
        client,
        code,
        X,
        y,
        "log_loss",
        transport=transport,
        straggler_model=FirstTwoRounds(),
    ) as cg:
        start = time.perf_counter()
        cg(w)
        cg(w)
        elapsed = time.perf_counter() - start
    assert cg.history[0].stragglers == (0,)
    assert 0 in cg.history[1].responders and cg.history[1].stragglers == (1,)
    assert elapsed < 2.0


def test_a_worker_holds_only_its_own_partitions(client, data):
    X, y, _w = data
    code = make_code("fractional-repetition", N_WORKERS, 2)
    with CodedGradient(client, code, X, y, "log_loss") as cg:
        bounds = code.partition_bounds(len(y))
        shards = client.gather(cg.shards)
        who_has = client.who_has(cg.shards)
        for worker, (shard, future) in enumerate(zip(shards, cg.shards, strict=True)):
            assert list(who_has[future.key]) == [cg.workers[worker]]
            expected = np.concatenate(
                [y[bounds[j] : bounds[j + 1]] for j in code.partitions(worker)]
            )
            np.testing.assert_array_equal(
                np.concatenate([b[1] for b in shard.blocks]), expected
            )


def test_placement_copies_nothing_in_process_and_adds_no_intercept_column(client, data):
    X, y, w = data
    code = make_code("cyclic-repetition", N_WORKERS, 1, random_state=0)
    with CodedGradient(client, code, X, y, "log_loss", fit_intercept=True) as cg:
        for shard in client.gather(cg.shards):
            assert shard.intercept
            for block_X, block_y, _ in shard.blocks:
                # in-process workers hold views of the caller's arrays
                assert block_X.shape[1] == X.shape[1]
                assert np.shares_memory(block_X, X) and np.shares_memory(block_y, y)
        with_ones = np.hstack([X, np.ones((len(y), 1))])
        expected = get_objective("log_loss").value_and_gradient(
            np.append(w, 0.3), with_ones, y
        )
        loss, gradient = cg(np.append(w, 0.3))
        assert loss == pytest.approx(expected[0], rel=1e-10)
        np.testing.assert_allclose(gradient, expected[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wide_sparse_rows_reply_with_their_nonzeros_only(transport, client):
    rng = np.random.default_rng(2)
    rows, width = 240, 30_000
    X = scipy.sparse.random(rows, width, density=2e-4, random_state=3, format="csr")
    y = (rng.random(rows) < 0.5).astype(float)
    w = rng.standard_normal(width) * 0.1
    code = make_code("fractional-repetition", N_WORKERS, 1)
    expected = get_objective("log_loss").value_and_gradient(w, X, y)
    with CodedGradient(client, code, X, y, "log_loss", transport=transport) as cg:
        loss, gradient = cg(w)
    assert loss == pytest.approx(expected[0], rel=1e-10)
    np.testing.assert_allclose(gradient, expected[1], rtol=1e-10, atol=1e-12)
    dense_bytes = len(cg.history[-1].responders) * (width + 1) * 8
    assert cg.history[-1].bytes_received < dense_bytes / 20


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sparse_input_sample_weight_and_other_losses(transport, client, data):
    X, y, w = data
    sparse = scipy.sparse.random(600, 8, density=0.3, random_state=0, format="csr")
    weights = np.random.default_rng(3).uniform(0.5, 2, 600)
    code = make_code("cyclic-mds", 5, 2)
    with CodedGradient(
        client, code, sparse, y, "hinge", sample_weight=weights, transport=transport
    ) as cg:
        assert_close(cg(w), reference(sparse, y, w, "hinge", weights))
    targets = X @ w + 0.1
    with CodedGradient(
        client, code, X, targets, "squared_error", transport=transport
    ) as cg:
        assert_close(cg(w * 0.5), reference(X, targets, w * 0.5, "squared_error"))


def test_softmax_infers_the_classes(client, data):
    X, _, _ = data
    labels = np.random.default_rng(0).integers(0, 3, 600).astype(float)
    code = make_code("gaussian-mds", 6, 1, 2, random_state=0)
    with CodedGradient(client, code, X, labels, "softmax") as cg:
        assert cg.dim == 24
        coef = np.linspace(-1, 1, 24)
        expected = get_objective("softmax", n_classes=3).value_and_gradient(
            coef, X, labels
        )
        assert_close(cg(coef), expected)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_decodable_set_that_misses_rtol_waits_for_more_workers(
    transport, client, data
):
    """Workers 2..5 determine the gradient, but not to rtol: the round waits."""
    X, y, w = data
    code = make_code("ye-abbe", N_WORKERS, 2, 1, verify=False, rtol=1e-14)
    assert code.is_decodable(range(2, 6), check_accuracy=False)
    assert not code.is_decodable(range(2, 6))
    slow = SlowWorkers(workers=[0, 1], delay=0.4)
    with CodedGradient(
        client, code, X, y, "log_loss", transport=transport, straggler_model=slow
    ) as cg:
        assert_close(cg(w), reference(X, y, w))
    record = cg.history[0]
    assert record.waited_for_accuracy and record.exact
    assert record.error_bound <= 1e-14
    assert {0, 1} & set(record.responders)  # a slow worker had to answer


def test_estimators_warn_when_rounds_waited_for_accuracy():
    from dask_gradcode.estimators.monitoring import warn_about_accuracy
    from dask_gradcode.scheduler import DecodingAccuracyWarning

    code = make_code("ye-abbe", N_WORKERS, 2, 1, verify=False, rtol=1e-14)
    history = [
        type("Record", (), {"waited_for_accuracy": waited})()
        for waited in (True, False, True)
    ]
    with pytest.warns(DecodingAccuracyWarning, match="2 of 3 rounds waited"):
        warn_about_accuracy(code, history)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dask_array_and_dataframe_inputs_stay_on_the_cluster(transport, client, data):
    da = pytest.importorskip("dask.array")
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y, w = data
    expected = reference(X, y, w)
    code = make_code("gaussian-mds", N_WORKERS, 2, 1, random_state=0)
    X_dask, y_dask = da.from_array(X, chunks=(97, 8)), da.from_array(y, chunks=97)
    with CodedGradient(
        client, code, X_dask, y_dask, "log_loss", transport=transport
    ) as cg:
        assert_close(cg(w), expected)
    frame = dd.from_pandas(pd.DataFrame(X), npartitions=5)
    series = dd.from_pandas(pd.Series(y), npartitions=5)
    with CodedGradient(
        client, code, frame, series, "log_loss", transport=transport
    ) as cg:
        assert_close(cg(w), expected)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_large_weights_are_scattered_and_give_the_same_result(
    transport, client, monkeypatch
):
    from distributed import Future

    import dask_gradcode.scheduler.transports

    monkeypatch.setattr(
        dask_gradcode.scheduler.transports, "EMBED_WEIGHTS_MAX_BYTES", 1024
    )  # futures: weights scattered once per round
    monkeypatch.setattr(
        dask_gradcode.scheduler.transports, "FRAME_WEIGHTS_BYTES", 1024
    )  # direct: weights as their own frame
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 900))  # 7 kB of weights: above the lowered limit
    y = rng.standard_normal(60)
    w = rng.standard_normal(900) * 0.01
    code = make_code("gaussian-mds", 4, 1, 3, random_state=0)
    framed = []
    transports = dask_gradcode.scheduler.transports

    class SpyCall(transports.DirectCall):
        def __init__(self, worker, payload, weights=None):
            framed.append(weights is not None)
            super().__init__(worker, payload, weights)

    scattered = []
    ship = transports.FuturesTransport.ship_weights

    def spy_ship(self, weights, addresses):
        shipped = ship(self, weights, addresses)
        scattered.append(isinstance(shipped, Future))
        return shipped

    monkeypatch.setattr(transports, "DirectCall", SpyCall)
    monkeypatch.setattr(transports.FuturesTransport, "ship_weights", spy_ship)
    with CodedGradient(client, code, X, y, "squared_error", transport=transport) as cg:
        assert_close(cg(w), reference(X, y, w, "squared_error"))
        assert cg.history[-1].submit_seconds > 0
    assert scattered == ([True] if transport == "futures" else [])
    assert framed == ([True] * 4 if transport == "direct" else [])


def test_task_keys_carry_a_readable_prefix(client, data):
    X, y, w = data
    from distributed import get_task_stream

    code = make_code("cyclic-repetition", N_WORKERS, 1, random_state=0)
    with (
        CodedGradient(client, code, X, y, "log_loss", transport="futures") as cg,
        get_task_stream() as stream,
    ):
        cg(w)
    keys = [task["key"] for task in stream.data]
    assert keys and all(str(k).startswith("gradcode-round-0-w") for k in keys)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_worker_dying_between_rounds_is_a_permanent_straggler(
    transport, own_cluster, data
):
    cluster, client = own_cluster
    X, y, w = data
    expected = reference(X, y, w)
    code = make_code("gaussian-mds", N_WORKERS, 2, 1, random_state=0)
    with CodedGradient(client, code, X, y, "log_loss", transport=transport) as cg:
        first = cg(w)
        victim = cg.workers[1]
        client.sync(cluster.workers[_name_of(cluster, victim)].close)
        for _ in range(3):
            assert_close(cg(w), expected)
            assert_close(cg(w), first)
    assert 1 in cg.history[-1].failed and 1 not in cg.history[-1].responders
    assert cg.code is code  # no re-plan needed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_worker_dying_mid_round_is_survived(transport, own_cluster, data):
    cluster, client = own_cluster
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 2, 1, random_state=0)
    slow_everyone = SlowWorkers(workers=range(N_WORKERS), delay=1.0)
    with CodedGradient(
        client,
        code,
        X,
        y,
        "log_loss",
        transport=transport,
        straggler_model=slow_everyone,
    ) as cg:
        victim = _name_of(cluster, cg.workers[0])
        threading.Timer(0.3, lambda: client.sync(cluster.workers[victim].close)).start()
        assert_close(cg(w), reference(X, y, w))
        if transport == "futures":  # the scheduler drops the closing worker's task
            assert 0 in cg.history[-1].failed
        # (a direct call may still answer: the closing worker finishes its
        # running actor call, and its reply is as exact as any)
        assert_close(cg(w), reference(X, y, w))
    assert 0 in cg.history[-1].failed and 0 not in cg.history[-1].responders


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_more_failures_than_tolerated_replan_with_a_warning(
    transport, own_cluster, data
):
    cluster, client = own_cluster
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 1, 2, random_state=0)
    with CodedGradient(client, code, X, y, "log_loss", transport=transport) as cg:
        cg(w)
        for worker in (0, 1):  # two of one group of 3, with m = 2: undecodable
            client.sync(cluster.workers[_name_of(cluster, cg.workers[worker])].close)
        with pytest.warns(WorkerFailureWarning, match="re-planned on 4 workers"):
            result = cg(w)
        assert_close(result, reference(X, y, w))
        assert cg.code.n_workers == 4 and cg.history[-1].replanned
        assert_close(cg(w), reference(X, y, w))
        assert not cg.history[-1].replanned


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_approximate_mode_keeps_going_with_an_error_bound(transport, own_cluster, data):
    cluster, client = own_cluster
    X, y, w = data
    code = make_code("fractional-repetition", N_WORKERS, 1)
    expected = reference(X, y, w)
    with CodedGradient(
        client, code, X, y, "log_loss", transport=transport, on_failure="approximate"
    ) as cg:
        for worker in (0, 1):  # a whole group: its partitions are gone
            client.sync(cluster.workers[_name_of(cluster, cg.workers[worker])].close)
        with pytest.warns(WorkerFailureWarning, match="approximately"):
            _loss, gradient = cg(w)
    record = cg.history[-1]
    assert not record.exact and record.error_bound > 0
    partials = [reference(X[s], y[s], w)[1] for s in np.array_split(np.arange(600), 6)]
    bound = record.error_bound * np.sqrt(sum(np.sum(p**2) + 0 for p in partials))
    assert (
        np.linalg.norm(gradient - expected[1]) <= bound * 1.01 + 1
    )  # loss row adds at most 1


def test_asking_for_more_workers_than_the_cluster_has_fails_upfront(client, data):
    X, y, _ = data
    code = make_code("cyclic-repetition", N_WORKERS + 2, 1, random_state=0)
    with (
        pytest.raises(ValueError, match="needs 8 workers but the cluster has 6"),
        CodedGradient(client, code, X, y, "log_loss"),
    ):
        pass


def test_bad_input_gets_clear_errors(client, data):
    X, y, w = data
    code = make_code("cyclic-repetition", 4, 1, random_state=0)
    with pytest.raises(ValueError, match="X has 600 rows but y has 599"):
        CodedGradient(client, code, X, y[:-1], "log_loss")
    with pytest.raises(ValueError, match="X contains NaN"):
        CodedGradient(client, code, np.full_like(X, np.nan), y, "log_loss")
    with pytest.raises(ValueError, match="unknown loss"):
        CodedGradient(client, code, X, y, "nope")
    with pytest.raises(ValueError, match="on_failure"):
        CodedGradient(client, code, X, y, "log_loss", on_failure="ignore")
    with pytest.raises(TypeError, match="delay"):
        CodedGradient(client, code, X, y, "log_loss", straggler_model=3)
    with CodedGradient(client, code, X, y, "log_loss") as cg:
        with pytest.raises(ValueError, match="w must have 8 entries"):
            cg(w[:3])
        with pytest.raises(ValueError, match="NaN"):
            cg(np.full(8, np.nan))
    with pytest.raises(RuntimeError, match="context manager"):
        CodedGradient(client, code, X, y, "log_loss")(w)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_worker_error_surfaces_on_the_client(transport, client, data):
    X, _, _w = data
    code = make_code("cyclic-repetition", 4, 1, random_state=0)
    labels = np.zeros(600)
    labels[5] = 7.0  # the objective sees only 3 classes after we force it
    from dask_gradcode.objectives import Softmax

    with (
        CodedGradient(client, code, X, labels, Softmax(3), transport=transport) as cg,
        pytest.raises(ValueError, match=r"labels must be integers in 0\.\.2"),
    ):
        cg(np.zeros(24))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_replanned_codes_keep_the_scheme_where_possible(scheme):
    code = (
        code_for(scheme) if scheme != "ignore-stragglers" else make_code(scheme, 6, 1)
    )
    smaller = replan_code(code, 4)
    assert smaller.n_workers == 4
    assert smaller.comm_reduction == code.comm_reduction
    if scheme == "auto":  # chosen again for the new size
        assert smaller.selection_reason is not None
    else:
        assert smaller.scheme == scheme


def test_replanning_a_linear_code_on_too_few_workers_keeps_its_shape():
    code = make_code("linear", 6, None, generator=[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    smaller = replan_code(code, 2)  # fewer workers than the block length 3
    assert smaller.scheme == "gaussian-mds" and smaller.n_workers == 2
    assert smaller.comm_reduction == 2 and smaller.n_stragglers == 0


def _name_of(cluster, address):
    return next(
        name for name, worker in cluster.workers.items() if worker.address == address
    )


def test_a_retired_worker_is_noticed_by_the_liveness_check(own_cluster, data):
    """Retiring moves a worker's data away, so only the scheduler knows it left."""
    _, client = own_cluster
    X, y, w = data
    code = make_code("cyclic-repetition", N_WORKERS, 1, random_state=0)
    with CodedGradient(
        client, code, X, y, "log_loss", check_interval=0.3, transport="futures"
    ) as cg:
        cg(w)
        client.retire_workers([cg.workers[2]])
        assert cg.workers[2] not in worker_addresses(client)
        time.sleep(0.4)  # past check_interval: the next round asks the scheduler
        start = time.perf_counter()
        for _ in range(3):
            assert_close(cg(w), reference(X, y, w))
        assert time.perf_counter() - start < 3.0
    assert 2 in cg.history[-1].failed


def test_a_worker_holding_a_direct_fits_actor_retires_after_the_fit(own_cluster, data):
    """Dask does not move actors: the retirement waits for the fit to close."""
    _, client = own_cluster
    X, y, w = data
    code = make_code("cyclic-repetition", N_WORKERS, 1, random_state=0)
    with CodedGradient(client, code, X, y, "log_loss", transport="direct") as cg:
        cg(w)
        victim = cg.workers[2]
        client.retire_workers([victim])
        assert victim in worker_addresses(client)  # refused: it holds an actor
        for _ in range(3):
            assert_close(cg(w), reference(X, y, w))
        assert 2 in cg.history[-1].responders or 2 in cg.history[-1].stragglers

    def actors_on_victim(dask_scheduler):
        return len(dask_scheduler.workers[victim].actors)

    deadline = time.monotonic() + 10
    while client.run_on_scheduler(actors_on_victim) and time.monotonic() < deadline:
        time.sleep(0.05)  # closing released the actors; the scheduler follows
    client.retire_workers([victim])
    assert victim not in worker_addresses(client)


def test_in_process_workers_use_one_blas_thread_while_running(client, data):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    X, y, w = data

    def blas_threads():
        return [
            pool["num_threads"]
            for pool in threadpoolctl.threadpool_info()
            if pool["user_api"] == "blas"
        ]

    before = blas_threads()
    code = make_code("cyclic-repetition", 4, 1, random_state=0)
    with CodedGradient(client, code, X, y, "log_loss") as cg:
        cg(w)
        during = blas_threads()
    after = blas_threads()
    assert all(n == 1 for n in during)
    assert after == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_coded_mini_batches_are_exact_for_the_batch_and_unbiased(
    transport, client, data
):
    X, y, w = data
    expected = reference(X, y, w)
    uncoded = make_code("uncoded", N_WORKERS, 0)
    coded = make_code(
        "gaussian-mds", N_WORKERS, 2, 1, random_state=0
    )  # same 6 partitions
    slow = SlowWorkers(2, delay=2.0, random_state=0)
    with (
        CodedGradient(client, uncoded, X, y, "log_loss", transport=transport) as plain,
        CodedGradient(
            client, coded, X, y, "log_loss", transport=transport, straggler_model=slow
        ) as cg,
    ):
        rounds = []
        for _ in range(40):
            batch = cg(w, batch_fraction=0.2, batch_seed=7)
            assert_close(batch, plain(w, batch_fraction=0.2, batch_seed=7), rtol=1e-9)
            rounds.append(batch[1])
        with pytest.raises(ValueError, match="batch_fraction"):
            cg(w, batch_fraction=1.5)
    # each round estimates the full sum without bias; 40 rounds average close to it
    spread = np.linalg.norm(np.std(rounds, axis=0)) / np.sqrt(len(rounds))
    assert np.linalg.norm(np.mean(rounds, axis=0) - expected[1]) < 4 * spread
    assert not np.allclose(rounds[0], rounds[1])  # a new batch each round
