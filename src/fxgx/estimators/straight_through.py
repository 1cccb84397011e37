"""Straight-through estimators: the hard sample forward, a smooth surrogate's gradient back.

For a Bernoulli latent with logits ``l`` and a hard sample ``b``, the straight-through
sample is

    h = custom_gradient(fx=b, gx=1, x=sigmoid(slope * l)),

whose value is exactly ``b`` and whose derivative is ``dh/dl = slope * sigmoid'(slope * l)``.
For a one-hot categorical, ``fx = one_hot sample`` and ``x = softmax(slope * l)``. The
estimator feeds ``h`` to ``f`` and differentiates ``f`` along that path:

    g = 1/S sum_s (dh_s/dl)^T f'(h_s),

a biased estimate of ``grad E[f]`` (it is exact only when ``f`` is linear, and even then only
for ``slope = 1``). ``slope = 1`` is the estimator of Bengio, Leonard & Courville (2013);
larger slopes, raised during training, are the slope-annealing trick of Chung, Ahn & Bengio
(2017). The samples are exact draws of the distribution, so the surrogate's value is an
unbiased estimate of ``E[f]``.
"""

from __future__ import annotations

import dataclasses

from fxgx.backends import get_framework
from fxgx.core.arrays import shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.core.random import gumbel_noise, open_uniform
from fxgx.core.seeds import canonical_seed
from fxgx.distributions.sampling import bits_above, gumbel_max
from fxgx.estimators.base import Estimator, call_option
from fxgx.estimators.hyperparameters import as_dtype_of, positive
from fxgx.estimators.sampling import evaluate, floating_logits, sub_seeds


def two_sided_sigmoids(xp, value):
    """``(sigmoid(value), sigmoid(-value))`` from ``e = exp(-|value|)`` on each side of 0:
    ``1 / (1 + e)`` and ``e / (1 + e)``. Each side is smooth, so every derivative is the exact
    one of its side; the first, ``e / (1 + e)^2``, is accurate to a few ulps relative for
    every input (``y (1 - y)`` is 0 once ``y`` rounds to 1), as with
    ``exp(log_sigmoid(value))``, for one ``exp`` and one division instead of three
    transcendental functions. ``|value|`` is taken with ``where``, whose derivative is +-1
    (never the 0 of ``sign`` at 0), and ``exp(-|value|)`` never overflows."""
    negative = xp.less(value, xp.zeros_like(value))
    magnitude = xp.where(negative, -value, value)
    small = xp.exp(-magnitude)
    reciprocal = 1.0 / (1.0 + small)
    complement = small * reciprocal
    return (xp.where(negative, complement, reciprocal),
            xp.where(negative, reciprocal, complement))


def straight_through_samples(framework, kind, logits, seed, slope=1.0, sample_shape=()):
    """Straight-through samples of shape ``sample_shape + logits.shape``.

    Bernoulli: value ``1[logits + n > 0]`` (``n = log u - log(1 - u)`` logistic noise, so the
    bit is 1 with probability ``sigmoid(logits)``; computed as ``1[u > sigmoid(-logits)]``),
    gradient that of ``sigmoid(slope * logits)``.
    Categorical: value ``one_hot(argmax(log_softmax(logits) + g))`` (``g`` Gumbel noise),
    gradient that of ``softmax(slope * logits)``.
    """
    xp = framework.xp
    dtype = logits.dtype
    shape = tuple(sample_shape) + shape_of(logits)
    scaled = logits if isinstance(slope, float) and slope == 1.0 else (
        as_dtype_of(framework, slope, dtype) * logits
    )
    if kind == "bernoulli":
        # logits + log u - log(1 - u) > 0  <=>  u > sigmoid(-logits): the same bit as with
        # logistic noise, without its two logarithms per draw.
        surrogate, complement = two_sided_sigmoids(xp, scaled)
        if scaled is not logits:
            _, complement = two_sided_sigmoids(xp, logits)
        uniform = open_uniform(framework, shape, seed, dtype)
        hard = bits_above(xp, uniform, framework.stop_gradient(complement))
    elif kind == "categorical":
        perturbed = framework.log_softmax(logits) + gumbel_noise(framework, shape, seed, dtype)
        hard = gumbel_max(xp, perturbed)
        surrogate = framework.softmax(scaled)
    else:
        raise TypeError(f"kind={kind!r}: straight-through exists for bernoulli and categorical.")
    surrogate = xp.broadcast_to(surrogate, shape)
    return with_gradient(framework, hard, xp.ones_like(surrogate), surrogate)


