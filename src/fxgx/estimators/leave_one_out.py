"""REINFORCE with a leave-one-out baseline (REINFORCE-LOO).

With ``S >= 2`` independent samples, each sample's baseline is the mean of the others:

    g = 1/S sum_s (f(z_s) - b_s) grad log q(z_s),   b_s = 1/(S-1) sum_{j != s} f(z_j)
      = 1/(S-1) sum_s (f(z_s) - mean_j f(z_j)) grad log q(z_s).

``b_s`` depends only on the other samples, which are independent of ``z_s``, so
``E[b_s grad log q(z_s)] = E[b_s] E[grad log q(z_s)] = 0`` and the estimate stays unbiased.
References: Mnih & Rezende (2016), "Variational inference for Monte Carlo objectives";
Kool, van Hoof & Welling (2019), "Buy 4 REINFORCE samples, get a baseline for free!".
"""

from __future__ import annotations

import dataclasses

from fxgx.estimators.base import Estimator, leave_one_out_mean, sub_seeds
from fxgx.estimators.reinforce import dice_surrogate, draw_and_evaluate


@dataclasses.dataclass(frozen=True)
class ReinforceLeaveOneOut(Estimator):
    """REINFORCE whose baseline for each sample is the mean of ``f`` over the other samples."""

    name = "reinforce_leave_one_out"
    minimum_samples = 2

    def _estimate(self, function, distribution, backend, seed, num_samples):
        seeds = sub_seeds(seed, backend, "samples")
        samples, values = draw_and_evaluate(
            function, distribution, backend, seeds["samples"], num_samples
        )
        baseline = leave_one_out_mean(backend, backend.stop_gradient(values), num_samples)
        return dice_surrogate(backend, values, samples, distribution, baseline, num_samples)

    streaming = "exact"

    def _stream_terms(self, function, distribution, backend, seed, num_samples,
                      statistics=()):
        """A chunk's running sums, as surrogates: ``P`` (value ``sum f_s``, gradient
        ``sum f_s grad log q_s`` and ``sum grad f_s``), ``P_score`` (the same with ``f``
        stopped) and ``Q`` (value 0, gradient ``sum grad log q_s``). The chunk draws its
        samples as a plain call with its seed does."""
        seeds = sub_seeds(seed, backend, "samples")
        samples, values = draw_and_evaluate(
            function, distribution, backend, seeds["samples"], num_samples
        )
        del statistics
        zero = backend.zeros_like(backend.stop_gradient(values))

        def summed(weights):
            return float(num_samples) * dice_surrogate(backend, weights, samples, distribution,
                                                       zero, num_samples)

        return (summed(values), summed(backend.stop_gradient(values)),
                summed(zero + 1) - float(num_samples))

    def _combine_streams(self, backend, totals, num_samples):
        """The leave-one-out estimate over all ``N`` samples from the chunks' sums:

            P / N + (P_score - stop P_score) / (N (N - 1)) - stop(P / N) Q / (N - 1),

        whose value is ``mean f`` and whose gradient is ``(A - mean(f) B) / (N - 1)``
        (``A = sum f_s grad log q_s``, ``B = sum grad log q_s``), the one-shot formula, and
        ``mean grad f`` for what ``f`` reads."""
        total, score_total, score_sum = totals
        count = float(num_samples)  # a Python int this large would overflow JAX's int32
        mean = backend.stop_gradient(total) / count
        return (total / count
                + (score_total - backend.stop_gradient(score_total)) / (count * (count - 1))
                - mean * score_sum / (count - 1))


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
