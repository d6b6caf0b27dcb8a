"""What a newcomer runs, run as they would: in a fresh process, output read closely.

The demo's job, every Python block of the README and every example run in
their own interpreter (worker processes and exit handlers included, as on a
user's machine), and their whole output — stdout and stderr, Dask's logs
too — must hold no traceback, no error line and no warning the user did not
cause.  (The README's blocks run only here; the docs pages' blocks run in
the suite by pytest-markdown-docs, under the same check: ``conftest.py``.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.quiet import noisy_lines

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
README_BLOCKS = re.findall(
    r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL
)


def run_as_newcomer(argv: list[str], cwd: Path, timeout: float = 240) -> str:
    """Run ``argv`` in a fresh interpreter; its output, after checking it is quiet."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST", "PYTHONWARNINGS", "DASK_"))
    }
    result = subprocess.run(
        [sys.executable, *argv],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    noisy = noisy_lines(output)
    assert not noisy, "\n".join(noisy)
    return result.stdout


def test_the_demo_runs_quietly_and_prints_every_scheme(tmp_path):
    out = run_as_newcomer(
        ["-m", "dask_gradcode", "demo", "--iterations", "3", "--delay", "0.05"],
        tmp_path,
    )
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| ") and not line.startswith("| scheme")
    ]
    assert [row.split("|")[1].strip() for row in rows] == [
        "uncoded",
        "ignore-stragglers",
        "fractional-repetition",
        "cyclic-repetition",
        "gaussian-mds",
        "gaussian-mds",
    ]
    assert "Dask dashboard:" in out
    assert "load: partitions each worker computes" in out  # the columns explained


@pytest.mark.parametrize(
    "block", range(len(README_BLOCKS)), ids=lambda k: f"readme-block-{k}"
)
def test_every_readme_block_runs_quietly_as_a_script(block, tmp_path):
    script = tmp_path / "readme_block.py"
    script.write_text(README_BLOCKS[block])
    run_as_newcomer([str(script)], tmp_path)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs_quietly(path, tmp_path):
    assert run_as_newcomer([str(path), "--small"], tmp_path)
