"""Workers that send wrong numbers, on separate `dask worker` processes.

One worker's partial gradients are silently wrong (scaled, zeroed or noisy,
injected with :class:`~dask_gradcode.faults.WrongResults`).  The code's own
redundancy must catch it: the worker is named, dropped within a few rounds,
every gradient returned is exact, and a fit ends where a clean one does.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from dask_gradcode.bench.processes import ProcessCluster
from dask_gradcode.codes import make_code
from dask_gradcode.faults import WrongResults
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler import TRANSPORTS, CodedGradient, IntegrityWarning
from dask_gradcode.solvers import minimize
from tests.conftest import binary_problem

N = 5

pytestmark = [
    pytest.mark.worker_processes,
    pytest.mark.filterwarnings("ignore::dask_gradcode.scheduler.WorkerFailureWarning"),
]


@pytest.fixture(scope="module")
def cluster():
    with ProcessCluster(N) as processes:
        yield processes


@pytest.fixture(scope="module")
def problem():
    X, y, w = binary_problem(
        seed=1, n_samples=2000, n_features=8, positive_rate=0.5, weight_scale=0.3
    )
    return X, y, w, get_objective("log_loss").value_and_gradient(w, X, y)


def coded(cluster, problem, **options):
    X, y, _, _ = problem
    code = make_code("cyclic-repetition", N, 1, random_state=0)
    return CodedGradient(cluster.client, code, X, y, "log_loss", **options)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["scale", "zeros", "noise"])
def test_a_wrong_worker_is_named_dropped_and_never_used(
    cluster, problem, mode, transport
):
    _, _, w, (loss, gradient) = problem
    with (
        warnings.catch_warnings(record=True) as caught,
        coded(
            cluster,
            problem,
            transport=transport,
            fault_model=WrongResults([2], mode=mode),
        ) as cg,
    ):
        warnings.simplefilter("always")
        faulty = cg.workers[2]
        results = [cg(w) for _ in range(20)]
        found = [c for c in caught if issubclass(c.category, IntegrityWarning)]
        assert len(found) == 1, [str(c.message) for c in caught]
        assert faulty in str(found[0].message)
        assert faulty not in cg.workers  # dropped for the rest of the fit
        caught_in = next(i for i, r in enumerate(cg.history) if r.attempts > 1)
        for index, (record, (got_loss, got_gradient)) in enumerate(
            zip(cg.history, results, strict=True)
        ):
            right = got_loss == pytest.approx(loss, rel=1e-9) and np.allclose(
                got_gradient, gradient, rtol=1e-9, atol=1e-12
            )
            # Before it was caught, a wrong gradient is never called verified;
            # from the round that caught it on, every gradient is right.
            assert right or (index < caught_in and not record.verified)
            if index >= caught_in:
                assert right and faulty not in record.workers


def test_without_faults_rounds_verify_and_nobody_is_dropped(cluster, problem):
    _, _, w, _ = problem
    with (
        warnings.catch_warnings(record=True) as caught,
        coded(cluster, problem) as cg,
    ):
        warnings.simplefilter("always")
        for _ in range(20):
            cg(w)
        assert not [c for c in caught if issubclass(c.category, IntegrityWarning)]
        assert cg.code.n_workers == N
        verified = [r for r in cg.history if r.verified]
        assert verified, "no round had a spare reply in its grace"
        assert all(r.discrepancy <= 1e-7 for r in verified)
        assert all(r.checked_replies for r in verified)


def test_a_fit_with_a_wrong_worker_ends_where_a_clean_one_does(cluster):
    """Wrong from round 3: unchecked rounds may decode it before a check catches it.

    The solver, told by ``faults_found``, forgets what it saw (its best
    objective and memory), so the fit ends at the clean fit's optimum
    whichever round caught the worker.
    """
    X, y = make_classification(2000, 10, n_informative=6, random_state=0)

    def fit(**options):
        code = make_code("cyclic-repetition", N, 1, random_state=0)
        with CodedGradient(cluster.client, code, X, y, "log_loss", **options) as cg:
            result = minimize(
                lambda v: cg(v),
                np.zeros(X.shape[1]),
                tol=1e-12,
                max_iter=200,
                invalidations=lambda: cg.faults_found,
            )
            assert len(cg.history) > 10  # a full check came (VERIFY_EVERY)
            return result.coef, cg.faults_found

    clean, none_found = fit()
    with pytest.warns(IntegrityWarning, match="wrong"):
        dirty, found = fit(
            fault_model=WrongResults([0], mode="scale", first_iteration=3)
        )
    assert (none_found, found) == (0, 1)
    np.testing.assert_allclose(dirty, clean, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_periodic_audit_catches_a_wrong_worker_of_an_uncoded_plan(
    cluster, problem, transport
):
    X, y, w, (loss, gradient) = problem
    code = make_code("uncoded", N, 0, random_state=0)
    with (
        warnings.catch_warnings(record=True) as caught,
        CodedGradient(
            cluster.client,
            code,
            X,
            y,
            "log_loss",
            transport=transport,
            audit_every=2,
            fault_model=WrongResults([3], mode="scale"),
        ) as cg,
    ):
        warnings.simplefilter("always")
        for _ in range(2 * N):  # each responder's turn comes within 2 n rounds
            cg(w)
        got_loss, got_gradient = cg(w)
    found = [c for c in caught if issubclass(c.category, IntegrityWarning)]
    assert len(found) == 1 and "recomputed the message" in str(found[0].message)
    assert cg.code.n_workers == N - 1  # re-planned without it
    assert got_loss == pytest.approx(loss, rel=1e-9)
    np.testing.assert_allclose(got_gradient, gradient, rtol=1e-9, atol=1e-12)
    assert not any(r.verified for r in cg.history)  # nothing to compare: unverified


def test_audit_every_is_checked(cluster, problem):
    X, y, _, _ = problem
    code = make_code("uncoded", N, 0, random_state=0)
    with pytest.raises(ValueError, match="audit_every must be a positive int"):
        CodedGradient(cluster.client, code, X, y, "log_loss", audit_every=0)
