"""The documentation's commands parse and its figures exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dask_gradcode.cli import BENCHMARKS, build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
COMMAND = re.compile(r"`(dask-gradcode [^`]+)`")


def documented_commands():
    for page in PAGES:
        for match in COMMAND.finditer(page.read_text()):
            yield page.name, match.group(1)


@pytest.mark.parametrize(("page", "command"), list(documented_commands()))
def test_every_documented_command_parses(page, command):
    words = shlex.split(command)[1:]
    if words[-1] in ("|", "...") or "NAME" in words or "|" in words:
        pytest.skip("a pattern, not a command")
    if words == ["--version"]:  # argparse prints it and exits 0
        with pytest.raises(SystemExit, match="0"):
            build_parser().parse_args(words)
        return
    build_parser().parse_args(words)


def test_every_benchmark_page_is_published_with_its_command():
    reproducing = (ROOT / "docs" / "reproducing.md").read_text()
    for name in BENCHMARKS:
        assert f"dask-gradcode bench {name} --out docs" in reproducing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_image_a_page_shows_exists(page):
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", page.read_text()):
        assert (page.parent / image).is_file(), f"{page.name} shows missing {image}"
