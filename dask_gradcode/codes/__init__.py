"""Gradient codes: who stores which partition, what each worker sends, how to decode.

Pure numpy/scipy.  Every scheme honours the :class:`GradientCode` contract and
is built by name with :func:`make_code`:

==========================  ==========================  ==========================
scheme                      load ``d``                   reference
==========================  ==========================  ==========================
``"auto"``                  the least that is stable     chooses one of the below
``"uncoded"``               1 (``s = 0``)                baseline
``"ignore-stragglers"``     1 (approximate)              baseline
``"fractional-repetition"`` ``s + 1``, ``(s+1) | n``      Tandon et al., ICML 2017
``"cyclic-repetition"``     ``s + 1``                    Tandon et al., ICML 2017
``"cyclic-mds"``            ``s + 1``, ``n - s`` odd      Raviv et al., ICML 2018
``"ye-abbe"``               ``s + m``, small ``n - s``    Ye & Abbe, ICML 2018
``"gaussian-mds"``          ``s + m``                    Kadhe et al., 2020
``"linear"``                block length of ``G``        Kadhe et al., 2020
==========================  ==========================  ==========================

Every decode checks its own accuracy against the code's ``rtol`` (``1e-8`` by
default): an "exact" result is never returned unless its error bound meets
it, and a scheme is refused at a size where its worst measured responder sets
miss it.

Examples
--------
>>> import numpy as np
>>> from dask_gradcode.codes import make_code
>>> code = make_code("gaussian-mds", n_workers=6, n_stragglers=1,
...                  comm_reduction=2, random_state=0)
>>> code.load, code.message_length(dim=10), code.is_optimal
(3.0, 5, True)
>>> rng = np.random.default_rng(0)
>>> partials = rng.standard_normal((code.n_partitions, 10))
>>> messages = {w: code.encode(w, partials[code.partitions(w)])
...             for w in range(6) if w != 4}          # worker 4 straggles
>>> bool(np.allclose(code.decode(messages, dim=10), partials.sum(axis=0)))
True
"""

from __future__ import annotations

from typing import Any

from dask_gradcode.codes._base import (
    DEFAULT_RTOL,
    Decoder,
    DenseCode,
    GradientCode,
    InaccurateDecodeError,
    NotDecodableError,
    ResponderTracker,
    UnstableCodeError,
)
from dask_gradcode.codes._grouped import GroupedCode
from dask_gradcode.codes._sparse import SparseMessage, sparse_or_dense
from dask_gradcode.codes._validation import (
    check_code_shape,
    check_positive_int,
    require_single_message_block,
)
from dask_gradcode.codes.auto import choose_code
from dask_gradcode.codes.cyclic_mds import CyclicMDSCode
from dask_gradcode.codes.gaussian import CyclicGaussianGroup, GaussianMDSCode
from dask_gradcode.codes.linear import (
    GeneratorGroup,
    LinearCode,
    SampledCertificationWarning,
)
from dask_gradcode.codes.repetition import (
    CyclicRepetitionCode,
    FractionalRepetitionCode,
    IgnoreStragglersCode,
    UncodedCode,
)
from dask_gradcode.codes.replan import replan_code
from dask_gradcode.codes.ye_abbe import YeAbbeCode

__all__ = [
    "DEFAULT_RTOL",
    "SCHEMES",
    "CyclicGaussianGroup",
    "CyclicMDSCode",
    "CyclicRepetitionCode",
    "Decoder",
    "DenseCode",
    "FractionalRepetitionCode",
    "GaussianMDSCode",
    "GeneratorGroup",
    "GradientCode",
    "GroupedCode",
    "IgnoreStragglersCode",
    "InaccurateDecodeError",
    "LinearCode",
    "NotDecodableError",
    "ResponderTracker",
    "SampledCertificationWarning",
    "SparseMessage",
    "UncodedCode",
    "UnstableCodeError",
    "YeAbbeCode",
    "make_code",
    "replan_code",
    "sparse_or_dense",
]

