"""ARM (``fxgx.estimators.arm``), and the tests it shares with DisARM: exact variances on the
Bernoulli toy, multi-dimensional event shapes, every execution mode, TFP inputs, and bad
input.

The tests parametrised over ``name`` run ARM and DisARM alike (the same pair machinery);
each names DisARM in a comment. DisARM's own tests (its variance of 0 at ``theta = 0``, its
variance below ARM's in ten dimensions, several pairs) are in ``test_disarm.py``.

Statistical tests, their false-failure rates and power:

- Exact variances (``assert_variance``): two-sided z-test of the sample variance of 2^18
  estimates against the exact variance (piecewise integration over ``u``,
  ``exact_pair_moments``, checked against an independent closed form,
  ``closed_form_variance``), standard error from the fourth moment, false-failure rate 1e-5.
  Power: each test first checks it would detect a 5 % error in the variance with
  probability 0.99 (``_assert_variance_with_power``). The same draws check the mean against
  the exact gradient (``assert_unbiased``, 1e-5, power 0.99 for a bias of 0.005).
- Unbiasedness with event shapes (``assert_unbiased``): Holm z-tests against the exact
  gradient by enumeration, family-wise false-failure rate 1e-5, power 0.99 to detect a bias
  of a quarter of the gradient's root mean square.
- TFP inputs: the same ``assert_unbiased`` test (1e-5, power 0.99 for a quarter of the
  gradient's root mean square); the TFP and fxgx distributions agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import BERNOULLI_LOGITS as LOGITS
from support import assert_variance_with_power as _assert_variance_with_power
from support import bernoulli_function as _function
from support import exact_pair_moments, guard_against_differentiation, sigmoid
from support import modes_for as _modes

from fxgx.distributions import Bernoulli, Normal
from fxgx.estimators import arm, disarm
from fxgx.problems import BernoulliToy, enumerate_bernoulli
from fxgx.problems.base import Problem
from fxgx.testing import assert_unbiased, gradient_moments

ESTIMATORS = {"arm": arm, "disarm": disarm}
TARGET = 0.45
NUM_ESTIMATES = 2**18
FALSE_FAILURE_RATE = 1e-5


def closed_form_variance(name: str, target: float, logit: float) -> float:
    """The variance of one estimate on ``E[(b - t)^2]`` in closed form, derived apart from
    the piecewise integration of ``exact_pair_moments``.

    With ``p = sigmoid(theta)`` and ``Delta = f(1) - f(0) = 1 - 2 t``, the pair differs
    (``b != b~``) exactly when ``u < min(p, 1 - p)`` or ``u > max(p, 1 - p)``, and there
    ``f(b~) - f(b) = Delta sign(u - 1/2)``; elsewhere the estimate is 0.

    - ARM, ``g = (f(b~) - f(b)) (u - 1/2)``: ``E[g^2] = Delta^2 (int_0^m + int_{1-m}^1)
      (u - 1/2)^2 du = Delta^2 (1/4 - 2 |p - 1/2|^3) / 3`` with ``m = min(p, 1 - p)``, and
      ``E[g] = Delta p (1 - p)``.
    - DisARM, ``g = (Delta / 2) sigmoid(|theta|) 1[b != b~]``: two values, the non-zero one
      with probability ``r = 2 sigmoid(-|theta|)``, so ``Var = (Delta sigmoid(|theta|) / 2)^2
      r (1 - r)`` (0 at ``theta = 0``, where ``r = 1``).
    """
    p, delta = sigmoid(logit), 1.0 - 2.0 * target
    if name == "arm":
        second_moment = delta**2 * (0.25 - 2.0 * abs(p - 0.5) ** 3) / 3.0
        return second_moment - (delta * p * (1.0 - p)) ** 2
    differ = 2.0 * sigmoid(-abs(logit))
    return (0.5 * delta * sigmoid(abs(logit))) ** 2 * differ * (1.0 - differ)


# ARM at theta = 0 and -2, DisARM at -2 (its variance of 0 at theta = 0: test_disarm.py).
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name, logit", [("arm", 0.0), ("arm", -2.0), ("disarm", -2.0)])
def test_exact_variance_on_the_bernoulli_toy(backend, name, logit):
    mean, variance = exact_pair_moments(name, TARGET, logit)
    gradient = BernoulliToy(TARGET, logit).exact_gradient()[0]
    assert mean == pytest.approx(gradient, rel=1e-12)  # the estimators are unbiased
    # Two derivations agree: at theta = 0, ARM's is Delta^2 (1/12 - 1/16) = 0.01 / 48.
    assert variance == pytest.approx(closed_form_variance(name, TARGET, logit), rel=1e-12)
    moments = gradient_moments(
        ESTIMATORS[name](), BernoulliToy(TARGET, logit), num_estimates=NUM_ESTIMATES,
        seed=11, backend=backend.name, dtype="float32", num_samples=1,
    )
    _assert_variance_with_power(moments, variance)
    assert_unbiased(moments, [mean], false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.005)


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_the_two_exact_variance_derivations_agree_across_logits(name):
    """Piecewise integration against the closed form on a grid of logits and targets
    (deterministic; both sides float64)."""
    for target in (0.1, 0.45, 0.499, 0.8):
        for logit in np.linspace(-4.0, 4.0, 17):
            _, variance = exact_pair_moments(name, target, logit)
            expected = closed_form_variance(name, target, logit)
            assert variance == pytest.approx(expected, rel=1e-9, abs=1e-15), (target, logit)


def test_pairs_average_the_variance(backend):
    """``num_samples`` pairs divide the exact variance by ``num_samples``."""
    _, variance = exact_pair_moments("arm", TARGET, -2.0)
    moments = gradient_moments(
        arm(), BernoulliToy(TARGET, -2.0), num_estimates=2**17, seed=13,
        backend=backend.name, dtype="float32", num_samples=4,
    )
    _assert_variance_with_power(moments, variance / 4, relative_error=0.08)


EVENT_WEIGHTS = np.array([[0.7, -0.4, 0.2], [0.5, 0.9, -0.6]])
EVENT_LOGITS = np.array(
    [[[-1.0, 0.3, 1.5], [0.0, -2.0, 0.8]], [[0.5, 0.5, -0.7], [1.2, -0.3, 0.0]]]
)


def event_function(samples):
    """``(sum w * b - 0.5)^2 + b[0, 0] b[1, 2]`` over an event of shape ``[2, 3]``."""
    from fxgx.backends import get_framework

    backend = get_framework(samples)
    weights = backend.xp.asarray(EVENT_WEIGHTS, dtype=samples.dtype)
    linear = backend.xp.sum(samples * weights, axis=(-2, -1))
    return backend.xp.square(linear - 0.5) + samples[..., 0, 0] * samples[..., 1, 2]


class BatchOfMatrixBernoulli(Problem):
    """Two independent batch members, each an event of 2 x 3 Bernoulli variables."""

    kind = "bernoulli"
    name = "batch_of_matrix_bernoulli"

    def parameter_values(self):
        return [EVENT_LOGITS]

    def distribution(self, logits):
        return Bernoulli(logits, event_ndims=2)

    def function(self, samples):
        return event_function(samples)

    def exact_gradient(self):
        def flat_function(states):
            from fxgx.backends import get_framework

            return event_function(get_framework(states).xp.reshape(states, (-1, 2, 3)))

        gradients = [enumerate_bernoulli(flat_function, member.ravel())[1]
                     for member in EVENT_LOGITS]
        return np.ravel(gradients)


# ARM and DisARM (parametrised over both cards).
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_unbiased_with_batch_and_matrix_events(backend, name):
    problem = BatchOfMatrixBernoulli()
    moments = gradient_moments(
        ESTIMATORS[name](), problem, num_estimates=100_000, seed=31, backend=backend.name,
        dtype="float32", num_samples=2,
    )
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5,
                    detectable_bias=problem.detectable_bias)


# ------------------------------------------------------------------ modes, dtypes, shapes


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("dtype, name", [
    ("float32", "arm"),
    # DisARM shares ARM's pair machinery; it and the float64 runs (the same machinery in
    # another dtype) are in the slow set.
    pytest.param("float32", "disarm", marks=pytest.mark.slow),
    pytest.param("float64", "arm", marks=pytest.mark.slow),
    pytest.param("float64", "disarm", marks=pytest.mark.slow),
])
def test_same_numbers_in_every_mode(framework, name, dtype):
    estimator = ESTIMATORS[name]()

    def surrogate(logits):
        return estimator(_function, Bernoulli(logits, event_ndims=1), seed=5, num_samples=3)

    with framework.x64(dtype):
        results = {
            mode: framework.value_and_vjp(
                surrogate, framework.constant(LOGITS, dtype), mode=mode
            )
            for mode in _modes(framework, dtype)
        }
    value, (gradient,) = results["eager"]
    assert value.shape == (2,) and value.dtype == np.dtype(dtype)
    assert gradient.shape == (2, 3) and gradient.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)
    for mode, (other_value, (other_gradient,)) in results.items():
        np.testing.assert_allclose(other_value, value, rtol=1e-6, err_msg=mode)
        np.testing.assert_allclose(other_gradient, gradient, rtol=1e-5, atol=1e-7, err_msg=mode)


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_jax_vmap_matches_a_loop(name):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    estimator = ESTIMATORS[name]()

    def gradient(logits):
        return jax.grad(lambda value: estimator(
            _function, Bernoulli(value, event_ndims=1), seed=9, num_samples=2))(logits)

    logits = jnp.asarray(LOGITS, jnp.float32)
    batched = jax.jit(jax.vmap(gradient))(logits)
    looped = jnp.stack([gradient(row) for row in logits])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-6)


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_value_is_the_mean_of_f_over_the_pair(framework, name):
    """With ``f(b) = b`` the value is the mean over ``2 S`` samples: in ``[0, 1]``, a multiple
    of ``1/(2 S)``, and for ``theta = 0`` exactly 1/2 (the pair is ``b``, ``1 - b``)."""
    estimator = ESTIMATORS[name]()
    logits = framework.constant(np.zeros(5), "float32")
    value = framework.numpy(estimator(lambda samples: samples, Bernoulli(logits), seed=3,
                                      num_samples=4))
    np.testing.assert_array_equal(value, np.full(5, 0.5, np.float32))


class TensorFlowProbabilityBernoulli(Problem):
    """``_function`` under TFP's ``Independent(Bernoulli(logits=LOGITS), 1)``: two batch
    members of three Bernoulli variables; exact gradient by enumerating each member's 8
    states."""

    kind = "bernoulli"
    name = "tensorflow_probability_bernoulli"

    def parameter_values(self):
        return [LOGITS]

    def distribution(self, logits):
        tfd = pytest.importorskip("tensorflow_probability").distributions
        return tfd.Independent(tfd.Bernoulli(logits=logits), 1)

    def function(self, samples):
        return _function(samples)

    def exact_gradient(self):
        return np.ravel([enumerate_bernoulli(_function, member)[1] for member in LOGITS])


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_tensorflow_probability_distributions_give_the_fxgx_estimate_bit_for_bit(name):
    """Deterministic: a TFP ``Independent(Bernoulli)`` and fxgx's ``Bernoulli`` with the same
    logits and seed give the same value and gradient, bit for bit."""
    tf = pytest.importorskip("tensorflow")
    problem = TensorFlowProbabilityBernoulli()
    results = {}
    for source, make in (("tfp", problem.distribution),
                         ("fxgx", lambda logits: Bernoulli(logits, event_ndims=1))):
        logits = tf.constant(LOGITS, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = ESTIMATORS[name]()(_function, make(logits), seed=4, num_samples=2)
        results[source] = (value.numpy(), tape.gradient(value, logits).numpy())
    for tfp_array, fxgx_array in zip(results["tfp"], results["fxgx"], strict=True):
        assert tfp_array.dtype == np.float32 and tfp_array.shape == fxgx_array.shape
        np.testing.assert_array_equal(tfp_array.view(np.uint32), fxgx_array.view(np.uint32))
    assert np.any(results["tfp"][1] != 0)


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_tensorflow_probability_distributions_are_unbiased(name):
    """The mean of 100,000 estimates from TFP inputs matches the exact gradient by
    enumeration: Holm z-tests, family-wise false-failure rate 1e-5, power 0.99 to detect a
    quarter of the gradient's root mean square (``assert_unbiased`` fails if not)."""
    pytest.importorskip("tensorflow_probability")
    problem = TensorFlowProbabilityBernoulli()
    moments = gradient_moments(
        ESTIMATORS[name](), problem, num_estimates=100_000, seed=32, backend="tensorflow",
        dtype="float32", num_samples=2,
    )
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5,
                    detectable_bias=problem.detectable_bias)


