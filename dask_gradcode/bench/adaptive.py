"""Adaptive rounds against static choices, scenario by scenario, in one run.

For every straggler scenario, five ways to compute the same gradient run on
the same cluster, the same data and the same injected delays (the models key
on the physical worker and the round, so each method meets the same slow
workers in the same rounds):

- ``uncoded``: one partition per worker, wait for all;
- ``static``: the ``gaussian-mds`` code (``s`` stragglers, ``m = 1``), every
  round coded;
- ``speculative``: the same placement, every round split equally among the
  holders with speculative backups of late shares (backup tasks alone);
- ``ignore-stragglers``: one partition per worker, skip the ``s`` slowest
  (approximate: not the gradient);
- ``adaptive``: the same placement as ``static``, each round's plan chosen
  from measured speeds and round times.

Two measurements per scenario and method: round times at fixed weights
(mean, median, 90th percentile, plans run, exactness against the gradient
computed on the client; the methods' rounds interleaved, so a drift of the
machine's speed weighs on all alike), and a convergence run (L-BFGS from zero, seconds of
rounds until the mean log-loss is within ``gap`` of the optimum).  The
ratios the targets are stated on are printed from the same run.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
from distributed import Client

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.convergence import (
    lbfgs_from_zero,
    mean_log_loss,
    optimal_loss,
    standardised_classification,
)
from dask_gradcode.bench.report import Report, machine_description, markdown_table
from dask_gradcode.bench.schemes import check_stragglers
from dask_gradcode.codes import make_code
from dask_gradcode.objectives import LogLoss
from dask_gradcode.plotting import plot_rounds
from dask_gradcode.scheduler import CodedGradient, RoundRecord
from dask_gradcode.stragglers import ComputeTime, MarkovStragglers, SlowWorkers

__all__ = [
    "BENCHMARK",
    "METHODS",
    "all_scenarios",
    "chosen_scenarios",
    "measure",
    "page",
    "run",
]

NAME = "adaptive"
WARMUP = 3

#: method -> (scheme, tolerates s?, policy)
METHODS: dict[str, tuple[str, bool, str]] = {
    "uncoded": ("uncoded", False, "static"),
    "static": ("gaussian-mds", True, "static"),
    "speculative": ("gaussian-mds", True, "speculative"),
    "ignore-stragglers": ("ignore-stragglers", True, "static"),
    "adaptive": ("gaussian-mds", True, "adaptive"),
}


@dataclass(frozen=True)
class Scenario:
    """A straggler scenario: its name, description and model."""

    name: str
    description: str
    model: Callable[[int], Any]  # workers -> straggler model


def all_scenarios(stragglers: int) -> list[Scenario]:
    """The scenarios of the issue, for a code tolerating ``stragglers``."""
    return [
        Scenario("none", "no slow worker", lambda n: None),
        Scenario(
            "random",
            f"{stragglers} random workers per round +0.3 s",
            lambda n: SlowWorkers(stragglers, delay=0.3, random_state=0),
        ),
        Scenario(
            "rare",
            "each worker 3% of rounds +1 s",
            lambda n: SlowWorkers(p=0.03, delay=1.0, random_state=1),
        ),
        Scenario(
            "persistent",
            f"{stragglers} fixed workers 4x their compute time",
            lambda n: SlowWorkers(
                workers=range(1, n, max(1, n // stragglers))[:stragglers], factor=4
            ),
        ),
        Scenario(
            "markov",
            "Markov: fast->slow 5%, slow->fast 25% per round, +0.3 s",
            lambda n: MarkovStragglers(0.05, 0.25, delay=0.3, random_state=2),
        ),
    ]


def fixed_weights(dim: int) -> np.ndarray:
    """The weights round times are measured at, the same for every method."""
    return np.random.default_rng(1).standard_normal(dim) * 0.01


@dataclass(frozen=True)
class Problem:
    """What every method and scenario of a run computes.

    Attributes
    ----------
    X, y : ndarray
        The standardised data (the models fit an intercept).
    workers : int
        The codes' ``n``.
    stragglers : int
        The ``s`` of the methods that tolerate stragglers.
    best : float
        The optimal mean log-loss.
    reference : ndarray
        The gradient at :meth:`weights`, computed on the client.
    """

    X: np.ndarray
    y: np.ndarray
    workers: int
    stragglers: int
    best: float
    reference: np.ndarray

    def weights(self) -> np.ndarray:
        """The fixed weights the round times are measured at."""
        return fixed_weights(self.X.shape[1] + 1)

    def coded(self, client: Client, method: str, model: Any) -> CodedGradient:
        """``method``'s coded gradient under the straggler ``model``."""
        scheme, tolerant, policy = METHODS[method]
        code = make_code(
            scheme, self.workers, self.stragglers if tolerant else 0, 1, random_state=0
        )
        return CodedGradient(
            client,
            code,
            self.X,
            self.y,
            "log_loss",
            straggler_model=model,
            fit_intercept=True,
            policy=policy,
        )


