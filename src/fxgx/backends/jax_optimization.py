"""The JAX side of ``fxgx.vi.fit``: a jitted optimisation step with an optax
``GradientTransformation`` (``init``/``update``), and the gradient estimate's variance.

optax is optional: without it (or with ``optimizer=None`` and optax missing) fit uses
``Adam`` below, the update of Kingma & Ba (2015), "Adam: a method for stochastic
optimization" (bias-corrected moments, ``eps`` outside the square root, as optax.adam).
``parameters`` is any pytree of arrays.
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


def check_parameters(parameters):
    leaves = jax.tree_util.tree_leaves(parameters)
    if not leaves:
        raise TypeError("parameters must be a non-empty pytree of JAX arrays.")
    for leaf in leaves:
        if not isinstance(leaf, jax.Array) or not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"Every parameter leaf must be a floating jax.Array, got {type(leaf).__name__}"
                f" {getattr(leaf, 'dtype', '')}."
            )
    return parameters


class Trainer:
    """``step(seed) -> loss`` (one optimizer update) and ``gradient_variance(seeds)``."""

    def __init__(self, loss_fn, parameters, optimizer, learning_rate: float):
        self.parameters = check_parameters(parameters)
        self.optimizer = default_optimizer(learning_rate) if optimizer is None else optimizer
        if not (hasattr(self.optimizer, "init") and hasattr(self.optimizer, "update")):
            raise TypeError(
                "optimizer must be an optax GradientTransformation (init/update) on JAX, "
                f"got {type(self.optimizer).__name__}."
            )
        self.state = self.optimizer.init(self.parameters)

        def loss(parameters, seed):
            value = loss_fn(parameters, seed)
            if jnp.shape(value) != ():
                raise ValueError(f"loss_fn must return a scalar, got shape {jnp.shape(value)}.")
            return value

        gradient = jax.value_and_grad(loss)
        optimizer_update = self.optimizer.update

        def step(parameters, state, seed):
            value, gradients = gradient(parameters, seed)
            updates, state = optimizer_update(gradients, state, parameters)
            parameters = jax.tree_util.tree_map(lambda p, u: p + u.astype(p.dtype),
                                                parameters, updates)
            return parameters, state, value

        def draws(parameters, seeds):
            def one(seed):
                gradients = jax.grad(loss)(parameters, seed)
                leaves = jax.tree_util.tree_leaves(gradients)
                return jnp.concatenate([jnp.ravel(leaf) for leaf in leaves])

            return jax.lax.map(one, seeds)

        self._step = jax.jit(step)
        self._draws = jax.jit(draws)

    def step(self, seed) -> float:
        self.parameters, self.state, value = self._step(self.parameters, self.state, seed)
        return float(value)

    def gradient_variance(self, seeds) -> float:
        """Sum over coordinates of the sample variance (ddof 1) of independent gradient
        estimates, one per seed, at the current parameters."""
        draws = np.asarray(self._draws(self.parameters, seeds), dtype=np.float64)
        return float(np.sum(np.var(draws, axis=0, ddof=1)))

    def final_parameters(self):
        return self.parameters
