"""What a fit does when workers hang, die, fail, restart or join: one table.

Every scenario runs coded rounds of a logistic-regression gradient on its own
``dask scheduler`` / ``dask worker`` processes on localhost (a
:class:`~dask_gradcode.bench.processes.ProcessCluster`), injects one fault at
a fixed round, and keeps going until the fit has recovered.  Each round's
gradient is compared with the one computed on the client; the extra time of
the affected rounds is their wall time beyond the median round of the same
run before the fault.  The benchmark needs local processes it can signal, so
it always starts its own cluster.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.datasets import make_classification

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.processes import ProcessCluster
from dask_gradcode.bench.report import Report, machine_description, markdown_table
from dask_gradcode.codes import make_code
from dask_gradcode.faults import WrongResults
from dask_gradcode.objectives import LogLoss
from dask_gradcode.scheduler import CodedGradient, IntegrityWarning, RoundRecord
from dask_gradcode.stragglers import FailingWorkers

__all__ = ["BENCHMARK", "measure", "page", "run"]

NAME = "reliability"


@dataclass(frozen=True)
class Scenario:
    """One fault: what it is, and how to inject and repair it."""

    name: str
    fault: str
    inject: Callable[[ProcessCluster, CodedGradient, int], list[int]]
    repair: Callable[[ProcessCluster, list[int]], None]
    options: dict[str, Any]
    nanny: bool = False


def _victims(cluster: ProcessCluster, cg: CodedGradient, count: int) -> list[int]:
    pids = cluster.pids()
    return [pids[a] for a in cg.workers[:count]]


def _signal(
    count: int, how: Callable[[ProcessCluster, int], None]
) -> Callable[[ProcessCluster, CodedGradient, int], list[int]]:
    """A fault: ``how`` (stop, kill) the first ``count`` workers of the code."""

    def inject(cluster: ProcessCluster, cg: CodedGradient, _s: int) -> list[int]:
        pids = _victims(cluster, cg, count)
        for pid in pids:
            how(cluster, pid)
        return pids

    return inject


def _stop(count: int) -> Callable[[ProcessCluster, CodedGradient, int], list[int]]:
    return _signal(count, ProcessCluster.stop)


def _kill(count: int) -> Callable[[ProcessCluster, CodedGradient, int], list[int]]:
    return _signal(count, ProcessCluster.kill)


def _resume_after(seconds: float) -> Callable[[ProcessCluster, list[int]], None]:
    def repair(cluster: ProcessCluster, pids: list[int]) -> None:
        time.sleep(seconds)
        for pid in pids:
            cluster.resume(pid)

    return repair


def _stop_scheduler(cluster: ProcessCluster, _cg: CodedGradient, _s: int) -> list[int]:
    cluster.stop(cluster.scheduler_pid)
    return [cluster.scheduler_pid]


def _replace(cluster: ProcessCluster, pids: list[int]) -> None:
    for _ in pids:
        cluster.add_worker(wait=False)


def _no_fault(*_: Any) -> list[int]:
    return []


def _no_repair(*_: Any) -> None:
    return None


def scenarios(s: int, fault_at: int = 10) -> list[Scenario]:
    """The faults measured, for a code tolerating ``s`` stragglers.

    ``fault_at`` is the first round of the raising-task scenario.
    """
    return [
        Scenario("none", "no fault", _no_fault, _no_repair, {}),
        Scenario(
            "stop s",
            f"SIGSTOP {s} worker(s) for 5 s, then SIGCONT",
            _stop(s),
            _resume_after(5.0),
            {},
        ),
        Scenario(
            "stop s+1",
            f"SIGSTOP {s + 1} workers for 5 s, then SIGCONT",
            _stop(s + 1),
            _resume_after(5.0),
            {},
        ),
        Scenario(
            "kill s",
            f"SIGKILL {s} worker(s); as many new workers started",
            _kill(s),
            _replace,
            {},
        ),
        Scenario(
            "kill s+1",
            f"SIGKILL {s + 1} workers; as many new workers started",
            _kill(s + 1),
            _replace,
            {},
        ),
        Scenario(
            "kill s+1, approximate",
            f"SIGKILL {s + 1} workers with on_failure='approximate'; new workers started",
            _kill(s + 1),
            _replace,
            {"on_failure": "approximate"},
        ),
        Scenario(
            "task raises",
            "one worker's task raises MemoryError in every round (the same "
            "physical worker, whatever the code)",
            _no_fault,
            _no_repair,
            {
                "straggler_model": FailingWorkers(
                    workers=[0], iterations=range(fault_at, 10**9), others_delay=0.05
                )
            },
        ),
        *(
            Scenario(
                f"wrong results: {mode}",
                f"one worker's partial gradients {how} from round {fault_at} on "
                "(silent: no error)",
                _no_fault,
                _no_repair,
                {"fault_model": WrongResults([0], mode=mode, first_iteration=fault_at)},
            )
            for mode, how in (
                ("scale", "scaled by 1 + 1e-3"),
                ("zeros", "all zero"),
                ("noise", "plus noise of 1e-3 times their RMS"),
            )
        ),
        Scenario(
            "scheduler stall",
            "SIGSTOP the dask scheduler for 5 s, then SIGCONT (the workers are "
            "healthy)",
            _stop_scheduler,
            _resume_after(5.0),
            {},
        ),
        Scenario(
            "nanny restart",
            "SIGKILL 1 worker under a nanny (it restarts under a new address)",
            _kill(1),
            _no_repair,
            {},
            nanny=True,
        ),
    ]


def measure(session: Session, o: Options) -> Measured:
    """Inject each fault into a running fit and report what the fit did.

    ``o.workers`` worker processes (and code workers), a gaussian-mds code
    tolerating ``o.stragglers``, ``o.rows`` x ``o.features`` rows of logistic
    regression; ``o.rounds_before`` rounds before the fault (their median is
    the baseline round), at least ``o.rounds_after`` after it.  The
    session's target must be the embedded default: the benchmark signals its
    own processes.  Returns the tables ``faults`` (one row per scenario) and
    ``rounds`` (each scenario's round times).
    """
    workers, stragglers, rounds_before = o.workers, o.stragglers, o.rounds_before
    if not 0 < stragglers < workers - 1:
        raise ValueError(
            f"stragglers={stragglers} must be between 1 and workers - 2 = "
            f"{workers - 2} (the s + 1 scenarios need a survivor)"
        )
    X, y = make_classification(o.rows, o.features, random_state=0)
    w = np.random.default_rng(0).standard_normal(o.features) * 0.1
    expected = LogLoss().value_and_gradient(w, X, y)
    chosen = scenarios(stragglers, rounds_before)
    results, series = [], []
    for scenario in session.bar(chosen, desc="faults", unit="scenario"):
        row, walls = _measure(
            scenario,
            workers,
            stragglers,
            X,
            y,
            w,
            expected,
            rounds_before,
            o.rounds_after,
        )
        results.append(row)
        series.append(
            {"scenario": scenario.name, "walls": walls, "fault_at": rounds_before}
        )
    integrity = _integrity_cost(workers, stragglers, X, y, w, o.cost_rounds)
    return Measured({"faults": results, "rounds": series, "integrity": integrity})


def _integrity_cost(
    n: int, s: int, X: np.ndarray, y: np.ndarray, w: np.ndarray, rounds: int
) -> list[dict[str, Any]]:
    """Rounds with and without each integrity check, interleaved, no faults."""
    coded = make_code("gaussian-mds", n, s, 1, random_state=0)
    uncoded = make_code("uncoded", n, 0, random_state=0)
    with ProcessCluster(n) as cluster:
        return [
            *_cost_pair(
                cluster,
                coded,
                X,
                y,
                w,
                rounds,
                ("verify=False (no check)", {"verify": False}),
                ("verify=True (the default)", {}),
            ),
            *_cost_pair(
                cluster,
                uncoded,
                X,
                y,
                w,
                rounds,
                ("uncoded, no audit (the default)", {}),
                ("uncoded, audit_every=10", {"audit_every": 10}),
            ),
        ]


def _cost_pair(
    cluster: ProcessCluster,
    code: Any,
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    rounds: int,
    base: tuple[str, dict[str, Any]],
    checked: tuple[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Two settings of one code, rounds interleaved (3 warm-up rounds each)."""
    walls: dict[bool, list[float]] = {True: [], False: []}
    with (
        CodedGradient(cluster.client, code, X, y, "log_loss", **base[1]) as off,
        CodedGradient(cluster.client, code, X, y, "log_loss", **checked[1]) as on,
    ):
        for index in range(rounds + 3):
            order = (on, off) if index % 2 else (off, on)
            for cg in order:
                cg(w)
                if index >= 3:
                    walls[cg is on].append(cg.history[-1].wall_seconds)
        verified = sum(r.verified for r in on.history[3:])
    median = {k: statistics.median(v) for k, v in walls.items()}
    mean = {k: statistics.fmean(v) for k, v in walls.items()}
    return [
        {
            "setting": name,
            "median round (ms)": 1e3 * median[is_on],
            "mean round (ms)": 1e3 * mean[is_on],
            "ratio": mean[is_on] / mean[False],
            "verified rounds": f"{verified} of {rounds}" if is_on else "-",
        }
        for name, is_on in ((base[0], False), (checked[0], True))
    ]


def run(**options: Any) -> Report:
    """Measure, then write the page: ``BENCHMARK.run(**options)``."""
    return BENCHMARK.run(**options)


def page(measured: Measured, session: Session) -> Page:
    """The round times under each fault, and the markdown page."""
    from dask_gradcode.bench.plots import rounds_under_faults

    return Page(
        _markdown(
            measured.tables["faults"],
            measured.tables["integrity"],
            measured.options,
            session,
        ),
        {"": rounds_under_faults(measured.tables["rounds"])},
    )


def _measure(
    scenario: Scenario,
    n: int,
    s: int,
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    expected: tuple[float, np.ndarray],
    before: int,
    after: int,
) -> tuple[dict[str, Any], list[float]]:
    code = make_code("gaussian-mds", n, s, 1, random_state=0)
    with (
        ProcessCluster(n, nanny=scenario.nanny) as cluster,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        options = {"check_interval": 0.5, **scenario.options}
        with CodedGradient(cluster.client, code, X, y, "log_loss", **options) as cg:
            for _ in range(before):
                cg(w)
            pids = scenario.inject(cluster, cg, s)
            repairer = None
            if pids:
                import threading

                repairer = threading.Thread(
                    target=scenario.repair, args=(cluster, pids)
                )
                repairer.start()
            errors: list[float] = []
            exact: list[bool] = []
            outcome: str | None = None
            # At least `after` rounds, and on until the repair is done and the
            # code is back to its planned size (or a minute has passed).
            give_up = time.monotonic() + 60
            try:
                while len(errors) < after or (
                    repairer is not None
                    and time.monotonic() < give_up
                    and (
                        repairer.is_alive()
                        or cg.code.n_workers < n
                        or not cg.history[-1].exact
                        or not set(cg.workers) <= set(cluster.workers())
                    )
                ):
                    loss, gradient = cg(w)
                    errors.append(_relative_error(loss, gradient, expected))
                    exact.append(cg.history[-1].exact)
            except Exception as error:  # noqa: BLE001 - reported in the table
                outcome = f"{type(error).__name__}: {error}"
            if repairer is not None:
                repairer.join()
            history = list(cg.history)
            final_workers = cg.code.n_workers
    walls = [r.wall_seconds for r in history]
    baseline = statistics.median(walls[:before])
    affected = [r for r in history[before:] if r.wall_seconds > 2 * baseline + 0.02]
    extra = sum(r.wall_seconds - baseline for r in affected)
    row = {
        "scenario": scenario.name,
        "fault": scenario.fault,
        "what the fit does": outcome
        or _describe(history[before:], caught, n, final_workers),
        "affected rounds": len(affected),
        "extra seconds": extra,
        "slowest round (s)": max(walls[before:], default=0.0),
        "baseline round (ms)": 1e3 * baseline,
        "gradients": _exactness(exact, errors),
        "worst relative error": max(errors, default=float("nan")),
    }
    return row, walls


def _relative_error(
    loss: float, gradient: np.ndarray, expected: tuple[float, np.ndarray]
) -> float:
    truth = np.concatenate([[expected[0]], expected[1]])
    got = np.concatenate([[loss], gradient])
    return float(np.linalg.norm(got - truth) / np.linalg.norm(truth))


def _exactness(exact: list[bool], errors: list[float]) -> str:
    wrong = sum(e > 1e-9 for e, x in zip(errors, exact, strict=True) if x)
    if all(exact) and not wrong:
        return "exact in every round"
    if all(exact):
        return (
            f"wrong in {wrong} of {len(exact)} rounds (unverified, before the "
            "check caught it), exact in the rest"
        )
    return f"approximate in {len(exact) - sum(exact)} of {len(exact)} rounds, exact in the rest"


def _describe(
    records: list[RoundRecord], caught: list[Any], n: int, final_workers: int
) -> str:
    """What the fit did, in words, from its records and warnings."""
    parts = []
    erasures = sum(
        bool(r.failed) for r in records if r.attempts == 1 and not r.replanned
    )
    timed_out = sum(bool(r.timed_out) for r in records)
    retried = sum(r.attempts > 1 for r in records)
    replans = sum(r.replanned for r in records) + retried
    raised = sum(bool(r.errors) for r in records)
    sizes = [r.n_workers for r in records]
    if erasures:
        parts.append(f"{erasures} rounds decoded without the failed workers")
    if raised:
        parts.append(f"{raised} rounds had a raising worker (warned)")
    if timed_out:
        parts.append(f"{timed_out} rounds hit the deadline")
    if retried:
        parts.append(f"{retried} rounds re-submitted after a re-plan")
    if min(sizes, default=n) < n:
        parts.append(f"shrank to {min(sizes)} workers")
    if replans and final_workers == n and min(sizes, default=n) < n:
        parts.append(f"grew back to {n}")
    elif any(r.replanned for r in records) and min(sizes, default=n) == n:
        parts.append(
            f"re-planned {sum(r.replanned for r in records)} time(s) to take in new workers"
        )
    wrong = [w for w in caught if issubclass(w.category, IntegrityWarning)]
    if wrong:
        found = [r.iteration for r in records if r.attempts > 1]
        parts.append(
            f"the replies disagreed in round {found[0] if found else '?'}: an audit "
            f"named the wrong worker, dropped it ({len(wrong)} warning) and "
            "computed the round again"
        )
    approximate = [str(w.message) for w in caught if "approximately" in str(w.message)]
    if approximate:
        parts.append("switched to approximate decoding")
    exact = [r.exact for r in records]
    if False in exact and exact[-1]:
        parts.append("exact again once workers joined")
    return "; ".join(parts) or "nothing: every round as before"


COLUMNS = {
    "scenario": "scenario",
    "fault": "fault",
    "what the fit does": "what the fit does",
    "affected rounds": "affected rounds",
    "extra seconds": "extra time of the affected rounds (s)",
    "slowest round (s)": "slowest round (s)",
    "gradients": "gradients",
    "worst relative error": "worst relative error",
}


INTEGRITY_COLUMNS = {
    "setting": "setting",
    "median round (ms)": "median round (ms)",
    "mean round (ms)": "mean round (ms)",
    "ratio": "ratio of the means to no check",
    "verified rounds": "verified rounds",
}


def _markdown(
    rows: list[dict[str, Any]],
    integrity: list[dict[str, Any]],
    o: Options,
    session: Session,
) -> str:
    baseline = statistics.median(r["baseline round (ms)"] for r in rows)
    return f"""# Reliability: hung, failing, dead, restarted and added workers

{session.reproduce(bench_extra=False)}

Measured on {machine_description()}.  Each scenario starts its own `dask
scheduler` and {o.workers} `dask worker` processes on localhost (one thread
each; the nanny scenario starts them under nannies), builds a gaussian-mds
code tolerating `s = {o.stragglers}`, and computes the logistic-regression
gradient of {o.rows:,} x {o.features} rows at fixed weights: 10 rounds, the
fault, then at least 40 rounds and on until the fault is repaired (the
stopped workers resumed, the new workers started) and the code is back to
its planned size and exact.  Each round's gradient is compared with the one
computed on the client.  A round is *affected* when it took more than twice
the median round before the fault (median over the scenarios: {baseline:.0f}
ms); its extra time is what it took beyond that median.  `CodedGradient`
runs with its defaults except `check_interval=0.5` (how often membership is
refreshed): the round deadline is derived from the rounds measured (10 x the
median wait, at least 2 s), and a worker whose heartbeat has not reached the
scheduler for 5 s is hung.

{markdown_table(rows, COLUMNS)}

![round times under each fault](reliability.png)

## Reading it

- Faults the code tolerates (`s` stopped, killed or raising workers) are
  erasures: the rounds go on at full speed and stay exact.
- More than `s` hung workers cost one round its deadline (about 2 s here),
  then a re-plan on the responsive workers; when the stopped workers resume,
  their next heartbeat brings them back and the code grows back to its
  planned size.
- More than `s` dead workers are noticed at once (their connections close):
  the round re-plans without waiting for its deadline; new workers are
  planned in as soon as they register.
- With `on_failure="approximate"` the fit keeps decoding (approximately,
  still skipping up to `s` stragglers) until workers join, then re-plans and
  is exact again.
- A worker whose task keeps raising is an erasure (with a warning naming it)
  and is planned out after three rounds in a row.
- A stalled scheduler costs the direct transport's rounds nothing: they
  never go through it, and the membership checks ask it in the background.
- A worker that returns wrong numbers without any error is caught by the
  code's own redundancy: the round's spare replies disagree with the decoded
  ones, an audit round (every worker's partial gradients, unencoded) names
  the worker whose results differ from its partitions' other holders, and
  the fit drops it and computes the round again: no wrong gradient is
  returned.

## The integrity checks' cost, without faults

On {o.workers} worker processes, {o.cost_rounds} rounds of each setting,
interleaved in pairs; the target is a mean round at most 5% slower.  A
coded round checks the spare replies already in when it can decode (every
10th round waits up to as long again as its wait for them); a round with no
spare reply is unverified (the record's `verified`).  An uncoded plan has
nothing to compare: `audit_every=10` makes the client recompute one
responder's message every 10th round instead (its rounds stay unverified:
one worker is checked, not the round).

{markdown_table(integrity, INTEGRITY_COLUMNS)}
"""


BENCHMARK = Benchmark(
    "faults",
    files=NAME,
    help="what a fit does when worker processes hang, die, raise, restart or join "
    "(starts its own dask scheduler and worker processes)",
    local_only="stops and kills worker processes, so it starts its own on localhost",
    measure=measure,
    page=page,
    options=(
        opt.workers(5, 3, "worker processes"),
        opt.stragglers(1, 1),
        opt.rows(20_000),
        opt.features(20),
        opt.option("--rounds-before", 10, opt.at_least(2), "rounds before the fault"),
        opt.option("--rounds-after", 40, opt.at_least(5), "rounds after it"),
        opt.option(
            "--cost-rounds",
            200,
            opt.at_least(5),
            "rounds of each setting measuring the integrity check's cost",
        ),
    ),
)
