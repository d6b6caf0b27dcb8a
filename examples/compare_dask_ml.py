"""A coded logistic regression next to dask-ml's on the same cluster and data.

Needs dask-ml (``pip install -e .[bench]``); the full comparison with a slow
worker is ``dask-gradcode bench vs-dask-ml``.

Run:  python examples/compare_dask_ml.py
"""

from __future__ import annotations

import sys
import time
import warnings

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import make_classification

from dask_gradcode import CodedSGDClassifier


def main(small: bool = False) -> None:
    try:
        from dask_ml.linear_model import LogisticRegression
    except ImportError:
        print("dask-ml is not installed: pip install -e .[bench]")
        return
    n_rows = 5_000 if small else 200_000
    X, y = make_classification(n_rows, 50, random_state=0)
    with (
        # --small: a quick smoke run with in-process workers
        LocalCluster(n_workers=4, threads_per_worker=1, processes=not small) as cluster,
        Client(cluster) as client,
    ):
        X_dask = client.persist(da.from_array(X, chunks=(n_rows // 8, 50)))
        y_dask = client.persist(da.from_array(y.astype(float), chunks=n_rows // 8))
        fits = {
            "dask_gradcode": CodedSGDClassifier(
                loss="log_loss", alpha=1 / n_rows, random_state=0
            ),
            "dask-ml": LogisticRegression(C=1.0, solver="lbfgs"),
        }
        for name, model in fits.items():
            start = time.perf_counter()
            with warnings.catch_warnings():
                # dask-ml sets a Dask configuration key that Dask has since
                # renamed; the FutureWarning is dask-ml's to fix, not yours.
                warnings.filterwarnings(
                    "ignore", "Dask configuration key 'fuse_ave_width'", FutureWarning
                )
                model.fit(X_dask, y_dask)
            seconds = time.perf_counter() - start
            accuracy = np.mean(np.asarray(model.predict(X)) == y)
            print(f"{name:<14} {seconds:6.2f} s   training accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main(small="--small" in sys.argv)
