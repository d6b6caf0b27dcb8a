"""What a quiet run never prints (the newcomer test and the docs' code blocks)."""

from __future__ import annotations

import re

#: Tracebacks, logged errors, warnings, and Dask's nanny killing a worker
#: that would not stop.
NOISE = re.compile(r"Traceback|Error|Exception|Warning|warnings\.warn|killing|CRITICAL")


#: Dask's own notes about the machine, not the program: on a loaded 2-core
#: machine its event loop can stall for seconds whatever runs on it.
MACHINE_NOTES = re.compile(r"Event loop was unresponsive in")


def noisy_lines(output: str) -> list[str]:
    """The lines of ``output`` a quiet run would not print."""
    return [
        line
        for line in output.splitlines()
        if NOISE.search(line) and not MACHINE_NOTES.search(line)
    ]


#: The levels Python's and Dask's default logging shows a user.
SHOWN_LEVELS = ("WARNING", "ERROR", "CRITICAL")
_RECORD = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")


def shown_records(caplog: str) -> str:
    """The records of pytest's captured log a user would see (with their tracebacks).

    pytest captures every level the loggers let through (Dask's at INFO, its
    shutdown tracebacks included); a script shows only WARNING and above.
    """
    shown, keep = [], False
    for line in caplog.splitlines():
        start = _RECORD.match(line)
        if start:
            keep = start.group(1) in SHOWN_LEVELS
        if keep:
            shown.append(line)
    return "\n".join(shown)