# ----------------------------------------------------------------- f is never differentiated


def test_the_guard_raises_when_f_is_differentiated(framework):
    guarded = guard_against_differentiation(framework.name, _function)
    with pytest.raises(AssertionError, match="differentiated f"):
        framework.value_and_vjp(guarded, framework.constant(LOGITS))


# ARM and DisARM (parametrised over both cards).
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_f_is_never_differentiated(framework, name):
    guarded = guard_against_differentiation(framework.name, _function)
    estimator = ESTIMATORS[name]()

    def surrogate(logits):
        return estimator(guarded, Bernoulli(logits, event_ndims=1), seed=1, num_samples=2)

    for mode in _modes(framework, "float64"):
        _, (gradient,) = framework.value_and_vjp(surrogate, framework.constant(LOGITS),
                                                 mode=mode)
        assert np.all(np.isfinite(gradient))


# ------------------------------------------------------------------------------ bad input


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_a_normal_distribution_is_rejected(framework, name):
    normal = Normal(framework.constant([0.0, 1.0]), framework.constant([1.0, 2.0]))
    with pytest.raises(TypeError, match="Normal"):
        ESTIMATORS[name]()(_function, normal, seed=0)


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_a_seed_is_required(framework, name):
    distribution = Bernoulli(framework.constant(LOGITS), event_ndims=1)
    with pytest.raises(TypeError, match="seed"):
        ESTIMATORS[name]()(_function, distribution)
    with pytest.raises(ValueError, match="seed"):
        ESTIMATORS[name]()(_function, distribution, seed=None)


# ARM and DisARM (parametrised over both cards).
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_bad_num_samples_and_f_shapes_are_rejected(framework, name):
    distribution = Bernoulli(framework.constant(LOGITS), event_ndims=1)
    with pytest.raises(ValueError, match="num_samples"):
        ESTIMATORS[name]()(_function, distribution, seed=0, num_samples=0)
    with pytest.raises(ValueError, match="one value per sample"):
        ESTIMATORS[name]()(lambda samples: samples, distribution, seed=0)
