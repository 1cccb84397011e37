"""``fxgx.vi.importance_weighted_bound``: unbiased against the exact bound and its gradient.

Exact values enumerate every joint ``K``-tuple of the 2^5 states of the model in
``enumerable_models.py`` (1024 tuples for K = 2, 32768 for K = 3) in NumPy float64, and
are cross-checked against TensorFlow float64 autodiff. Statistical tests:
``assert_unbiased`` with family-wise false-failure rate 1e-5 (Holm over the 10 coordinates:
5 surrogate logits and 5 decoder weights), power 0.99 to detect a bias of a quarter of the
exact gradient's root-mean-square (checked; underpowered fails).
"""

from __future__ import annotations

import numpy as np
import pytest
from enumerable_models import (
    SURROGATE_LOGITS,
    WEIGHTS,
    EnumerableModel,
    batched_estimates,
    exact_importance_weighted,
)

import fxgx.estimators as estimators
import fxgx.vi as vi
from fxgx.backends import framework_by_name
from fxgx.distributions import Bernoulli, Normal
from fxgx.estimators.vimco import vimco
from fxgx.problems.enumeration import bernoulli_states
from fxgx.testing import assert_unbiased, moments_of

FALSE_FAILURE_RATE = 1e-5
POWER = 0.99
MODEL = EnumerableModel()


