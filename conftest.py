"""Settings for the code blocks of README.md and docs/ (run by pytest-markdown-docs)."""

from __future__ import annotations

from typing import Any


def pytest_markdown_docs_globals() -> dict[str, Any]:
    """Run each block as a script: its ``if __name__ == "__main__":`` body runs."""
    return {"__name__": "__main__"}
