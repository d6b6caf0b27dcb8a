"""What placing the data costs: peak memory of the client and workers, and time.

Every measurement runs in a fresh Python process with a fresh ``LocalCluster``
of worker processes, so that the processes' peak resident memory
(sampled every millisecond) is that measurement's alone.  In it:
``float64`` data of ``rows x features`` (a normal draw: the array itself, no
temporary), then a ``CodedGradient`` placing it (``fit_intercept=True``) with
the uncoded code and with fractional repetition at ``s = 1`` (each worker
holds the whole data set on 2 workers), and one round.  Beside it, in the
same process after the placement, one ``client.scatter`` of the whole array
to one worker: Dask's default (through the scheduler) and ``direct=True``.

The ratios the targets are stated on: the client's peak memory over the
data's size (its peak less what it held before the data was drawn), and each
worker's over its share of the data (its peak less what it held before the
placement); placement time over the time of one ``client.scatter`` of the
whole array.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any, cast

import numpy as np

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.memory import PeakMemory, start_sampling, stop_sampling
from dask_gradcode.bench.report import machine_description, markdown_table

__all__ = ["BENCHMARK", "measure", "page", "probe"]

NAME = "placement"

#: (name, scheme, n_stragglers) of the codes placed.
CODES = (("uncoded", "uncoded", 0), ("replicated s=1", "fractional-repetition", 1))


def probe(
    rows: int, features: int, code_name: str, transport: str, workers: int
) -> dict[str, Any]:
    """One measurement, in this (fresh) process; see the module's description."""
    from distributed import Client, LocalCluster

    from dask_gradcode.codes import make_code
    from dask_gradcode.scheduler import CodedGradient

    _, scheme, stragglers = next(c for c in CODES if c[0] == code_name)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit=0,
        ) as cluster,
        Client(cluster) as client,
    ):
        sampler = PeakMemory()  # the data counts: the client holds it
        X = np.random.default_rng(0).standard_normal((rows, features))
        y = (X[:, 0] > 0).astype(float)
        data_mb = (X.nbytes + y.nbytes) / 2**20
        client.run(start_sampling)
        code = make_code(scheme, workers, stragglers)
        began = time.perf_counter()
        with CodedGradient(
            client,
            code,
            X,
            y,
            "log_loss",
            fit_intercept=True,
            transport=cast(Any, transport),
        ) as coded:
            placed = time.perf_counter() - began
            coded(np.zeros(features + 1))
            grown = [b / 2**20 for b in client.run(stop_sampling).values()]
        peak_client = (sampler.stop() - sampler.start) / 2**20
        scatter = {}
        for direct in (False, True):
            began = time.perf_counter()
            future = client.scatter(X, workers=[coded.workers[0]], direct=direct)
            scatter[direct] = time.perf_counter() - began
            client.cancel(future)
            del future
    share_mb = data_mb * code.load_fraction
    return {
        "rows": rows,
        "code": code_name,
        "transport": transport,
        "data_mb": data_mb,
        "client_peak_over_data": peak_client / data_mb,
        "worker_peak_over_share": max(grown) / share_mb,
        "placement_s": placed,
        "scatter_s": scatter[False],
        "scatter_direct_s": scatter[True],
        "placement_over_scatter": placed / scatter[False],
        "placement_over_direct_scatter": placed / scatter[True],
    }


