"""Coded gradient rounds on a Dask cluster: the only package that talks to Dask.

:class:`CodedGradient` places each data partition on the workers a
:class:`~dask_gradcode.codes.GradientCode` assigns, once, and then computes
``(loss, gradient)`` at any weights with one call per worker (to an actor
beside its shard, or a pinned task), decoding the moment enough workers have
answered.

One concern per module: :mod:`~.worker` (code that runs on workers),
:mod:`~.placement` (input checks and shards), :mod:`~.rounds` (collecting a
round's replies until decodable or its deadline), :mod:`~.membership`
(liveness, hung workers, strikes, deadlines, re-planning), :mod:`~.clients`
(which client, bounded calls to the cluster), :mod:`~.plans` (what each
worker computes in a round: the policies), :mod:`~.records` (what a round
reports), :mod:`~.transports` (how a round's tasks reach the workers: pinned
futures, or direct calls to one actor per worker) and :mod:`~.core`
(:class:`CodedGradient`, composing them).
"""

from dask_gradcode.scheduler.clients import (
    client_for_fit,
    close_embedded_cluster,
    embedded_client,
    n_cluster_workers,
    worker_addresses,
)
from dask_gradcode.scheduler.core import EMBED_WEIGHTS_MAX_BYTES, CodedGradient
from dask_gradcode.scheduler.membership import MAX_STRIKES, replan_code
from dask_gradcode.scheduler.plans import (
    POLICIES,
    AdaptivePolicy,
    SpeculativePolicy,
    StaticPolicy,
)
from dask_gradcode.scheduler.records import (
    DecodingAccuracyWarning,
    NoWorkersError,
    RoundRecord,
    WorkerErrorWarning,
    WorkerFailureWarning,
)
from dask_gradcode.scheduler.transports import TRANSPORTS, TransportFallbackWarning

__all__ = [
    "EMBED_WEIGHTS_MAX_BYTES",
    "MAX_STRIKES",
    "POLICIES",
    "TRANSPORTS",
    "AdaptivePolicy",
    "CodedGradient",
    "DecodingAccuracyWarning",
    "NoWorkersError",
    "RoundRecord",
    "SpeculativePolicy",
    "StaticPolicy",
    "TransportFallbackWarning",
    "WorkerErrorWarning",
    "WorkerFailureWarning",
    "client_for_fit",
    "close_embedded_cluster",
    "embedded_client",
    "n_cluster_workers",
    "replan_code",
    "worker_addresses",
]
