"""``python -m dask_gradcode``: the command-line entry point."""

from __future__ import annotations

from dask_gradcode.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
