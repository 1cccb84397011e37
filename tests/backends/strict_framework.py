"""A test-only fxgx framework whose ``xp`` is ``array_api_strict``.

``array_api_strict`` implements the array API standard and nothing more: a function, an
index or a dtype mix outside the standard raises. Running fxgx's array code on this framework
therefore checks that the code is written in the standard (tests/backends/
test_array_api_conformance.py).

The protocol's members are written in the standard too, except the random draws: seeds are
JAX keys and ``uniform``/``normal`` are JAX's threefry draws (``fxgx.backends.jax_backend``)
converted to ``array_api_strict`` arrays of the same dtype, so that the draws, and hence every
estimate, equal the JAX framework's for the same seed. There is no autodiff
(``value_and_gradient`` raises; ``stop_gradient`` is the identity and ``magic_box`` gives
ones), no compilation and one device: only values can be compared.

Float64 draws need JAX's 64-bit mode: call this framework's random functions inside
``jax.enable_x64(True)``.
"""

from __future__ import annotations

import contextlib
import sys

import array_api_strict as xp
import numpy as np

from fxgx import backends
from fxgx.backends import jax_backend
from fxgx.core.arrays import dtype_name

name = "strict"
differentiates_closed_over_arrays = False


def _array(value, dtype=None):
    """A JAX (or NumPy) array as an ``array_api_strict`` array of ``dtype``'s name."""
    host = np.asarray(value)
    if dtype is not None:
        host = host.astype(dtype_name(dtype), copy=False)
    return xp.asarray(host)


# ----------------------------------------------------------------------------- arrays


_ARRAY_TYPE = type(xp.asarray(0.0))


def is_array(value) -> bool:
    return isinstance(value, _ARRAY_TYPE)


def concrete_value(value):
    """Every array is concrete here (there is no tracing)."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        return None


def widest_float() -> str:
    return "float64"


def assert_finite(value, message: str):
    if not bool(xp.all(xp.isfinite(value))):
        raise ValueError(message)
    return value


def name_scope(name: str):
    del name
    return contextlib.nullcontext()


# -------------------------------------------------------------------------- gradients


def stop_gradient(value):
    return value


def magic_box(value):
    return xp.ones_like(value)


def value_and_gradient(function, parameters):
    raise NotImplementedError("array_api_strict has no autodiff: the strict framework has no "
                              "value_and_gradient.")


# ------------------------------------------------------------------ special functions


def softplus(value):
    """``max(x, 0) + log1p(exp(-|x|))``: no overflow for large ``x``."""
    return xp.maximum(value, xp.zeros_like(value)) + xp.log1p(xp.exp(-xp.abs(value)))


def log_sigmoid(value):
    return -softplus(-value)


def sigmoid(value):
    """``1 / (1 + exp(-x))`` for ``x >= 0``, ``exp(x) / (1 + exp(x))`` below: no overflow."""
    small = xp.exp(-xp.abs(value))
    return xp.where(value >= 0, 1 / (1 + small), small / (1 + small))


def logsumexp(value, axis=None, keepdims=False):
    largest = xp.max(value, axis=axis, keepdims=True)
    largest = xp.where(xp.isfinite(largest), largest, xp.zeros_like(largest))
    total = xp.log(xp.sum(xp.exp(value - largest), axis=axis, keepdims=True)) + largest
    if keepdims:
        return total
    axes = tuple(range(value.ndim)) if axis is None else axis
    return xp.squeeze(total, axis=axes)


def log_softmax(logits, axis=-1):
    return logits - logsumexp(logits, axis=axis, keepdims=True)


def softmax(logits, axis=-1):
    return xp.exp(log_softmax(logits, axis=axis))


def top_k(value, k):
    """The ``k`` largest along the last axis, descending; ties: the lower index first
    (``argsort`` is stable)."""
    indices = xp.argsort(value, axis=-1, descending=True, stable=True)[..., :k]
    return xp.take_along_axis(value, indices, axis=-1), xp.astype(indices, xp.int32)


# ----------------------------------------------------- seeds and draws (JAX's threefry)

is_native_seed = jax_backend.is_native_seed
seed_from_int = jax_backend.seed_from_int
seed_from_pair = jax_backend.seed_from_pair
split_seed = jax_backend.split_seed
fold_in = jax_backend.fold_in
sampler_seed = jax_backend.sampler_seed


def seed_from_integer_scalar(value):
    return jax_backend.seed_from_integer_scalar(np.asarray(value))


def uniform(shape, seed, dtype, low=0.0, high=1.0):
    low, high = (bound if isinstance(bound, float | int) else np.asarray(bound)
                 for bound in (low, high))
    draws = jax_backend.uniform(tuple(shape), seed, dtype_name(dtype), low, high)
    return _array(draws, dtype)


def normal(shape, seed, dtype):
    return _array(jax_backend.normal(tuple(shape), seed, dtype_name(dtype)), dtype)


# --------------------------------------------------------------------- loops, devices


def compile(function, jit_compile: bool = True):  # noqa: A001 - the protocol's name
    del jit_compile
    return function


def sum_over_chunks(body, parameters, seeds, num_chunks: int, devices=None):
    if devices is not None:
        raise ValueError("the strict framework has one device.")
    total = None
    for chunk in range(num_chunks):
        part = body(list(parameters), seeds[chunk])
        total = part if total is None else tuple(
            xp.add(sum_so_far, value) for sum_so_far, value in zip(total, part, strict=True))
    return total


def device_description() -> str:
    return "CPU (array_api_strict)"


def resolve_devices(devices):
    if devices is not None:
        raise ValueError(f"devices={devices!r}: the strict framework has one device.")
    return None


def device_count(devices) -> int:
    del devices
    return 1


def map_over_devices(function, devices, jit_compile: bool = True):
    raise ValueError("the strict framework has one device: there is nothing to map over.")


@contextlib.contextmanager
def registered():
    """This framework registered (``fxgx.backends.register_framework``) for the ``with``
    block; the registry is restored afterwards, so that other tests in the process see only
    the built-in frameworks (``available_frameworks``, the list of known names)."""
    saved = {attribute: dict(getattr(backends, attribute))
             for attribute in ("_ARRAY_MODULES", "_ALIASES", "_LOADED")}
    try:
        backends.register_framework(name, sys.modules[__name__], "array_api_strict")
        yield sys.modules[__name__]
    finally:
        for attribute, value in saved.items():
            getattr(backends, attribute).clear()
            getattr(backends, attribute).update(value)
