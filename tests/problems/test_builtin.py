"""The named problems: lookup, shapes, and exact values against independent computations.
Deterministic: float tolerances only."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from fxgx.problems import (
    DEFAULT_PROBLEM,
    PROBLEM_NAMES,
    GaussianQuadratic,
    Problem,
    get_problem,
)
from fxgx.problems.builtin import (
    CATEGORICAL_LOGITS,
    CATEGORICAL_VALUES,
    LARGE_CATEGORICAL_LOGITS,
    LARGE_CATEGORICAL_VALUES,
    NONADDITIVE_LOGITS,
    NONADDITIVE_WEIGHTS,
)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="no_such_problem") as failure:
        get_problem("no_such_problem")
    for name in PROBLEM_NAMES:
        assert name in str(failure.value)


def test_names_and_default():
    assert set(PROBLEM_NAMES) == {
        "bernoulli_toy", "bernoulli_toy_0499", "nonadditive_bernoulli", "categorical", "gaussian",
        "small_categorical", "decoder_bernoulli", "decoder_categorical", "gaussian_linear",
        "gaussian_quadratic", "gaussian_cubic",
    }
    assert DEFAULT_PROBLEM in PROBLEM_NAMES
    assert get_problem("gaussian") is not get_problem("gaussian")  # fresh instances


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_every_problem_is_consistent(backend, name):
    problem = get_problem(name)
    assert isinstance(problem, Problem)
    gradient = problem.exact_gradient()
    assert gradient.dtype == np.float64 and gradient.shape == (problem.num_coordinates,)
    assert np.all(np.isfinite(gradient)) and math.isfinite(problem.exact_value())
    assert problem.detectable_bias > 0
    # The function maps [S] + batch + event samples to [S] + batch values on each backend.
    parameters = problem.parameters(backend, "float32")
    distribution, function = problem.bind(*parameters)
    samples = distribution.sample((5,), backend.seed_from_int(0))
    values = function(samples)
    assert tuple(values.shape) == (5,) + tuple(distribution.batch_shape)
    np.testing.assert_allclose(np.asarray(problem.function(samples)),
                               np.asarray(values), rtol=1e-6)


def quadrature_value(loc, scale, center):
    """E[(z - c)^2] for z ~ N(loc, scale^2) by adaptive quadrature over the density."""

    def integrand(z):
        density = math.exp(-0.5 * ((z - loc) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
        return (z - center) ** 2 * density

    value, error = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-13)
    assert error < 1e-9
    return value


@pytest.mark.parametrize("loc, scale, center", [(0.3, 0.8, 0.5), (-1.2, 2.5, 0.0),
                                                (0.0, 0.1, 3.0)])
def test_gaussian_closed_form_against_quadrature_and_finite_differences(loc, scale, center):
    problem = GaussianQuadratic(loc, scale, center)
    assert problem.exact_value() == pytest.approx(quadrature_value(loc, scale, center),
                                                  rel=1e-9)
    step = 1e-4
    d_loc = (quadrature_value(loc + step, scale, center)
             - quadrature_value(loc - step, scale, center)) / (2 * step)
    d_scale = (quadrature_value(loc, scale + step, center)
               - quadrature_value(loc, scale - step, center)) / (2 * step)
    np.testing.assert_allclose(problem.exact_gradient(), [d_loc, d_scale], rtol=1e-6,
                               atol=1e-7)


def hermite_expectation(problem, loc, scale):
    """``E[f]`` for ``z ~ N(loc, diag scale^2)`` by a 3-D tensor-product Gauss-Hermite rule
    with 8 nodes per axis (exact for polynomials of degree up to 15 in each variable),
    evaluating the problem's own ``f`` in float64 NumPy."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(8)
    weights = weights / math.sqrt(2 * math.pi)
    grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), -1).reshape(-1, 3)
    grid_weights = np.prod(np.stack(np.meshgrid(weights, weights, weights, indexing="ij"), -1)
                           .reshape(-1, 3), axis=-1)
    samples = np.asarray(loc) + np.asarray(scale) * grid
    linear, quadratic, cubic = problem.linear, problem.quadratic, problem.cubic
    values = (np.sum(linear * samples + quadratic * samples**2 + cubic * samples**3, -1)
              + problem.pair * samples[:, 0] * samples[:, 1]
              + problem.triple * samples[:, 0] * samples[:, 1] * samples[:, 2])
    return float(np.sum(grid_weights * values))


