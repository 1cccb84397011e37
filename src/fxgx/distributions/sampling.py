"""The Bernoulli and categorical draws that fxgx's distributions and estimators share.

Every Bernoulli bit in fxgx is a comparison of uniform noise with a probability, or the sign
of logistic-perturbed logits; every categorical draw is the Gumbel-max trick. These
functions are those comparisons, written once in the array API standard.
"""

from __future__ import annotations

from fxgx.core.arrays import one_hot


def bits_below(xp, uniform, probability):
    """``1[u < p]`` in ``u``'s dtype: Bernoulli(``p``) bits from uniform draws ``u``.

    Args:
        xp: the namespace of the arrays.
        uniform: uniform draws in (0, 1).
        probability: ``p``, broadcasting against ``uniform``.

    Returns:
        0/1 floats of the broadcast shape.
    """
    return xp.astype(xp.less(uniform, probability), uniform.dtype)


def bits_above(xp, value, threshold):
    """``1[value > threshold]`` in ``value``'s dtype (``threshold`` a number or an array).

    Bernoulli(``sigmoid(l)``) bits are ``1[l + n > 0]`` for logistic noise ``n`` and
    ``1[u > sigmoid(-l)]`` for uniform ``u``.

    Args:
        xp: the namespace of the arrays.
        value: the perturbed logits, or uniform draws.
        threshold: 0, or ``sigmoid(-l)``.

    Returns:
        0/1 floats of the broadcast shape.
    """
    return xp.astype(xp.greater(value, threshold), value.dtype)


def gumbel_max(xp, perturbed):
    """``one_hot(argmax(perturbed))`` over the last axis, in ``perturbed``'s dtype: a
    categorical draw when ``perturbed`` is Gumbel-perturbed logits (the Gumbel-max trick).

    Args:
        xp: the namespace of ``perturbed``.
        perturbed: ``[..., K]`` perturbed logits.

    Returns:
        One-hot floats of ``perturbed``'s shape.
    """
    return one_hot(xp, xp.argmax(perturbed, axis=-1), perturbed.shape[-1], perturbed.dtype)
