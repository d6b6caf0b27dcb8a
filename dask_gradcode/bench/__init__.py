"""Benchmarks that reproduce the paper's comparisons on any Dask cluster.

Each module measures one thing and declares one
:class:`~dask_gradcode.bench.benchmark.Benchmark` (its options, the optional
packages it needs, its measuring and page functions); its ``run`` returns a
:class:`~dask_gradcode.bench.report.Report` (CSV/JSON tables, PNG figures, a
markdown page), and ``dask-gradcode bench NAME --out DIR`` runs one and
writes its files.  :data:`BENCHMARKS` names them:

- :mod:`~dask_gradcode.bench.stability` — decoding error and conditioning
  against ``n`` (``decode_stability``).
- :mod:`~dask_gradcode.bench.iteration_time` — iteration time of every scheme
  under stragglers, speed-up against the number of slow workers, overhead,
  weights shipping, bytes against ``m`` over slow links (``iteration_time``).
- :mod:`~dask_gradcode.bench.convergence` — loss against wall-clock time per
  scheme (``convergence``).
- :mod:`~dask_gradcode.bench.vs_dask_ml` — time to a near-optimal logistic
  regression against dask-ml (``vs_dask_ml``).
- :mod:`~dask_gradcode.bench.faults` — what a fit does when worker processes
  hang, die, raise, restart or join (``reliability``).
- :mod:`~dask_gradcode.bench.small_data` — where a default fit's time goes on
  small data (``small_data``).
- :mod:`~dask_gradcode.bench.adaptive` — adaptive rounds against static
  choices (``adaptive``).
- :mod:`~dask_gradcode.bench.transport` — the futures and direct transports
  side by side (``transport``).
- :mod:`~dask_gradcode.bench.at_scale` — every scheme and policy replayed on
  real 256-worker traces on a virtual clock, and the planner's choice
  (``at_scale``).
- :mod:`~dask_gradcode.bench.auto_code` — ``n_stragglers="auto"`` against
  uncoded and static codes, fit by fit (``auto``).
- :mod:`~dask_gradcode.bench.placement` — peak memory and time of placing the
  data, against ``client.scatter`` (``placement``).
- :mod:`~dask_gradcode.bench.hog` — a real straggler (a CPU hog pinned beside
  one worker process): uncoded, the static code, the adaptive policy and
  dask-ml (``hog``).
- :mod:`~dask_gradcode.bench.end_to_end` — one logistic regression on
  scikit-learn, ours, dask-ml and Spark MLlib: fit, placement, peak memory
  (``end-to-end``).
- :mod:`~dask_gradcode.bench.sklearn_suite` — scikit-learn's own
  ``test_sgd.py`` against the coded estimators (``sklearn_suite``).

They need matplotlib (and dask-ml for the dask-ml comparison): ``pip install
'dask-gradcode[bench]'``.  Importing this package imports no Dask: the
command line lists the benchmarks without loading them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dask_gradcode.bench.benchmark import Benchmark
    from dask_gradcode.bench.cluster import ClusterTarget
    from dask_gradcode.bench.report import Report

__all__ = ["BENCHMARKS", "ClusterTarget", "Report", "load_benchmark"]

#: ``dask-gradcode bench NAME`` -> the module of this package declaring it.
BENCHMARKS = {
    "stability": "stability",
    "iteration-time": "iteration_time",
    "convergence": "convergence",
    "vs-dask-ml": "vs_dask_ml",
    "faults": "faults",
    "small-data": "small_data",
    "adaptive": "adaptive",
    "transport": "transport",
    "at-scale": "at_scale",
    "auto": "auto_code",
    "placement": "placement",
    "hog": "hog",
    "end-to-end": "end_to_end",
    "sklearn-suite": "sklearn_suite",
}

_LAZY = {
    "ClusterTarget": "dask_gradcode.bench.cluster",
    "Report": "dask_gradcode.bench.report",
}


def load_benchmark(name: str) -> Benchmark:
    """The :class:`~dask_gradcode.bench.benchmark.Benchmark` called ``name``."""
    module = importlib.import_module(f"dask_gradcode.bench.{BENCHMARKS[name]}")
    benchmark: Benchmark = module.BENCHMARK
    return benchmark


def __getattr__(name: str) -> Any:
    # ClusterTarget and Report import Dask and numpy: only when asked for.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
