"""Properties every gradient code must have, over random (n, s, m)."""

from __future__ import annotations

import itertools
import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dask_gradcode.codes import (
    SCHEMES,
    FractionalRepetitionCode,
    GeneratorGroup,
    GradientCode,
    GroupedCode,
    InaccurateDecodeError,
    NotDecodableError,
    SampledCertificationWarning,
    UnstableCodeError,
    make_code,
)

MAX_SETS = 60  # every straggler set when there are fewer, else a seeded sample


@st.composite
def code_parameters(draw, scheme: str):
    """(n, s, m, options) valid for ``scheme`` on small codes."""
    if scheme == "uncoded":
        return draw(st.integers(1, 10)), 0, 1, {}
    if scheme == "fractional-repetition":
        n = draw(st.integers(1, 12))
        s = draw(st.sampled_from([s for s in range(n) if n % (s + 1) == 0]))
        return n, s, 1, {}
    if scheme in ("cyclic-repetition", "ignore-stragglers"):
        n = draw(st.integers(1, 10))
        return n, draw(st.integers(0, n - 1)), 1, {}
    if scheme == "cyclic-mds":
        n = draw(st.integers(1, 12))
        s = draw(st.sampled_from([s for s in range(n) if s == 0 or (n - s) % 2]))
        return n, s, 1, {}
    if scheme == "ye-abbe":
        n = draw(st.integers(1, 12))
        m = draw(st.integers(1, n))
        return n, draw(st.integers(0, n - m)), m, {}
    if scheme in ("gaussian-mds", "auto"):
        n = draw(st.integers(1, 16))
        m = draw(st.integers(1, min(n, 5)))
        return n, draw(st.integers(0, n - m)), m, {}
    assert scheme == "linear"
    n = draw(st.integers(1, 10))
    block = draw(st.integers(1, min(n, 6)))
    k = draw(st.integers(1, block))
    seed = draw(st.integers(0, 2**16))
    generator = np.random.default_rng(seed).standard_normal((k, block))
    if draw(st.booleans()) and block > k:
        generator[:, -1] = generator[:, 0]  # a repeated column lowers the distance
    return n, None, k, {"generator": generator}


def build(scheme, params, seed=0) -> GradientCode:
    n, s, m, options = params
    return make_code(scheme, n, s, m, random_state=seed, **options)


def small_code(scheme: str) -> GradientCode:
    """A 6-worker code of ``scheme``; one straggler where the scheme allows it."""
    params = {
        "uncoded": (6, 0, 1, {}),
        "linear": (
            6,
            None,
            2,
            {"generator": np.random.default_rng(1).normal(size=(2, 3))},
        ),
    }.get(scheme, (6, 1, 2 if scheme in ("ye-abbe", "gaussian-mds") else 1, {}))
    return build(scheme, params)


def encode_all(code: GradientCode, partials: np.ndarray) -> dict[int, np.ndarray]:
    return {
        w: code.encode(w, partials[code.partitions(w)]) for w in range(code.n_workers)
    }


def straggler_sets(n: int, size: int, rng: np.random.Generator):
    if math.comb(n, size) <= MAX_SETS:
        return list(itertools.combinations(range(n), size))
    return [tuple(rng.choice(n, size, replace=False)) for _ in range(MAX_SETS)]


def scaled_error(estimate, partials) -> float:
    """``||g_hat - g|| / sqrt(sum_j ||g_j||^2)``: what ``error_bound`` bounds."""
    truth = partials.sum(axis=0)
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(partials))


def relative_error(estimate, truth) -> float:
    return float(np.linalg.norm(estimate - truth) / max(np.linalg.norm(truth), 1e-300))


#: "auto" builds one of the others (its choice is tested on its own, and in
#: the any-size test below): the per-scheme property tests leave it out.
CONCRETE_SCHEMES = [s for s in SCHEMES if s != "auto"]
EXACT_SCHEMES = [s for s in CONCRETE_SCHEMES if s != "ignore-stragglers"]


@pytest.mark.parametrize("scheme", EXACT_SCHEMES)
@given(data=st.data())
def test_decode_is_exact_for_every_tolerated_straggler_set(scheme, data):
    params = data.draw(code_parameters(scheme))
    code = build(scheme, params)
    dim = data.draw(st.integers(1, 17))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    partials = rng.standard_normal((code.n_partitions, dim))
    truth = partials.sum(axis=0)
    messages = encode_all(code, partials)
    for size in range(code.n_stragglers + 1):
        for stragglers in straggler_sets(code.n_workers, size, rng):
            responders = {w: f for w, f in messages.items() if w not in stragglers}
            assert code.is_decodable(responders)
            estimate, info = code.decode(responders, dim, return_info=True)
            assert info.exact and info.error_bound <= code.rtol
            assert relative_error(estimate, truth) <= 1e-9


