"""REINFORCE-LOO with a Taylor-expansion (global) control variate: double control variates.

With ``S >= 2`` samples ``z_1..z_S`` of a Bernoulli or one-hot categorical ``q`` with mean
``mu = E_q[z]`` (``sigmoid(logits)`` or ``softmax(logits)``), let ``d_s = grad_z f(z_s)``
(the gradient of ``f`` w.r.t. its input, at the sample) and ``dbar_s = 1/(S-1) sum_{j!=s}
d_j`` its leave-one-out mean. Sample ``s`` gets the first-order Taylor term

    c_s = alpha dbar_s . (z_s - mu)

(``alpha`` the scale; ``dbar_s`` does not depend on ``z_s``), and the estimate is
REINFORCE-LOO applied to ``F_s = f(z_s) - c_s`` plus the exact gradient of what was
subtracted:

    g = 1/S sum_s (F_s - 1/(S-1) sum_{j!=s} F_j) grad log q(z_s)
        + alpha grad_theta [dbar . mu_theta],      dbar = 1/S sum_s d_s  (held fixed).

Unbiased for every ``alpha``: given the other samples, ``E[c_s grad log q(z_s)] =
alpha grad_theta (dbar_s . mu_theta)``, whose mean over ``s`` is the correction term (the mean of
the leave-one-out means ``dbar_s`` is ``dbar``); and each ``c_j`` inside sample ``s``'s
baseline has mean zero given everything but ``z_j`` (``dbar_j`` leaves ``z_j`` out). The
correction is closed form: ``dbar * mu (1 - mu)`` per Bernoulli logit, ``mu (dbar - dbar . mu)``
per categorical variable. The leave-one-out baseline is the first control variate, the Taylor
term the second (the "double" control variate); ``alpha = 1`` subtracts the Taylor
expansion of ``f`` around ``mu`` whole, and ``alpha`` can be trained on ``variance_loss``.

``f`` must be differentiable in its input (evaluated at the discrete samples, like REBAR's
relaxed ``f``); its gradients come from the backward pass through the ``S`` evaluations, so
the cost is one evaluation of ``f`` per sample plus one backward pass, no extra
evaluations.

Reference: Titsias & Shi (2022), "Double control variates for gradient estimation in
discrete latent variable models", AISTATS.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.arrays import expand_to_rank, shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.base import Estimator, call_option
from fxgx.estimators.control_variates import covariance_times, leave_one_out_mean
from fxgx.estimators.hyperparameters import as_hyperparameter, finite
from fxgx.estimators.sampling import draw, evaluate, event_axes, mean_of, sub_seeds
from fxgx.estimators.variance_objective import VarianceObjective


def values_and_input_gradients(framework, function, samples, distribution, num_samples):
    """``f`` at the samples and its gradient w.r.t. them, from one backward pass.

    Args:
        framework: the framework.
        function: ``f``, differentiable in its input.
        samples: ``[S] + logits.shape`` samples.
        distribution: the distribution they came from.
        num_samples: ``S``.

    Returns:
        ``(values, gradients)``: ``f(z)`` (``[S] + batch_shape``), left differentiable
        w.r.t. what ``f`` closes over; ``grad_z sum f(z)`` (the samples' shape), stopped.
        Since ``f`` of sample ``s`` depends only on ``z_s``, these are the per-sample input
        gradients.
    """

    def evaluated(points):
        return evaluate(framework, function, points, distribution, num_samples)

    values, (gradients,) = framework.value_and_gradient(evaluated, [samples])
    return values, framework.stop_gradient(gradients)


@dataclasses.dataclass(frozen=True)
class DoubleControlVariate(VarianceObjective, Estimator, card="double_control_variate"):
    """REINFORCE-LOO with the Taylor control variate ``alpha dbar_s . (z_s - mu)``. See
    ``double_control_variate``.

    Per-call option: ``scale`` (a trainable tensor).

    Attributes:
        scale: ``alpha``, a finite number or floating array broadcasting to the batch shape.
    """

    scale: object = call_option(1.0, finite)
    minimum_samples = 2

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        seeds = sub_seeds(framework, seed, "samples")
        samples = draw(framework, distribution, seeds["samples"], num_samples)
        values, slopes = values_and_input_gradients(framework, function, samples,
                                                    distribution, num_samples)
        logits = distribution.logits
        dtype = logits.dtype
        rank = len(shape_of(logits))
        axes = event_axes(distribution)
        scale = as_hyperparameter(framework, self.scale, dtype, distribution.batch_shape,
                                  "scale", target="the batch")
        mean = mean_of(framework, distribution)
        centred = samples - mean
        others_slope = leave_one_out_mean(xp, slopes, num_samples)
        taylor = xp.sum(others_slope * centred, axis=axes)
        adjusted = framework.stop_gradient(values) - scale * taylor
        weights = (adjusted - leave_one_out_mean(xp, adjusted, num_samples)) / num_samples
        score_part = xp.sum(expand_to_rank(xp, weights, rank + 1) * centred, axis=0)
        correction = covariance_times(xp, distribution, mean, xp.mean(slopes, axis=0))
        gradient = score_part + expand_to_rank(xp, scale, rank) * correction
        return with_gradient(framework, xp.mean(values, axis=0), gradient, logits,
                             axis=tuple(axis - 1 for axis in axes),
                             fx_gx_manually_stopped=True)


def double_control_variate(scale=1.0) -> DoubleControlVariate:
    """REINFORCE-LOO plus the Taylor (global) control variate of Titsias & Shi (2022).

    ``g = 1/S sum_s (F_s - mean_{j!=s} F_j) grad log q(z_s) + alpha grad(dbar . mu)`` with
    ``F_s = f(z_s) - alpha dbar_s . (z_s - mu)``, ``dbar_s`` the leave-one-out mean of
    ``grad_z f`` over the other samples and ``dbar`` its mean over all; unbiased for every
    ``alpha``. ``f`` must be differentiable in ``z``; one evaluation of ``f`` per sample plus
    one backward pass. Reference: Titsias & Shi (2022), "Double control variates for
    gradient estimation in discrete latent variable models", AISTATS.

    Args:
        scale: ``alpha``; 0 is REINFORCE-LOO, 1 subtracts the whole first-order Taylor
            expansion of ``f`` around the mean. A number or a floating array broadcasting
            to the batch shape; train it on ``est.variance_loss``.

    Returns:
        A :class:`DoubleControlVariate`, called as ``est(f, q, *, seed, num_samples=2)``.

    Raises:
        TypeError, ValueError: ``scale`` is not a finite number or floating array.
    """
    return DoubleControlVariate(scale=finite(scale, "scale"))
