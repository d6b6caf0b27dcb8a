"""The in-process LocalCluster the test modules share the settings of."""

from __future__ import annotations

from typing import Any

from distributed import LocalCluster


def in_process_cluster(n_workers: int, **options: Any) -> LocalCluster:
    """Single-thread in-process workers, no dashboard unless ``options`` ask."""
    options.setdefault("dashboard_address", None)
    return LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=False, **options
    )
