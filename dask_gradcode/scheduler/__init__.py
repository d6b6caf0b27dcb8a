"""Coded gradient rounds on a Dask cluster: the only package that talks to Dask.

:class:`CodedGradient` places each data partition on the workers a
:class:`~dask_gradcode.codes.GradientCode` assigns, once, and then computes
``(loss, gradient)`` at any weights with one call per worker (to an actor
beside its shard, or a pinned task), decoding the moment enough workers have
answered.

One concern per module (``docs/architecture.md`` shows how a round flows
through them): :mod:`~.core` (:class:`CodedGradient`, the façade: settings,
lifecycle, the attempt loop), :mod:`~.settings` (checking its arguments),
:mod:`~.layout` (which worker holds which shard: placement, re-plans,
growth), :mod:`~.autocoding` (``n_stragglers="auto"``: measure uncoded,
grow the code that pays), :mod:`~.executors` (running a coded or a split round),
:mod:`~.rounds` (collecting a round's replies until decodable or its
deadline), :mod:`~.judging` (pure decisions: decode, re-plan or raise; whom
to re-plan onto), :mod:`~.feedback` (what a policy learns from a round),
:mod:`~.plans` (what each worker computes in a round: the policies),
:mod:`~.protocol` (the typed round request, context and reply),
:mod:`~.transports` (how requests reach the workers: pinned futures, or
direct calls to one actor per worker), :mod:`~.worker` (code that runs on
workers), :mod:`~.placement` (input checks and shards), :mod:`~.membership`
(liveness, hung workers, strikes, the round deadline), :mod:`~.clients`
(which client, bounded calls to the cluster) and :mod:`~.records` (what a
round reports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dask_gradcode.codes import replan_code
from dask_gradcode.scheduler.plans import (
    POLICIES,
    AdaptivePolicy,
    Policy,
    SpeculativePolicy,
    StaticPolicy,
)
from dask_gradcode.scheduler.records import (
    DecodingAccuracyWarning,
    IntegrityWarning,
    NoWorkersError,
    RoundRecord,
    SchedulerUnavailableError,
    ToleratedFailureWarning,
    WorkerErrorWarning,
    WorkerFailureWarning,
    WorkerMemoryError,
)

if TYPE_CHECKING:
    from dask_gradcode.scheduler.autocoding import forget_measurements
    from dask_gradcode.scheduler.clients import (
        client_for_fit,
        close_embedded_cluster,
        embedded_client,
        n_cluster_workers,
        worker_addresses,
    )
    from dask_gradcode.scheduler.core import CodedGradient
    from dask_gradcode.scheduler.membership import MAX_STRIKES
    from dask_gradcode.scheduler.transports import (
        TRANSPORTS,
        Transport,
        TransportFallbackWarning,
    )

#: The names whose modules import Dask, imported on first use: the pure
#: modules (plans, rounds, judging, feedback, protocol) serve the simulation
#: and the planner without loading a cluster library.
_FROM_DASK_MODULES = {
    "forget_measurements": "autocoding",
    "client_for_fit": "clients",
    "close_embedded_cluster": "clients",
    "embedded_client": "clients",
    "n_cluster_workers": "clients",
    "worker_addresses": "clients",
    "CodedGradient": "core",
    "MAX_STRIKES": "membership",
    "TRANSPORTS": "transports",
    "Transport": "transports",
    "TransportFallbackWarning": "transports",
}


def __getattr__(name: str) -> Any:
    module = _FROM_DASK_MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "MAX_STRIKES",
    "POLICIES",
    "TRANSPORTS",
    "AdaptivePolicy",
    "CodedGradient",
    "DecodingAccuracyWarning",
    "IntegrityWarning",
    "NoWorkersError",
    "Policy",
    "RoundRecord",
    "SchedulerUnavailableError",
    "SpeculativePolicy",
    "StaticPolicy",
    "ToleratedFailureWarning",
    "Transport",
    "TransportFallbackWarning",
    "WorkerErrorWarning",
    "WorkerFailureWarning",
    "WorkerMemoryError",
    "client_for_fit",
    "close_embedded_cluster",
    "embedded_client",
    "forget_measurements",
    "n_cluster_workers",
    "replan_code",
    "worker_addresses",
]