#: Every scheme name :func:`make_code` accepts.
SCHEMES: tuple[str, ...] = (
    "auto",
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

#: Options every scheme takes.
_COMMON_OPTIONS = {"cache_size", "rtol", "verify"}


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
        One of :data:`SCHEMES`.  ``"auto"`` picks the exact scheme with the
        least load whose decode is verified to reach ``rtol`` at this size
        (``repr`` and ``selection_reason`` say which and why).
    n_workers : int
        Number of workers ``n``.
    n_stragglers : int or None
        Stragglers ``s`` to tolerate.  For ``"linear"`` it may be None: the
        code's minimum distance decides it (and a larger request raises).
    comm_reduction : int, default=1
        ``m``: messages are ``ceil(dim / m)`` long.  Only ``"auto"``,
        ``"ye-abbe"``, ``"gaussian-mds"`` and ``"linear"`` (where it is the
        number of rows of the generator) support ``m > 1``.
    random_state : None, int or numpy Generator, default=None
        Seed for the random constructions (``"cyclic-repetition"``,
        ``"gaussian-mds"``).  Ignored by the deterministic ones.
    **options
        Every scheme: ``rtol`` (relative accuracy an exact decode must reach,
        default ``1e-8``), ``verify`` (default True: measure the worst
        responder sets now and refuse a code that misses ``rtol``; with False
        the code is built anyway, and every decode still checks itself) and
        ``cache_size`` (decoders kept, default 1024).  Scheme-specific:
        ``generator`` (required by ``"linear"``), ``nodes`` (``"ye-abbe"``),
        ``n_candidates`` (``"gaussian-mds"``).

    Returns
    -------
    GradientCode

    Raises
    ------
    UnstableCodeError
        If the scheme cannot decode its worst measured responder sets to
        ``rtol`` at this size (a ``ValueError``; the message names a scheme
        that can).
    ValueError
        For an unknown scheme or parameters the scheme cannot satisfy; the
        message names a value that works.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {list(SCHEMES)}")
    if scheme == "linear":
        return _linear_code(n_workers, n_stragglers, comm_reduction, options)
    if n_stragglers is None:
        raise ValueError(f"scheme {scheme!r} needs n_stragglers (an integer >= 0)")
    n, s, m = check_code_shape(
        n_workers, n_stragglers, 1 if comm_reduction is None else comm_reduction
    )
    return _scheme_code(scheme, n, s, m, random_state, options)


def _linear_code(
    n_workers: int,
    n_stragglers: int | None,
    comm_reduction: int | None,
    options: dict[str, Any],
) -> LinearCode:
    """The ``"linear"`` scheme: the code of a given generator matrix."""
    if "generator" not in options:
        raise ValueError("scheme 'linear' needs generator=G, a K x N real matrix")
    check_positive_int(n_workers, "n_workers")
    if n_stragglers is not None:
        check_positive_int(n_stragglers, "n_stragglers", minimum=0)
    if comm_reduction is not None:
        check_positive_int(comm_reduction, "comm_reduction")
    generator = options.pop("generator")
    _reject_unknown("linear", options, _COMMON_OPTIONS)
    return LinearCode(
        n_workers,
        generator,
        n_stragglers=n_stragglers,
        comm_reduction=comm_reduction,
        **options,
    )


def _scheme_code(
    scheme: str,
    n: int,
    s: int,
    m: int,
    random_state: Any,
    options: dict[str, Any],
) -> GradientCode:
    """Every scheme but ``"linear"``, for a checked ``(n, s, m)``."""
    if scheme == "auto":
        _reject_unknown(scheme, options, _COMMON_OPTIONS)
        return choose_code(make_code, n, s, m, random_state=random_state, **options)
    if scheme == "uncoded":
        if s:
            raise ValueError(
                "'uncoded' tolerates no straggler: pass n_stragglers=0, or use "
                "'ignore-stragglers' (approximate) or a coded scheme"
            )
        require_single_message_block(scheme, m)
        _reject_unknown(scheme, options, _COMMON_OPTIONS)
        return UncodedCode(n, **options)
    if scheme in _WHOLE_GRADIENT_SCHEMES:
        require_single_message_block(scheme, m)
        _reject_unknown(scheme, options, _COMMON_OPTIONS)
        return _WHOLE_GRADIENT_SCHEMES[scheme](n, s, **options)
    if scheme == "cyclic-repetition":
        require_single_message_block(scheme, m)
        _reject_unknown(scheme, options, _COMMON_OPTIONS)
        return CyclicRepetitionCode(n, s, random_state=random_state, **options)
    if scheme == "ye-abbe":
        _reject_unknown(scheme, options, _COMMON_OPTIONS | {"nodes"})
        return YeAbbeCode(n, s, m, **options)
    _reject_unknown(scheme, options, _COMMON_OPTIONS | {"n_candidates"})
    return GaussianMDSCode(n, s, m, random_state=random_state, **options)


def _reject_unknown(scheme: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(
            f"scheme {scheme!r} takes no option(s) {sorted(unknown)}; "
            f"it accepts {sorted(allowed)}"
        )
