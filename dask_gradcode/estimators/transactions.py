"""A fit that fails leaves its estimator as it was: all or nothing.

Kept apart from the estimators so that the rule is one function, used by
``fit`` and ``partial_fit`` alike.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from dask_gradcode.scheduler import NoWorkersError, WorkerMemoryError

__all__ = ["all_or_nothing", "keep_last_iterate"]


@contextlib.contextmanager
def all_or_nothing(estimator: Any, *, keep_last_iterate: bool) -> Iterator[None]:
    """A fit that fails leaves ``estimator`` as it was before it.

    Unfitted stays unfitted (``NotFittedError``), a fitted model stays the
    previous model.  The one exception: when the cluster is lost
    (``NoWorkersError``) or the shards no longer fit its memory
    (``WorkerMemoryError``) during a ``warm_start`` fit or a ``partial_fit``
    (``keep_last_iterate``), the estimator keeps the fit's last good
    iterate, as a whole model (every fitted attribute from that fit), so
    fitting again continues from it; the error says which.
    """
    before = dict(estimator.__dict__)
    try:
        yield
    except (NoWorkersError, WorkerMemoryError) as error:
        if keep_last_iterate and "_iterate" in estimator.__dict__:
            raise type(error)(
                f"{error}. The last good iterate is kept: coef_ and intercept_ "
                "(and every fitted attribute) are those of this fit so far; "
                "fit again once the cluster has workers to continue from it"
            ) from error
        _restore(estimator, before)
        raise type(error)(
            f"{error}. The estimator is as it was before this fit (its "
            "previous model, or unfitted); with warm_start=True a lost "
            "cluster keeps the last good iterate instead"
        ) from error
    except BaseException:
        _restore(estimator, before)
        raise


def _restore(estimator: Any, before: dict[str, Any]) -> None:
    estimator.__dict__.clear()
    estimator.__dict__.update(before)


def keep_last_iterate(
    estimator: Any, monitor: Any, start: np.ndarray, n_rows: int, n_targets: int
) -> None:
    """The optimisation state when the cluster failed: the last iterate, whole.

    Every fitted attribute from the failed fit, consistent with each other,
    so that :func:`all_or_nothing` can keep them (``warm_start``) or undo them.
    """
    last = monitor.last if monitor.last is not None else start
    estimator._iterate = monitor.full(np.asarray(last)).copy()
    estimator._set_coef(monitor.full(monitor.current(last)).reshape(n_rows, n_targets))
    estimator.n_iter_ = len(monitor.history)
    estimator.history_ = monitor.history
    estimator.rounds_ = list(monitor.coded.history)
    estimator.code_ = monitor.coded.code
    estimator.objective_ = (
        monitor.history[-1]["objective"] if monitor.history else math.nan
    )
    estimator.t_ = int(getattr(estimator, "t_", 1)) + len(monitor.history)
    estimator.__dict__.pop("fit_profile_", None)  # the profile of a finished fit
