"""Tests of VIMCO (``fxgx.estimators.vimco``).

VIMCO targets ``L = E[log mean_k exp f(z_k)]``, so the catalogue's ``E[f]`` problems do not
apply (its card has ``problems = []``). The exact reference is
``fxgx.problems.multi_sample.MultiSampleObjective``: value and gradient of ``L`` by
enumerating all ``(2^D)^K`` joint states.

Statistical tests: Holm-adjusted z-tests at a family-wise false-failure rate of 1e-5 each,
with power 0.99 against the stated bias (they fail as underpowered otherwise); fixed seeds.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fxgx import catalogue
from fxgx.distributions import Bernoulli, Normal
from fxgx.estimators.vimco import Vimco, leave_one_out_objectives, vimco
from fxgx.problems.multi_sample import (
    MultiSampleObjective,
    multi_sample_bernoulli,
    multi_sample_decoder,
)
from fxgx.testing import assert_unbiased, gradient_moments, moments_of

FALSE_FAILURE_RATE = 1e-5


def _sharp_log_weight(samples):
    """A log-weight with a 6-nat spread, so the leave-one-out signals are far from REINFORCE's."""
    return 3.0 * samples[..., 0] * samples[..., 1] - 2.5 * samples[..., 1] + samples[..., 0] - 1.0


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize(
    "problem_factory",
    [
        pytest.param(multi_sample_bernoulli, id="default-K3"),
        # The log-weight's coefficients as parameters of f: their gradient must be unbiased
        # for E[sum_k w~_k df(z_k)/dc] too (what a decoder inside f receives).
        pytest.param(multi_sample_decoder, id="decoder-K3"),
        pytest.param(lambda: MultiSampleObjective(_sharp_log_weight, [0.8, -0.3], 2),
                     id="sharp-K2"),
    ],
)
def test_unbiased_for_the_multi_sample_objective(framework, problem_factory):
    """The mean of VIMCO's gradient equals the exact ``grad L`` (enumeration). n = 131072
    K-sample estimates; Holm over D coordinates at 1e-5; power 0.99 against the problem's
    detectable bias (a quarter of the exact gradient's root-mean-square)."""
    problem = problem_factory()
    card = catalogue.get_card("vimco")
    moments = gradient_moments(vimco(), problem, num_estimates=int(card.test["num_estimates"]),
                               seed=20261126, backend=framework.name,
                               num_samples=problem.num_samples, chunk_size=65536)
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=problem.detectable_bias)


def test_the_target_is_not_the_single_sample_expectation():
    """Guard for the test above: ``grad L`` differs from ``grad E[f]`` (K = 1) on the default
    problem by well over its detectable bias, so an estimator of ``grad E[f]`` (a REINFORCE
    with a leave-one-out baseline, say) would fail that test with probability >= 0.99."""
    problem = multi_sample_bernoulli()
    single = MultiSampleObjective(problem.function, problem.logits, 1)
    difference = np.abs(problem.exact_gradient() - single.exact_gradient())
    assert np.max(difference) > 1.5 * problem.detectable_bias


@pytest.mark.jax_in_slow_set
def test_value_estimates_the_objective(framework):
    """The surrogate's value is ``log mean_k exp f(z_k)``: its mean over 200000 independent
    batch members equals the exact ``L`` (z-test at 1e-5, power 0.99 against an error of 0.02,
    1% of L)."""
    problem = multi_sample_bernoulli()
    count = 200_000
    logits = framework.constant(np.broadcast_to(problem.logits, (count, 3)))
    value = framework.numpy(vimco()(problem.function, Bernoulli(logits, event_ndims=1), seed=4,
                                    num_samples=problem.num_samples))
    assert value.shape == (count,)
    assert_unbiased(moments_of(value[:, None]), [problem.exact_value()],
                    false_failure_rate=FALSE_FAILURE_RATE, detectable_bias=0.02)


