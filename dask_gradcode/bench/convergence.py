"""Training loss against wall-clock time, per scheme, under injected stragglers.

Every scheme trains the same logistic regression with the same solver from the
same start on the same cluster; each round some workers, drawn anew, are late.
Exact schemes take the same steps as uncoded gradient descent, so their curves
differ only in how long each iteration takes; ``ignore-stragglers`` never
waits, but steps along a rescaled partial gradient.  The loss plotted is the
true mean log-loss of the iterate, computed after the run on the client (the
decoded loss of an approximate scheme is itself approximate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize
from distributed import Client
from sklearn.datasets import make_classification
from sklearn.preprocessing import StandardScaler

from dask_gradcode.bench import options as opt
from dask_gradcode.bench.benchmark import Benchmark, Measured, Options, Page, Session
from dask_gradcode.bench.plots import loss_against_time
from dask_gradcode.bench.report import Report, machine_description, markdown_table
from dask_gradcode.bench.schemes import (
    buildable_codes,
    check_stragglers,
    compared_schemes,
    skipped_note,
)
from dask_gradcode.codes import GradientCode
from dask_gradcode.objectives import LogLoss
from dask_gradcode.scheduler import CodedGradient
from dask_gradcode.solvers import minimize
from dask_gradcode.stragglers import SlowWorkers

__all__ = ["BENCHMARK", "measure", "page", "run"]

NAME = "convergence"


def convergence_schemes(s: int) -> list[tuple[str, int, int]]:
    """(scheme, s, m) rows of the comparison."""
    return compared_schemes(s, leave_out=("cyclic-mds", "ye-abbe"))


def mean_log_loss(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Mean log-loss of coefficients ``w[:-1]`` and intercept ``w[-1]``."""
    losses, _ = LogLoss().pointwise(X @ w[:-1] + w[-1], y)
    return float(losses.mean())


def standardised_classification(
    rows: int, features: int
) -> tuple[np.ndarray, np.ndarray]:
    """``make_classification`` data, standardised, with float labels in {0, 1}."""
    X, y = make_classification(
        rows, features, n_informative=features // 2, flip_y=0.05, random_state=0
    )
    return StandardScaler().fit_transform(X), y.astype(float)


def optimal_loss(X: np.ndarray, y: np.ndarray) -> float:
    """The least mean log-loss of a linear model with intercept (L-BFGS, tight)."""
    with_ones = np.hstack([X, np.ones((len(y), 1))])

    def mean_loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        loss, gradient = LogLoss().value_and_gradient(w, with_ones, y)
        return loss / len(y), gradient / len(y)

    result = scipy.optimize.minimize(
        mean_loss,
        np.zeros(with_ones.shape[1]),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-10},
    )
    return float(result.fun)


def lbfgs_from_zero(
    mean_loss: Callable[[np.ndarray], tuple[float, np.ndarray]],
    dim: int,
    max_rounds: int,
    reached: Callable[[int, np.ndarray, float], bool],
) -> None:
    """L-BFGS from zero for at most ``max_rounds``; ``reached`` may stop it sooner."""
    minimize(
        mean_loss,
        np.zeros(dim),
        solver="lbfgs",
        max_iter=max_rounds,
        tol=None,
        callback=reached,
    )


def train(
    client: Client,
    code: GradientCode,
    data: tuple[np.ndarray, np.ndarray],
    model: SlowWorkers,
    solver: str,
    iterations: int,
    step: float,
) -> dict[str, Any]:
    """Iterates and their wall-clock times (from the first round) for one scheme.

    ``step`` is the constant step of ``solver="gd"``.
    """
    X, y = data
    n_rows = len(y)
    stamps: list[float] = [0.0]
    iterates: list[np.ndarray] = [np.zeros(X.shape[1] + 1)]
    with CodedGradient(
        client, code, X, y, "log_loss", straggler_model=model, fit_intercept=True
    ) as coded:

        def mean_loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            loss, gradient = coded(w)
            return loss / n_rows, gradient / n_rows

        def record(iteration: int, w: np.ndarray, objective: float) -> None:
            stamps.append(time.perf_counter() - start)
            iterates.append(w.copy())

        start = time.perf_counter()
        minimize(
            mean_loss,
            iterates[0],
            solver=solver,
            max_iter=iterations,
            tol=None,
            learning_rate="constant",
            eta0=step,
            callback=record,
        )
    history = coded.history
    return {
        "seconds": np.array(stamps),
        "objective": np.array([mean_log_loss(X, y, w) for w in iterates]),
        "stragglers_skipped": sum(len(r.stragglers) for r in history),
        "exact": all(r.exact for r in history),
    }


