"""DisARM: ARM with the uniform noise integrated out given the antithetic pair.

With the pair ``b = 1[u < sigmoid(theta)]``, ``b~ = 1[1 - u < sigmoid(theta)]`` of ARM
(see ``fxgx.estimators.arm``), the conditional expectation of ARM's estimate given
``(b, b~)`` is

    g_d = 1/2 (f(b) - f(b~)) (-1)^{b~_d} 1[b_d != b~_d] sigmoid(|theta_d|)
        = 1/2 (f(b) - f(b~)) (b_d - b~_d) sigmoid(|theta_d|),

so it is unbiased with variance never above ARM's (Rao-Blackwell), and exactly 0 on
coordinates where the pair agrees. ``f`` is evaluated twice per pair and never differentiated
w.r.t. the samples; what ``f`` closes over gets ``1/(2S) sum_s (grad f(b_s) + grad f(b~_s))``
(see ``fxgx.estimators.arm``).
Reference: Dong, Mnih & Tucker (2020), "DisARM: An antithetic gradient estimator for binary
latent variables", NeurIPS. Yin et al. (2020, arXiv:2006.06448) derived the same estimator
(U2G).
"""

from __future__ import annotations

import dataclasses

from fxgx.core.arrays import expand_trailing
from fxgx.estimators.antithetic import antithetic_pairs, complement_is_exact, pair_surrogate
from fxgx.estimators.base import Estimator


@dataclasses.dataclass(frozen=True)
class Disarm(Estimator, card="disarm"):
    """DisARM for Bernoulli latents (gradient w.r.t. the logits). See ``disarm``."""

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        pairs = antithetic_pairs(framework, function, distribution, seed, num_samples)
        difference = expand_trailing(xp, pairs.first_values - pairs.second_values,
                                     distribution.event_ndims)
        logits = framework.stop_gradient(distribution.logits)
        if complement_is_exact(xp, logits.dtype):
            # sigmoid(|theta|) = max(p, 1 - p), p = sigmoid(theta) (shared with the draws):
            # 1 - p is accurate where it is the larger, so no second sigmoid pass.
            probability = framework.sigmoid(logits)
            weight = xp.maximum(probability, 1.0 - probability)
        else:
            weight = framework.sigmoid(xp.abs(logits))
        per_pair = 0.5 * difference * (pairs.first - pairs.second) * weight
        return pair_surrogate(framework, distribution, pairs, per_pair)


def disarm() -> Disarm:
    """DisARM: ``g_d = 1/2 (f(b) - f(b~)) (-1)^{b~_d} 1[b_d != b~_d] sigmoid(|theta_d|)``.

    Unbiased, for Bernoulli latents of any event shape; ``num_samples`` antithetic pairs
    (two evaluations of ``f`` each). Reference: Dong, Mnih & Tucker (2020), NeurIPS.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]`` w.r.t. the logits, and ``E_q[grad f]`` w.r.t. what
        ``f`` closes over.
    """
    return Disarm()
