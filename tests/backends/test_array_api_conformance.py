"""fxgx's array code is written in the array API standard: it runs on ``array_api_strict``.

``array_api_strict`` implements the standard and nothing else: it raises on a function, an
index (``x[None]``, ``x[0]`` of a matrix, ``x[:n]`` of a matrix) or a dtype mix the standard
does not have. ``strict_framework`` (beside this file) is an fxgx framework whose ``xp`` is
``array_api_strict``, whose protocol functions are written in the standard, and whose random
draws are JAX's threefry draws for the same seed. So every estimator whose value needs no
autodiff of ``f`` runs end to end on it, and its surrogate's value must equal the JAX
framework's for the same seed, logits and ``num_samples``.

The values are compared to ``rtol = 1e-9`` in float64, not bitwise: the special functions
(``sigmoid``, ``softplus``, ``logsumexp``, ``log_softmax``) are written here in the standard
and JAX's are fused kernels, so they differ in the last bits, and so do the sums that follow
(XLA may reorder a reduction). The draws are the same bits, and the 0/1 and one-hot samples
are the same: a flipped sample would change a value by far more than ``1e-9``.

Default set: one card (``DEFAULT_CASES``: leave-one-out sums over a batch of categorical
events, the indexing that array_api_strict first caught) and the registry, the primitive and
one kind of distribution; every other card, kind and form is in the slow set, which CI runs
too (each case costs JAX a few compilations, about 2 s). Cards whose value needs autodiff of
``f`` are skipped (``NEEDS_AUTODIFF``).
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
strict_xp = pytest.importorskip("array_api_strict")

import strict_framework  # noqa: E402 - beside this file, after the skips

from fxgx.backends import array_namespace, find_framework, framework_by_name  # noqa: E402
from fxgx.catalogue import load_cards  # noqa: E402
from fxgx.core import custom_gradient  # noqa: E402
from fxgx.distributions import Bernoulli  # noqa: E402
from fxgx.problems import PROBLEM_NAMES, get_problem  # noqa: E402

#: Cards whose surrogate's value itself needs derivatives of ``f`` (the strict framework has
#: no autodiff); ``test_card_value_matches_jax`` checks that they do reach
#: ``value_and_gradient``, so an entry that is no longer needed fails.
NEEDS_AUTODIFF = {
    "double_control_variate": "its control variate is the first-order Taylor expansion of f "
                              "at the mean: grad f (value_and_gradient) is in the value",
    "delta_method_control_variate": "its control variate is the second-order Taylor expansion "
                                    "of f at the mean: grad f and Hessian-vector products "
                                    "(value_and_gradient nested) are in the value",
}

#: The problem each kind runs on: ``f`` closes over weights (decoder problems), and two batch
#: members (``batched``) exercise the batch axes.
PROBLEMS = {"bernoulli": "decoder_bernoulli", "categorical": "decoder_categorical",
            "normal": "gaussian_cubic"}
SEED = 20240611
RTOL, ATOL = 1e-9, 1e-12

CARDS = load_cards()

#: The default set's cards (see the module docstring); the slow set runs every card.
DEFAULT_CASES = (("optimal_baseline", "categorical"),)


@pytest.fixture
def strict():
    with strict_framework.registered() as framework:
        yield framework


@pytest.fixture(autouse=True)
def x64():
    """JAX in float64 (the strict framework draws with JAX too)."""
    with jax.enable_x64(True):
        yield


def quiet():
    """NumPy (under ``array_api_strict``) warns where JAX and TensorFlow compute ``log(0) =
    -inf`` silently; the code relies on it (the without-replacement beams' ``-inf`` scores)."""
    return np.errstate(divide="ignore")


def batched(values, kind):
    """Two batch members: the problem's parameters and a reflected, shifted copy."""
    stacked = [np.stack([value, 0.5 - 0.7 * np.flip(value)]) for value in values]
    if kind == "normal":
        stacked[1] = np.abs(stacked[1]) + 0.2  # the scales stay positive
    return stacked


def bound(framework, problem_name, kind):
    problem = get_problem(problem_name, backend="jax")
    xp = framework.xp
    parameters = [xp.asarray(value, dtype=xp.float64)
                  for value in batched(problem.parameter_values(), kind)]
    return problem.bind(*parameters)


def surrogate_value(framework, card, kind, **call):
    """The surrogate's value; on JAX under ``jax.jit`` (one compilation instead of one per
    eager operation: the same numbers, at a tenth of the time)."""
    estimator = card.make()
    num_samples = max(card.num_samples, estimator.minimum_samples, 3)

    def value(*parameters):
        distribution, function = bound_to(framework, PROBLEMS[kind], parameters)
        return estimator(function, distribution, seed=SEED, num_samples=num_samples, **call)

    parameters = raw_parameters(framework, PROBLEMS[kind], kind)
    with quiet():
        if framework.name == "jax":
            return np.asarray(jax.jit(value)(*parameters))
        return np.asarray(value(*parameters))


def raw_parameters(framework, problem_name, kind):
    problem = get_problem(problem_name, backend="jax")
    xp = framework.xp
    return [xp.asarray(value, dtype=xp.float64)
            for value in batched(problem.parameter_values(), kind)]


def bound_to(framework, problem_name, parameters):
    del framework
    return get_problem(problem_name, backend="jax").bind(*parameters)


def card_cases():
    default = set(DEFAULT_CASES)
    for card in CARDS:
        for kind in ("bernoulli", "categorical", "normal"):
            if card.supports(kind):
                marks = () if (card.name, kind) in default else (pytest.mark.slow,)
                yield pytest.param(card, kind, id=f"{card.name}-{kind}", marks=marks)


@pytest.mark.parametrize("card, kind", list(card_cases()))
def test_card_value_matches_jax(strict, card, kind):
    if card.name in NEEDS_AUTODIFF:
        with pytest.raises(NotImplementedError, match="value_and_gradient"):
            surrogate_value(strict, card, kind)
        pytest.skip(f"{card.name} needs autodiff in its value: {NEEDS_AUTODIFF[card.name]}")
    actual = surrogate_value(strict, card, kind)
    expected = surrogate_value(framework_by_name("jax"), card, kind)
    assert actual.dtype == expected.dtype == np.float64
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------ the registry sees it


def test_the_strict_framework_satisfies_the_protocol():
    from test_framework_protocol import incompatibilities, protocol_members

    assert incompatibilities(strict_framework, protocol_members()) == []


def test_the_registered_framework_is_found_from_its_arrays(strict):
    array = strict_xp.asarray([1.0, 2.0])
    assert framework_by_name("strict") is strict
    assert find_framework([0.5, {"logits": array}]) is strict
    assert array_namespace(array) is strict_xp
    assert Bernoulli(array).framework is strict
    with pytest.raises(TypeError, match="two frameworks were mixed"):
        find_framework(array, jax.numpy.ones(2))


def test_the_registration_ends_with_the_block():
    with strict_framework.registered():
        assert framework_by_name("strict") is strict_framework
    with pytest.raises(ValueError, match="backend='strict' is not known"):
        framework_by_name("strict")
    assert find_framework(strict_xp.asarray(1.0)) is None


# ------------------------------------------------------------- shared building blocks


def on_both(strict, build):
    """``build(framework)`` on the strict framework and on JAX, as NumPy arrays."""
    with quiet():
        actual = build(strict)
    expected = build(framework_by_name("jax"))
    return ([np.asarray(value) for value in actual],
            [np.asarray(value) for value in expected])


def test_custom_gradient_value(strict):
    def build(framework):
        xp = framework.xp
        x = xp.asarray([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]], dtype=xp.float64)
        fx = xp.sum(x * x, axis=-1)
        return [custom_gradient(fx, 2.0 * x, x, axis=-1),
                custom_gradient(x * 3.0, 1.0, x),
                custom_gradient(xp.sum(x), [xp.ones_like(x)], [x], axis=None)]

    actual, expected = on_both(strict, build)
    for got, want in zip(actual, expected, strict=True):
        assert got.tobytes() == want.tobytes()  # the value is fx, bit for bit


