"""Seeds: one keyword, ``seed=``, for every random operation in fxgx.

Accepted forms:

- a Python/NumPy int (``seed=0``), or an integer scalar tensor: a traced one under
  ``jax.jit`` or a ``tf.Tensor`` inside ``tf.function`` gives the same numbers as that int;
- a TensorFlow stateless seed: an integer tensor or array of shape ``[2]``;
- a JAX key: a new-style typed key (``jax.random.key(0)``) or an old-style ``uint32[2]``
  key (``jax.random.PRNGKey(0)``).

Anything else (a float, a bool, a string, another shape) is an error that says what to pass.

``canonical_seed`` turns any of these into the framework's native seed (TF: ``int64[2]``;
JAX: a typed key). ``split_seed`` derives named, independent sub-seeds, so each random
part of an estimator draws from its own stream and adding a stream does not shift others.
"""

from __future__ import annotations

import numbers

import numpy as np

from fxgx.core.arrays import dtype_name, shape_of

_SEED_HELP = (
    "pass seed= as an int (seed=0), a TF stateless seed of shape [2] "
    "(tf.constant([0, 1])), or a JAX key (jax.random.key(0))"
)


def canonical_seed(seed, framework, argument: str = "seed"):
    """Return ``seed`` as ``framework``'s native stateless seed; raise a clear error if it is
    bad."""
    if seed is None:
        raise ValueError(f"{argument} is required for reproducible randomness: {_SEED_HELP}.")
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"{argument}={seed!r} is a bool, not a seed: {_SEED_HELP}.")
    if isinstance(seed, numbers.Integral):
        value = int(seed)
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{argument}={value} does not fit in int64: {_SEED_HELP}.")
        return framework.seed_from_int(value)
    if isinstance(seed, numbers.Real):
        raise TypeError(
            f"{argument}={seed!r} is a float; seeds are integers: pass seed={int(float(seed))} "
            f"if that is the seed you mean ({_SEED_HELP})."
            if float(seed).is_integer() else
            f"{argument}={seed!r} is a float; seeds are integers: {_SEED_HELP}."
        )
    if framework.is_native_seed(seed):
        return seed
    if framework.is_array(seed):
        shape = shape_of(seed)
        name = dtype_name(seed.dtype)
        if "int" in name and shape == (2,):
            return framework.seed_from_pair(seed)
        if "int" in name and shape == ():
            # A traced or symbolic integer (jax.jit, tf.function): the words of that int.
            return framework.seed_from_integer_scalar(seed)
        if "float" in name:
            raise TypeError(
                f"{argument} is a {name} tensor of shape {shape}; seeds are integers: "
                f"cast it (an int scalar or an int pair of shape [2]): {_SEED_HELP}."
            )
    # Typed JAX keys handed to the TF backend, or TF seeds handed to JAX, end up here.
    dtype = getattr(seed, "dtype", None)
    if dtype is not None and "key" in str(dtype):
        raise TypeError(
            f"{argument} is a JAX key but the arrays are {framework.name} arrays: {_SEED_HELP}."
        )
    try:
        array = np.asarray(seed)
    except Exception as error:  # noqa: BLE001 - any conversion failure is a bad seed
        raise TypeError(f"{argument}={seed!r} is not a seed: {_SEED_HELP}.") from error
    if array.shape == () and np.issubdtype(array.dtype, np.integer):
        return framework.seed_from_int(int(array))
    if array.shape != (2,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{argument} has shape {array.shape} and dtype {array.dtype}; a seed must be an "
            f"integer, or a pair of integers of shape (2,): {_SEED_HELP}."
        )
    return framework.seed_from_pair(array)


def split_seed(seed, names, framework) -> dict:
    """Derive one independent sub-seed per name (order-sensitive) from a canonical seed."""
    names = tuple(names)
    if len(set(names)) != len(names):
        raise ValueError(f"Sub-seed names must be unique, got {names}.")
    children = framework.split_seed(seed, len(names))
    return {name: children[index] for index, name in enumerate(names)}
