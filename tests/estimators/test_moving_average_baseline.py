"""The moving-average baseline (``fxgx.estimators.moving_average_baseline``, explicit
state): a fixed state gives the exact variance and no bias, the state update, its shapes,
compiled loops, TensorFlow variables, and bad decays.

The tests it shares with the other baselines (every execution mode, ``jax.vmap``, ``f`` never
differentiated, bad input) are in ``test_baselines.py``; ``test_catalogue.py`` tests it, with
the state of two earlier calls, against the exact gradient of every problem its card names.

Statistical tests, their false-failure rates and power:

- Exact variance (``assert_variance``): two-sided z-test of the sample variance of 2^18
  estimates against the exact variance of ``(f - c) (b - p)`` with the fixed baseline ``c``
  by enumeration (numpy float64, ``exact_score_function_moments``), standard error from the
  fourth moment, false-failure rate 1e-5. The test first checks that it would detect a 5 %
  error in the variance with probability 0.99 (``_assert_variance_with_power``).
- Unbiasedness (``assert_unbiased``): Holm z-tests against the exact gradient, family-wise
  false-failure rate 1e-5, power 0.99 to detect the problem's ``detectable_bias``.

The state tests are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import RULES, TARGET, exact_score_function_moments
from support import assert_variance_with_power as _assert_variance_with_power

from fxgx.distributions import Bernoulli
from fxgx.estimators import learned_baseline, moving_average_baseline
from fxgx.estimators.moving_average_baseline import MovingAverageState
from fxgx.problems import BernoulliToy
from fxgx.testing import assert_unbiased, gradient_moments

FALSE_FAILURE_RATE = 1e-5
NUM_ESTIMATES = 2**18


def constant_rule(constant):
    return lambda values, weights, s: constant


def _with_state(estimator, state_values):
    """An ``est(f, q, seed=, num_samples=)`` callable that uses a fixed non-initial state."""

    def call(function, distribution, *, seed, num_samples):
        backend = distribution.framework
        dtype = distribution.dtype
        state = MovingAverageState(*(backend.xp.asarray(value, dtype=dtype)
                                     for value in state_values))
        surrogate, _, _ = estimator.apply(state, function, distribution, seed=seed,
                                          num_samples=num_samples)
        return surrogate

    return call


# Also the learned baseline (kind="learned"), with the same constant.
@pytest.mark.parametrize("kind", ["moving_average", "learned"])
def test_a_fixed_baseline_gives_the_exact_variance_and_no_bias(backend, kind):
    """Baseline 0.1 from a moving-average state (0.05 / 0.5) or a learned baseline: the
    estimate is unbiased and has the exact variance of ``(f - 0.1) (b - p)``. Using the
    state *after* this batch's update would change both."""
    logit, constant = -2.0, 0.1
    if kind == "moving_average":
        estimator = _with_state(moving_average_baseline(decay=0.8), (0.05, 0.5))
    else:
        estimator = learned_baseline(lambda distribution: constant)
    problem = BernoulliToy(TARGET, logit)
    _, variance = exact_score_function_moments(logit, 1, constant_rule(constant))
    _, variance_without = exact_score_function_moments(logit, 1, RULES["reinforce"])
    assert variance < 0.5 * variance_without
    moments = gradient_moments(estimator, problem, num_estimates=NUM_ESTIMATES, seed=43,
                               backend=backend.name, dtype="float32", num_samples=1)
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=problem.detectable_bias)
    _assert_variance_with_power(moments, variance)