@pytest.mark.parametrize("name", ["gaussian_linear", "gaussian_quadratic", "gaussian_cubic"])
def test_gaussian_polynomials_against_quadrature_and_finite_differences(framework, name):
    """The closed forms against Gauss-Hermite quadrature and central differences of it
    (step 1e-4: the value is a cubic in each parameter, so the error is about 1e-8), and the
    problem's ``f`` on a backend against the NumPy polynomial used by the quadrature."""
    problem = get_problem(name)
    loc, scale = problem.parameter_values()
    assert len(set(loc)) == 3 and len(set(scale)) == 3  # distinct means and scales
    assert problem.exact_value() == pytest.approx(hermite_expectation(problem, loc, scale),
                                                  rel=1e-12)
    step, numeric = 1e-4, []
    for which in (0, 1):
        for index in range(3):
            shifted = [np.array(loc, float), np.array(scale, float)]
            shifted[which][index] += step
            upper = hermite_expectation(problem, *shifted)
            shifted[which][index] -= 2 * step
            numeric.append((upper - hermite_expectation(problem, *shifted)) / (2 * step))
    np.testing.assert_allclose(problem.exact_gradient(), numeric, rtol=1e-7, atol=1e-7)
    points = np.array([[0.3, -1.2, 2.0], [1.5, 0.4, -0.8]])
    backend = framework.backend
    expected = (np.sum(problem.linear * points + problem.quadratic * points**2
                       + problem.cubic * points**3, -1)
                + problem.pair * points[:, 0] * points[:, 1]
                + problem.triple * np.prod(points, -1))
    dtype = backend.widest_float()  # float32 on JAX without x64
    got = np.asarray(problem.function(backend.xp.asarray(points, dtype=dtype)))
    np.testing.assert_allclose(got, expected, rtol=1e-12 if dtype == "float64" else 1e-5)
    if name != "gaussian_linear":
        assert np.any(problem.exact_gradient()[3:] != 0)


def test_nonadditive_bernoulli_against_brute_force():
    problem = get_problem("nonadditive_bernoulli")

    def value(logits):
        p = 1 / (1 + np.exp(-logits))
        total = 0.0
        for bits in itertools.product((0, 1), repeat=8):
            bits = np.array(bits)
            weight = np.prod(np.where(bits == 1, p, 1 - p))
            f = (bits @ NONADDITIVE_WEIGHTS - 1.3) ** 2 + 0.8 * bits[0] * bits[1] * bits[2]
            total += weight * f
        return total

    assert problem.exact_value() == pytest.approx(value(NONADDITIVE_LOGITS), rel=1e-12)
    step = 1e-5
    gradient = [
        (value(NONADDITIVE_LOGITS + step * unit) - value(NONADDITIVE_LOGITS - step * unit))
        / (2 * step)
        for unit in np.eye(8)
    ]
    np.testing.assert_allclose(problem.exact_gradient(), gradient, rtol=1e-6, atol=1e-9)


