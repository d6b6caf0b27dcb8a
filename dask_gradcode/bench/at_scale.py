"""Coding at the scale it exists for: real 256-worker traces on a virtual clock.

Replays a trace profile (:mod:`dask_gradcode.traces`: per-worker round times
of real cloud workers at several computation loads) through the library's
own collection loops, decoders and policies
(:func:`~dask_gradcode.simulation.simulate`) for every scheme and straggler
tolerance, and asks the planner (:func:`~dask_gradcode.planner.plan`) which
one to use.  The planner sees only the first rounds of the trace; every
record is measured on the rounds after them, so "the planner's choice against
the best in hindsight" is a prediction checked on rounds it did not see.
The client's own cost per round (planning, collecting, decoding) is measured
for real on this machine, at the profile's size and at ``--scale-workers``
(the trace wrapped around).  The simulation needs no cluster; a short live
run under :class:`~dask_gradcode.stragglers.TraceDelays` on the session's
cluster checks its predictions.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.report import Report, machine_description, markdown_table
from dask_gradcode.objectives import get_objective
from dask_gradcode.planner import (
    Candidate,
    PlanRow,
    PlanTable,
    default_stragglers,
    plan,
)
from dask_gradcode.simulation import simulate
from dask_gradcode.traces import TraceProfile

__all__ = ["BENCHMARK", "measure", "page", "run"]

NAME = "at_scale"

#: The Sequential Gradient Coding paper's estimated runtimes on the same kind
#: of traces (its repository's README: 256 Lambdas).
SGC_PUBLISHED = {"gradient coding, s = 15": 109.0, "uncoded": 122.6}


def measure(session: Session, o: Options) -> Measured:
    """Replay ``o.profile`` through every candidate; plan; time to a target.

    The first ``o.plan_rounds`` rounds (default half of the trace) are the
    planner's; the records are measured on the rest.  ``o.workers``
    (default the profile's) is the cluster planned for; ``o.scale_workers``
    repeats the plan's choice, uncoded and the fastest code at that size
    (the trace wrapped) to measure the client's cost there; the live
    validation runs on the session's cluster (``o.validate_workers``).  Time to target
    is the rounds L-BFGS needs to reach ``o.gap`` above the optimum of a
    seeded synthetic logistic regression, times the iteration time.
    """
    if o.profile is None:
        raise ValueError("bench at-scale needs --profile DIR (a folder of load-*.csv)")
    profile = TraceProfile.from_folder(o.profile)
    n = o.workers or profile.n_workers
    planned = o.plan_rounds or max(1, profile.n_rounds // 2)
    held_out = profile.n_rounds - planned
    if held_out < 1:
        raise ValueError(
            f"--plan-rounds {planned} leaves no round of the {profile.n_rounds} "
            "to measure on; lower it"
        )
    stragglers = tuple(o.stragglers) if o.stragglers else default_stragglers(n)
    settings = {"stragglers": stragglers, "dim": o.dim, "n_workers": n}
    choice = plan(profile, rounds=planned, **settings).best
    records = plan(
        profile,
        rounds=held_out,
        start_round=planned,
        progress=lambda items: session.bar(items, desc="candidates"),
        **settings,
    )
    rows = _records(records, choice)
    target = _TargetProblem(n, o.dim, seed=0, gap=o.gap)
    _add_time_to_target(rows, target, profile, n, planned, held_out)
    scale = _client_cost_at(o.scale_workers, profile, rows, choice, planned, held_out)
    live = _validate(session, profile, o) if o.validate_workers else []
    return Measured(
        {
            "records": rows,
            "client_cost": scale,
            "validation": live,
            "trace": _order_statistics(profile),
        },
        facts={
            "profile": profile,
            "n_workers": n,
            "planned": planned,
            "held_out": held_out,
            "choice": choice,
            "records": records,
            "target": target.describe(),
        },
    )


def _key(row: dict[str, Any]) -> tuple[str, int, int, str]:
    """``(scheme, n_stragglers, comm_reduction, policy)`` of a record."""
    return (
        str(row["scheme"]),
        int(row["n_stragglers"]),
        int(row["comm_reduction"]),
        str(row["policy"]),
    )


def _records(records: PlanTable, choice: PlanRow) -> list[dict[str, Any]]:
    """The held-out records, the planner's choice marked."""
    chosen = _key(choice.as_dict())
    return [{**row, "planned": _key(row) == chosen} for row in records.records()]


class _TargetProblem:
    """A seeded synthetic logistic regression split into ``n`` partitions."""

    def __init__(self, n: int, dim: int, *, seed: int, gap: float) -> None:
        rng = np.random.default_rng(seed)
        features = min(dim - 1, 20)
        rows = 20 * n
        self.X = rng.standard_normal((rows, features))
        truth = rng.standard_normal(features)
        self.y = (self.X @ truth + rng.standard_normal(rows) > 0).astype(float)
        self.objective = get_objective("log_loss")
        self.gap = gap
        self.bounds = np.linspace(0, rows, n + 1).astype(int)
        optimum = scipy.optimize.minimize(
            self.full, np.zeros(features), jac=True, method="L-BFGS-B", tol=1e-12
        )
        self.optimum = float(optimum.fun)
        self.target = self.optimum + gap * abs(self.optimum)

    def describe(self) -> str:
        rows, features = self.X.shape
        return (
            f"L2-free logistic regression on {rows:,} x {features} seeded Gaussian "
            f"rows, L-BFGS from zero to {self.gap:g} (relative) above the optimum"
        )

    def full(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        loss, gradient = self.objective.value_and_gradient(w, self.X, self.y)
        return float(loss), np.asarray(gradient)

    def partials(self, w: np.ndarray) -> np.ndarray:
        """Each partition's ``[loss, gradient]`` at ``w``."""
        out = []
        for lo, hi in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            loss, gradient = self.objective.value_and_gradient(
                w, self.X[lo:hi], self.y[lo:hi]
            )
            out.append(np.concatenate([[loss], gradient]))
        return np.asarray(out)

    def rounds_to_target(self, gradient: Any, max_rounds: int = 2000) -> float:
        """Gradient evaluations L-BFGS takes to reach the target (inf: never)."""
        calls = 0
        reached: list[int] = []

        def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
            nonlocal calls
            calls += 1
            if not reached and self.full(w)[0] <= self.target:
                reached.append(calls)
            if calls >= max_rounds or reached:
                raise StopIteration
            return gradient(w, calls - 1)

        try:
            scipy.optimize.minimize(
                fun,
                np.zeros(self.X.shape[1]),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": max_rounds, "maxfun": max_rounds},
            )
        except StopIteration:
            pass
        return float(reached[0]) if reached else float("inf")


def _add_time_to_target(
    rows: list[dict[str, Any]],
    target: _TargetProblem,
    profile: TraceProfile,
    n: int,
    planned: int,
    held_out: int,
) -> None:
    """Rounds and seconds to the target for each record.

    Exact codes return the full gradient: they need the rounds of an exact
    fit.  ``ignore-stragglers`` decodes from the responders the simulation
    found in each round (replayed in order), so its rounds are its own.
    """
    exact_rounds = target.rounds_to_target(lambda w, _: target.full(w))
    approximate: dict[int, float] = {}
    for row in rows:
        if row["exact"]:
            rounds = exact_rounds
        else:
            s = row["n_stragglers"]
            if s not in approximate:
                approximate[s] = _approximate_rounds(
                    target, profile, n, s, planned, held_out
                )
            rounds = approximate[s]
        row["rounds_to_target"] = rounds
        row["time_to_target_s"] = rounds * row["predicted_s"]


def _approximate_rounds(
    target: _TargetProblem,
    profile: TraceProfile,
    n: int,
    s: int,
    planned: int,
    held_out: int,
) -> float:
    code = Candidate("ignore-stragglers", s).build(n)
    result = simulate(
        code,
        profile.latency(n),
        rounds=held_out,
        start_round=planned,
    )
    responders = [tuple(r.responders) for r in result.rounds]
    encoders = [code.worker_encoder(w) for w in range(n)]

    def gradient(w: np.ndarray, call: int) -> tuple[float, np.ndarray]:
        partials = target.partials(w)
        who = responders[call % len(responders)]
        messages = {v: encoders[v](partials[code.partitions(v)]) for v in who}
        vector = code.decode(messages, partials.shape[1])
        return float(vector[0]), np.asarray(vector[1:])

    return target.rounds_to_target(gradient)


def _client_cost_at(
    n: int,
    profile: TraceProfile,
    rows: list[dict[str, Any]],
    choice: PlanRow,
    planned: int,
    held_out: int,
) -> list[dict[str, Any]]:
    """The client's cost per round at ``n`` workers for a few candidates."""
    if not n:
        return []
    fastest = min(
        (r for r in rows if r["scheme"] != "uncoded"), key=lambda r: r["predicted_s"]
    )
    wanted = {_key(choice.as_dict()), _key(fastest), ("uncoded", 0, 1, "static")}
    latency = profile.latency(n)
    out = []
    for scheme, s, m, policy in sorted(wanted):
        # The same fraction of stragglers; (s + 1) scaled keeps fractional
        # repetition's groups whole when n is a multiple of the profile's.
        s_scaled = round((s + 1) * n / profile.n_workers) - 1 if s else 0
        candidate = Candidate(scheme, s_scaled, m, policy)
        started = time.perf_counter()
        try:
            code = candidate.build(n)
        except ValueError as error:
            missing = {"build_s": math.nan, "mean_iteration_s": math.nan}
            out.append(
                {
                    **_row(candidate, n),
                    **missing,
                    "client_ms_per_round": math.nan,
                    "note": f"does not build: {error}",
                }
            )
            continue
        built = time.perf_counter() - started
        result = simulate(
            code,
            latency,
            rounds=held_out,
            start_round=planned,
            policy=policy,
        )
        out.append(
            {
                **_row(candidate, n),
                "build_s": built,
                "mean_iteration_s": result.mean_iteration_s,
                "client_ms_per_round": result.client_ms_per_round,
                "note": "",
            }
        )
    return out


#: ``(scheme, s, m)`` replayed live on the validation cluster.
VALIDATED = (
    ("uncoded", 0, 1),
    ("ignore-stragglers", 2, 1),
    ("fractional-repetition", 1, 1),
    ("cyclic-repetition", 1, 1),
    ("cyclic-repetition", 3, 1),
    ("gaussian-mds", 2, 1),
    ("gaussian-mds", 3, 2),
)


def _validate(
    session: Session, profile: TraceProfile, o: Options
) -> list[dict[str, Any]]:
    """Live rounds under ``TraceDelays`` against the simulation's prediction.

    On ``o.validate_workers`` workers of the session's cluster, each code of
    :data:`VALIDATED` runs ``o.validate_rounds`` rounds twice: without
    injected delays (the cluster's own cost of a round, its overhead) and
    replaying the trace scaled by ``o.time_scale``.  The simulation replays
    the same scaled trace rounds; the prediction is its virtual time plus the
    measured overhead.
    """
    from dask_gradcode.codes import make_code
    from dask_gradcode.scheduler import CodedGradient
    from dask_gradcode.stragglers import TraceDelays

    n, rounds = o.validate_workers, o.validate_rounds
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60 * n, 5))
    y = (X @ rng.standard_normal(5) > 0).astype(float)
    w = np.zeros(5)
    model = TraceDelays(profile, time_scale=o.time_scale, n_samples=len(y))
    latency = profile.scaled(o.time_scale).latency(n)

    out = []
    with session.target.connect(n) as client:
        for scheme, s, m in session.bar(VALIDATED, desc="live rounds"):
            try:
                code = make_code(scheme, n, s, m, random_state=0)
            except ValueError:
                continue  # not buildable on so few workers
            walls = {}
            for name, delays in (("overhead", None), ("live", model)):
                with CodedGradient(
                    client, code, X, y, "log_loss", straggler_model=delays
                ) as cg:
                    for _ in range(rounds):
                        cg(w)
                walls[name] = float(np.mean([r.wall_seconds for r in cg.history]))
            simulated = simulate(code, latency, rounds=rounds).mean_iteration_s
            predicted = simulated + walls["overhead"]
            out.append(
                {
                    "scheme": scheme,
                    "n_stragglers": s,
                    "comm_reduction": m,
                    "live_s": walls["live"],
                    "overhead_s": walls["overhead"],
                    "simulated_s": simulated,
                    "predicted_s": predicted,
                    "error": predicted / walls["live"] - 1,
                }
            )
    return out


