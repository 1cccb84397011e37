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

from fxgx.estimators.arm import (
    antithetic_pairs,
    complement_is_exact,
    expand_over_event,
    pair_surrogate,
)
from fxgx.estimators.base import Estimator


@dataclasses.dataclass(frozen=True)
class Disarm(Estimator):
    """DisARM for Bernoulli latents (gradient w.r.t. the logits). See ``disarm``."""

    name = "disarm"
    supports = ("bernoulli",)

    def _estimate(self, function, distribution, backend, seed, num_samples):
        pairs = antithetic_pairs(function, distribution, backend, seed, num_samples)
        difference = expand_over_event(
            backend, pairs.first_values - pairs.second_values, distribution.event_ndims
        )
        logits = backend.stop_gradient(distribution.logits)
        if complement_is_exact(backend, backend.dtype_of(logits)):
            # sigmoid(|theta|) = max(p, 1 - p), p = sigmoid(theta) (shared with the draws):
            # 1 - p is accurate where it is the larger, so no second sigmoid pass.
            probability = backend.sigmoid(logits)
            weight = backend.maximum(probability, 1.0 - probability)
        else:
            weight = backend.sigmoid(backend.abs(logits))
        per_pair = 0.5 * difference * (pairs.first - pairs.second) * weight
        return pair_surrogate(backend, distribution, pairs, per_pair)


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
