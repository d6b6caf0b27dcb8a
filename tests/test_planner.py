"""The planner ranks candidate codes by simulated iteration time."""

from __future__ import annotations

import numpy as np
import pytest

from dask_gradcode import plan
from dask_gradcode.planner import Candidate, candidates, default_stragglers

N = 12


def compute_bound(round_: int, loads: np.ndarray) -> np.ndarray:
    """No stragglers: a round costs its computation, the same on every worker."""
    return 0.01 + 10.0 * np.asarray(loads, dtype=float)


def two_slow_workers(round_: int, loads: np.ndarray) -> np.ndarray:
    """Two different workers 5 s late every round; computation nearly free."""
    times = 0.1 + 0.1 * np.asarray(loads, dtype=float)
    slow = [(2 * round_) % N, (2 * round_ + 5) % N]
    times[slow] += 5.0
    return times


def test_the_candidates_cover_every_scheme_s_m_and_policy():
    chosen = candidates(N, stragglers=(0, 1, 3))
    assert Candidate("uncoded", 0) in chosen
    assert Candidate("gaussian-mds", 3, 4) in chosen
    assert Candidate("cyclic-repetition", 1, 1, "adaptive") in chosen
    assert not any(c.policy != "static" and c.comm_reduction != 1 for c in chosen)
    assert not any(
        c.scheme == "ignore-stragglers" and c.policy != "static" for c in chosen
    )
    assert default_stragglers(256) == (0, 1, 2, 4, 8, 15, 25, 40, 51)
    assert default_stragglers(10) == (0, 1, 2, 4, 8)


def test_when_computation_dominates_the_planner_says_no_code():
    table = plan(latency=compute_bound, n_workers=N, stragglers=(1, 2), rounds=4)
    assert table.best.scheme == "uncoded"
    assert "use no code" in table.advice
    uncoded = table.uncoded
    assert uncoded is not None
    assert uncoded.mean_iteration_s == pytest.approx(0.01 + 10.0 / N)
    # Every replica costs computation: a static code's round is its load's
    # time; split rounds compute every row once (uncoded load).
    for row in table:
        if row.policy == "static":
            expected = pytest.approx(0.01 + 10.0 * row.load, rel=1e-4)
        else:  # shares are rounded to whole rows
            expected = pytest.approx(0.01 + 10.0 / N, rel=1e-2)
        assert row.mean_iteration_s == expected


def test_with_stragglers_the_planner_codes_just_enough():
    table = plan(latency=two_slow_workers, n_workers=N, stragglers=(1, 2, 3), rounds=6)
    best = table.best
    assert best.scheme != "uncoded" and best.exact
    assert best.mean_iteration_s < 1.0 < table.uncoded.mean_iteration_s
    by_key = {(r.scheme, r.n_stragglers, r.comm_reduction, r.policy): r for r in table}
    assert by_key["gaussian-mds", 2, 1, "static"].mean_iteration_s < 1.0
    assert "faster per iteration than uncoded" in table.advice
    ranked = [row.predicted_s for row in table]
    assert ranked == sorted(ranked)
    assert {r["scheme"] for r in table.records()} >= {"gaussian-mds", "uncoded"}


def test_candidates_that_do_not_build_are_listed_with_the_reason():
    table = plan(
        latency=compute_bound,
        n_workers=N,
        stragglers=(4,),
        schemes=("uncoded", "fractional-repetition"),
        policies=("static",),
        rounds=2,
    )
    assert [c.scheme for c, _ in table.skipped] == ["fractional-repetition"]
    assert table.skipped[0][1]  # says why (5 does not divide 12)


def test_plan_needs_one_source_of_latencies():
    with pytest.raises(ValueError, match="exactly one of profile or latency"):
        plan()
    with pytest.raises(ValueError, match="n_workers is needed"):
        plan(latency=compute_bound)
