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

from fxgx.estimators.base import Estimator, sub_seeds
from fxgx.estimators.reinforce import (
    dice_surrogate,
    draw_and_evaluate,
    score_function_surrogate,
)


def _sum_event(backend, values, event_ndims):
    if event_ndims == 0:
        return values
    rank = len(backend.shape_of(values))
    return backend.reduce_sum(values, axis=tuple(range(rank - event_ndims, rank)))


def squared_score_norm(distribution, samples):
    """``||grad log q(z)||^2`` per sample and batch member (shape ``[S] + batch_shape``),
    in closed form w.r.t. the natural parameters (see the module docstring)."""
    backend = distribution.backend
    stop = backend.stop_gradient
    if distribution.kind == "bernoulli":
        squared = backend.square(samples - backend.sigmoid(stop(distribution.logits)))
    elif distribution.kind == "categorical":
        difference = samples - backend.softmax(stop(distribution.logits), axis=-1)
        squared = backend.reduce_sum(backend.square(difference), axis=-1)
    elif distribution.kind == "normal":
        scale = stop(distribution.scale)
        standardized = (samples - stop(distribution.loc)) / scale
        squared = backend.square(standardized / scale) + backend.square(
            (backend.square(standardized) - 1) / scale
        )
    else:  # pragma: no cover - rejected at the boundary by `supports`
        raise TypeError(f"No closed-form score for a {distribution.kind} distribution.")
    return _sum_event(backend, squared, distribution.event_ndims)


def leave_one_out_sum(backend, values):
    """``sum_{j != s} values_j`` along axis 0 as ``sum_{j < s} + sum_{j > s}``: computed from
    the other samples only (exactly independent of sample ``s``), in O(S) memory."""
    before = backend.exclusive_cumsum(values, axis=0)
    after = backend.exclusive_cumsum(values, axis=0, reverse=True)
    return before + after


@dataclasses.dataclass(frozen=True)
class OptimalBaseline(Estimator):
    """REINFORCE with ``c_s``, the leave-one-out estimate of the optimal scalar baseline."""

    name = "optimal_baseline"
    supports = ("bernoulli", "categorical", "normal")
    minimum_samples = 2

    def _estimate(self, function, distribution, backend, seed, num_samples):
        samples, values, weights = self._draw(function, distribution, backend, seed,
                                              num_samples)
        stopped = backend.stop_gradient(values)
        numerator = leave_one_out_sum(backend, stopped * weights)
        denominator = leave_one_out_sum(backend, weights)
        others_mean = leave_one_out_sum(backend, stopped) / (num_samples - 1)
        positive = backend.greater(denominator, backend.zeros_like(denominator))
        safe = backend.where(positive, denominator, backend.ones_like(denominator))
        baseline = backend.where(positive, numerator / safe, others_mean)
        log_prob = distribution.log_prob(samples)
        return score_function_surrogate(backend, values, log_prob, baseline, num_samples)

    def _draw(self, function, distribution, backend, seed, num_samples):
        """Samples, ``f`` on them and their stopped squared score norms ``||s_j||^2``."""
        seeds = sub_seeds(seed, backend, "samples")
        samples, values = draw_and_evaluate(
            function, distribution, backend, seeds["samples"], num_samples
        )
        weights = backend.stop_gradient(
            backend.cast(squared_score_norm(distribution, samples), backend.dtype_of(values))
        )
        return samples, values, weights

    streaming = "two_pass"

    def _stream_statistics(self, function, distribution, backend, seed, num_samples):
        """First pass of a streamed call: a chunk's ``sum f_j ||s_j||^2``, ``sum ||s_j||^2``,
        ``sum f_j`` and sample count (all stopped)."""
        _, values, weights = self._draw(function, distribution, backend, seed, num_samples)
        stopped = backend.stop_gradient(values)
        return (backend.reduce_sum(stopped * weights, axis=0),
                backend.reduce_sum(weights, axis=0), backend.reduce_sum(stopped, axis=0),
                backend.reduce_sum(backend.ones_like(stopped), axis=0))

    def _stream_terms(self, function, distribution, backend, seed, num_samples,
                      statistics=()):
        """Second pass: the chunk redraws its samples and takes ``c_s`` over all ``N``
        samples but its own, from the first pass's totals: ``c_s = (U - f_s ||s_s||^2) /
        (W - ||s_s||^2)`` (else ``(F - f_s) / (N - 1)``), the one-shot formula. Unlike the
        one-shot call's two cumulative sums, ``U - f_s ||s_s||^2`` carries sample ``s``'s own
        term at float rounding level."""
        weighted_total, weight_total, value_total, count = statistics
        samples, values, weights = self._draw(function, distribution, backend, seed,
                                              num_samples)
        stopped = backend.stop_gradient(values)
        numerator = weighted_total - stopped * weights
        denominator = weight_total - weights
        others_mean = (value_total - stopped) / (count - 1)
        positive = backend.greater(denominator, backend.zeros_like(denominator))
        safe = backend.where(positive, denominator, backend.ones_like(denominator))
        baseline = backend.where(positive, numerator / safe, others_mean)
        return (float(num_samples) * dice_surrogate(backend, values, samples, distribution,
                                                    baseline, num_samples),)


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