def round_times(
    client: Client, problem: Problem, model_of: Callable[[], Any], rounds: int
) -> tuple[dict[str, dict[str, Any]], dict[str, list[RoundRecord]]]:
    """Rounds at fixed weights for every method, interleaved round by round.

    Every method's ``CodedGradient`` is open at once; each round runs every
    method once, in an order rotated from round to round, so a drift of the
    machine's speed during the run weighs on every method alike.  The heap
    built so far is frozen (``gc.freeze``) while the rounds run: the full
    garbage collections of an in-process cluster's shared interpreter
    otherwise stop every worker at once for a few hundred milliseconds.
    """
    w, reference = problem.weights(), problem.reference
    errors: dict[str, list[float]] = {method: [] for method in METHODS}
    with ExitStack() as stack:
        coded = {
            method: stack.enter_context(problem.coded(client, method, model_of()))
            for method in METHODS
        }
        gc.collect()
        gc.freeze()  # after the placements: what the rounds keep alive
        stack.callback(gc.unfreeze)
        order = list(METHODS)
        for round_number in range(WARMUP + rounds):
            shift = round_number % len(order)
            for method in order[shift:] + order[:shift]:
                _, gradient = coded[method](w)
                errors[method].append(
                    np.linalg.norm(gradient - reference) / np.linalg.norm(reference)
                )
    timed, histories = {}, {}
    for method, coded_gradient in coded.items():
        history = coded_gradient.history[WARMUP:]
        wall = np.array([r.wall_seconds for r in history])
        timed[method] = {
            "mean_ms": 1e3 * wall.mean(),
            "median_ms": 1e3 * np.median(wall),
            "p90_ms": 1e3 * np.quantile(wall, 0.9),
            "split_rounds": sum(r.plan == "split" for r in history),
            "coded_rounds": sum(r.plan == "coded" for r in history),
            "backups": sum(len(r.backups) for r in history),
            "max_relative_error": float(max(errors[method][WARMUP:])),
        }
        histories[method] = coded_gradient.history
    return timed, histories


def time_to_gap(
    client: Client, problem: Problem, method: str, model: Any, gap: float, limit: int
) -> dict[str, Any]:
    """L-BFGS from zero until the mean log-loss is within ``gap`` of the optimum.

    At most ``limit`` rounds; only the rounds' own time counts.
    """
    X, y = problem.X, problem.y
    n_rows = len(y)
    clock = {"rounds": 0.0, "reached": float("nan"), "iterations": 0}
    with problem.coded(client, method, model) as coded:

        def mean_loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            loss, gradient = coded(w)
            clock["rounds"] += coded.history[-1].wall_seconds
            return loss / n_rows, gradient / n_rows

        def reached(iteration: int, w: np.ndarray, objective: float) -> bool:
            # The true loss, on the client, off the clock (rounds only count).
            clock["iterations"] = iteration
            if mean_log_loss(X, y, w) <= problem.best + gap:
                clock["reached"] = clock["rounds"]
                return True
            return len(coded.history) >= limit

        lbfgs_from_zero(mean_loss, X.shape[1] + 1, limit, reached)
    return {
        "seconds_to_gap": clock["reached"],
        "rounds_to_gap": len(coded.history)
        if np.isfinite(clock["reached"])
        else float("nan"),
    }


