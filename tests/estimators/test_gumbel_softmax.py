"""The relaxed Gumbel-softmax / binary Concrete estimator (``gumbel_softmax``), the tests it
shares with the hard one (``gumbel_softmax_hard``), and the sample-level building blocks.

Tests parametrised over ``hard`` run both cards; each names the hard card in a comment. The
hard card's own tests are in ``test_gumbel_softmax_hard.py``.

Exact references, never another Monte Carlo run:

- the distribution of the binary Concrete sample: ``P(y < v) = sigmoid(tau logit(v) - l)``
  (closed form), and of the hard samples: ``sigmoid(l)`` / ``softmax(l)``;
- the *mean of the estimator* on the Bernoulli toy, by numerical quadrature over the
  logistic noise (scipy ``quad``): relaxed ``E[2 (y - t) y (1 - y) / tau]``, hard
  ``E[2 (b - t) y (1 - y) / tau]``. A two-class Gumbel-softmax is a binary Concrete of the
  logit difference (``g_1 - g_0`` is logistic), so the same integrals give its mean.

Statistical tests: Holm-adjusted z-tests, family-wise false-failure rate 1e-5 for estimator
means (power 0.99 against a deviation of 0.005, the Bernoulli toy's detectable bias) and
1e-6 for frequency tests (normal approximation to the binomial, ``n = 2^16`` per cell, so a
probability off by 0.01 has ``|z| > 5`` plus margin; see each test). Seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from support import frequency_test as _frequency_test
from support import sigmoid

from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.estimators import (
    GumbelSoftmax,
    GumbelSoftmaxHard,
    binary_concrete_sample,
    gumbel_softmax,
    gumbel_softmax_hard,
    gumbel_softmax_sample,
)
from fxgx.problems import BernoulliToy, EnumeratedCategorical
from fxgx.testing import assert_unbiased, gradient_moments

DTYPES = ("float32", "float64")
TARGET = 0.45


def quadrature_mean(logit, temperature, hard):
    """Exact ``E[g]`` of the (hard) binary Concrete estimator on ``E[(b - t)^2]``."""

    def integrand(noise):
        z = (logit + noise) / temperature
        slope = sigmoid(z) * sigmoid(-z) / temperature
        value = (1.0 if logit + noise > 0 else 0.0) if hard else sigmoid(z)
        return 2 * (value - TARGET) * slope * sigmoid(noise) * sigmoid(-noise)

    kink = -logit  # where the hard bit flips and the relaxed sample is steepest
    left, _ = integrate.quad(integrand, -np.inf, kink, limit=200, epsabs=1e-13)
    right, _ = integrate.quad(integrand, kink, np.inf, limit=200, epsabs=1e-13)
    return left + right


# ------------------------------------------------------------------ estimator means


def test_quadrature_matches_closed_forms_at_logit_zero():
    """The quadrature helper itself. At l = 0 and tau = 1, y = sigmoid(n) is uniform on (0, 1)
    and b = 1[y > 1/2], so the relaxed mean is E[2 (y - t) y (1 - y)] = (1 - 2t)/6 (by the
    symmetry y <-> 1 - y) and the hard mean is 2 (1 - t)/12 - 2 t/12 = (1 - 2t)/6 too."""
    np.testing.assert_allclose(quadrature_mean(0.0, 1.0, hard=False), (1 - 2 * TARGET) / 6,
                               rtol=1e-10)
    np.testing.assert_allclose(quadrature_mean(0.0, 1.0, hard=True), (1 - 2 * TARGET) / 6,
                               rtol=1e-10)


# Relaxed and hard (gumbel_softmax_hard), parametrised over hard.
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
@pytest.mark.parametrize("hard", [False, True], ids=["relaxed", "hard"])
def test_binary_concrete_mean_equals_quadrature(backend_name, hard):
    """Bernoulli toy at theta = (-2, 0, 2), temperature 0.5: the estimator's mean vs the
    quadrature value (which is *not* the exact gradient: bias ~ -0.03..+0.05)."""
    problem = BernoulliToy(TARGET, [-2.0, 0.0, 2.0])
    estimator = gumbel_softmax(0.5, hard=hard)
    exact_mean = np.array([quadrature_mean(logit, 0.5, hard) for logit in problem.logits])
    moments = gradient_moments(estimator, problem, num_estimates=262144, seed=31,
                               backend=backend_name)
    assert_unbiased(moments, exact_mean, false_failure_rate=1e-5,
                    detectable_bias=problem.detectable_bias)
    with pytest.raises(AssertionError, match="Biased"):
        assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5)


# Relaxed and hard (gumbel_softmax_hard), parametrised over hard.
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
@pytest.mark.parametrize("hard", [False, True], ids=["relaxed", "hard"])
def test_two_class_gumbel_softmax_mean_equals_quadrature(backend_name, hard):
    """K = 2 one-hot categorical with f(z) = (z_1 - t)^2: gradient w.r.t. (l_0, l_1) is
    (-m, m) with m the binary Concrete mean at logit l_1 - l_0."""
    logits = np.array([[0.4, -0.6]])
    problem = EnumeratedCategorical(lambda z: (z[..., 0, 1] - TARGET) ** 2, logits,
                                    name="two_class")
    mean = quadrature_mean(logits[0, 1] - logits[0, 0], 0.5, hard)
    moments = gradient_moments(gumbel_softmax(0.5, hard=hard), problem, num_estimates=262144,
                               seed=37, backend=backend_name)
    assert_unbiased(moments, np.array([-mean, mean]), false_failure_rate=1e-5,
                    detectable_bias=0.005)


# ------------------------------------------------------------ distribution of samples


# The relaxed sample and the hard bit (gumbel_softmax_hard's) from one seed.
def test_binary_concrete_has_the_exact_distribution(backend):
    """P(y < v) = sigmoid(tau logit(v) - l) at v in (0.001, 0.1, 0.5, 0.9, 0.999), for
    tau = 0.5 and tau = 0.01 (where the mass sits within 0.001 of {0, 1}); and the hard bit
    is 1 with probability sigmoid(l). Holm over the cells, false-failure rate 1e-6."""
    trials = 2**16
    logits_ = np.array([-1.5, 0.0, 0.8])
    grid = np.array([0.001, 0.1, 0.5, 0.9, 0.999])
    logits = backend.xp.asarray(np.broadcast_to(logits_, (trials, 3)), dtype=backend.xp.float32)
    for temperature in (0.5, 0.01):
        relaxed = np.asarray(binary_concrete_sample(logits, temperature=temperature,
                                                          seed=5))
        counts = (relaxed[:, :, None] < grid).sum(axis=0).ravel()
        exact = sigmoid(temperature * np.log(grid / (1 - grid))[None, :] - logits_[:, None])
        _frequency_test(counts, trials, exact.ravel())
        bits = np.asarray(binary_concrete_sample(logits, temperature=temperature,
                                                       seed=5, hard=True))
        _frequency_test(bits.sum(axis=0), trials, sigmoid(logits_))
        # Same seed: the hard bit is the rounded relaxed sample.
        np.testing.assert_array_equal(bits, (relaxed > 0.5).astype(np.float32))


def test_relaxed_samples_follow_the_concrete_formula_across_temperatures(framework):
    """Same seed, two temperatures: tau * (log y_i - log y_j) is the perturbed-logit
    difference, the same for both (float64); likewise tau * logit(y) for the binary case."""
    rng = np.random.default_rng(3)
    logits_ = rng.normal(size=(50, 5))
    with framework.x64():
        logits = framework.constant(logits_, "float64")
        differences = []
        for temperature in (1.0, 0.25):
            y = framework.numpy(gumbel_softmax_sample(logits, temperature=temperature, seed=4))
            differences.append(temperature * (np.log(y) - np.log(y[:, :1])))
        np.testing.assert_allclose(differences[0], differences[1], rtol=1e-9, atol=1e-10)
        binary = []
        for temperature in (1.0, 0.25):
            y = framework.numpy(binary_concrete_sample(logits, temperature=temperature, seed=4))
            binary.append((temperature * (np.log(y) - np.log1p(-y)), np.minimum(y, 1 - y)))
        # logit(y) is only as precise as 1 - y: compare where neither sample is saturated.
        resolved = (binary[0][1] > 1e-6) & (binary[1][1] > 1e-6)
        assert resolved.mean() > 0.9
        np.testing.assert_allclose(binary[0][0][resolved], binary[1][0][resolved], rtol=1e-9)


def test_relaxed_samples_approach_one_hot_as_temperature_falls(backend):
    """Same seed: the distance from the hard one-hot never grows as tau falls (exact in real
    arithmetic), the argmax never changes, and at tau = 0.001 it is below 1e-3 on all but
    the rare draws whose top two perturbed logits are within 0.007 (under 2% here)."""
    logits = backend.xp.asarray(np.random.default_rng(5).normal(size=(2000, 4)),
                                dtype=backend.xp.float32)
    hard = np.asarray(gumbel_softmax_sample(logits, temperature=1.0, seed=8, hard=True))
    previous = None
    for temperature in (1.0, 0.3, 0.1, 0.01, 0.001):
        relaxed = np.asarray(gumbel_softmax_sample(logits, temperature=temperature,
                                                         seed=8))
        distance = np.max(np.abs(relaxed - hard), axis=-1)
        np.testing.assert_array_equal(np.argmax(relaxed, -1), np.argmax(hard, -1))
        if previous is not None:
            assert np.all(distance <= previous + 1e-6)
        previous = distance
    assert np.mean(previous < 1e-3) > 0.98


# ------------------------------------------------------------------- numerical safety


# Relaxed and hard (gumbel_softmax_hard), parametrised over hard.
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hard", [False, True], ids=["relaxed", "hard"])
def test_low_temperature_and_extreme_logits_stay_finite(framework, dtype, hard):
    binary_ = np.array([-50.0, -20.0, -1e-3, 0.0, 20.0, 50.0])
    categorical_ = np.array([[50.0, -50.0, 0.0], [-50.0, -50.0, 50.0], [1e4, 1e4 + 1, -50.0]])
    cotangent = np.arange(1.0, 4.0)
    # JAX compiled (one compilation instead of one per operation); TF eager (XLA is in the
    # reproducibility test below).
    mode = "jit" if framework.name == "jax" else "eager"
    with framework.x64(dtype):
        value, (gradient,) = framework.value_and_vjp(
            lambda l: (binary_concrete_sample(l, temperature=0.01, seed=1, hard=hard) - 0.3) ** 2,
            framework.constant(binary_, dtype), mode=mode,
        )
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient)), (value, gradient)
        value, (gradient,) = framework.value_and_vjp(
            lambda l: gumbel_softmax_sample(l, temperature=0.01, seed=1, hard=hard)
            * framework.constant(cotangent, dtype),
            framework.constant(categorical_, dtype), mode=mode,
        )
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient)), (value, gradient)
        assert np.all(value >= 0)

        def total(logits):
            return gumbel_softmax(0.01, hard=hard)(
                lambda z: (z - 0.3) ** 2, Bernoulli(logits), seed=3, num_samples=4
            )

        value, (gradient,) = framework.value_and_vjp(total, framework.constant(binary_, dtype),
                                                    mode=mode)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient)), (value, gradient)


# ------------------------------------------------------ compilation and reproducibility


# Relaxed and hard (gumbel_softmax_hard) samples.
@pytest.mark.parametrize("backend", ["tensorflow"], indirect=True)
def test_same_seed_same_numbers_in_every_mode(framework, dtype="float32"):
    """TF eager, tf.function and XLA. float32 only: float64 runs the same code (see the
    formula and stability tests); JAX plain vs jit/vmap is the test after the next."""
    logits_ = np.random.default_rng(9).normal(size=(8, 3))
    with framework.x64(dtype):
        results = {}
        for mode in framework.modes:
            for name, block in (("categorical", gumbel_softmax_sample),
                                ("binary", binary_concrete_sample)):
                for hard in (False, True):
                    value, (gradient,) = framework.value_and_vjp(
                        lambda l, block=block, hard=hard: block(l, temperature=0.5, seed=21,
                                                                hard=hard),
                        framework.constant(logits_, dtype), mode=mode,
                    )
                    results.setdefault((name, hard), []).append((value, gradient))
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for (_, hard), runs in results.items():
        for value, gradient in runs[1:]:
            if hard:
                np.testing.assert_array_equal(value, runs[0][0])
            np.testing.assert_allclose(value, runs[0][0], rtol=tolerance, atol=tolerance)
            np.testing.assert_allclose(gradient, runs[0][1], rtol=tolerance, atol=tolerance)
            assert value.dtype == np.dtype(dtype)


def test_temperature_may_be_a_tensor_inside_tf_function():
    import tensorflow as tf

    logits = tf.constant([[0.3, -0.2, 1.0]])

    @tf.function(jit_compile=True)
    def annealed(temperature):
        return gumbel_softmax_sample(logits, temperature=temperature, seed=6)

    np.testing.assert_allclose(annealed(tf.constant(0.4)).numpy(),
                               gumbel_softmax_sample(logits, temperature=0.4, seed=6).numpy(),
                               rtol=1e-6)


# Relaxed and hard (gumbel_softmax_hard) samples.
def test_jax_jit_and_vmap_agree_with_plain_calls():
    import jax
    import jax.numpy as jnp

    logits = jnp.array([[0.3, -0.2, 1.0], [2.0, 0.0, -1.0]])
    keys = jax.random.split(jax.random.key(1), 4)
    for block, hard in ((gumbel_softmax_sample, False), (binary_concrete_sample, True)):

        def draw(key, temperature, block=block, hard=hard):
            return block(logits, temperature=temperature, seed=key, hard=hard)

        plain = jnp.stack([draw(key, 0.5) for key in keys])
        mapped = jax.jit(jax.vmap(draw, in_axes=(0, None)))(keys, jnp.float32(0.5))
        if hard:
            np.testing.assert_array_equal(plain, mapped)
        np.testing.assert_allclose(plain, mapped, rtol=1e-6, atol=1e-7)

    # The gradient of the hard (straight-through) sample is the relaxed sample's gradient.
    def squared(l, hard):
        return jnp.sum(gumbel_softmax_sample(l, temperature=0.5, seed=keys[0], hard=hard)
                       * jnp.array([1.0, 2.0, 3.0]))

    hard_gradient = jax.jit(jax.grad(squared), static_argnums=1)(logits, True)
    relaxed_gradient = jax.jit(jax.grad(squared), static_argnums=1)(logits, False)
    np.testing.assert_allclose(hard_gradient, relaxed_gradient, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------- estimators


# Both cards: gumbel_softmax and gumbel_softmax_hard.
def test_factories_and_classes():
    relaxed, hard = gumbel_softmax(), gumbel_softmax(0.3, hard=True)
    assert isinstance(relaxed, GumbelSoftmax) and not isinstance(relaxed, GumbelSoftmaxHard)
    assert isinstance(hard, GumbelSoftmaxHard) and hard.temperature == 0.3
    assert (relaxed.name, hard.name) == ("gumbel_softmax", "gumbel_softmax_hard")
    assert gumbel_softmax_hard(2) == GumbelSoftmaxHard(2.0)
    assert not relaxed.unbiased and not hard.unbiased
    assert relaxed.temperature == 0.5


# Both cards: gumbel_softmax and gumbel_softmax_hard.
@pytest.mark.parametrize("temperature", [0, 0.0, -0.5, math.inf, math.nan])
def test_bad_temperature_is_a_value_error_naming_temperature(temperature):
    for make in (gumbel_softmax, gumbel_softmax_hard):
        with pytest.raises(ValueError, match="temperature"):
            make(temperature)
    logits = np.zeros((2, 3), np.float32)
    for block in (gumbel_softmax_sample, binary_concrete_sample):
        with pytest.raises(ValueError, match="temperature"):
            block(logits, temperature=temperature, seed=0)


# Both cards: gumbel_softmax and gumbel_softmax_hard.
def test_bad_arguments(backend):
    logits = backend.xp.asarray(np.zeros((2, 3)), dtype=backend.xp.float32)
    with pytest.raises(TypeError, match="temperature"):
        gumbel_softmax(temperature=True)
    with pytest.raises(TypeError, match="hard"):
        gumbel_softmax(hard="yes")
    with pytest.raises(TypeError, match="hard"):
        gumbel_softmax_sample(logits, temperature=0.5, seed=0, hard=1)
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax_sample(logits, temperature=backend.xp.asarray(np.float32(-1.0)), seed=0)
    with pytest.raises(TypeError, match="Normal"):
        gumbel_softmax()(lambda z: z, Normal(logits, logits + 1.0), seed=0)
    with pytest.raises(TypeError, match="Normal"):
        gumbel_softmax_hard()(lambda z: z, Normal(logits, logits + 1.0), seed=0)
    with pytest.raises(TypeError, match="logits"):
        binary_concrete_sample(backend.xp.asarray(np.zeros(3, np.int32)), temperature=1.0, seed=0)
    with pytest.raises(ValueError, match="class axis"):
        gumbel_softmax_sample(backend.xp.asarray(np.float32(1.0)), temperature=1.0, seed=0)


# Four cards: gumbel_softmax, gumbel_softmax_hard, gumbel_rao, straight_through_slope.
@pytest.mark.parametrize("name", ["gumbel_softmax", "gumbel_softmax_hard",
                                  # The longest JAX compile here; the path is gumbel_softmax's
                                  # on JAX (default set) and gumbel_rao's on TF.
                                  pytest.param("gumbel_rao", marks=pytest.mark.jax_in_slow_set),
                                  "straight_through_slope"])
def test_a_traced_temperature_gives_the_numbers_of_the_same_number(framework, name):
    """A temperature (slope) that is a traced value under ``jax.jit``, or a ``tf.Variable``
    inside ``tf.function(jit_compile=True)``, is accepted, and gives what the same Python
    number gives: annealing schedules inside compiled training steps work."""
    import fxgx.estimators as estimators

    factory = getattr(estimators, name)
    logits = framework.constant([[0.3, -0.2, 0.5], [1.0, 0.0, -1.0]])

    def surrogate(value, temperature):
        estimator = factory(temperature)
        distribution = OneHotCategorical(value, event_ndims=0)
        return estimator(lambda z: framework.backend.xp.sum(z * z * value, axis=-1),
                         distribution, seed=3, num_samples=2)

    expected_value, (expected_gradient,) = framework.value_and_vjp(
        lambda value: surrogate(value, 0.7), logits)
    if framework.name == "jax":
        import jax

        temperature = framework.constant(0.7)
        compiled = jax.jit(lambda value, t: (
            surrogate(value, t), jax.grad(lambda v: surrogate(v, t).sum())(value)))
        value, gradient = compiled(logits, temperature)
    else:
        import tensorflow as tf

        temperature = tf.Variable(0.7)

        @tf.function(jit_compile=True)
        def compiled(value):
            with tf.GradientTape() as tape:
                tape.watch(value)
                result = surrogate(value, temperature)
            return result, tape.gradient(result, value)

        value, gradient = compiled(logits)
    np.testing.assert_allclose(np.asarray(value), expected_value, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(gradient), expected_gradient, rtol=1e-5, atol=1e-6)
