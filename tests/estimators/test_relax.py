"""RELAX (``fxgx.estimators.relax``), and the tests it shares with REBAR
(``fxgx.estimators.rebar``): the exact quadrature itself, the conditional samplers, RELAX's
variance objective, unbiasedness at other hyper-parameters, modes, dtypes, shapes and errors.

A test that runs REBAR too names it in a comment. REBAR's own tests (the gradient of its
variance objective in the temperature and the scale, ``gradient_estimate``, ``jax.vmap``,
TFP inputs, ``tf.Variable`` hyper-parameters) are in ``test_rebar.py``.

Exact references: the Bernoulli toy ``E[(b - t)^2]`` is integrated by Gauss-Legendre
quadrature over the two uniforms ``(u, v)`` of one REBAR/RELAX estimate
(``toy_estimate_moments``; the integrand is a rational function of ``u`` and ``v`` on each
side of ``u = 1 - p``, so 200 nodes per axis reach float64 rounding). That gives ``E[g]``,
``E[g^2]`` and, by central differences of the deterministic quadrature,
``d E[g^2] / d phi``.

Statistical tests: z-tests with Holm over coordinates at a family-wise false-failure rate of
1e-5 each (``fxgx.testing``); the unbiasedness tests also demand power 0.99 against the
stated bias (they fail as underpowered otherwise). The seeds are fixed, so runs are
deterministic; about 14 such tests are in this file, so a chance failure has probability
below 1.5e-4 per seed choice.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import central_difference as _central_difference
from support import fast_mode as _fast_mode
from support import sigmoid as _sigmoid
from support import toy_estimate_moments

from fxgx.backends import get_framework
from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.estimators.rebar import Rebar, rebar
from fxgx.estimators.relax import Relax, relax
from fxgx.estimators.relaxations import conditional_gumbel_sample, conditional_logistic_sample
from fxgx.problems import EnumeratedBernoulli, get_problem
from fxgx.testing import assert_unbiased, assert_variance, gradient_moments, moments_of

FALSE_FAILURE_RATE = 1e-5

# ------------------------------------------------------------------ exact quadrature


THETA, TARGET = 0.3, 0.45
EXACT_TOY_GRADIENT = _sigmoid(THETA) * (1 - _sigmoid(THETA)) * (1 - 2 * TARGET)


def test_quadrature_reproduces_the_closed_form_gradient():
    """The quadrature itself: E[g] equals p (1 - p) (1 - 2 t) for any control variate."""
    for scale, temperature, residual in ((0.0, 0.5, 0.0), (0.7, 0.5, 0.0), (1.3, 0.2, -0.4)):
        mean, _ = toy_estimate_moments(THETA, TARGET, temperature, scale, residual)
        assert mean == pytest.approx(EXACT_TOY_GRADIENT, rel=1e-10, abs=1e-14)


# ------------------------------------------------------------ conditional samplers


# The sampler of REBAR and RELAX.
@pytest.mark.jax_in_slow_set
def test_conditional_logistic_matches_its_sample_and_the_logistic_marginal(framework):
    """``z~ | b`` with ``b ~ Bernoulli`` must be ``theta + Logistic``: P(z~ <= t) = sigmoid(t -
    theta), exactly consistent with ``b``. n = 200000 draws per logit; the z-tests (Holm over
    9 coordinates, rate 1e-5) detect a CDF error of 0.006 with power 0.99."""
    backend = framework.backend
    logits_ = np.array([-1.2, 0.1, 2.0])
    logits = framework.constant(logits_)
    samples = Bernoulli(logits).sample((200_000,), seed=backend.seed_from_int(11))
    relaxed = framework.numpy(conditional_logistic_sample(logits, samples, seed=5))
    samples = framework.numpy(samples)
    np.testing.assert_array_equal(relaxed > 0, samples > 0.5)
    thresholds = np.array([-1.0, 0.0, 1.5])
    indicators = (relaxed[:, :, None] <= thresholds).reshape(len(relaxed), -1)
    exact = _sigmoid(thresholds[None, :] - logits_[:, None]).ravel()
    assert_unbiased(moments_of(indicators), exact, false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.01)


# The sampler of REBAR and RELAX.
@pytest.mark.jax_in_slow_set
def test_conditional_gumbel_matches_its_sample_and_the_gumbel_marginal(framework):
    """``z~ | b`` with ``b ~ Categorical`` must be iid Gumbel(theta_k): argmax z~ = b, the
    marginal CDFs exp(-exp(theta_k - t)) and the joint CDF of two classes their product.
    n = 200000; Holm over 7 coordinates at 1e-5 detects a CDF error of 0.01 (power 0.99)."""
    backend = framework.backend
    logits_ = np.array([0.5, -0.3, 1.1])
    logits = framework.constant(logits_)
    samples = OneHotCategorical(logits).sample((200_000,), seed=backend.seed_from_int(3))
    relaxed = framework.numpy(conditional_gumbel_sample(logits, samples, seed=9))
    samples = framework.numpy(samples)
    np.testing.assert_array_equal(np.argmax(relaxed, -1), np.argmax(samples, -1))
    threshold = 0.8
    marginal = relaxed <= threshold
    lower = relaxed <= -0.2
    columns = [marginal, lower, (marginal[:, 0] & marginal[:, 1])[:, None]]
    indicators = np.concatenate(columns, axis=1)
    cdf_high = np.exp(-np.exp(logits_ - threshold))
    cdf_low = np.exp(-np.exp(logits_ + 0.2))
    exact = np.concatenate([cdf_high, cdf_low, [cdf_high[0] * cdf_high[1]]])
    assert_unbiased(moments_of(indicators), exact, false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.01)


# The samplers of REBAR and RELAX.
def test_conditional_samplers_reject_mismatched_shapes(framework):
    logits = framework.constant([0.1, 0.2])
    with pytest.raises(ValueError, match="samples"):
        conditional_logistic_sample(logits, framework.constant([[1.0, 0.0, 1.0]]), seed=0)
    with pytest.raises(ValueError, match="class axis"):
        conditional_gumbel_sample(framework.constant(0.3), framework.constant(1.0), seed=0)
    with pytest.raises(TypeError, match="logits"):
        conditional_logistic_sample(framework.backend.xp.asarray(np.array([1, 2])),
                                    framework.constant([1.0, 0.0]), seed=0)


# ---------------------------------------------------------- the variance objective


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend", ["tensorflow", "jax"], indirect=True)
def test_relax_variance_loss_gradient_in_the_control_variate_parameters(framework):
    """RELAX with ``c = 0.7 f(sigmoid(z / 0.5)) + phi tanh(z)``: d E[g^2]/d phi (per replicate)
    against the exact quadrature derivative; n = 300000, Holm at 1e-5, power 0.99 against an
    error of 10% of it. Also checks the variance of ``g`` itself against the quadrature."""
    count, phi_ = 300_000, 0.1
    estimator = relax(lambda z, phi: phi * framework.backend.xp.tanh(z), temperature=0.5,
                      scale=0.7)
    distribution = Bernoulli(framework.constant(np.full(count, THETA)))

    def loss(phi):
        return estimator.variance_loss(lambda y: (y - TARGET) ** 2, distribution, seed=77,
                                       control_variate_parameters=phi)

    _, (by_phi,) = framework.value_and_vjp(loss, framework.constant(np.full(count, phi_)),
                                           mode=_fast_mode(framework))
    exact = _central_difference(
        lambda r: toy_estimate_moments(THETA, TARGET, 0.5, 0.7, residual=r)[1], phi_)
    assert_unbiased(moments_of(by_phi[:, None]), [exact], false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.1 * abs(exact))

    estimate = framework.compile(
        lambda phi: estimator.gradient_estimate(lambda y: (y - TARGET) ** 2, distribution,
                                                seed=78, control_variate_parameters=phi),
        _fast_mode(framework))
    gradient = framework.numpy(estimate(framework.constant(np.full(count, phi_))))
    mean, second = toy_estimate_moments(THETA, TARGET, 0.5, 0.7, residual=phi_)
    moments = moments_of(gradient[:, None])
    assert_unbiased(moments, [mean], false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.1 * abs(mean))
    assert_variance(moments, second - mean**2, false_failure_rate=FALSE_FAILURE_RATE)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow"], indirect=True)
def test_minimising_the_variance_loss_reduces_the_exact_variance(framework):
    """Thirty steps of gradient descent on ``variance_loss`` w.r.t. RELAX's residual
    ``phi_0 + phi_1 tanh(z)`` (REBAR term kept, scale 0.7), started at ``phi = 0``, must cut
    the exact variance (quadrature) by at least half. Deterministic: fixed seeds."""
    backend = framework.backend
    count, step = 4096, 2.0
    estimator = relax(lambda z, phi: phi[0] + phi[1] * get_framework(z).xp.tanh(z), scale=0.7)
    distribution = Bernoulli(framework.constant(np.full(count, THETA)))

    def loss(phi, seed):
        return estimator.variance_loss(lambda y: (y - TARGET) ** 2, distribution, seed=seed,
                                       control_variate_parameters=phi) / count

    descent_direction = backend.compile(
        lambda phi, seed: backend.value_and_gradient(lambda p: loss(p, seed), [phi])[1][0])
    phi = np.zeros(2)
    for index in range(30):
        gradient = descent_direction(framework.constant(phi), backend.seed_from_int(index))
        phi = phi - step * framework.numpy(gradient)

    def variance(offset, residual):
        mean, second = toy_estimate_moments(THETA, TARGET, 0.5, 0.7, residual, offset=offset)
        return second - mean**2

    assert variance(*phi) < 0.5 * variance(0.0, 0.0), (phi, variance(*phi), variance(0, 0))


# ------------------------------------------------- unbiasedness beyond the defaults


def _nondifferentiable(samples):
    """``1[b_0 + b_1 + b_2 >= 2] + b_3``: a step function, never differentiated by RELAX with
    ``scale = 0``."""
    backend = get_framework(samples)
    total = samples[..., 0] + samples[..., 1] + samples[..., 2]
    return backend.xp.astype(backend.xp.greater(total, 1.5), samples.dtype) + samples[..., 3]


def _tanh_residual(z, parameters):
    """A fixed residual ``sum_d 0.3 tanh(0.7 z_d)`` over the trailing event axis."""
    backend = get_framework(z)
    return backend.xp.sum(0.3 * backend.xp.tanh(0.7 * z), axis=-1)


def _categorical_residual(z, parameters):
    backend = get_framework(z)
    return backend.xp.sum(0.2 * backend.xp.tanh(z), axis=(-2, -1))


UNBIASED_CASES = [
    pytest.param(rebar(temperature=0.3, scale=0.6), "categorical", "tensorflow", 2,
                 id="rebar(0.3,0.6)-categorical-tf-S2", marks=pytest.mark.slow),
    pytest.param(rebar(temperature=2.0, scale=1.4), "nonadditive_bernoulli", "jax", 1,
                 id="rebar(2,1.4)-nonadditive-jax"),
    pytest.param(relax(_tanh_residual, scale=0.0), "step", "tensorflow", 1,
                 id="relax(residual only)-step-tf"),
    pytest.param(relax(_categorical_residual, temperature=0.7), "categorical", "jax", 1,
                 id="relax(residual+rebar)-categorical-jax", marks=pytest.mark.slow),
]


def _problem(name):
    if name == "step":
        return EnumeratedBernoulli(_nondifferentiable, [-0.5, 0.3, 1.0, -1.2], name="step(D=4)")
    return get_problem(name)


# REBAR and RELAX (the estimator parameter).
@pytest.mark.parametrize("estimator, problem_name, backend_name, num_samples", UNBIASED_CASES)
def test_unbiased_with_other_hyperparameters(estimator, problem_name, backend_name, num_samples):
    """Unbiased for any temperature, scale and control variate (false-failure rate 1e-5, power
    0.99 against the problem's detectable bias)."""
    problem = _problem(problem_name)
    moments = gradient_moments(estimator, problem, num_estimates=131072, seed=99,
                               backend=backend_name, num_samples=num_samples)
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=problem.detectable_bias)


