"""Regenerate the published benchmark tables and figures in docs/.

Each benchmark lives in :mod:`dask_gradcode.bench` and runs as
``dask-gradcode bench NAME --out docs``; this script runs them one after the
other with the options of the published runs (each benchmark declares them:
``Benchmark.published``; about an hour on 2 cores with dask-ml installed),
or one of them with its own options.  Run from the repository root::

    python benchmarks/reproduce.py                      # every benchmark
    python benchmarks/reproduce.py iteration-time --rounds 60
    python benchmarks/reproduce.py convergence --scheduler-address tcp://HOST:8786
"""

from __future__ import annotations

import sys

from dask_gradcode.bench import BENCHMARKS, load_benchmark
from dask_gradcode.cli import main


def published(name: str) -> list[list[str]]:
    """The options of each run published in docs/ for benchmark ``name``."""
    return load_benchmark(name).published_runs()


def run_all(name: str, runs: list[list[str]]) -> int:
    """Run benchmark ``name`` once per option list (a later --out wins)."""
    for options in runs:
        status = main(["bench", name, "--out", "docs", *options])
        if status:
            return status
    return 0


def reproduce(argv: list[str]) -> int:
    if argv and argv[0] in BENCHMARKS:
        return run_all(argv[0], [argv[1:]] if argv[1:] else published(argv[0]))
    if argv:
        print(f"usage: reproduce.py [{' | '.join(BENCHMARKS)} [OPTIONS]]")
        return 2
    for name in BENCHMARKS:
        status = run_all(name, published(name))
        if status:
            return status
    return 0


if __name__ == "__main__":
    raise SystemExit(reproduce(sys.argv[1:]))
