"""JAX backend: the shared array-function set implemented with ``jax.numpy``.

Random numbers use JAX's default (threefry) keys. Seeds are new-style typed keys
internally; old-style ``uint32[2]`` keys and ints are accepted at the boundary.
"""

from __future__ import annotations

import contextlib
import numbers

import jax
import jax.numpy as jnp
import jax.sharding
import numpy as np

name = "jax"


def is_array(value) -> bool:
    return isinstance(value, jax.Array)


def _as_dtype(dtype):
    if dtype is None:
        return None
    return jnp.dtype(dtype)


def convert(value, dtype=None):
    return jnp.asarray(value, dtype=_as_dtype(dtype))


def dtype_of(value):
    return jnp.asarray(value).dtype if not hasattr(value, "dtype") else value.dtype


def dtype_name(dtype) -> str:
    return jnp.dtype(dtype).name


def is_floating(dtype) -> bool:
    return jnp.issubdtype(jnp.dtype(dtype), jnp.floating)


def shape_of(value) -> tuple:
    return tuple(jnp.shape(value))



def finfo_eps(dtype) -> float:
    return float(jnp.finfo(jnp.dtype(dtype)).eps)


stop_gradient = jax.lax.stop_gradient
reshape = jnp.reshape
broadcast_to = jnp.broadcast_to
expand_dims = jnp.expand_dims
where = jnp.where
stack = jnp.stack
concat = jnp.concatenate
tile = jnp.tile
transpose = jnp.transpose
zeros_like = jnp.zeros_like
ones_like = jnp.ones_like
exp = jnp.exp
log = jnp.log
log1p = jnp.log1p
abs = jnp.abs  # noqa: A001 - mirrors the array API name
sqrt = jnp.sqrt
square = jnp.square
maximum = jnp.maximum
minimum = jnp.minimum
sigmoid = jax.nn.sigmoid
softmax = jax.nn.softmax
log_softmax = jax.nn.log_softmax
isfinite = jnp.isfinite
equal = jnp.equal
less = jnp.less
greater = jnp.greater
matmul = jnp.matmul
tanh = jnp.tanh


def cast(value, dtype):
    return jnp.asarray(value).astype(_as_dtype(dtype))


@jax.custom_jvp
def softplus(value):
    """``log(1 + exp(value))``; its derivative is ``sigmoid(value)`` (one ``exp`` and a
    division; ``jax.nn.softplus`` differentiates through ``logaddexp``, which recomputes the
    value and takes a second ``exp``), exact at every order."""
    return jax.nn.softplus(value)


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (value,), (tangent,) = primals, tangents
    return softplus(value), jax.nn.sigmoid(value) * tangent


def log_sigmoid(value):
    """``-softplus(-value)`` (as ``jax.nn.log_sigmoid``), differentiated as ``sigmoid(-value)``."""
    return -softplus(-value)


@jax.custom_jvp
def magic_box(value):
    """Ones of ``value``'s shape and dtype with the derivatives of ``exp`` at 0 (see the
    protocol): the value never reads ``value``, so ``jax.grad`` drops what computed it."""
    return jnp.ones_like(value)


@magic_box.defjvp
def _magic_box_jvp(primals, tangents):
    (value,), (tangent,) = primals, tangents
    box = magic_box(value)
    return box, box * tangent


def reduce_sum(value, axis=None, keepdims=False):
    return jnp.sum(value, axis=axis, keepdims=keepdims)


def reduce_mean(value, axis=None, keepdims=False):
    return jnp.mean(value, axis=axis, keepdims=keepdims)



def logsumexp(value, axis=None, keepdims=False):
    return jax.nn.logsumexp(value, axis=axis, keepdims=keepdims)


def assert_finite(value, message: str):
    """``value``, checked to be finite when the computation runs: a host callback raises
    ``ValueError(message)``, which JAX reports as a runtime error that quotes it."""

    def check(known):
        if not np.all(np.isfinite(known)):
            raise ValueError(message)

    jax.debug.callback(check, value)
    return value


def exclusive_cumsum(value, axis=0, reverse=False):
    """``sum_{j < i} value_j`` along ``axis`` (``j > i`` with ``reverse``); 0 at the start."""
    if reverse:
        return jnp.flip(exclusive_cumsum(jnp.flip(value, axis), axis), axis)
    inclusive = jnp.cumsum(value, axis=axis)
    size = value.shape[axis]
    zero = jnp.zeros_like(jax.lax.slice_in_dim(value, 0, 1, axis=axis))
    return jnp.concatenate([zero, jax.lax.slice_in_dim(inclusive, 0, size - 1, axis=axis)],
                           axis=axis)



def top_k(value, k):
    """The ``k`` largest values along the last axis (descending) and their int32 indices."""
    values, indices = jax.lax.top_k(value, k)
    return values, indices.astype(jnp.int32)


