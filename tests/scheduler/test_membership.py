"""Membership from the scheduler's answers (no cluster: answers are given)."""

from __future__ import annotations

import time

import pytest

from dask_gradcode.scheduler.membership import Membership
from dask_gradcode.scheduler.records import WorkerFailureWarning


def membership(stale_after: float = 0.2) -> Membership:
    return Membership(None, check_interval=0.05, stale_after=stale_after)  # type: ignore[arg-type]


def test_a_paused_worker_is_out_of_the_rounds_and_named_once():
    view = membership()
    with pytest.warns(WorkerFailureWarning, match="tcp://b:1 is paused"):
        view._update({"tcp://a:1": (1.0, "running"), "tcp://b:1": (1.0, "paused")}, 0.0)
    assert view.responsive("tcp://a:1") and not view.responsive("tcp://b:1")
    view._update({"tcp://a:1": (2.0, "running"), "tcp://b:1": (2.0, "paused")}, 0.1)
    view._update({"tcp://a:1": (3.0, "running"), "tcp://b:1": (3.0, "running")}, 0.2)
    assert view.responsive("tcp://b:1")  # resumed


def test_heartbeats_are_judged_at_the_schedulers_last_answer():
    view = membership(stale_after=0.2)
    now = time.monotonic()
    view._update({"tcp://a:1": (1.0, "running"), "tcp://b:1": (1.0, "running")}, now)
    # The scheduler keeps answering: a's beat moves, b's not for too long.
    for step in (1, 2, 3):
        beats = {"tcp://a:1": (1.0 + step, "running"), "tcp://b:1": (1.0, "running")}
        view._update(beats, now + 0.1 * step)
    assert view.responsive("tcp://a:1") and not view.responsive("tcp://b:1")
    # Then it stops answering: however long, nobody becomes stale for that.
    view.silent_since = now + 0.4
    assert view.responsive("tcp://a:1") and view.responsive("tcp://b:1")
    # Back after a silence: staleness counts from its return, not before.
    later = now + 5.0
    beats = {"tcp://a:1": (4.0, "running"), "tcp://b:1": (1.0, "running")}
    view._update(beats, later)
    assert view.responsive("tcp://a:1") and view.responsive("tcp://b:1")
