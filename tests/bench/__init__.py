"""Helpers of the benchmark tests."""

from __future__ import annotations

from pathlib import Path


def png_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*.png"))


def assert_readable_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000  # drawn, not an empty canvas


def assert_every_kind_written(out: Path, files: str) -> None:
    """The CLI's contract: CSV, JSON, markdown and at least one drawn PNG."""
    for suffix in ("csv", "json", "md", "png"):
        assert (out / f"{files}.{suffix}").is_file(), f"{files}.{suffix} missing"
    for name in png_files(out):
        assert_readable_png(out / name)