def measure(session: Session, o: Options) -> Measured:
    """Run every method in every scenario; round times and time to the optimum.

    The codes of ``o.workers`` workers tolerate ``o.stragglers``; the data
    is ``make_classification`` (standardised).  ``o.compute_ms`` emulates
    (:class:`~dask_gradcode.stragglers.ComputeTime`) the computation of
    ``rows / workers`` rows, the uncoded load, in milliseconds: every worker
    computes as if it had a core of its own (the workers of an embedded
    cluster share this machine's cores); the slow-worker models apply on
    top, and 0 leaves the real computation only.  ``o.rounds`` rounds per
    method and scenario are measured after 3 warm-up rounds; a convergence
    run stops within ``o.gap`` of the optimum or after ``o.max_rounds``
    rounds.  ``o.scenarios`` is a comma-separated subset of
    ``none,random,rare,persistent,markov`` (None: all).  Returns the tables
    ``methods`` and ``targets``; facts: the ``scenarios`` run and the
    adaptive method's round ``histories`` by scenario.
    """
    workers, stragglers, rows = o.workers, o.stragglers, o.rows
    check_stragglers(stragglers, workers)
    chosen = chosen_scenarios(stragglers, o.scenarios)
    X, y = standardised_classification(rows, o.features)
    with_ones = np.hstack([X, np.ones((rows, 1))])
    w = fixed_weights(o.features + 1)
    _, reference = LogLoss().value_and_gradient(w, with_ones, y)
    problem = Problem(X, y, workers, stragglers, optimal_loss(X, y), reference)
    table, histories = [], {}
    per_row = o.compute_ms / 1e3 / (rows / workers)

    def model_of(scenario: Scenario) -> Any:
        model = scenario.model(workers)
        return ComputeTime(per_row, then=model) if per_row > 0 else model

    with (
        session.target.connect(workers) as client,
        session.bar(
            total=len(chosen) * (1 + len(METHODS)), desc="adaptive", unit="run"
        ) as bar,
    ):
        for scenario in chosen:
            bar.set_postfix_str(f"{scenario.name} round times")
            timed, history = round_times(
                client, problem, functools.partial(model_of, scenario), o.rounds
            )
            bar.update()
            histories[scenario.name] = history["adaptive"]
            for method in METHODS:
                bar.set_postfix_str(f"{scenario.name} {method} to the optimum")
                converged = time_to_gap(
                    client, problem, method, model_of(scenario), o.gap, o.max_rounds
                )
                bar.update()
                table.append(
                    {"scenario": scenario.name, "method": method}
                    | timed[method]
                    | converged
                )
    return Measured(
        {"methods": table, "targets": target_ratios(table)},
        facts={"scenarios": chosen, "histories": histories},
    )


def chosen_scenarios(
    stragglers: int, names: str | None, among: tuple[str, ...] | None = None
) -> list[Scenario]:
    """The scenarios ``names`` (comma-separated) picks, all of them for None.

    ``among``: the names a benchmark offers (default every scenario).
    """
    chosen = [s for s in all_scenarios(stragglers) if among is None or s.name in among]
    if names is None:
        return chosen
    picked = [name.strip() for name in names.split(",") if name.strip()]
    unknown = sorted(set(picked) - {s.name for s in chosen})
    if unknown or not picked:
        raise ValueError(
            f"unknown scenarios {unknown}; choose from "
            f"{','.join(s.name for s in chosen)}"
        )
    return [s for s in chosen if s.name in picked]


def run(**options: Any) -> Report:
    """Measure, then write the page: ``BENCHMARK.run(**options)``."""
    return BENCHMARK.run(**options)


def page(measured: Measured, session: Session) -> Page:
    """Each scenario's adaptive rounds, the bars of every method, the page."""
    table = measured.tables["methods"]
    figures = {
        f"rounds_{name}": plot_rounds(
            history, title=f"adaptive, scenario {name!r}: its rounds"
        )
        for name, history in measured.facts["histories"].items()
    }
    figures[""] = _bars(table)
    return Page(_markdown(measured, session), figures)


def _mean(table: list[dict[str, Any]], scenario: str, method: str) -> float:
    for row in table:
        if row["scenario"] == scenario and row["method"] == method:
            return row["mean_ms"]
    return float("nan")


