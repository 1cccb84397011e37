"""ReinMax: a second-order straight-through estimator (Heun's method instead of Euler's).

Straight-through multiplies ``f'`` at the hard sample ``D`` by the softmax Jacobian at
``pi_0 = softmax(theta)``, a forward-Euler step along the segment between two one-hot
states. ReinMax replaces it with the trapezoidal (Heun) rule: with

    pi_1 = (D + softmax(theta / tau)) / 2,

the gradient w.r.t. the logits of a one-hot categorical is

    g = (2 J(pi_1) - J(pi_0) / 2)^T f'(D),     J(pi) = diag(pi) - pi pi^T,

(``J(pi_1)`` taken at the value ``pi_1`` with ``pi_1`` itself held fixed). For a Bernoulli
``b`` with ``p = sigmoid(theta)`` and ``q = (b + sigmoid(theta / tau)) / 2`` (the
two-class case with logits ``(0, theta)``) it is

    g = f'(b) (2 q (1 - q) - p (1 - p) / 2).

With ``tau = 1`` the two Jacobians' expectation over ``D`` is ``J(pi_0)``, so ReinMax is
exact for linear ``f`` like straight-through, and it is exact for quadratic ``f`` of one
Bernoulli bit as well (the trapezoidal rule integrates a quadratic exactly). It is biased in
general. The value is exactly ``f(D)``; one evaluation of ``f`` and of its gradient per
sample. Reference: Liu, Dong, Liu, Yu & Gao (2023), "Bridging discrete and
backpropagation: straight-through and beyond", NeurIPS.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fxgx.core.arrays import shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.core.random import gumbel_noise, logistic_noise
from fxgx.distributions.sampling import bits_above, gumbel_max
from fxgx.estimators.base import Estimator, call_option
from fxgx.estimators.hyperparameters import as_dtype_of, positive
from fxgx.estimators.sampling import evaluate, sub_seeds


def reinmax_samples(framework, kind, logits, seed, temperature: Any = 1.0, sample_shape=()):
    """ReinMax samples of shape ``sample_shape + logits.shape``: the exact hard draws, with
    the derivative ``2 J(pi_1) - J(pi_0) / 2`` w.r.t. the logits (Bernoulli: the scalar
    ``2 q (1 - q) - sigmoid'(logits) / 2``).

    Args:
        framework: the framework.
        kind: ``"bernoulli"`` or ``"categorical"``.
        logits: floating logits (``[..., K]`` for a categorical).
        seed: a native seed of ``framework``.
        temperature: ``tau``, a positive number or floating array.
        sample_shape: the leading shape of the draws.

    Returns:
        The hard samples (0/1 or one-hot) in the logits' dtype, carrying ReinMax's gradient.

    Raises:
        TypeError: ``kind`` is neither ``"bernoulli"`` nor ``"categorical"``.
    """
    xp = framework.xp
    stop = framework.stop_gradient
    dtype = logits.dtype
    shape = tuple(sample_shape) + shape_of(logits)
    tempered = logits if isinstance(temperature, float) and temperature == 1.0 else (
        logits / as_dtype_of(framework, temperature, dtype)
    )
    broadcast = xp.broadcast_to(logits, shape)
    # value 0, derivative the identity: the Jacobians below act on it linearly.
    direction = broadcast - stop(broadcast)
    if kind == "bernoulli":
        perturbed = stop(logits) + logistic_noise(framework, shape, seed, dtype)
        hard = stop(bits_above(xp, perturbed, xp.zeros_like(perturbed)))
        # q (1 - q) with q = (b + sigmoid(theta / tau)) / 2, without cancellation.
        midpoint = stop(
            (hard + framework.sigmoid(tempered)) * ((1.0 - hard) + framework.sigmoid(-tempered))
            / 4.0)
        surrogate = 2.0 * midpoint * direction - 0.5 * framework.sigmoid(logits)
    elif kind == "categorical":
        perturbed = stop(framework.log_softmax(logits)) + gumbel_noise(
            framework, shape, seed, dtype)
        hard = stop(gumbel_max(xp, perturbed))
        midpoint = stop(0.5 * (hard + framework.softmax(tempered)))
        # J(pi_1) direction = pi_1 * (direction - <pi_1, direction>).
        jacobian_product = midpoint * (
            direction - xp.sum(midpoint * direction, axis=-1, keepdims=True))
        surrogate = 2.0 * jacobian_product - 0.5 * framework.softmax(logits)
    else:
        raise TypeError(f"kind={kind!r}: ReinMax exists for bernoulli and categorical.")
    surrogate = xp.broadcast_to(surrogate, shape)
    return with_gradient(framework, hard, xp.ones_like(surrogate), surrogate)


@dataclasses.dataclass(frozen=True)
class ReinMax(Estimator, card="reinmax"):
    """``mean_s f(D_s)`` with ``D_s`` ReinMax samples. See ``reinmax``.

    Attributes:
        temperature: ``tau`` of ``pi_1 = (D + softmax(theta / tau)) / 2``.
    """

    #: A positive number, or a floating array (traced under ``jax.jit``); a per-call option.
    temperature: object = call_option(1.0, positive)

    def _estimate(self, framework, function, distribution, seed, num_samples):
        noise_seed = sub_seeds(framework, seed, "noise")["noise"]
        temperature: Any = self.temperature
        if not framework.is_array(temperature):
            temperature = float(temperature)
        samples = reinmax_samples(framework, distribution.kind, distribution.logits,
                                  noise_seed, temperature, (num_samples,))
        values = evaluate(framework, function, samples, distribution, num_samples)
        return framework.xp.mean(values, axis=0)


def reinmax(temperature=1.0) -> ReinMax:
    """ReinMax: ``g = (2 J(pi_1) - J(pi_0) / 2)^T f'(D)``, ``pi_1 = (D + softmax(theta /
    tau)) / 2``, ``pi_0 = softmax(theta)``, ``J(pi) = diag(pi) - pi pi^T``.

    Bernoulli: ``g = f'(b) (2 q (1 - q) - p (1 - p) / 2)`` with ``q = (b + sigmoid(theta /
    tau)) / 2``. Biased (second-order accurate where straight-through is first-order); one
    evaluation of ``f`` and its gradient per sample. Reference: Liu, Dong, Liu, Yu & Gao
    (2023), "Bridging discrete and backpropagation: straight-through and beyond", NeurIPS.

    Args:
        temperature: ``tau``, a positive number or floating array (default 1).

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` without bias and whose
        gradient is a biased estimate of ``grad E_q[f]``.
    """
    return ReinMax(positive(temperature, "temperature"))
