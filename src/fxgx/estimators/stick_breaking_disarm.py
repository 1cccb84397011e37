"""Stick-breaking DisARM: DisARM on a categorical's binary decisions, Rao-Blackwellised.

Write each ``K``-class variable as its ``K - 1`` stick-breaking decisions ``b_k ~
Bernoulli(sigmoid(eta_k))``, ``eta_k = theta_k - logsumexp(theta_{k+1:})`` (see
``fxgx.estimators.stick_breaking``). ``E[f(z)]`` is then an expectation over independent
binary variables, and DisARM on the antithetic pair of decision sequences ``(b, b~)`` is
unbiased for the gradient w.r.t. ``eta``. A decision after a sequence's class ``z`` does not
change ``z``, so Dong, Mnih & Tucker (2021) integrate it out given the other sequence's
decision. With ``pi_k = sigmoid(eta_k)`` the estimate for decision ``k`` becomes

    g_k = 1/2 (f(z) - f(z~)) (b_k - b~_k) sigmoid(|eta_k|)   both sequences alive (k <= min),
    g_k = 1/2 (f(z) - f(z~)) (b_k - pi_k)                    only b alive (z~ < k <= z),
    g_k = 1/2 (f(z~) - f(z)) (b~_k - pi_k)                   only b~ alive (z < k <= z~),
    g_k = 0                                                  neither alive,

(``E[(b_k - b~_k) sigmoid(|eta_k|) | b~_k] = pi_k - b~_k`` under the antithetic pair), so its
variance is never above plain DisARM on the sequence (Rao-Blackwell). The gradient w.r.t. the
softmax logits ``theta`` follows by the chain rule through ``eta`` (autodiff). Unbiased; two
evaluations of ``f`` per pair; ``f`` is never differentiated w.r.t. the samples. The paper
also uses a balanced binary tree of decisions (DisARM-Tree); this module uses the
stick-breaking sequence in the given class order (DisARM-SB). For ``K = 2`` it is Bernoulli
DisARM on ``eta = theta_0 - theta_1``; a Bernoulli distribution gets DisARM itself.
Reference: Dong, Mnih & Tucker (2021), "Coupled gradient estimators for discrete latent
variables", NeurIPS.
"""

from __future__ import annotations

import dataclasses

from fxgx.estimators.base import Estimator
from fxgx.estimators.disarm import Disarm
from fxgx.estimators.stick_breaking import (
    coupled_pairs,
    coupled_surrogate,
    half_difference,
    stick_breaking_logits,
)


def stick_breaking_disarm_gradient(framework, pairs, event_ndims):
    """The per-pair Rao-Blackwellised DisARM gradient w.r.t. the decision logits ``eta``.

    Args:
        framework: the framework.
        pairs: stick-breaking coupled pairs (``fxgx.estimators.stick_breaking``).
        event_ndims: the distribution's event axes before the class axis.

    Returns:
        Shape ``[S] + batch_shape + event + [K - 1]``.
    """
    difference = half_difference(framework, pairs, event_ndims + 1)
    eta = pairs.decision_logits
    probability = framework.sigmoid(eta)
    first, second = pairs.first_decisions, pairs.second_decisions
    both = pairs.first_alive * pairs.second_alive
    only_first = pairs.first_alive * (1.0 - pairs.second_alive)
    only_second = (1.0 - pairs.first_alive) * pairs.second_alive
    factor = (both * (first - second) * framework.sigmoid(framework.xp.abs(eta))
              + only_first * (first - probability)
              - only_second * (second - probability))
    return difference * factor


@dataclasses.dataclass(frozen=True)
class StickBreakingDisarm(Estimator, card="stick_breaking_disarm"):
    """DisARM on the stick-breaking decisions, Rao-Blackwellised. See
    ``stick_breaking_disarm``."""

    def _estimate(self, framework, function, distribution, seed, num_samples):
        if distribution.kind == "bernoulli":  # the two-class case: DisARM itself
            return Disarm()._estimate(framework, function, distribution, seed, num_samples)
        pairs = coupled_pairs(framework, function, distribution, seed, num_samples)
        per_pair = stick_breaking_disarm_gradient(framework, pairs, distribution.event_ndims)
        decision_logits = stick_breaking_logits(framework, distribution.logits)
        return coupled_surrogate(framework, pairs, per_pair, decision_logits,
                                 distribution.event_ndims + 1)


def stick_breaking_disarm() -> StickBreakingDisarm:
    """Stick-breaking DisARM: DisARM on the ``K - 1`` binary decisions, Rao-Blackwellised.

    ``g_k = 1/2 (f(z) - f(z~)) (b_k - b~_k) sigmoid(|eta_k|)`` where both decision sequences
    are alive, ``1/2 (f(z) - f(z~)) (b_k - sigmoid(eta_k))`` (or the mirror image) where only
    one is, 0 elsewhere; chained to the logits through ``eta_k = theta_k -
    logsumexp(theta_{k+1:})``. The paper's DisARM-SB, in the given class order. Unbiased, for
    one-hot categorical latents with ``K >= 2`` classes (for ``K = 2``, and on a Bernoulli,
    it is DisARM); ``num_samples`` coupled pairs (two evaluations of ``f`` each).
    Reference: Dong, Mnih & Tucker (2021), "Coupled gradient estimators for discrete latent
    variables", NeurIPS.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]`` w.r.t. the logits, and ``E_q[grad f]`` w.r.t. what
        ``f`` closes over.
    """
    return StickBreakingDisarm()
