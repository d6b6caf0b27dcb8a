"""A run's settings and a round's arguments, each checked in one place."""

from __future__ import annotations

import numpy as np
import pytest

from dask_gradcode.scheduler.plans import AdaptivePolicy, StaticPolicy, make_policy
from dask_gradcode.scheduler.protocol import Batch
from dask_gradcode.scheduler.settings import RunSettings, check_batch, check_weights
from dask_gradcode.scheduler.transports import check_transport
from dask_gradcode.stragglers import Bandwidth


def test_defaults_are_checked_and_normalised():
    settings = RunSettings.check(check_interval=1, bandwidth=1e6, fit_intercept=1)
    assert settings.check_interval == 1.0 and isinstance(settings.check_interval, float)
    assert isinstance(settings.bandwidth, Bandwidth)
    assert settings.bandwidth.bytes_per_second == 1e6
    assert settings.fit_intercept is True


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"on_failure": "retry"}, ValueError, "on_failure must be 'replan' or"),
        ({"straggler_model": object()}, TypeError, "needs a delay"),
        ({"check_interval": 0}, ValueError, "check_interval must be > 0"),
        ({"stale_after": -1}, ValueError, "stale_after must be > 0"),
        ({"round_timeout": 0}, ValueError, "round_timeout must be > 0 seconds"),
    ],
)
def test_bad_settings_say_what_to_change(options, error, match):
    with pytest.raises(error, match=match):
        RunSettings.check(**options)


def test_weights_and_batches_of_a_round():
    np.testing.assert_array_equal(check_weights([[1, 2]], 2), [1.0, 2.0])
    with pytest.raises(ValueError, match="w must have 3 entries"):
        check_weights(np.zeros(2), 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_weights([np.nan, 0.0], 2)
    assert check_batch(None, 0, True) is None
    assert check_batch(0.5, 3, False) == Batch(3, 0.5, False)
    with pytest.raises(ValueError, match=r"batch_fraction must be in \(0, 1\]"):
        check_batch(1.5, 0, True)


def test_transport_names_and_policies_are_checked_where_they_are_made():
    assert check_transport("futures") == "futures"
    assert check_transport(None) == "direct"
    with pytest.raises(ValueError, match=r"got 'zmq' \(from transport\)"):
        check_transport("zmq")
    assert isinstance(make_policy("adaptive"), AdaptivePolicy)
    own = StaticPolicy()
    assert make_policy(own) is own
