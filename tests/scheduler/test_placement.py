"""Placement's transfers: straight from the client, relayed only when it must."""

from __future__ import annotations

import pytest

from dask_gradcode.scheduler.placement import _send


class _Client:
    """Records each scatter; a direct one fails as an unreachable worker does."""

    def __init__(self, direct_error: type[Exception] | None) -> None:
        self.direct_error = direct_error
        self.calls: list[bool] = []

    def _scatter(self, *args, **kwargs):  # the name sync() is handed
        raise AssertionError("called through sync")

    def sync(self, function, shard, **options):
        self.calls.append(options["direct"])
        if options["direct"] and self.direct_error is not None:
            raise self.direct_error("no route to the worker")
        return f"future of {shard}"


def test_a_shard_goes_straight_to_its_worker():
    client = _Client(direct_error=None)
    assert _send(client, "shard", "tcp://w:1", 5.0) == "future of shard"
    assert client.calls == [True]


def test_a_worker_the_client_cannot_reach_is_reached_through_the_scheduler():
    client = _Client(direct_error=OSError)
    assert _send(client, "shard", "tcp://w:1", 5.0) == "future of shard"
    assert client.calls == [True, False]


def test_a_hung_worker_is_not_retried_through_the_scheduler():
    client = _Client(direct_error=TimeoutError)
    with pytest.raises(TimeoutError):
        _send(client, "shard", "tcp://w:1", 5.0)
    assert client.calls == [True]


def _slow_blocks(X, seconds):
    """``X`` as a dask array whose every chunk takes ``seconds`` to compute."""
    import time

    import dask.array as da

    def slow(block):
        time.sleep(seconds)
        return block

    chunks = (len(X) // 4, X.shape[1])
    return da.from_array(X, chunks=chunks).map_blocks(slow, dtype=X.dtype)


def test_a_slow_dask_graph_is_waited_for_not_taken_for_dead_workers(
    client, monkeypatch
):
    import dask.array as da

    from dask_gradcode.codes import make_code
    from dask_gradcode.objectives import get_objective
    from dask_gradcode.scheduler import CodedGradient, layout
    from tests.conftest import binary_problem

    X, y, w = binary_problem(3, 400, 5)
    monkeypatch.setattr(layout, "PLACEMENT_TIMEOUT", 1.0)  # the graph takes 3
    code = make_code("cyclic-repetition", 4, 1, random_state=0)
    X_dask = _slow_blocks(X, 3.0)
    with CodedGradient(
        client, code, X_dask, da.from_array(y, chunks=100), "log_loss"
    ) as cg:
        loss, gradient = cg(w)
    expected = get_objective("log_loss").value_and_gradient(w, X, y)
    assert loss == pytest.approx(expected[0], rel=1e-12)
    assert gradient == pytest.approx(expected[1], rel=1e-9)


def test_a_dask_graph_that_raises_raises_its_own_error(client):
    import dask.array as da

    from dask_gradcode.codes import make_code
    from dask_gradcode.scheduler import CodedGradient
    from tests.conftest import binary_problem

    X, y, _ = binary_problem(3, 400, 5)

    def broken(block):
        raise ValueError("the parquet file is corrupt")

    X_dask = da.from_array(X, chunks=(100, 5)).map_blocks(broken, dtype=X.dtype)
    code = make_code("cyclic-repetition", 4, 1, random_state=0)
    with (
        pytest.raises(ValueError, match="parquet file is corrupt"),
        CodedGradient(client, code, X_dask, da.from_array(y, chunks=100), "log_loss"),
    ):
        pass
