"""Straight-through estimators and sample-level building blocks, on TensorFlow and JAX: plain
straight-through (``straight_through``) and the tests it shares with
``straight_through_slope`` (each names the slope card in a comment). The slope card's own
tests are in ``test_straight_through_slope.py``.

The straight-through gradient given a sample is deterministic, so its *expectation* is known
exactly by enumerating the samples: ``E[g] = sum_s q(s) J^T grad f(s)`` with ``J`` the
Jacobian of the surrogate (``sigmoid(a l)`` or ``softmax(a l)``). The statistical tests
below compare the estimator's mean with that exact biased value (and, separately, the
frequency of the hard samples with the exact probabilities).

Statistical tests: Holm-adjusted z-tests with a family-wise false-failure rate of 1e-5
(binomial frequency tests: 1e-6); each demands power 0.99 against the bias it names
(``detectable_bias``; ``assert_unbiased`` fails as underpowered otherwise). Seeds are fixed,
so every run is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.estimators import (
    StraightThrough,
    StraightThroughSlope,
    binary_concrete_sample,
    straight_through,
    straight_through_bernoulli,
    straight_through_categorical,
    straight_through_slope,
)
from fxgx.problems import get_problem
from fxgx.problems.enumeration import bernoulli_states, categorical_states
from fxgx.testing import assert_unbiased, gradient_moments
from fxgx.testing.hypothesis_tests import holm_rejections, two_sided_p_values

DTYPES = ("float32", "float64")
TOLERANCE = {"float32": 2e-6, "float64": 1e-14}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x):
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _function_gradients(function, states, backend_name="tensorflow"):
    """``grad f`` at each enumerated state (float64 autodiff of the problem's own ``f``)."""
    from fxgx.backends import framework_by_name

    backend = framework_by_name(backend_name)
    states_array = backend.xp.asarray(states, dtype=backend.xp.float64)
    _, (gradients,) = backend.value_and_gradient(
        lambda z: backend.xp.sum(function(z)), [states_array]
    )
    return np.asarray(gradients)


def exact_straight_through_mean(problem, slope=1.0):
    """``E[g]`` of the straight-through estimator by enumeration (float64, no sampling)."""
    logits = np.asarray(problem.logits, dtype=np.float64)
    if problem.kind == "bernoulli":
        states = bernoulli_states(logits.size).reshape((-1,) + logits.shape)
        probabilities = sigmoid(logits)
        weights = np.prod(np.where(states == 1, probabilities, 1 - probabilities),
                          axis=tuple(range(1, states.ndim)))
        gradients = _function_gradients(problem.function, states)
        surrogate = sigmoid(slope * logits)
        per_state = gradients * slope * surrogate * (1 - surrogate)
    else:
        dimension, classes = logits.shape
        states = categorical_states(dimension, classes)
        weights = np.prod(np.sum(states * softmax(logits), axis=-1), axis=-1)
        gradients = _function_gradients(problem.function, states)
        surrogate = softmax(slope * logits)
        centred = gradients - np.sum(surrogate * gradients, axis=-1, keepdims=True)
        per_state = slope * surrogate * centred
    return np.ravel(np.tensordot(weights, per_state, axes=1))


# ---------------------------------------------------------- exact means of the estimator


def test_closed_form_on_the_bernoulli_toy_matches_enumeration():
    """The enumeration helper itself, against the closed form 2 (p - t) p (1 - p)."""
    problem = get_problem("bernoulli_toy")
    p = sigmoid(problem.logits)
    closed_form = 2 * (p - problem.target) * p * (1 - p)
    np.testing.assert_allclose(exact_straight_through_mean(problem), closed_form, rtol=1e-12)
    # The straight-through mean is not the exact gradient (bias p (1-p) (2p - 1)).
    np.testing.assert_allclose(closed_form - problem.exact_gradient(),
                               p * (1 - p) * (2 * p - 1), atol=1e-15)


# straight_through_slope too (slope != 1).
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
@pytest.mark.parametrize(
    "problem_name, slope",
    [("bernoulli_toy", 1.0), ("bernoulli_toy", 3.0), ("nonadditive_bernoulli", 1.0),
     ("small_categorical", 1.0), ("small_categorical", 2.0)],
)
def test_mean_equals_the_exact_straight_through_expectation(backend_name, problem_name, slope):
    """Mean of the estimates vs the exact E[g] (enumeration). Power 0.99 against a deviation
    of ``slope * problem.detectable_bias`` (the catalogue's standard, scaled like the
    estimates themselves); false-failure rate 1e-5."""
    problem = get_problem(problem_name)
    estimator = straight_through() if slope == 1.0 else straight_through_slope(slope)
    moments = gradient_moments(estimator, problem, num_estimates=262144, seed=2024,
                               backend=backend_name, dtype="float32")
    exact = exact_straight_through_mean(problem, slope)
    assert_unbiased(moments, exact, false_failure_rate=1e-5,
                    detectable_bias=slope * problem.detectable_bias)
    # The test can fail: the exact gradient (what an unbiased estimator would give) is
    # rejected on the same estimates wherever the bias is large (always on the toy).
    if problem_name == "bernoulli_toy":
        with pytest.raises(AssertionError, match="Biased"):
            assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5)