# ------------------------------------------------------- modes, dtypes, shapes, errors


# RELAX and REBAR.
@pytest.mark.slow  # RELAX's compiles are the longest; REBAR shares the path (explicit-state)
def test_same_numbers_in_every_mode(framework):
    """REBAR and RELAX give the same value and gradient eagerly, in tf.function, under XLA and
    under jax.jit (one seed, one threefry stream)."""
    backend = framework.backend
    logits_ = np.array([[0.2, -1.0, 0.7, 0.1], [1.5, 0.0, -0.3, 2.0]])

    def function(y):
        return backend.xp.sum((y - 0.3) ** 2, axis=-1)

    estimator = relax(_tanh_residual, temperature=0.4, scale=0.5)
    results = []
    for mode in framework.modes:
        value, gradients = framework.value_and_vjp(
            lambda logits: backend.xp.stack([
                estimator(function, Bernoulli(logits, event_ndims=1), seed=12, num_samples=4),
                rebar()(function, Bernoulli(logits, event_ndims=1), seed=13, num_samples=4),
            ]),
            framework.constant(logits_), mode=mode,
        )
        results.append((value, gradients[0]))
    for value, gradient in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-6)
        np.testing.assert_allclose(gradient, results[0][1], rtol=1e-4, atol=1e-6)
    assert results[0][0].shape == (2, 2)
    assert np.all(np.isfinite(results[0][1]))