def _block(kind, logits, seed, slope):
    positive(slope, "slope")
    framework = get_framework(logits, slope)
    logits = floating_logits(framework, logits)
    if kind == "categorical" and len(shape_of(logits)) == 0:
        raise ValueError("logits need a class axis (shape [..., K]) for a categorical sample.")
    noise_seed = sub_seeds(framework, canonical_seed(seed, framework), "noise")["noise"]
    if not framework.is_array(slope):
        slope = float(slope)
    return straight_through_samples(framework, kind, logits, noise_seed, slope)


def straight_through_bernoulli(logits, *, seed, slope=1.0):
    """A Bernoulli(sigmoid(logits)) sample ``b`` with the gradient of ``sigmoid(slope * logits)``.

    Value: exactly the 0/1 sample; ``d value / d logits = slope * sigmoid'(slope * logits)``.
    ``slope`` is a positive number or tensor (annealing schedules may pass a tensor).
    Reference: Bengio, Leonard & Courville (2013); Chung, Ahn & Bengio (2017).

    Args:
        logits: a floating tensor.
        seed: a seed (an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key).
        slope: a positive number or floating tensor.

    Returns:
        The 0/1 sample, of the logits' shape and dtype.
    """
    return _block("bernoulli", logits, seed, slope)


def straight_through_categorical(logits, *, seed, slope=1.0):
    """A one-hot categorical sample over the last axis with the gradient of
    ``softmax(slope * logits)``.

    Args:
        logits: a floating tensor ``[..., K]``.
        seed: a seed (an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key).
        slope: a positive number or floating tensor.

    Returns:
        Exactly the one-hot sample, of the logits' shape and dtype.
    """
    return _block("categorical", logits, seed, slope)


@dataclasses.dataclass(frozen=True)
class StraightThrough(Estimator, card="straight_through"):
    """``mean_s f(h_s)`` with ``h_s`` the straight-through sample. See ``straight_through``."""

    def _surrogate_slope(self):
        return 1.0

    def _estimate(self, framework, function, distribution, seed, num_samples):
        noise_seed = sub_seeds(framework, seed, "noise")["noise"]
        samples = straight_through_samples(
            framework, distribution.kind, distribution.logits, noise_seed,
            self._surrogate_slope(), (num_samples,),
        )
        values = evaluate(framework, function, samples, distribution, num_samples)
        return framework.xp.mean(values, axis=0)


@dataclasses.dataclass(frozen=True)
class StraightThroughSlope(StraightThrough, card="straight_through_slope"):
    """Straight-through with the surrogate ``sigmoid(slope * l)`` / ``softmax(slope * l)``.

    Attributes:
        slope: a positive number or a floating array.
    """

    #: A positive number, or a floating array (annealed, traced under ``jax.jit``); a
    #: per-call option too.
    slope: object = call_option(1.0, positive)

    def _surrogate_slope(self):
        return self.slope


def straight_through() -> StraightThrough:
    """The straight-through estimator: ``f'`` at the hard sample times ``dprobs/dlogits``.

    Bernoulli: ``g = f'(b) sigmoid'(l)``; one-hot categorical: ``g = J_softmax(l)^T f'(z)``.
    Biased (exact only for linear ``f``); one evaluation of ``f`` and its gradient per sample.
    Reference: Bengio, Leonard & Courville (2013), "Estimating or propagating gradients
    through stochastic neurons for conditional computation", arXiv:1308.3432.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` without bias and whose
        gradient is a biased estimate of ``grad E_q[f]``.
    """
    return StraightThrough()


def straight_through_slope(slope=1.0) -> StraightThroughSlope:
    """Straight-through with a slope: the gradient of ``sigmoid(slope * l)`` (Bernoulli) or
    ``softmax(slope * l)`` (categorical) replaces that of the probabilities.

    ``slope = 1`` is ``straight_through()``. Anneal by making a new estimator with a larger
    slope as training goes (e.g. ``min(5, 1 + 0.04 * epoch)``); the samples are unchanged.
    Reference: Chung, Ahn & Bengio (2017), "Hierarchical multiscale recurrent neural
    networks", ICLR (the slope-annealing trick).

    Args:
        slope: a positive number or floating array.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` without bias and whose
        gradient is a biased estimate of ``grad E_q[f]``.
    """
    return StraightThroughSlope(positive(slope, "slope"))
