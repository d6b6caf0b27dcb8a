"""Mostly-zero messages travel as their nonzeros and decode to the same sum."""

from __future__ import annotations

import numpy as np
import pytest

from dask_gradcode.codes import SparseMessage, make_code, sparse_or_dense
from dask_gradcode.codes._sparse import SPARSE_MIN_LENGTH


def test_only_long_mostly_zero_messages_go_sparse():
    short = np.zeros(SPARSE_MIN_LENGTH - 1)
    assert sparse_or_dense(short) is short
    dense = np.ones(SPARSE_MIN_LENGTH)
    assert sparse_or_dense(dense) is dense
    vector = np.zeros(3 * SPARSE_MIN_LENGTH)
    vector[[3, 700, 9000]] = [1.0, -2.0, 0.5]
    message = sparse_or_dense(vector)
    assert isinstance(message, SparseMessage)
    assert message.indices.tolist() == [3, 700, 9000] and len(message) == vector.size
    assert message.nbytes < vector.nbytes / 100
    np.testing.assert_array_equal(message.toarray(), vector)


@pytest.mark.parametrize(
    ("scheme", "s", "m"),
    [
        ("uncoded", 0, 1),
        ("fractional-repetition", 1, 1),
        ("cyclic-repetition", 2, 1),
        ("gaussian-mds", 2, 2),
    ],
)
def test_sparse_messages_decode_to_the_dense_decode(scheme, s, m):
    n, dim = 6, 20_000
    code = make_code(scheme, n, s, m, random_state=0)
    rng = np.random.default_rng(1)
    partials = np.zeros((code.n_partitions, dim))
    for j in range(code.n_partitions):  # each partition touches few columns
        columns = rng.choice(dim, 40, replace=False)
        partials[j, columns] = rng.standard_normal(40)
    messages = {w: code.encode(w, partials[code.partitions(w)]) for w in range(n)}
    responders = list(range(s, n))
    dense = code.decode({w: messages[w] for w in responders}, dim=dim)
    sparse = {w: sparse_or_dense(messages[w]) for w in responders}
    if m == 1:  # m > 1 mixes every column into each sub-vector: dense again
        assert all(isinstance(v, SparseMessage) for v in sparse.values())
    np.testing.assert_allclose(
        code.decode(sparse, dim=dim), dense, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(dense, partials.sum(axis=0), rtol=1e-9, atol=1e-12)


def test_a_sparse_message_with_nan_names_its_worker():
    code = make_code("uncoded", 2, 0)
    bad = SparseMessage(np.array([1], np.int32), np.array([np.nan]), 5000)
    good = SparseMessage(np.array([2], np.int32), np.array([1.0]), 5000)
    with pytest.raises(ValueError, match="worker 0 contains NaN"):
        code.decode({0: bad, 1: good}, dim=5000)
