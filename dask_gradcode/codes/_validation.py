"""Argument checks shared by the code constructors; messages say what to change."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_code_shape",
    "check_load_fits",
    "check_partial_gradients",
    "check_positive_int",
    "check_rtol",
    "require_single_message_block",
    "rng_from",
]


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return number


def check_rtol(value: object) -> float:
    """Return ``value`` as a float in ``(0, 1)``, or raise saying what works."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"rtol must be a number, got {value!r}")
    number = float(value)
    if not 0 < number < 1:
        raise ValueError(
            f"rtol must be between 0 and 1 (a relative accuracy such as 1e-8), "
            f"got {value!r}"
        )
    return number


def check_code_shape(
    n_workers: object, n_stragglers: object, comm_reduction: object
) -> tuple[int, int, int]:
    """Validate the three numbers every scheme takes."""
    n = check_positive_int(n_workers, "n_workers")
    s = check_positive_int(n_stragglers, "n_stragglers", minimum=0)
    m = check_positive_int(comm_reduction, "comm_reduction")
    if s >= n:
        raise ValueError(
            f"n_stragglers={s} leaves no worker to wait for with n_workers={n}; "
            f"use n_stragglers <= {n - 1}"
        )
    return n, s, m


def check_load_fits(scheme: str, n_workers: int, load: int) -> None:
    """Vector-splitting schemes need ``load = s + m <= n_workers``."""
    if load > n_workers:
        raise ValueError(
            f"{scheme!r} needs load n_stragglers + comm_reduction = {load} <= "
            f"n_workers = {n_workers}; lower n_stragglers or comm_reduction"
        )


def require_single_message_block(scheme: str, comm_reduction: int) -> None:
    """Schemes without vector splitting only support ``comm_reduction == 1``."""
    if comm_reduction != 1:
        raise ValueError(
            f"{scheme!r} sends whole gradients, so comm_reduction must be 1 "
            f"(got {comm_reduction}); use 'gaussian-mds' or 'ye-abbe' for "
            "comm_reduction > 1"
        )


def check_partial_gradients(
    partial_gradients: object, n_rows: int, worker: int
) -> np.ndarray:
    """Return a finite float64 ``(n_rows, dim)`` array or raise saying what is wrong."""
    array = np.asarray(partial_gradients, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n_rows or array.shape[1] == 0:
        raise ValueError(
            f"worker {worker} holds {n_rows} partitions, so partial_gradients must "
            f"have shape ({n_rows}, dim) with dim >= 1; got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"partial gradients of worker {worker} contain NaN or inf; check the "
            "data and the loss"
        )
    return array


def rng_from(random_state: object) -> np.random.Generator:
    """A numpy Generator from None, an int, a SeedSequence, a Generator or a RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, numbers.Integral):
        return np.random.default_rng(int(random_state))
    if random_state is None or isinstance(
        random_state, (np.random.SeedSequence, np.random.Generator)
    ):
        return np.random.default_rng(random_state)
    raise TypeError(
        "random_state must be None, an int, a numpy Generator, SeedSequence or "
        f"RandomState; got {random_state!r}"
    )
