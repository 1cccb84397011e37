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
The relaxations and the conditional samplers are in ``fxgx.estimators.relaxations``.

Reference: Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein (2017), "REBAR: Low-variance,
unbiased gradient estimates for discrete latent variable models", NeurIPS.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.arrays import shape_of
from fxgx.estimators.base import Estimator, call_option
from fxgx.estimators.hyperparameters import as_hyperparameter, finite, positive
from fxgx.estimators.relaxations import control_variate_surrogate, relax_sample, relaxed_latents
from fxgx.estimators.sampling import evaluate
from fxgx.estimators.variance_objective import VarianceObjective


@dataclasses.dataclass(frozen=True)
class Rebar(VarianceObjective, Estimator, card="rebar"):
    """REBAR for Bernoulli and categorical latents. See ``rebar``.

    Per-call options: ``temperature`` and ``scale`` (pass trainable tensors at call time,
    e.g. ``exp(log_temperature)`` under ``jax.grad``).

    Attributes:
        temperature: the relaxation's temperature, a positive number or floating array.
        scale: the control variate's scale ``eta``.
    """

    temperature: object = call_option(0.5, positive)
    scale: object = call_option(1.0, finite)

    def _estimate(self, framework, function, distribution, seed, num_samples):
        latents = relaxed_latents(framework, distribution, seed, num_samples)
        logits_shape = shape_of(distribution.logits)
        dtype = distribution.logits.dtype
        temperature = as_hyperparameter(framework, self.temperature, dtype, logits_shape,
                                        "temperature")
        scale = as_hyperparameter(framework, self.scale, dtype, distribution.batch_shape,
                                  "scale", target="the batch")
        values = evaluate(framework, function, latents.samples, distribution, num_samples)

        def control_variate(perturbed):
            relaxed = relax_sample(framework, distribution.kind, perturbed, temperature)
            return scale * evaluate(framework, function, relaxed, distribution, num_samples)

        return control_variate_surrogate(framework, distribution, values, latents,
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
