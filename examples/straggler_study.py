"""How iteration time grows with the number of slow workers, per scheme.

Uses ``CodedGradient`` directly: one coded round per call, 6 workers, slow
workers 0.3 s late, drawn anew every round.

Run:  python examples/straggler_study.py
"""

from __future__ import annotations

import sys

import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import make_classification

from dask_gradcode.codes import make_code
from dask_gradcode.scheduler import CodedGradient
from dask_gradcode.stragglers import SlowWorkers

SCHEMES = [("uncoded", 0, 1), ("cyclic-repetition", 2, 1), ("gaussian-mds", 2, 1)]


def main(small: bool = False) -> None:
    n, delay, rounds = 6, (0.05 if small else 0.3), (3 if small else 15)
    X, y = make_classification(6_000, 20, random_state=0)
    w = np.zeros(X.shape[1])
    print("mean iteration time (ms) by number of slow workers per round")
    print("| scheme | " + " | ".join(f"{k} slow" for k in range(4)) + " |")
    print("|---|" + "--:|" * 4)
    with (
        LocalCluster(n_workers=n, threads_per_worker=1, processes=False) as cluster,
        Client(cluster) as client,
    ):
        for scheme, s, m in SCHEMES:
            code = make_code(scheme, n, s, m, random_state=0)
            times = []
            for n_slow in range(4):
                model = SlowWorkers(n_slow, delay=delay, random_state=0)
                with CodedGradient(
                    client, code, X, y, "log_loss", straggler_model=model
                ) as cg:
                    for _ in range(rounds):
                        cg(w)
                times.append(np.mean([r.wall_seconds for r in cg.history]))
            cells = " | ".join(f"{1e3 * t:.0f}" for t in times)
            print(f"| {scheme} (s={code.n_stragglers}) | {cells} |")


if __name__ == "__main__":
    main(small="--small" in sys.argv)
