"""Gumbel-Rao: straight-through Gumbel-softmax, Rao-Blackwellised over the Gumbel noise.

Straight-through Gumbel-softmax (ST-GS) draws ``z = theta + G`` (``G`` Gumbel), uses the hard
sample ``b = one_hot(argmax z)`` in the forward pass and differentiates through
``y = softmax((theta + G) / tau)`` in the backward pass:

    g_ST = (d y / d theta)^T grad f(b),   d y / d theta taken at fixed G.

Gumbel-Rao replaces the Jacobian by its conditional expectation given ``b``, estimated with
``M`` conditional draws ``G~_m = z~_m - theta``, ``z~_m ~ p(z | b)``:

    g_GR = (1/M sum_m d softmax((theta + G~_m) / tau) / d theta)^T grad f(b).

``E[g_GR | b] = E[g_ST | b]``, so both have the same expectation (the same bias: neither is
unbiased for ``grad E[f]``), and ``Var(g_GR) <= Var(g_ST)``, with equality at ``M = 1``
(where the two estimators have the same distribution). Bernoulli latents use the two-class
form: ``y = sigmoid((theta + L) / tau)`` with logistic ``L``, conditioned on ``b = 1[z > 0]``.

Implementation: the perturbation ``theta + G`` that picked ``b`` is itself a draw of ``z``
given ``b``, so it is the first of the ``M`` draws and ``M - 1`` more are drawn (``M`` noise
draws per latent; the joint law of ``b`` and the draws is that of ``M`` fresh conditional
draws). The average Jacobian is applied in closed form: for ``y_m = softmax(z~_m / tau)``,
``J_m^T v = y_m * (v - sum(y_m v)) / tau`` (sigmoid: ``sigmoid'(z~_m / tau) v / tau``), so the
straight-through sample is ``custom_gradient(b, 1, l)`` with ``l`` linear in ``theta`` and
``1 / tau`` (built from the stopped ``y_m``) and of derivative ``(1/M) sum_m J_m``: no autodiff
through the ``M`` relaxed copies. ``f`` is evaluated once, at ``b`` (value and gradient).

Reference: Paulus, Maddison & Krause (2021), "Rao-Blackwellizing the straight-through
Gumbel-softmax gradient estimator", ICLR.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.arrays import shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.core.random import open_uniform
from fxgx.distributions.sampling import bits_above, gumbel_max
from fxgx.estimators.base import Estimator, call_option
from fxgx.estimators.hyperparameters import as_hyperparameter, positive, positive_int
from fxgx.estimators.sampling import evaluate, sub_seeds


@dataclasses.dataclass(frozen=True)
class GumbelRao(Estimator, card="gumbel_rao"):
    """Gumbel-Rao (Rao-Blackwellised straight-through Gumbel-softmax). See ``gumbel_rao``.

    Attributes:
        temperature: a positive number or a floating array.
        num_conditional_samples: Gumbel draws per hard sample.
    """

    temperature: object = call_option(0.5, positive)
    num_conditional_samples: int = 10

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        logits = distribution.logits
        dtype = logits.dtype
        stopped_logits = framework.stop_gradient(logits)
        shape = (num_samples,) + shape_of(logits)
        temperature = as_hyperparameter(framework, self.temperature, dtype, shape_of(logits),
                                        "temperature")
        stopped_temperature = framework.stop_gradient(temperature)
        seeds = sub_seeds(framework, seed, "perturbation", "conditional")
        first = open_uniform(framework, shape, seeds["perturbation"], dtype)
        # The perturbation that chose b is itself a draw of z given b: M - 1 more are drawn.
        extra = self.num_conditional_samples - 1
        second = (open_uniform(framework, (extra,) + shape, seeds["conditional"], dtype)
                  if extra else None)
        if distribution.kind == "bernoulli":
            samples, slope, offset = _bernoulli_moments(
                framework, stopped_logits, first, second, stopped_temperature)
            scale = 1.0 / self.num_conditional_samples
            # d/dtheta = mean_m w_m / tau and d/dtau = -mean_m w_m z~_m / tau^2, as autodiff
            # of mean_m sigmoid(z~_m / tau) with the noise fixed would give.
            linear = (scale * slope) * logits / stopped_temperature + (scale * offset) / temperature
        else:
            samples, linear = _categorical_linearisation(
                framework, logits, stopped_logits, first, second, temperature,
                stopped_temperature)
            linear = linear / self.num_conditional_samples
        straight_through = with_gradient(framework, samples, xp.ones_like(linear), linear)
        values = evaluate(framework, function, straight_through, distribution, num_samples)
        return xp.mean(values, axis=0)


def _sigmoid_slope(xp, magnitude, temperature):
    """``sigmoid'(z / tau) = sigmoid(a / tau) sigmoid(-a / tau)`` for ``a = |z|``, as
    ``e / (1 + e)^2`` with ``e = exp(-a / tau)`` in ``(0, 1]``: one exponential, and accurate
    where ``y (1 - y)`` would round ``1 - y`` away."""
    decay = xp.exp(-magnitude / temperature)
    return decay / xp.square(1.0 + decay)


def _bernoulli_moments(framework, logits, first, second, temperature):
    """The hard samples ``b`` and, over the ``M`` draws of ``z~ | b`` (the perturbation and
    the ``M - 1`` conditional draws from ``second``), ``sum_m w_m`` and ``sum_m w_m z~_m``
    with ``w_m = sigmoid'(z~_m / tau)``. Everything here is constant (stopped inputs).

    Given ``b``, ``|z~| = softplus(logit(v) + softplus(s theta))`` with ``s = 2 b - 1``
    (``z~ = s |z~|``); written as ``softplus(s theta) + log(v + (1 - v) sigmoid(-s theta))
    - log1p(-v)``, two logarithms per draw, finite for any finite ``theta``.
    """
    xp = framework.xp
    perturbed = logits + xp.log(first) - xp.log1p(-first)
    samples = bits_above(xp, perturbed, 0.0)
    sign = 2.0 * samples - 1.0
    magnitude = xp.abs(perturbed)
    weight = _sigmoid_slope(xp, magnitude, temperature)
    slope, offset = weight, weight * magnitude
    if second is not None:
        signed_logits = sign * logits
        shift = framework.softplus(signed_logits)
        below = xp.exp(-shift)  # sigmoid(-s theta)
        magnitude = (shift + xp.log(second + (1.0 - second) * below) - xp.log1p(-second))
        weight = _sigmoid_slope(xp, magnitude, temperature)
        slope = slope + xp.sum(weight, axis=0)
        offset = offset + xp.sum(weight * magnitude, axis=0)
    return samples, slope, sign * offset


def _softmax_linearisation(xp, relaxed, direction):
    """``sum_m J_m direction_m`` with ``J_m = diag(y_m) - y_m y_m^T`` the (symmetric)
    Jacobian of the softmax at ``y_m = relaxed[m]``: ``y * (d - sum(y * d))`` summed over
    the leading axis. ``relaxed`` is constant; linear in ``direction``."""
    product = relaxed * direction
    return xp.sum(product - relaxed * xp.sum(product, axis=-1, keepdims=True), axis=0)


def _draws_linearisation(framework, noisy, scaled_logits, temperature, stopped_temperature):
    """``sum_m J_m x_m`` for the draws ``noisy = z~`` ``[M', S, ..., K]``, with
    ``x_m = theta / stop(tau) + stop(z~_m) / tau``: the derivative of ``(theta + noise) / tau``
    is ``1 / tau`` w.r.t. ``theta`` and ``-z~ / tau^2`` w.r.t. ``tau``, and so is ``x_m``'s."""
    relaxed = framework.softmax(noisy / stopped_temperature, axis=-1)
    return _softmax_linearisation(framework.xp, relaxed, scaled_logits + noisy / temperature)


def _categorical_linearisation(framework, logits, stopped_logits, first, second, temperature,
                               stopped_temperature):
    """The one-hot samples ``b`` and a tensor whose derivative w.r.t. ``theta`` and ``tau`` is
    ``sum_m d softmax(z~_m / tau)`` with the noise ``z~_m - theta`` fixed (its value is not
    used). ``z~_1`` is the perturbation, ``z~_2..M`` conditional draws from ``second``.

    Given the class ``k``, with exponentials ``E = -log v`` and ``p = softmax(theta)``:
    ``z~_k = log sum exp(theta) - log E_k`` and ``z~_j = z~_k - log1p(E_j / (E_k p_j))``
    (truncated Gumbels, Maddison, Tarlow & Minka 2014): one logarithm, one ``log1p`` and one
    exponential (in the softmax) per draw and class.
    """
    xp = framework.xp
    perturbed = stopped_logits - xp.log(-xp.log(first))
    samples = gumbel_max(xp, perturbed)
    scaled_logits = logits / stopped_temperature
    linear = _draws_linearisation(framework, xp.expand_dims(perturbed, axis=0), scaled_logits,
                                  temperature, stopped_temperature)
    if second is not None:
        exponential = -xp.log(second)
        top_exponential = xp.sum(samples * exponential, axis=-1, keepdims=True)
        probabilities = framework.softmax(stopped_logits, axis=-1)
        gap = xp.where(samples > 0.5, xp.zeros_like(exponential),
                       xp.log1p(exponential / (top_exponential * probabilities)))
        top = (framework.logsumexp(stopped_logits, axis=-1, keepdims=True)
               - xp.log(top_exponential))
        linear = linear + _draws_linearisation(framework, top - gap, scaled_logits,
                                               temperature, stopped_temperature)
    return samples, linear


def gumbel_rao(temperature=0.5, num_conditional_samples: int = 10) -> GumbelRao:
    """Gumbel-Rao: ST-GS with the softmax Jacobian averaged over ``num_conditional_samples``
    Gumbel draws conditioned on the hard sample.

    Value ``f(b)`` at the hard sample; biased like ST-GS (same expectation), lower variance.
    Bernoulli and categorical latents; ``f`` must be differentiable. ``temperature`` may be a
    floating array (annealed, or traced under ``jax.jit``/``tf.function``). Reference:
    Paulus, Maddison & Krause (2021), ICLR.

    Args:
        temperature: a positive number or floating array.
        num_conditional_samples: a positive int.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` without bias and whose
        gradient is a biased estimate of ``grad E_q[f]``.

    Raises:
        TypeError: ``temperature`` is neither a number nor a floating tensor, or
            ``num_conditional_samples`` is not an int.
        ValueError: ``temperature`` or ``num_conditional_samples`` is not positive.
    """
    return GumbelRao(temperature=positive(temperature, "temperature"),
                     num_conditional_samples=positive_int(num_conditional_samples,
                                                          "num_conditional_samples"))
