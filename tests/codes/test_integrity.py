"""Integrity checks of a round's replies, and locating the wrong worker (no cluster)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dask_gradcode.codes import make_code
from dask_gradcode.codes.integrity import check_replies, locate_faults
from dask_gradcode.faults import WrongResults

# (scheme, n, s, m) built in every test below; the grouped gaussian code with
# s = 1 holds each partition on 2 workers only (no third opinion).
CODES = [
    ("fractional-repetition", 6, 2, 1),
    ("cyclic-repetition", 5, 1, 1),
    ("cyclic-repetition", 7, 3, 1),
    ("gaussian-mds", 6, 2, 1),
    ("gaussian-mds", 8, 2, 2),
    ("cyclic-mds", 12, 3, 1),
    ("ye-abbe", 6, 2, 1),
]


def replies(code, seed, dim=23, wrong=(), mode="scale"):
    rng = np.random.default_rng(seed)
    partials = rng.standard_normal((code.n_partitions, dim)) * rng.uniform(0.1, 10)
    fault = WrongResults(wrong, mode=mode)
    own = {
        w: fault.corrupt(partials[code.partitions(w)], w, 0)
        for w in range(code.n_workers)
    }
    messages = {w: code.encode(w, own[w]) for w in range(code.n_workers)}
    return messages, own


@pytest.mark.parametrize(("scheme", "n", "s", "m"), CODES)
@given(seed=st.integers(0, 2**32 - 1), dropped=st.integers(0, 3))
def test_honest_replies_always_verify(scheme, n, s, m, seed, dropped):
    code = make_code(scheme, n, s, m, random_state=0)
    messages, _ = replies(code, seed)
    for worker in range(min(dropped, s - 1)):  # keep a spare reply
        del messages[worker]
    found = check_replies(code, messages)
    assert found.checked and found.verified, found


@pytest.mark.parametrize(("scheme", "n", "s", "m"), CODES)
@pytest.mark.parametrize("mode", ["scale", "zeros", "noise"])
def test_a_wrong_worker_is_detected_and_named(scheme, n, s, m, mode):
    code = make_code(scheme, n, s, m, random_state=0)
    messages, partials = replies(code, 7, wrong=[1], mode=mode)
    found = check_replies(code, messages)
    assert found.checked and not found.verified
    assert found.discrepancy > found.tolerance
    located = locate_faults(code, partials, messages)
    assert located.faulty == (1,) and not located.undecided


def test_no_spare_reply_is_unverified_not_wrong():
    code = make_code("ye-abbe", 6, 2, 1, random_state=0)
    messages, _ = replies(code, 0, wrong=[1])
    minimal = {w: messages[w] for w in range(4)}  # exactly n - s replies
    found = check_replies(code, minimal)
    assert not found.checked and not found.verified
    uncoded = make_code("uncoded", 3, 0, random_state=0)
    assert not check_replies(uncoded, replies(uncoded, 0)[0]).checked


def test_two_holders_that_disagree_cannot_be_told_apart():
    code = make_code("gaussian-mds", 4, 1, 1, random_state=0)  # pairs of holders
    messages, partials = replies(code, 3, wrong=[1])
    assert not check_replies(code, messages).verified
    located = locate_faults(code, partials, messages)
    assert located.faulty == ()
    assert located.undecided == (code.partitions(1)[0],)


def test_a_wrong_message_with_right_partials_is_named():
    code = make_code("cyclic-repetition", 5, 1, 1, random_state=0)
    messages, partials = replies(code, 4)
    messages[3] = messages[3] * 1.01  # wrong in encoding or transit only
    assert not check_replies(code, messages).verified
    assert locate_faults(code, partials, messages).faulty == (3,)


def test_wrong_results_checks_its_settings():
    with pytest.raises(ValueError, match="mode must be one of"):
        WrongResults([0], mode="flip")
    with pytest.raises(ValueError, match="size must be finite"):
        WrongResults([0], size=-1.0)
    late = WrongResults([2], first_iteration=5)
    values = np.ones(3)
    assert late.corrupt(values, 2, 4) is values
    np.testing.assert_allclose(late.corrupt(values, 2, 5), 1.001)
    np.testing.assert_array_equal(
        WrongResults([2], mode="zeros").corrupt(values, 2, 0), 0
    )
