"""Train a coded logistic regression on an embedded Dask cluster.

Run:  python examples/quickstart.py
"""

from __future__ import annotations

import sys

from distributed import Client, LocalCluster
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dask_gradcode import CodedSGDClassifier
from dask_gradcode.stragglers import SlowWorkers


def main(small: bool = False) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    # --small: a quick smoke run with in-process workers
    with (
        LocalCluster(n_workers=4, threads_per_worker=1, processes=not small) as cluster,
        Client(cluster),
    ):
        model = make_pipeline(
            StandardScaler(),
            CodedSGDClassifier(
                loss="log_loss",
                scheme="gaussian-mds",
                n_stragglers=1,
                # one worker per round is half a second late: never waited for
                straggler_model=SlowWorkers(
                    1, delay=0.05 if small else 0.5, random_state=0
                ),
                max_iter=200,
                random_state=0,
            ),
        ).fit(X_train, y_train)
    classifier = model[-1]
    rounds = classifier.history_
    print(f"code: {classifier.code_}")
    print(
        f"{classifier.n_iter_} iterations, test accuracy {model.score(X_test, y_test):.3f}"
    )
    print(
        f"stragglers skipped: {sum(len(r['stragglers']) for r in rounds)}, "
        f"mean round {1e3 * sum(r['wall_seconds'] for r in rounds) / len(rounds):.1f} ms"
    )


if __name__ == "__main__":
    main(small="--small" in sys.argv)