def test_straight_through_is_exact_for_a_linear_function(framework):
    """For f linear, f'(b) is a constant c and the estimate is exactly c * sigmoid'(l)."""
    logits_ = np.array([-1.0, 0.5, 2.0])
    weights_ = np.array([0.7, -1.2, 0.4])
    with framework.x64():
        weights = framework.constant(weights_, "float64")

        def total(logits):
            return straight_through()(lambda z: framework.backend.xp.sum(z * weights, axis=-1),
                                      Bernoulli(logits, event_ndims=1), seed=4, num_samples=7)

        _, (gradient,) = framework.value_and_vjp(total, framework.constant(logits_, "float64"),
                                                 mode=framework.modes[-1])
    p = sigmoid(logits_)
    np.testing.assert_allclose(gradient, weights_ * p * (1 - p), rtol=1e-13)


# --------------------------------------------------------------------- building blocks


def _binomial_holm(counts, trials, probabilities, false_failure_rate=1e-6):
    """Exact-probability z-tests of sample frequencies (normal approximation, Holm)."""
    mean = trials * probabilities
    deviation = np.sqrt(trials * probabilities * (1 - probabilities))
    z = (counts - mean) / deviation
    return holm_rejections(two_sided_p_values(z), false_failure_rate), z


# The block of straight_through and straight_through_slope.
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("dtype, slope", [("float32", 1.0), ("float64", 2.5)])
def test_bernoulli_block_value_is_the_sample_and_gradient_is_slope_times_sigmoid_derivative(
    framework, dtype, slope
):
    logits_ = np.linspace(-6.0, 6.0, 41)
    cotangent_ = np.linspace(-2.0, 3.0, 41)
    with framework.x64(dtype):
        results = []
        for mode in framework.modes:
            value, (gradient,) = framework.value_and_vjp(
                lambda logits: straight_through_bernoulli(logits, seed=3, slope=slope),
                framework.constant(logits_, dtype),
                cotangent=framework.constant(cotangent_, dtype), mode=mode,
            )
            results.append((value, gradient))
            assert value.dtype == np.dtype(dtype)
            assert set(np.unique(value)) <= {0.0, 1.0}
            # sigmoid' = sigmoid(x) sigmoid(-x): no cancellation, unlike y (1 - y).
            derivative = sigmoid(slope * logits_) * sigmoid(-slope * logits_)
            np.testing.assert_allclose(
                gradient, cotangent_ * slope * derivative,
                rtol=TOLERANCE[dtype], atol=0,
            )
        for value, gradient in results[1:]:
            # The same seed gives the same sample eagerly, in tf.function, under XLA / jit.
            np.testing.assert_array_equal(value, results[0][0])
            np.testing.assert_allclose(gradient, results[0][1], rtol=TOLERANCE[dtype])
        # The bit is the hard binary Concrete bit drawn from the same seed.
        concrete = binary_concrete_sample(framework.constant(logits_, dtype), temperature=1.0,
                                          seed=3, hard=True)
        np.testing.assert_array_equal(framework.numpy(concrete), results[0][0])


