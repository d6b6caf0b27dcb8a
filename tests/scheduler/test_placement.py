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