def target_ratios(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, as ratios of mean round times from this run."""
    m = lambda s, k: _mean(table, s, k)
    rows = [
        (
            "none",
            "adaptive / uncoded",
            m("none", "adaptive") / m("none", "uncoded"),
            "<= 1.05",
        ),
        (
            "random",
            "uncoded / adaptive",
            m("random", "uncoded") / m("random", "adaptive"),
            ">= 3",
        ),
        (
            "random",
            "adaptive / static",
            m("random", "adaptive") / m("random", "static"),
            "<= 1.10",
        ),
        (
            "rare",
            "adaptive / min(uncoded, static)",
            m("rare", "adaptive") / min(m("rare", "uncoded"), m("rare", "static")),
            "<= 0.90",
        ),
        (
            "persistent",
            "static / adaptive",
            m("persistent", "static") / m("persistent", "adaptive"),
            ">= 1.5",
        ),
        (
            "markov",
            "adaptive / min(uncoded, static)",
            m("markov", "adaptive")
            / min(m("markov", "uncoded"), m("markov", "static")),
            "report",
        ),
    ]
    present = {row["scenario"] for row in table}
    out = []
    for scenario, ratio, value, goal in rows:
        if scenario not in present:
            continue
        if goal == "report":
            met = ""
        else:
            bound = float(goal.split()[-1])
            met = (
                "yes"
                if (value <= bound if goal.startswith("<=") else value >= bound)
                else "no"
            )
        out.append(
            {
                "scenario": scenario,
                "ratio": ratio,
                "value": value,
                "target": goal,
                "met": met,
            }
        )
    return out


def _bars(table: list[dict[str, Any]]) -> Any:
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row["scenario"] for row in table))
    methods = list(METHODS)
    figure, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        values = [_mean(table, s, method) for s in names]
        ax.bar(np.arange(len(names)) + k * width, values, width, label=method)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_ylabel("mean round (ms)")
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    ax.set_title("mean round time per scenario (lower is better)")
    return figure


COLUMNS = {
    "scenario": "scenario",
    "method": "method",
    "mean_ms": "mean round (ms)",
    "median_ms": "median (ms)",
    "p90_ms": "p90 (ms)",
    "split_rounds": "split rounds",
    "coded_rounds": "coded rounds",
    "backups": "shares backed up",
    "max_relative_error": "max relative error",
    "seconds_to_gap": "seconds to optimum + gap",
    "rounds_to_gap": "rounds to it",
}

TARGET_COLUMNS = {
    "scenario": "scenario",
    "ratio": "ratio (mean round times)",
    "value": "measured",
    "target": "target",
    "met": "met",
}


def _markdown(measured: Measured, session: Session) -> str:
    table, targets = measured.tables["methods"], measured.tables["targets"]
    o, chosen = measured.options, measured.facts["scenarios"]
    workers, stragglers = o.workers, o.stragglers
    described = "\n".join(f"- `{s.name}`: {s.description}" for s in chosen)
    plots = "\n".join(
        f"![adaptive rounds, {s.name}](adaptive_rounds_{s.name}.png)" for s in chosen
    )
    return f"""# Adaptive rounds against static choices

{session.reproduce()}  Cluster: {session.target.describe()}; machine:
{machine_description()}.  Data: `make_classification`, {o.rows} rows x
{o.features} features (standardised), logistic loss with intercept; `n =
{workers}`, codes tolerate `s = {stragglers}` (`gaussian-mds`, `m = 1`: each
worker holds {stragglers + 1} times the uncoded load).  Every worker's
computation is emulated as {o.compute_ms:g} ms per `1 / n` of the rows
(`ComputeTime`, on top of the real computation), as if each worker had a
core of its own: the {workers} workers share this machine's cores, whose
queueing would otherwise hide what a worker's load costs.  Each method ran
{o.rounds} rounds at fixed weights after {WARMUP} warm-up rounds, the methods
taking turns round by round (in an order rotated every round, so a drift of
the machine's speed weighs on every method alike, with the client's heap
frozen by `gc.freeze()` so that full garbage collections of the shared
interpreter scan less), then an L-BFGS fit from zero
until the mean log-loss was within {o.gap:g} of the optimum.  Scenarios (slow
workers are chosen per physical worker and round, the same for every
method):

{described}

## Targets (ratios of mean round times, this run)

{markdown_table(targets, TARGET_COLUMNS)}

## Every method in every scenario

{markdown_table(table, COLUMNS)}

![mean round time per scenario](adaptive.png)

"max relative error" is the largest relative error of a round's gradient
against the gradient computed on the client: rounding for every exact
method, the skipped partitions' share for `ignore-stragglers`.  "shares
backed up" counts split-round shares recomputed by another holder because
their worker was late or failed.

## The adaptive method's rounds

Each plot shows one scenario's measured rounds: on top the round's wall time
coloured by its plan, below each worker's response time (crosses: late, its
reply not waited for or its rows recomputed elsewhere).

{plots}
"""


BENCHMARK = Benchmark(
    "adaptive",
    files=NAME,
    help="adaptive rounds against uncoded, the static code, speculative backups and "
    "ignore-stragglers, in five straggler scenarios",
    measure=measure,
    page=page,
    options=(
        opt.workers(9, 3),
        opt.stragglers(2, 1),
        opt.rows(18_000),
        opt.features(50),
        opt.option(
            "--compute-ms",
            25.0,
            opt.seconds,
            "emulated milliseconds of computation per 1/n of the rows (0: real only)",
        ),
        opt.rounds(60, "measured rounds per method and scenario"),
        opt.gap(1e-4),
        opt.rounds(80, "rounds a convergence run may take", "--max-rounds"),
        opt.option(
            "--scenarios",
            None,
            None,
            "comma-separated subset of none,random,rare,persistent,markov",
            metavar="NAMES",
        ),
    ),
    # measured with the futures transport, the default before the direct one
    published=("--transport", "futures"),
)
