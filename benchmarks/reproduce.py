"""Regenerate the published benchmark tables and figures in docs/.

Each benchmark lives in :mod:`dask_gradcode.bench` and runs as
``dask-gradcode bench NAME --out docs``; this script runs them one after the
other (about an hour on 2 cores with dask-ml installed), or one of them
with its own options.  Run from the repository root::

    python benchmarks/reproduce.py                      # every benchmark
    python benchmarks/reproduce.py iteration-time --rounds 60
    python benchmarks/reproduce.py convergence --scheduler-address tcp://HOST:8786
"""

from __future__ import annotations

import sys

from dask_gradcode.cli import BENCHMARKS, main

#: Options of the published runs: these pages were measured with the futures
#: transport, the default before the direct one.
PUBLISHED_OPTIONS = {
    name: ["--transport", "futures"]
    for name in ("iteration-time", "convergence", "vs-dask-ml", "adaptive")
}


def reproduce(argv: list[str]) -> int:
    if argv and argv[0] in BENCHMARKS:
        options = argv[1:] or PUBLISHED_OPTIONS.get(argv[0], [])
        return main(["bench", argv[0], "--out", "docs", *options])
    if argv:
        print(f"usage: reproduce.py [{' | '.join(BENCHMARKS)} [OPTIONS]]")
        return 2
    for name in BENCHMARKS:
        status = main(
            ["bench", name, "--out", "docs", *PUBLISHED_OPTIONS.get(name, [])]
        )
        if status:
            return status
    return 0


if __name__ == "__main__":
    raise SystemExit(reproduce(sys.argv[1:]))
