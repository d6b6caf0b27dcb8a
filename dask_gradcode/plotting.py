"""A fit's rounds at a glance: who answered when, who was late, which plan ran.

``plot_rounds(estimator.rounds_)`` (or ``plot_rounds(coded_gradient.history)``)
draws one figure: on top each round's wall time, coloured by its plan; below,
each worker's response time per round (rows are worker addresses, so a worker
keeps its row across re-plans), with late workers (their reply was not waited
for, or their rows were recomputed by others) crossed and failed ones
(dead, hung, raising) marked.  A worker that is slow every round shows as a
bright row; random stragglers as scattered crosses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["plot_rounds", "rounds_matrix"]

PLAN_COLOURS = {"coded": "#4c72b0", "split": "#dd8452"}


def _as_dict(record: Any) -> dict[str, Any]:
    if isinstance(record, dict):
        return record
    as_dict = getattr(record, "as_dict", None)
    if as_dict is None:
        raise TypeError(
            "plot_rounds takes RoundRecord objects (CodedGradient.history, an "
            f"estimator's rounds_) or their as_dict() dicts; got {type(record)!r}"
        )
    return as_dict()


def rounds_matrix(rounds: Sequence[Any]) -> dict[str, Any]:
    """The numbers :func:`plot_rounds` draws.

    Returns
    -------
    dict
        ``workers`` (addresses, in order of first appearance), ``response``
        (array ``(n_workers, n_rounds)`` of response seconds, NaN where a
        worker had no reply in time), ``late`` and ``failed`` (boolean arrays
        of the same shape), ``plan`` (plan name per round) and ``wall``
        (seconds per round).
    """
    records = [_as_dict(r) for r in rounds]
    addresses: dict[str, int] = {}
    for record in records:
        for address in record.get("workers", ()):
            addresses.setdefault(address, len(addresses))
    shape = (len(addresses), len(records))
    response = np.full(shape, np.nan)
    late = np.zeros(shape, dtype=bool)
    failed = np.zeros(shape, dtype=bool)
    for column, record in enumerate(records):
        workers = record.get("workers", ())
        for worker, seconds in record.get("response_seconds", {}).items():
            response[addresses[workers[int(worker)]], column] = seconds
        for worker in record.get("stragglers", ()):
            late[addresses[workers[int(worker)]], column] = True
        for worker in record.get("failed", ()):
            if int(worker) < len(workers):
                failed[addresses[workers[int(worker)]], column] = True
    return {
        "workers": list(addresses),
        "response": response,
        "late": late,
        "failed": failed,
        "plan": [record.get("plan", "coded") for record in records],
        "wall": np.array([record["wall_seconds"] for record in records]),
    }


def plot_rounds(rounds: Sequence[Any], *, title: str | None = None) -> Any:
    """Plot a fit's rounds: wall time by plan, and each worker's response times.

    Parameters
    ----------
    rounds : sequence of RoundRecord or dict
        ``estimator.rounds_`` or ``CodedGradient.history``.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        Without matplotlib (``pip install 'dask-gradcode[bench]'``).
    ValueError
        If ``rounds`` is empty.
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plot_rounds needs matplotlib: pip install 'dask-gradcode[bench]'"
        ) from None
    if len(rounds) == 0:
        raise ValueError("no rounds to plot: fit first (estimator.rounds_)")
    data = rounds_matrix(rounds)
    n_workers, n_rounds = data["response"].shape
    figure, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(max(6.0, min(16.0, 0.12 * n_rounds + 4)), 2.0 + 0.3 * n_workers + 1.5),
        sharex=True,
        gridspec_kw={"height_ratios": [1, max(1.5, 0.25 * n_workers)]},
        layout="constrained",
    )
    x = np.arange(n_rounds)
    top.bar(
        x,
        data["wall"],
        width=0.9,
        color=[PLAN_COLOURS.get(plan, "grey") for plan in data["plan"]],
    )
    top.set_ylabel("round (s)")
    top.legend(
        handles=[
            Patch(color=colour, label=f"{plan} round")
            for plan, colour in PLAN_COLOURS.items()
            if plan in data["plan"]
        ],
        loc="upper right",
        fontsize="small",
    )
    image = bottom.imshow(
        data["response"],
        aspect="auto",
        interpolation="nearest",
        cmap="viridis",
        extent=(-0.5, n_rounds - 0.5, n_workers - 0.5, -0.5),
    )
    figure.colorbar(image, ax=bottom, label="response (s)")
    late_rows, late_columns = np.nonzero(data["late"])
    bottom.scatter(late_columns, late_rows, marker="x", color="red", s=25)
    failed_rows, failed_columns = np.nonzero(data["failed"])
    bottom.scatter(failed_columns, failed_rows, marker="s", color="black", s=25)
    bottom.set_yticks(range(n_workers), [_short(a) for a in data["workers"]])
    bottom.set_xlabel("round")
    bottom.set_ylabel("worker")
    bottom.legend(
        handles=[
            Line2D([], [], marker="x", color="red", linestyle="", label="late"),
            Line2D([], [], marker="s", color="black", linestyle="", label="failed"),
        ],
        loc="upper right",
        fontsize="small",
    )
    if title:
        figure.suptitle(title)
    return figure


def _short(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5:40123``; in-process names kept short."""
    return address.split("://", 1)[-1][-24:]
