"""Gumbel-softmax (Concrete) relaxations and their straight-through ("hard") forms.

One-hot categorical with ``K`` classes (Jang, Gu & Poole, 2017; Maddison, Mnih & Teh, 2017):
with Gumbel noise ``g_k = -log(-log u_k)``,

    y = softmax((log_softmax(logits) + g) / temperature),
    hard = one_hot(argmax(log_softmax(logits) + g)).

Bernoulli (the binary Concrete, or relaxed Bernoulli): with logistic noise
``n = log u - log(1 - u)``,

    y = sigmoid((logits + n) / temperature),    hard = 1[logits + n > 0].

``hard`` is an exact sample of the distribution (the Gumbel-max trick) and ``y`` tends to
``hard`` as the temperature tends to 0. The relaxed estimator feeds ``y`` to ``f``; the hard
(straight-through Gumbel) estimator feeds ``custom_gradient(hard, 1, y)``: the value of the
hard sample with the gradient of the relaxed one. Both are biased for ``grad E[f(z)]``.

Numerics: uniform draws lie strictly inside (0, 1) (the draw grid shifted by half a step),
so the noise is finite; everything is computed from log-probabilities and perturbed logits
with ``softmax``/``sigmoid``, which never overflow, so temperatures of 0.01 with logits of
+-50 give finite values and gradients. The samplers are in ``fxgx.estimators.relaxations``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from fxgx.backends import get_framework
from fxgx.core.arrays import shape_of
from fxgx.core.seeds import canonical_seed
from fxgx.estimators.base import Estimator, call_option
from fxgx.estimators.hyperparameters import as_hyperparameter, positive
from fxgx.estimators.relaxations import relaxed_sample
from fxgx.estimators.sampling import evaluate, floating_logits, sub_seeds

# -------------------------------------------------------------------------- samples


def _sample(kind, logits, temperature, seed, hard):
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be True or False, got {hard!r}.")
    positive(temperature, "temperature")
    framework = get_framework(logits, temperature)
    logits = floating_logits(framework, logits)
    if kind == "categorical" and len(shape_of(logits)) == 0:
        raise ValueError("logits need a class axis (shape [..., K]) for gumbel_softmax_sample.")
    noise_seed = sub_seeds(framework, canonical_seed(seed, framework), "noise")["noise"]
    return relaxed_sample(framework, kind, logits, temperature, noise_seed, hard)


def gumbel_softmax_sample(logits, *, temperature, seed, hard: bool = False):
    """A Gumbel-softmax (Concrete) sample over the last axis of ``logits``.

    ``y = softmax((log_softmax(logits) + g) / temperature)`` with Gumbel noise ``g``; with
    ``hard=True`` the value is ``one_hot(argmax(log_softmax(logits) + g))`` (an exact
    categorical sample) and the gradient is that of ``y`` (straight-through Gumbel).
    ``temperature`` is a positive number or tensor (annealing schedules may pass a tensor).
    Reference: Jang, Gu & Poole (2017); Maddison, Mnih & Teh (2017).

    Args:
        logits: a floating tensor ``[..., K]``.
        temperature: a positive number or floating tensor.
        seed: a seed (an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key).
        hard: return the one-hot sample with the relaxed sample's gradient.

    Returns:
        The sample, of the logits' shape and dtype.

    Raises:
        TypeError: the logits are not floating point or ``hard`` is not a bool.
    """
    return _sample("categorical", logits, temperature, seed, hard)


def binary_concrete_sample(logits, *, temperature, seed, hard: bool = False):
    """A binary Concrete (relaxed Bernoulli) sample, elementwise in ``logits``.

    ``y = sigmoid((logits + n) / temperature)`` with logistic noise ``n``; with ``hard=True``
    the value is ``1[logits + n > 0]`` (an exact Bernoulli(sigmoid(logits)) sample) and the
    gradient is that of ``y``. Reference: Maddison, Mnih & Teh (2017), appendix B.

    Args:
        logits: a floating tensor.
        temperature: a positive number or floating tensor.
        seed: a seed (an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key).
        hard: return the 0/1 sample with the relaxed sample's gradient.

    Returns:
        The sample, of the logits' shape and dtype.

    Raises:
        TypeError: the logits are not floating point or ``hard`` is not a bool.
    """
    return _sample("bernoulli", logits, temperature, seed, hard)


# ------------------------------------------------------------------------ estimators


@dataclasses.dataclass(frozen=True)
class GumbelSoftmax(Estimator, card="gumbel_softmax"):
    """``mean_s f(y_s)`` with ``y_s`` the relaxed sample. See ``gumbel_softmax``.

    Attributes:
        temperature: a positive number or a floating array that broadcasts to the logits.
    """

    #: A positive number, or a floating array (a trained or annealed temperature, traced
    #: under ``jax.jit`` or ``tf.function``) that broadcasts to the logits' shape.
    temperature: object = call_option(0.5, positive)
    #: Whether ``f`` sees the hard sample (straight-through) or the relaxed one.
    hard: ClassVar[bool] = False

    def _estimate(self, framework, function, distribution, seed, num_samples):
        noise_seed = sub_seeds(framework, seed, "noise")["noise"]
        logits = distribution.logits
        temperature = as_hyperparameter(framework, self.temperature, logits.dtype,
                                        shape_of(logits), "temperature")
        samples = relaxed_sample(
            framework, distribution.kind, logits, temperature, noise_seed, self.hard,
            (num_samples,),
        )
        values = evaluate(framework, function, samples, distribution, num_samples)
        return framework.xp.mean(values, axis=0)


@dataclasses.dataclass(frozen=True)
class GumbelSoftmaxHard(GumbelSoftmax, card="gumbel_softmax_hard"):
    """``mean_s f(h_s)``, ``h_s`` the hard sample with the relaxed gradient.

    Attributes:
        temperature: a positive number or a floating array that broadcasts to the logits.
    """

    hard = True


def gumbel_softmax(temperature=0.5, hard: bool = False) -> GumbelSoftmax:
    """The Gumbel-softmax / binary Concrete pathwise estimator (biased).

    ``f`` is differentiated at a relaxed sample ``y`` (``hard=False``: the surrogate's value
    estimates ``E[f(y)]``) or at the hard sample with ``y``'s gradient (``hard=True``, the
    straight-through Gumbel estimator: the value estimates ``E[f(z)]`` without bias). Bernoulli
    distributions use the binary Concrete, one-hot categoricals the Gumbel-softmax. One
    evaluation of ``f`` (and of its gradient) per sample. Lower temperatures lower the bias
    and raise the variance. ``temperature`` may be a floating array (annealed or traced
    under ``jax.jit``/``tf.function``) that broadcasts to the logits' shape.
    References: Jang, Gu & Poole (2017), "Categorical reparameterization with
    Gumbel-softmax"; Maddison, Mnih & Teh (2017), "The Concrete distribution", ICLR.

    Args:
        temperature: a positive number or floating array.
        hard: evaluate ``f`` at the hard sample (straight-through Gumbel).

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E[f(y)]`` (``E[f(z)]`` when ``hard``)
        and whose gradient is a biased estimate of ``grad E[f(z)]``.

    Raises:
        TypeError: ``hard`` is not a bool, or ``temperature`` neither a number nor a
            floating tensor.
        ValueError: ``temperature`` is not positive.
    """
    temperature = positive(temperature, "temperature")
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be True or False, got {hard!r}.")
    return GumbelSoftmaxHard(temperature) if hard else GumbelSoftmax(temperature)


def gumbel_softmax_hard(temperature=0.5) -> GumbelSoftmaxHard:
    """``gumbel_softmax(temperature, hard=True)``: the straight-through Gumbel estimator.

    Args:
        temperature: a positive number or floating array.

    Returns:
        The estimator (see ``gumbel_softmax``).
    """
    return GumbelSoftmaxHard(positive(temperature, "temperature"))