def test_large_categorical_against_brute_force_with_finite_differences():
    """``categorical`` (D = 4, K = 10, 10^4 states): value by summing over every state in NumPy,
    gradient by central differences of that sum; independent of the problem's autodiff."""
    problem = get_problem("categorical")
    states = np.eye(10)[np.array(list(itertools.product(range(10), repeat=4)))]
    linear = np.sum(states * LARGE_CATEGORICAL_VALUES, axis=(-2, -1))
    values = ((linear - 0.6) ** 2 + states[:, 0, 1] * states[:, 1, 2]
              - 0.5 * states[:, 2, 3] * states[:, 3, 4])

    def value(logits):
        log_q = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
        return float(np.sum(np.exp(np.sum(states * log_q, axis=(-2, -1))) * values))

    assert problem.num_coordinates == 40 and problem.logits.shape == (4, 10)
    assert problem.exact_value() == pytest.approx(value(LARGE_CATEGORICAL_LOGITS), rel=1e-12)
    step = 1e-5
    gradient = [(value(LARGE_CATEGORICAL_LOGITS + step * unit.reshape(4, 10))
                 - value(LARGE_CATEGORICAL_LOGITS - step * unit.reshape(4, 10))) / (2 * step)
                for unit in np.eye(40)]
    np.testing.assert_allclose(problem.exact_gradient(), gradient, rtol=1e-6, atol=1e-9)


def test_categorical_against_brute_force():
    problem = get_problem("small_categorical")
    probabilities = np.exp(CATEGORICAL_LOGITS)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    total = 0.0
    for classes in itertools.product(range(4), repeat=3):
        weight = np.prod([probabilities[d, k] for d, k in enumerate(classes)])
        linear = sum(CATEGORICAL_VALUES[d, k] for d, k in enumerate(classes))
        total += weight * ((linear - 0.7) ** 2 + (classes[0] == 0) * (classes[1] == 1))
    assert problem.exact_value() == pytest.approx(total, rel=1e-12)
    assert problem.num_coordinates == 12


def test_toy_problems_use_the_stated_settings():
    toy, hard = get_problem("bernoulli_toy"), get_problem("bernoulli_toy_0499")
    np.testing.assert_array_equal(toy.logits, [-2.0, 0.0, 2.0])
    assert toy.target == 0.45 and hard.target == 0.499
    # The t = 0.499 gradient is 2% of the t = 0.45 one: (1 - 2t) ratio 0.002 / 0.1.
    np.testing.assert_allclose(hard.exact_gradient(), 0.02 * toy.exact_gradient(), rtol=1e-12)


def test_decoder_problems_add_the_exact_expected_function_gradient():
    """``decoder_bernoulli``: the logits' part is ``nonadditive_bernoulli``'s, and the weights'
    part is ``E[df/dw] = E[2 (w . b - 1.3) b]``, summed here over the 256 states in NumPy
    (independent of the autodiff the problem uses)."""
    decoder = get_problem("decoder_bernoulli")
    plain = get_problem("nonadditive_bernoulli")
    np.testing.assert_allclose(decoder.exact_gradient()[:8], plain.exact_gradient(), rtol=1e-12)
    assert decoder.exact_value() == pytest.approx(plain.exact_value(), rel=1e-12)
    states = np.array(list(itertools.product((0.0, 1.0), repeat=8)))
    probabilities = 1.0 / (1.0 + np.exp(-NONADDITIVE_LOGITS))
    q = np.prod(np.where(states == 1.0, probabilities, 1.0 - probabilities), axis=1)
    residual = states @ NONADDITIVE_WEIGHTS - 1.3
    expected = (q * 2.0 * residual) @ states
    np.testing.assert_allclose(decoder.exact_gradient()[8:], expected, rtol=1e-10, atol=1e-12)


def test_decoder_categorical_adds_the_exact_expected_function_gradient():
    """``decoder_categorical``: ``E[df/dv] = E[2 (sum v . z - 0.7) z]`` over the 64 states."""
    decoder = get_problem("decoder_categorical")
    plain = get_problem("small_categorical")
    np.testing.assert_allclose(decoder.exact_gradient()[:12], plain.exact_gradient(),
                               rtol=1e-12)
    logits = get_problem("small_categorical").logits
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = np.zeros((3, 4))
    for indices in itertools.product(range(4), repeat=3):
        state = np.eye(4)[list(indices)]
        q = np.prod([softmax[d, k] for d, k in enumerate(indices)])
        expected += q * 2.0 * (np.sum(state * CATEGORICAL_VALUES) - 0.7) * state
    np.testing.assert_allclose(decoder.exact_gradient()[12:], expected.ravel(), rtol=1e-10,
                               atol=1e-12)
