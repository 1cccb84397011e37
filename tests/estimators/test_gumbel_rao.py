"""Tests of the Gumbel-Rao estimator (``fxgx.estimators.gumbel_rao``).

The claim is that Gumbel-Rao has the same expectation as straight-through Gumbel-softmax
(ST-GS) and a smaller variance. Both are checked against EXACT values computed here in
NumPy by quadrature (no Monte Carlo reference):

- categorical (one variable, K = 3): given ``b = k`` the relaxed softmax depends only on the
  ratios of the exponential variables ``e = -log v`` behind the conditional Gumbels, and
  ``e / sum(e)`` is uniform on the simplex. Writing ``w_k = s``, ``w_j = (1 - s) t``,
  ``w_l = (1 - s)(1 - t)`` (density ``2 (1 - s)`` on the unit square), the class-``j`` logit
  gap is ``log(s p_j) - log(s p_j + w_j)``; a 96 x 96 Gauss-Legendre rule gives
  ``E[J | b]`` and ``E[(J grad f)_i^2 | b]`` to about 1e-10.
- Bernoulli (``nonadditive_bernoulli``): ``E[sigmoid'((theta + L~)/tau)/tau | b]`` is a
  one-dimensional integral over the conditional logistic noise; the expectation of ST-GS is
  then a sum over the 256 states.

Statistical tests: Holm-adjusted z-tests at a family-wise false-failure rate of 1e-5 each,
with the power stated per test; seeds are fixed, so runs are deterministic.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fxgx import catalogue
from fxgx.backends import get_framework
from fxgx.core.arrays import one_hot
from fxgx.core.custom_gradient import custom_gradient
from fxgx.core.random import open_uniform
from fxgx.distributions import Bernoulli, OneHotCategorical
from fxgx.estimators.gumbel_rao import GumbelRao, gumbel_rao
from fxgx.estimators.hyperparameters import as_hyperparameter
from fxgx.estimators.relaxations import (
    conditional_gumbel_from_uniform,
    conditional_logistic_from_uniform,
    relax_sample,
)
from fxgx.estimators.sampling import evaluate, sub_seeds
from fxgx.problems import EnumeratedCategorical, get_problem
from fxgx.problems.builtin import NONADDITIVE_LOGITS, NONADDITIVE_WEIGHTS
from fxgx.testing import (
    assert_biased,
    assert_unbiased,
    assert_variance,
    gradient_moments,
    minimum_detectable_bias,
)

FALSE_FAILURE_RATE = 1e-5
TEMPERATURE = 0.5

# ---------------------------------------------------- the categorical test problem

CATEGORY_LOGITS = np.array([0.3, -0.5, 0.9])
CATEGORY_VALUES = np.array([0.8, -0.4, 0.3])
CATEGORY_CENTER = 0.2


def category_function(samples):
    """``(v . y - 0.2)^2 + y_0 y_1`` for one 3-class variable, samples ``[..., 1, 3]``."""
    backend = get_framework(samples)
    values = backend.xp.asarray(CATEGORY_VALUES, dtype=samples.dtype)
    linear = backend.xp.sum(samples * values, axis=(-2, -1))
    return backend.xp.square(linear - CATEGORY_CENTER) + samples[..., 0, 0] * samples[..., 0, 1]


def category_slope(k):
    """``grad f`` at the one-hot ``e_k``."""
    slope = 2 * (CATEGORY_VALUES[k] - CATEGORY_CENTER) * CATEGORY_VALUES
    slope[0] += 1.0 if k == 1 else 0.0
    slope[1] += 1.0 if k == 0 else 0.0
    return slope


def _softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(-1, keepdims=True)


def conditional_straight_through_moments(logits, k, slope, temperature, count=96):
    """``E[g | b = k]`` and ``E[g^2 | b = k]`` (per coordinate) for ``g = J^T slope``, ``J`` the
    Jacobian of ``softmax((theta + G) / tau)`` w.r.t. ``theta``, G Gumbel given argmax = k.
    Three classes."""
    probabilities = _softmax(logits)
    nodes, weights = np.polynomial.legendre.leggauss(count)
    nodes, weights = 0.5 * (nodes + 1), 0.5 * weights
    s, t = (grid.ravel() for grid in np.meshgrid(nodes, nodes, indexing="ij"))
    quadrature = np.outer(weights, weights).ravel() * 2 * (1 - s)
    first, second = (j for j in range(3) if j != k)
    simplex = np.zeros((len(s), 3))
    simplex[:, k], simplex[:, first], simplex[:, second] = s, (1 - s) * t, (1 - s) * (1 - t)
    top = simplex[:, [k]] * probabilities
    gaps = np.log(top) - np.log(top + simplex)
    gaps[:, k] = 0.0
    relaxed = _softmax(gaps / temperature)
    jacobian = relaxed[:, :, None] * (np.eye(3)[None] - relaxed[:, None, :]) / temperature
    estimate = jacobian @ slope  # J is symmetric
    return quadrature @ estimate, quadrature @ estimate**2


def exact_category_moments(num_conditional_samples):
    """Exact mean and variance of the Gumbel-Rao estimate (``M`` conditional draws)."""
    probabilities = _softmax(CATEGORY_LOGITS)
    mean = np.zeros(3)
    second = np.zeros(3)
    for k in range(3):
        conditional_mean, conditional_second = conditional_straight_through_moments(
            CATEGORY_LOGITS, k, category_slope(k), TEMPERATURE)
        mean += probabilities[k] * conditional_mean
        second += probabilities[k] * (
            conditional_mean**2
            + (conditional_second - conditional_mean**2) / num_conditional_samples
        )
    return mean, second - mean**2


def test_categorical_quadrature_has_converged_and_straight_through_is_biased():
    """The quadrature at 96 and 160 nodes agrees to 1e-9, and the ST-GS expectation differs
    from the exact gradient (by enumeration) by far more than that."""
    mean, _ = exact_category_moments(1)
    probabilities = _softmax(CATEGORY_LOGITS)
    finer = sum(
        probabilities[k] * conditional_straight_through_moments(
            CATEGORY_LOGITS, k, category_slope(k), TEMPERATURE, count=160)[0]
        for k in range(3)
    )
    np.testing.assert_allclose(mean, finer, rtol=0, atol=1e-9)
    exact = _category_problem().exact_gradient()
    assert np.max(np.abs(mean - exact)) > 0.01


def _category_problem():
    return EnumeratedCategorical(category_function, CATEGORY_LOGITS[None, :],
                                 name="category(K=3)")


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("num_conditional_samples", [1, 8])
def test_categorical_mean_and_variance_match_exact_straight_through(framework,
                                                                      num_conditional_samples):
    """The mean of Gumbel-Rao equals the exact ST-GS expectation (M = 1 *is* ST-GS in
    distribution: z~ | b with b ~ q is unconditionally Gumbel), and its variance equals the
    exact ``sum_k p_k (mu_k^2 + Var(g | k) / M) - mean^2``.

    n = 131072 estimates; Holm over 3 coordinates at 1e-5 for each check. Power 0.99 to detect
    a mean error of 0.01 (asserted: the test fails as underpowered otherwise); the variance
    z-test has a standard error of about 1% of the variance, so a 7% error is detected."""
    problem = _category_problem()
    moments = gradient_moments(
        gumbel_rao(temperature=TEMPERATURE, num_conditional_samples=num_conditional_samples),
        problem, num_estimates=131072, seed=31, backend=framework.name, chunk_size=65536,
    )
    mean, variance = exact_category_moments(num_conditional_samples)
    assert_unbiased(moments, mean, false_failure_rate=FALSE_FAILURE_RATE, detectable_bias=0.01)
    assert_variance(moments, variance, false_failure_rate=FALSE_FAILURE_RATE)
    assert np.all(moments.variance_standard_error < 0.015 * variance)


def test_rao_blackwellisation_lowers_the_exact_variance():
    """Exact (quadrature) variances: strictly decreasing in the number of conditional draws."""
    variances = [exact_category_moments(m)[1] for m in (1, 2, 8, 64)]
    for larger, smaller in itertools.pairwise(variances):
        assert np.all(smaller < larger)


# --------------------------------------------------------- the Bernoulli two-class form


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def conditional_slope(theta, b, temperature, count=400):
    """``E[sigmoid'((theta + L~) / tau) / tau | b]`` with L~ the logistic noise given b."""
    nodes, weights = np.polynomial.legendre.leggauss(count)
    v, weights = 0.5 * (nodes + 1), 0.5 * weights
    inner = np.log(v) - np.log1p(-v) + np.logaddexp(0.0, theta if b else -theta)
    relaxed_logit = np.logaddexp(0.0, inner) if b else -np.logaddexp(0.0, inner)
    relaxed = _sigmoid(relaxed_logit / temperature)
    return weights @ (relaxed * (1 - relaxed) / temperature)


def exact_nonadditive_straight_through(temperature=TEMPERATURE):
    """``E[g_ST]`` on ``nonadditive_bernoulli``: sum over states of ``q(b) E[J | b] grad f(b)``."""
    states = np.array(list(itertools.product((0.0, 1.0), repeat=8)))
    probabilities = _sigmoid(NONADDITIVE_LOGITS)
    weights = np.prod(np.where(states > 0.5, probabilities, 1 - probabilities), axis=1)
    slopes = 2 * (states @ NONADDITIVE_WEIGHTS - 1.3)[:, None] * NONADDITIVE_WEIGHTS[None, :]
    slopes[:, 0] += 0.8 * states[:, 1] * states[:, 2]
    slopes[:, 1] += 0.8 * states[:, 0] * states[:, 2]
    slopes[:, 2] += 0.8 * states[:, 0] * states[:, 1]
    jacobian = np.array([[conditional_slope(theta, b, temperature) for b in (0, 1)]
                         for theta in NONADDITIVE_LOGITS])
    conditional = np.where(states > 0.5, jacobian[:, 1][None], jacobian[:, 0][None])
    return weights @ (conditional * slopes)


@pytest.mark.jax_in_slow_set
def test_bernoulli_mean_matches_exact_straight_through(framework):
    """Gumbel-Rao's mean on ``nonadditive_bernoulli`` equals the exact ST-GS expectation.
    n = 131072, Holm over 8 coordinates at 1e-5, power 0.99 against an error of 0.01."""
    problem = get_problem("nonadditive_bernoulli")
    moments = gradient_moments(gumbel_rao(), problem, num_estimates=131072, seed=5,
                               backend=framework.name, chunk_size=65536)
    assert_unbiased(moments, exact_nonadditive_straight_through(),
                    false_failure_rate=FALSE_FAILURE_RATE, detectable_bias=0.01)


def test_the_card_bias_signs_follow_from_the_exact_expectation():
    """The card's ``bias_sign`` is ``sign(E[g_ST] - grad E[f])`` from quadrature, and with the
    card's ``num_estimates`` each coordinate's bias is at least twice the smallest detectable
    bias (Holm at 1e-5 over 8 coordinates, power 0.99), using the standard deviation of one
    estimate measured with n = 65536 (a smaller n than the card's: conservative)."""
    card = catalogue.get_card("gumbel_rao")
    problem = get_problem(card.test["bias_problem"])
    bias = exact_nonadditive_straight_through() - problem.exact_gradient()
    np.testing.assert_array_equal(np.sign(bias), np.asarray(card.test["bias_sign"]))
    assert "bias_coordinates" not in card.test
    moments = gradient_moments(card.make(), problem, num_estimates=65536, seed=8,
                               backend="jax", chunk_size=65536)
    standard_error = np.sqrt(moments.variance / int(card.test["num_estimates"]))
    detectable = minimum_detectable_bias(standard_error, false_failure_rate=1e-5, power=0.99,
                                         num_coordinates=bias.size)
    assert np.all(np.abs(bias) > 2 * detectable), (bias, detectable)
    assert_biased(moments, problem.exact_gradient(), expected_sign=card.test["bias_sign"])


# ------------------------------------- the closed-form Jacobian against autodiff


class AutodiffGumbelRao(GumbelRao):
    """The estimator with the same draws, but the averaged Jacobian taken by autodiff through
    the ``M`` relaxed samples and the conditional draws made by REBAR's samplers (the form of
    the first implementation): the reference of the closed form."""

    def _estimate(self, backend, function, distribution, seed, num_samples):
        logits = distribution.logits
        dtype = logits.dtype
        stopped = backend.stop_gradient(logits)
        shape = (num_samples,) + tuple(logits.shape)
        temperature = as_hyperparameter(backend, self.temperature, dtype,
                                        tuple(logits.shape), "temperature")
        seeds = sub_seeds(backend, seed, "perturbation", "conditional")
        first = open_uniform(backend, shape, seeds["perturbation"], dtype)
        second = open_uniform(backend, (self.num_conditional_samples - 1,) + shape,
                              seeds["conditional"], dtype)
        if distribution.kind == "bernoulli":
            perturbed = stopped + backend.xp.log(first) - backend.xp.log1p(-first)
            samples = backend.xp.astype(backend.xp.greater(perturbed, 0.0), dtype)
            conditional = conditional_logistic_from_uniform(backend, stopped, samples, second)
        else:
            perturbed = stopped - backend.xp.log(-backend.xp.log(first))
            samples = one_hot(backend.xp, backend.xp.argmax(perturbed, axis=-1), shape[-1],
                              dtype)
            conditional = conditional_gumbel_from_uniform(backend, stopped, samples, second)
        draws = backend.xp.concat([perturbed[None], conditional], axis=0)
        noisy = backend.stop_gradient(draws) + (logits - stopped)
        relaxed = relax_sample(backend, distribution.kind, noisy, temperature)
        average = backend.xp.mean(relaxed, axis=0)
        hard = custom_gradient(samples, backend.xp.ones_like(average), average)
        return backend.xp.mean(evaluate(backend, function, hard, distribution, num_samples),
                               axis=0)


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("kind", ["bernoulli", "categorical"])
@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
def test_closed_form_jacobian_equals_autodiff_through_the_relaxed_samples(framework, kind,
                                                                          dtype):
    """Same seed, same draws: the gradient w.r.t. the logits and the temperature (a traced
    array) of the closed-form average ``(1/M) sum_m J_m^T grad f(b)`` equals autodiff through
    the ``M`` sigmoids/softmaxes, to 1e-9 in float64 and 1e-4 in float32 (XLA / jit).
    (The relative error of autodiff's ``y (1 - y)`` near ``y = 1`` sets the float32 tolerance.)
    Logits up to +-6 and a temperature of 0.3 put relaxed samples near 0 and 1."""
    rng = np.random.default_rng(4)
    shape = (3, 5) if kind == "categorical" else (4, 6)
    logits_ = rng.uniform(-6.0, 6.0, shape)
    weights_ = rng.normal(size=shape)

    def make_surrogate(estimator_type):
        def surrogate(logits, temperature):
            backend = get_framework(logits)
            weights = backend.xp.asarray(weights_, dtype=logits.dtype)
            estimator = estimator_type(temperature=temperature, num_conditional_samples=7)
            distribution = (OneHotCategorical(logits, event_ndims=1) if kind == "categorical"
                            else Bernoulli(logits, event_ndims=2))
            return estimator(lambda z: backend.xp.sum(backend.xp.square(z * weights - 0.3)
                                                          + z * weights, axis=(-2, -1)),
                             distribution, seed=17, num_samples=3)
        return surrogate

    # float64 eagerly on TF (no compilation: keeps the default set fast), compiled on JAX;
    # float32 compiled (XLA / jit), in the slow set.
    if dtype == "float64":
        mode, tolerance = framework.modes[0 if framework.name == "tensorflow" else -1], 1e-9
    else:
        mode, tolerance = framework.modes[-1], 1e-4
    with framework.x64(dtype):
        arguments = (framework.constant(logits_, dtype), framework.constant(0.3, dtype))
        value, gradients = framework.value_and_vjp(make_surrogate(GumbelRao), *arguments,
                                                   mode=mode)
        expected_value, expected = framework.value_and_vjp(
            make_surrogate(AutodiffGumbelRao), *arguments, mode=mode)
    np.testing.assert_array_equal(value, expected_value)
    assert np.max(np.abs(expected[0])) > 0.1 and np.abs(expected[1]) > 0.01
    for actual, reference in zip(gradients, expected, strict=True):
        np.testing.assert_allclose(actual, reference, rtol=tolerance,
                                   atol=tolerance * np.max(np.abs(reference)))


# ------------------------------------------------------- values, modes, dtypes, errors


@pytest.mark.jax_in_slow_set
def test_value_is_f_at_the_hard_sample(framework):
    """``f`` sees exactly one-hot (or 0/1) samples and the surrogate is their mean of f."""
    seen = []

    def function(samples):
        seen.append(framework.numpy(samples))
        return framework.backend.xp.sum(samples * samples * 0.5 + samples, axis=-1)

    logits = framework.constant([[0.3, -0.5, 0.9], [1.0, 0.0, -2.0]])
    value = framework.numpy(gumbel_rao()(function, OneHotCategorical(logits), seed=3,
                                         num_samples=5))
    (samples,) = seen
    assert samples.shape == (5, 2, 3)
    np.testing.assert_array_equal(samples.sum(-1), np.ones((5, 2)))
    assert set(np.unique(samples)) <= {0.0, 1.0}
    np.testing.assert_allclose(value, np.mean(np.sum(samples * 1.5, -1), 0), rtol=1e-6)

    seen.clear()
    gumbel_rao()(function, Bernoulli(framework.constant([0.3, -2.0]), event_ndims=1), seed=3,
                 num_samples=4)
    assert set(np.unique(seen[0])) <= {0.0, 1.0}


@pytest.mark.slow  # 3 s; the catalogue runs Gumbel-Rao in graph mode in the default set
@pytest.mark.parametrize("backend", ["tensorflow", "jax"], indirect=True)
def test_same_numbers_in_every_mode_and_float64(framework):
    estimator = gumbel_rao(temperature=0.7, num_conditional_samples=3)
    logits_ = np.array([[0.3, -0.5, 0.9], [1.0, 0.0, -2.0]])

    def surrogate(logits):
        return estimator(category_function, OneHotCategorical(logits[:, None, :],
                                                              event_ndims=1),
                         seed=21, num_samples=2)

    results = [framework.value_and_vjp(surrogate, framework.constant(logits_), mode=mode)
               for mode in framework.modes]
    for value, (gradient,) in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-6)
        np.testing.assert_allclose(gradient, results[0][1][0], rtol=1e-4, atol=1e-6)
    with framework.x64():
        value, (gradient,) = framework.value_and_vjp(
            surrogate, framework.constant(logits_, "float64"), mode=framework.modes[-1])
        # float64 draws its own uniforms, so only dtype and finiteness are compared.
        assert value.dtype == np.float64 and gradient.dtype == np.float64
        assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)