def zeros(shape, dtype):
    return jnp.zeros(shape, dtype=_as_dtype(dtype))


def ones(shape, dtype):
    return jnp.ones(shape, dtype=_as_dtype(dtype))


def one_hot(indices, depth, dtype):
    return jax.nn.one_hot(indices, depth, dtype=_as_dtype(dtype))


def argmax(value, axis=-1):
    return jnp.argmax(value, axis=axis).astype(jnp.int32)


def arange(n, dtype):
    return jnp.arange(n, dtype=_as_dtype(dtype))


def to_numpy(value):
    return np.asarray(value)


# ----------------------------------------------------------------------------- seeds


def is_native_seed(seed) -> bool:
    return isinstance(seed, jax.Array) and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key)


def seed_from_int(value: int):
    # Not `jax.random.key(value)`: without jax_enable_x64 it keeps only the low 32 bits
    # (seed=2**32 would equal seed=0) and the key would depend on the x64 flag. Splitting the
    # int64 into two uint32 words gives what `jax.random.key` gives under x64, in every mode.
    value %= 2**64
    words = np.array([value >> 32, value & 0xFFFFFFFF], dtype=np.uint32)
    return jax.random.wrap_key_data(jnp.asarray(words), impl="threefry2x32")


def seed_from_integer_scalar(value):
    """``seed_from_int`` for an integer array (traced under ``jax.jit``): the same two words,
    ``value mod 2^64`` split into high and low halves (sign-extended from 32 bits)."""
    value = jnp.asarray(value)
    if value.dtype.itemsize == 8:
        high = (value >> 32).astype(jnp.uint32)
    elif jnp.issubdtype(value.dtype, jnp.signedinteger):
        high = jnp.where(value < 0, jnp.uint32(0xFFFFFFFF), jnp.uint32(0))
    else:
        high = jnp.zeros((), jnp.uint32)
    low = value.astype(jnp.uint32)
    return jax.random.wrap_key_data(jnp.stack([high, low]), impl="threefry2x32")


def seed_from_pair(pair):
    return jax.random.wrap_key_data(jnp.asarray(pair).astype(jnp.uint32), impl="threefry2x32")


def split_seed(seed, count: int):
    return jax.random.split(seed, count)


def uniform(shape, seed, dtype, low=0.0, high=1.0):
    return jax.random.uniform(seed, tuple(shape), dtype=_as_dtype(dtype), minval=low, maxval=high)


def normal(shape, seed, dtype):
    return jax.random.normal(seed, tuple(shape), dtype=_as_dtype(dtype))


# ---------------------------------------------------------------- transformations


def compile(function, jit_compile: bool = True):  # noqa: A001 - mirrors tf.function
    return jax.jit(function) if jit_compile else function


def value_and_gradient(function, parameters):
    """Value of ``function(*parameters)`` and the gradients of its sum w.r.t. each parameter."""
    parameters = [convert(p) for p in parameters]

    def total(params):
        value = function(*params)
        return jnp.sum(value), value

    (_, value), gradients = jax.value_and_grad(total, has_aux=True)(parameters)
    return value, list(gradients)


def sum_over_chunks(body, parameters, seeds, num_chunks: int, devices=None):
    """The chunks run in a ``lax.scan`` whose step is ``jax.checkpoint``-ed: reverse mode
    keeps only each step's carry and recomputes the chunk, so memory does not grow with
    ``num_chunks``. On a mesh, ``shard_map`` gives each device a contiguous block of the
    chunks (and their seeds); the partial sums are added with ``psum``. Chunks that do not
    divide evenly over the devices run afterwards on the default device."""
    parameters = list(parameters)
    shapes = jax.eval_shape(body, parameters, seeds[0])
    zeros = jax.tree.map(lambda shape: jnp.zeros(shape.shape, shape.dtype), shapes)

    def scan(initial, parameters, block):
        def step(carry, seed):
            return jax.tree.map(jnp.add, carry, body(parameters, seed)), None

        return jax.lax.scan(jax.checkpoint(step), initial, block)[0]

    count = device_count(devices)
    sharded = num_chunks - num_chunks % count if count > 1 else 0
    total = zeros
    if sharded and devices is not None:
        axis = devices.axis_names[0]

        def per_device(parameters, block):
            initial = jax.tree.map(lambda zero: jax.lax.pcast(zero, (axis,), to="varying"), zeros)
            partial = scan(initial, parameters, block)
            return jax.tree.map(lambda value: jax.lax.psum(value, axis), partial)

        total = jax.shard_map(
            per_device, mesh=devices,
            in_specs=(jax.sharding.PartitionSpec(), jax.sharding.PartitionSpec(axis)),
            out_specs=jax.sharding.PartitionSpec(),
        )(parameters, seeds[:sharded])
    if sharded < num_chunks:
        total = scan(total, parameters, seeds[sharded:num_chunks])
    return total


