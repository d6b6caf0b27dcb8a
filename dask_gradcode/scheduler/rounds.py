"""One round's collection: replies as they come, until decodable or the deadline.

Every way a worker can fail a round ends here as an erasure of that worker
for the round: a task that raised (``errors``), a worker that died before or
after finishing its task, whose result cannot be fetched any more (``lost``),
and one that had not answered, or whose finished result could not be fetched,
when the deadline passed (``timed_out``).  Whether the rest decodes is the
code's question; what to do when it does not is the caller's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from distributed import Future, as_completed

from dask_gradcode.codes import GradientCode
from dask_gradcode.scheduler.worker import Reply

__all__ = ["Collected", "collect"]


@dataclass
class Collected:
    """What one submission of a round came back with."""

    replies: dict[int, Reply] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)
    errors: dict[int, BaseException] = field(default_factory=dict)
    timed_out: set[int] = field(default_factory=set)
    pending: dict[Future, int] = field(default_factory=dict)
    waited_for_accuracy: bool = False

    @property
    def failed(self) -> set[int]:
        """Every worker erased in this round."""
        return self.lost | set(self.errors) | self.timed_out


def collect(
    futures: dict[Future, int],
    code: GradientCode,
    *,
    loop: object,
    deadline: float,
    check_interval: float,
    approximate: bool,
    gone: Callable[[set[int]], set[int]],
) -> Collected:
    """Take replies as they come until the round can be decoded, or the deadline.

    Parameters
    ----------
    futures : dict of Future to int
        The round's tasks and their code indices.
    code : GradientCode
    loop : event loop
        The client's loop (``as_completed`` runs on it).
    deadline : float
        ``time.monotonic()`` after which unanswered workers time out.
    check_interval : float
        Seconds between checks of ``gone`` while waiting.
    approximate : bool
        Approximate mode: stop as soon as the replies decode exactly, or when
        every worker but ``code.n_stragglers`` of them has answered (so
        stragglers are still skipped).
    gone : callable
        Given the pending code indices, returns those whose workers the
        cluster lost.

    Returns
    -------
    Collected
        The caller releases ``pending`` once it has decoded.
    """
    result = Collected(pending=dict(futures))
    submitted = len(futures)
    while result.pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            result.timed_out |= set(result.pending.values())
            break
        for future, value in _completed(
            result.pending, loop, min(check_interval, remaining)
        ):
            worker = result.pending.pop(future, None)
            if worker is None:
                continue  # yielded by an earlier slice's iterator
            _take(future, value, worker, result)
            if _enough(result, code, approximate, submitted):
                return result
        lost = gone(set(result.pending.values()))
        if lost:
            result.lost |= lost
            result.pending = {f: w for f, w in result.pending.items() if w not in lost}
        # More erasures than the code can lose.  If no worker succeeded yet,
        # wait for the rest: an error every worker raises is a bug to surface,
        # not a failure to re-plan around.
        if (
            not approximate
            and _hopeless(result, code)
            and (result.replies or not result.errors)
        ):
            break
    return result


def _take(future: Future, value: object, worker: int, result: Collected) -> None:
    """File one finished future, fetched by ``as_completed``, as a reply or an erasure."""
    if future.status == "error":
        # as_completed hands a task's error over as (type, exception, traceback)
        error = value[1] if isinstance(value, tuple) else value
        result.errors[worker] = error
    elif future.status == "cancelled" or isinstance(value, BaseException):
        result.lost.add(worker)  # its worker died, with its shard
    else:
        result.replies[worker] = value


def _enough(
    result: Collected, code: GradientCode, approximate: bool, submitted: int
) -> bool:
    if code.is_decodable(result.replies) if result.replies else False:
        return True
    if result.replies and code.is_decodable(result.replies, check_accuracy=False):
        result.waited_for_accuracy = True  # decodable, but not to rtol
    if approximate:
        answered = len(result.replies) + len(result.failed)
        return answered >= submitted or len(result.replies) >= max(
            1, submitted - len(result.failed) - code.n_stragglers
        )
    return False


def _hopeless(result: Collected, code: GradientCode) -> bool:
    possible = set(result.replies) | set(result.pending.values())
    return not possible or not code.is_decodable(possible)


def _completed(
    pending: dict[Future, int], loop: object, timeout: float
) -> Iterator[tuple[Future, object]]:
    """``(future, result)`` as they finish; returns after ``timeout`` without one.

    ``as_completed`` fetches the results itself, concurrently on the client's
    event loop: no round trip per reply.  A result whose worker died between
    finishing and the fetch ("already forgotten") is never yielded; the
    caller's liveness check files it as lost.
    """
    finished = as_completed(
        list(pending), loop=loop, timeout=timeout, with_results=True, raise_errors=False
    )
    try:
        yield from finished
    except (TimeoutError, asyncio.TimeoutError):  # distinct before Python 3.11
        return
