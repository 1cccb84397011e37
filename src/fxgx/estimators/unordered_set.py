"""The unordered set estimator: ``k`` distinct joint states and a built-in baseline.

For the unordered sample ``S`` of ``k`` distinct joint states drawn without replacement (by
stochastic beam search, ``fxgx.estimators.without_replacement``),

    E[f] ~= sum_{s in S} p(s) R(S, s) f(s),
    g = sum_{s in S} p(s) R(S, s) grad log p(s) (f(s) - B(S, s)),
    B(S, s) = sum_{s' in S} p(s') R^{D\\{s}}(S, s') f(s'),

with the leave-one-out ratios ``R`` of ``unordered_set_terms``; unbiased for ``k >= 2`` and
exact at ``k = K^D``. Reference: Kool, van Hoof & Welling (2020), "Estimating gradients for
discrete random variables by sampling without replacement", ICLR.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.base import Estimator
from fxgx.estimators.sampling import evaluate, sub_seeds
from fxgx.estimators.streaming import cannot_stream
from fxgx.estimators.without_replacement import (
    MAXIMUM_SET_SIZE,
    beam_search,
    check_set_size,
    flat_log_probabilities,
    to_batch_first,
    to_sample_first,
    to_sample_layout,
    unordered_set_terms,
)


@dataclasses.dataclass(frozen=True)
class UnorderedSet(Estimator, card="unordered_set"):
    """The unordered set estimator with its built-in baseline. See ``unordered_set``."""

    streaming = cannot_stream("its num_samples samples are drawn without replacement, as one "
                              "set")
    minimum_samples = 2
    #: The k! orders of the set are enumerated: ``k <= MAXIMUM_SET_SIZE``.
    maximum_samples = MAXIMUM_SET_SIZE

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        if num_samples > MAXIMUM_SET_SIZE:
            raise ValueError(
                f"unordered_set enumerates the k! orders of its set of num_samples = k states; "
                f"num_samples={num_samples} is above the maximum of {MAXIMUM_SET_SIZE}."
            )
        log_probabilities, batch_shape, event_shape = flat_log_probabilities(framework,
                                                                             distribution)
        check_set_size(num_samples, distribution.kind, event_shape)
        seeds = sub_seeds(framework, seed, "perturbation")
        states, _ = beam_search(framework, log_probabilities, num_samples, seeds["perturbation"])
        samples = framework.stop_gradient(to_sample_layout(
            xp, states, distribution.kind, batch_shape, event_shape))
        values = evaluate(framework, function, samples, distribution, num_samples)
        log_prob = distribution.log_prob(samples)
        terms = unordered_set_terms(to_batch_first(xp, framework.stop_gradient(log_prob)),
                                    framework=framework)
        stopped = to_batch_first(xp, framework.stop_gradient(values))
        baseline = xp.sum(terms.baseline_weights * stopped[:, None, :], axis=-1)
        weights = to_sample_first(xp, terms.weights, batch_shape)
        gradient = to_sample_first(xp, terms.weights * (stopped - baseline), batch_shape)
        value = xp.sum(framework.stop_gradient(weights) * values, axis=0)
        return with_gradient(framework, value, framework.stop_gradient(gradient), log_prob,
                             axis=0, fx_gx_manually_stopped=True)


def unordered_set() -> UnorderedSet:
    """The unordered set estimator: ``k`` distinct joint states and a built-in baseline.

    Draws ``S``, ``k = num_samples`` distinct joint states, by stochastic beam search and
    returns ``sum_{s in S} p(s) R(S, s) f(s)`` with gradient

        sum_{s in S} p(s) R(S, s) (f(s) - B(S, s)) grad log p(s),
        B(S, s) = sum_{s' in S} p(s') R^{D\\{s}}(S, s') f(s'),

    with the leave-one-out ratios ``R`` of ``unordered_set_terms``. Unbiased; one evaluation
    of ``f`` per sample; ``2 <= k <= MAXIMUM_SET_SIZE`` and ``k <= K^D``. With ``k = K^D``
    it returns the exact gradient. Reference: Kool, van Hoof & Welling (2020), "Estimating
    gradients for discrete random variables by sampling without replacement", ICLR.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=k)`` with a
        one-hot categorical distribution; it returns a surrogate whose value estimates
        ``E_q[f]`` and whose gradient estimates ``grad E_q[f]``.
    """
    return UnorderedSet()