# ------------------------------------------------------- sizes users reach
@st.composite
def any_size(draw):
    """A scheme and (n, s, m) up to n = 300, mostly small, sometimes large."""
    scheme = draw(
        st.sampled_from([s for s in SCHEMES if s not in ("linear", "uncoded")])
    )
    n = draw(st.one_of(st.integers(1, 24), st.integers(25, 120), st.integers(121, 300)))
    m = 1
    if scheme in ("ye-abbe", "gaussian-mds", "auto"):
        m = draw(st.one_of(st.integers(1, 4), st.integers(1, n)))
    share = draw(st.floats(0, 1))  # spreads s over its range better than integers
    return scheme, n, round(share * (n - m)), m


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(size=any_size(), seed=st.integers(0, 2**16))
def test_every_exact_decode_is_within_rtol_and_every_refusal_is_clear(size, seed):
    """Up to n = 300: a built code never returns an "exact" gradient that is not."""
    scheme, n, s, m = size
    try:
        code = make_code(scheme, n, s, m, random_state=seed)
    except UnstableCodeError as error:
        message = str(error)
        assert f"{scheme!r}" in message and "rtol=1e-08" in message
        assert "gaussian-mds" in message or "auto" in message
        return
    except ValueError as error:  # a size the scheme does not exist at
        assert "use" in str(error) or "n_stragglers" in str(error)
        return
    assert code.n_stragglers >= s
    rng = np.random.default_rng(seed)
    dim = 7
    partials = rng.standard_normal((code.n_partitions, dim))
    partials *= rng.lognormal(0, 2, size=(code.n_partitions, 1))
    messages = encode_all(code, partials)
    sets = [
        sorted(rng.choice(n, n - code.n_stragglers, replace=False).tolist()),
        sorted(rng.choice(n, int(rng.integers(1, n + 1)), replace=False).tolist()),
        list(range(code.n_stragglers, n)),  # the stragglers in one run
    ]
    for responders in sets:
        received = {w: messages[w] for w in responders}
        try:
            estimate, info = code.decode(received, dim, return_info=True)
        except InaccurateDecodeError as error:
            assert "rtol" in str(error) and "approximate=True" in str(error)
            assert not code.is_decodable(responders)
            assert code.is_decodable(responders, check_accuracy=False)
            estimate, info = code.decode(
                received, dim, approximate=True, return_info=True
            )
            assert not info.exact
        except NotDecodableError:
            assert not code.is_decodable(responders, check_accuracy=False)
            estimate, info = code.decode(
                received, dim, approximate=True, return_info=True
            )
            assert not info.exact
        if info.exact:
            assert scaled_error(estimate, partials) <= code.rtol
        elif not code.approximate_scheme:
            assert scaled_error(estimate, partials) <= info.error_bound * 1.001


@pytest.mark.parametrize("scheme", CONCRETE_SCHEMES)
@given(data=st.data())
def test_shape_load_and_placement_are_as_promised(scheme, data):
    params = data.draw(code_parameters(scheme))
    n, s, m, _ = params
    code = build(scheme, params)
    dim = data.draw(st.integers(1, 40))
    assert code.n_workers == n
    assert code.comm_reduction == m
    if s is not None:
        assert code.n_stragglers >= s
        assert code.requested_stragglers == s
    assert code.message_length(dim) == math.ceil(dim / m)
    held = [code.partitions(w) for w in range(n)]
    fractions = code.partition_fractions
    assert fractions.sum() == pytest.approx(1)
    assert code.load_fraction == pytest.approx(max(fractions[p].sum() for p in held))
    assert code.load == pytest.approx(code.load_fraction * n)
    # every partition is held, and by enough workers to survive s stragglers
    holders = np.zeros(code.n_partitions, dtype=int)
    for partitions in held:
        holders[partitions] += 1
    assert holders.min() >= (
        code.n_stragglers + 1 if scheme != "ignore-stragglers" else 1
    )
    # the encoding is zero outside each worker's partitions
    encoding = code.encoding_matrix.reshape(n, code.n_partitions, m)
    for worker, partitions in enumerate(held):
        outside = np.delete(encoding[worker], partitions, axis=0)
        assert not outside.any()
    rng = np.random.default_rng(0)
    partials = rng.standard_normal((code.n_partitions, dim))
    for message in encode_all(code, partials).values():
        assert message.shape == (code.message_length(dim),)
        assert message.dtype == np.float64
    bounds = code.partition_bounds(1000)
    assert bounds[0] == 0 and bounds[-1] == 1000
    np.testing.assert_allclose(np.diff(bounds) / 1000, fractions, atol=1e-3)


