"""Checks for estimators' hyper-parameters (temperatures, slopes, scales).

A hyper-parameter is a Python number or a floating array of the model's framework: a
``tf.Variable`` being trained, a temperature annealed inside ``tf.function``, a value traced
by ``jax.jit``. Numbers are checked at once; arrays whose values are known (eager tensors,
concrete JAX arrays) are checked too, and traced or symbolic ones, whose values exist only
when the computation runs, are accepted as they are.
"""

from __future__ import annotations

import numbers

import numpy as np

from fxgx.backends import find_framework
from fxgx.core.arrays import shape_of


def _checked(value, argument, condition, requirement):
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        raise TypeError(f"{argument} must be {requirement}, got {value!r}.")
    if isinstance(value, numbers.Real):
        if not condition(np.asarray(float(value))):
            raise ValueError(f"{argument}={value!r} must be {requirement}.")
        return float(value)
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        raise TypeError(
            f"{argument} must be {requirement}: a number or a floating tensor (tf.Variable, "
            f"jax.Array), got {type(value).__name__}."
        )
    if not np.issubdtype(np.dtype(getattr(dtype, "as_numpy_dtype", dtype)), np.floating):
        raise TypeError(f"{argument} has dtype {dtype}; pass a floating tensor.")
    framework = find_framework(value)
    known = np.asarray(value) if framework is None else framework.concrete_value(value)
    if known is not None and (known.size == 0 or not condition(known)):
        raise ValueError(f"{argument}={known!r} must be {requirement}.")
    return value


def positive(value, argument: str):
    """A finite value > 0 (every element, for an array); returns a float or the array."""
    return _checked(value, argument, lambda known: bool(np.all(np.isfinite(known) & (known > 0))),
                    "positive and finite (> 0)")


def finite(value, argument: str):
    """A finite value (every element, for an array); returns a float or the array."""
    return _checked(value, argument, lambda known: bool(np.all(np.isfinite(known))), "finite")


def positive_int(value, argument: str) -> int:
    """A Python int >= 1 (it sets array shapes, so it cannot be a tensor)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{argument} must be a Python int (it fixes array shapes), got {value!r}.")
    if value < 1:
        raise ValueError(f"{argument}={value} must be at least 1.")
    return int(value)


def unchecked(value, argument: str):
    """Any value, unchanged: the parameters of a user's control variate are whatever it takes.

    Args:
        value: the value.
        argument: its name (unused).

    Returns:
        ``value``.
    """
    del argument
    return value


def as_hyperparameter(framework, value, dtype, target_shape, argument, target="the logits'"):
    """``value`` as a ``dtype`` array of ``framework`` that broadcasts to ``target_shape``.

    Args:
        framework: the framework of the logits.
        value: a number or an array.
        dtype: the logits' dtype.
        target_shape: the shape ``value`` must broadcast to.
        argument: the name the error gives ``value``.
        target: what ``target_shape`` is, in words.

    Returns:
        The array.

    Raises:
        TypeError: an array of another framework.
        ValueError: a shape that does not broadcast.
    """
    xp = framework.xp
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return xp.asarray(float(value), dtype=dtype)
    other = find_framework(value)
    if other is not None and other.name != framework.name:
        raise TypeError(
            f"{argument} is a {other.name} array but the logits are {framework.name} arrays; "
            "pass a number or an array of the same framework."
        )
    if not framework.is_array(value):
        value = xp.asarray(np.asarray(value))
    shape = shape_of(value)
    trailing = tuple(target_shape[len(target_shape) - len(shape):]) if shape else ()
    if len(shape) > len(target_shape) or any(
        size not in (1, other_size) for size, other_size in zip(shape, trailing, strict=True)
    ):
        raise ValueError(
            f"{argument} has shape {shape}; it must be a scalar or broadcast to {target} "
            f"shape {tuple(target_shape)}."
        )
    if value.dtype != dtype:
        value = xp.astype(value, dtype)
    return value


def as_dtype_of(framework, value, dtype):
    """A Python number or an array as a ``dtype`` array of ``framework``.

    Args:
        framework: the framework.
        value: a number or an array.
        dtype: the dtype wanted.

    Returns:
        The array.
    """
    xp = framework.xp
    if framework.is_array(value):
        return value if value.dtype == dtype else xp.astype(value, dtype)
    if isinstance(value, numbers.Real):
        return xp.asarray(float(value), dtype=dtype)
    return xp.astype(xp.asarray(np.asarray(value)), dtype)
