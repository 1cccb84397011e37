"""REINFORCE with the variance-minimising scalar baseline, estimated leave-one-out.

For the estimate ``(f(z) - c) s(z)`` with score ``s = grad_theta log q(z)``, the total
variance ``E||(f - c) s||^2 - ||grad||^2`` is smallest at

    c* = E[f(z) ||s(z)||^2] / E[||s(z)||^2].

Plugging in a sample estimate of ``c*`` that uses ``z_s`` itself would bias the estimate.
Here sample ``s`` gets the ratio over the *other* samples only:

    c_s = sum_{j != s} f(z_j) ||s(z_j)||^2 / sum_{j != s} ||s(z_j)||^2
    g   = 1/S sum_s (f(z_s) - c_s) s(z_s),

so ``c_s`` is independent of ``z_s`` and ``E[c_s s(z_s)] = E[c_s] E[s(z_s)] = 0``: unbiased
for every ``S >= 2`` (if every other score is 0, ``c_s`` falls back to the others' mean
of ``f``, which is still independent of ``z_s``). The leave-one-out sums are taken as the
sum of the samples before ``s`` plus the sum of those after it (two exclusive cumulative
sums), not as ``total - own``, so no rounding of ``z_s``'s own term leaks into ``c_s``; time
and memory are O(S).

The score norm is computed in closed form, per batch member, w.r.t. the natural
parameters: Bernoulli logits ``s = b - sigmoid(logits)``; one-hot categorical logits
``s = z - softmax(logits)``; normal ``(loc, scale)``: ``s = ((z - m)/v^2, ((z - m)^2/v^2
- 1)/v)``. Any other parameterisation only changes which ``c`` is optimal, never the
mean. References: Weaver & Tao (2001), "The optimal reward baseline for gradient-based
reinforcement learning"; Greensmith, Bartlett & Baxter (2004), JMLR 5.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.arrays import sum_trailing
from fxgx.estimators.base import Estimator
from fxgx.estimators.control_variates import leave_one_out_sum
from fxgx.estimators.sampling import draw_and_evaluate, sub_seeds
from fxgx.estimators.score_function import dice_surrogate, score_function_surrogate
from fxgx.estimators.streaming import StreamingRule


def squared_score_norm(distribution, samples):
    """``||grad log q(z)||^2`` per sample and batch member (shape ``[S] + batch_shape``),
    in closed form w.r.t. the natural parameters (see the module docstring)."""
    framework = distribution.framework
    xp = framework.xp
    stop = framework.stop_gradient
    if distribution.kind == "bernoulli":
        squared = xp.square(samples - framework.sigmoid(stop(distribution.logits)))
    elif distribution.kind == "categorical":
        difference = samples - framework.softmax(stop(distribution.logits), axis=-1)
        squared = xp.sum(xp.square(difference), axis=-1)
    elif distribution.kind == "normal":
        scale = stop(distribution.scale)
        standardized = (samples - stop(distribution.loc)) / scale
        squared = xp.square(standardized / scale) + xp.square(
            (xp.square(standardized) - 1) / scale
        )
    else:  # pragma: no cover - rejected at the boundary by `supports`
        raise TypeError(f"No closed-form score for a {distribution.kind} distribution.")
    return sum_trailing(xp, squared, distribution.event_ndims)


def _draw(framework, function, distribution, seed, num_samples):
    """Samples, ``f`` on them and their stopped squared score norms ``||s_j||^2``."""
    seeds = sub_seeds(framework, seed, "samples")
    samples, values = draw_and_evaluate(framework, function, distribution, seeds["samples"],
                                        num_samples)
    weights = framework.stop_gradient(
        framework.xp.astype(squared_score_norm(distribution, samples), values.dtype))
    return samples, values, weights


def _ratio_or_mean(xp, numerator, denominator, others_mean):
    """``numerator / denominator`` where the denominator is positive, else ``others_mean``."""
    positive = xp.greater(denominator, xp.zeros_like(denominator))
    safe = xp.where(positive, denominator, xp.ones_like(denominator))
    return xp.where(positive, numerator / safe, others_mean)


@dataclasses.dataclass(frozen=True)
class TwoPassStreaming(StreamingRule):
    """The streaming rule of the optimal baseline: two passes over the chunks.

    The first pass sums, over every chunk, ``sum f_j ||s_j||^2``, ``sum ||s_j||^2``,
    ``sum f_j`` and the sample count (all stopped). The second redraws each chunk and takes
    ``c_s`` over all ``N`` samples but its own from those totals: ``c_s = (U - f_s ||s_s||^2)
    / (W - ||s_s||^2)`` (else ``(F - f_s) / (N - 1)``), the one-shot formula. Unlike the
    one-shot call's two cumulative sums, ``U - f_s ||s_s||^2`` carries sample ``s``'s own
    term at float rounding level.
    """

    kind: str = "two_pass"

    def statistics(self, estimator, framework, function, distribution, seed, num_samples):
        del estimator
        xp = framework.xp
        _, values, weights = _draw(framework, function, distribution, seed, num_samples)
        stopped = framework.stop_gradient(values)
        return (xp.sum(stopped * weights, axis=0), xp.sum(weights, axis=0),
                xp.sum(stopped, axis=0), xp.sum(xp.ones_like(stopped), axis=0))

    def terms(self, estimator, framework, function, distribution, seed, num_samples,
              statistics):
        del estimator
        weighted_total, weight_total, value_total, count = statistics
        samples, values, weights = _draw(framework, function, distribution, seed,
                                         num_samples)
        stopped = framework.stop_gradient(values)
        baseline = _ratio_or_mean(framework.xp, weighted_total - stopped * weights,
                                  weight_total - weights, (value_total - stopped) / (count - 1))
        return (float(num_samples) * dice_surrogate(framework, values, samples, distribution,
                                                    baseline, num_samples),)


@dataclasses.dataclass(frozen=True)
class OptimalBaseline(Estimator, card="optimal_baseline"):
    """REINFORCE with ``c_s``, the leave-one-out estimate of the optimal scalar baseline."""

    minimum_samples = 2
    streaming = TwoPassStreaming()

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        samples, values, weights = _draw(framework, function, distribution, seed,
                                         num_samples)
        stopped = framework.stop_gradient(values)
        baseline = _ratio_or_mean(xp, leave_one_out_sum(xp, stopped * weights),
                                  leave_one_out_sum(xp, weights),
                                  leave_one_out_sum(xp, stopped) / (num_samples - 1))
        log_prob = distribution.log_prob(samples)
        return score_function_surrogate(framework, values, log_prob, baseline, num_samples)


def optimal_baseline() -> OptimalBaseline:
    """REINFORCE with ``c_s = sum_{j!=s} f_j ||s_j||^2 / sum_{j!=s} ||s_j||^2``; ``S >= 2``.

    ``s_j`` is the score of sample ``j`` w.r.t. the logits (Bernoulli, categorical) or
    ``(loc, scale)`` (normal). One evaluation of ``f`` per sample. Reference: Weaver & Tao
    (2001), "The optimal reward baseline for gradient-based reinforcement learning".

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=2)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]``.
    """
    return OptimalBaseline()
