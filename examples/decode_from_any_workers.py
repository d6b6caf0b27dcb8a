"""Encode partial gradients on 10 simulated workers, decode from whichever answer.

Run:  python examples/decode_from_any_workers.py
"""

from __future__ import annotations

import numpy as np

from dask_gradcode.codes import NotDecodableError, make_code


def main(n_workers: int = 10, dim: int = 1_000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    # s = 2 stragglers tolerated, messages m = 3 times shorter: load d = 5 partitions
    code = make_code("gaussian-mds", n_workers, 2, 3, random_state=seed)
    print(code, f"- each worker holds {code.load_fraction:.0%} of the data")

    partials = rng.standard_normal((code.n_partitions, dim))  # one row per partition
    truth = partials.sum(axis=0)
    messages = {
        worker: code.encode(worker, partials[code.partitions(worker)])
        for worker in range(n_workers)
    }
    print(f"message length {code.message_length(dim)} instead of {dim}")

    stragglers = rng.choice(n_workers, code.n_stragglers, replace=False)
    arrived = {w: f for w, f in messages.items() if w not in stragglers}
    gradient = code.decode(arrived, dim)
    error = np.linalg.norm(gradient - truth) / np.linalg.norm(truth)
    print(f"stragglers {sorted(stragglers.tolist())}: relative error {error:.1e}")

    too_few = dict(list(arrived.items())[:4])
    try:
        code.decode(too_few, dim)
    except NotDecodableError as why:
        print(f"4 workers: {why}")
    estimate, info = code.decode(too_few, dim, approximate=True, return_info=True)
    error = np.linalg.norm(estimate - truth) / np.linalg.norm(truth)
    print(
        f"approximate decode from 4 workers: relative error {error:.2f} "
        f"(expected {np.sqrt(info.relative_error):.2f})"
    )


if __name__ == "__main__":
    main()
