"""What the estimators accept, turned into what the scheduler slices; lazy outputs.

NumPy, SciPy sparse and pandas input is validated by scikit-learn.  Dask input
stays on the cluster: dataframes and series become dask arrays whose chunk
lengths are computed there, and predictions on dask input are dask arrays
computed block by block, as dask-ml's ``ParallelPostFit`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from dask import is_dask_collection
from sklearn.utils.class_weight import compute_class_weight

__all__ = [
    "as_dask_rows",
    "class_weights",
    "is_dask",
    "label_counts",
    "lazy_rows",
    "stored_elements",
]


def is_dask(data: Any) -> bool:
    """Whether ``data`` is a dask collection (array, dataframe, series)."""
    return is_dask_collection(data)


def stored_elements(X: Any) -> int:
    """Elements ``X`` stores: its nonzeros if sparse, else rows times columns.

    For dask input the shape's (a dask array's nonzeros are not known before
    it is computed).
    """
    nnz = getattr(X, "nnz", None)
    if nnz is not None and not is_dask(X):
        return int(nnz)
    rows, columns = X.shape
    return int(rows) * int(columns)


def as_dask_rows(data: Any, name: str) -> Any:
    """A dask array with known row chunks, computed on the cluster.

    Dataframes and series lose their index (rows keep their order); unknown
    chunk sizes (after a boolean filter, say) are computed by the current
    dask scheduler, which the estimators set to the fit's cluster.
    """
    if hasattr(data, "to_dask_array"):
        data = data.to_dask_array(lengths=True)
    if any(math.isnan(size) for size in data.shape):
        data = data.compute_chunk_sizes()
    return data


def lazy_rows(X: Any, function: Callable[[Any], np.ndarray], width: int | None) -> Any:
    """``function`` applied block by block to a dask ``X``: a lazy dask array.

    ``width`` is the number of output columns (None: a 1-D output).  The
    feature axis is brought into one chunk; nothing is computed here.
    """
    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array()  # lengths stay unknown: nothing computed
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    if width is None:
        return X.map_blocks(function, drop_axis=1, dtype=np.float64)
    return X.map_blocks(function, chunks=(X.chunks[0], (width,)), dtype=np.float64)


def label_counts(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distinct labels and their counts.

    Dask labels are counted block by block on the cluster: only the counts
    come back to the client.
    """
    if not is_dask(y):
        return np.unique(y, return_counts=True)
    import dask

    parts = dask.compute(
        *(
            dask.delayed(np.unique)(block, return_counts=True)
            for block in y.to_delayed().ravel()
        )
    )
    labels = np.concatenate([values for values, _ in parts])
    counts = np.concatenate([numbers for _, numbers in parts])
    present, slots = np.unique(labels, return_inverse=True)
    return present, np.bincount(slots.ravel(), weights=counts).astype(np.int64)


def class_weights(
    class_weight: Any, classes: np.ndarray, present: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Per-class weights from counts (so dask labels need not be collected)."""
    if class_weight == "balanced":
        full = np.zeros(len(classes))
        full[np.searchsorted(classes, present)] = counts
        if np.any(full == 0):
            raise ValueError("class_weight='balanced' needs every class present in y")
        return full.sum() / (len(classes) * full)
    return compute_class_weight(class_weight, classes=classes, y=present)
