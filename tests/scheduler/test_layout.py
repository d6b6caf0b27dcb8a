"""The layout: placement, physical ids, re-plans and usable workers."""

from __future__ import annotations

import pytest

from dask_gradcode.codes import make_code
from dask_gradcode.objectives import get_objective
from dask_gradcode.scheduler.layout import Layout
from dask_gradcode.scheduler.membership import Membership
from dask_gradcode.scheduler.placement import check_data
from dask_gradcode.scheduler.protocol import RoundContext
from dask_gradcode.scheduler.records import NoWorkersError
from dask_gradcode.scheduler.transports import FuturesTransport
from tests.conftest import binary_problem

N_WORKERS = 5


@pytest.fixture(scope="module")
def data():
    X, y, _ = binary_problem(41, 100, 3)
    return check_data(X, y, None)


class FlakyTransport(FuturesTransport):
    """Reports the given workers as failed at their first bind."""

    def __init__(self, client, fail_once=()):
        super().__init__(client)
        self.fail_once = set(fail_once)
        self.contexts = []

    def bind(self, shards, addresses, contexts):
        super().bind(shards, addresses, contexts)
        self.contexts.append(list(contexts))
        failed = {w for w, a in enumerate(addresses) if a in self.fail_once}
        self.fail_once -= {addresses[w] for w in failed}
        return failed


def make_layout(client, data, code, transport=None):
    warnings = []
    membership = Membership(client, check_interval=0.1, stale_after=5.0)
    membership.refresh(force=True)
    layout = Layout(
        client,
        code,
        data,
        transport=transport or FuturesTransport(client),
        membership=membership,
        context=RoundContext(get_objective("log_loss"), "tok", -1, code.n_workers),
        fit_intercept=False,
        warn=warnings.append,
    )
    return layout, membership, warnings


def test_placement_puts_each_shard_on_its_worker_with_stable_ids(client, data):
    code = make_code("cyclic-repetition", 4, 1, random_state=0)
    layout, membership, warnings = make_layout(client, data, code)
    addresses = membership.usable()
    layout.place(addresses[:4])
    try:
        assert layout.addresses == addresses[:4]
        assert layout.physical_ids() == [0, 1, 2, 3]
        who_has = client.who_has(layout.shards)
        for shard, address in zip(layout.shards, layout.addresses, strict=True):
            assert list(who_has[shard.key]) == [address]
        assert layout.usable() == [0, 1, 2, 3]
        assert sum(layout.partition_rows()) == 100
        # A re-plan keeps the ids of the workers it keeps, and gives new ones
        # to workers placed for the first time.
        layout.replan([addresses[2], addresses[4], addresses[0]], "a test", "replan")
        assert layout.code.n_workers == 3 and layout.planned_workers == 4
        assert layout.physical_ids() == [2, 4, 0]
        assert layout.replanned
        assert "a test; re-planned on 3 workers" in warnings[-1]
        membership.suspect([addresses[4]])
        assert layout.usable() == [0, 2]
        assert layout.gone({0, 1, 2}) == set()
    finally:
        layout.close()
    assert layout.shards == []


def test_workers_that_fail_at_placement_are_planned_out(client, data):
    code = make_code("cyclic-repetition", 4, 1, random_state=0)
    layout, membership, warnings = make_layout(client, data, code)
    addresses = membership.usable()[:4]
    layout._transport = transport = FlakyTransport(client, fail_once=[addresses[1]])
    layout.place(addresses)
    try:
        assert layout.addresses == [addresses[0], addresses[2], addresses[3]]
        assert layout.code.n_workers == 3
        assert "failed while the data was placed" in warnings[0]
        # Ids go to the workers of the placement that succeeded.
        assert [c.worker_id for c in transport.contexts[-1]] == [0, 1, 2]
        assert all(c.token == "tok" for c in transport.contexts[-1])
    finally:
        layout.close()


def test_a_placement_with_no_survivor_raises_no_workers(client, data):
    code = make_code("uncoded", 2, 0)
    layout, membership, _ = make_layout(client, data, code)
    addresses = membership.usable()[:2]
    layout._transport = FlakyTransport(client, fail_once=addresses)
    with pytest.raises(NoWorkersError, match="every worker died or hung"):
        layout.place(addresses)
