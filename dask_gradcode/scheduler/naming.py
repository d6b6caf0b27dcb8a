"""How warnings, errors and reasons name workers: by address, with the code index.

One wording everywhere — ``worker tcp://10.0.0.5:4001 (code worker 3)`` — so
a user can find the machine (the address) and the record's entries (the
code index, a position in ``RoundRecord.workers``) from any message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["name_addresses", "name_workers"]


def name_workers(workers: Iterable[int], addresses: Sequence[str] = ()) -> str:
    """``"worker ADDRESS (code worker I)"``, or ``"workers ..."`` for several.

    Without ``addresses`` (a simulation, which has none) the code indices
    alone.
    """
    indices = sorted(workers)
    if not addresses:
        return _plural("code worker", [str(w) for w in indices])
    return _plural("worker", [f"{addresses[w]} (code worker {w})" for w in indices])


def name_addresses(addresses: Iterable[str], code: Sequence[str] = ()) -> str:
    """``"worker ADDRESS"`` (with its code index where it is in ``code``)."""
    names = [
        f"{address} (code worker {code.index(address)})" if address in code else address
        for address in addresses
    ]
    return _plural("worker", names)


def _plural(noun: str, names: list[str]) -> str:
    if len(names) == 1:
        return f"{noun} {names[0]}"
    return f"{noun}s {', '.join(names)}"