# The block of straight_through and straight_through_slope.
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("dtype, slope", [("float32", 0.5), ("float64", 1.0)])
def test_categorical_block_value_is_one_hot_and_gradient_is_the_softmax_jacobian(
    framework, dtype, slope
):
    rng = np.random.default_rng(7)
    logits_ = rng.normal(size=(6, 4)) * 2
    cotangent_ = rng.normal(size=(6, 4))
    with framework.x64(dtype):
        values = []
        for mode in framework.modes:
            value, (gradient,) = framework.value_and_vjp(
                lambda logits: straight_through_categorical(logits, seed=9, slope=slope),
                framework.constant(logits_, dtype),
                cotangent=framework.constant(cotangent_, dtype), mode=mode,
            )
            values.append(value)
            assert set(np.unique(value)) <= {0.0, 1.0}
            np.testing.assert_array_equal(value.sum(axis=-1), np.ones(6))
            p = softmax(slope * logits_)
            expected = slope * p * (cotangent_ - np.sum(p * cotangent_, axis=-1, keepdims=True))
            np.testing.assert_allclose(gradient, expected, rtol=10 * TOLERANCE[dtype],
                                       atol=10 * TOLERANCE[dtype])
        for value in values[1:]:
            np.testing.assert_array_equal(value, values[0])


def test_block_samples_have_the_exact_probabilities(backend):
    """Frequencies of 1s (Bernoulli) and of each class (categorical) vs sigmoid / softmax.
    False-failure rate 1e-6 (Holm, normal approximation to the binomial, n = 2^17 per
    coordinate); a probability off by 0.01 gives |z| > 20 and would be detected."""
    trials = 2**17
    logits_ = np.array([-4.0, -1.0, 0.0, 0.3, 2.0, 5.0])
    # Compiled: one XLA program instead of one per operation on 2^17-row arrays.
    bits = backend.compile(lambda logits: straight_through_bernoulli(logits, seed=12))(
        backend.xp.asarray(np.broadcast_to(logits_, (trials, 6)), dtype=backend.xp.float32)
    )
    rejected, z = _binomial_holm(np.asarray(bits).sum(axis=0), trials, sigmoid(logits_))
    assert not rejected.any(), z
    categorical_logits = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, -3.0]])
    one_hot = backend.compile(lambda logits: straight_through_categorical(logits, seed=13))(
        backend.xp.asarray(np.broadcast_to(categorical_logits, (trials, 2, 3)),
                           dtype=backend.xp.float32)
    )
    counts = np.asarray(one_hot).sum(axis=0).ravel()
    rejected, z = _binomial_holm(counts, trials, softmax(categorical_logits).ravel())
    assert not rejected.any(), z


def test_estimator_value_is_f_at_the_hard_samples(backend):
    problem = get_problem("nonadditive_bernoulli")
    seen = []

    def function(samples):
        seen.append(samples)
        return problem.function(samples)

    logits = backend.xp.asarray(problem.logits, dtype=backend.xp.float32)
    value = straight_through()(function, Bernoulli(logits, event_ndims=1), seed=8,
                               num_samples=32)
    samples = np.asarray(seen[0])
    assert samples.shape == (32, 8) and set(np.unique(samples)) <= {0.0, 1.0}
    expected = backend.xp.mean(problem.function(
        backend.xp.asarray(samples, dtype=backend.xp.float32)))
    np.testing.assert_array_equal(np.asarray(value), np.asarray(expected))


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_give_finite_values_and_gradients(framework, dtype):
    """JAX compiled (one compilation instead of one per operation), TF eager."""
    logits_ = np.array([-50.0, -20.0, 0.0, 20.0, 50.0])
    mode = "jit" if framework.name == "jax" else "eager"
    with framework.x64(dtype):
        value, (gradient,) = framework.value_and_vjp(
            lambda logits: straight_through_bernoulli(logits, seed=1, slope=4.0),
            framework.constant(logits_, dtype), mode=mode,
        )
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
        assert value[0] == 0.0 and value[-1] == 1.0
        categorical_ = np.array([[50.0, -50.0, 0.0], [-50.0, -50.0, 50.0]])
        value, (gradient,) = framework.value_and_vjp(
            lambda logits: straight_through_categorical(logits, seed=1),
            framework.constant(categorical_, dtype), mode=mode,
        )
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
        np.testing.assert_array_equal(value, [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])

        def total(logits):
            return straight_through()(lambda z: (z - 0.3) ** 2, Bernoulli(logits),
                                      seed=2, num_samples=3)

        value, (gradient,) = framework.value_and_vjp(total, framework.constant(logits_, dtype),
                                                    mode=mode)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))


