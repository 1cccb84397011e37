"""REINFORCE: both surrogate forms, higher-order unbiasedness (DiCE), TFP distributions.

Statistical tests here use fxgx.testing with a family-wise false-failure rate of 1e-5 and
demand power 0.99 against the bias stated in each test (``detectable_bias``).
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.distributions import Bernoulli
from fxgx.estimators import reinforce
from fxgx.problems import BernoulliToy, get_problem
from fxgx.testing import assert_unbiased, gradient_moments, moments_of


@pytest.mark.parametrize("problem_name", ["nonadditive_bernoulli", "small_categorical"])
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_closed_form_score_is_unbiased(problem_name, backend_name):
    problem = get_problem(problem_name)
    moments = gradient_moments(
        reinforce(higher_order=False), problem, num_estimates=262144, seed=11, backend=backend_name
    )
    assert_unbiased(moments, problem.exact_gradient(), detectable_bias=problem.detectable_bias)


@pytest.mark.jax_in_slow_set
def test_closed_form_and_dice_forms_give_the_same_first_derivative(backend):
    problem = get_problem("nonadditive_bernoulli")
    logits = backend.xp.asarray(problem.logits, dtype=backend.widest_float())

    def gradient(estimator):
        def total(logits):
            return estimator(
                problem.function, Bernoulli(logits, event_ndims=1), seed=5, num_samples=16
            )

        value, (grad,) = backend.value_and_gradient(total, [logits])
        return np.asarray(value), np.asarray(grad)

    value_fast, gradient_fast = gradient(reinforce(higher_order=False))
    value_dice, gradient_dice = gradient(reinforce(higher_order=True))
    np.testing.assert_array_equal(value_fast, value_dice)
    tolerance = 1e-10 if backend.widest_float() == "float64" else 1e-5
    np.testing.assert_allclose(gradient_fast, gradient_dice, rtol=tolerance, atol=tolerance)


def _second_derivatives(backend_name, estimator, logits, num_estimates, seed):
    """Per-replicate d^2/dtheta^2 of the surrogate on the one-dimensional toy."""
    problem = BernoulliToy(0.45, 0.0)
    if backend_name == "tensorflow":
        import tensorflow as tf

        tiled = tf.fill([num_estimates], tf.constant(logits, tf.float64))
        with tf.GradientTape() as outer:
            outer.watch(tiled)
            with tf.GradientTape() as inner:
                inner.watch(tiled)
                total = tf.reduce_sum(estimator(problem.function, Bernoulli(tiled), seed=seed))
            first = inner.gradient(total, tiled)
        return outer.gradient(first, tiled, unconnected_gradients="zero").numpy()
    import jax
    import jax.numpy as jnp

    tiled = jnp.full((num_estimates,), logits, dtype=jnp.float32)

    def total(theta):
        return jnp.sum(estimator(problem.function, Bernoulli(theta), seed=seed))

    # Replicates are independent, so the Hessian is diagonal: its diagonal is the gradient of
    # the sum of the first derivatives.
    return np.asarray(jax.grad(lambda theta: jnp.sum(jax.grad(total)(theta)))(tiled))


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
@pytest.mark.parametrize("theta", [0.0, -1.5])
def test_second_derivative_is_unbiased_for_the_dice_form(backend_name, theta):
    """d^2E/dtheta^2 = p(1-p)(1-2p)(1-2t) for the toy E[(b - t)^2], p = sigmoid(theta)."""
    p = 1.0 / (1.0 + np.exp(-theta))
    exact = p * (1 - p) * (1 - 2 * p) * (1 - 2 * 0.45)
    samples = _second_derivatives(backend_name, reinforce(), theta, 400_000, seed=3)
    moments = moments_of(samples[:, None])
    # Power: a bias of 0.01 (40% of the theta=0 first derivative) is detectable at 0.99.
    assert_unbiased(moments, [exact], detectable_bias=0.01)


def _higher_derivatives(backend_name, logits, decoder, num_estimates, seed):
    """Per-replicate ``(d^2/dtheta dphi, d^3/dtheta^3)`` of DiCE's surrogate for
    ``E[(b - phi)^2]``, ``b ~ Bernoulli(sigmoid(theta))``, one ``(theta, phi)`` per replicate."""
    estimator = reinforce()
    if backend_name == "tensorflow":
        import tensorflow as tf

        theta = tf.fill([num_estimates], tf.constant(logits, tf.float64))
        phi = tf.fill([num_estimates], tf.constant(decoder, tf.float64))
        with tf.GradientTape(persistent=True) as third:
            third.watch([theta, phi])
            with tf.GradientTape() as second:
                second.watch(theta)
                with tf.GradientTape() as first:
                    first.watch(theta)
                    total = tf.reduce_sum(
                        estimator(lambda b: (b - phi) ** 2, Bernoulli(theta), seed=seed)
                    )
                gradient = first.gradient(total, theta)
            curvature = second.gradient(gradient, theta)
            gradient_sum = tf.reduce_sum(gradient)
            curvature_sum = tf.reduce_sum(curvature)
        mixed = third.gradient(gradient_sum, phi)
        cubic = third.gradient(curvature_sum, theta)
        return mixed.numpy(), cubic.numpy()
    import jax
    import jax.numpy as jnp

    theta = jnp.full((num_estimates,), logits, dtype=jnp.float32)
    phi = jnp.full((num_estimates,), decoder, dtype=jnp.float32)

    def total(theta, phi):
        return jnp.sum(estimator(lambda b: (b - phi) ** 2, Bernoulli(theta), seed=seed))

    def gradient_sum(theta, phi):
        return jnp.sum(jax.grad(total)(theta, phi))

    def curvature_sum(theta):
        return jnp.sum(jax.grad(gradient_sum)(theta, phi))

    # Replicates are independent: each derivative tensor is diagonal across replicates.
    mixed = jax.grad(gradient_sum, argnums=1)(theta, phi)
    cubic = jax.grad(curvature_sum)(theta)
    return np.asarray(mixed), np.asarray(cubic)


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_mixed_and_third_derivatives_are_unbiased_for_the_dice_form(backend_name):
    """E[(b - phi)^2] = p (1 - 2 phi) + phi^2 with p = sigmoid(theta), so the mixed
    derivative d^2E/(dtheta dphi) is -2 p' and d^3E/dtheta^3 = p' (1 - 6 p + 6 p^2) (1 - 2 phi),
    with p' = p (1 - p)."""
    theta, phi = 0.5, 0.2
    p = 1.0 / (1.0 + np.exp(-theta))
    derivative = p * (1 - p)
    exact_mixed = -2.0 * derivative
    exact_cubic = derivative * (1 - 6 * p + 6 * p**2) * (1 - 2 * phi)
    mixed, cubic = _higher_derivatives(backend_name, theta, phi, 50_000, seed=7)
    moments = moments_of(np.stack([mixed, cubic], axis=1))
    # Power: biases of 0.04 (8% of the mixed derivative, half the third) are detectable at
    # 0.99 with assert_unbiased's default family-wise false-failure rate.
    assert_unbiased(moments, [exact_mixed, exact_cubic], detectable_bias=0.04)


