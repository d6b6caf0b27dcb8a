"""The worker's round function, called directly on shards built here (no cluster)."""

from __future__ import annotations

import numpy as np
import pytest

from dask_gradcode.codes import make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler import worker as worker_module
from dask_gradcode.scheduler.protocol import Batch, RoundContext, RoundRequest
from dask_gradcode.scheduler.worker import (
    as_block,
    build_shard,
    is_dropped,
    mark_decoded,
    note_submission,
    run_round,
)
from dask_gradcode.stragglers import SlowWorkers
from tests.conftest import binary_problem

X, Y, W = binary_problem(31, 120, 4)
CODE = make_code("cyclic-repetition", 4, 1, random_state=0)
BOUNDS = CODE.partition_bounds(len(Y))
OBJECTIVE = get_objective("log_loss")


def shard_of(worker: int):
    partitions = CODE.partitions(worker)
    blocks = [
        as_block(X[BOUNDS[j] : BOUNDS[j + 1]], Y[BOUNDS[j] : BOUNDS[j + 1]], None)
        for j in partitions
    ]
    return build_shard(
        CODE.worker_encoder(worker),
        partitions,
        [int(BOUNDS[j]) for j in partitions],
        *blocks,
    )


def context(worker: int = 0, **models) -> RoundContext:
    return RoundContext(OBJECTIVE, "token", worker, CODE.n_workers, **models)


def reference(rows: slice = slice(None)) -> np.ndarray:
    loss, gradient = OBJECTIVE.value_and_gradient(W, X[rows], Y[rows])
    return np.concatenate([[loss], gradient])


def test_coded_replies_of_any_decodable_set_give_the_full_sums():
    replies = {
        w: run_round(shard_of(w), context(w), RoundRequest(0, 0, weights=W))
        for w in range(CODE.n_workers)
    }
    for skipped in range(CODE.n_workers):
        messages = {w: r.message for w, r in replies.items() if w != skipped}
        np.testing.assert_allclose(CODE.decode(messages, 1 + W.size), reference())
    assert replies[0].rows == sum(BOUNDS[j + 1] - BOUNDS[j] for j in CODE.partitions(0))
    assert replies[0].injected_delay == 0.0


def test_a_split_request_sums_its_slices_only():
    shard = shard_of(1)
    first = shard.first_rows[0]
    request = RoundRequest(0, 0, slices=((0, 2, 9),), weights=W)
    reply = run_round(shard, context(1), request)
    np.testing.assert_allclose(reply.message, reference(slice(first + 2, first + 9)))
    assert reply.rows == 7
    assert request.kind == "split" and RoundRequest(0, 0).kind == "coded"


def test_weights_beside_the_request_replace_those_inside_it():
    shard = shard_of(0)
    inside = run_round(shard, context(), RoundRequest(0, 0, weights=W))
    beside = run_round(shard, context(), RoundRequest(0, 0), W)
    np.testing.assert_array_equal(inside.message, beside.message)
    with pytest.raises(ValueError, match="needs weights"):
        run_round(shard, context(), RoundRequest(0, 0))


def test_a_mini_batch_request_is_the_same_batch_on_every_holder():
    batch = Batch(seed=3, fraction=0.5)
    replies = {
        w: run_round(shard_of(w), context(w), RoundRequest(2, 0, batch, weights=W))
        for w in range(CODE.n_workers)
    }
    full = {w: r.message for w, r in replies.items()}
    without_0 = {w: m for w, m in full.items() if w != 0}
    np.testing.assert_allclose(
        CODE.decode(full, 1 + W.size), CODE.decode(without_0, 1 + W.size)
    )
    assert not np.allclose(CODE.decode(full, 1 + W.size), reference())


def test_an_overflowing_split_sum_names_its_cause():
    squares = RoundContext(get_objective("squared_error"), "token", 0, CODE.n_workers)
    huge = np.full_like(W, 1e200)
    request = RoundRequest(0, 0, slices=((0, 0, 5),), weights=huge)
    with (
        np.errstate(all="ignore"),
        pytest.raises(FloatingPointError, match="StandardScaler"),
    ):
        run_round(shard_of(0), squares, request)


def test_the_straggler_model_sees_the_contexts_physical_worker():
    slow = SlowWorkers(workers=[3], delay=0.01)
    shard = shard_of(0)
    request = RoundRequest(0, 0, weights=W)
    assert run_round(shard, context(3, straggler_model=slow), request).injected_delay
    assert not run_round(
        shard, context(0, straggler_model=slow), request
    ).injected_delay
    assert context(straggler_model=slow).sleeps and not context().sleeps


def _dropping_context(token: str, after_calls: int | None = None) -> RoundContext:
    objective = OBJECTIVE if after_calls is None else _DecodedDuring(token, after_calls)
    return RoundContext(objective, token, 0, CODE.n_workers)


class _DecodedDuring(type(OBJECTIVE)):  # type: ignore[misc]
    """The objective, marking the round decoded after ``after_calls`` partitions."""

    def __init__(self, token: str, after_calls: int) -> None:
        super().__init__()
        self.token, self.after_calls, self.calls = token, after_calls, 0

    def value_and_gradient(self, w, X, y, sample_weight=None):
        self.calls += 1
        if self.calls == self.after_calls:
            mark_decoded(self.token, 0)  # the client decoded without us
        return super().value_and_gradient(w, X, y, sample_weight)


def test_a_round_that_is_over_is_not_computed():
    shard = shard_of(0)
    assert len(shard.blocks) > 1
    mark_decoded("dropped-before", 0)
    reply = run_round(
        shard, _dropping_context("dropped-before"), RoundRequest(0, 0, weights=W)
    )
    assert reply.dropped and reply.message.size == 0 and reply.rows == 0
    # a newer submission drops the older ones still queued on the worker
    note_submission("superseded", 3)
    assert is_dropped("superseded", 2) and not is_dropped("superseded", 3)
    old = run_round(
        shard, _dropping_context("superseded"), RoundRequest(0, 2, weights=W)
    )
    assert old.dropped
    current = run_round(
        shard, _dropping_context("superseded"), RoundRequest(1, 3, weights=W)
    )
    assert not current.dropped and current.rows > 0


def test_a_running_round_stops_at_the_next_partition_once_decoded():
    context = _dropping_context("dropped-during", after_calls=1)
    reply = run_round(shard_of(0), context, RoundRequest(0, 0, weights=W))
    assert reply.dropped
    assert context.objective.calls == 1  # the second partition was never computed


def test_a_large_block_is_computed_in_chunks_that_a_decoded_round_stops(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(worker_module, "CHUNK_ELEMENTS", 1024 * X.shape[1])
    rows = 3000
    X_big = np.tile(X, (rows // len(Y) + 1, 1))[:rows]
    y_big = np.tile(Y, rows // len(Y) + 1)[:rows]
    code = make_code("fractional-repetition", 2, 1, random_state=0)
    shard = build_shard(code.worker_encoder(0), [0], [0], as_block(X_big, y_big, None))
    whole = run_round(
        shard,
        RoundContext(OBJECTIVE, "chunked", 0, 2),
        RoundRequest(0, 0, weights=W, slices=((0, 0, rows),)),
    )
    loss, gradient = OBJECTIVE.value_and_gradient(W, X_big, y_big)
    np.testing.assert_allclose(whole.message, np.concatenate([[loss], gradient]))
    context = _dropping_context("chunk-dropped", after_calls=1)
    reply = run_round(
        shard, context, RoundRequest(0, 0, weights=W, slices=((0, 0, rows),))
    )
    assert reply.dropped
    assert context.objective.calls == 1  # its 2 other chunks were never computed