# REBAR and RELAX.
@pytest.mark.jax_in_slow_set
def test_float64_and_categorical_with_batch(framework):
    with framework.x64():
        logits = framework.constant(np.array([[[0.1, -0.4, 0.9], [0.0, 0.3, -1.0]]] * 2),
                                    "float64")

        def function(y):
            return framework.backend.xp.sum(y[..., 0] * 2.0 - y[..., 2], axis=-1)

        for estimator in (rebar(), relax(_categorical_residual)):
            value, (gradient,) = framework.value_and_vjp(
                lambda l, e=estimator: e(function, OneHotCategorical(l, event_ndims=1), seed=1,
                                         num_samples=2),
                logits, mode=_fast_mode(framework),
            )
            assert value.dtype == np.float64 and gradient.dtype == np.float64
            assert value.shape == (2,) and gradient.shape == (2, 2, 3)
            assert np.all(np.isfinite(gradient))


# REBAR and RELAX.
def test_factory_and_call_errors_name_the_argument(framework):
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            rebar(temperature=bad)
        with pytest.raises(ValueError, match="temperature"):
            relax(temperature=bad)
    with pytest.raises(TypeError, match="temperature"):
        rebar(temperature=True)
    with pytest.raises(ValueError, match="scale"):
        rebar(scale=float("nan"))
    with pytest.raises(TypeError, match="scale"):
        relax(scale="big")
    with pytest.raises(TypeError, match="control_variate"):
        relax(control_variate=3.0)
    logits = framework.constant([0.1, 0.2, 0.3])
    distribution = Bernoulli(logits, event_ndims=1)

    def function(y):
        return framework.backend.xp.sum(y, axis=-1)

    with pytest.raises(TypeError, match="temperature"):
        rebar()(function, distribution, seed=0,
                temperature=framework.backend.xp.asarray(np.array(1, np.int32)))
    with pytest.raises(ValueError, match="temperature"):
        rebar()(function, distribution, seed=0, temperature=framework.constant([0.5, 0.5]))
    with pytest.raises(ValueError, match="temperature"):
        rebar()(function, distribution, seed=0, temperature=-0.5)
    with pytest.raises(ValueError, match="control_variate_parameters"):
        relax()(function, distribution, seed=0, control_variate_parameters=logits)
    with pytest.raises(ValueError, match="control_variate"):
        relax(lambda z, p: z)(function, distribution, seed=0)
    with pytest.raises(ValueError, match="function returned shape"):
        rebar()(lambda y: y, distribution, seed=0)
    with pytest.raises(ValueError, match="num_samples"):
        rebar()(function, distribution, seed=0, num_samples=0)
    with pytest.raises(ValueError, match="seed"):
        rebar()(function, distribution, seed=None)
    normal = Normal(logits, 1.0)
    with pytest.raises(TypeError, match="bernoulli and categorical"):
        rebar()(function, normal, seed=0)


# REBAR and RELAX.
def test_class_metadata():
    assert Rebar.name == "rebar" and Relax.name == "relax"
    assert Rebar.unbiased and Relax.unbiased
    assert Rebar.supports == ("bernoulli", "categorical") == Relax.supports