def _row(candidate: Candidate, n: int) -> dict[str, Any]:
    return {
        "n_workers": n,
        "scheme": candidate.scheme,
        "n_stragglers": candidate.n_stragglers,
        "comm_reduction": candidate.comm_reduction,
        "policy": candidate.policy,
    }


def _order_statistics(profile: TraceProfile) -> list[dict[str, Any]]:
    """Per load: the k-th fastest of the workers over the median, averaged over rounds."""
    out = []
    for index, load in enumerate(profile.loads):
        ordered = np.sort(profile.durations[index], axis=1)  # rounds x workers
        median = np.median(ordered, axis=1, keepdims=True)
        ratio = (ordered / median).mean(axis=0)
        out.append(
            {
                "load": float(load),
                "median_s": float(np.median(ordered)),
                "p90_over_median": float(np.quantile(ratio, 0.9)),
                "max_over_median": float(ratio[-1]),
                "ordered_over_median": ratio,
            }
        )
    return out


def run(**options: Any) -> Report:
    """Measure, then write the page: ``BENCHMARK.run(**options)``."""
    return BENCHMARK.run(**options)


def page(measured: Measured, session: Session) -> Page:
    """The figures and the markdown page; ``at_scale.json`` in the issue's form."""
    from dask_gradcode.bench.plots import (
        iteration_time_against_s,
        trace_order_statistics,
    )

    rows = measured.tables["records"]
    figures = {
        "": iteration_time_against_s(rows, measured.facts["n_workers"]),
        "trace": trace_order_statistics(
            measured.tables["trace"], measured.facts["profile"].name
        ),
    }
    return Page(_markdown(measured, session), figures, document(measured))