@pytest.mark.parametrize(
    ("scheme", "n", "s", "m"),
    [
        ("fractional-repetition", 6, 1, 1),
        ("cyclic-repetition", 7, 2, 1),
        ("cyclic-mds", 9, 2, 1),
        ("ye-abbe", 9, 2, 3),
        ("gaussian-mds", 8, 2, 2),
        ("gaussian-mds", 3, 1, 1),  # the estimators' default on 3 workers
        ("gaussian-mds", 7, 2, 3),
        ("gaussian-mds", 10, 1, 2),
        ("gaussian-mds", 100, 11, 4),
        ("auto", 10, 1, 2),
    ],
)
def test_optimal_load_for_every_n(scheme, n, s, m):
    code = make_code(scheme, n, s, m, random_state=0)
    assert code.load == s + m
    assert code.load_fraction == pytest.approx((s + m) / n)
    assert code.is_optimal
    assert code.n_stragglers == s


def test_gaussian_mds_groups_between_d_and_2d_with_shares_by_size():
    code = make_code("gaussian-mds", 10, 1, 2, random_state=0)  # d = 3
    assert code.groups == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    shares = [
        code.partition_fractions[code.partitions(g[0])].sum() for g in code.groups
    ]
    # every worker processes 3/10 of the data whatever its group
    assert code.load_fraction == pytest.approx(0.3)
    assert shares[1] == pytest.approx(0.3)  # a group of exactly d holds one share
    assert "groups=[3 x 2, 4]" in repr(code)


def test_is_optimal_is_measured_against_the_requested_tolerance():
    """A user generator whose groups tolerate more than asked is not optimal."""
    generator = np.random.default_rng(0).standard_normal((1, 3))  # [3, 1, 3]
    code = make_code("linear", 3, 1, generator=generator)
    assert code.n_stragglers == 2 and code.requested_stragglers == 1
    assert code.load_fraction == 1.0
    assert code.optimal_load_fraction == pytest.approx(2 / 3)
    assert not code.is_optimal


@pytest.mark.parametrize("scheme", CONCRETE_SCHEMES)
@given(data=st.data())
def test_decodable_sets_decode_exactly_and_the_rest_raise(scheme, data):
    """is_decodable accepts exactly the sets that decode to rtol."""
    params = data.draw(code_parameters(scheme))
    code = build(scheme, params)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    partials = rng.standard_normal((code.n_partitions, 5))
    truth = partials.sum(axis=0)
    messages = encode_all(code, partials)
    for _ in range(10):
        size = int(rng.integers(1, code.n_workers + 1))
        chosen = rng.choice(code.n_workers, size, replace=False)
        responders = {int(w): messages[int(w)] for w in chosen}
        if code.is_decodable(responders):
            estimate, info = code.decode(responders, 5, return_info=True)
            if scheme != "ignore-stragglers":
                assert info.exact
                assert relative_error(estimate, truth) <= 1e-9
        else:
            with pytest.raises(NotDecodableError):
                code.decode(responders, 5)
            estimate, info = code.decode(
                responders, 5, approximate=True, return_info=True
            )
            assert not info.exact
            bound = info.error_bound * np.linalg.norm(partials)
            assert np.linalg.norm(estimate - truth) <= bound * (1 + 1e-9) + 1e-9


@pytest.mark.parametrize("scheme", CONCRETE_SCHEMES)
@given(data=st.data())
def test_approximate_decoder_never_worse_than_ignoring_stragglers(scheme, data):
    """Optimal decoding vs the rescaled sum, same code, same responders."""
    params = data.draw(code_parameters(scheme))
    code = build(scheme, params)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    partials = rng.standard_normal((code.n_partitions, 4))
    truth = partials.sum(axis=0)
    messages = encode_all(code, partials)
    for _ in range(10):
        size = int(rng.integers(1, code.n_workers + 1))
        responders = rng.choice(code.n_workers, size, replace=False).tolist()
        optimal = code.decoder(responders, approximate=True)
        ignoring = code.rescaled_decoder(responders)
        if scheme != "ignore-stragglers":  # the one decode that is not LS optimal
            assert optimal.relative_error <= ignoring.relative_error + 1e-9
        # the reported bound holds for the rescaled decoder too
        stacked = np.stack([messages[w] for w in ignoring.responders])
        error = np.linalg.norm(ignoring.apply(stacked, 4) - truth)
        assert error <= ignoring.error_bound * np.linalg.norm(partials) + 1e-9


@given(n=st.integers(1, 12), data=st.data())
def test_rescaled_decoder_of_the_uncoded_placement_is_ignore_stragglers(n, data):
    responders = data.draw(st.sets(st.integers(0, n - 1), min_size=1))
    scheme = make_code("ignore-stragglers", n, n - len(responders))
    uncoded = make_code("uncoded", n, 0)
    np.testing.assert_allclose(
        uncoded.rescaled_decoder(responders).coefficients,
        scheme.decoder(responders).coefficients,
    )


def test_ignore_stragglers_documents_that_it_is_not_least_squares():
    """Its rescaled sum is unbiased; the least-squares optimum is the plain sum."""
    code = make_code("ignore-stragglers", 6, 3)
    rescaled = code.decoder([0, 1, 2], approximate=True)
    plain = make_code("uncoded", 6, 0).decoder([0, 1, 2], approximate=True)
    assert rescaled.residual == pytest.approx(math.sqrt(6))  # 2.449
    assert plain.residual == pytest.approx(math.sqrt(3))  # 1.732, the optimum
    assert not rescaled.exact
    assert "not the least-squares optimum" in type(code).__doc__


