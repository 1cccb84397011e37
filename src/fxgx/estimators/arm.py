"""ARM: the augment-REINFORCE-merge estimator for Bernoulli latents.

With ``u ~ Uniform(0, 1)`` per coordinate, the antithetic pair

    b = 1[u < sigmoid(theta)],     b~ = 1[u > sigmoid(-theta)] = 1[1 - u < sigmoid(theta)]

has each member distributed as ``Bernoulli(sigmoid(theta))``, and the gradient with respect
to the logits ``theta`` is

    g_d = (f(b~) - f(b)) (u_d - 1/2)                          (Yin & Zhou, 2019)

(averaged over ``S = num_samples`` independent pairs). The surrogate's value is the mean of
``f`` over both members of every pair, left differentiable w.r.t. what ``f`` closes over:
each member is a draw from ``q``, so its gradient there, ``1/(2S) sum_s (grad f(b_s) + grad
f(b~_s))``, is unbiased for ``E[grad f]``. ``f`` is never differentiated w.r.t. the samples:
two evaluations per pair (the pairs: ``fxgx.estimators.antithetic``). Reference: Yin & Zhou
(2019), "ARM: Augment-REINFORCE-merge gradient for stochastic binary networks", ICLR.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.arrays import expand_trailing
from fxgx.estimators.antithetic import antithetic_pairs, pair_surrogate
from fxgx.estimators.base import Estimator


@dataclasses.dataclass(frozen=True)
class Arm(Estimator, card="arm"):
    """ARM for Bernoulli latents (gradient w.r.t. the logits). See ``arm``."""

    def _estimate(self, framework, function, distribution, seed, num_samples):
        pairs = antithetic_pairs(framework, function, distribution, seed, num_samples)
        difference = expand_trailing(framework.xp, pairs.second_values - pairs.first_values,
                                     distribution.event_ndims)
        per_pair = difference * (pairs.uniform - 0.5)
        return pair_surrogate(framework, distribution, pairs, per_pair)


def arm() -> Arm:
    """ARM: ``g_d = (f(1[u > sigmoid(-theta)]) - f(1[u < sigmoid(theta)])) (u_d - 1/2)``.

    Unbiased, for Bernoulli latents of any event shape; ``num_samples`` antithetic pairs
    (two evaluations of ``f`` each). Reference: Yin & Zhou (2019), ICLR.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]`` w.r.t. the logits, and ``E_q[grad f]`` w.r.t. what
        ``f`` closes over.
    """
    return Arm()