def document(measured: Measured) -> dict[str, Any]:
    """``at_scale.json``: ``{"n_workers", "records", "plan"}``."""
    fields = (
        "scheme",
        "n_stragglers",
        "comm_reduction",
        "policy",
        "mean_iteration_s",
        "p90_iteration_s",
        "client_ms_per_round",
    )
    rows = measured.tables["records"]
    chosen = next(r for r in rows if r["planned"])
    return {
        "n_workers": measured.facts["n_workers"],
        "records": [{k: r[k] for k in fields} for r in rows],
        "plan": {k: chosen[k] for k in fields if k != "p90_iteration_s"},
    }


COLUMNS = {
    "scheme": "scheme",
    "n_stragglers": "s",
    "comm_reduction": "m",
    "policy": "policy",
    "load": "load",
    "mean_iteration_s": "mean iteration (s)",
    "p90_iteration_s": "p90 (s)",
    "client_ms_per_round": "client (ms/round)",
    "rounds_to_target": "rounds to target",
    "time_to_target_s": "time to target (s)",
}


def _verdict(rows: list[dict[str, Any]], target: str) -> str:
    """The page's bullet points: the plan against hindsight, uncoded, adaptive."""
    exact = [r for r in rows if r["exact"]]
    best = min(exact, key=lambda r: r["predicted_s"])
    chosen = next(r for r in rows if r["planned"])
    uncoded = next(r for r in rows if r["scheme"] == "uncoded")
    static = [r for r in exact if r["policy"] == "static" and r["scheme"] != "uncoded"]
    best_static = min(static, key=lambda r: r["predicted_s"]) if static else best
    adaptive = [r for r in rows if r["policy"] == "adaptive"]
    off = chosen["predicted_s"] / best["predicted_s"] - 1
    gain = uncoded["predicted_s"] / best_static["predicted_s"]
    lines = [
        (
            f"- Planner's choice: **{_name(chosen)}**, {chosen['predicted_s']:.3f} s "
            f"per iteration on the held-out rounds; the best in hindsight is "
            f"{_name(best)} at {best['predicted_s']:.3f} s ({off:+.1%})."
        ),
        (
            f"- Uncoded: {uncoded['predicted_s']:.3f} s per iteration; the best "
            f"static code ({_name(best_static)}) is {gain:.2f}x faster."
        ),
    ]
    if adaptive:
        top = min(adaptive, key=lambda r: r["predicted_s"])
        ratio = top["predicted_s"] / best_static["predicted_s"]
        lines.append(
            f"- Adaptive policy at its best ({_name(top)}): "
            f"{top['predicted_s']:.3f} s, {ratio:.2f}x the best static code."
        )
    lines.append(
        f"- Time to target ({target}): uncoded {uncoded['time_to_target_s']:.1f} s, "
        f"the planner's choice {chosen['time_to_target_s']:.1f} s."
    )
    return "\n".join(lines)