def generic_least_squares(code: GradientCode, responders) -> np.ndarray:
    import scipy.linalg

    m = code.comm_reduction
    rows = code.encoding_matrix[list(responders)]
    target = np.tile(np.eye(m), (1, code.n_partitions))
    coefficients, *_ = scipy.linalg.lstsq(rows.T, target.T)
    return coefficients


@pytest.mark.parametrize("scheme", CONCRETE_SCHEMES)
@given(data=st.data())
def test_structured_decoder_agrees_with_generic_least_squares(scheme, data):
    params = data.draw(code_parameters(scheme))
    code = build(scheme, params)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    partials = rng.standard_normal((code.n_partitions, 6))
    messages = encode_all(code, partials)
    stragglers = straggler_sets(code.n_workers, code.n_stragglers, rng)[0]
    responders = sorted(set(range(code.n_workers)) - set(stragglers))
    stacked = np.stack([messages[w] for w in responders])
    structured = code.decoder(responders).apply(stacked, 6)
    if scheme == "ignore-stragglers":
        return  # its decoder is the rescaled sum by definition, not least squares
    generic = generic_least_squares(code, responders)
    np.testing.assert_allclose(
        structured, (generic.T @ stacked).ravel()[:6], rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_cached_decode_is_identical_and_reuses_the_solve(scheme):
    code = small_code(scheme)
    rng = np.random.default_rng(3)
    partials = rng.standard_normal((code.n_partitions, 9))
    messages = encode_all(code, partials)
    responders = {w: messages[w] for w in range(code.n_workers - code.n_stragglers)}
    first = code.decode(responders, 9)
    decoder = code.decoder(responders)
    second = code.decode(dict(reversed(list(responders.items()))), 9)
    assert code.decoder(responders) is decoder
    np.testing.assert_array_equal(first, second)
    code.clear_cache()
    assert code.decoder(responders) is not decoder
    np.testing.assert_array_equal(code.decode(responders, 9), first)


def test_cache_is_bounded():
    code = make_code("cyclic-repetition", 8, 2, random_state=0, cache_size=3)
    for stragglers in itertools.combinations(range(8), 2):
        code.decoder(set(range(8)) - set(stragglers))
    assert len(code._cache) == 3


def test_groups_of_one_size_share_one_code_and_its_cache():
    code = make_code("gaussian-mds", 300, 2, 1, random_state=0)  # 100 groups of 3
    assert len({id(c) for c in code.group_codes}) == 1
    code.group_codes[0].clear_cache()
    code.decoder(range(300))
    assert len(code.group_codes[0]._cache) == 1


def test_ignore_stragglers_rescales_the_sum_of_responders():
    code = make_code("ignore-stragglers", 4, 1)
    messages = {
        0: np.array([1.0, 2.0]),
        1: np.array([3.0, 4.0]),
        3: np.array([5.0, 6.0]),
    }
    assert code.is_decodable(messages)
    estimate, info = code.decode(messages, 2, return_info=True)
    np.testing.assert_allclose(estimate, 4 / 3 * np.array([9.0, 12.0]))
    assert not info.exact
    assert not code.is_decodable([0, 1])


def test_fractional_repetition_decodes_from_one_survivor_per_group():
    code = make_code("fractional-repetition", 6, 2)
    assert code.partitions(4) == [3, 4, 5]
    assert code.is_decodable([1, 5])  # 4 stragglers, but each group answered
    assert not code.is_decodable([0, 1, 2])
    partials = np.arange(12.0).reshape(6, 2)
    messages = encode_all(code, partials)
    np.testing.assert_array_equal(
        code.decode({1: messages[1], 5: messages[5]}, 2), partials.sum(axis=0)
    )


def test_cyclic_mds_codeword_is_real_and_cyclic():
    code = make_code("cyclic-mds", 9, 4)
    encoding = code.encoding_matrix
    for worker in range(9):
        np.testing.assert_array_equal(np.roll(encoding[0], worker), encoding[worker])
    assert code.partitions(7) == [0, 1, 2, 7, 8]


# ------------------------------------------- accuracy: measured on main before
@pytest.mark.parametrize("n", [20, 40, 60, 100])
def test_cyclic_mds_decodes_to_1e_10_for_every_s_or_refuses(n):
    """Every s < n: either every probed set decodes to 1e-10, or a clear refusal."""
    rng = np.random.default_rng(n)
    accepted = []
    for s in range(n):
        if s and (n - s) % 2 == 0:
            continue
        try:
            code = make_code("cyclic-mds", n, s, rtol=1e-10)
        except UnstableCodeError as error:
            assert "contiguous run" in str(error) and "cyclic-repetition" in str(error)
            continue
        accepted.append(s)
        partials = rng.standard_normal((n, 3))
        messages = encode_all(code, partials)
        for responders in (range(s, n), rng.choice(n, n - s, replace=False)):
            received = {int(w): messages[int(w)] for w in responders}
            try:
                estimate = code.decode(received, 3)
            except InaccurateDecodeError:
                continue  # caught at decode time: never silently wrong
            assert relative_error(estimate, partials.sum(axis=0)) <= 1e-10
    assert n - 1 in accepted  # s = n - 1 (the all-ones codeword) was noise before
    assert 1 in accepted


@pytest.mark.parametrize(
    ("n", "s", "m"), [(60, 5, 2), (100, 10, 3), (80, 8, 1), (40, 4, 2)]
)
def test_ye_abbe_is_refused_where_it_is_unstable(n, s, m):
    with pytest.raises(UnstableCodeError, match=r"'ye-abbe'.*gaussian-mds"):
        make_code("ye-abbe", n, s, m)


def test_an_inaccurate_responder_set_is_never_an_exact_gradient():
    code = make_code("ye-abbe", 40, 4, 2, verify=False)
    rng = np.random.default_rng(0)
    partials = rng.standard_normal((40, 6))
    messages = encode_all(code, partials)
    received = {w: messages[w] for w in range(4, 40)}
    assert code.is_decodable(received, check_accuracy=False)
    assert not code.is_decodable(received)
    with pytest.raises(InaccurateDecodeError, match=r"without workers \[0\.\.3\]"):
        code.decode(received, 6)
    estimate, info = code.decode(received, 6, approximate=True, return_info=True)
    assert info.decodable and not info.exact and info.error_bound > code.rtol
    assert scaled_error(estimate, partials) <= info.error_bound


@pytest.mark.parametrize(("n", "s", "m"), [(60, 15, 10), (100, 25, 5)])
def test_gaussian_mds_builds_where_certification_used_to_refuse(n, s, m):
    code = make_code("gaussian-mds", n, s, m, random_state=0)
    assert code.n_stragglers == s and code.is_optimal
    rng = np.random.default_rng(1)
    partials = rng.standard_normal((code.n_partitions, 8))
    messages = encode_all(code, partials)
    for _ in range(5):
        responders = rng.choice(n, n - s, replace=False)
        estimate = code.decode({int(w): messages[int(w)] for w in responders}, 8)
        assert relative_error(estimate, partials.sum(axis=0)) <= 1e-10


@pytest.mark.parametrize(
    ("s", "m", "accuracy"),
    [
        (1, 1, 1e-10),
        (10, 2, 1e-10),
        (15, 10, 1e-10),
        (200, 3, 1e-10),
        (998, 1, 1e-10),
        # s + m > n / 2: one cyclic group of all 1000 workers, whose 500 x 500
        # Gaussian solves are less accurate (still well within rtol)
        (500, 1, 1e-9),
    ],
)
def test_gaussian_mds_at_1000_workers_decodes_accurately(s, m, accuracy):
    code = make_code("gaussian-mds", 1000, s, m, random_state=0)
    assert code.is_optimal
    rng = np.random.default_rng(2)
    partials = rng.standard_normal((code.n_partitions, 4))
    messages = encode_all(code, partials)
    for responders in (range(s, 1000), rng.choice(1000, 1000 - s, replace=False)):
        estimate = code.decode({int(w): messages[int(w)] for w in responders}, 4)
        assert relative_error(estimate, partials.sum(axis=0)) <= accuracy


def test_gaussian_mds_falls_back_to_equal_shares_and_says_so():
    code = make_code("gaussian-mds", 1000, 300, 300, random_state=0)
    assert not code.is_optimal
    assert "equal-share" in code.layout and "out of reach" in code.layout


def test_auto_picks_the_least_load_and_says_why():
    repetition = make_code("auto", 9, 2, 1)
    assert repetition.scheme == "fractional-repetition"
    gaussian = make_code("auto", 10, 2, 1, random_state=0)
    assert gaussian.scheme == "gaussian-mds" and gaussian.is_optimal
    assert "auto: chose 'gaussian-mds'" in repr(gaussian)
    assert "the optimum" in gaussian.selection_reason
    uncoded = make_code("auto", 5, 0, 1)
    assert uncoded.scheme == "uncoded"


def test_auto_falls_back_to_a_stable_scheme_with_less_load():
    """gaussian-mds's equal-share fallback loses to cyclic repetition (m = 1)."""
    code = make_code("auto", 60, 30, 1, random_state=0)
    assert code.load_fraction <= 31 / 60 + 1e-12
    assert code.is_optimal


def test_rtol_is_a_parameter_of_every_scheme():
    strict = make_code("ye-abbe", 16, 3, 2, verify=False, rtol=1e-14)
    loose = make_code("ye-abbe", 16, 3, 2, verify=False, rtol=1e-3)
    responders = range(3, 16)
    assert loose.is_decodable(responders)
    assert not strict.is_decodable(responders)
    with pytest.raises(ValueError, match="rtol must be between 0 and 1"):
        make_code("uncoded", 2, 0, rtol=2.0)


# ------------------------------------------------------------------ linear
@pytest.mark.parametrize(
    ("generator", "tolerance"),
    [
        ([[1.0, 1.0, 1.0]], 2),  # repetition code [3, 1, 3]
        ([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], 1),  # parity code [3, 2, 2]
        ([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], 1),  # two repetitions [4, 2, 2]
        ([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]], 0),  # first symbol unprotected
        ([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 2.0]], 2),  # MDS [4, 2, 3]
    ],
)
def test_linear_code_reports_the_tolerance_its_minimum_distance_gives(
    generator, tolerance
):
    code = make_code("linear", len(generator[0]), None, generator=generator)
    assert code.n_stragglers == tolerance
    assert code.comm_reduction == len(generator)
    assert code.load == len(generator[0])
    assert code.certification.startswith("exact")