@pytest.mark.parametrize("kind", ["categorical", pytest.param("bernoulli", marks=pytest.mark.slow),
                                  pytest.param("normal", marks=pytest.mark.slow)])
def test_distributions_and_problem_functions(strict, kind):
    """``sample``, ``log_prob`` and the problem's ``f`` (on ``array_namespace(samples)``) at
    the shapes of the card cases (JAX compiles each new shape once)."""

    def build(framework):
        distribution, function = bound(framework, PROBLEMS[kind], kind)
        # A native seed: Distribution.sample hands its seed to the framework as it is.
        samples = distribution.sample((3,), seed=framework.seed_from_int(SEED))
        assert array_namespace(samples) is framework.xp
        return [samples, distribution.log_prob(samples), function(samples)]

    (samples, log_prob, values), expected = on_both(strict, build)
    if kind == "normal":
        np.testing.assert_allclose(samples, expected[0], rtol=RTOL, atol=ATOL)
    else:  # the same bits: 1[u < sigmoid(l)] and the Gumbel-max argmax agree
        np.testing.assert_array_equal(samples, expected[0])
    np.testing.assert_allclose(log_prob, expected[1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(values, expected[2], rtol=RTOL, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("problem_name", sorted(set(PROBLEM_NAMES) - set(PROBLEMS.values())))
def test_problem_functions(strict, problem_name):
    problem = get_problem(problem_name, backend="jax")
    kind = problem.kind

    def build(framework):
        xp = framework.xp
        parameters = [xp.asarray(value, dtype=xp.float64)
                      for value in batched(problem.parameter_values(), kind)]
        distribution, function = problem.bind(*parameters)
        samples = distribution.sample((3,), seed=framework.seed_from_int(SEED))
        return [distribution.log_prob(samples), function(samples)]

    actual, expected = on_both(strict, build)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reinforce", "optimal_baseline"])
def test_a_streamed_estimate(strict, name):
    card = next(card for card in CARDS if card.name == name)

    def build(framework):
        distribution, function = bound(framework, "decoder_bernoulli", "bernoulli")
        return [card.make()(function, distribution, seed=SEED, num_samples=6, chunk_size=3)]

    actual, expected = on_both(strict, build)
    np.testing.assert_allclose(actual[0], expected[0], rtol=RTOL, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["moving_average_baseline", "learned_baseline"])
def test_the_explicit_state_form(strict, name):
    card = next(card for card in CARDS if card.name == name)

    def build(framework):
        distribution, function = bound(framework, "decoder_categorical", "categorical")
        estimator = card.make()
        state = estimator.init(distribution)
        results = []
        for step in range(2):
            surrogate, state, info = estimator.apply(state, function, distribution, seed=step,
                                                     num_samples=3)
            results += [surrogate, *info.values()]
        return results

    actual, expected = on_both(strict, build)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
