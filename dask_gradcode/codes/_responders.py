"""Checking what a scheduler hands a code: worker ids, responder sets, messages."""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np

from dask_gradcode.codes._errors import NotDecodableError

__all__ = ["ResponderChecks"]


class ResponderChecks:
    """The input checks of :class:`~dask_gradcode.codes.GradientCode`.

    A code needs ``n_workers`` and ``_worker_ids`` (the frozenset of its
    worker ids) for these.
    """

    _worker_ids: frozenset[int]

    @property
    def n_workers(self) -> int:
        """Number of workers (each code says)."""
        raise NotImplementedError

    def _check_worker(self, worker: int) -> int:
        if isinstance(worker, bool) or not isinstance(worker, (int, np.integer)):
            raise TypeError(f"worker ids are integers, got {worker!r}")
        if not 0 <= worker < self.n_workers:
            raise ValueError(
                f"worker {worker} does not exist: ids run from 0 to {self.n_workers - 1}"
            )
        return int(worker)

    def _check_responders(self, responders: Iterable[int]) -> frozenset[int]:
        # A scheduler asks after every arrival with all the replies so far, so
        # this runs n times a round on up to n ids.  Distinct Python ints in
        # range (the scheduler's case) are checked by C-level passes over the
        # set; anything else (numpy integers, bools, bad ids) takes the per-id
        # path, which converts what it accepts and names the first bad id.
        items = responders if isinstance(responders, Collection) else tuple(responders)
        try:
            fast: frozenset[int] | None = frozenset(items)
        except TypeError:  # an unhashable id: the per-id path says which
            fast = None
        if (
            fast is not None
            # A repeat may hide a bad id behind an equal good one (0, False).
            and len(fast) == len(items)
            and fast <= self._worker_ids
            # Equal to ids in range is not enough: True == 1 and 1.0 == 1.
            and list(map(type, fast)).count(int) == len(fast)
        ):
            responder_set = fast
        else:
            responder_set = frozenset(self._check_worker(w) for w in items)
        if not responder_set:
            raise NotDecodableError("no worker has answered: nothing to decode")
        return responder_set

    @staticmethod
    def _check_message(worker: int, message: np.ndarray, length: int) -> np.ndarray:
        array = np.asarray(message)
        if array.shape != (length,):
            raise ValueError(
                f"message from worker {worker} has shape {array.shape}; every message "
                f"for this gradient must be a vector of length {length} "
                "(ceil(dim / comm_reduction))"
            )
        if array.dtype.kind not in "fiu":
            raise ValueError(
                f"message from worker {worker} has dtype {array.dtype}; send real numbers"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"message from worker {worker} contains NaN or inf; check that "
                "worker's data and loss"
            )
        return array