def _run_probe(rows: int, o: Options, code: str, transport: str) -> dict[str, Any]:
    """:func:`probe` in a fresh process (so its peak memory is its own)."""
    arguments = [str(rows), str(o.features), code, transport, str(o.workers)]
    done = subprocess.run(
        [sys.executable, "-m", "dask_gradcode.bench._placement_probe", *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the placement probe ({' '.join(arguments)}) failed:\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(session: Session, o: Options) -> Measured:
    """Every row count, code and transport, each in its own process."""
    table = []
    runs = [
        (rows, code, transport)
        for rows in o.row_counts
        for code, _, _ in CODES
        for transport in ("direct", "futures")
    ]
    with session.bar(total=len(runs), desc=NAME, unit="probe") as bar:
        for rows, code, transport in runs:
            bar.set_postfix_str(f"{rows:,} rows, {code}, {transport}")
            table.append(_run_probe(rows, o, code, transport))
            bar.update()
    return Measured({"placement": table, "targets": _targets(table)})


def _targets(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worst ratio of each target over the runs, and whether it is met."""
    largest = max(r["rows"] for r in table)
    at_largest = [r for r in table if r["rows"] == largest]
    rows = [
        ("client peak / data", "client_peak_over_data", 1.5),
        ("worker peak / its share", "worker_peak_over_share", 1.2),
        ("placement / one client.scatter", "placement_over_scatter", 2.0),
    ]
    return [
        {
            "target": name,
            "rows": largest,
            "worst": max(r[key] for r in at_largest),
            "bound": f"<= {bound:g}",
            "met": "yes" if max(r[key] for r in at_largest) <= bound else "no",
        }
        for name, key, bound in rows
    ]


COLUMNS = {
    "rows": "rows",
    "code": "code",
    "transport": "transport",
    "data_mb": "data (MiB)",
    "client_peak_over_data": "client peak / data",
    "worker_peak_over_share": "worker peak / share",
    "placement_s": "placement (s)",
    "scatter_s": "client.scatter (s)",
    "scatter_direct_s": "scatter, direct (s)",
    "placement_over_scatter": "placement / scatter",
}

TARGET_COLUMNS = {
    "target": "target",
    "rows": "at rows",
    "worst": "worst measured",
    "bound": "target",
    "met": "met",
}


def page(measured: Measured, session: Session) -> Page:
    """The tables and the memory ratios against the rows."""
    o, table = measured.options, measured.tables["placement"]
    text = f"""# Placement: memory and time at the cost of the data

{session.reproduce()}  Machine: {machine_description()}.  Each row is a
fresh Python process with a fresh `LocalCluster` of {o.workers} worker
processes: `float64` data of `rows x {o.features}`, placed by a
`CodedGradient` (`fit_intercept=True`) with the uncoded code (each worker
holds half the rows) or fractional repetition with `s = 1` (each holds all
of them), one round, then one `client.scatter` of the whole array to one
worker (Dask's default, through the scheduler, and `direct=True`).  Peak
memory is each process's resident memory sampled every millisecond: the
client's above what it held before the data was drawn (the data counts),
over the data's size; each worker's above what it held before the
placement, over its share.

How placement works: each worker's partitions are views of the caller's
rows (no copy on the client, and none at all with in-process workers, which
hold those views); the intercept's column is never materialised (rounds wrap
the rows, `objectives.WithIntercept`); each shard is scattered straight from
the client to its worker (`direct=True`: Dask's default relays through the
scheduler, which holds a serialised copy on the client and relays every
byte), through the scheduler only when the client cannot reach the worker.

## Targets (the largest data)

{markdown_table(measured.tables["targets"], TARGET_COLUMNS)}

## Every run

{markdown_table(table, COLUMNS)}

![peak memory against rows](placement.png)
"""
    return Page(text, {"": _plot(table)})


def _plot(table: list[dict[str, Any]]) -> Any:
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for code, _, _ in CODES:
        rows = [r for r in table if r["code"] == code and r["transport"] == "direct"]
        sizes = [r["rows"] for r in rows]
        ax.plot(
            sizes,
            [r["client_peak_over_data"] for r in rows],
            "o-",
            label=f"client, {code}",
        )
        ax.plot(
            sizes,
            [r["worker_peak_over_share"] for r in rows],
            "s--",
            label=f"worker, {code}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("rows")
    ax.set_ylabel("peak memory / data (or share)")
    ax.axhline(1.0, color="grey", linewidth=0.5)
    ax.legend(fontsize="small")
    return figure


BENCHMARK = Benchmark(
    NAME,
    files=NAME,
    help="peak memory of the client and workers and the time of placing the data, "
    "against client.scatter",
    local_only="measures the memory of fresh worker processes it starts itself",
    measure=measure,
    page=page,
    transport=False,
    options=(
        opt.option(
            "--row-counts",
            (200_000, 1_000_000, 4_000_000),
            opt.at_least(100),
            "rows of the data sets",
            nargs="+",
        ),
        opt.features(100),
        opt.workers(2),
    ),
)
