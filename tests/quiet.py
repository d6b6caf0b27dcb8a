"""What a quiet run never prints (the newcomer test and the docs' code blocks)."""

from __future__ import annotations

import re

#: Tracebacks, logged errors, warnings, and Dask's nanny killing a worker
#: that would not stop.
NOISE = re.compile(r"Traceback|Error|Exception|Warning|warnings\.warn|killing|CRITICAL")


def noisy_lines(output: str) -> list[str]:
    """The lines of ``output`` a quiet run would not print."""
    return [line for line in output.splitlines() if NOISE.search(line)]
