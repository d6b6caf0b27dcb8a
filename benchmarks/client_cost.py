"""The client's own cost per round, operation by operation, at large ``n``.

Times what a round asks of the client besides waiting: the decodability
checks as replies arrive one at a time in a random order (through
:meth:`~dask_gradcode.codes.GradientCode.is_decodable` on every reply so far,
and through a :class:`~dask_gradcode.codes.ResponderTracker`), the decode of
a decodable set, the split plan and a backup, and an adaptive policy's plan
and feedback.  Every round draws new stragglers (a new arrival order), as
real clusters do.  No cluster: seconds on one core.  Run from the repository
root::

    python benchmarks/client_cost.py 256 gaussian-mds:15:1 cyclic-repetition:4:1
    python benchmarks/client_cost.py 1024 uncoded:0:1 gaussian-mds:25:1

Each argument after ``n`` is ``scheme:s:m``; prints one line of milliseconds
(medians over the rounds) per code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from dask_gradcode.codes import GradientCode, make_code
from dask_gradcode.scheduler.plans import (
    AdaptivePolicy,
    RoundTiming,
    TaskTiming,
    backup_shares,
    split_shares,
    splittable,
)

ROUNDS = 5


def milliseconds(call: Callable[..., object], *args: object) -> float:
    """Wall time of ``call(*args)``, in milliseconds."""
    start = time.perf_counter()
    call(*args)
    return 1e3 * (time.perf_counter() - start)


def arrivals_until_decodable(code: GradientCode, order: list[int]) -> list[int]:
    """The responders once decodable, asking after every reply as a round does."""
    replies: dict[int, None] = {}
    for worker in order:
        replies[worker] = None
        if code.is_decodable(replies, check_accuracy=False) and code.is_decodable(
            replies
        ):
            break
    return list(replies)


def tracked_until_decodable(code: GradientCode, order: list[int]) -> None:
    """The same questions through a tracker, told one arrival at a time."""
    tracker = code.tracker()
    for worker in order:
        tracker.add(worker)
        if tracker.is_decodable(check_accuracy=False) and tracker.is_decodable():
            return


def shuffled(rng: np.random.Generator, n: int) -> list[int]:
    """A random arrival order of the ``n`` workers."""
    return [int(w) for w in rng.permutation(n)]


def measure(scheme: str, n: int, s: int, m: int, dim: int = 101) -> dict[str, float]:
    """Median milliseconds of each client operation over ``ROUNDS`` rounds."""
    rng = np.random.default_rng(0)
    code = make_code(scheme, n, s, m, random_state=0)
    usable, rows = list(range(n)), [1000] * code.n_partitions
    policy = AdaptivePolicy()
    times: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        times.setdefault(name, []).append(value)

    for _ in range(ROUNDS):
        # Each way of asking gets its own new stragglers: no decoder of the
        # whole set is cached, while the groups' caches warm up over the
        # rounds, as in a run.
        record("tracker", milliseconds(tracked_until_decodable, code, shuffled(rng, n)))
        order = shuffled(rng, n)
        start = time.perf_counter()
        responders = arrivals_until_decodable(code, order)
        record("is_decodable", 1e3 * (time.perf_counter() - start))
        length = code.message_length(dim)
        messages = {w: rng.standard_normal(length) for w in responders}
        record("decode", milliseconds(code.decode, messages, dim))
        if splittable(code, usable):
            # New speeds every round: the split is computed, not recalled.
            speeds = {w: float(x) for w, x in enumerate(rng.uniform(0.5, 2, n))}
            start = time.perf_counter()
            shares = split_shares(code, rows, usable, speeds)
            record("split", 1e3 * (time.perf_counter() - start))
            late = shares[order[-1]]
            record("backup", milliseconds(backup_shares, code, late, order))
        start = time.perf_counter()
        plan = policy.plan(code, usable, rows, usable)
        record("plan", 1e3 * (time.perf_counter() - start))
        tasks = {w: TaskTiming(1000, 0.1 + 0.01 * rng.random(), 0.12) for w in usable}
        record(
            "observe", milliseconds(policy.observe, RoundTiming(plan.name, 0.2, tasks))
        )
    return {name: float(np.median(values)) for name, values in times.items()}


def main(argv: list[str]) -> int:
    """``n`` then ``scheme:s:m`` arguments; one line per code."""
    n = int(argv[0])
    for spec in argv[1:]:
        scheme, s, m = spec.split(":")
        result = measure(scheme, n, int(s), int(m))
        cells = "  ".join(f"{name} {value:7.2f}" for name, value in result.items())
        print(f"{scheme} n={n} s={s} m={m}: {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
