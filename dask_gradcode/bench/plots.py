"""The benchmark figures, drawn with matplotlib's object API (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Bars",
    "bar_panels",
    "build_time_against_n",
    "bytes_against_m",
    "communication_bars",
    "error_against_n",
    "iteration_time_against_s",
    "iteration_time_boxes",
    "load_against_n",
    "loss_against_time",
    "rounds_under_faults",
    "speedup_against_slow_workers",
    "trace_order_statistics",
    "worst_error_over_s",
]

_MARKERS = "osD^v<>ph*"
_ERROR_TITLE = "Decoding error over random straggler sets"


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # an optional dependency
        raise ImportError(
            "the benchmark plots need matplotlib: pip install 'dask-gradcode[bench]'"
        ) from error
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, axes


@dataclass(frozen=True)
class Bars:
    """One panel of horizontal bars: a value per label, for each series.

    Parameters
    ----------
    title, xlabel : str
        The panel's title and its value axis's label.
    labels : sequence of str
        One row of bars per label, top to bottom.
    series : mapping of str to sequence of float or None
        Legend name -> one value per label; None or NaN draws no bar (a
        value that was not measured, or not reached).  One series with the
        name ``""`` draws no legend.
    log : bool, default=False
        A log-scaled value axis.
    """

    title: str
    xlabel: str
    labels: Sequence[str]
    series: Mapping[str, Sequence[float | None]]
    log: bool = False

    @classmethod
    def of_rows(
        cls,
        title: str,
        xlabel: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        label: str,
        series: str,
        value: str,
        series_name: Callable[[Any], str] = str,
    ) -> Bars:
        """One bar per row: its ``label`` row of bars, its ``series``, its ``value``.

        A (label, series) pair no row has draws no bar.
        """
        labels = list(dict.fromkeys(str(row[label]) for row in rows))
        groups = list(dict.fromkeys(row[series] for row in rows))
        values = {(str(row[label]), row[series]): row[value] for row in rows}
        return cls(
            title,
            xlabel,
            labels,
            {
                series_name(group): [values.get((name, group)) for name in labels]
                for group in groups
            },
        )


def bar_panels(panels: Sequence[Bars], width: float = 5.2) -> Any:
    """Panels of grouped horizontal bars, side by side."""
    height = 1.2 + 0.28 * max(
        len(panel.labels) * max(len(panel.series), 1) for panel in panels
    )
    figure, axes = _figure(width * len(panels), max(height, 3.0), len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        rows = np.arange(len(panel.labels))
        thickness = 0.8 / max(len(panel.series), 1)
        for k, (name, values) in enumerate(panel.series.items()):
            lengths = np.array([np.nan if v is None else v for v in values], float)
            shown = np.isfinite(lengths)
            ax.barh(
                (rows - 0.4 + thickness * (k + 0.5))[shown],
                lengths[shown],
                height=thickness,
                label=name or None,
            )
        ax.set_yticks(rows, list(panel.labels), fontsize="small")
        ax.invert_yaxis()
        if panel.log:
            ax.set_xscale("log")
        ax.set(xlabel=panel.xlabel, title=panel.title)
        ax.grid(True, axis="x", alpha=0.3)
        if any(panel.series):
            ax.legend(fontsize="small")
    return figure


def _label(row: dict[str, Any]) -> str:
    return f"{row['scheme']} m={row['m']}"


def iteration_time_boxes(rows: Sequence[dict[str, Any]], title: str) -> Any:
    """Box plots of per-round iteration times, one panel per scenario.

    ``rows`` need ``scenario``, ``scheme``, ``m`` and ``walls`` (seconds).
    """
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    figure, axes = _figure(5.4 * len(scenarios), 4.8, len(scenarios))
    for ax, scenario in zip(axes, scenarios, strict=True):
        chosen = [r for r in rows if r["scenario"] == scenario]
        ax.boxplot(
            [1e3 * np.asarray(r["walls"]) for r in chosen],
            tick_labels=[_label(r).replace(" ", "\n") for r in chosen],
        )
        ax.set_yscale("log")
        ax.set(ylabel="iteration time (ms, log scale)", title=f"{title}: {scenario}")
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    return figure


def loss_against_time(curves: Sequence[dict[str, Any]], best: float, title: str) -> Any:
    """Objective minus the optimum against wall-clock seconds, one line per scheme.

    ``curves`` need ``scheme``, ``m``, ``seconds`` and ``objective`` arrays.
    """
    figure, (ax,) = _figure(7.5, 4.8)
    for k, curve in enumerate(curves):
        gap = np.maximum(np.asarray(curve["objective"]) - best, 1e-12)
        ax.semilogy(
            curve["seconds"],
            gap,
            marker=_MARKERS[k % len(_MARKERS)],
            markevery=max(1, len(gap) // 10),
            ms=4,
            label=_label(curve),
        )
    ax.set(
        xlabel="wall-clock time (s)",
        ylabel="mean loss - optimum (log scale)",
        title=title,
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def error_against_n(reports: Sequence[Any]) -> Any:
    """Worst decoding error and condition number against the number of workers.

    ``reports`` are :class:`~dask_gradcode.codes.diagnostics.StabilityReport`.
    """
    figure, (ax_err, ax_cond) = _figure(11, 4.4, 2)
    series: dict[tuple[str, int], list[Any]] = {}
    for report in reports:
        series.setdefault((report.scheme, report.comm_reduction), []).append(report)
    for k, ((scheme, m), chosen) in enumerate(sorted(series.items())):
        ns = [r.n_workers for r in chosen]
        style = {"marker": _MARKERS[k % len(_MARKERS)], "label": f"{scheme} m={m}"}
        ax_err.semilogy(
            ns, [max(r.worst_relative_error, 1e-17) for r in chosen], **style
        )
        ax_cond.semilogy(ns, [r.worst_condition_number for r in chosen], **style)
    ax_err.axhline(1e-10, color="grey", lw=0.8, ls=":", label="target 1e-10")
    for ax, ylabel, title in (
        (ax_err, "worst relative decoding error", _ERROR_TITLE),
        (ax_cond, "worst condition number", "Conditioning of the decoding solve"),
    ):
        ax.set(xlabel="workers n (s ≈ n/10)", ylabel=ylabel, title=title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    return figure


def rounds_under_faults(series: Sequence[dict[str, Any]]) -> Any:
    """Each round's wall time per fault scenario, the fault marked.

    ``series`` items need ``scenario``, ``walls`` (seconds) and ``fault_at``
    (the index of the first round after the fault).
    """
    columns = 4
    rows = -(-len(series) // columns)
    figure = _figure(4.2 * columns, 3.0 * rows)[0]
    figure.clear()
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, item in zip(axes, series, strict=False):
        walls = 1e3 * np.asarray(item["walls"])
        ax.semilogy(np.arange(len(walls)), walls, marker=".", lw=0.8)
        ax.axvline(item["fault_at"] - 0.5, color="red", lw=0.8, ls="--")
        ax.set(title=item["scenario"], xlabel="round", ylabel="wall (ms)")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(series) :]:
        ax.set_visible(False)
    return figure


def worst_error_over_s(rows: Sequence[dict[str, Any]], rtol: float) -> Any:
    """Worst decoding error over every ``s`` against ``n``, per scheme and ``m``.

    ``rows`` come from
    :func:`~dask_gradcode.codes.diagnostics.worst_over_stragglers`: solid lines
    are every ``s``, dashed the ``s`` the build checks accept.
    """
    figure, (ax,) = _figure(7, 4.6)
    series: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        series.setdefault((row["scheme"], row["m"]), []).append(row)
    for k, ((scheme, m), chosen) in enumerate(sorted(series.items())):
        ns = [r["n"] for r in chosen]
        marker = _MARKERS[k % len(_MARKERS)]
        (line,) = ax.semilogy(
            ns,
            [max(r["worst_error"], 1e-17) for r in chosen],
            marker=marker,
            label=f"{scheme} m={m}: every s",
        )
        ax.semilogy(
            ns,
            [max(r["worst_error_accepted"], 1e-17) for r in chosen],
            marker=marker,
            ls="--",
            color=line.get_color(),
            alpha=0.6,
            label=f"{scheme} m={m}: s accepted",
        )
    ax.axhline(rtol, color="grey", lw=0.8, ls=":", label=f"rtol {rtol:g}")
    ax.set(
        xlabel="workers n",
        ylabel="worst relative decoding error over all s",
        title="Worst decode over every straggler tolerance",
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return figure


def build_time_against_n(rows: Sequence[dict[str, Any]]) -> Any:
    """Build (and verify) time against ``n``, one line per ``(s / n, m)`` shape."""
    figure, (ax,) = _figure(6, 4.2)
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = f"s ≈ {row['s'] / row['n']:.2g} n, m={row['m']}"
        series.setdefault(key, []).append(row)
    for k, (label, chosen) in enumerate(series.items()):
        ax.loglog(
            [r["n"] for r in chosen],
            [1e3 * r["build_seconds"] for r in chosen],
            marker=_MARKERS[k % len(_MARKERS)],
            label=label,
        )
    ax.set(
        xlabel="workers n",
        ylabel="build + verify time (ms)",
        title=f"Building {rows[0]['scheme']}" if rows else "Build time",
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    return figure


def load_against_n(rows: Sequence[dict[str, Any]]) -> Any:
    """Load over the optimum ``(s + m) / n`` against ``n``, a panel per ``(s, m)``."""
    shapes = list(dict.fromkeys((r["s"], r["m"]) for r in rows))
    figure, axes = _figure(4.6 * len(shapes), 4.0, len(shapes))
    for ax, (s, m) in zip(axes, shapes, strict=True):
        chosen = [r for r in rows if (r["s"], r["m"]) == (s, m)]
        schemes = list(dict.fromkeys(r["scheme"].split(" (")[0] for r in chosen))
        for k, scheme in enumerate(schemes):
            points = [r for r in chosen if r["scheme"].split(" (")[0] == scheme]
            ax.plot(
                [r["n"] for r in points],
                [r["ratio"] for r in points],
                marker=_MARKERS[k % len(_MARKERS)],
                ms=3,
                label=scheme,
            )
        ax.set(
            xlabel="workers n",
            ylabel="load / optimum (s + m) / n",
            title=f"s={s}, m={m}",
        )
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return figure


def bytes_against_m(rows: Sequence[dict[str, Any]], title: str) -> Any:
    """Bytes each worker sends per iteration, and its load, against ``m``.

    ``rows`` need ``scheme``, ``m``, ``load`` and ``bytes_per_message`` (the
    bytes measured), and may hold ``formula_bytes`` (``8 * ceil(dim / m)``).
    """
    figure, (ax,) = _figure(7.5, 4.8)
    load_ax = ax.twinx()
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    for k, scheme in enumerate(schemes):
        chosen = sorted(
            (r for r in rows if r["scheme"] == scheme), key=lambda r: r["m"]
        )
        # Hollow markers of decreasing size: schemes sending the same bytes overlap.
        ax.plot(
            [r["m"] for r in chosen],
            [r["bytes_per_message"] / 1e6 for r in chosen],
            marker=_MARKERS[k % len(_MARKERS)],
            ls="none",
            ms=14 - 3 * k,
            mew=2,
            fillstyle="none",
            label=f"{scheme}: bytes measured",
        )
    formula = sorted(
        {(r["m"], r["formula_bytes"]) for r in rows if "formula_bytes" in r}
    )
    if formula:
        ax.plot(
            [m for m, _ in formula],
            [b / 1e6 for _, b in formula],
            color="black",
            lw=0.8,
            label="8 bytes x ceil((dim + 1) / m)",
        )
    loads = sorted({(r["m"], r["load"]) for r in rows})
    load_ax.plot(
        [m for m, _ in loads],
        [d for _, d in loads],
        ls=":",
        marker="x",
        color="grey",
        label="load (partitions per worker, right axis)",
    )
    ax.set(
        xlabel="communication reduction m",
        ylabel="MB sent per worker per iteration",
        title=title,
        ylim=(0, None),
    )
    load_ax.set(ylabel="load d = s + m (partitions per worker)", ylim=(0, None))
    ax.set_xticks(sorted({r["m"] for r in rows}))
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = load_ax.get_legend_handles_labels()
    ax.legend(
        handles + more_handles, labels + more_labels, fontsize=7, loc="upper center"
    )
    return figure


def speedup_against_slow_workers(rows: Sequence[dict[str, Any]], title: str) -> Any:
    """Speed-up over uncoded against the number of slow workers, per scheme.

    ``rows`` need ``scheme``, ``m``, ``s``, ``n_slow`` and ``speedup``.
    """
    figure, (ax,) = _figure(7.5, 4.8)
    keys = list(dict.fromkeys((r["scheme"], r["m"], r["s"]) for r in rows))
    for k, (scheme, m, s) in enumerate(keys):
        chosen = sorted(
            (r for r in rows if (r["scheme"], r["m"], r["s"]) == (scheme, m, s)),
            key=lambda r: r["n_slow"],
        )
        ax.plot(
            [r["n_slow"] for r in chosen],
            [r["speedup"] for r in chosen],
            marker=_MARKERS[k % len(_MARKERS)],
            label=f"{scheme} m={m} (s={s})",
        )
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set(
        xlabel="slow workers per iteration",
        ylabel="speed-up over uncoded (mean iteration time ratio)",
        title=title,
    )
    ax.set_xticks(sorted({r["n_slow"] for r in rows}))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def communication_bars(
    rows: Sequence[dict[str, Any]], reference: str, title: str
) -> Any:
    """Mean iteration time relative to ``reference``, grouped by link speed.

    ``rows`` need ``scenario`` (the link), ``scheme``, ``m`` and ``mean_ms``.
    """
    figure, (ax,) = _figure(7.5, 4.8)
    speeds = list(dict.fromkeys(r["scenario"] for r in rows))
    schemes = list(dict.fromkeys((r["scheme"], r["m"]) for r in rows))
    width = 0.8 / len(speeds)
    for k, speed in enumerate(speeds):
        at_speed = {(r["scheme"], r["m"]): r for r in rows if r["scenario"] == speed}
        base = next(r for key, r in at_speed.items() if key[0] == reference)["mean_ms"]
        ax.bar(
            np.arange(len(schemes)) + (k - (len(speeds) - 1) / 2) * width,
            [at_speed[key]["mean_ms"] / base for key in schemes],
            width,
            label=f"{speed} links",
        )
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(schemes)), [f"{s}\nm={m}" for s, m in schemes])
    ax.set(ylabel=f"mean iteration time / {reference}", title=title)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def iteration_time_against_s(rows: Sequence[dict[str, Any]], n_workers: int) -> Any:
    """Mean iteration time against ``s``, one line per scheme, ``m`` and policy.

    ``rows`` need ``scheme``, ``n_stragglers``, ``comm_reduction``, ``policy``
    and ``predicted_s``; the uncoded row is drawn as a horizontal line.
    """
    figure, (ax,) = _figure(7.5, 4.8)
    lines: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if row["scheme"] == "uncoded":
            ax.axhline(
                row["predicted_s"], color="black", linestyle="--", label="uncoded"
            )
            continue
        label = f"{row['scheme']} m={row['comm_reduction']}"
        if row["policy"] != "static":
            label += f" ({row['policy']})"
        lines.setdefault(label, []).append((row["n_stragglers"], row["predicted_s"]))
    for index, (label, points) in enumerate(sorted(lines.items())):
        points.sort()
        ax.plot(
            [s for s, _ in points],
            [t for _, t in points],
            marker=_MARKERS[index % len(_MARKERS)],
            label=label,
        )
    ax.set_xscale("symlog", linthresh=1)
    ax.set(
        xlabel="stragglers tolerated s",
        ylabel="seconds per iteration (virtual clock + client)",
        title=f"Iteration time against s, n = {n_workers}",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return figure


def trace_order_statistics(rows: Sequence[dict[str, Any]], name: str) -> Any:
    """The k-th fastest worker's round over the median, against k / n, per load.

    ``rows`` need ``load`` and ``ordered_over_median`` (one value per worker,
    fastest first, averaged over rounds).
    """
    figure, (ax,) = _figure(6.4, 4.4)
    for row in rows:
        ratio = np.asarray(row["ordered_over_median"])
        ax.plot(
            np.arange(1, ratio.size + 1) / ratio.size,
            ratio,
            label=f"load {row['load']:g}",
        )
    ax.set(
        xlabel="k / n (k-th fastest worker)",
        ylabel="round time / median round",
        title=f"Order statistics of the {name} trace",
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    return figure