def test_jax_jit_and_vmap_agree_with_plain_calls():
    import jax
    import jax.numpy as jnp

    logits = jnp.linspace(-3.0, 3.0, 10)
    keys = jax.random.split(jax.random.key(0), 5)
    plain = jnp.stack([straight_through_bernoulli(logits, seed=key) for key in keys])
    mapped = jax.vmap(lambda key: straight_through_bernoulli(logits, seed=key))(keys)
    jitted = jax.jit(jax.vmap(lambda key: straight_through_bernoulli(logits, seed=key)))(keys)
    np.testing.assert_array_equal(plain, mapped)
    np.testing.assert_array_equal(plain, jitted)

    # vmap over logits (with a slope given as a traced array) and over the gradient.
    def loss(row, slope):
        return jnp.sum(straight_through_bernoulli(row, seed=3, slope=slope) * row)

    batch = jnp.stack([logits, 2 * logits])
    gradients = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, None)))(batch, jnp.float32(2.0))
    for row, gradient in zip(batch, gradients, strict=True):
        bits = straight_through_bernoulli(row, seed=3)
        derivative = jax.nn.sigmoid(2.0 * row) * jax.nn.sigmoid(-2.0 * row)
        np.testing.assert_allclose(gradient, bits + row * 2.0 * derivative, rtol=1e-5)


def test_tensorflow_probability_distributions_are_accepted():
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    variable = tf.Variable([0.4, -1.0, 2.0])
    with tf.GradientTape() as tape:
        distribution = tfd.Independent(tfd.Bernoulli(logits=variable), 1)
        value = straight_through()(lambda z: tf.reduce_sum(z * [1.0, 2.0, 3.0], -1),
                                   distribution, seed=0, num_samples=4)
    gradient = tape.gradient(value, variable).numpy()
    p = sigmoid(np.array([0.4, -1.0, 2.0]))
    np.testing.assert_allclose(gradient, [1.0, 2.0, 3.0] * p * (1 - p), rtol=1e-6)
    categorical = tf.Variable([[0.1, 0.2, -0.3]])
    with tf.GradientTape() as tape:
        value = straight_through()(lambda z: tf.reduce_sum(z * [1.0, 0.0, -1.0], -1),
                                   tfd.OneHotCategorical(logits=categorical, dtype=tf.float32),
                                   seed=0, num_samples=2)
    assert value.shape == (1,)
    assert np.all(np.isfinite(tape.gradient(value, categorical).numpy()))


# ---------------------------------------------------------------------- the interface


# Both cards: straight_through and straight_through_slope.
def test_factories_and_classes():
    assert isinstance(straight_through(), StraightThrough)
    assert straight_through().name == "straight_through"
    estimator = straight_through_slope(3)
    assert isinstance(estimator, StraightThroughSlope) and estimator.slope == 3.0
    assert estimator.name == "straight_through_slope" and not estimator.unbiased
    assert set(StraightThrough.supports) == {"bernoulli", "categorical"}


def test_bad_distributions_and_logits(backend):
    logits = backend.xp.asarray(np.zeros(3), dtype=backend.xp.float32)
    with pytest.raises(TypeError, match="Normal"):
        straight_through()(lambda z: z, Normal(logits, logits + 1.0), seed=0)
    with pytest.raises(TypeError, match="logits"):
        straight_through_bernoulli(backend.xp.asarray(np.zeros(3, np.int32)), seed=0)
    with pytest.raises(ValueError, match="class axis"):
        straight_through_categorical(backend.xp.asarray(np.float32(0.0)), seed=0)
    with pytest.raises(ValueError, match="seed"):
        straight_through_bernoulli(logits, seed=None)
    with pytest.raises(ValueError, match="num_samples"):
        straight_through()(lambda z: z, Bernoulli(logits), seed=0, num_samples=0)
    with pytest.raises(ValueError, match="shape"):
        straight_through()(lambda z: z, OneHotCategorical(logits), seed=0, num_samples=2)


