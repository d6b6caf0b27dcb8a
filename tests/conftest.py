"""Shared test settings: every random thing is seeded."""

from __future__ import annotations

from typing import Any

from distributed import LocalCluster
from hypothesis import HealthCheck, settings

settings.register_profile(
    "repeatable",
    derandomize=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("repeatable")


def in_process_cluster(n_workers: int, **options: Any) -> LocalCluster:
    """Single-thread in-process workers, no dashboard unless ``options`` ask."""
    options.setdefault("dashboard_address", None)
    return LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=False, **options
    )
