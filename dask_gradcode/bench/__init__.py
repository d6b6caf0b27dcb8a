"""Benchmarks that reproduce the paper's comparisons on any Dask cluster.

Each module measures one thing and returns a
:class:`~dask_gradcode.bench.report.Report` (CSV/JSON tables, PNG figures, a
markdown page); ``dask-gradcode bench NAME --out DIR`` runs one and writes
its files:

- :mod:`~dask_gradcode.bench.stability` — decoding error and conditioning
  against ``n`` (``decode_stability``).
- :mod:`~dask_gradcode.bench.iteration_time` — iteration time of every scheme
  under stragglers, speed-up against the number of slow workers, overhead,
  weights shipping, bytes against ``m`` over slow links (``iteration_time``).
- :mod:`~dask_gradcode.bench.convergence` — loss against wall-clock time per
  scheme (``convergence``).
- :mod:`~dask_gradcode.bench.vs_dask_ml` — time to a near-optimal logistic
  regression against dask-ml (``vs_dask_ml``).

They need matplotlib (and dask-ml for the last): ``pip install
'dask-gradcode[bench]'``.
"""

from dask_gradcode.bench.cluster import ClusterTarget
from dask_gradcode.bench.report import Report

__all__ = ["ClusterTarget", "Report"]
