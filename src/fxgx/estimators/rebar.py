"""REBAR: REINFORCE with a control variate built from the continuous relaxation of ``f``.

A Bernoulli sample is the threshold of a logistic variable, ``b = H(z)`` with
``z = theta + log u - log(1 - u)``; a categorical sample is the argmax of Gumbel-perturbed
logits, ``b = one_hot(argmax z)`` with ``z = theta - log(-log u)``. For any differentiable
``c``,

    g = [f(b) - c(z~)] grad log q(b) + grad c(z) - grad c(z~)

is unbiased for ``grad E[f(b)]``, where ``z~ ~ p(z | b)`` is the conditional relaxed sample,
reparameterised by fresh uniforms ``v`` with ``b`` held fixed (Tucker et al., 2017, eq. 6).
REBAR takes ``c(z) = eta * f(sigma_lambda(z))`` with ``sigma_lambda(z) = sigmoid(z / lambda)``
(Bernoulli) or ``softmax(z / lambda)`` (categorical); the temperature ``lambda`` and scale
``eta`` are trained to minimise the variance of ``g`` (``variance_loss``). Three evaluations
of ``f`` per sample; ``f`` must be differentiable (it is evaluated on relaxed samples).

This module also holds the conditional samplers (public building blocks; the tests of
``fxgx.estimators.gumbel_rao`` use them as the reference of its own, cheaper, form):

- logistic, given ``b``: ``z~ = softplus(logit v + softplus theta)`` if ``b = 1`` and
  ``z~ = -softplus(logit v + softplus(-theta))`` if ``b = 0`` (the inverse CDF of ``z``
  truncated to ``z > 0`` or ``z <= 0``, written without cancellation);
- Gumbel, given ``b = k``: ``z~_k = logsumexp(theta) - log e_k`` and, for ``j != k``,
  ``z~_j = -log(e_j exp(-theta_j) + exp(-z~_k))`` with ``e = -log v`` (the maximum of
  independent Gumbels is Gumbel(logsumexp theta), independent of the argmax; the others are
  Gumbels truncated below it).

Reference: Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein (2017), "REBAR: Low-variance,
unbiased gradient estimates for discrete latent variable models", NeurIPS.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from fxgx.backends import get_backend
from fxgx.core.custom_gradient import custom_gradient
from fxgx.core.random import open_uniform
from fxgx.core.seeds import canonical_seed
from fxgx.distributions import Bernoulli, OneHotCategorical
from fxgx.estimators.base import Estimator, evaluate, sub_seeds
from fxgx.estimators.hyperparameters import as_hyperparameter, finite, positive

# ------------------------------------------------------------------- noise and samplers


def _logit(backend, uniform):
    return backend.log(uniform) - backend.log1p(-uniform)


def _log_add_exp(backend, first, second):
    larger = backend.maximum(first, second)
    return larger + backend.log1p(backend.exp(-backend.abs(first - second)))


def conditional_logistic_from_uniform(backend, logits, samples, uniform):
    """``z~ ~ logits + Logistic(0, 1)`` conditioned on ``1[z~ > 0] == samples``.

    Differentiable w.r.t. ``logits`` with ``samples`` and ``uniform`` fixed.
    """
    noise = _logit(backend, uniform)
    above = backend.softplus(noise + backend.softplus(logits))
    below = -backend.softplus(noise + backend.softplus(-logits))
    return backend.where(samples > 0.5, above, below)


def conditional_gumbel_from_uniform(backend, logits, samples, uniform):
    """``z~ ~ logits + Gumbel(0, 1)`` (over the last axis) conditioned on
    ``one_hot(argmax z~) == samples``. Differentiable w.r.t. ``logits``."""
    log_exponential = backend.log(-backend.log(uniform))
    normalizer = backend.logsumexp(logits, axis=-1, keepdims=True)
    top = normalizer - log_exponential
    top_of_sample = backend.reduce_sum(samples * top, axis=-1, keepdims=True)
    others = -_log_add_exp(backend, log_exponential - logits, -top_of_sample)
    return backend.where(samples > 0.5, top, others)


def _sampler_arguments(logits, samples, seed, argument):
    backend = get_backend(logits, samples)
    logits = logits if backend.is_array(logits) else backend.convert(logits)
    dtype = backend.dtype_of(logits)
    if not backend.is_floating(dtype):
        raise TypeError(f"logits must be a floating tensor, got {backend.dtype_name(dtype)}.")
    samples = backend.cast(
        samples if backend.is_array(samples) else backend.convert(samples), dtype
    )
    logits_shape, samples_shape = backend.shape_of(logits), backend.shape_of(samples)
    rank = len(samples_shape)
    if len(logits_shape) > rank or tuple(samples_shape[rank - len(logits_shape):]) != tuple(
        logits_shape
    ):
        raise ValueError(
            f"samples has shape {tuple(samples_shape)}; it must end with the {argument} shape "
            f"{tuple(logits_shape)} (leading sample dimensions are allowed)."
        )
    return backend, logits, samples, canonical_seed(seed, backend)


def conditional_logistic_sample(logits, samples, *, seed):
    """Relaxed ``z~ = logits + logistic noise`` conditioned on the Bernoulli ``samples``.

    ``samples`` (0/1) has shape ``sample_shape + logits.shape``; the result has that shape
    and is differentiable w.r.t. ``logits``. ``sigmoid(z~ / temperature)`` is then a relaxed
    sample consistent with ``samples``. Reference: Tucker et al. (2017), appendix.

    Args:
        logits: a floating tensor.
        samples: 0/1 samples of shape ``sample_shape + logits.shape``.
        seed: a seed (an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key).

    Returns:
        ``z~``, of the samples' shape, with ``1[z~ > 0] == samples``.

    Raises:
        ValueError: the samples' shape does not end with the logits' shape.
    """
    backend, logits, samples, seed = _sampler_arguments(logits, samples, seed, "logits")
    uniform = open_uniform(backend, backend.shape_of(samples), seed, backend.dtype_of(logits))
    return conditional_logistic_from_uniform(backend, logits, samples, uniform)


def conditional_gumbel_sample(logits, samples, *, seed):
    """Gumbel-perturbed logits ``z~`` conditioned on ``one_hot(argmax z~) == samples``.

    ``logits`` has shape ``[..., K]``; ``samples`` (one-hot) has shape ``sample_shape +
    logits.shape``. Differentiable w.r.t. ``logits``. ``softmax(z~ / temperature)`` is then
    a relaxed sample whose argmax is ``samples``. References: Tucker et al. (2017), appendix;
    Maddison, Tarlow & Minka (2014), "A* sampling" (truncated Gumbels).

    Args:
        logits: a floating tensor ``[..., K]``.
        samples: one-hot samples of shape ``sample_shape + logits.shape``.
        seed: a seed (an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key).

    Returns:
        ``z~``, of the samples' shape, with ``one_hot(argmax z~) == samples``.

    Raises:
        ValueError: the logits have no class axis, or the samples' shape does not end with
            the logits' shape.
    """
    backend, logits, samples, seed = _sampler_arguments(logits, samples, seed, "logits")
    if len(backend.shape_of(logits)) == 0:
        raise ValueError("logits must have a class axis (shape [..., K]).")
    uniform = open_uniform(backend, backend.shape_of(samples), seed, backend.dtype_of(logits))
    return conditional_gumbel_from_uniform(backend, logits, samples, uniform)


class RelaxedLatents(NamedTuple):
    """``S`` discrete samples with their relaxed and conditional relaxed variables."""

    samples: object  # b = H(z), stopped, shape [S] + logits.shape
    perturbed: object  # z(theta, u), differentiable w.r.t. the logits
    conditional: object  # z~(theta, v; b), differentiable w.r.t. the logits


def relaxed_latents(distribution, backend, seed, num_samples) -> RelaxedLatents:
    """Draw ``b = H(z)`` and the conditional ``z~ | b`` for a Bernoulli or categorical."""
    logits = distribution.logits
    dtype = backend.dtype_of(logits)
    shape = (num_samples,) + tuple(backend.shape_of(logits))
    seeds = sub_seeds(seed, backend, "perturbation", "conditional")
    first = backend.stop_gradient(open_uniform(backend, shape, seeds["perturbation"], dtype))
    second = backend.stop_gradient(open_uniform(backend, shape, seeds["conditional"], dtype))
    if distribution.kind == "bernoulli":
        perturbed = logits + _logit(backend, first)
        samples = backend.cast(backend.greater(backend.stop_gradient(perturbed), 0.0), dtype)
        conditional = conditional_logistic_from_uniform(backend, logits, samples, second)
    else:
        perturbed = logits - backend.log(-backend.log(first))
        index = backend.argmax(backend.stop_gradient(perturbed), axis=-1)
        samples = backend.one_hot(index, backend.shape_of(logits)[-1], dtype)
        conditional = conditional_gumbel_from_uniform(backend, logits, samples, second)
    return RelaxedLatents(backend.stop_gradient(samples), perturbed, conditional)


def relax_sample(backend, kind, perturbed, temperature):
    """``sigmoid(z / temperature)`` (Bernoulli) or ``softmax(z / temperature)`` (categorical)."""
    if kind == "bernoulli":
        return backend.sigmoid(perturbed / temperature)
    return backend.softmax(perturbed / temperature, axis=-1)


# ----------------------------------------------------------------- the shared surrogate


def control_variate_surrogate(backend, distribution, values, latents, control_variate,
                              num_samples):
    """Surrogate with value ``mean_s f(b_s)`` and gradient
    ``mean_s [(f(b_s) - c(z~_s)) grad log q(b_s) + grad c(z_s) - grad c(z~_s)]``.

    ``values`` (``f(b)``, shape ``[S] + batch_shape``) is left differentiable so parameters
    that ``f`` closes over get ``grad f(b)``. ``gx`` is not stopped: it multiplies
    ``x - stop(x) = 0``, so its own derivative w.r.t. the logits drops out, while the
    estimate stays differentiable w.r.t. the control variate's parameters (for
    ``variance_loss``). ``control_variate=None`` is REINFORCE.
    """
    log_prob = distribution.log_prob(latents.samples)
    score = backend.exp(log_prob - backend.stop_gradient(log_prob))
    value = backend.reduce_mean(values, axis=0)
    if control_variate is None:
        weight = backend.stop_gradient(values) / num_samples
        return custom_gradient(value, weight, score, axis=0, fx_gx_manually_stopped=True)
    at_perturbed = control_variate(latents.perturbed)
    at_conditional = control_variate(latents.conditional)
    weight = (backend.stop_gradient(values) - at_conditional) / num_samples
    share = backend.ones_like(values) / num_samples
    return custom_gradient(
        value, (weight, share, -share), (score, at_perturbed, at_conditional), axis=0,
        fx_gx_manually_stopped=True,
    )


# --------------------------------------------------------------------- hyper-parameters


def check_control_values(backend, values, num_samples, batch_shape, argument):
    """Control-variate values must have shape ``[S] + batch_shape``."""
    expected = (num_samples,) + tuple(batch_shape)
    if tuple(backend.shape_of(values)) != expected:
        raise ValueError(
            f"{argument} returned shape {tuple(backend.shape_of(values))}; it must return one "
            f"value per sample and batch member, shape {expected}."
        )
    return values


class VarianceObjectiveMixin(Estimator):
    """``gradient_estimate``, ``variance_loss`` and the explicit-state form for estimators
    with trainable control variates. Since ``E[g] = grad E[f]`` does not depend on the
    control variate, ``d Var(g) / d phi = d E[|g|^2] / d phi``: minimising ``|g|^2``
    minimises the variance.

    The control variate's parameters (temperature, scale, a residual's parameters) are
    trainable, so they are not estimator state: they are given at construction or passed
    per call (``temperature=``, ``scale=``, and RELAX's ``control_variate_parameters=``)
    and trained by the user's optimizer. The state is ``()``; ``apply`` returns the loss
    that trains them as ``info["variance_loss"]``.
    """

    def with_overrides(self, temperature=None, scale=None):
        """A copy with ``temperature``/``scale`` replaced where given (checked)."""
        estimator = self
        if temperature is not None:
            estimator = dataclasses.replace(
                estimator, temperature=positive(temperature, "temperature"))
        if scale is not None:
            estimator = dataclasses.replace(estimator, scale=finite(scale, "scale"))
        return estimator

    def with_call_options(self, **options):
        """A copy with the per-call options applied (here ``temperature`` and ``scale``)."""
        return self.with_overrides(**options)

    def apply(self, state, function, distribution, *, seed, num_samples: int = 1, **options):
        """The explicit-state form: ``(surrogate, (), {"variance_loss": sum(g^2)})``.

        ``info["variance_loss"]`` equals ``variance_loss(...)`` with the same arguments (the
        same samples); it costs one more pass (the estimate ``g`` is differentiated w.r.t.
        the logits), which a plain call does not make. The keyword ``options`` are those of
        a plain call (``temperature``, ``scale``, and for RELAX
        ``control_variate_parameters``).
        """
        estimator = self.with_call_options(**options)
        return Estimator.apply(estimator, state, function, distribution, seed=seed,
                               num_samples=num_samples)

    def _apply(self, state, function, distribution, backend, seed, num_samples, with_info):
        surrogate = self._estimate(function, distribution, backend, seed, num_samples)
        info = {}
        if with_info:
            info["variance_loss"] = self.variance_loss(function, distribution, seed=seed,
                                                       num_samples=num_samples)
        return surrogate, () if state is None else state, info

    def gradient_estimate(self, function, distribution, *, seed, num_samples: int = 1,
                          **overrides):
        """The estimate ``g`` of ``grad E[f]`` w.r.t. the logits (the logits' shape).

        ``g`` is differentiable w.r.t. the control variate's parameters (temperature,
        scale, ``control_variate_parameters``); the keyword overrides are those of the call.
        """
        checked = self._check_distribution(distribution)
        if not isinstance(checked, (Bernoulli, OneHotCategorical)):
            raise TypeError(f"{self.name} needs a Bernoulli or OneHotCategorical distribution.")
        backend = checked.backend
        rebuild = Bernoulli if checked.kind == "bernoulli" else OneHotCategorical

        def surrogate(logits):
            return self(function, rebuild(logits, event_ndims=checked.event_ndims), seed=seed,
                        num_samples=num_samples, **overrides)

        _, (gradient,) = backend.value_and_gradient(surrogate, [checked.logits])
        return gradient

    def variance_loss(self, function, distribution, *, seed, num_samples: int = 1, **overrides):
        """``sum(g^2)`` over every logit: minimise it w.r.t. the control variate's parameters
        (only those: its gradient w.r.t. the model is not a useful training signal)."""
        gradient = self.gradient_estimate(function, distribution, seed=seed,
                                          num_samples=num_samples, **overrides)
        backend = get_backend(gradient)
        return backend.reduce_sum(backend.square(gradient))


# ----------------------------------------------------------------------------- REBAR


@dataclasses.dataclass(frozen=True)
class Rebar(VarianceObjectiveMixin, Estimator):
    """REBAR for Bernoulli and categorical latents. See ``rebar``.

    Attributes:
        temperature: the relaxation's temperature, a positive number or floating array.
        scale: the control variate's scale ``eta``.
    """

    temperature: object = 0.5
    scale: object = 1.0
    name = "rebar"
    supports = ("bernoulli", "categorical")

    def __call__(self, function, distribution, *, seed, num_samples: int = 1,
                 chunk_size=None, devices=None,
                 temperature=None, scale=None):
        """The surrogate of ``E_q[f]``; see ``rebar``.

        Args:
            function: ``f``, differentiable; maps samples ``[S] + shape`` to ``[S] + batch_shape``.
            distribution: a Bernoulli or one-hot categorical ``q``.
            seed: an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key.
            num_samples: ``S``.
            chunk_size: stream the estimate in chunks (see ``Estimator.__call__``).
            devices: spread the chunks over devices (see ``Estimator.__call__``).
            temperature: overrides the estimator's temperature for this call (pass trainable
                tensors here, e.g. ``exp(log_temperature)`` under ``jax.grad``).
            scale: overrides the estimator's scale for this call.

        Returns:
            The surrogate: value ``~ E_q[f]``, gradient ``~ grad E_q[f]``.
        """
        estimator = self.with_overrides(temperature, scale)
        return Estimator.__call__(estimator, function, distribution, seed=seed,
                                  num_samples=num_samples, chunk_size=chunk_size,
                                  devices=devices)

    def _estimate(self, function, distribution, backend, seed, num_samples):
        latents = relaxed_latents(distribution, backend, seed, num_samples)
        logits_shape = backend.shape_of(distribution.logits)
        dtype = backend.dtype_of(distribution.logits)
        temperature = as_hyperparameter(backend, self.temperature, dtype, logits_shape,
                                        "temperature")
        scale = as_hyperparameter(backend, self.scale, dtype, distribution.batch_shape, "scale",
                                  target="the batch")
        values = evaluate(function, latents.samples, distribution, backend, num_samples)

        def control_variate(perturbed):
            relaxed = relax_sample(backend, distribution.kind, perturbed, temperature)
            return scale * evaluate(function, relaxed, distribution, backend, num_samples)

        return control_variate_surrogate(backend, distribution, values, latents,
                                         control_variate, num_samples)


def rebar(temperature=0.5, scale=1.0) -> Rebar:
    """REBAR: ``[f(b) - eta f(s(z~))] grad log q(b) + eta grad f(s(z)) - eta grad f(s(z~))``.

    ``s`` is ``sigmoid(. / temperature)`` (Bernoulli) or ``softmax(. / temperature)``
    (categorical); ``z~`` is the relaxed sample conditioned on ``b``. Unbiased for every
    ``temperature > 0`` and ``scale``; train both with ``variance_loss`` (pass them at call
    time as tensors, or as ``tf.Variable`` here). ``f`` must be differentiable. Reference:
    Tucker et al. (2017), NeurIPS.

    Args:
        temperature: a positive number (or ``tf.Variable``).
        scale: a finite number (or ``tf.Variable``).

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient estimates
        ``grad E_q[f]`` without bias.

    Raises:
        TypeError: ``temperature`` or ``scale`` is neither a number nor a floating tensor.
        ValueError: ``temperature`` is not positive or ``scale`` not finite.
    """
    return Rebar(temperature=positive(temperature, "temperature"),
                 scale=finite(scale, "scale"))
