"""Gradient codes: who stores which partition, what each worker sends, how to decode.

Pure numpy/scipy.  Every scheme honours the :class:`GradientCode` contract and
is built by name with :func:`make_code`:

==========================  ======================  ==============================
scheme                      load ``d``               reference
==========================  ======================  ==============================
``"uncoded"``               1 (``s = 0``)            baseline
``"ignore-stragglers"``     1 (approximate)          baseline
``"fractional-repetition"`` ``s + 1``, ``(s+1) | n``  Tandon et al., ICML 2017
``"cyclic-repetition"``     ``s + 1``                Tandon et al., ICML 2017
``"cyclic-mds"``            ``s + 1``, ``n - s`` odd  Raviv et al., ICML 2018
``"ye-abbe"``               ``s + m``                Ye & Abbe, ICML 2018
``"gaussian-mds"``          ``s + m`` when ``(s+m) | n``  Kadhe et al., 2020
``"linear"``                block length of ``G``    Kadhe et al., 2020
==========================  ======================  ==============================

Examples
--------
>>> import numpy as np
>>> from dask_gradcode.codes import make_code
>>> code = make_code("gaussian-mds", n_workers=6, n_stragglers=1,
...                  comm_reduction=2, random_state=0)
>>> code.load, code.message_length(dim=10)
(3, 5)
>>> rng = np.random.default_rng(0)
>>> partials = rng.standard_normal((code.n_partitions, 10))
>>> messages = {w: code.encode(w, partials[code.partitions(w)])
...             for w in range(6) if w != 4}          # worker 4 straggles
>>> bool(np.allclose(code.decode(messages, dim=10), partials.sum(axis=0)))
True
"""

from __future__ import annotations

from typing import Any

from dask_gradcode.codes._base import Decoder, GradientCode, NotDecodableError
from dask_gradcode.codes._validation import (
    check_code_shape,
    check_positive_int,
    require_single_message_block,
)
from dask_gradcode.codes.cyclic_mds import CyclicMDSCode
from dask_gradcode.codes.linear import GaussianMDSCode, LinearCode
from dask_gradcode.codes.repetition import (
    CyclicRepetitionCode,
    FractionalRepetitionCode,
    IgnoreStragglersCode,
    UncodedCode,
)
from dask_gradcode.codes.ye_abbe import YeAbbeCode

__all__ = [
    "SCHEMES",
    "CyclicMDSCode",
    "CyclicRepetitionCode",
    "Decoder",
    "FractionalRepetitionCode",
    "GaussianMDSCode",
    "GradientCode",
    "IgnoreStragglersCode",
    "LinearCode",
    "NotDecodableError",
    "UncodedCode",
    "YeAbbeCode",
    "make_code",
]

#: Every scheme name :func:`make_code` accepts.
SCHEMES: tuple[str, ...] = (
    "uncoded",
    "ignore-stragglers",
    "fractional-repetition",
    "cyclic-repetition",
    "cyclic-mds",
    "ye-abbe",
    "gaussian-mds",
    "linear",
)

_WHOLE_GRADIENT_SCHEMES = {
    "ignore-stragglers": IgnoreStragglersCode,
    "fractional-repetition": FractionalRepetitionCode,
    "cyclic-mds": CyclicMDSCode,
}


def make_code(
    scheme: str,
    n_workers: int,
    n_stragglers: int | None,
    comm_reduction: int | None = None,
    *,
    random_state: Any = None,
    **options: Any,
) -> GradientCode:
    """Build a gradient code by scheme name.

    Parameters
    ----------
    scheme : str
        One of :data:`SCHEMES`.
    n_workers : int
        Number of workers ``n``; the data is split into ``n`` partitions.
    n_stragglers : int or None
        Stragglers ``s`` to tolerate.  For ``"linear"`` it may be None: the
        code's minimum distance decides it (and a larger request raises).
    comm_reduction : int, default=1
        ``m``: messages are ``ceil(dim / m)`` long.  Only ``"ye-abbe"``,
        ``"gaussian-mds"`` and ``"linear"`` (where it is the number of rows
        of the generator) support ``m > 1``.
    random_state : None, int or numpy Generator, default=None
        Seed for the random constructions (``"cyclic-repetition"``,
        ``"gaussian-mds"``).  Ignored by the deterministic ones.
    **options
        Scheme-specific: ``generator`` (required by ``"linear"``), ``nodes``
        (``"ye-abbe"``), ``n_candidates`` (``"gaussian-mds"``), and
        ``cache_size`` (every scheme; decoders kept, default 1024).

    Returns
    -------
    GradientCode

    Raises
    ------
    ValueError
        For an unknown scheme or parameters the scheme cannot satisfy; the
        message names a value that works.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {list(SCHEMES)}")
    if scheme == "linear":
        if "generator" not in options:
            raise ValueError("scheme 'linear' needs generator=G, a K x N real matrix")
        check_positive_int(n_workers, "n_workers")
        if n_stragglers is not None:
            check_positive_int(n_stragglers, "n_stragglers", minimum=0)
        if comm_reduction is not None:
            check_positive_int(comm_reduction, "comm_reduction")
        generator = options.pop("generator")
        _reject_unknown(scheme, options, {"cache_size"})
        return LinearCode(
            n_workers,
            generator,
            n_stragglers=n_stragglers,
            comm_reduction=comm_reduction,
            **options,
        )
    if n_stragglers is None:
        raise ValueError(f"scheme {scheme!r} needs n_stragglers (an integer >= 0)")
    n, s, m = check_code_shape(
        n_workers, n_stragglers, 1 if comm_reduction is None else comm_reduction
    )
    if scheme == "uncoded":
        if s:
            raise ValueError(
                "'uncoded' tolerates no straggler: pass n_stragglers=0, or use "
                "'ignore-stragglers' (approximate) or a coded scheme"
            )
        require_single_message_block(scheme, m)
        _reject_unknown(scheme, options, {"cache_size"})
        return UncodedCode(n, **options)
    if scheme in _WHOLE_GRADIENT_SCHEMES:
        require_single_message_block(scheme, m)
        _reject_unknown(scheme, options, {"cache_size"})
        return _WHOLE_GRADIENT_SCHEMES[scheme](n, s, **options)
    if scheme == "cyclic-repetition":
        require_single_message_block(scheme, m)
        _reject_unknown(scheme, options, {"cache_size"})
        return CyclicRepetitionCode(n, s, random_state=random_state, **options)
    if scheme == "ye-abbe":
        _reject_unknown(scheme, options, {"cache_size", "nodes"})
        return YeAbbeCode(n, s, m, **options)
    _reject_unknown(scheme, options, {"cache_size", "n_candidates"})
    return GaussianMDSCode(n, s, m, random_state=random_state, **options)


def _reject_unknown(scheme: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(
            f"scheme {scheme!r} takes no option(s) {sorted(unknown)}; "
            f"it accepts {sorted(allowed)}"
        )
