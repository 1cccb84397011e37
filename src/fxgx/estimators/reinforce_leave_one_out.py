"""REINFORCE with a leave-one-out baseline (REINFORCE-LOO).

With ``S >= 2`` independent samples, each sample's baseline is the mean of the others:

    g = 1/S sum_s (f(z_s) - b_s) grad log q(z_s),   b_s = 1/(S-1) sum_{j != s} f(z_j)
      = 1/(S-1) sum_s (f(z_s) - mean_j f(z_j)) grad log q(z_s).

``b_s`` depends only on the other samples, which are independent of ``z_s``, so
``E[b_s grad log q(z_s)] = E[b_s] E[grad log q(z_s)] = 0`` and the estimate stays unbiased.
References: Mnih & Rezende (2016), "Variational inference for Monte Carlo objectives";
Kool, van Hoof & Welling (2019), "Buy 4 REINFORCE samples, get a baseline for free!".

Streaming (``LeaveOneOutStreaming``) is exact: running sums over the chunks give the
one-shot estimate over all ``N`` samples.
"""

from __future__ import annotations

import dataclasses

from fxgx.estimators.base import Estimator
from fxgx.estimators.control_variates import leave_one_out_mean
from fxgx.estimators.sampling import draw_and_evaluate, sub_seeds
from fxgx.estimators.score_function import dice_surrogate
from fxgx.estimators.streaming import StreamingRule


@dataclasses.dataclass(frozen=True)
class LeaveOneOutStreaming(StreamingRule):
    """The exact streaming rule of REINFORCE-LOO.

    Each chunk adds three running sums, as surrogates: ``P`` (value ``sum f_s``, gradient
    ``sum f_s grad log q_s`` and ``sum grad f_s``), ``P_score`` (the same with ``f`` stopped)
    and ``Q`` (value 0, gradient ``sum grad log q_s``). The chunk draws its samples as a
    plain call with its seed does. They combine as

        P / N + (P_score - stop P_score) / (N (N - 1)) - stop(P / N) Q / (N - 1),

    whose value is ``mean f`` and whose gradient is ``(A - mean(f) B) / (N - 1)``
    (``A = sum f_s grad log q_s``, ``B = sum grad log q_s``), the one-shot formula, and
    ``mean grad f`` for what ``f`` reads.
    """

    kind: str = "exact"

    def terms(self, estimator, framework, function, distribution, seed, num_samples,
              statistics):
        del estimator, statistics
        seeds = sub_seeds(framework, seed, "samples")
        samples, values = draw_and_evaluate(framework, function, distribution,
                                            seeds["samples"], num_samples)
        zero = framework.xp.zeros_like(framework.stop_gradient(values))

        def summed(weights):
            return float(num_samples) * dice_surrogate(framework, weights, samples,
                                                       distribution, zero, num_samples)

        return (summed(values), summed(framework.stop_gradient(values)),
                summed(zero + 1) - float(num_samples))

    def combine(self, framework, totals, num_samples):
        total, score_total, score_sum = totals
        count = float(num_samples)  # a Python int this large would overflow JAX's int32
        stop = framework.stop_gradient
        mean = stop(total) / count
        return (total / count + (score_total - stop(score_total)) / (count * (count - 1))
                - mean * score_sum / (count - 1))


@dataclasses.dataclass(frozen=True)
class ReinforceLeaveOneOut(Estimator, card="reinforce_leave_one_out"):
    """REINFORCE whose baseline for each sample is the mean of ``f`` over the other samples."""

    minimum_samples = 2
    streaming = LeaveOneOutStreaming()

    def _estimate(self, framework, function, distribution, seed, num_samples):
        seeds = sub_seeds(framework, seed, "samples")
        samples, values = draw_and_evaluate(framework, function, distribution,
                                            seeds["samples"], num_samples)
        baseline = leave_one_out_mean(framework.xp, framework.stop_gradient(values),
                                      num_samples)
        return dice_surrogate(framework, values, samples, distribution, baseline, num_samples)


def reinforce_leave_one_out() -> ReinforceLeaveOneOut:
    """REINFORCE-LOO: ``1/(S-1) sum_s (f(z_s) - mean f) grad log q(z_s)``; needs ``S >= 2``.

    Costs one evaluation of ``f`` per sample and no extra parameters. Reference: Kool, van
    Hoof & Welling (2019), "Buy 4 REINFORCE samples, get a baseline for free!".

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=2)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]``.
    """
    return ReinforceLeaveOneOut()
