"""JAX as an fxgx ``Framework`` (``fxgx.backends.framework``).

The array API namespace is ``jax.numpy``, which implements the standard (it is what
``array_api_compat.array_namespace`` returns for a JAX array); this module holds what the
standard lacks: gradients, the fused special functions, counter-based random draws, compiled
loops and devices.

Random numbers use JAX's default (threefry) keys. Seeds are new-style typed keys
internally; old-style ``uint32[2]`` keys and ints are accepted at the boundary.
"""

from __future__ import annotations

import contextlib
import numbers

import jax
import jax.numpy as xp
import jax.sharding
import numpy as np

name = "jax"
differentiates_closed_over_arrays = True


def is_array(value) -> bool:
    return isinstance(value, jax.Array)


def concrete_value(value):
    """A NumPy copy of a concrete array (or a plain value); None for a tracer."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError, jax.errors.TracerArrayConversionError,
            jax.errors.ConcretizationTypeError):
        return None


stop_gradient = jax.lax.stop_gradient
sigmoid = jax.nn.sigmoid


def softmax(logits, axis=-1):
    return jax.nn.softmax(logits, axis=axis)


def log_softmax(logits, axis=-1):
    return jax.nn.log_softmax(logits, axis=axis)


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
    return xp.ones_like(value)


@magic_box.defjvp
def _magic_box_jvp(primals, tangents):
    (value,), (tangent,) = primals, tangents
    box = magic_box(value)
    return box, box * tangent


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


def top_k(value, k):
    """The ``k`` largest values along the last axis (descending) and their int32 indices."""
    values, indices = jax.lax.top_k(value, k)
    return values, indices.astype(xp.int32)


# ----------------------------------------------------------------------------- seeds


def is_native_seed(seed) -> bool:
    return isinstance(seed, jax.Array) and xp.issubdtype(seed.dtype, jax.dtypes.prng_key)


def seed_from_int(value: int):
    # Not `jax.random.key(value)`: without jax_enable_x64 it keeps only the low 32 bits
    # (seed=2**32 would equal seed=0) and the key would depend on the x64 flag. Splitting the
    # int64 into two uint32 words gives what `jax.random.key` gives under x64, in every mode.
    value %= 2**64
    words = np.array([value >> 32, value & 0xFFFFFFFF], dtype=np.uint32)
    return jax.random.wrap_key_data(xp.asarray(words), impl="threefry2x32")


def seed_from_integer_scalar(value):
    """``seed_from_int`` for an integer array (traced under ``jax.jit``): the same two words,
    ``value mod 2^64`` split into high and low halves (sign-extended from 32 bits)."""
    value = xp.asarray(value)
    if value.dtype.itemsize == 8:
        high = (value >> 32).astype(xp.uint32)
    elif xp.issubdtype(value.dtype, xp.signedinteger):
        high = xp.where(value < 0, xp.uint32(0xFFFFFFFF), xp.uint32(0))
    else:
        high = xp.zeros((), xp.uint32)
    low = value.astype(xp.uint32)
    return jax.random.wrap_key_data(xp.stack([high, low]), impl="threefry2x32")


def seed_from_pair(pair):
    return jax.random.wrap_key_data(xp.asarray(pair).astype(xp.uint32), impl="threefry2x32")


def split_seed(seed, count: int):
    return jax.random.split(seed, count)


def fold_in(seed, data):
    return jax.random.fold_in(seed, data)


def sampler_seed(seed):
    """The key itself: distrax, NumPyro and TFP's JAX substrate take keys."""
    return seed


def uniform(shape, seed, dtype, low=0.0, high=1.0):
    return jax.random.uniform(seed, tuple(shape), dtype=xp.dtype(dtype), minval=low, maxval=high)


def normal(shape, seed, dtype):
    return jax.random.normal(seed, tuple(shape), dtype=xp.dtype(dtype))


# ---------------------------------------------------------------- transformations


def compile(function, jit_compile: bool = True):  # noqa: A001 - mirrors tf.function
    return jax.jit(function) if jit_compile else function


def value_and_gradient(function, parameters):
    """Value of ``function(*parameters)`` and the gradients of its sum w.r.t. each parameter."""
    parameters = [xp.asarray(parameter) for parameter in parameters]

    def total(params):
        value = function(*params)
        return xp.sum(value), value

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
    zeros = jax.tree.map(lambda shape: xp.zeros(shape.shape, shape.dtype), shapes)

    def scan(initial, parameters, block):
        def step(carry, seed):
            return jax.tree.map(xp.add, carry, body(parameters, seed)), None

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
    return "float64" if jax.dtypes.canonicalize_dtype(xp.float64) == xp.float64 else "float32"


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