def _exact_bound_with_explicit_q(logits, num_samples):
    """``L(theta) = E[log mean_k exp(g(z_k) - log q_theta(z_k))]`` by enumeration (float64),
    where ``theta`` enters both the sampling distribution and the log-weight."""
    states = np.array(list(itertools.product((0.0, 1.0), repeat=len(logits))))
    probabilities = 1 / (1 + np.exp(-np.asarray(logits)))
    log_q = states @ np.log(probabilities) + (1 - states) @ np.log1p(-probabilities)
    log_weights = _sharp_log_weight(states) - log_q
    tuples = np.indices((len(states),) * num_samples).reshape(num_samples, -1).T
    return np.sum(np.exp(log_q[tuples].sum(1)) * _numpy_log_mean_exp(log_weights[tuples], 1))


def test_unbiased_when_the_log_weight_contains_log_q(framework):
    """With ``f = g(z) - log q_theta(z)`` (the IWAE bound), the surrogate's full gradient, the
    leave-one-out score terms plus ``sum_k w_k grad f`` through ``f``'s values, is unbiased
    for the total derivative of ``L``. Exact: central differences of the enumerated bound.
    n = 200000 independent replicates; Holm over 2 coordinates at 1e-5; power 0.99 against
    an error of 0.02."""
    count, logits_, num_samples = 200_000, np.array([0.8, -0.3]), 3

    def bound(logits):
        distribution = Bernoulli(logits, event_ndims=1)
        return vimco()(lambda z: _sharp_log_weight(z) - distribution.log_prob(z), distribution,
                       seed=6, num_samples=num_samples)

    _, (gradient,) = framework.value_and_vjp(
        bound, framework.constant(np.broadcast_to(logits_, (count, 2))),
        mode="jit" if framework.name == "jax" else "eager")
    step = 1e-5
    exact = [
        (_exact_bound_with_explicit_q(logits_ + step * unit, num_samples)
         - _exact_bound_with_explicit_q(logits_ - step * unit, num_samples)) / (2 * step)
        for unit in np.eye(2)
    ]
    ignoring_q = MultiSampleObjective(_sharp_log_weight, logits_, num_samples).exact_gradient()
    assert np.max(np.abs(np.array(exact) - ignoring_q)) > 0.1  # the q term matters here
    assert_unbiased(moments_of(gradient), exact, false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.02)


def _numpy_log_mean_exp(values, axis):
    largest = np.max(values, axis=axis, keepdims=True)
    return np.squeeze(largest, axis) + np.log(np.mean(np.exp(values - largest), axis=axis))


def test_gradient_is_the_leave_one_out_formula_and_weights_f_gradients(framework):
    """Deterministic check on the drawn samples: the logits' gradient is
    ``sum_k (L^ - L^_{-k}) (z_k - sigmoid(theta))`` and the gradient w.r.t. a parameter ``a``
    inside ``f`` is ``sum_k w_k df(z_k)/da`` with the normalised weights ``w``."""
    backend = framework.backend
    seen = []
    logits_ = np.array([[0.4, -1.0, 0.2], [1.5, 0.3, -0.6]])
    num_samples = 5

    coefficients = framework.constant([1.0, -2.0, 0.5])

    def surrogate(logits, scale):
        def function(samples):
            seen.append(framework.numpy(samples))
            return scale * backend.xp.sum(samples * coefficients, axis=-1) + 0.3

        return vimco()(function, Bernoulli(logits, event_ndims=1), seed=17,
                       num_samples=num_samples)

    value, (by_logits, by_scale) = framework.value_and_vjp(
        surrogate, framework.constant(logits_), framework.constant(1.7))
    samples = seen[0].astype(np.float64)  # [K, 2, 3]
    raw = np.sum(samples * [1.0, -2.0, 0.5], axis=-1)
    values = 1.7 * raw + 0.3  # [K, 2]
    objective = _numpy_log_mean_exp(values, 0)
    np.testing.assert_allclose(value, objective, rtol=1e-5)
    signals = []
    for k in range(num_samples):
        replaced = values.copy()
        replaced[k] = (values.sum(0) - values[k]) / (num_samples - 1)
        signals.append(objective - _numpy_log_mean_exp(replaced, 0))
    signals = np.array(signals)
    probabilities = 1 / (1 + np.exp(-logits_))
    expected = np.sum(signals[:, :, None] * (samples - probabilities), axis=0)
    np.testing.assert_allclose(by_logits, expected, rtol=1e-4, atol=1e-6)
    weights = np.exp(values - values.max(0)) / np.exp(values - values.max(0)).sum(0)
    np.testing.assert_allclose(by_scale, np.sum(weights * raw), rtol=1e-5)


