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

Implementation: the straight-through sample is ``custom_gradient(b, 1, y_bar)`` with ``y_bar``
the average of the ``M`` relaxed samples (the noise is stopped), so ``f`` is evaluated once,
at ``b``, and autodiff gives ``g_GR``. One evaluation of ``f`` (and of its gradient) per sample.

Reference: Paulus, Maddison & Krause (2021), "Rao-Blackwellizing the straight-through
Gumbel-softmax gradient estimator", ICLR.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.custom_gradient import custom_gradient
from fxgx.estimators.base import Estimator, evaluate, sub_seeds
from fxgx.estimators.hyperparameters import as_hyperparameter, positive, positive_int
from fxgx.estimators.rebar import (
    conditional_gumbel_from_uniform,
    conditional_logistic_from_uniform,
    open_uniform,
    relax_sample,
)


@dataclasses.dataclass(frozen=True)
class GumbelRao(Estimator):
    """Gumbel-Rao (Rao-Blackwellised straight-through Gumbel-softmax). See ``gumbel_rao``.

    Attributes:
        temperature: a positive number or a floating array.
        num_conditional_samples: Gumbel draws per hard sample.
    """

    temperature: object = 0.5
    num_conditional_samples: int = 10
    name = "gumbel_rao"
    supports = ("bernoulli", "categorical")
    unbiased = False

    def _estimate(self, function, distribution, backend, seed, num_samples):
        logits = distribution.logits
        dtype = backend.dtype_of(logits)
        stopped_logits = backend.stop_gradient(logits)
        shape = (num_samples,) + tuple(backend.shape_of(logits))
        seeds = sub_seeds(seed, backend, "perturbation", "conditional")
        first = open_uniform(backend, shape, seeds["perturbation"], dtype)
        second = open_uniform(
            backend, (self.num_conditional_samples,) + shape, seeds["conditional"], dtype
        )
        if distribution.kind == "bernoulli":
            perturbed = stopped_logits + backend.log(first) - backend.log1p(-first)
            samples = backend.cast(backend.greater(perturbed, 0.0), dtype)
            conditional = conditional_logistic_from_uniform(
                backend, stopped_logits, samples, second
            )
        else:
            perturbed = stopped_logits - backend.log(-backend.log(first))
            index = backend.argmax(perturbed, axis=-1)
            samples = backend.one_hot(index, backend.shape_of(logits)[-1], dtype)
            conditional = conditional_gumbel_from_uniform(
                backend, stopped_logits, samples, second
            )
        samples = backend.stop_gradient(samples)
        # z~ = theta + G~ with the noise G~ = z~ - theta held fixed: only theta is differentiated.
        noisy_logits = backend.stop_gradient(conditional) + (logits - stopped_logits)
        temperature = as_hyperparameter(backend, self.temperature, dtype,
                                        backend.shape_of(logits), "temperature")
        relaxed = relax_sample(backend, distribution.kind, noisy_logits, temperature)
        average = backend.reduce_mean(relaxed, axis=0)
        straight_through = custom_gradient(samples, backend.ones_like(average), average)
        values = evaluate(function, straight_through, distribution, backend, num_samples)
        return backend.reduce_mean(values, axis=0)


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
