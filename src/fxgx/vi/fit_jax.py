"""The JAX side of ``fxgx.vi.fit``: blocks of optimisation steps in one jitted loop with an optax
``GradientTransformation`` (``init``/``update``), and the gradient estimate's variance.

optax is optional: without it (or with ``optimizer=None`` and optax missing) fit uses
``Adam`` below, the update of Kingma & Ba (2015), "Adam: a method for stochastic
optimization" (bias-corrected moments, ``eps`` outside the square root, as optax.adam).

``parameters`` is any pytree: a dict of arrays, Flax's ``params``, an Equinox module. Its
floating-point array leaves are trained; every other leaf (an activation function, an int,
an integer array) is kept as it is, as ``equinox.partition(model, equinox.is_inexact_array)``
would do. ``loss_fn`` receives the whole pytree. A step whose loss or gradients are not
finite is not applied.
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from fxgx.vi import trainer as trainer_protocol
from fxgx.vi.trainer import Block, StopReason, TraceableQuantities


class AdamState(NamedTuple):
    count: jax.Array
    first_moment: object
    second_moment: object


class Adam(NamedTuple):
    """A minimal optax-compatible Adam: ``init(parameters)``, ``update(gradients, state,
    parameters=None) -> (updates, state)``."""

    learning_rate: float
    first_decay: float = 0.9
    second_decay: float = 0.999
    epsilon: float = 1e-8

    def init(self, parameters):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, parameters)
        return AdamState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update(self, gradients, state, parameters=None):
        del parameters
        count = state.count + 1
        first = jax.tree_util.tree_map(
            lambda m, g: self.first_decay * m + (1 - self.first_decay) * g,
            state.first_moment, gradients)
        second = jax.tree_util.tree_map(
            lambda v, g: self.second_decay * v + (1 - self.second_decay) * g * g,
            state.second_moment, gradients)
        step = count.astype(jnp.float32)
        first_correction = 1 - self.first_decay**step
        second_correction = 1 - self.second_decay**step

        def update(m, v):
            m_hat = m / first_correction.astype(m.dtype)
            v_hat = v / second_correction.astype(v.dtype)
            return -self.learning_rate * m_hat / (jnp.sqrt(v_hat) + self.epsilon)

        return jax.tree_util.tree_map(update, first, second), AdamState(count, first, second)


def default_optimizer(learning_rate: float):
    try:
        import optax  # noqa: PLC0415 - optional dependency

        return optax.adam(learning_rate)
    except ImportError:
        return Adam(learning_rate)


def _is_trainable(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.floating)


class Partition(NamedTuple):
    """A pytree split into its trainable leaves (a list) and everything else."""

    trainable: list
    static: list  # every leaf, None where it is trainable
    # The tree structure; jaxlib ships no type stub, so pyright sees PyTreeDef as a variable.
    definition: jax.tree_util.PyTreeDef  # pyright: ignore[reportInvalidTypeForm]

    def combine(self, trainable):
        leaves = iter(trainable)
        return self.definition.unflatten(
            [next(leaves) if static is None else static for static in self.static])


def partition(parameters) -> Partition:
    leaves, definition = jax.tree_util.tree_flatten(parameters)
    trainable = [leaf for leaf in leaves if _is_trainable(leaf)]
    if not trainable:
        raise TypeError(
            "parameters has no floating jax.Array leaves to train: pass a pytree of "
            "parameters (a dict of arrays, Flax params, an Equinox module), got "
            f"{type(parameters).__name__}."
        )
    static = [None if _is_trainable(leaf) else leaf for leaf in leaves]
    return Partition(trainable, static, definition)


def _all_finite(loss, gradients):
    finite = jnp.all(jnp.isfinite(loss))
    for gradient in gradients:
        finite = finite & jnp.all(jnp.isfinite(gradient))
    return finite


def resolve_mesh(devices):
    """``devices=`` of ``fit`` as a one-axis ``Mesh`` (``None`` stays ``None``)."""
    if devices is None:
        return None
    if isinstance(devices, int) and not isinstance(devices, bool):
        available = jax.devices()
        if devices > len(available):
            raise ValueError(
                f"devices={devices} but JAX sees only {len(available)} "
                f"{available[0].platform} device(s). On CPU, simulate more by setting "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} in the "
                "environment before jax is imported.")
        return jax.sharding.Mesh(np.array(available[:devices]), ("batch",))
    if isinstance(devices, jax.sharding.Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(
                f"devices= must be a one-axis Mesh (its axis is the batch axis), got axes "
                f"{tuple(devices.axis_names)}; make one with jax.sharding.Mesh(devices, "
                "('batch',)).")
        return devices
    raise TypeError(f"devices= must be None, an int or a one-axis jax.sharding.Mesh on JAX, "
                    f"got {type(devices).__name__}.")


def shard_data(data, mesh):
    """Place every leaf of ``data`` split along its leading axis over ``mesh``'s axis."""
    (axis,) = mesh.axis_names
    count = mesh.devices.size
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis))

    def place(path, leaf):
        shape = np.shape(leaf)
        if not shape or shape[0] % count:
            where = jax.tree_util.keystr(path) or "data"
            size = "a scalar" if not shape else f"batch size {shape[0]}"
            raise ValueError(
                f"data{where if where != 'data' else ''} has {size}, which the {count} "
                f"devices of devices= cannot split evenly: give every leaf of data a leading "
                f"(batch) axis whose size is a multiple of {count}.")
        return jax.device_put(leaf, sharding)

    return jax.tree_util.tree_map_with_path(place, data)