def test_leave_one_out_objectives_are_stable_for_large_log_weights(framework):
    """Log-weights of +-1000 (exp overflows) give finite, exact leave-one-out objectives."""
    values_ = np.array([[1000.0, -1000.0], [1001.0, -999.0], [999.0, -1001.0]])
    result = framework.numpy(leave_one_out_objectives(framework.backend,
                                                      framework.constant(values_)))
    expected = []
    for k in range(3):
        replaced = values_.copy()
        replaced[k] = (values_.sum(0) - values_[k]) / 2
        expected.append(_numpy_log_mean_exp(replaced, 0))
    np.testing.assert_allclose(result, np.array(expected), rtol=1e-6)


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=pytest.mark.slow)],
                         indirect=True)
def test_same_numbers_in_every_mode_any_distribution_and_float64(framework):
    """Eager, tf.function, XLA and jax.jit agree; a Normal (any distribution) works; float64
    is kept."""
    backend = framework.backend

    def surrogate(loc):
        scale = backend.xp.ones_like(loc)
        return vimco()(lambda z: -backend.xp.square(z - 0.5), Normal(loc, scale), seed=9,
                       num_samples=4)

    results = [framework.value_and_vjp(surrogate, framework.constant([0.1, -0.4]), mode=mode)
               for mode in framework.modes]
    for value, (gradient,) in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-6)
        np.testing.assert_allclose(gradient, results[0][1][0], rtol=1e-4, atol=1e-6)
    with framework.x64():
        value, (gradient,) = framework.value_and_vjp(
            surrogate, framework.constant([0.1, -0.4], "float64"), mode=framework.modes[-1])
        assert value.dtype == np.float64 and gradient.dtype == np.float64


def test_jax_vmap_matches_a_loop():
    jax = pytest.importorskip("jax")
    problem = multi_sample_bernoulli()

    def gradient(logits):
        return jax.grad(lambda l: vimco()(problem.function, Bernoulli(l, event_ndims=1),
                                          seed=3, num_samples=3))(logits)

    batch = jax.numpy.asarray(np.linspace(-1, 1, 12).reshape(4, 3), jax.numpy.float32)
    compiled = jax.jit(gradient)
    looped = np.stack([np.asarray(compiled(row)) for row in batch])
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(gradient))(batch)), looped,
                               rtol=1e-5, atol=1e-7)


def test_errors_name_the_argument(framework):
    distribution = Bernoulli(framework.constant([0.1, 0.2]), event_ndims=1)

    def function(samples):
        return framework.backend.xp.sum(samples, axis=-1)

    with pytest.raises(ValueError, match="num_samples >= 2"):
        vimco()(function, distribution, seed=0, num_samples=1)
    with pytest.raises(ValueError, match="function returned shape"):
        vimco()(lambda samples: samples, distribution, seed=0, num_samples=2)
    with pytest.raises(ValueError, match="seed"):
        vimco()(function, distribution, seed=None, num_samples=2)
    assert Vimco.minimum_samples == 2 and Vimco.name == "vimco" and Vimco.unbiased
