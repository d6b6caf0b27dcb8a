"""``python -m dask_gradcode.bench._placement_probe ROWS FEATURES CODE TRANSPORT N``.

Runs one :func:`~dask_gradcode.bench.placement.probe` in this fresh process
and prints its result as JSON.  A module of its own, so that the probe's
functions the workers call are the importable module's, not ``__main__``'s.
"""

from __future__ import annotations

import json
import sys

from dask_gradcode.bench.placement import probe

if __name__ == "__main__":
    rows, features, code, transport, workers = sys.argv[1:6]
    print(json.dumps(probe(int(rows), int(features), code, transport, int(workers))))