@pytest.mark.jax_in_slow_set
def test_moving_average_state_update(framework):
    """Deterministic: with a constant ``f = 0.7`` the first call has baseline 0 and a
    non-zero gradient; the returned state is ``((1 - d) 0.7, 1 - d)``; the next call's
    baseline is 0.7, so its gradient is exactly 0."""
    estimator = moving_average_baseline(decay=0.75)
    logits = framework.constant([[0.3, -0.2], [1.0, 0.5]])
    distribution = Bernoulli(logits, event_ndims=1)

    def constant(samples):
        return 0.0 * samples[..., 0] + 0.7

    state = estimator.init(distribution)

    def first(value):
        return estimator.apply(state, constant, Bernoulli(value, event_ndims=1), seed=2,
                               num_samples=3)[0]

    _, (gradient,) = framework.value_and_vjp(first, logits)
    assert np.any(np.abs(gradient) > 1e-3)
    _, new_state, _ = estimator.apply(state, constant, distribution, seed=2, num_samples=3)
    np.testing.assert_allclose(framework.numpy(new_state.average), 0.25 * 0.7, rtol=1e-6)
    np.testing.assert_allclose(framework.numpy(new_state.weight), 0.25, rtol=1e-6)

    def second(value):
        return estimator.apply(new_state, constant, Bernoulli(value, event_ndims=1), seed=3,
                               num_samples=3)[0]

    _, (gradient,) = framework.value_and_vjp(second, logits)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-6)
    assert distribution.batch_shape == (2,)


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("shape", [(), (2,)])
def test_moving_average_state_shapes(framework, shape):
    """A scalar state averages over the batch; a batch-shaped state keeps one per member."""
    estimator = moving_average_baseline(decay=0.5)
    logits = framework.constant([[0.3, -0.2], [1.0, 0.5]])

    def per_member(samples):
        from fxgx.backends import get_framework

        backend = get_framework(samples)
        return 0.0 * samples[..., 0] + backend.xp.asarray([1.0, 3.0], dtype=samples.dtype)

    distribution = Bernoulli(logits, event_ndims=1)
    state = estimator.init(distribution, shape=shape)
    _, new_state, _ = estimator.apply(state, per_member, distribution, seed=0, num_samples=2)
    expected = 0.5 * (np.array([1.0, 3.0]) if shape else 2.0)
    np.testing.assert_allclose(framework.numpy(new_state.average), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="broadcast"):
        bad = estimator.init(distribution, shape=(3,))
        estimator.apply(bad, per_member, distribution, seed=0)


def test_moving_average_state_in_compiled_loops(framework):
    """The state threads through ``tf.function``/XLA and ``jax.jit`` and matches eager."""
    estimator = moving_average_baseline(decay=0.9)
    logits = framework.constant([0.4, -1.0, 2.0])

    def step(value, average, weight):
        surrogate, state, _ = estimator.apply(
            (average, weight), lambda samples: samples * 2.0 - 0.3, Bernoulli(value), seed=7,
            num_samples=4,
        )
        return surrogate + 0.0 * (state.average + state.weight), state

    initial = estimator.init(Bernoulli(logits), shape=(3,))
    results = {}
    for mode in framework.modes:
        compiled = framework.compile(step, mode)
        _, state = compiled(logits, initial.average, initial.weight)
        _, state = compiled(logits, state.average, state.weight)
        results[mode] = framework.numpy(state.average)
    for mode, average in results.items():
        np.testing.assert_allclose(average, results["eager"], rtol=1e-6, err_msg=mode)


def test_moving_average_uses_tensorflow_variables():
    tf = pytest.importorskip("tensorflow")
    estimator = moving_average_baseline(decay=0.5)
    logits = tf.Variable([0.2, -0.4])
    state = MovingAverageState(*(tf.Variable(value) for value in estimator.init(
        Bernoulli(logits, event_ndims=1))))
    for _ in range(2):
        with tf.GradientTape() as tape:
            surrogate, new_state, _ = estimator.apply(
                state, lambda samples: tf.reduce_sum(samples, -1) + 1.0,
                Bernoulli(logits, event_ndims=1), seed=1, num_samples=2)
        assert tape.gradient(surrogate, logits) is not None
        for variable, value in zip(state, new_state, strict=True):
            variable.assign(value)
    assert float(state.weight.numpy()) == pytest.approx(0.75)


@pytest.mark.parametrize("decay, error", [(1.0, ValueError), (-0.1, ValueError),
                                          ("0.9", TypeError)])
def test_moving_average_rejects_bad_decay(decay, error):
    with pytest.raises(error, match="decay"):
        moving_average_baseline(decay=decay)