def seconds_to_reach(curve: dict[str, Any], objective: float) -> float:
    """First time the curve is at or below ``objective`` (NaN if never)."""
    reached = np.flatnonzero(curve["objective"] <= objective)
    return float(curve["seconds"][reached[0]]) if reached.size else float("nan")


def measure(session: Session, o: Options) -> Measured:
    """Train every scheme and record its loss against wall-clock time.

    ``o.slow`` workers per round (None: as many as ``o.stragglers``), drawn
    anew, are ``o.delay`` seconds late; solver ``"gd"`` takes constant steps
    ``1 / L`` (``L`` the gradient's Lipschitz constant), one coded round per
    iteration.  Returns the table ``schemes``; facts: the optimum ``best``,
    the ``slow`` workers per round, the schemes ``skipped`` at this size.
    """
    workers, stragglers, rows = o.workers, o.stragglers, o.rows
    check_stragglers(stragglers, workers)
    slow = stragglers if o.slow is None else o.slow
    if not 0 <= slow <= workers:
        raise ValueError(f"slow={slow} must be between 0 and workers={workers}")
    X, y = standardised_classification(rows, o.features)
    best = optimal_loss(X, y)
    with_ones = np.hstack([X, np.ones((rows, 1))])
    # The mean log-loss's gradient is L-Lipschitz with L = ||[X 1]||^2 / (4 rows).
    step = 4.0 * rows / np.linalg.norm(with_ones, 2) ** 2
    model = SlowWorkers(slow, delay=o.delay, random_state=0)
    built, skipped = buildable_codes(convergence_schemes(stragglers), workers)
    curves = []
    with (
        session.target.connect(workers) as client,
        session.bar([c for _, c in built], desc="convergence", unit="scheme") as bar,
    ):
        for code in bar:
            bar.set_postfix_str(f"{code.scheme} m={code.comm_reduction}")
            curve = train(client, code, (X, y), model, o.solver, o.iterations, step)
            curves.append(
                {
                    "scheme": code.scheme,
                    "s": code.n_stragglers,
                    "m": code.comm_reduction,
                    **curve,
                }
            )
    return Measured(
        {"schemes": _scheme_rows(curves, best)},
        facts={"best": best, "slow": slow, "skipped": skipped},
    )


def _scheme_rows(curves: list[dict[str, Any]], best: float) -> list[dict[str, Any]]:
    """One row per scheme, its speed-up to where uncoded ends."""
    goal = curves[0]["objective"][-1] + 1e-9  # where uncoded ends
    uncoded_seconds = seconds_to_reach(curves[0], goal)
    rows_out = []
    for curve in curves:
        reach = seconds_to_reach(curve, goal)
        done = len(curve["seconds"]) - 1
        rows_out.append(
            {
                "scheme": curve["scheme"],
                "s": curve["s"],
                "m": curve["m"],
                "iterations": done,
                "mean_iteration_ms": 1e3 * curve["seconds"][-1] / done,
                "stragglers_skipped": curve["stragglers_skipped"],
                "final_gap": curve["objective"][-1] - best,
                "seconds_to_uncoded_final": reach,
                "speedup": uncoded_seconds / reach,
                "exact": curve["exact"],
                "seconds": curve["seconds"],
                "objective": curve["objective"],
            }
        )
    return rows_out


