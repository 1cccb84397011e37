"""REBAR (``fxgx.estimators.rebar``): the gradient of its variance objective in the
temperature and the scale against exact derivatives, ``gradient_estimate``, ``jax.vmap`` and
``jax.jit``, TFP inputs, and ``tf.Variable`` hyper-parameters.

The tests REBAR shares with RELAX (the conditional samplers, unbiasedness at other
hyper-parameters, every execution mode, float64 and categorical latents, errors) are in
``test_relax.py``; ``test_catalogue.py`` tests REBAR against the exact gradient of every
problem its card names.

Exact reference: the Bernoulli toy ``E[(b - t)^2]`` is integrated by Gauss-Legendre
quadrature over the two uniforms ``(u, v)`` of one estimate (``toy_estimate_moments``,
checked against the closed-form gradient in ``test_relax.py``); central differences of the
deterministic quadrature give ``d E[g^2] / d(scale, temperature)``.

Statistical test: z-tests with Holm over the coordinates at a family-wise false-failure rate
of 1e-5 (``fxgx.testing``), demanding power 0.99 against an error of 10 % of the smaller
exact derivative (it fails as underpowered otherwise). The seed is fixed, so runs are
deterministic. The other tests are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import central_difference as _central_difference
from support import fast_mode as _fast_mode
from support import toy_estimate_moments

from fxgx.distributions import Bernoulli
from fxgx.estimators.rebar import rebar
from fxgx.testing import assert_unbiased, moments_of

FALSE_FAILURE_RATE = 1e-5
THETA, TARGET = 0.3, 0.45


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend", ["tensorflow", "jax"], indirect=True)
def test_variance_loss_gradient_matches_exact_derivatives(framework):
    """d E[g^2]/d scale and d E[g^2]/d temperature of REBAR on the toy, from the per-replicate
    gradients of ``variance_loss`` (each replicate has its own scale and temperature), against
    central differences of the exact quadrature. n = 400000 replicates; Holm over the two
    coordinates at 1e-5; power 0.99 against an error of 10% of the smaller exact derivative."""
    count, scale_, temperature_ = 400_000, 0.7, 0.5
    estimator = rebar()

    def loss(scale, temperature):
        distribution = Bernoulli(framework.constant(np.full(count, THETA)))
        return estimator.variance_loss(lambda y: (y - TARGET) ** 2, distribution, seed=2024,
                                       temperature=temperature, scale=scale)

    _, (by_scale, by_temperature) = framework.value_and_vjp(
        loss, framework.constant(np.full(count, scale_)),
        framework.constant(np.full(count, temperature_)), mode=_fast_mode(framework),
    )
    exact = np.array([
        _central_difference(lambda s: toy_estimate_moments(THETA, TARGET, temperature_, s)[1],
                            scale_),
        _central_difference(lambda t: toy_estimate_moments(THETA, TARGET, t, scale_)[1],
                            temperature_),
    ])
    moments = moments_of(np.stack([by_scale, by_temperature], axis=1))
    assert_unbiased(moments, exact, false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.1 * float(np.min(np.abs(exact))))


@pytest.mark.jax_in_slow_set
def test_gradient_estimate_is_the_surrogate_gradient(framework):
    """``gradient_estimate`` returns exactly what autodiff of the surrogate gives (same seed)."""
    estimator = rebar(temperature=0.4, scale=0.8)
    logits_ = np.array([[0.2, -1.0, 0.7], [1.5, 0.0, -0.3]])

    def function(y):
        return framework.backend.xp.sum((y - 0.3) ** 2 * y, axis=-1)

    for mode in ("eager", "function") if framework.name == "tensorflow" else ("jit",):
        _, (expected,) = framework.value_and_vjp(
            lambda logits: estimator(function, Bernoulli(logits, event_ndims=1), seed=4,
                                     num_samples=3),
            framework.constant(logits_), mode=mode,
        )
        run = framework.compile(
            lambda logits: estimator.gradient_estimate(
                function, Bernoulli(logits, event_ndims=1), seed=4, num_samples=3), mode)
        actual = framework.numpy(run(framework.constant(logits_)))
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_jax_vmap_and_jit_over_logits():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    estimator = rebar()

    def surrogate_gradient(logits):
        return jax.grad(lambda l: estimator(lambda y: jnp.sum((y - 0.45) ** 2, -1),
                                            Bernoulli(l, event_ndims=1), seed=3))(logits)

    batch = jnp.asarray(np.linspace(-1, 1, 12).reshape(4, 3), jnp.float32)
    mapped = jax.jit(jax.vmap(surrogate_gradient))(batch)
    looped = np.stack([np.asarray(surrogate_gradient(row)) for row in batch])
    np.testing.assert_allclose(np.asarray(mapped), looped, rtol=1e-5, atol=1e-7)


def test_tensorflow_probability_distributions_are_accepted():
    tf = pytest.importorskip("tensorflow")
    tfp = pytest.importorskip("tensorflow_probability")
    logits = tf.Variable([0.3, -0.2])
    with tf.GradientTape() as tape:
        value = rebar()(lambda y: tf.reduce_sum(y, -1),
                        tfp.distributions.Independent(tfp.distributions.Bernoulli(logits=logits),
                                                      1), seed=0)
    assert value.shape == ()
    assert tape.gradient(value, logits).shape == (2,)


def test_tensorflow_variables_as_hyperparameters_are_trained():
    """On TensorFlow the temperature and scale may be ``tf.Variable``s held by the estimator;
    ``variance_loss`` gives both a gradient (and the surrogate is unchanged in value)."""
    tf = pytest.importorskip("tensorflow")
    temperature, scale = tf.Variable(0.5), tf.Variable(0.8)
    estimator = rebar(temperature=temperature, scale=scale)
    distribution = Bernoulli(tf.constant([0.3, -0.2, 1.0]), event_ndims=1)

    def function(y):
        return tf.reduce_sum((y - 0.45) ** 2, -1)

    with tf.GradientTape() as tape:
        loss = estimator.variance_loss(function, distribution, seed=1, num_samples=2)
    gradients = tape.gradient(loss, [temperature, scale])
    assert all(g is not None and np.isfinite(g.numpy()) for g in gradients)
    fixed = rebar(temperature=0.5, scale=0.8)(function, distribution, seed=1, num_samples=2)
    np.testing.assert_allclose(estimator(function, distribution, seed=1, num_samples=2).numpy(),
                               fixed.numpy())
