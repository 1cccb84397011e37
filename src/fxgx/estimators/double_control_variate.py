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

from fxgx.core.custom_gradient import custom_gradient
from fxgx.estimators.base import Estimator, evaluate, leave_one_out_mean, sub_seeds
from fxgx.estimators.hyperparameters import as_hyperparameter, finite
from fxgx.estimators.rebar import VarianceObjectiveMixin
from fxgx.estimators.reinforce import draw


def event_axes(backend, distribution):
    """The axes of a sample (``[S] + logits.shape``) that belong to one event.

    Args:
        backend: the backend module.
        distribution: a Bernoulli or one-hot categorical distribution.

    Returns:
        The ``event_ndims`` rightmost axes, plus the class axis for a categorical one.
    """
    rank = 1 + len(backend.shape_of(distribution.logits))
    event_rank = distribution.event_ndims + (1 if distribution.kind == "categorical" else 0)
    return tuple(range(rank - event_rank, rank))


def mean_of(backend, distribution):
    """``E_q[z]`` with the logits stopped.

    Args:
        backend: the backend module.
        distribution: a Bernoulli or one-hot categorical distribution.

    Returns:
        ``sigmoid(logits)`` or ``softmax(logits)``, of the logits' shape.
    """
    logits = backend.stop_gradient(distribution.logits)
    if distribution.kind == "bernoulli":
        return backend.sigmoid(logits)
    return backend.softmax(logits, axis=-1)


def covariance_times(backend, distribution, mean, vector):
    """``Cov_q(z) v`` for one sample ``z``, equal to ``grad_logits (v . mu)``.

    Args:
        backend: the backend module.
        distribution: a Bernoulli or one-hot categorical distribution.
        mean: ``mu``, of the logits' shape.
        vector: ``v``, of the logits' shape.

    Returns:
        ``mu (1 - mu) v`` per Bernoulli logit, ``mu (v - sum_c mu_c v_c)`` per categorical
        variable.
    """
    if distribution.kind == "bernoulli":
        return mean * (1.0 - mean) * vector
    return mean * (vector - backend.reduce_sum(mean * vector, axis=-1, keepdims=True))


def expand_to(backend, value, rank):
    """``value`` with trailing unit axes appended until it has ``rank`` axes.

    Args:
        backend: the backend module.
        value: an array.
        rank: the rank wanted.

    Returns:
        The reshaped ``value`` (unchanged if its rank is already ``rank`` or more).
    """
    while len(backend.shape_of(value)) < rank:
        value = backend.expand_dims(value, -1)
    return value


def values_and_input_gradients(function, samples, distribution, backend, num_samples):
    """``f`` at the samples and its gradient w.r.t. them, from one backward pass.

    Args:
        function: ``f``, differentiable in its input.
        samples: ``[S] + logits.shape`` samples.
        distribution: the distribution they came from.
        backend: the backend module.
        num_samples: ``S``.

    Returns:
        ``(values, gradients)``: ``f(z)`` (``[S] + batch_shape``), left differentiable
        w.r.t. what ``f`` closes over; ``grad_z sum f(z)`` (the samples' shape), stopped.
        Since ``f`` of sample ``s`` depends only on ``z_s``, these are the per-sample input
        gradients.
    """

    def evaluated(points):
        return evaluate(function, points, distribution, backend, num_samples)

    values, (gradients,) = backend.value_and_gradient(evaluated, [samples])
    return values, backend.stop_gradient(gradients)


@dataclasses.dataclass(frozen=True)
class DoubleControlVariate(VarianceObjectiveMixin, Estimator):
    """REINFORCE-LOO with the Taylor control variate ``alpha dbar_s . (z_s - mu)``. See
    ``double_control_variate``.

    Attributes:
        scale: ``alpha``, a finite number or floating array broadcasting to the batch shape
            (trainable: pass it per call as ``scale=``).
    """

    scale: object = 1.0
    name = "double_control_variate"
    supports = ("bernoulli", "categorical")
    minimum_samples = 2

    def __call__(self, function, distribution, *, seed, num_samples: int = 2,
                 chunk_size=None, devices=None, scale=None):
        """The surrogate of ``E[f]`` (see ``Estimator.__call__``).

        Args:
            function: ``f``, differentiable in its input; maps ``[S] + logits.shape``
                samples to ``[S] + batch_shape``.
            distribution: a Bernoulli or one-hot categorical ``q``.
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S >= 2``.
            chunk_size: stream the estimate in chunks (see ``Estimator.__call__``).
            devices: spread the chunks over devices (see ``Estimator.__call__``).
            scale: overrides ``alpha`` for this call (a trainable tensor).

        Returns:
            The surrogate, of the distribution's batch shape: value ``mean_s f(z_s)``,
            gradient the double-control-variate estimate.
        """
        estimator = self.with_call_options(scale=scale)
        return Estimator.__call__(estimator, function, distribution, seed=seed,
                                  num_samples=num_samples, chunk_size=chunk_size,
                                  devices=devices)

    def with_call_options(self, scale=None):
        """A copy with ``scale`` replaced where given.

        Args:
            scale: a new ``alpha`` (checked to be finite), or ``None`` to keep this one.

        Returns:
            A :class:`DoubleControlVariate`.
        """
        if scale is None:
            return self
        return dataclasses.replace(self, scale=finite(scale, "scale"))

    def _estimate(self, function, distribution, backend, seed, num_samples):
        seeds = sub_seeds(seed, backend, "samples")
        samples = draw(distribution, backend, seeds["samples"], num_samples)
        values, slopes = values_and_input_gradients(function, samples, distribution, backend,
                                                    num_samples)
        logits = distribution.logits
        dtype = backend.dtype_of(logits)
        rank = len(backend.shape_of(logits))
        axes = event_axes(backend, distribution)
        scale = as_hyperparameter(backend, self.scale, dtype, distribution.batch_shape, "scale",
                                  target="the batch")
        mean = mean_of(backend, distribution)
        centred = samples - mean
        others_slope = leave_one_out_mean(backend, slopes, num_samples)
        taylor = backend.reduce_sum(others_slope * centred, axis=axes)
        adjusted = backend.stop_gradient(values) - scale * taylor
        weights = (adjusted - leave_one_out_mean(backend, adjusted, num_samples)) / num_samples
        score_part = backend.reduce_sum(expand_to(backend, weights, rank + 1) * centred, axis=0)
        correction = covariance_times(backend, distribution, mean,
                                      backend.reduce_mean(slopes, axis=0))
        gradient = score_part + expand_to(backend, scale, rank) * correction
        return custom_gradient(backend.reduce_mean(values, axis=0), gradient, logits,
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