def device_description() -> str:
    device = jax.devices()[0]
    return f"{device.platform.upper()} ({device.device_kind})"


def widest_float() -> str:
    """float64 when ``jax_enable_x64`` is on, else float32 (JAX would truncate silently)."""
    return "float64" if jax.dtypes.canonicalize_dtype(jnp.float64) == jnp.float64 else "float32"


def name_scope(name: str):
    """JAX has no name scopes that matter here: a null context."""
    return contextlib.nullcontext()


# -------------------------------------------------------------------------- devices

_SIMULATE_HELP = (
    "to simulate {count} CPU devices set XLA_FLAGS=--xla_force_host_platform_device_count="
    "{count} in the environment before jax is imported (a fresh process)"
)


def resolve_devices(devices):
    """None (one device), a count ``N`` (a one-axis mesh over the first ``N`` of
    ``jax.devices()``, which spans every host after ``jax.distributed.initialize()``) or a
    one-axis ``jax.sharding.Mesh``, returned as a mesh or None."""
    if devices is None:
        return None
    if isinstance(devices, jax.sharding.Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(
                f"devices= is a Mesh with axes {tuple(devices.axis_names)}; the estimates are "
                "split over one axis: pass a one-axis Mesh (jax.make_mesh((n,), ('samples',))) "
                "or an int."
            )
        return devices
    if (type(devices).__module__ or "").startswith("tensorflow"):
        raise TypeError(
            f"devices= is a {type(devices).__name__}, a TensorFlow object, but the backend is "
            "JAX: pass an int or a one-axis jax.sharding.Mesh (a tf.distribute.Strategy is for "
            "backend='tensorflow')."
        )
    if isinstance(devices, bool) or not isinstance(devices, numbers.Integral):
        raise TypeError(
            f"devices={devices!r} is not a device count: pass an int, a one-axis "
            "jax.sharding.Mesh, or None for one device."
        )
    visible = jax.devices()
    devices = int(devices)
    if devices < 1:
        raise ValueError(f"devices={devices} must be at least 1.")
    if devices > len(visible):
        raise ValueError(
            f"devices={devices} but JAX sees {len(visible)} {visible[0].platform} device(s); "
            + _SIMULATE_HELP.format(count=devices) + "."
        )
    return jax.sharding.Mesh(np.array(visible[:devices]), ("samples",))


def device_count(devices) -> int:
    return 1 if devices is None else int(devices.size)


def map_over_devices(function, devices, jit_compile: bool = True):
    """``mapped(shared, per_device)`` via ``jax.shard_map`` over the one-axis mesh
    ``devices`` (from ``resolve_devices``): ``shared``
    replicated (placed once while the same list is passed again), ``per_device`` split along
    its leading axis. With several processes (``jax.distributed``) the outputs are gathered
    onto every device, so each process can read them."""
    from jax.sharding import NamedSharding, PartitionSpec  # noqa: PLC0415

    mesh = devices
    axis = mesh.axis_names[0]
    split = NamedSharding(mesh, PartitionSpec(axis))
    replicated = NamedSharding(mesh, PartitionSpec())

    key_impls = {}  # per-device argument index -> PRNG implementation of a key argument

    def per_device_body(shared, rows):
        rows = [
            jax.random.wrap_key_data(row[0], impl=key_impls[index]) if index in key_impls
            else row[0]
            for index, row in enumerate(rows)
        ]
        outputs = function(shared, *rows)
        return jax.tree.map(lambda output: output[None], outputs)

    sharded = jax.shard_map(
        per_device_body, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(axis)),
        out_specs=PartitionSpec(axis), check_vma=False,
    )
    # Several processes (jax.distributed): inputs are built as global arrays from the host
    # values every process holds, and the outputs are gathered onto every device.
    several_processes = jax.process_count() > 1
    if jit_compile:
        sharded = jax.jit(sharded, out_shardings=replicated if several_processes else None)

    def place(value, sharding):
        if not several_processes:
            return jax.device_put(value, sharding)
        host = np.asarray(value)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    placed_shared = {}

    def mapped(shared, per_device):
        if placed_shared.get("source") is not shared:
            placed = [place(value, replicated) for value in shared]
            placed_shared.update(source=shared, placed=placed)
        rows = []
        for index, value in enumerate(per_device):
            if is_native_seed(value):  # keys travel as their data, wrapped on each device
                key_impls[index] = jax.random.key_impl(value)
                value = jax.random.key_data(value)
            rows.append(place(value, split))
        return sharded(placed_shared["placed"], rows)

    return mapped