def test_linear_code_with_uneven_groups_repeats_columns():
    code = make_code("linear", 7, None, generator=[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    assert code.groups == [[0, 1, 2, 3], [4, 5, 6]]
    assert code.n_stragglers == 1  # the group of 3 limits it
    assert code.n_partitions == 2 and code.load_fraction == 0.5


def test_a_long_generator_is_certified_by_samples_and_says_so():
    generator = np.random.default_rng(0).standard_normal((10, 40))
    with pytest.raises(ValueError, match="pass the n_stragglers you need"):
        make_code("linear", 40, None, generator=generator)
    with pytest.warns(SampledCertificationWarning, match="random column subsets"):
        code = make_code("linear", 40, 20, generator=generator)
    assert code.certification.startswith("sampled")
    assert code.n_stragglers == 20
    with pytest.raises(ValueError, match="Singleton"):
        make_code("linear", 40, 31, generator=generator)
    degenerate = generator.copy()
    degenerate[:, :25] = degenerate[:, :1]  # 25 equal columns
    with (
        warnings.catch_warnings(),
        pytest.raises(ValueError, match="does not tolerate 20"),
    ):
        warnings.simplefilter("ignore", SampledCertificationWarning)
        make_code("linear", 40, 20, generator=degenerate)


BAD_ARGUMENTS = [
    (("nope", 4, 1), {}, ValueError, "unknown scheme"),
    (("cyclic-repetition", 4, 4), {}, ValueError, "n_stragglers <= 3"),
    (("cyclic-repetition", 0, 0), {}, ValueError, "n_workers must be >= 1"),
    (("cyclic-repetition", 4, -1), {}, ValueError, "n_stragglers must be >= 0"),
    (("cyclic-repetition", 4.5, 1), {}, TypeError, "n_workers must be an integer"),
    (("ye-abbe", 4, 1, 0), {}, ValueError, "comm_reduction must be >= 1"),
    (("cyclic-repetition", 4, 1, 2), {}, ValueError, "comm_reduction must be 1"),
    (
        ("fractional-repetition", 6, 3),
        {},
        ValueError,
        r"Valid n_stragglers .*\[0, 1, 2, 5\]",
    ),
    (("uncoded", 4, 1), {}, ValueError, "n_stragglers=0"),
    (("cyclic-mds", 10, 2), {}, ValueError, "n_stragglers=1 or 3"),
    (("ye-abbe", 4, 2, 3), {}, ValueError, "load n_stragglers \\+ comm_reduction = 5"),
    (
        ("gaussian-mds", 4, 2, 3),
        {},
        ValueError,
        "load n_stragglers \\+ comm_reduction = 5",
    ),
    (("gaussian-mds", 4, None), {}, ValueError, "needs n_stragglers"),
    (("auto", 4, 4), {}, ValueError, "n_stragglers <= 3"),
    (("linear", 4, None), {}, ValueError, "needs generator"),
    (
        ("linear", 4, None),
        {"generator": [[1, 2], [2, 4]]},
        ValueError,
        "rank deficient",
    ),
    (("linear", 2, None), {"generator": [[1, 1, 1]]}, ValueError, "at most 2 columns"),
    (("linear", 3, 3), {"generator": [[1, 1, 1]]}, ValueError, "n_stragglers<=2"),
    (
        ("linear", 3, None, 2),
        {"generator": [[1, 1, 1]]},
        ValueError,
        "comm_reduction=1",
    ),
    (("linear", 3, None), {"generator": [[1, np.nan, 1]]}, ValueError, "NaN"),
    (("ye-abbe", 3, 1, 1), {"nodes": [0, 0, 1]}, ValueError, "distinct"),
    (("cyclic-repetition", 4, 1), {"nodes": [1, 2]}, TypeError, "takes no option"),
    (("gaussian-mds", 4, 1), {"random_state": "x"}, TypeError, "random_state"),
    (("gaussian-mds", 4, 1), {"n_candidates": 0}, ValueError, "n_candidates"),
]


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), BAD_ARGUMENTS)
def test_bad_parameters_say_what_to_change(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_code(*args, **kwargs)


def test_bad_messages_and_gradients_are_rejected():
    code = make_code("gaussian-mds", 6, 1, 2, random_state=0)
    good = {w: np.zeros(3) for w in range(6)}
    with pytest.raises(ValueError, match="length 3"):
        code.decode({**good, 2: np.zeros(4)}, 5)
    with pytest.raises(ValueError, match="NaN or inf"):
        code.decode({**good, 2: np.array([0.0, np.nan, 0.0])}, 5)
    with pytest.raises(ValueError, match="NaN or inf"):
        code.decode({**good, 2: np.array([0.0, np.inf, 0.0])}, 5)
    with pytest.raises(ValueError, match="dtype complex128; send real"):
        code.decode({**good, 2: np.zeros(3, dtype=complex)}, 5)
    with pytest.raises(ValueError, match="worker 6 does not exist"):
        code.decode({**good, 6: np.zeros(3)}, 5)
    with pytest.raises(NotDecodableError, match="no worker"):
        code.decode({}, 5)
    with pytest.raises(NotDecodableError, match="approximate=True"):
        code.decode({0: good[0]}, 5)
    with pytest.raises(ValueError, match=r"shape \(1, dim\)"):
        code.encode(0, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="NaN or inf"):
        code.encode(0, np.full((1, 5), np.nan))
    with pytest.raises(TypeError, match="integers"):
        code.encode(1.5, np.zeros((1, 5)))


def test_same_random_state_gives_the_same_code():
    first = make_code("gaussian-mds", 9, 1, 2, random_state=7)
    again = make_code("gaussian-mds", 9, 1, 2, random_state=7)
    other = make_code("gaussian-mds", 9, 1, 2, random_state=8)
    np.testing.assert_array_equal(first.encoding_matrix, again.encoding_matrix)
    assert not np.array_equal(first.encoding_matrix, other.encoding_matrix)


def test_repr_names_the_scheme_and_its_numbers():
    code = make_code("ye-abbe", 8, 2, 3)
    assert repr(code) == (
        "<GradientCode 'ye-abbe': n_workers=8, n_stragglers=2, comm_reduction=3, load=5>"
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_codes_survive_pickling_for_shipping_to_workers(scheme):
    code = small_code(scheme)
    code.decoder(range(6))
    clone = pickle.loads(pickle.dumps(code))
    partials = np.random.default_rng(0).standard_normal((code.n_partitions, 4))
    messages = encode_all(code, partials)
    np.testing.assert_array_equal(encode_all(clone, partials)[2], messages[2])
    np.testing.assert_array_equal(clone.decode(messages, 4), code.decode(messages, 4))
    assert clone.n_stragglers == code.n_stragglers


def test_overflow_while_decoding_is_an_error_not_inf():
    code = make_code("uncoded", 2, 0)
    huge = {0: np.array([1.5e308]), 1: np.array([1.5e308])}
    with pytest.raises(FloatingPointError, match="overflowed"):
        code.decode(huge, 1)


def test_nan_in_a_message_the_decoder_ignores_is_still_rejected():
    code = make_code("fractional-repetition", 6, 1)
    messages = {w: np.ones(3) for w in range(6)}
    assert 1 in code.decoder(messages.keys()).unused  # worker 0 speaks for group 0
    messages[1] = np.array([0.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="worker 1 contains NaN"):
        code.decode(messages, 3)


def test_the_codes_import_no_dask():
    import subprocess
    import sys

    probe = "import sys, dask_gradcode.codes; print('distributed' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "False", out.stderr


# ------------------------------------------------- decodability: fast == plain
def _plain_responders(code, responders):
    """The per-id check every code ran before its fast path."""
    ids = frozenset(code._check_worker(w) for w in responders)
    if not ids:
        raise NotDecodableError("no worker has answered: nothing to decode")
    return ids


def _plain_structural(code, ids):
    """Structural decodability, the way each scheme asked it one id at a time."""
    if isinstance(code, FractionalRepetitionCode):
        size = code.n_stragglers + 1
        return {w // size for w in ids} == set(range(code.n_workers // size))
    if isinstance(code, GroupedCode):
        local = [[] for _ in code.groups]
        for w in sorted(ids):
            group = code._group_of[w]
            local[group].append(w - code.groups[group][0])
        return all(
            bool(members) and group.code._is_decodable(frozenset(members))
            for group, members in zip(code._groups, local, strict=True)
        )
    if isinstance(code, GeneratorGroup):
        return code._is_decodable(ids)
    return len(ids) >= code.n_workers - code.n_stragglers


def _plain_is_decodable(code, responders, check_accuracy=True):
    ids = _plain_responders(code, responders)
    if not _plain_structural(code, ids):
        return False
    if not check_accuracy or code.approximate_scheme:
        return True
    return code._cached_decoder(ids).exact


def _outcome(call):
    try:
        return ("value", call())
    except (TypeError, ValueError) as error:
        return (type(error), str(error))


_FAST_CODES = {}


def _fast_code(scheme, n, s, m):
    key = (scheme, n, s, m)
    if key not in _FAST_CODES:
        if scheme == "linear":
            # A non-MDS generator: its groups keep the rank test.
            generator = np.array([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
            _FAST_CODES[key] = make_code("linear", n, None, generator=generator)
        else:
            _FAST_CODES[key] = make_code(scheme, n, s, m, random_state=0)
    return _FAST_CODES[key]


@settings(max_examples=120, deadline=None)
@given(
    scheme=st.sampled_from(
        [
            "uncoded",
            "ignore-stragglers",
            "fractional-repetition",
            "cyclic-repetition",
            "gaussian-mds",
            "linear",
        ]
    ),
    n=st.integers(4, 40),
    s=st.integers(0, 8),
    m=st.integers(1, 3),
    data=st.data(),
)
def test_fast_decodability_answers_as_the_plain_checks(scheme, n, s, m, data):
    """The counting checks and the fast id check give the plain answers."""
    if scheme == "uncoded":
        s, m = 0, 1
    elif scheme in ("ignore-stragglers", "cyclic-repetition"):
        s, m = min(s, n - 1), 1
    elif scheme == "fractional-repetition":
        m, s = 1, min(s, n - 1)
        while n % (s + 1):
            s -= 1
    elif scheme == "gaussian-mds":
        m = min(m, n - 1)
        s = min(s, n - m)
    code = _fast_code(scheme, n, s, m)
    order = data.draw(st.permutations(range(n)))
    replies = {}
    for worker in order[: data.draw(st.integers(1, n))]:
        replies[worker] = None  # as a scheduler's reply dict grows
        for accuracy in (True, False):
            fast = _outcome(
                lambda a=accuracy: code.is_decodable(replies, check_accuracy=a)
            )
            plain = _outcome(lambda a=accuracy: _plain_is_decodable(code, replies, a))
            assert fast == plain
    odd = data.draw(
        st.lists(
            st.one_of(
                st.integers(-2, n + 1),
                st.sampled_from([True, False, 1.0, np.int64(1), np.int32(0), "0"]),
            ),
            max_size=6,
        )
    )
    for responders in (odd, [*replies, *odd], iter(odd), tuple(odd)):
        items = list(responders) if not isinstance(responders, list) else responders
        fast = _outcome(lambda r=items: code.is_decodable(iter(r)))
        plain = _outcome(lambda r=items: _plain_is_decodable(code, r))
        assert fast == plain
    assert _outcome(lambda: code.is_decodable([[0]])) == _outcome(
        lambda: _plain_is_decodable(code, [[0]])
    )


def test_the_worker_id_set_is_rebuilt_after_pickling():
    code = make_code("gaussian-mds", 12, 2, 2, random_state=0)
    clone = pickle.loads(pickle.dumps(code))
    assert "_worker_ids" not in code.__getstate__()
    assert clone.is_decodable(range(12))
    with pytest.raises(ValueError, match="does not exist"):
        clone.is_decodable([12])


@settings(max_examples=80, deadline=None)
@given(
    scheme=st.sampled_from(
        [
            "uncoded",
            "ignore-stragglers",
            "fractional-repetition",
            "cyclic-repetition",
            "gaussian-mds",
            "linear",
        ]
    ),
    n=st.integers(4, 40),
    s=st.integers(0, 8),
    m=st.integers(1, 3),
    data=st.data(),
)
def test_a_tracker_answers_as_is_decodable_after_every_arrival(scheme, n, s, m, data):
    if scheme == "uncoded":
        s, m = 0, 1
    elif scheme in ("ignore-stragglers", "cyclic-repetition"):
        s, m = min(s, n - 1), 1
    elif scheme == "fractional-repetition":
        m, s = 1, min(s, n - 1)
        while n % (s + 1):
            s -= 1
    elif scheme == "gaussian-mds":
        m = min(m, n - 1)
        s = min(s, n - m)
    code = _fast_code(scheme, n, s, m)
    tracker = code.tracker()
    with pytest.raises(NotDecodableError, match="no worker"):
        tracker.is_decodable()
    order = data.draw(st.permutations(range(n)))
    for worker in order:
        tracker.add(worker)
        tracker.add(worker)  # a repeat changes nothing
        for accuracy in (True, False):
            assert tracker.is_decodable(check_accuracy=accuracy) == (
                code.is_decodable(
                    order[: order.index(worker) + 1], check_accuracy=accuracy
                )
            )
    assert tracker.responders == frozenset(range(n))
    for bad in (n, -1, True, 1.5):
        assert _outcome(lambda b=bad: tracker.add(b)) == _outcome(
            lambda b=bad: code.is_decodable([b])
        )
