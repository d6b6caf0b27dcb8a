"""Split and adaptive rounds on a real LocalCluster: exact, recorded, fault-tolerant."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dask_gradcode import CodedSGDClassifier, plot_rounds
from dask_gradcode.codes import make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.plotting import rounds_matrix
from dask_gradcode.scheduler import (
    TRANSPORTS,
    CodedGradient,
    WorkerErrorWarning,
    WorkerFailureWarning,
    executors,
)
from dask_gradcode.scheduler.rounds import CollectedSplit
from dask_gradcode.stragglers import FailingWorkers, SlowWorkers
from tests.conftest import binary_problem

# The shared `client` has N_WORKERS workers.
N_WORKERS = 6


@pytest.fixture(scope="module")
def data():
    return binary_problem(seed=3, n_samples=1203, n_features=7, noise=False)


def expected(X, y, w, sample_weight=None):
    return get_objective("log_loss").value_and_gradient(w, X, y, sample_weight)


def assert_exact(result, reference):
    assert result[0] == pytest.approx(reference[0], rel=1e-10)
    np.testing.assert_allclose(result[1], reference[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("scheme", ["gaussian-mds", "cyclic-repetition"])
@pytest.mark.parametrize("policy", ["speculative", "adaptive"])
def test_split_and_adaptive_rounds_are_exact(client, data, scheme, policy, transport):
    X, y, w = data
    weights = np.random.default_rng(0).uniform(0.5, 2, len(y))
    code = make_code(scheme, N_WORKERS, 2, 1, random_state=0)
    with CodedGradient(
        client,
        code,
        X,
        y,
        "log_loss",
        sample_weight=weights,
        policy=policy,
        transport=transport,
    ) as cg:
        for _ in range(6):
            assert_exact(cg(w), expected(X, y, w, weights))
    plans = [r.plan for r in cg.history]
    assert plans[0] == "split"
    if policy == "speculative":
        assert set(plans) == {"split"}
    for record in cg.history:
        assert record.exact
        if record.plan == "split":
            assert set(record.response_seconds) <= set(range(N_WORKERS))
            assert record.bytes_received == 8 * (1 + X.shape[1]) * N_WORKERS


def test_split_mini_batches_equal_the_coded_ones(client, data):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 2, 1, random_state=0)
    results = {}
    for policy in ("static", "speculative"):
        with CodedGradient(client, code, X, y, "log_loss", policy=policy) as cg:
            results[policy] = [
                cg(w, batch_fraction=0.3, batch_seed=5) for _ in range(3)
            ]
    for coded, split in zip(results["static"], results["speculative"], strict=True):
        assert_exact(split, coded)
    assert results["static"][0][0] != results["static"][1][0]  # new batch per round


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("scheme", "stragglers"),
    # cyclic repetition: worker 2 holds two partitions, so its rows are backed
    # up in pieces by two other workers, all of which must be in.
    [("gaussian-mds", 2), ("cyclic-repetition", 1)],
)
def test_a_late_worker_is_backed_up_and_recorded(
    client, data, scheme, stragglers, transport
):
    X, y, w = data
    code = make_code(scheme, N_WORKERS, stragglers, 1, random_state=0)
    model = SlowWorkers(workers=[2], delay=5.0)  # far later than any backup
    with CodedGradient(
        client,
        code,
        X,
        y,
        "log_loss",
        straggler_model=model,
        policy="speculative",
        transport=transport,
    ) as cg:
        for _ in range(2):
            assert_exact(cg(w), expected(X, y, w))
    for record in cg.history:
        assert record.plan == "split"
        assert 2 in record.backups and 2 not in record.response_seconds
        assert record.stragglers == (2,)
        if scheme == "cyclic-repetition":
            assert len(record.backups[2]) == 2  # in pieces, on two holders
        assert record.wall_seconds < 4.0  # nobody waited for the delay


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_raising_worker_is_backed_up_with_a_warning(client, data, transport):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 2, 1, random_state=0)
    # The others are late, so the error arrives before any share: its rows
    # queue behind a busy holder.
    model = FailingWorkers([4], iterations=[0], others_delay=0.3)
    with (
        CodedGradient(
            client,
            code,
            X,
            y,
            "log_loss",
            straggler_model=model,
            policy="speculative",
            transport=transport,
        ) as cg,
        pytest.warns(WorkerErrorWarning, match="worker 4"),
    ):
        assert_exact(cg(w), expected(X, y, w))
    record = cg.history[0]
    assert record.plan == "split" and 4 in record.backups
    assert "MemoryError" in record.errors[4]


def test_an_uncovered_split_round_runs_again_coded(client, data, monkeypatch):
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 2, 1, random_state=0)

    def nothing_covered(shares, submit, code, **kwargs):
        return CollectedSplit(lost={0, 1, 2})

    monkeypatch.setattr(executors, "collect_split", nothing_covered)
    with (
        CodedGradient(client, code, X, y, "log_loss", policy="speculative") as cg,
        pytest.warns(WorkerFailureWarning, match="running round 0 coded"),
    ):
        assert_exact(cg(w), expected(X, y, w))
    assert cg.history[0].plan == "coded" and cg.history[0].attempts == 2


def test_replies_that_miss_rows_are_never_summed(client, data, monkeypatch):
    """A split round whose replies do not cover each row once runs coded."""
    X, y, w = data
    code = make_code("gaussian-mds", N_WORKERS, 2, 1, random_state=0)
    real = executors.collect_split

    def one_share_counted_twice(shares, submit, code, **kwargs):
        collected = real(shares, submit, code, **kwargs)
        owner = next(iter(collected.covered))
        collected.covered[owner] = collected.covered[owner] * 2
        return collected

    monkeypatch.setattr(executors, "collect_split", one_share_counted_twice)
    with (
        CodedGradient(client, code, X, y, "log_loss", policy="speculative") as cg,
        pytest.warns(WorkerFailureWarning, match="rows instead of"),
    ):
        assert_exact(cg(w), expected(X, y, w))
    assert cg.history[0].plan == "coded" and cg.history[0].attempts == 2


def test_adaptive_reaches_the_estimator_and_the_plot(client, data, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    X, y, _ = data
    model = SlowWorkers(workers=[1], factor=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = CodedSGDClassifier(
            loss="log_loss",
            n_workers=N_WORKERS,
            n_stragglers=2,
            scheme="gaussian-mds",
            policy="adaptive",
            straggler_model=model,
            max_iter=8,
            random_state=0,
        ).fit(X, y)
    assert len(clf.rounds_) >= len(clf.history_)
    assert {r.plan for r in clf.rounds_} <= {"coded", "split"}
    matrix = rounds_matrix(clf.rounds_)
    assert matrix["response"].shape == (N_WORKERS, len(clf.rounds_))
    figure = plot_rounds(clf.rounds_, title="test")
    figure.savefig(tmp_path / "rounds.png")
    assert (tmp_path / "rounds.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="policy"):
        CodedSGDClassifier(policy="fastest", n_workers=N_WORKERS).fit(X, y)


def test_rounds_matrix_marks_late_and_failed_workers():
    records = [
        {
            "workers": ("a", "b", "c"),
            "response_seconds": {0: 0.1, 2: 0.2},
            "stragglers": (1,),
            "failed": (),
            "plan": "coded",
            "wall_seconds": 0.2,
        },
        {
            "workers": ("a", "c"),  # b is gone: re-planned on a, c
            "response_seconds": {0: 0.1},
            "stragglers": (),
            "failed": (1,),
            "plan": "split",
            "wall_seconds": 0.3,
        },
    ]
    matrix = rounds_matrix(records)
    assert matrix["workers"] == ["a", "b", "c"]
    assert matrix["late"][:, 0].tolist() == [False, True, False]
    assert matrix["failed"][:, 1].tolist() == [False, False, True]  # c, by address
    assert np.isnan(matrix["response"][2, 1]) and matrix["response"][2, 0] == 0.2
    assert matrix["plan"] == ["coded", "split"]
    with pytest.raises(TypeError, match="RoundRecord"):
        rounds_matrix([42])


def test_a_bad_policy_is_refused(client, data):
    X, y, _ = data
    code = make_code("gaussian-mds", N_WORKERS, 2, 1, random_state=0)
    with pytest.raises(ValueError, match="adaptive"):
        CodedGradient(client, code, X, y, "log_loss", policy="fastest")


@pytest.mark.parametrize(
    ("order", "used_by"),
    [
        (["a", "own", "b"], (0,)),  # the own reply completes first
        (["a", "b", "own"], (1, 2)),  # every piece of the backup first
        (["b", "a", "own"], (2, 1)),
    ],
)
def test_a_backed_up_share_counts_once_and_whole(order, used_by):
    from dask_gradcode.scheduler.rounds import _take_share
    from dask_gradcode.scheduler.worker import Reply

    class Done:
        status = "finished"

    result = CollectedSplit(backups={0: [1, 2]})
    replies = {
        "own": (0, Reply(np.array([10.0]), 0.0, 0.0, rows=10)),
        "a": (1, Reply(np.array([4.0]), 0.0, 0.0, rows=4)),
        "b": (2, Reply(np.array([6.0]), 0.0, 0.0, rows=6)),
    }
    for arrival, name in enumerate(order):
        worker, reply = replies[name]
        _take_share(Done(), reply, (worker, 0), result, float(arrival))
    assert result.computed_by[0] == used_by
    assert sum(r.rows for r in result.covered[0]) == 10
    assert sum(r.message[0] for r in result.covered[0]) == 10.0


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "lbfgs"},
        {"solver": "gd", "learning_rate": "constant", "eta0": 0.1, "batch_size": 300},
    ],
    ids=["lbfgs", "mini-batch gd"],
)
def test_the_policy_changes_the_time_not_the_model(client, data, params):
    """Every policy's fit takes the iterates of the static code, to rounding."""
    X, y, _ = data
    coefs = {}
    for policy in ("static", "adaptive", "speculative"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = CodedSGDClassifier(
                loss="log_loss",
                n_workers=N_WORKERS,
                n_stragglers=1,
                scheme="cyclic-repetition",
                policy=policy,
                straggler_model=SlowWorkers(workers=[2], factor=3),
                max_iter=6,
                tol=None,
                random_state=0,
                **params,
            ).fit(X, y)
        coefs[policy] = np.concatenate([model.coef_.ravel(), model.intercept_])
        if policy == "speculative":
            assert {r.plan for r in model.rounds_} == {"split"}
    for policy in ("adaptive", "speculative"):
        np.testing.assert_allclose(
            coefs[policy], coefs["static"], rtol=1e-8, atol=1e-10
        )
