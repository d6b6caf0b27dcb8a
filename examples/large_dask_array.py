"""Fit a regressor on a dask array that never passes through the client.

The data is generated chunk by chunk on the workers (``dask.array.random``);
``CodedSGDRegressor`` places each partition on the workers the code assigns,
straight from the chunks.

Run:  python examples/large_dask_array.py     (2,000,000 x 20, 320 MB)
"""

from __future__ import annotations

import sys

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

from dask_gradcode import CodedSGDRegressor


def main(small: bool = False) -> None:
    n_rows = 20_000 if small else 2_000_000
    chunk = n_rows // 16
    rng = da.random.default_rng(0)
    X = rng.standard_normal((n_rows, 20), chunks=(chunk, 20))
    true_coef = np.arange(1.0, 21.0)
    y = X @ true_coef + 0.1 * rng.standard_normal(n_rows, chunks=chunk)
    # --small: a quick smoke run with in-process workers
    with (
        LocalCluster(n_workers=4, threads_per_worker=1, processes=not small) as cluster,
        Client(cluster),
    ):
        model = CodedSGDRegressor(alpha=0.0, penalty=None, tol=1e-10, random_state=0)
        model.fit(X, y)
    error = np.abs(model.coef_ - true_coef).max()
    print(f"{n_rows:,} rows in {X.npartitions} chunks; code {model.code_}")
    print(f"largest coefficient error {error:.4f} after {model.n_iter_} iterations")


if __name__ == "__main__":
    main(small="--small" in sys.argv)
