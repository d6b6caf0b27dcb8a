"""What a benchmark leaves behind: CSV and JSON results, PNG plots, a markdown page."""

from __future__ import annotations

import csv
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Report", "machine_description", "markdown_table"]


@dataclass
class Report:
    """Everything one benchmark run produced.

    Attributes
    ----------
    name : str
        Base name of the files written (``decode_stability``, ...).
    tables : dict of str to list of dict
        Result rows by table; the first table is written to ``NAME.csv``, the
        others to ``NAME_TABLE.csv``.  Every table goes into ``NAME.json``.
    figures : dict of str to matplotlib Figure
        Written to ``NAME_KEY.png`` (``NAME.png`` for the key ``""``).
    markdown : str
        The summary page, written to ``NAME.md``.
    document : dict, optional
        Written to ``NAME.json`` instead of the tables, for a benchmark whose
        JSON has a form of its own.
    """

    name: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""
    document: dict[str, Any] | None = None

    def figure_file(self, key: str) -> str:
        """File name of figure ``key``."""
        return f"{self.name}_{key}.png" if key else f"{self.name}.png"

    def write(self, out: Path) -> list[Path]:
        """Write every file into ``out`` (created if missing); returns the paths."""
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for index, (table, rows) in enumerate(self.tables.items()):
            path = out / (
                f"{self.name}.csv" if index == 0 else f"{self.name}_{table}.csv"
            )
            _write_csv(rows, path)
            written.append(path)
        path = out / f"{self.name}.json"
        content = self.tables if self.document is None else self.document
        path.write_text(json.dumps(content, indent=1, default=_plain) + "\n")
        written.append(path)
        for key, figure in self.figures.items():
            path = out / self.figure_file(key)
            figure.savefig(path, dpi=110)
            written.append(path)
        path = out / f"{self.name}.md"
        path.write_text(self.markdown)
        written.append(path)
        return written


def _plain(value: Any) -> Any:
    """JSON form of the numpy values results hold."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Scalar columns only: arrays (per-round times) go to the JSON file."""
    columns = [
        key
        for key, value in (rows[0].items() if rows else ())
        if not isinstance(value, np.ndarray | list | tuple | dict)
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """A markdown table of ``rows``: ``columns`` maps keys to headers."""
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            value = row[key]
            if isinstance(value, bool):
                cells.append("yes" if value else "no")
            elif isinstance(value, float | np.floating):
                cells.append(f"{value:.3g}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_description() -> str:
    """Architecture, cores and versions, for the head of a report."""
    import dask

    return (
        f"{platform.machine()} with {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, dask {dask.__version__}"
    )
