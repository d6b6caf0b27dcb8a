"""``python -m dask_gradcode.bench._end_to_end_probe SYSTEM ROWS FEATURES``.

Fits one system of :mod:`~dask_gradcode.bench.end_to_end` in this fresh
process and prints the result as JSON (its own module, so that what the
workers import is the importable module, not ``__main__``).
"""

from __future__ import annotations

import json
import sys

from dask_gradcode.bench.end_to_end import probe

if __name__ == "__main__":
    system, rows, features = sys.argv[1:4]
    print(json.dumps(probe(system, int(rows), int(features))))
