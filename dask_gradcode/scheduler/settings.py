"""A run's settings, each checked here and only here.

:class:`RunSettings` takes ``CodedGradient``'s keyword arguments as the user
gave them and returns them checked and normalised (or raises an error that
says what to change).  The transport's name is checked by
:func:`~dask_gradcode.scheduler.transports.check_transport` and the policy by
:func:`~dask_gradcode.scheduler.plans.make_policy`, which the estimators use
too.  No Dask.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from dask_gradcode.scheduler.protocol import Batch
from dask_gradcode.stragglers import Bandwidth

__all__ = ["ON_FAILURE", "RunSettings", "check_batch", "check_weights"]

#: What ``on_failure`` accepts.
ON_FAILURE = ("replan", "approximate")


@dataclass(frozen=True)
class RunSettings:
    """The checked settings of one ``CodedGradient`` run (see its docstring)."""

    straggler_model: Any
    bandwidth: Bandwidth | None
    on_failure: str
    round_timeout: float | None
    check_interval: float
    stale_after: float
    fit_intercept: bool
    fault_model: Any = None
    verify: bool = True
    audit_every: int | None = None

    @classmethod
    def check(
        cls,
        *,
        straggler_model: Any = None,
        bandwidth: float | Bandwidth | None = None,
        on_failure: str = "replan",
        round_timeout: float | None = None,
        check_interval: float = 2.0,
        stale_after: float = 5.0,
        fit_intercept: bool = False,
        fault_model: Any = None,
        verify: bool = True,
        audit_every: int | None = None,
    ) -> RunSettings:
        """The settings, checked; raises ``ValueError``/``TypeError`` otherwise."""
        if on_failure not in ON_FAILURE:
            raise ValueError(
                f"on_failure must be 'replan' or 'approximate', got {on_failure!r}"
            )
        if straggler_model is not None and not callable(
            getattr(straggler_model, "delay", None)
        ):
            raise TypeError(
                "straggler_model needs a delay(iteration, worker, n_workers, "
                f"compute_seconds) method; got {straggler_model!r}"
            )
        if fault_model is not None and not callable(
            getattr(fault_model, "corrupt", None)
        ):
            raise TypeError(
                "fault_model needs a corrupt(values, worker, iteration) method "
                f"(see dask_gradcode.faults.WrongResults); got {fault_model!r}"
            )
        if audit_every is not None and (
            isinstance(audit_every, bool)
            or not isinstance(audit_every, numbers.Integral)
            or audit_every < 1
        ):
            raise ValueError(
                f"audit_every must be a positive int (audit every k-th round) or "
                f"None (no audit), got {audit_every!r}"
            )
        if bandwidth is not None and not isinstance(bandwidth, Bandwidth):
            bandwidth = Bandwidth(bandwidth)
        for name, value in (
            ("check_interval", check_interval),
            ("stale_after", stale_after),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if round_timeout is not None and not round_timeout > 0:
            raise ValueError(
                f"round_timeout must be > 0 seconds or None (derived from the "
                f"rounds measured), got {round_timeout}"
            )
        return cls(
            straggler_model=straggler_model,
            bandwidth=bandwidth,
            on_failure=on_failure,
            round_timeout=round_timeout,
            check_interval=float(check_interval),
            stale_after=float(stale_after),
            fit_intercept=bool(fit_intercept),
            fault_model=fault_model,
            verify=bool(verify),
            audit_every=None if audit_every is None else int(audit_every),
        )


def check_weights(w: Any, dim: int) -> np.ndarray:
    """A round's weights as a flat float64 array of ``dim`` finite entries."""
    weights = np.asarray(w, dtype=np.float64).ravel()
    if weights.shape != (dim,):
        raise ValueError(
            f"w must have {dim} entries (one per coefficient), got {np.shape(w)}"
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("w contains NaN or inf")
    return weights


def check_batch(fraction: float | None, seed: int, shuffle: bool) -> Batch | None:
    """A round's mini-batch (None: every row)."""
    if fraction is None:
        return None
    if not 0 < fraction <= 1:
        raise ValueError(f"batch_fraction must be in (0, 1], got {fraction}")
    return Batch(int(seed), float(fraction), bool(shuffle))
