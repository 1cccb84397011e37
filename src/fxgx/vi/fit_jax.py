"""The JAX side of ``fxgx.vi.fit``: a jitted optimisation step with an optax
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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


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
    definition: object  # the tree structure

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


class Trainer:
    """``step(seed) -> (loss, applied)`` (one optimizer update, applied only when the loss
    and the gradients are finite) and ``gradient_variance(seeds)``."""

    def __init__(self, loss_fn, parameters, optimizer, learning_rate: float):
        self.partition = partition(parameters)
        self.trainable = self.partition.trainable
        self.optimizer = default_optimizer(learning_rate) if optimizer is None else optimizer
        if not (hasattr(self.optimizer, "init") and hasattr(self.optimizer, "update")):
            raise TypeError(
                "optimizer must be an optax GradientTransformation (init/update) on JAX, "
                f"got {type(self.optimizer).__name__}."
            )
        self.state = self.optimizer.init(self.trainable)
        combine = self.partition.combine

        def loss(trainable, seed):
            value = loss_fn(combine(trainable), seed)
            if jnp.shape(value) != ():
                raise ValueError(f"loss_fn must return a scalar, got shape {jnp.shape(value)}.")
            return value

        gradient = jax.value_and_grad(loss)
        optimizer_update = self.optimizer.update

        def step(trainable, state, seed):
            value, gradients = gradient(trainable, seed)
            updates, new_state = optimizer_update(gradients, state, trainable)
            new_trainable = [p + u.astype(p.dtype) for p, u in zip(trainable, updates,
                                                                     strict=True)]
            return new_trainable, new_state, value, _all_finite(value, gradients)

        def draws(trainable, seeds):
            def one(seed):
                gradients = jax.grad(loss)(trainable, seed)
                return jnp.concatenate([jnp.ravel(leaf) for leaf in gradients])

            return jax.lax.map(one, seeds)

        self._step = jax.jit(step)
        self._draws = jax.jit(draws)

    def step(self, seed) -> tuple[float, bool]:
        trainable, state, value, finite = self._step(self.trainable, self.state, seed)
        finite = bool(finite)
        if finite:
            self.trainable, self.state = trainable, state
        return float(value), finite

    def gradient_variance(self, seeds) -> float:
        """Sum over coordinates of the sample variance (ddof 1) of independent gradient
        estimates, one per seed, at the current parameters."""
        draws = np.asarray(self._draws(self.trainable, seeds), dtype=np.float64)
        return float(np.sum(np.var(draws, axis=0, ddof=1)))

    def final_parameters(self):
        return self.partition.combine(self.trainable)
