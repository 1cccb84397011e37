"""A thin array API namespace over TensorFlow: the part of the standard that fxgx uses.

TensorFlow does not implement the array API standard (``array_api_compat`` covers NumPy, JAX,
PyTorch, CuPy and Dask, not TensorFlow), so this module is one, over TensorFlow's own
operations: ``xp.sum`` is ``tf.reduce_sum``, ``xp.concat`` is ``tf.concat``, ``xp.astype`` is
``tf.cast``. The names, the argument names and the semantics are the standard's (2024.12:
Python scalars are accepted where an array is, and take the other argument's dtype). It holds
what fxgx's array code calls, and nothing more; a function missing here is an
``AttributeError`` on TensorFlow only, which the test suite's TensorFlow runs find.

``tf.Variable`` values are arrays too: ``asarray`` returns a variable unchanged (so a tape
watches it), and every function reads it.

Extensions, as in ``jax.numpy``: the dtype ``bfloat16``. The names are the standard's, but
only those that fxgx calls are here (``tests/backends/test_tensorflow_array_api.py`` checks
each against the standard's signature and semantics).
"""

from __future__ import annotations

import builtins

import numpy as np
import tensorflow as tf

__array_api_version__ = "2024.12"

bool = tf.bool  # noqa: A001 - the standard's name
int8, int16, int32, int64 = tf.int8, tf.int16, tf.int32, tf.int64
uint8, uint16, uint32, uint64 = tf.uint8, tf.uint16, tf.uint32, tf.uint64
float16, bfloat16, float32, float64 = tf.float16, tf.bfloat16, tf.float32, tf.float64


def _dtype(dtype) -> tf.DType | None:
    if dtype is None:
        return None
    if isinstance(dtype, (str, tf.DType)):
        return tf.as_dtype(dtype)
    return tf.as_dtype(np.dtype(dtype))


def _required_dtype(dtype) -> tf.DType:
    converted = _dtype(dtype)
    if converted is None:
        raise TypeError("a dtype is required here, got None.")
    return converted


def _is_array(value) -> builtins.bool:
    return isinstance(value, (tf.Tensor, tf.Variable))


def _pair(first, second):
    """Two operands of one dtype: a Python scalar takes the array's dtype (the standard's
    rule), two arrays are returned as they are (TensorFlow requires equal dtypes)."""
    if _is_array(first) and not _is_array(second):
        return first, tf.convert_to_tensor(second, dtype=first.dtype)
    if _is_array(second) and not _is_array(first):
        return tf.convert_to_tensor(first, dtype=second.dtype), second
    return first, second


# ------------------------------------------------------------------- data types


class finfo:  # noqa: N801 - the standard's name
    """Machine limits of a floating dtype: ``bits``, ``eps``, ``max``, ``min``,
    ``smallest_normal`` and ``dtype``."""

    def __init__(self, type, /):  # noqa: A002 - the standard's name
        dtype = _dtype(type.dtype if hasattr(type, "dtype") else type)
        if dtype is None or not dtype.is_floating:
            raise TypeError(f"finfo needs a floating dtype, got {type!r}.")
        # TF types as_numpy_dtype as type[np.number], which numpy's finfo stubs do not list.
        limits = np.finfo(dtype.as_numpy_dtype)  # pyright: ignore[reportCallIssue, reportArgumentType]
        self.bits = int(limits.bits)
        self.eps = float(limits.eps)
        self.max = float(limits.max)
        self.min = float(limits.min)
        self.smallest_normal = float(limits.smallest_normal)
        self.dtype = dtype


def isdtype(dtype, kind, /) -> builtins.bool:
    """Whether ``dtype`` is of ``kind``: a dtype, a kind name ("bool", "signed integer",
    "unsigned integer", "integral", "real floating", "complex floating", "numeric") or a
    tuple of them."""
    if isinstance(kind, tuple):
        return builtins.any(isdtype(dtype, each) for each in kind)
    dtype = _dtype(dtype)
    assert dtype is not None
    if not isinstance(kind, str):
        return dtype == _dtype(kind)
    checks = {
        "bool": dtype.is_bool,
        "signed integer": dtype.is_integer and not dtype.is_unsigned,
        "unsigned integer": dtype.is_integer and dtype.is_unsigned,
        "integral": dtype.is_integer,
        "real floating": dtype.is_floating,
        "complex floating": dtype.is_complex,
        "numeric": (dtype.is_integer or dtype.is_floating or dtype.is_complex)
        and not dtype.is_bool,
    }
    if kind not in checks:
        raise ValueError(f"isdtype: unknown kind {kind!r}.")
    return checks[kind]


def astype(x, dtype, /, *, copy: builtins.bool = True, device=None):
    """``x`` converted to ``dtype`` (``tf.cast``)."""
    del copy, device
    return tf.cast(x, _required_dtype(dtype))


# --------------------------------------------------------------------- creation


def asarray(obj, /, *, dtype=None, device=None, copy=None):
    """``obj`` as a tensor (of ``dtype`` when given); a variable of that dtype unchanged."""
    del device, copy
    dtype = _dtype(dtype)
    if isinstance(obj, tf.Variable):
        return obj if dtype is None or obj.dtype == dtype else tf.cast(obj, dtype)
    if isinstance(obj, tf.Tensor):
        return obj if dtype is None or obj.dtype == dtype else tf.cast(obj, dtype)
    return tf.convert_to_tensor(obj, dtype=dtype)


