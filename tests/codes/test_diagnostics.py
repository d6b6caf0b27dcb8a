"""The stability measurement of the codes (``dask_gradcode.codes.diagnostics``)."""

from __future__ import annotations

import pytest

from dask_gradcode.codes import make_code
from dask_gradcode.codes.diagnostics import (
    build_times,
    decoding_stability,
    default_stragglers,
    load_against_optimum,
    stability_grid,
    stability_table,
    straggler_sets,
    worst_over_stragglers,
)


def test_straggler_sets_are_exhaustive_when_few_and_distinct_when_sampled():
    import numpy as np

    rng = np.random.default_rng(0)
    assert straggler_sets(5, 2, 100, rng) == [
        (a, b) for a in range(5) for b in range(a + 1, 5)
    ]
    sampled = straggler_sets(30, 3, 50, rng)
    assert len(sampled) == len(set(sampled)) == 50
    assert all(len(s) == 3 for s in sampled)


def test_stability_of_an_exact_code_is_machine_precision():
    code = make_code("gaussian-mds", 12, 2, 2, random_state=0)
    report = decoding_stability(code, n_sets=30, dim=50, random_state=0)
    assert report.n_sets == 30
    assert report.worst_relative_error < 1e-12
    assert report.worst_condition_number >= 1.0
    assert report.cold_decode_seconds > 0 and report.cached_decode_seconds > 0


def test_stability_exposes_vandermonde_ill_conditioning():
    """The effect the benchmark reports, checked at a size where it is unmistakable."""
    ye_abbe = decoding_stability(
        make_code("ye-abbe", 40, 4, 2, verify=False), n_sets=20, random_state=0
    )
    gaussian = decoding_stability(
        make_code("gaussian-mds", 40, 4, 2, random_state=0), n_sets=20, random_state=0
    )
    assert ye_abbe.worst_condition_number > 1e9
    assert ye_abbe.worst_relative_error > 1e-8
    assert ye_abbe.inexact_sets > 0 and not ye_abbe.accepted  # make_code refuses it
    assert gaussian.worst_relative_error < 1e-12
    assert gaussian.inexact_sets == 0 and gaussian.accepted


def test_worst_over_every_s_reports_refusals_and_the_accepted_worst():
    row = worst_over_stragglers("ye-abbe", 24, 1, n_sets=4, dim=8)
    assert row["s_tried"] == 24
    assert 0 < row["s_refused"] < 24
    assert row["worst_error"] > 1e-8 >= row["worst_error_accepted"]


def test_build_times_and_load_against_the_optimum():
    rows = build_times((10, 40), ((0.1, 2),), repeats=1)
    assert [r["n"] for r in rows] == [10, 40]
    assert all(r["optimal"] and r["build_seconds"] > 0 for r in rows)
    loads = load_against_optimum(((1, 1),), ("gaussian-mds",))
    optimal = [r["ratio"] for r in loads if r["scheme"] == "gaussian-mds"]
    assert optimal == [1.0] * 7  # n = 2 .. 8
    equal_share = [r["ratio"] for r in loads if r["scheme"] == "equal-share groups"]
    assert max(equal_share) == pytest.approx(1.5)  # n = 3: one group of 3


@pytest.mark.parametrize(("n", "s"), [(10, 1), (20, 3), (30, 3), (50, 5), (100, 11)])
def test_default_stragglers_keep_n_minus_s_odd(n, s):
    assert default_stragglers(n) == s


def test_grid_and_table_cover_each_scheme_once_per_setting():
    reports = stability_grid((10,), (1, 2), n_sets=5)
    assert [(r.scheme, r.comm_reduction) for r in reports] == [
        ("ye-abbe", 1),
        ("gaussian-mds", 1),
        ("cyclic-mds", 1),
        ("ye-abbe", 2),
        ("gaussian-mds", 2),
    ]
    table = stability_table(reports).splitlines()
    assert len(table) == 2 + len(reports)
    assert table[2].startswith("| ye-abbe | 10 | 1 | 1 | 2 | yes |")