def run(**options: Any) -> Report:
    """Measure, then write the page: ``BENCHMARK.run(**options)``."""
    return BENCHMARK.run(**options)


def page(measured: Measured, session: Session) -> Page:
    """The loss-against-time figure and the markdown page."""
    rows, best = measured.tables["schemes"], measured.facts["best"]
    o, slow = measured.options, measured.facts["slow"]
    title = (
        f"n={o.workers}, {slow} slow worker(s) per round (+{o.delay:g} s), "
        f"solver={o.solver}"
    )
    return Page(
        _markdown(rows, best, o, slow, session)
        + skipped_note(measured.facts["skipped"]),
        {"": loss_against_time(rows, best, title)},
    )


COLUMNS = {
    "scheme": "scheme",
    "s": "s",
    "m": "m",
    "iterations": "iterations",
    "mean_iteration_ms": "mean iteration (ms)",
    "stragglers_skipped": "replies not waited for",
    "final_gap": "final loss - optimum",
    "seconds_to_uncoded_final": "seconds to uncoded's final loss",
    "speedup": "speed-up over uncoded",
    "exact": "exact gradients",
}


def _markdown(
    rows: list[dict[str, Any]],
    best: float,
    o: Options,
    slow: int,
    session: Session,
) -> str:
    return f"""# Loss against wall-clock time

{session.reproduce()}

Measured on {machine_description()}, on {session.target.describe()} with {o.workers}
single-thread workers. Logistic regression (with intercept, no penalty) on
`make_classification({o.rows:,}, {o.features})`, standardised; optimum
{best:.6f} (scipy's L-BFGS-B run to a gradient norm of 1e-10). Every scheme
starts from zero with solver `{o.solver}`; each round {slow} worker(s), drawn
anew, are {1e3 * o.delay:.0f} ms late. "seconds to uncoded's final loss" is when
the scheme first reaches the loss uncoded gradient descent ends at; NaN means
never. "replies not waited for" sums each round's `stragglers` (the live
workers not in when it decoded, [defined here](scheduler.md#round-records)):
a code that decodes from fewer than `n - s` workers skips more than the
slow ones.

{markdown_table(rows, COLUMNS)}

![loss against wall-clock time per scheme](convergence.png)

{_reading(rows)}
"""


def _reading(rows: list[dict[str, Any]]) -> str:
    uncoded = rows[0]["objective"]
    exact = [r for r in rows[1:] if r["exact"]]
    approximate = [r for r in rows[1:] if not r["exact"]]
    lines = []
    if exact:
        spread = max(np.max(np.abs(r["objective"] - uncoded)) for r in exact)
        lines.append(
            "- The exact schemes follow uncoded gradient descent step for step: "
            f"their losses differ from uncoded's by at most {spread:.1e} at any "
            "iteration, so they differ only in time per step (speed-ups "
            + ", ".join(f"{r['scheme']} m={r['m']} {r['speedup']:.1f}x" for r in exact)
            + ")."
        )
    for r in approximate:
        lines.append(
            f"- {r['scheme']} (approximate) ends {r['final_gap']:.3g} above the "
            f"optimum, against {rows[0]['final_gap']:.3g} for the exact schemes, "
            f"after {r['mean_iteration_ms']:.0f} ms per iteration."
        )
    return "\n".join(lines)


BENCHMARK = Benchmark(
    "convergence",
    files=NAME,
    help="training loss against wall-clock time per scheme",
    measure=measure,
    page=page,
    options=(
        opt.workers(9),
        opt.stragglers(2, 0, "stragglers s tolerated"),
        opt.option(
            "--slow",
            None,
            opt.at_least(0),
            "slow workers per round (None: as many as --stragglers)",
        ),
        opt.delay(0.2),
        opt.rounds(60, "solver iterations", "--iterations"),
        opt.rows(40_000, 10),
        opt.features(50),
        opt.option(
            "--solver", "gd", None, "the solver", choices=("gd", "nesterov", "lbfgs")
        ),
    ),
    # measured with the futures transport, the default before the direct one
    published=("--transport", "futures"),
)
