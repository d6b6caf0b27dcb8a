"""``AutoCode`` runs: uncoded until measured rounds say a code pays, then grown."""

from __future__ import annotations

import numpy as np
import pytest

from dask_gradcode.autocode import AutoCode
from dask_gradcode.objectives import LogLoss
from dask_gradcode.scheduler import CodedGradient
from dask_gradcode.scheduler.autocoding import forget_measurements
from dask_gradcode.stragglers import ComputeTime, SlowWorkers
from tests.conftest import binary_problem

N_WORKERS = 6
ROWS = 3_000
#: Emulated computation of one uncoded partition: 10 ms.
PER_ROW = 0.010 / (ROWS / N_WORKERS)


@pytest.fixture(autouse=True)
def _fresh_memory():
    forget_measurements()
    yield
    forget_measurements()


@pytest.fixture(scope="module")
def data():
    return binary_problem(11, ROWS, 5)


def _rounds(client, data, model, rounds, **spec):
    X, y, w = data
    reference = LogLoss().value_and_gradient(w, X, y)[1]
    with CodedGradient(
        client, AutoCode(**spec), X, y, "log_loss", straggler_model=model
    ) as cg:
        for _ in range(rounds):
            _, gradient = cg(w)
            np.testing.assert_allclose(gradient, reference, rtol=1e-6, atol=1e-9)
    return cg


def test_without_stragglers_the_run_stays_uncoded_and_says_why(client, data):
    cg = _rounds(client, data, ComputeTime(PER_ROW), 12)
    assert {r.scheme for r in cg.history} == {"uncoded"}
    assert cg.code_choice is not None and not cg.code_choice.codes
    assert "no code is predicted" in cg.code.selection_reason
    assert all(r.work_seconds for r in cg.history)  # emulated work is measured


def test_a_slow_worker_every_round_grows_a_code_in_the_background(client, data):
    slow = ComputeTime(PER_ROW, then=SlowWorkers(workers=[2], delay=0.25))
    cg = _rounds(client, data, slow, 16)
    schemes = [r.scheme for r in cg.history]
    assert schemes[0] == "uncoded" and schemes[-1] != "uncoded"
    switch = schemes.index(schemes[-1])
    assert switch >= 5  # measured first, at least FIRST_DECISION rounds
    assert cg.history[switch].replanned
    assert cg.code.n_stragglers >= 1 and cg.code.n_workers == N_WORKERS
    assert "coding pays" in cg.code.selection_reason
    # The coded rounds skip the slow worker.
    assert all(r.wall_seconds < 0.2 for r in cg.history[switch + 1 :])

    # A later run on the same workers remembers them and codes at once.
    again = _rounds(client, data, slow, 2)
    assert again.history[0].scheme == cg.code.scheme
    assert "the last run on these workers settled on" in again.code.selection_reason
    forget_measurements()
    fresh = _rounds(client, data, slow, 1)
    assert fresh.history[0].scheme == "uncoded"


def test_the_spec_names_the_scheme_and_the_policy(client, data):
    slow = ComputeTime(PER_ROW, then=SlowWorkers(workers=[0], delay=0.25))
    cg = _rounds(client, data, slow, 8, scheme="cyclic-repetition", policy="adaptive")
    assert cg.history[-1].scheme == "cyclic-repetition"
