"""Pure decisions about a round and the layout: no Dask, no I/O.

Judging a collected round (decode it, re-plan, or raise the workers' own
error), checking that a split round counted every row once, and choosing the
workers of the next layout after a failure or when workers joined.  The
round executors (:mod:`~dask_gradcode.scheduler.executors`) and the façade
(:mod:`~dask_gradcode.scheduler.core`) act on what these return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dask_gradcode.codes import GradientCode
from dask_gradcode.scheduler.naming import name_addresses, name_workers
from dask_gradcode.scheduler.plans import Plan
from dask_gradcode.scheduler.rounds import Collected, CollectedSplit

__all__ = [
    "RoundFailure",
    "SplitIncomplete",
    "data_fault",
    "describe",
    "erasure_reasons",
    "failure_addresses",
    "growth",
    "judge_coded",
    "memory_shortfall",
    "split_shortfall",
    "tolerated_note",
]


class RoundFailure(Exception):
    """The workers that are left cannot decode this round with the current code.

    Attributes
    ----------
    bad : set of int
        Code indices of the workers that failed the round.
    """

    def __init__(self, reason: str, bad: set[int]) -> None:
        super().__init__(reason)
        self.bad = bad


class SplitIncomplete(Exception):
    """A split round could not cover every row once; the round runs coded instead."""


def describe(error: BaseException) -> str:
    """``"Type: message"`` of a worker's error, as records and warnings show it."""
    return f"{type(error).__name__}: {error}"


def erasure_reasons(
    collected: Collected | CollectedSplit,
    *,
    deadline: float | None = None,
    addresses: Sequence[str] = (),
) -> list[str]:
    """Why workers were erased: died, did not answer (within ``deadline``), raised.

    ``addresses`` (each code worker's) name them by address.
    """
    reasons = []
    if collected.lost:
        reasons.append(f"{name_workers(collected.lost, addresses)} died")
    if collected.timed_out:
        late = name_workers(collected.timed_out, addresses)
        reasons.append(
            f"{late} timed out"
            if deadline is None
            else f"{late} did not answer within {deadline:.3g} s"
        )
    if collected.errors:
        reasons.append(f"{name_workers(collected.errors, addresses)} raised")
    return reasons


def tolerated_note(
    iteration: int,
    failed: Sequence[int],
    timed_out: Sequence[int],
    addresses: Sequence[str],
    scheme: str,
) -> str:
    """What a round that decoded without ``failed`` workers says about them."""
    late = [w for w in failed if w in timed_out]
    gone = [w for w in failed if w not in timed_out]
    what = []
    if gone:
        verb = "are" if len(gone) > 1 else "is"
        what.append(f"{name_workers(gone, addresses)} {verb} dead or unresponsive")
    if late:
        what.append(f"{name_workers(late, addresses)} did not answer in time")
    return (
        f"{' and '.join(what)} in round {iteration}; the {scheme} code decoded "
        "without " + ("it" if len(failed) == 1 else "them")
    )


def data_fault(
    code: GradientCode, collected: Collected, usable: Sequence[int]
) -> BaseException | None:
    """The error every holder of one partition raised alike, if any.

    Independent failures (out of memory on one node) are erasures to plan
    around; the same error from every worker holding a partition is that
    partition's data or the loss failing, which no re-plan can fix.
    """
    holders: dict[int, list[int]] = {}
    for worker in usable:
        for partition in code.partitions(worker):
            holders.setdefault(partition, []).append(worker)
    for workers in holders.values():
        errors = [collected.errors.get(w) for w in workers]
        first = errors[0]
        if (
            first is not None
            and all(e is not None for e in errors)
            and len({describe(e) for e in errors if e is not None}) == 1
        ):
            return first
    return None


def judge_coded(
    collected: Collected,
    code: GradientCode,
    *,
    iteration: int,
    deadline: float,
    approximate: bool,
    addresses: Sequence[str] = (),
) -> None:
    """Return when the replies can be decoded; raise what cannot.

    ``addresses`` (each code worker's) name the workers in the reasons.

    Raises
    ------
    BaseException
        The workers' own error, when every worker that answered raised it (a
        bug in the loss or the data, not a failure to plan around).
    RoundFailure
        When the workers that answered cannot decode the round.
    """
    if not collected.replies:
        if collected.errors and not collected.lost and not collected.timed_out:
            raise next(iter(collected.errors.values()))
        raise RoundFailure(
            f"no worker answered round {iteration} within {deadline:.3g} s",
            collected.failed,
        )
    if approximate or code.is_decodable(collected.replies):
        return
    reasons = erasure_reasons(collected, deadline=deadline, addresses=addresses)
    raise RoundFailure(
        f"{'; '.join(reasons) or 'too few workers answered'} in round "
        f"{iteration}, and the {code.scheme} code tolerates {code.n_stragglers}",
        collected.failed,
    )