CLIENT_COLUMNS = {
    "n_workers": "n",
    "scheme": "scheme",
    "n_stragglers": "s",
    "comm_reduction": "m",
    "policy": "policy",
    "build_s": "code build (s)",
    "client_ms_per_round": "client (ms/round)",
    "note": "note",
}

TRACE_COLUMNS = {
    "load": "load",
    "median_s": "median round (s)",
    "p90_over_median": "p90 / median",
    "max_over_median": "slowest / median",
}


VALIDATION_COLUMNS = {
    "scheme": "scheme",
    "n_stragglers": "s",
    "comm_reduction": "m",
    "live_s": "live mean (s)",
    "overhead_s": "overhead (s)",
    "simulated_s": "simulated (s)",
    "predicted_s": "simulated + overhead (s)",
    "error": "error",
}


def _validation_text(rows: list[dict[str, Any]], o: Options, target: str) -> str:
    if not rows:
        return "(not run: --validate-workers 0)"
    worst = max(abs(r["error"]) for r in rows)
    return f"""The same trace, scaled by {o.time_scale:g}, replayed with
`stragglers.TraceDelays` on {o.validate_workers} workers of
{target} ({o.validate_rounds} rounds per code; the injected delay of a worker is the
trace's time for its load minus what it really computed). "overhead" is the
same code's mean round without injected delays: the cluster's own cost of a
round, which the virtual clock does not model. The prediction is the
simulated time plus that overhead; the largest error is {worst:.1%}.

{markdown_table(rows, VALIDATION_COLUMNS)}"""


