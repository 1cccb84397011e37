"""DisARM-VIMCO: DisARM pairs with local learning signals for the multi-sample bound.

The target is VIMCO's (not ``E[f]``): the multi-sample objective

    L = E_{z_1..z_K ~ q}[L^(z_1..z_K)],    L^ = log (1/K sum_k exp f(z_k)),

for Bernoulli latents with logits ``theta``. Its gradient is a sum over the samples,
``grad L = sum_k E[grad_{theta_k} L^]`` with ``theta_k`` the logits that draw ``z_k``. For
sample ``k``, with the other samples held fixed, ``E_{z_k}[L^]`` is a single-sample expectation
of the function ``b -> L^(z_1..b..z_K)``, and DisARM applies to it: draw ``z_k`` with an
antithetic partner ``z~_k`` (``z_k = 1[u_k < sigmoid(theta)]``, ``z~_k = 1[u_k >
sigmoid(-theta)]``) and weight the difference of the two values of ``L^``. With ``K`` pairs
``(z_k, z~_k)``, independent across ``k``, and ``L^_{k<-~}`` the objective with ``f(z_k)``
replaced by ``f(z~_k)`` (the others kept),

    g_d = sum_k 1/2 (L^ - L^_{k<-~}) (z_{k,d} - z~_{k,d}) sigmoid(|theta_d|)

is unbiased for ``dL/dtheta_d``: given the other pairs' first members, term ``k`` is DisARM
for ``E_{z_k}[L^]`` (Dong, Mnih & Tucker, 2020, the "local" DisARM for the multi-sample
bound). Each learning signal ``L^ - L^_{k<-~}`` is local to pair ``k`` (the change of the bound
when sample ``k`` alone is swapped for its partner), and coordinates where the pair agrees get
weight 0. The two members of a
pair play symmetric roles (``u -> 1 - u`` swaps them), so the same estimate with the roles
swapped, on ``L~^ = log mean_k exp f(z~_k)``, is unbiased too; the symmetrised estimate (the
default) averages the two,

    g_d = 1/4 sum_k [(L^ - L^_{k<-~}) - (L~^ - L~^_{k<-z})] (z_{k,d} - z~_{k,d})
              sigmoid(|theta_d|),

with variance no larger than either half (they are equally distributed), at no extra cost.
The surrogate's value is ``L^`` (or ``(L^ + L~^) / 2`` symmetrised), left differentiable w.r.t.
what ``f`` closes over, so a decoder receives ``sum_k w~_k grad f(z_k)`` with the normalised
weights ``w~`` (averaged over both members when symmetrised): unbiased for ``E[grad_phi L^]``.

``num_samples`` is ``K``, the number of samples in the bound, and also the number of pairs:
``f`` is evaluated ``2 K`` times (as VIMCO with ``2 K`` samples). The swapped objectives take
``O(K^2)`` memory, computed with ``logsumexp``. With ``K = 1`` the symmetrised estimate is
DisARM's.

Reference: Dong, Mnih & Tucker (2020), "DisARM: An antithetic gradient estimator for binary
latent variables", NeurIPS (the multi-sample variational bound section).
"""

from __future__ import annotations

import dataclasses

from fxgx.core.arrays import expand_trailing, shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.antithetic import antithetic_pairs
from fxgx.estimators.base import Estimator
from fxgx.estimators.multi_sample import log_mean_exp, replaced_log_mean_exp
from fxgx.estimators.streaming import cannot_stream


def local_learning_signals(framework, values, replacements):
    """``L^ - L^_{k<-~}``: the change of ``log mean_k exp values_k`` when pair ``k``'s value
    is swapped for its partner's (axis 0; shape ``[K] + batch_shape``)."""
    return log_mean_exp(framework, values) - replaced_log_mean_exp(framework, values,
                                                                   replacements)


@dataclasses.dataclass(frozen=True)
class DisarmVimco(Estimator, card="disarm_vimco"):
    """DisARM-VIMCO for ``E[log mean_k exp f(z_k)]``. See ``disarm_vimco``.

    Attributes:
        symmetrized: average the estimate with the one that swaps the roles of the pair's
            members (same cost, variance no larger).
    """

    symmetrized: bool = True

    streaming = cannot_stream("its target log mean_k exp f(z_k) couples all num_samples pairs")

    def __post_init__(self):
        if not isinstance(self.symmetrized, bool):
            raise TypeError(f"symmetrized must be a bool, got {self.symmetrized!r}.")

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        pairs = antithetic_pairs(framework, function, distribution, seed, num_samples)
        first = framework.stop_gradient(pairs.first_values)
        second = framework.stop_gradient(pairs.second_values)
        signal = local_learning_signals(framework, first, second)
        value = log_mean_exp(framework, pairs.first_values)
        if self.symmetrized:
            # The swapped-role estimate has signal L~^ - L~^_{k<-b} and weight (z~ - z).
            signal = 0.5 * (signal - local_learning_signals(framework, second, first))
            value = 0.5 * (value + log_mean_exp(framework, pairs.second_values))
        logits = framework.stop_gradient(distribution.logits)
        weight = framework.sigmoid(xp.abs(logits))
        signal = expand_trailing(xp, signal, distribution.event_ndims)
        per_pair = 0.5 * signal * (pairs.first - pairs.second) * weight
        gradient = framework.stop_gradient(xp.sum(per_pair, axis=0))
        rank = len(shape_of(logits))
        event_axes = tuple(range(rank - distribution.event_ndims, rank))
        return with_gradient(framework, value, gradient, distribution.logits, axis=event_axes,
                             fx_gx_manually_stopped=True)


def disarm_vimco(symmetrized: bool = True) -> DisarmVimco:
    """DisARM-VIMCO: ``K`` antithetic pairs with local signals ``L^ - L^_{k<-~}``.

    ``g_d = sum_k 1/2 (L^ - L^_{k<-~}) (z_{k,d} - z~_{k,d}) sigmoid(|theta_d|)`` for
    ``L = E[log mean_k exp f(z_k)]``, where ``L^_{k<-~}`` replaces ``f(z_k)`` by its antithetic
    partner's ``f(z~_k)``; symmetrised (default), averaged with the estimate that swaps the
    members' roles. Unbiased, Bernoulli latents; ``num_samples`` is ``K`` (the bound's sample
    count and the number of pairs: ``2 K`` evaluations of ``f``). The surrogate's value
    estimates ``L``, not ``E[f]``. Reference: Dong, Mnih & Tucker (2020), NeurIPS.

    Args:
        symmetrized: also use the partners' bound ``log mean_k exp f(z~_k)`` with the roles
            swapped and average the two estimates (no extra evaluations).

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=K)``;
        it returns a surrogate whose value estimates ``E[log mean_k exp f(z_k)]`` and whose
        gradient estimates its gradient w.r.t. the logits and what ``f`` closes over.
    """
    return DisarmVimco(symmetrized=symmetrized)