def test_jax_vmap_matches_a_loop():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    estimator = gumbel_rao()

    def gradient(logits):
        return jax.grad(lambda l: estimator(lambda y: jnp.sum((y - 0.45) ** 2, -1),
                                            Bernoulli(l, event_ndims=1), seed=3))(logits)

    batch = jnp.asarray(np.linspace(-1, 1, 12).reshape(4, 3), jnp.float32)
    compiled = jax.jit(gradient)
    looped = np.stack([np.asarray(compiled(row)) for row in batch])
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(gradient))(batch)), looped,
                               rtol=1e-5, atol=1e-7)


def test_factory_errors_name_the_argument(framework):
    for bad in (0.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            gumbel_rao(temperature=bad)
    with pytest.raises(TypeError, match="temperature"):
        gumbel_rao(temperature="1")
    with pytest.raises(ValueError, match="num_conditional_samples"):
        gumbel_rao(num_conditional_samples=0)
    with pytest.raises(TypeError, match="num_conditional_samples"):
        gumbel_rao(num_conditional_samples=2.5)
    with pytest.raises(TypeError, match="num_conditional_samples"):
        gumbel_rao(num_conditional_samples=True)
    from fxgx.distributions import Normal

    with pytest.raises(TypeError, match="bernoulli and categorical"):
        gumbel_rao()(lambda y: y, Normal(framework.constant([0.0]), 1.0), seed=0)
    assert not GumbelRao.unbiased and GumbelRao.name == "gumbel_rao"