def test_exact_bound_gradient_matches_float64_autodiff():
    tf = pytest.importorskip("tensorflow")
    num_samples = 2
    states = tf.constant(bernoulli_states(MODEL.dimension))
    tuples = np.indices((len(states),) * num_samples).reshape(num_samples, -1).T
    logits, weights = tf.Variable(SURROGATE_LOGITS), tf.Variable(WEIGHTS)
    with tf.GradientTape() as tape:
        log_q = tf.reduce_sum(states * tf.math.log_sigmoid(logits)
                              + (1 - states) * tf.math.log_sigmoid(-logits), -1)
        log_weight = MODEL.log_joint(states, weights) - log_q
        joint = tf.exp(tf.reduce_sum(tf.gather(log_q, tuples), axis=1))
        objective = tf.reduce_logsumexp(tf.gather(log_weight, tuples), axis=1) - np.log(2.0)
        value = tf.reduce_sum(joint * objective)
    gradient, weights_gradient = tape.gradient(value, [logits, weights])
    exact = exact_importance_weighted(MODEL, num_samples)
    np.testing.assert_allclose(value.numpy(), exact[0], rtol=1e-12)
    np.testing.assert_allclose(gradient.numpy(), exact[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weights_gradient.numpy(), exact[2], rtol=1e-9, atol=1e-12)
    # K = 1 is the ELBO, and the bound grows with K towards log p(x).
    assert exact_importance_weighted(MODEL, 1)[0] == pytest.approx(MODEL.exact()[0], 1e-12)
    evidence = np.log(np.sum(np.exp(MODEL.log_joint_numpy(bernoulli_states(5)))))
    assert MODEL.exact()[0] < exact[0] < exact_importance_weighted(MODEL, 3)[0] < evidence


def _loss(estimator, num_samples):
    def loss(parameters, seed):
        logits, weights = parameters
        return vi.importance_weighted_bound(
            lambda z: MODEL.log_joint(z, weights), Bernoulli(logits, event_ndims=1),
            seed=seed, num_samples=num_samples, estimator=estimator)

    return loss


# (estimator name, K, backend, num_estimates); the fast set covers VIMCO at K = 2 and 3 on
# both backends and two E[f]-estimators on the K-fold product.
CASES = [
    pytest.param("vimco", 3, "tensorflow", 40_000, id="vimco-K3-tensorflow"),
    pytest.param("vimco", 2, "jax", 40_000, id="vimco-K2-jax"),
    pytest.param("vimco", 2, "tensorflow", 40_000, id="vimco-K2-tensorflow",
                 marks=pytest.mark.slow),
    pytest.param("vimco", 3, "jax", 40_000, id="vimco-K3-jax", marks=pytest.mark.slow),
    pytest.param("reinforce_leave_one_out", 2, "jax", 40_000, id="loo-product-K2-jax"),
    pytest.param("disarm", 3, "tensorflow", 40_000, id="disarm-product-K3-tensorflow"),
    # DisARM-VIMCO: K pairs on the bound itself, log q inside the log-weights (slow set:
    # 6 s on TensorFlow; tests/estimators/test_disarm_vimco.py covers the default set).
    pytest.param("disarm_vimco", 3, "tensorflow", 40_000, id="disarm_vimco-K3-tensorflow",
                 marks=pytest.mark.slow),
    pytest.param("disarm_vimco", 2, "jax", 40_000, id="disarm_vimco-K2-jax",
                 marks=pytest.mark.slow),
]


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name, num_samples, backend_name, num_estimates", CASES)
def test_bound_gradient_is_unbiased(name, num_samples, backend_name, num_estimates):
    """Mean gradient w.r.t. (surrogate logits, decoder weights) == exact ``dL_K`` (Holm
    over 10 coordinates, false-failure 1e-5, power 0.99 at 1/4 of the RMS gradient)."""
    backend = framework_by_name(backend_name)
    estimator = vimco() if name == "vimco" else getattr(estimators, name)()
    _, gradients = batched_estimates(backend, _loss(estimator, num_samples),
                                     [SURROGATE_LOGITS, WEIGHTS], num_estimates, seed=13)
    _, exact_logits, exact_weights = exact_importance_weighted(MODEL, num_samples)
    exact = np.concatenate([exact_logits, exact_weights])
    assert_unbiased(moments_of(gradients), exact, false_failure_rate=FALSE_FAILURE_RATE,
                    power=POWER, detectable_bias=0.25 * float(np.sqrt(np.mean(exact**2))))


def test_bound_value_is_unbiased():
    """Mean of the bound's values == exact ``L_3`` (false-failure 1e-5, power 0.99 at 0.05
    nats, checked)."""
    backend = framework_by_name("jax")
    values, _ = batched_estimates(backend, _loss(None, 3), [SURROGATE_LOGITS, WEIGHTS],
                                  40_000, seed=17)
    assert_unbiased(moments_of(values[:, None]), [exact_importance_weighted(MODEL, 3)[0]],
                    false_failure_rate=FALSE_FAILURE_RATE, power=POWER, detectable_bias=0.05)


def test_continuous_and_mixed_surrogates_run():
    """Reparameterised-only (IWAE) and mixed (VIMCO for b, reparameterised y) surrogates:
    finite values and gradients."""
    tf = pytest.importorskip("tensorflow")
    loc, log_scale, logits = tf.Variable(0.2), tf.Variable(-0.3), tf.Variable([0.1, -0.4])
    with tf.GradientTape(persistent=True) as tape:
        continuous = vi.importance_weighted_bound(
            lambda y: -0.5 * tf.square(y - 1.0), Normal(loc, tf.exp(log_scale)), seed=0,
            num_samples=4)
        mixed = vi.importance_weighted_bound(
            lambda b, y: -0.5 * tf.square(y - tf.reduce_sum(b, -1)),
            (Bernoulli(logits, event_ndims=1), Normal(loc, tf.exp(log_scale))), seed=0,
            num_samples=4)
    for value in (continuous, mixed):
        gradients = tape.gradient(value, [loc, log_scale, logits],
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        assert np.isfinite(value.numpy())
        assert all(np.all(np.isfinite(g.numpy())) for g in gradients)
    assert np.all(tape.gradient(mixed, logits).numpy() != 0)


def test_bad_input():
    tf = pytest.importorskip("tensorflow")
    tfd = pytest.importorskip("tensorflow_probability").distributions
    logits = tf.Variable(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="num_samples >= 2"):
        vi.importance_weighted_bound(MODEL.log_joint, Bernoulli(logits, event_ndims=1),
                                     seed=0, num_samples=1)
    poisson = tfd.Independent(tfd.Poisson(rate=tf.Variable([1.0, 2.0])), 1)
    with pytest.raises(TypeError, match="disarm supports bernoulli"):
        vi.importance_weighted_bound(lambda z: -tf.reduce_sum(z, -1), poisson, seed=0,
                                     num_samples=2, estimator=estimators.disarm())
    with pytest.raises(TypeError, match="needs Bernoulli or one-hot categorical"):
        vi.importance_weighted_bound(lambda z: -tf.reduce_sum(z, -1), poisson, seed=0,
                                     num_samples=2, estimator=estimators.reinforce())
    with pytest.raises(ValueError, match=r"returned shape \(2, 5\)"):
        vi.importance_weighted_bound(lambda z: z, Bernoulli(logits, event_ndims=1), seed=0,
                                     num_samples=2)
