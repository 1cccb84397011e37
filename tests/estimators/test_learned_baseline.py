"""The learned (NVIL) baseline (``fxgx.estimators.learned_baseline``): unbiased with a
baseline that reads the (stopped) parameters, its regression loss trains only the baseline,
and it rejects baselines that depend on the samples or are not callable.

The tests it shares with the other baselines (every execution mode, ``jax.vmap``, ``f`` never
differentiated, bad input) are in ``test_baselines.py``; its exact variance with a constant
baseline is checked next to the moving-average baseline's
(``test_moving_average_baseline.py``); ``test_catalogue.py`` tests it, with a baseline that
reads the parameters, against the exact gradient of every problem its card names.

Statistical test: ``assert_unbiased``, Holm z-tests against the exact gradient, family-wise
false-failure rate 1e-5, power 0.99 to detect the problem's ``detectable_bias`` (a quarter of
the gradient's root mean square). The other tests are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import TARGET

from fxgx.distributions import Bernoulli
from fxgx.estimators import learned_baseline
from fxgx.problems import BernoulliToy
from fxgx.testing import assert_unbiased, gradient_moments

FALSE_FAILURE_RATE = 1e-5


def test_learned_baseline_depending_on_the_parameters_is_unbiased(backend):
    """A baseline computed from the (stopped) logits, one value per batch member."""

    def baseline(distribution):
        logits = distribution.framework.stop_gradient(distribution.logits)
        probabilities = distribution.framework.sigmoid(logits)
        return 0.2 + 0.3 * distribution.framework.xp.sum(probabilities, axis=-1)

    problem = BernoulliToy(TARGET, [-2.0, 0.0, 2.0])
    moments = gradient_moments(learned_baseline(baseline), problem, num_estimates=400_000,
                               seed=44, backend=backend.name, dtype="float32")
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=problem.detectable_bias)


@pytest.mark.jax_in_slow_set
def test_learned_baseline_regression_loss_trains_only_the_baseline(framework):
    """``d loss / d c = -2 (mean f - c)`` and ``d surrogate / d c = 0`` (deterministic)."""
    logits = framework.constant([[0.3, -0.2, 0.9], [1.0, 0.5, -1.5]])

    def function(samples):
        from fxgx.backends import get_framework

        return get_framework(samples).xp.sum(samples * samples, axis=-1) * 0.5 + 0.1

    def both(value, coefficient):
        estimator = learned_baseline(lambda distribution: coefficient)
        surrogate, _, info = estimator.apply((), function, Bernoulli(value, event_ndims=1),
                                             seed=3, num_samples=5)
        return surrogate, info["baseline_loss"]

    coefficient = framework.constant([0.4, 0.6])
    surrogate, _ = both(logits, coefficient)
    _, (_, loss_gradient) = framework.value_and_vjp(lambda v, c: both(v, c)[1], logits,
                                                    coefficient)
    _, (_, surrogate_gradient) = framework.value_and_vjp(lambda v, c: both(v, c)[0], logits,
                                                         coefficient)
    expected = -2.0 * (framework.numpy(surrogate) - np.array([0.4, 0.6]))
    np.testing.assert_allclose(loss_gradient, expected, rtol=1e-5)
    np.testing.assert_array_equal(framework.zero_if_none(surrogate_gradient, coefficient), 0.0)
    loss_only = learned_baseline(lambda distribution: coefficient).regression_loss(
        function, Bernoulli(logits, event_ndims=1), seed=3, num_samples=5)
    np.testing.assert_allclose(framework.numpy(loss_only),
                               framework.numpy(both(logits, coefficient)[1]), rtol=1e-6)


def test_learned_baseline_rejects_sample_shaped_or_non_callable_baselines(framework):
    distribution = Bernoulli(framework.constant([[0.3, -0.2], [1.0, 0.5]]), event_ndims=1)
    estimator = learned_baseline(
        lambda q: q.framework.xp.zeros((4, 2), dtype=q.framework.xp.float32))
    with pytest.raises(ValueError, match="must not depend on the samples"):
        estimator(lambda samples: samples[..., 0], distribution, seed=0, num_samples=4)
    with pytest.raises(TypeError, match="baseline"):
        learned_baseline(0.5)
