"""TensorFlow as an fxgx ``Framework`` (``fxgx.backends.framework``).

The array API namespace is ``fxgx.backends.tensorflow_array_api`` (TensorFlow does not
implement the standard); this module holds what the standard lacks: gradients, the fused
special functions, counter-based random draws, compiled loops and devices.

Random numbers: every draw uses the counter-based ``threefry`` algorithm inside a small
XLA-compiled kernel. Under ``tf.function(jit_compile=True)`` the kernel is inlined (the
fast path: TF's default ``auto_select`` algorithm is ~100x slower under XLA on CPU); in
eager and graph mode it runs as its own compiled cluster, which is still faster than
``philox`` in graph mode. One algorithm everywhere means one seed gives the same numbers
eagerly, in ``tf.function`` and under XLA.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from fxgx.backends import tensorflow_array_api as xp

name = "tensorflow"
differentiates_closed_over_arrays = False

_RANDOM_ALGORITHM = "threefry"


def is_array(value) -> bool:
    return isinstance(value, (tf.Tensor, tf.Variable))


def concrete_value(value):
    """A NumPy copy of an eager tensor or variable (or a plain value); None inside
    ``tf.function``, where tensors are symbolic."""
    if is_array(value):
        if not tf.executing_eagerly() or not hasattr(value, "numpy"):
            return None
        try:
            return np.asarray(value.numpy())
        except (AttributeError, TypeError, ValueError, tf.errors.OperatorNotAllowedInGraphError):
            return None
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        return None


def _as_dtype(dtype) -> tf.DType:
    if isinstance(dtype, (str, tf.DType)):
        return tf.as_dtype(dtype)
    return tf.as_dtype(np.dtype(dtype))


stop_gradient = tf.stop_gradient
sigmoid = tf.sigmoid
log_sigmoid = tf.math.log_sigmoid
softplus = tf.nn.softplus


def softmax(logits, axis=-1):
    return tf.nn.softmax(logits, axis=axis)


def log_softmax(logits, axis=-1):
    return tf.nn.log_softmax(logits, axis=axis)


@tf.custom_gradient
def magic_box(value):
    """Ones of ``value``'s shape and dtype with the derivatives of ``exp`` at 0 (see the
    protocol): the gradient calls ``magic_box`` again, so nested tapes get every order."""

    def gradient(upstream):
        return upstream * magic_box(value)

    return tf.ones_like(value), gradient


def logsumexp(value, axis=None, keepdims=False):
    return tf.reduce_logsumexp(value, axis=list(axis) if isinstance(axis, tuple) else axis,
                               keepdims=keepdims)


def assert_finite(value, message: str):
    """``value``, checked to be finite when the graph runs (``InvalidArgumentError`` with
    ``message``). XLA drops the check: TensorFlow cannot raise from compiled code."""
    return tf.debugging.assert_all_finite(value, message)


def top_k(value, k):
    """The ``k`` largest values along the last axis (descending) and their int32 indices."""
    result = tf.math.top_k(value, k=k, sorted=True)
    return result.values, tf.cast(result.indices, tf.int32)


# ----------------------------------------------------------------------------- seeds


def is_native_seed(seed) -> bool:
    """An int64 ``[2]`` tensor (other integer pairs go through ``seed_from_pair``)."""
    return is_array(seed) and seed.dtype == tf.int64 and seed.shape.as_list() == [2]


_RUNTIME_ZERO = []
# While map_over_devices traces its function: that function's zero input. An XLA cluster can
# read a variable only on its own device, so graphs placed on other devices take the zero as
# an input (read from the variable outside the cluster) instead of reading the variable.
_ZERO_INPUT = []


def _runtime(seed):
    """``seed`` as a value known only when the graph runs, inside ``tf.function``.

    Every draw goes through it. A constant seed (an int seed, or a ``tf.constant`` seed,
    inside ``tf.function``, with or without XLA) makes every draw a constant, and TF then tries
    to evaluate ``stateless_uniform`` ahead of time with its plain CPU kernel, which has no
    threefry (tensorflow/tensorflow#100252), and logs ``OP_REQUIRES failed ... counter must be
    a vector with length at least 2``. Adding a zero read from a (non-trainable, int64)
    variable keeps the value and makes it unknown until the graph runs. Eagerly the seed is an
    ordinary runtime tensor already.
    """
    if tf.executing_eagerly():
        return seed
    if _ZERO_INPUT:
        return seed + _ZERO_INPUT[-1]
    return seed + _runtime_zero()


def _runtime_zero():
    """The zero variable of ``_runtime`` (created once, outside any function)."""
    if not _RUNTIME_ZERO:
        with tf.init_scope():
            _RUNTIME_ZERO.append(tf.Variable(tf.zeros([], tf.int64), trainable=False,
                                             name="fxgx_runtime_zero"))
    return _RUNTIME_ZERO[0]


def seed_from_int(value: int):
    # threefry reads each seed word as uint32, so [0, value] would make seed=2**32 equal
    # seed=0. Two 32-bit words keep all 64 bits (and equal the JAX backend's key data).
    value %= 2**64
    return tf.constant([value >> 32, value & 0xFFFFFFFF], dtype=tf.int64)


def seed_from_integer_scalar(value):
    """``seed_from_int`` for an integer tensor (symbolic inside ``tf.function``): the same
    two words, ``value mod 2^64`` split into high and low 32-bit halves."""
    value = tf.cast(value, tf.int64)  # sign-extends narrower signed ints
    mask = tf.constant(0xFFFFFFFF, tf.int64)
    high = tf.bitwise.bitwise_and(tf.bitwise.right_shift(value, tf.constant(32, tf.int64)), mask)
    return tf.stack([high, tf.bitwise.bitwise_and(value, mask)])


def seed_from_pair(pair):
    return tf.cast(xp.asarray(pair), tf.int64)


def fold_in(seed, data):
    """``tf.random.experimental.stateless_fold_in``: a seed per step index ``data``."""
    # tf.random.experimental exists in TensorFlow but not in its type stubs.
    return tf.random.experimental.stateless_fold_in(  # pyright: ignore[reportAttributeAccessIssue]
        seed, tf.cast(data, tf.int64))


def sampler_seed(seed):
    """The int32 pair that TensorFlow Probability's stateless samplers take."""
    return tf.cast(seed, tf.int32)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _split_kernel(seed, count):
    # Each word is the (wrapping) sum of two random words: still uniform, and a reduction,
    # which XLA does not fuse into the kernels that use the seeds. Without it XLA inlines
    # this threefry into every element of the draws made from the seeds (into argmax's
    # reduction for categorical samples), and compiling that fusion took 3 s on CPU.
    # minval=maxval=None: integers over the full int64 range (documented; TF's annotation
    # of minval omits None).
    words = tf.random.stateless_uniform(
        tf.stack([count, 2, 2]), seed, minval=None,  # pyright: ignore[reportArgumentType]
        maxval=None, dtype=tf.int64, alg=_RANDOM_ALGORITHM,
    )
    return tf.reduce_sum(words, axis=-1)


def split_seed(seed, count: int):
    """``count`` independent stateless seeds (shape [count, 2]) derived from ``seed``."""
    return _split_kernel(_runtime(tf.cast(seed, tf.int64)), tf.constant(count, tf.int32))


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _uniform_kernel(shape, seed, low, high):
    return tf.random.stateless_uniform(
        shape, seed, minval=low, maxval=high, dtype=low.dtype, alg=_RANDOM_ALGORITHM
    )


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _normal_kernel(shape, seed, dtype_probe):
    return tf.random.stateless_normal(shape, seed, dtype=dtype_probe.dtype, alg=_RANDOM_ALGORITHM)


def uniform(shape, seed, dtype, low=0.0, high=1.0):
    """Uniform draws on [low, high) from a stateless seed (threefry, compiled)."""
    dtype = _as_dtype(dtype)
    if dtype in (tf.float16, tf.bfloat16):
        return tf.cast(uniform(shape, seed, tf.float32, low, high), dtype)
    return _uniform_kernel(
        tf.cast(shape, tf.int32), _runtime(tf.cast(seed, tf.int64)),
        tf.constant(low, dtype), tf.constant(high, dtype),
    )


def normal(shape, seed, dtype):
    """Standard normal draws from a stateless seed (threefry, compiled)."""
    dtype = _as_dtype(dtype)
    if dtype in (tf.float16, tf.bfloat16):
        return tf.cast(normal(shape, seed, tf.float32), dtype)
    return _normal_kernel(tf.cast(shape, tf.int32), _runtime(tf.cast(seed, tf.int64)),
                          tf.zeros([], dtype))


# ---------------------------------------------------------------- transformations


def compile(function, jit_compile: bool = True):  # noqa: A001 - mirrors tf.function
    """Compile ``function`` (``tf.function``; XLA when ``jit_compile``)."""
    return tf.function(function, jit_compile=jit_compile, autograph=False)


def value_and_gradient(function, parameters):
    """Value of ``function(*parameters)`` and its gradients w.r.t. each parameter.

    Missing gradients (unconnected parameters) are returned as zeros.
    """
    parameters = [xp.asarray(parameter) for parameter in parameters]
    with tf.GradientTape() as tape:
        for parameter in parameters:
            tape.watch(parameter)
        value = function(*parameters)
    gradients = tape.gradient(
        value, parameters, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return value, gradients


def sum_over_chunks(body, parameters, seeds, num_chunks: int, devices=None):
    """A ``tf.custom_gradient`` around ``tf.while_loop``s: the forward loop keeps only the
    running sums; the gradient function runs the loop again, one chunk at a time under its
    own tape (recomputation), adding the chunk's vector-Jacobian products w.r.t. the
    parameters and the variables ``body`` reads. With devices, each device (``tf.device``)
    runs a contiguous block of chunks; in a ``tf.function`` the blocks run concurrently."""
    parameters = [tf.convert_to_tensor(parameter) for parameter in parameters]
    seeds = tf.convert_to_tensor(seeds)
    names = devices or [None]
    blocks = [
        (name, index * num_chunks // len(names), (index + 1) * num_chunks // len(names))
        for index, name in enumerate(names)
    ]
    blocks = [block for block in blocks if block[2] > block[1]]

    def run_blocks(first_value, step):
        totals = []
        for name, start, stop in blocks:
            with tf.device(name):
                initial = first_value(start)
                if stop - start > 1:
                    _, initial = tf.while_loop(
                        lambda index, _, stop=stop: index < stop,
                        lambda index, total: (index + 1, step(index, total)),
                        (tf.constant(start + 1), initial),
                    )
                totals.append(initial)
        return [tf.add_n([total[index] for total in totals])
                for index in range(len(totals[0]))]

    @tf.function(autograph=False)
    def traced_chunk(parameters, seed):  # traced once, called from every loop and device
        return [tf.convert_to_tensor(value) for value in tf.nest.flatten(body(parameters, seed))]

    def chunk(parameters, index):
        return traced_chunk(parameters, tf.gather(seeds, index))

    @tf.custom_gradient
    def streamed(*parameters):
        parameters = list(parameters)
        totals = run_blocks(
            lambda start: chunk(parameters, start),
            lambda index, total: [
                a + b for a, b in zip(total, chunk(parameters, index), strict=True)],
        )

        def gradient(*upstream, variables=None):
            variables = list(variables or [])
            sources = parameters + variables

            def vector_jacobian(index):
                with tf.GradientTape() as tape:
                    tape.watch(parameters)
                    values = chunk(parameters, index)
                products = tape.gradient(values, sources, output_gradients=list(upstream),
                                         unconnected_gradients=tf.UnconnectedGradients.ZERO)
                return [tf.convert_to_tensor(product) for product in products]

            sums = run_blocks(
                vector_jacobian,
                lambda index, total: [
                    a + b for a, b in zip(total, vector_jacobian(index), strict=True)],
            )
            if not variables:
                return sums
            return sums[: len(parameters)], sums[len(parameters):]

        return totals, gradient

    return tuple(streamed(*parameters))


def device_description() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU ({len(gpus)})" if gpus else "CPU"


def widest_float() -> str:
    """The most precise float dtype this backend computes in (for accumulation)."""
    return "float64"


def name_scope(name: str):
    """A TensorFlow name scope (graph op names); JAX's backend returns a null context."""
    return tf.name_scope(name)


# -------------------------------------------------------------------------- devices


def resolve_devices(devices):
    """None (one device), a count ``N`` (the first ``N`` logical GPUs, or logical CPUs where
    there is no GPU) or a ``tf.distribute.Strategy`` on one machine (``MirroredStrategy``:
    its ``extended.worker_devices``), returned as a list of device names or None."""
    if devices is None:
        return None
    if isinstance(devices, tf.distribute.Strategy):
        if isinstance(devices, tf.distribute.MultiWorkerMirroredStrategy):
            raise ValueError(
                "devices= is a MultiWorkerMirroredStrategy; fxgx spreads chunks over one "
                "machine's devices: run on each worker with its own seed (gradient_moments: "
                "combine the results with fxgx.testing.merge; fit: data=, devices=strategy)."
            )
        return list(devices.extended.worker_devices)
    if (type(devices).__module__ or "").startswith(("jax", "jaxlib")):
        raise TypeError(
            f"devices= is a {type(devices).__name__}, a JAX object, but the backend is "
            "TensorFlow: pass an int or a tf.distribute.MirroredStrategy (a Mesh is for "
            "backend='jax')."
        )
    if isinstance(devices, bool) or not isinstance(devices, numbers.Integral):
        raise TypeError(
            f"devices={devices!r} is not a device count: pass an int, a "
            "tf.distribute.MirroredStrategy, or None for one device."
        )
    kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    visible = tf.config.list_logical_devices(kind)
    devices = int(devices)
    if devices < 1:
        raise ValueError(f"devices={devices} must be at least 1.")
    if devices > len(visible):
        raise ValueError(
            f"devices={devices} but TensorFlow sees {len(visible)} logical {kind} device(s); "
            f"to simulate {devices} CPU devices call tf.config."
            "set_logical_device_configuration(tf.config.list_physical_devices('CPU')[0], "
            f"[tf.config.LogicalDeviceConfiguration()] * {devices}) before TensorFlow "
            "first runs an operation."
        )
    return [device.name for device in visible[:devices]]


def device_count(devices) -> int:
    return 1 if devices is None else len(devices)


def map_over_devices(function, devices, jit_compile: bool = True):
    """``mapped(shared, per_device)``: one graph that calls ``function`` (traced once,
    compiled with XLA when ``jit_compile``) on each device under ``tf.device``; the calls
    share no data, so the runtime runs them at the same time. Outputs are stacked on the
    first device."""
    names = tuple(devices)

    def with_zero_input(zero, shared, *rows):
        _ZERO_INPUT.append(zero)  # while tracing: seeds add this input, not the variable
        try:
            return function(shared, *rows)
        finally:
            _ZERO_INPUT.pop()

    compiled = tf.function(with_zero_input, jit_compile=jit_compile, autograph=False)

    def mapped(shared, per_device):
        shared = list(shared)
        zero = tf.identity(_runtime_zero())
        outputs = []
        for index, device in enumerate(names):
            with tf.device(device):
                outputs.append(compiled(zero, shared, *(row[index] for row in per_device)))
        with tf.device(names[0]):
            return tf.nest.map_structure(lambda *values: tf.stack(values), *outputs)

    return tf.function(mapped, autograph=False)
