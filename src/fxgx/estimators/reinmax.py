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

from fxgx.core.custom_gradient import custom_gradient
from fxgx.core.random import gumbel_noise, logistic_noise
from fxgx.estimators.base import Estimator, evaluate, sub_seeds
from fxgx.estimators.gumbel import as_dtype_of
from fxgx.estimators.hyperparameters import positive


def reinmax_samples(backend, kind, logits, seed, temperature: Any = 1.0, sample_shape=()):
    """ReinMax samples of shape ``sample_shape + logits.shape``: the exact hard draws, with
    the derivative ``2 J(pi_1) - J(pi_0) / 2`` w.r.t. the logits (Bernoulli: the scalar
    ``2 q (1 - q) - sigmoid'(logits) / 2``).

    Args:
        backend: the backend module.
        kind: ``"bernoulli"`` or ``"categorical"``.
        logits: floating logits (``[..., K]`` for a categorical).
        seed: a native seed of ``backend``.
        temperature: ``tau``, a positive number or floating array.
        sample_shape: the leading shape of the draws.

    Returns:
        The hard samples (0/1 or one-hot) in the logits' dtype, carrying ReinMax's gradient.

    Raises:
        TypeError: ``kind`` is neither ``"bernoulli"`` nor ``"categorical"``.
    """
    dtype = backend.dtype_of(logits)
    shape = tuple(sample_shape) + tuple(backend.shape_of(logits))
    tempered = logits if isinstance(temperature, float) and temperature == 1.0 else (
        logits / as_dtype_of(backend, temperature, dtype)
    )
    broadcast = backend.broadcast_to(logits, shape)
    # value 0, derivative the identity: the Jacobians below act on it linearly.
    direction = broadcast - backend.stop_gradient(broadcast)
    if kind == "bernoulli":
        perturbed = backend.stop_gradient(logits) + logistic_noise(backend, shape, seed, dtype)
        hard = backend.cast(backend.greater(perturbed, backend.zeros_like(perturbed)), dtype)
        hard = backend.stop_gradient(hard)
        # q (1 - q) with q = (b + sigmoid(theta / tau)) / 2, without cancellation.
        midpoint = backend.stop_gradient(
            (hard + backend.sigmoid(tempered)) * ((1.0 - hard) + backend.sigmoid(-tempered))
            / 4.0)
        surrogate = 2.0 * midpoint * direction - 0.5 * backend.sigmoid(logits)
    elif kind == "categorical":
        perturbed = backend.stop_gradient(backend.log_softmax(logits)) + gumbel_noise(
            backend, shape, seed, dtype)
        hard = backend.one_hot(backend.argmax(perturbed, axis=-1), shape[-1], dtype)
        hard = backend.stop_gradient(hard)
        midpoint = backend.stop_gradient(0.5 * (hard + backend.softmax(tempered)))
        # J(pi_1) direction = pi_1 * (direction - <pi_1, direction>).
        jacobian_product = midpoint * (
            direction - backend.reduce_sum(midpoint * direction, axis=-1, keepdims=True))
        surrogate = 2.0 * jacobian_product - 0.5 * backend.softmax(logits)
    else:
        raise TypeError(f"kind={kind!r}: ReinMax exists for bernoulli and categorical.")
    surrogate = backend.broadcast_to(surrogate, shape)
    return custom_gradient(hard, backend.ones_like(surrogate), surrogate)


@dataclasses.dataclass(frozen=True)
class ReinMax(Estimator):
    """``mean_s f(D_s)`` with ``D_s`` ReinMax samples. See ``reinmax``.

    Attributes:
        temperature: ``tau`` of ``pi_1 = (D + softmax(theta / tau)) / 2``.
    """

    #: A positive number, or a floating array (traced under ``jax.jit``).
    temperature: object = 1.0
    name = "reinmax"
    supports = ("bernoulli", "categorical")
    unbiased = False

    def _estimate(self, function, distribution, backend, seed, num_samples):
        noise_seed = sub_seeds(seed, backend, "noise")["noise"]
        temperature: Any = self.temperature
        if not backend.is_array(temperature):
            temperature = float(temperature)
        samples = reinmax_samples(backend, distribution.kind, distribution.logits, noise_seed,
                                  temperature, (num_samples,))
        values = evaluate(function, samples, distribution, backend, num_samples)
        return backend.reduce_mean(values, axis=0)


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