def zeros(shape, *, dtype=None, device=None):
    del device
    return tf.zeros(shape, dtype=_dtype(dtype) or tf.float32)


def ones(shape, *, dtype=None, device=None):
    del device
    return tf.ones(shape, dtype=_dtype(dtype) or tf.float32)


def zeros_like(x, /, *, dtype=None, device=None):
    del device
    return tf.zeros_like(x, dtype=_dtype(dtype))


def ones_like(x, /, *, dtype=None, device=None):
    del device
    return tf.ones_like(x, dtype=_dtype(dtype))


def arange(start, /, stop=None, step=1, *, dtype=None, device=None):
    del device
    if stop is None:
        start, stop = 0, start
    return tf.range(start, stop, step, dtype=_dtype(dtype) or tf.int64)


# ----------------------------------------------------------------- manipulation


def reshape(x, /, shape, *, copy=None):
    del copy
    return tf.reshape(x, shape)


def broadcast_to(x, /, shape):
    return tf.broadcast_to(x, shape)


def expand_dims(x, /, axis=0):
    return tf.expand_dims(x, axis)


def stack(arrays, /, *, axis=0):
    return tf.stack(list(arrays), axis=axis)


def concat(arrays, /, *, axis=0):
    return tf.concat(list(arrays), axis=axis)


def tile(x, repetitions, /):
    """``x`` repeated ``repetitions[i]`` times along axis ``i``; as in the standard, the shorter
    of the shape and ``repetitions`` is padded with leading ones."""
    repetitions = tuple(repetitions)
    rank = x.shape.rank
    if len(repetitions) > rank:
        x = tf.reshape(x, [1] * (len(repetitions) - rank) + x.shape.as_list())
    else:
        repetitions = (1,) * (rank - len(repetitions)) + repetitions
    return tf.tile(x, repetitions)


def permute_dims(x, /, axes):
    return tf.transpose(x, axes)


def flip(x, /, *, axis=None):
    if axis is None:
        axis = list(range(x.shape.rank))
    return tf.reverse(x, [axis] if isinstance(axis, int) else list(axis))


def where(condition, x1, x2, /):
    first, second = _pair(x1, x2)
    return tf.where(condition, first, second)


# ------------------------------------------------------------------- elementwise

def _unary(operation):
    def function(x, /):
        return operation(x)

    function.__name__ = operation.__name__
    return function


exp = _unary(tf.exp)
log = _unary(tf.math.log)
log1p = _unary(tf.math.log1p)
sqrt = _unary(tf.sqrt)
square = _unary(tf.square)
tanh = _unary(tf.tanh)
isfinite = _unary(tf.math.is_finite)


def abs(x, /):  # noqa: A001 - the standard's name
    return tf.abs(x)


def _binary(operation):
    def function(x1, x2, /):
        first, second = _pair(x1, x2)
        return operation(first, second)

    function.__name__ = operation.__name__
    return function


maximum = _binary(tf.maximum)
minimum = _binary(tf.minimum)
equal = _binary(tf.equal)
less = _binary(tf.less)
greater = _binary(tf.greater)


# -------------------------------------------------------------------- reductions


def _axis(axis):
    return list(axis) if isinstance(axis, tuple) else axis


def sum(x, /, *, axis=None, dtype=None, keepdims: builtins.bool = False):  # noqa: A001
    if dtype is not None:
        x = tf.cast(x, _required_dtype(dtype))
    return tf.reduce_sum(x, axis=_axis(axis), keepdims=keepdims)


def mean(x, /, *, axis=None, keepdims: builtins.bool = False):
    return tf.reduce_mean(x, axis=_axis(axis), keepdims=keepdims)


def argmax(x, /, *, axis=None, keepdims: builtins.bool = False):
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    index = tf.argmax(x, axis=axis, output_type=tf.int64)
    return tf.expand_dims(index, axis) if keepdims else index


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial: builtins.bool = False):
    """``x`` summed cumulatively along ``axis``; ``include_initial`` starts with a zero (one
    more element), so ``[..., :-1]`` of it is the exclusive sum."""
    if dtype is not None:
        x = tf.cast(x, _required_dtype(dtype))
    if axis is None:
        if x.shape.rank != 1:
            raise ValueError("cumulative_sum needs axis= for arrays of rank other than 1.")
        axis = 0
    total = tf.math.cumsum(x, axis=axis)
    if not include_initial:
        return total
    rank = x.shape.rank
    axis = axis % rank
    first = tf.zeros_like(tf.gather(x, [0], axis=axis))
    return tf.concat([first, total], axis=axis)


# ----------------------------------------------------------------- linear algebra


def matmul(x1, x2, /):
    return tf.matmul(x1, x2)


def __getattr__(name: str):
    """A clear error for a standard function this shim does not carry."""
    if isinstance(name, str) and not name.startswith("__"):
        raise AttributeError(
            f"fxgx's TensorFlow array API namespace has no {name!r}: it carries the part of "
            "the standard that fxgx uses (fxgx/backends/tensorflow_array_api.py); add it there."
        )
    raise AttributeError(name)