def _markdown(measured: Measured, session: Session) -> str:
    facts, tables = measured.facts, measured.tables
    n, profile, planned = facts["n_workers"], facts["profile"], facts["planned"]
    top = sorted(tables["records"], key=lambda r: r["predicted_s"])[:15]
    loads = ", ".join(f"{x:g}" for x in profile.loads)
    scale = tables["client_cost"]
    return f"""# At scale: {n} workers replaying the `{profile.name}` trace

{session.reproduce()}

Measured on {machine_description()}. The rounds of
{profile.n_workers} real AWS Lambda workers (loads {loads} of a CNN
mini-batch) are replayed through the library's own collection loops, decoders
and policies on a virtual clock; a worker computing the fraction `l` of the
data set in round `r` takes the trace's time interpolated at `l`. The planner
saw rounds 0-{planned - 1}; every figure below is measured on rounds
{planned}-{profile.n_rounds - 1}, which it did not see. The client's cost per
round (planning, collecting, decoding) is measured for real and added to the
virtual time.

## Verdict

{_verdict(tables["records"], facts["target"])}

## The fastest 15 configurations

{markdown_table(top, COLUMNS)}

![iteration time against s]({NAME}.png)

## The client's cost per round at scale

{markdown_table(scale, CLIENT_COLUMNS) if scale else "(not measured)"}

## The simulation against live rounds

{_validation_text(tables["validation"], measured.options, session.target.describe())}

## The trace

{markdown_table(tables["trace"], TRACE_COLUMNS)}

![order statistics of the trace]({NAME}_trace.png)

Every record is in `{NAME}.csv` and `{NAME}.json`.
"""


def _name(row: dict[str, Any]) -> str:
    text = f"{row['scheme']} s={row['n_stragglers']}"
    if row["comm_reduction"] != 1:
        text += f" m={row['comm_reduction']}"
    if row["policy"] != "static":
        text += f" ({row['policy']})"
    return text


def _profile_folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder of load-*.csv files")
    return path


BENCHMARK = Benchmark(
    "at-scale",
    files=NAME,
    help="every scheme, s and policy replayed on real 256-worker traces on a "
    "virtual clock, the planner's choice, and live rounds that check the simulation",
    measure=measure,
    page=page,
    transport=False,
    published=(
        "--profile",
        "../shared/data/lambda-traces/cnn",
        "--out",
        "docs/at_scale/cnn",
        ";",
        "--profile",
        "../shared/data/lambda-traces/cnn-long",
        "--out",
        "docs/at_scale/cnn-long",
    ),
    options=(
        opt.option(
            "--profile", None, _profile_folder, "trace profile folder", required=True
        ),
        opt.option(
            "--workers", 0, opt.at_least(0), "workers planned for (0: the profile's)"
        ),
        opt.option(
            "--stragglers",
            (),
            opt.at_least(0),
            "tolerances s compared (empty: 0 1 2 4 8 15 25 40 n/5)",
            nargs="*",
        ),
        opt.option(
            "--plan-rounds", 0, opt.at_least(0), "rounds the planner sees (0: half)"
        ),
        opt.option("--dim", 101, opt.at_least(2), "length of each gradient message"),
        opt.option(
            "--scale-workers",
            1024,
            opt.at_least(0),
            "workers of the client-cost check at scale (0: none)",
        ),
        opt.gap(1e-4),
        opt.option(
            "--validate-workers",
            8,
            opt.at_least(0),
            "workers of the live validation (0: no live rounds)",
        ),
        opt.rounds(20, "rounds per code of the live validation", "--validate-rounds"),
        opt.option(
            "--time-scale",
            0.2,
            opt.positive_float,
            "factor of the trace's times in the live validation",
        ),
    ),
)