def _select(condition, new, old):
    """``new`` if ``condition`` (a scalar bool) holds, else ``old``: a ``lax.cond`` that picks
    whole buffers, not an elementwise ``where`` pass over every parameter and moment."""
    return jax.lax.cond(condition, lambda: new, lambda: old)


class Trainer:
    """Runs blocks of optimisation steps in one jitted ``fori_loop`` (see ``fxgx.vi.fit``).

    ``run_block(first_step, count)`` performs steps ``first_step .. first_step + count - 1``
    (global indices; the step seed is ``fold_in(steps_seed, step)``); a step is applied only
    while the run has not stopped and its loss and gradients are finite.
    """

    def __init__(self, loss_fn, parameters, optimizer, learning_rate: float, *, steps_seed,
                 trace_fn=None, convergence_criterion=None, optimizer_state=None,
                 max_block_steps: int, max_block_elements: int, data=None, devices=None):
        self.partition = partition(parameters)
        self.trainable = self.partition.trainable
        self.mesh = mesh = resolve_mesh(devices)
        replicated = None
        if mesh is not None:
            replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
            self.trainable = jax.device_put(self.trainable, replicated)
            if data is not None:
                data = shard_data(data, mesh)
        self.data = data
        self.optimizer = default_optimizer(learning_rate) if optimizer is None else optimizer
        if not (hasattr(self.optimizer, "init") and hasattr(self.optimizer, "update")):
            raise TypeError(
                "optimizer must be an optax GradientTransformation (init/update) on JAX, "
                f"got {type(self.optimizer).__name__}."
            )
        self.state = (self.optimizer.init(self.trainable) if optimizer_state is None
                      else optimizer_state)
        if replicated is not None:
            self.state = jax.device_put(self.state, replicated)
        combine = self.partition.combine
        criterion = convergence_criterion
        self.steps_seed = steps_seed

        with_data = data is not None

        def loss(trainable, seed, data):
            value = (loss_fn(combine(trainable), seed, data) if with_data
                     else loss_fn(combine(trainable), seed))
            if jnp.shape(value) != ():
                raise ValueError(f"loss_fn must return a scalar, got shape {jnp.shape(value)}.")
            return value

        gradient = jax.value_and_grad(loss)
        optimizer_update = self.optimizer.update

        def one_step(trainable, state, step, data):
            value, gradients = gradient(trainable, jax.random.fold_in(steps_seed, step), data)
            updates, new_state = optimizer_update(gradients, state, trainable)
            # An update has the structure of the gradients it was given: a list of arrays.
            updates = cast("list[jax.Array]", updates)
            new_trainable = [p + u.astype(p.dtype) for p, u in zip(trainable, updates,
                                                                     strict=True)]
            if replicated is not None:  # keep parameters and state whole on every device
                new_trainable, new_state = jax.lax.with_sharding_constraint(
                    (new_trainable, new_state), replicated)
            traced = None
            if trace_fn is not None:
                traced = trace_fn(TraceableQuantities(
                    loss=value, gradients=combine(gradients), parameters=combine(trainable),
                    step=step))
            return value, new_trainable, new_state, _all_finite(value, gradients), traced

        shapes = jax.eval_shape(one_step, self.trainable, self.state, jnp.zeros([], jnp.int32),
                                self.data)
        loss_shape, trace_shapes = shapes[0], shapes[4]
        elements = 1 + sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(
            trace_shapes))
        self.max_block_steps = max(1, min(max_block_steps, max_block_elements // elements))
        capacity = self.max_block_steps
        self.criterion_state = (None if criterion is None
                                else criterion.initial_state(jnp.zeros([], loss_shape.dtype)))

        def run_block(trainable, state, criterion_state, first_step, count, data):
            def body(index, carry):
                trainable, state, criterion_state, reason, stop_index, losses, traced = carry
                value, new_trainable, new_state, finite, outputs = one_step(
                    trainable, state, first_step + index, data)
                running = reason == StopReason.RUNNING
                applied = running & finite
                converged = jnp.zeros([], bool)
                if criterion is not None:
                    new_criterion, converged = criterion.update(criterion_state, value,
                                                                jnp.where)
                    criterion_state = _select(applied, new_criterion, criterion_state)
                new_reason = jnp.where(running & ~finite, int(StopReason.NON_FINITE),
                                       jnp.where(applied & converged,
                                                 int(StopReason.CONVERGED), reason))
                stop_index = jnp.where(running & (new_reason != StopReason.RUNNING), index,
                                       stop_index)
                losses = losses.at[index].set(value)
                if outputs is not None:
                    traced = jax.tree_util.tree_map(
                        lambda buffer, output: buffer.at[index].set(output), traced, outputs)
                return (_select(applied, new_trainable, trainable),
                        _select(applied, new_state, state), criterion_state, new_reason,
                        stop_index, losses, traced)

            traced = (None if trace_shapes is None else jax.tree_util.tree_map(
                lambda leaf: jnp.zeros((capacity, *leaf.shape), leaf.dtype), trace_shapes))
            carry = (trainable, state, criterion_state, jnp.zeros([], jnp.int32),
                     jnp.full([], -1, jnp.int32), jnp.zeros([capacity], loss_shape.dtype),
                     traced)
            return jax.lax.fori_loop(0, count, body, carry)

        def draws(trainable, seeds, data):
            def one(seed):
                gradients = jax.grad(loss)(trainable, seed, data)
                return jnp.concatenate([jnp.ravel(leaf) for leaf in gradients])

            return jax.lax.map(one, seeds)

        self._run_block = jax.jit(run_block)
        self._draws = jax.jit(draws)

    def run_block(self, first_step: int, count: int):
        (trainable, state, criterion_state, reason, stop_index, losses,
         traced) = self._run_block(self.trainable, self.state, self.criterion_state,
                                   jnp.asarray(first_step, jnp.int32),
                                   jnp.asarray(count, jnp.int32), self.data)
        self.trainable, self.state, self.criterion_state = trainable, state, criterion_state
        trace = None if traced is None else jax.tree_util.tree_map(
            lambda buffer: np.asarray(buffer)[:count], traced)
        return Block(np.asarray(losses, np.float64)[:count], trace, int(stop_index),
                     StopReason(int(reason)))

    def map_structure(self, function, *trees):
        return jax.tree_util.tree_map(function, *trees)

    def gradient_variance(self, seeds) -> float:
        """Sum over coordinates of the sample variance (ddof 1) of independent gradient
        estimates, one per seed, at the current parameters."""
        draws = np.asarray(self._draws(self.trainable, seeds, self.data), dtype=np.float64)
        return float(np.sum(np.var(draws, axis=0, ddof=1)))

    def optimizer_state(self):
        return self.state

    def final_parameters(self):
        return self.partition.combine(self.trainable)


def _is_a_trainer(trainer: Trainer) -> trainer_protocol.Trainer:
    """Typed identity: ``pyright src`` fails here when ``Trainer`` stops satisfying the
    protocol that ``fxgx.vi.fit`` relies on."""
    return trainer
