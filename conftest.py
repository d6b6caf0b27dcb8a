"""Settings for the code blocks of docs/ (run by pytest-markdown-docs).

Each block runs as a script, and must run quietly: a block whose output
(stdout, stderr, Dask's logs) holds a traceback, an error or a warning fails,
as it would fail a newcomer reading the page (``tests/quiet.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.quiet import noisy_lines, shown_records


def pytest_markdown_docs_globals() -> dict[str, Any]:
    """Run each block as a script: its ``if __name__ == "__main__":`` body runs."""
    return {"__name__": "__main__"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """Fail a docs block that passed but printed noise."""
    report = yield
    is_block = type(item).__module__.startswith("pytest_markdown_docs")
    if is_block and call.when == "call" and report.passed:
        logged = shown_records(report.caplog)
        output = f"{report.capstdout}\n{report.capstderr}\n{logged}"
        noisy = noisy_lines(output)
        if noisy:
            report.outcome = "failed"
            report.longrepr = "the block printed what a quiet run never prints:\n" + (
                "\n".join(noisy)
            )
    return report
