"""Properties every gradient code must have, over random (n, s, m)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dask_gradcode.codes import (
    SCHEMES,
    GradientCode,
    NotDecodableError,
    make_code,
)

MAX_SETS = 60  # every straggler set when there are fewer, else a seeded sample


@st.composite
def code_parameters(draw, scheme: str):
    """(n, s, m, options) valid for ``scheme``."""
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
    if scheme == "gaussian-mds":
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


def relative_error(estimate, truth) -> float:
    return float(np.linalg.norm(estimate - truth) / max(np.linalg.norm(truth), 1e-300))


EXACT_SCHEMES = [s for s in SCHEMES if s != "ignore-stragglers"]


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
            assert info.exact
            assert relative_error(estimate, truth) <= 1e-9


@pytest.mark.parametrize("scheme", SCHEMES)
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
    assert code.message_length(dim) == math.ceil(dim / m)
    held = [code.partitions(w) for w in range(n)]
    assert code.load == max(len(p) for p in held)
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


@pytest.mark.parametrize(
    ("scheme", "n", "s", "m"),
    [
        ("fractional-repetition", 6, 1, 1),
        ("cyclic-repetition", 7, 2, 1),
        ("cyclic-mds", 9, 2, 1),
        ("ye-abbe", 9, 2, 3),
        ("gaussian-mds", 8, 2, 2),
    ],
)
def test_optimal_load_where_the_bound_is_attainable(scheme, n, s, m):
    code = make_code(scheme, n, s, m, random_state=0)
    assert code.load == s + m
    assert code.n_partitions == n
    assert code.is_optimal


def test_gaussian_mds_reports_its_real_cost_when_load_does_not_divide_n():
    code = make_code(
        "gaussian-mds", 10, 1, 2, random_state=0
    )  # d = 3 does not divide 10
    assert code.groups == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert code.load == 3 and code.n_partitions == 9
    assert code.load_fraction == pytest.approx(1 / 3)  # the bound is 3 / 10
    assert not code.is_optimal
    assert code.n_stragglers == 1


@pytest.mark.parametrize("scheme", SCHEMES)
@given(data=st.data())
def test_decodable_sets_decode_exactly_and_the_rest_raise(scheme, data):
    """is_decodable is structural: accepted sets (of any size) decode exactly."""
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


@pytest.mark.parametrize("scheme", SCHEMES)
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


@pytest.mark.parametrize("scheme", SCHEMES)
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
    generic, _ = code._least_squares_coefficients(tuple(responders))
    if scheme == "ignore-stragglers":
        return  # its decoder is the rescaled sum by definition, not least squares
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


def test_linear_code_with_uneven_groups_repeats_columns():
    code = make_code("linear", 7, None, generator=[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    assert code.groups == [[0, 1, 2, 3], [4, 5, 6]]
    assert code.n_stragglers == 1  # the group of 3 limits it
    assert code.n_partitions == 6 and code.load == 3


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
    with pytest.raises(ValueError, match=r"shape \(3, dim\)"):
        code.encode(0, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="NaN or inf"):
        code.encode(0, np.full((3, 5), np.nan))
    with pytest.raises(TypeError, match="integers"):
        code.encode(1.5, np.zeros((3, 5)))


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
    import pickle

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