def test_second_derivative_of_the_first_order_form_is_zero_and_therefore_biased():
    """The closed-form surrogate is first order only: documented, and checked here."""
    samples = _second_derivatives("tensorflow", reinforce(higher_order=False), -1.5, 1000, seed=3)
    np.testing.assert_array_equal(samples, 0.0)


def test_tensorflow_probability_distributions_are_accepted():
    import tensorflow as tf
    import tensorflow_probability as tfp

    problem = BernoulliToy(0.45, [-2.0, 0.0, 2.0])
    logits = tf.constant(problem.logits, tf.float64)
    wrapped = tfp.distributions.Independent(
        tfp.distributions.Bernoulli(logits=logits, dtype=tf.float64), 1
    )
    with tf.GradientTape() as tape:
        tape.watch(logits)
        wrapped = tfp.distributions.Independent(
            tfp.distributions.Bernoulli(logits=logits, dtype=tf.float64), 1
        )
        surrogate = reinforce()(problem.function, wrapped, seed=1, num_samples=200_000)
    gradient = tape.gradient(surrogate, logits).numpy()
    # One estimate from 200k samples: its standard error is below 4e-4 per coordinate
    # (REINFORCE variance <= 0.016), so 6 standard errors is 2.4e-3.
    np.testing.assert_allclose(gradient, problem.exact_gradient(), atol=2.4e-3)


def test_generic_tensorflow_probability_distribution_uses_its_own_sampler_and_log_prob():
    """A Poisson has no fxgx counterpart: E[z^2] = r + r^2, d/dr = 1 + 2r."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    rate = tf.constant(1.5, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(rate)
        distribution = tfp.distributions.Poisson(rate=rate)
        surrogate = reinforce(baseline=3.75)(
            lambda z: z**2, distribution, seed=4, num_samples=400_000
        )
    gradient = float(tape.gradient(surrogate, rate))
    assert float(surrogate) == pytest.approx(1.5 + 1.5**2, abs=0.05)
    # The estimate's standard error is about 0.006 here; 6 standard errors.
    assert gradient == pytest.approx(1 + 2 * 1.5, abs=0.04)


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="baseline"):
        reinforce(baseline="zero")
    with pytest.raises(TypeError, match="higher_order"):
        reinforce(higher_order=1)
    problem = BernoulliToy(0.45, 0.0)
    import jax.numpy as jnp

    distribution = Bernoulli(jnp.zeros(3), event_ndims=1)
    with pytest.raises(ValueError, match="seed"):
        reinforce()(problem.function, distribution, seed=None)
    with pytest.raises(ValueError, match="num_samples"):
        reinforce()(problem.function, distribution, seed=0, num_samples=0)
    with pytest.raises(ValueError, match="function returned shape"):
        reinforce()(lambda z: z, distribution, seed=0, num_samples=2)


def test_a_jax_distribution_of_another_library_gives_the_numbers_of_fxgx_normal():
    """An object with ``sample(sample_shape=, seed=)``/``log_prob`` on JAX arrays is drawn
    with the native JAX key: the same draws as fxgx's Normal, so the same surrogate and
    gradient, eagerly and under ``jax.jit`` (it once made REINFORCE import TensorFlow and fail
    with TracerArrayConversionError)."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from fxgx.distributions import Normal

    class PlainNormal:
        def __init__(self, loc, scale):
            self.loc, self.scale = loc, scale

        def sample(self, sample_shape=(), seed=None):
            shape = tuple(sample_shape) + jnp.shape(self.loc)
            return self.loc + self.scale * jax.random.normal(seed, shape)

        def log_prob(self, value):
            return (-0.5 * ((value - self.loc) / self.scale) ** 2 - jnp.log(self.scale)
                    - 0.5 * jnp.log(2 * jnp.pi))

    def value_and_gradient(make):
        return jax.value_and_grad(lambda loc: reinforce()(
            lambda z: (z - 1.0) ** 2, make(loc, jnp.float32(0.7)), seed=3, num_samples=5))

    loc = jnp.float32(0.2)
    expected = value_and_gradient(Normal)(loc)
    for compiled in (False, True):
        function = value_and_gradient(PlainNormal)
        actual = (jax.jit(function) if compiled else function)(loc)
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-6)