def split_shortfall(
    collected: CollectedSplit, plan: Plan, addresses: Sequence[str] = ()
) -> str | None:
    """Why a split round's replies cannot be summed (None: every row once)."""
    if len(collected.covered) < len(plan.shares):
        reasons = erasure_reasons(collected, addresses=addresses) or [
            "no backup holder was free"
        ]
        return f"a split round could not cover every share ({'; '.join(reasons)})"
    planned_rows = sum(share.rows for share in plan.shares.values())
    used_rows = sum(
        reply.rows for replies in collected.covered.values() for reply in replies
    )
    if used_rows != planned_rows:
        # Never sum a gradient whose rows were not each counted once.
        return (
            f"a split round's replies cover {used_rows} rows instead of {planned_rows}"
        )
    return None


def failure_addresses(
    addresses: Sequence[str],
    bad: set[int],
    responsive: Callable[[str], bool],
    usable: Sequence[str],
    planned: int,
) -> tuple[list[str], list[str]]:
    """After a failed round: ``(kept, next layout)``.

    ``kept`` are the code's workers that did not fail and are responsive;
    the next layout tops them up with other usable workers, up to the
    planned size.
    """
    keep = [a for w, a in enumerate(addresses) if w not in bad and responsive(a)]
    others = [a for a in usable if a not in addresses]
    return keep, (keep + others)[:planned]


@dataclass(frozen=True)
class Growth:
    """A change of layout between rounds: the new workers, and why."""

    addresses: list[str]
    reason: str


def growth(
    addresses: Sequence[str],
    dropped: set[str],
    responsive: Callable[[str], bool],
    usable: Sequence[str],
    planned: int,
    approximate: bool,
) -> Growth | None:
    """Between rounds: drop failing workers, take in workers that joined.

    A worker whose task kept raising (``dropped``) is planned out; while
    fewer code workers are responsive than the code was planned for (dead,
    hung, or the code shrank) or the run decodes approximately, usable
    workers outside the code are planned in, up to ``planned``.  None when
    nothing changes.
    """
    gone = [a for a in addresses if a in dropped]
    keep = [a for a in addresses if responsive(a)]
    if not (gone or len(keep) < planned or approximate):
        return None
    joined = [a for a in usable if a not in addresses]
    chosen = (keep + joined)[:planned]
    if not chosen or (not gone and len(chosen) <= len(keep)):
        return None
    changes = []
    if gone:
        changes.append(f"{name_addresses(gone, addresses)} kept failing")
    if len(chosen) > len(keep):
        changes.append(f"{name_addresses(chosen[len(keep) :])} joined the cluster")
    return Growth(chosen, "; ".join(changes))


#: Share of a worker's ``memory_limit`` its shard may take: Dask's default
#: memory *target*, above which a worker starts spilling to disk (and pauses
#: at 0.8), so rounds would compute on spilled or paused data.
SHARD_MEMORY_FRACTION = 0.6


def memory_shortfall(
    share_bytes: dict[str, int],
    limits: dict[str, tuple[int | None, int]],
    *,
    fraction: float = SHARD_MEMORY_FRACTION,
) -> str | None:
    """Why the shards do not fit the workers' memory (None: they fit).

    ``share_bytes`` maps each worker's address to the bytes of its shard;
    ``limits`` to its ``memory_limit`` (None: no limit) and the memory its
    process uses already (the limit counts the whole process).
    """
    over = {}
    for address, size in share_bytes.items():
        limit, used = limits.get(address, (None, 0))
        if limit and size > fraction * limit - used:
            over[address] = (size, limit, used)
    if not over:
        return None
    address, (size, limit, used) = max(over.items(), key=lambda item: item[1][0])
    mib = 2**20
    return (
        f"{len(over)} of {len(share_bytes)} workers would go over {fraction:.0%} "
        f"of their memory_limit (Dask's memory target: above it a worker spills "
        f"to disk, then pauses): {address} would hold {size / mib:.0f} MiB of "
        f"data beside the {used / mib:.0f} MiB its process uses, with a limit of "
        f"{limit / mib:.0f} MiB. Use more workers, a smaller n_stragglers (each "
        "partition is stored n_stragglers + 1 times), or workers with a larger "
        "--memory-limit"
    )
