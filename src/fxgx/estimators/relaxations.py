"""Continuous relaxations of Bernoulli and categorical samples, and the conditional ones.

A Bernoulli sample is the threshold of a logistic variable, ``b = H(z)`` with
``z = theta + log u - log(1 - u)``; a categorical sample is the argmax of Gumbel-perturbed
logits, ``b = one_hot(argmax z)`` with ``z = theta - log(-log u)``. Relaxing ``H`` gives the
binary Concrete ``sigmoid(z / lambda)`` and the Gumbel-softmax ``softmax(z / lambda)``
(Maddison, Mnih & Teh, 2017; Jang, Gu & Poole, 2017). Conditioning ``z`` on ``b`` gives the
samplers REBAR and RELAX need (Tucker et al., 2017):

- logistic, given ``b``: ``z~ = softplus(logit v + softplus theta)`` if ``b = 1`` and
  ``z~ = -softplus(logit v + softplus(-theta))`` if ``b = 0`` (the inverse CDF of ``z``
  truncated to ``z > 0`` or ``z <= 0``, written without cancellation);
- Gumbel, given ``b = k``: ``z~_k = logsumexp(theta) - log e_k`` and, for ``j != k``,
  ``z~_j = -log(e_j exp(-theta_j) + exp(-z~_k))`` with ``e = -log v`` (the maximum of
  independent Gumbels is Gumbel(logsumexp theta), independent of the argmax; the others are
  Gumbels truncated below it; Maddison, Tarlow & Minka, 2014).

``control_variate_surrogate`` is the surrogate of REBAR and RELAX built on these.

Numerics: uniform draws lie strictly inside (0, 1) (the draw grid shifted by half a step),
so the noise is finite; relaxed samples are computed from log-probabilities and perturbed
logits with ``softmax``/``sigmoid``, which never overflow.
"""

from __future__ import annotations

from typing import NamedTuple

from fxgx.backends import get_framework
from fxgx.core.arrays import dtype_name, shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.core.random import gumbel_noise, logistic_noise, open_uniform
from fxgx.core.seeds import canonical_seed
from fxgx.distributions.sampling import bits_above, gumbel_max
from fxgx.estimators.hyperparameters import as_dtype_of
from fxgx.estimators.sampling import sub_seeds

# ------------------------------------------------------------------- relaxed samples


def sigmoid_from_log(framework, value):
    """``sigmoid(value)`` as ``exp(log_sigmoid(value))``.

    Same value, but its derivative is ``sigmoid(value) * sigmoid(-value)``, accurate to a few
    ulps relative for every input; the derivative of ``sigmoid`` is ``y (1 - y)``, whose
    ``1 - y`` loses all relative precision as ``y`` nears 1 (and is 0 once ``y`` rounds to 1).
    """
    return framework.xp.exp(framework.log_sigmoid(value))


def relaxed_sample(framework, kind, logits, temperature, seed, hard, sample_shape=()):
    """Binary Concrete (``kind == "bernoulli"``) or Gumbel-softmax (``"categorical"``) draws
    of shape ``sample_shape + logits.shape``; ``hard`` gives the straight-through form: the
    exact sample ``1[logits + n > 0]`` or ``one_hot(argmax(log_softmax(logits) + g))`` with the
    relaxed sample's gradient."""
    xp = framework.xp
    dtype = logits.dtype
    shape = tuple(sample_shape) + shape_of(logits)
    temperature = as_dtype_of(framework, temperature, dtype)
    if kind == "bernoulli":
        perturbed = logits + logistic_noise(framework, shape, seed, dtype)
        relaxed = sigmoid_from_log(framework, perturbed / temperature)
        if not hard:
            return relaxed
        bits = bits_above(xp, perturbed, xp.zeros_like(perturbed))
        return with_gradient(framework, bits, xp.ones_like(relaxed), relaxed)
    if kind == "categorical":
        perturbed = framework.log_softmax(logits) + gumbel_noise(framework, shape, seed, dtype)
        relaxed = framework.softmax(perturbed / temperature)
        if not hard:
            return relaxed
        return with_gradient(framework, gumbel_max(xp, perturbed), xp.ones_like(relaxed),
                             relaxed)
    raise TypeError(f"kind={kind!r}: Gumbel relaxations exist for bernoulli and categorical.")


def relax_sample(framework, kind, perturbed, temperature):
    """``sigmoid(z / temperature)`` (Bernoulli) or ``softmax(z / temperature)`` (categorical)."""
    if kind == "bernoulli":
        return framework.sigmoid(perturbed / temperature)
    return framework.softmax(perturbed / temperature, axis=-1)


# --------------------------------------------------------------- conditional samples


def _logit(xp, uniform):
    return xp.log(uniform) - xp.log1p(-uniform)


def _log_add_exp(xp, first, second):
    larger = xp.maximum(first, second)
    return larger + xp.log1p(xp.exp(-xp.abs(first - second)))


def conditional_logistic_from_uniform(framework, logits, samples, uniform):
    """``z~ ~ logits + Logistic(0, 1)`` conditioned on ``1[z~ > 0] == samples``.

    Differentiable w.r.t. ``logits`` with ``samples`` and ``uniform`` fixed.
    """
    xp = framework.xp
    noise = _logit(xp, uniform)
    above = framework.softplus(noise + framework.softplus(logits))
    below = -framework.softplus(noise + framework.softplus(-logits))
    return xp.where(samples > 0.5, above, below)


