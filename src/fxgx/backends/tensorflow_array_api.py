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

Extensions, as in ``jax.numpy``: the dtype ``bfloat16``.
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
complex64, complex128 = tf.complex64, tf.complex128

e = float(np.e)
pi = float(np.pi)
inf = float("inf")
nan = float("nan")
newaxis = None


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


class iinfo:  # noqa: N801 - the standard's name
    """Limits of an integer dtype: ``bits``, ``max``, ``min`` and ``dtype``."""

    def __init__(self, type, /):  # noqa: A002 - the standard's name
        dtype = _dtype(type.dtype if hasattr(type, "dtype") else type)
        if dtype is None or not dtype.is_integer:
            raise TypeError(f"iinfo needs an integer dtype, got {type!r}.")
        self.bits = int(dtype.size * 8)
        self.max = int(dtype.max)
        self.min = int(dtype.min)
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


def result_type(*arrays_and_dtypes):
    """The dtype of an operation on these arrays (fxgx mixes no dtypes: the first array's)."""
    for value in arrays_and_dtypes:
        if _is_array(value):
            return value.dtype
        if isinstance(value, tf.DType):
            return value
    return tf.float32


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


def full(shape, fill_value, *, dtype=None, device=None):
    del device
    return tf.fill(shape, tf.convert_to_tensor(fill_value, dtype=_dtype(dtype)))


def zeros_like(x, /, *, dtype=None, device=None):
    del device
    return tf.zeros_like(x, dtype=_dtype(dtype))


def ones_like(x, /, *, dtype=None, device=None):
    del device
    return tf.ones_like(x, dtype=_dtype(dtype))


def full_like(x, /, fill_value, *, dtype=None, device=None):
    del device
    return tf.fill(tf.shape(x), tf.convert_to_tensor(fill_value, dtype=_dtype(dtype) or x.dtype))


def arange(start, /, stop=None, step=1, *, dtype=None, device=None):
    del device
    if stop is None:
        start, stop = 0, start
    return tf.range(start, stop, step, dtype=_dtype(dtype) or tf.int64)


def eye(n_rows, n_cols=None, /, *, k=0, dtype=None, device=None):
    del device
    if k != 0:
        raise NotImplementedError("eye(k != 0) is not used by fxgx.")
    return tf.eye(n_rows, n_cols, dtype=_dtype(dtype) or tf.float32)


# ----------------------------------------------------------------- manipulation


def reshape(x, /, shape, *, copy=None):
    del copy
    return tf.reshape(x, shape)


def broadcast_to(x, /, shape):
    return tf.broadcast_to(x, shape)


def expand_dims(x, /, *, axis=0):
    return tf.expand_dims(x, axis)


def squeeze(x, /, axis):
    return tf.squeeze(x, axis)


def stack(arrays, /, *, axis=0):
    return tf.stack(list(arrays), axis=axis)


def concat(arrays, /, *, axis=0):
    return tf.concat(list(arrays), axis=axis)


def tile(x, repetitions, /):
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

exp = tf.exp
expm1 = tf.math.expm1
log = tf.math.log
log1p = tf.math.log1p
sqrt = tf.sqrt
square = tf.square
tanh = tf.tanh
sign = tf.sign
floor = tf.floor
ceil = tf.math.ceil
isfinite = tf.math.is_finite
isnan = tf.math.is_nan
isinf = tf.math.is_inf
logical_not = tf.logical_not
negative = tf.negative


def abs(x, /):  # noqa: A001 - the standard's name
    return tf.abs(x)


def _binary(operation):
    def function(x1, x2, /):
        first, second = _pair(x1, x2)
        return operation(first, second)

    function.__name__ = operation.__name__
    return function


add = _binary(tf.add)
subtract = _binary(tf.subtract)
multiply = _binary(tf.multiply)
divide = _binary(tf.divide)
pow = _binary(tf.pow)  # noqa: A001 - the standard's name
maximum = _binary(tf.maximum)
minimum = _binary(tf.minimum)
equal = _binary(tf.equal)
not_equal = _binary(tf.not_equal)
less = _binary(tf.less)
less_equal = _binary(tf.less_equal)
greater = _binary(tf.greater)
greater_equal = _binary(tf.greater_equal)
logical_and = _binary(tf.logical_and)
logical_or = _binary(tf.logical_or)


def logaddexp(x1, x2, /):
    first, second = _pair(x1, x2)
    larger = tf.maximum(first, second)
    return larger + tf.math.log1p(tf.exp(-tf.abs(first - second)))


def clip(x, /, min=None, max=None):  # noqa: A002 - the standard's names
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


# -------------------------------------------------------------------- reductions


def _axis(axis):
    return list(axis) if isinstance(axis, tuple) else axis


def sum(x, /, *, axis=None, dtype=None, keepdims: builtins.bool = False):  # noqa: A001
    if dtype is not None:
        x = tf.cast(x, _required_dtype(dtype))
    return tf.reduce_sum(x, axis=_axis(axis), keepdims=keepdims)


def mean(x, /, *, axis=None, keepdims: builtins.bool = False):
    return tf.reduce_mean(x, axis=_axis(axis), keepdims=keepdims)


def prod(x, /, *, axis=None, dtype=None, keepdims: builtins.bool = False):
    if dtype is not None:
        x = tf.cast(x, _required_dtype(dtype))
    return tf.reduce_prod(x, axis=_axis(axis), keepdims=keepdims)


def max(x, /, *, axis=None, keepdims: builtins.bool = False):  # noqa: A001
    return tf.reduce_max(x, axis=_axis(axis), keepdims=keepdims)


def min(x, /, *, axis=None, keepdims: builtins.bool = False):  # noqa: A001
    return tf.reduce_min(x, axis=_axis(axis), keepdims=keepdims)


def all(x, /, *, axis=None, keepdims: builtins.bool = False):  # noqa: A001
    return tf.reduce_all(tf.cast(x, tf.bool), axis=_axis(axis), keepdims=keepdims)


def any(x, /, *, axis=None, keepdims: builtins.bool = False):  # noqa: A001
    return tf.reduce_any(tf.cast(x, tf.bool), axis=_axis(axis), keepdims=keepdims)


def argmax(x, /, *, axis=None, keepdims: builtins.bool = False):
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    index = tf.argmax(x, axis=axis, output_type=tf.int64)
    return tf.expand_dims(index, axis) if keepdims else index


def argmin(x, /, *, axis=None, keepdims: builtins.bool = False):
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    index = tf.argmin(x, axis=axis, output_type=tf.int64)
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


def tensordot(x1, x2, /, *, axes=2):
    return tf.tensordot(x1, x2, axes)


def vecdot(x1, x2, /, *, axis=-1):
    return tf.reduce_sum(x1 * x2, axis=axis)


def __getattr__(name: str):
    """A clear error for a standard function this shim does not carry."""
    if isinstance(name, str) and not name.startswith("__"):
        raise AttributeError(
            f"fxgx's TensorFlow array API namespace has no {name!r}: it carries the part of "
            "the standard that fxgx uses (fxgx/backends/tensorflow_array_api.py); add it there."
        )
    raise AttributeError(name)

