"""VIMCO: the multi-sample score-function estimator with leave-one-out baselines.

VIMCO estimates the gradient of the multi-sample objective (not of ``E[f]``)

    L = E_{z_1..z_K ~ q}[L^],    L^ = log (1/K sum_k exp f(z_k)),

where ``f`` is a log-weight such as ``log p(x, z) - log q(z)``. Each sample's learning signal
compares ``L^`` with the value it would take if ``f(z_k)`` were replaced by the geometric
mean of the other samples' weights, ``f^_{-k} = 1/(K-1) sum_{j != k} f(z_j)``:

    L^_{-k} = log (1/K [sum_{j != k} exp f(z_j) + exp f^_{-k}]),
    g = sum_k (L^ - L^_{-k}) grad log q(z_k) + sum_k w_k grad f(z_k),

with ``w_k = exp f(z_k) / sum_j exp f(z_j)``. ``L^_{-k}`` does not depend on ``z_k``, so the
first sum is unbiased for the score part of ``grad L``. The surrogate's value is ``L^``
(it estimates ``L``); the second sum is what autodiff gives through ``L^`` for whatever
``f``'s values depend on (a decoder, or an explicit ``- log q_theta(z)`` term), the samples
themselves being stopped. Needs ``K >= 2``; ``K`` evaluations of ``f``, and ``O(K^2)``
memory for the leave-one-out terms (computed stably with ``logsumexp``).

Reference: Mnih & Rezende (2016), "Variational inference for Monte Carlo objectives", ICML.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.base import Estimator
from fxgx.estimators.control_variates import leave_one_out_mean
from fxgx.estimators.multi_sample import log_mean_exp, replaced_log_mean_exp
from fxgx.estimators.sampling import draw, evaluate, sub_seeds
from fxgx.estimators.streaming import cannot_stream


def leave_one_out_objectives(framework, values):
    """``L^_{-k}``: ``L^`` with ``values_k`` replaced by the mean of the others (axis 0)."""
    others_mean = leave_one_out_mean(framework.xp, values, values.shape[0])
    return replaced_log_mean_exp(framework, values, others_mean)


@dataclasses.dataclass(frozen=True)
class Vimco(Estimator, card="vimco"):
    """VIMCO for the multi-sample objective ``E[log mean_k exp f(z_k)]``. See ``vimco``."""

    streaming = cannot_stream("its target log mean_k exp f(z_k) couples all num_samples "
                              "samples")
    minimum_samples = 2

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        seeds = sub_seeds(framework, seed, "samples")
        samples = draw(framework, distribution, seeds["samples"], num_samples)
        values = evaluate(framework, function, samples, distribution, num_samples)
        objective = log_mean_exp(framework, values)
        stopped = framework.stop_gradient(values)
        signal = framework.stop_gradient(
            log_mean_exp(framework, stopped) - leave_one_out_objectives(framework, stopped)
        )
        log_prob = distribution.log_prob(samples)
        score = xp.exp(log_prob - framework.stop_gradient(log_prob))
        return with_gradient(framework, objective, signal, score, axis=0,
                             fx_gx_manually_stopped=True)


def vimco() -> Vimco:
    """VIMCO: ``sum_k (L^ - L^_{-k}) grad log q(z_k)`` for ``L = E[log mean_k exp f(z_k)]``.

    ``num_samples`` is ``K`` (at least 2); the surrogate's value is ``log mean_k exp f(z_k)``,
    an estimate of ``L``, not of ``E[f]``. Any distribution with ``sample`` and ``log_prob``.
    Reference: Mnih & Rezende (2016), ICML.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=K)``;
        it returns a surrogate whose value estimates ``E[log mean_k exp f(z_k)]`` and whose gradient
        estimates ``its gradient``.
    """
    return Vimco()