def conditional_gumbel_from_uniform(framework, logits, samples, uniform):
    """``z~ ~ logits + Gumbel(0, 1)`` (over the last axis) conditioned on
    ``one_hot(argmax z~) == samples``. Differentiable w.r.t. ``logits``."""
    xp = framework.xp
    log_exponential = xp.log(-xp.log(uniform))
    normalizer = framework.logsumexp(logits, axis=-1, keepdims=True)
    top = normalizer - log_exponential
    top_of_sample = xp.sum(samples * top, axis=-1, keepdims=True)
    others = -_log_add_exp(xp, log_exponential - logits, -top_of_sample)
    return xp.where(samples > 0.5, top, others)


def _sampler_arguments(logits, samples, seed, argument):
    framework = get_framework(logits, samples)
    xp = framework.xp
    logits = logits if framework.is_array(logits) else xp.asarray(logits)
    dtype = logits.dtype
    if not xp.isdtype(dtype, "real floating"):
        raise TypeError(f"logits must be a floating tensor, got {dtype_name(dtype)}.")
    samples = xp.astype(samples if framework.is_array(samples) else xp.asarray(samples), dtype)
    logits_shape, samples_shape = shape_of(logits), shape_of(samples)
    rank = len(samples_shape)
    if len(logits_shape) > rank or samples_shape[rank - len(logits_shape):] != logits_shape:
        raise ValueError(
            f"samples has shape {samples_shape}; it must end with the {argument} shape "
            f"{logits_shape} (leading sample dimensions are allowed)."
        )
    return framework, logits, samples, canonical_seed(seed, framework)


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
    framework, logits, samples, seed = _sampler_arguments(logits, samples, seed, "logits")
    uniform = open_uniform(framework, shape_of(samples), seed, logits.dtype)
    return conditional_logistic_from_uniform(framework, logits, samples, uniform)


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
    framework, logits, samples, seed = _sampler_arguments(logits, samples, seed, "logits")
    if len(shape_of(logits)) == 0:
        raise ValueError("logits must have a class axis (shape [..., K]).")
    uniform = open_uniform(framework, shape_of(samples), seed, logits.dtype)
    return conditional_gumbel_from_uniform(framework, logits, samples, uniform)


class RelaxedLatents(NamedTuple):
    """``S`` discrete samples with their relaxed and conditional relaxed variables."""

    samples: object  # b = H(z), stopped, shape [S] + logits.shape
    perturbed: object  # z(theta, u), differentiable w.r.t. the logits
    conditional: object  # z~(theta, v; b), differentiable w.r.t. the logits


def relaxed_latents(framework, distribution, seed, num_samples) -> RelaxedLatents:
    """Draw ``b = H(z)`` and the conditional ``z~ | b`` for a Bernoulli or categorical."""
    xp = framework.xp
    logits = distribution.logits
    dtype = logits.dtype
    shape = (num_samples,) + shape_of(logits)
    seeds = sub_seeds(framework, seed, "perturbation", "conditional")
    first = framework.stop_gradient(open_uniform(framework, shape, seeds["perturbation"], dtype))
    second = framework.stop_gradient(open_uniform(framework, shape, seeds["conditional"], dtype))
    if distribution.kind == "bernoulli":
        perturbed = logits + _logit(xp, first)
        samples = bits_above(xp, framework.stop_gradient(perturbed), 0.0)
        conditional = conditional_logistic_from_uniform(framework, logits, samples, second)
    else:
        perturbed = logits - xp.log(-xp.log(first))
        samples = gumbel_max(xp, framework.stop_gradient(perturbed))
        conditional = conditional_gumbel_from_uniform(framework, logits, samples, second)
    return RelaxedLatents(framework.stop_gradient(samples), perturbed, conditional)


# ----------------------------------------------------------------- REBAR's surrogate


def control_variate_surrogate(framework, distribution, values, latents, control_variate,
                              num_samples):
    """Surrogate with value ``mean_s f(b_s)`` and gradient
    ``mean_s [(f(b_s) - c(z~_s)) grad log q(b_s) + grad c(z_s) - grad c(z~_s)]``.

    ``values`` (``f(b)``, shape ``[S] + batch_shape``) is left differentiable so parameters
    that ``f`` closes over get ``grad f(b)``. ``gx`` is not stopped: it multiplies
    ``x - stop(x) = 0``, so its own derivative w.r.t. the logits drops out, while the
    estimate stays differentiable w.r.t. the control variate's parameters (for
    ``variance_loss``). ``control_variate=None`` is REINFORCE.
    """
    xp = framework.xp
    log_prob = distribution.log_prob(latents.samples)
    score = xp.exp(log_prob - framework.stop_gradient(log_prob))
    value = xp.mean(values, axis=0)
    if control_variate is None:
        weight = framework.stop_gradient(values) / num_samples
        return with_gradient(framework, value, weight, score, axis=0,
                             fx_gx_manually_stopped=True)
    at_perturbed = control_variate(latents.perturbed)
    at_conditional = control_variate(latents.conditional)
    weight = (framework.stop_gradient(values) - at_conditional) / num_samples
    share = xp.ones_like(values) / num_samples
    return with_gradient(
        framework, value, (weight, share, -share), (score, at_perturbed, at_conditional),
        axis=0, fx_gx_manually_stopped=True,
    )
