"""Sum-and-sample: ``f`` summed over the ``k - 1`` most probable joint states, one sampled.

With ``C`` the ``k - 1`` most probable joint states (exact beam search) and ``z`` drawn from
``p`` restricted to the others (the first state of a Gumbel-top-k sample outside ``C``,
``fxgx.estimators.without_replacement``),

    E[f] ~= sum_{c in C} p(c) f(c) + (1 - p(C)) f(z),
    g = sum_{c in C} p(c) f(c) grad log p(c) + (1 - p(C)) f(z) grad log p(z).

Unbiased; ``k = 1`` is REINFORCE. Reference: Liu, Regier, Tripuraneni, Jordan & McAuliffe
(2019), "Rao-Blackwellized stochastic gradients for discrete distributions", ICML.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.arrays import exclusive_cumulative_sum
from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.base import Estimator
from fxgx.estimators.sampling import evaluate, sub_seeds
from fxgx.estimators.streaming import cannot_stream
from fxgx.estimators.without_replacement import (
    beam_search,
    check_set_size,
    flat_log_probabilities,
    joint_space,
    to_batch_first,
    to_sample_first,
    to_sample_layout,
)


@dataclasses.dataclass(frozen=True)
class SumAndSample(Estimator, card="sum_and_sample"):
    """Sum-and-sample: the ``k - 1`` most probable states summed, one sampled. See
    ``sum_and_sample``."""

    streaming = cannot_stream("its num_samples samples are drawn without replacement, as one "
                              "set")

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        log_probabilities, batch_shape, event_shape = flat_log_probabilities(framework,
                                                                             distribution)
        check_set_size(num_samples, distribution.kind, event_shape)
        seeds = sub_seeds(framework, seed, "perturbation")
        drawn, _ = beam_search(framework, log_probabilities, num_samples, seeds["perturbation"])
        if num_samples == 1:
            states = drawn
        else:
            summed, _ = beam_search(framework, log_probabilities, num_samples - 1, None)
            _, num_variables = joint_space(distribution.kind, event_shape)
            matches = xp.sum(xp.expand_dims(drawn, axis=2) * xp.expand_dims(summed, axis=1),
                             axis=(-2, -1))
            in_summed = xp.sum(xp.astype(xp.equal(matches, float(num_variables)), drawn.dtype),
                               axis=-1)  # [B, k]: 1 or 0
            outside = 1.0 - in_summed
            first = outside * xp.astype(
                xp.equal(exclusive_cumulative_sum(xp, outside, axis=1), 0.0), drawn.dtype)
            sampled = xp.sum(first[:, :, None, None] * drawn, axis=1)
            states = xp.concat([summed, xp.expand_dims(sampled, axis=1)], axis=1)
        samples = framework.stop_gradient(to_sample_layout(
            xp, states, distribution.kind, batch_shape, event_shape))
        values = evaluate(framework, function, samples, distribution, num_samples)
        log_prob = distribution.log_prob(samples)
        stopped_log_prob = to_batch_first(xp, framework.stop_gradient(log_prob))
        probabilities = xp.exp(stopped_log_prob[:, : num_samples - 1])
        rest = xp.maximum(1.0 - xp.sum(probabilities, axis=-1, keepdims=True), 0.0)
        weights = to_sample_first(xp, xp.concat([probabilities, rest], axis=1), batch_shape)
        value = xp.sum(weights * values, axis=0)
        gradient = framework.stop_gradient(weights * values)
        return with_gradient(framework, value, gradient, log_prob, axis=0,
                             fx_gx_manually_stopped=True)


def sum_and_sample() -> SumAndSample:
    """Sum-and-sample: ``f`` summed over the ``k - 1`` most probable states, one sampled.

    With ``C`` the ``k - 1`` most probable joint states (exact beam search) and ``z`` drawn
    from ``p`` restricted to the other states, returns ``sum_{c in C} p(c) f(c) + (1 - p(C))
    f(z)`` with gradient

        sum_{c in C} p(c) f(c) grad log p(c) + (1 - p(C)) f(z) grad log p(z).

    Unbiased; one evaluation of ``f`` per sample (``k = num_samples``, at most ``K^D``);
    ``k = 1`` is REINFORCE. Reference: Liu, Regier, Tripuraneni, Jordan & McAuliffe (2019),
    "Rao-Blackwellized stochastic gradients for discrete distributions", ICML.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=k)`` with a
        one-hot categorical distribution; it returns a surrogate whose value estimates
        ``E_q[f]`` and whose gradient estimates ``grad E_q[f]``.
    """
    return SumAndSample()
