"""The TensorFlow side of ``fxgx.vi.fit``: a compiled optimisation step with a Keras
optimizer, and a compiled measurement of the gradient estimate's variance.

``parameters`` is a list of ``tf.Variable``; the optimizer is any Keras optimizer with
``apply_gradients`` (default: ``tf_keras.optimizers.Adam``, else ``keras.optimizers.Adam``).
Gradients of parameters the loss does not use are zeros.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def default_optimizer(learning_rate: float):
    try:
        import tf_keras  # noqa: PLC0415 - optional, the Keras 2 that matches tf.Variable

        return tf_keras.optimizers.Adam(learning_rate)
    except ImportError:  # pragma: no cover - tf_keras is in the [tf] extra
        import keras  # noqa: PLC0415

        return keras.optimizers.Adam(learning_rate)


def check_parameters(parameters) -> list:
    if isinstance(parameters, tf.Variable):
        parameters = [parameters]
    if not isinstance(parameters, (list, tuple)) or not parameters:
        raise TypeError(
            "parameters must be a non-empty list of tf.Variable on TensorFlow, got "
            f"{type(parameters).__name__}."
        )
    for index, parameter in enumerate(parameters):
        if not isinstance(parameter, tf.Variable):
            raise TypeError(
                f"parameters[{index}] is a {type(parameter).__name__}; fit updates "
                "tf.Variable objects in place: wrap it in tf.Variable(...)."
            )
    return list(parameters)


class Trainer:
    """``step(seed) -> loss`` (one optimizer update) and ``gradient_variance(seeds)``."""

    def __init__(self, loss_fn, parameters, optimizer, learning_rate: float):
        self.parameters = check_parameters(parameters)
        self.optimizer = default_optimizer(learning_rate) if optimizer is None else optimizer
        if not hasattr(self.optimizer, "apply_gradients"):
            raise TypeError(
                "optimizer must be a Keras optimizer (with apply_gradients) on TensorFlow, "
                f"got {type(self.optimizer).__name__}."
            )
        if hasattr(self.optimizer, "build"):
            self.optimizer.build(self.parameters)
        self._loss_fn = loss_fn
        self._step = tf.function(self._step_function, autograph=False)
        self._gradients = tf.function(self._gradients_function, autograph=False)

    def _loss_and_gradients(self, seed):
        with tf.GradientTape() as tape:
            loss = self._loss_fn(self.parameters, seed)
        if loss.shape.rank != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {loss.shape}.")
        gradients = tape.gradient(loss, self.parameters,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, gradients

    def _step_function(self, seed):
        loss, gradients = self._loss_and_gradients(seed)
        self.optimizer.apply_gradients(zip(gradients, self.parameters, strict=True))
        return loss

    def _gradients_function(self, seeds):
        flat = []
        for index in range(seeds.shape[0]):
            _, gradients = self._loss_and_gradients(seeds[index])
            flat.append(tf.concat([tf.reshape(tf.cast(g, tf.float64), [-1])
                                   for g in gradients], axis=0))
        return tf.stack(flat)

    def step(self, seed) -> float:
        return float(self._step(seed).numpy())

    def gradient_variance(self, seeds) -> float:
        """Sum over coordinates of the sample variance (ddof 1) of independent gradient
        estimates, one per seed, at the current parameters."""
        draws = self._gradients(seeds).numpy()
        return float(np.sum(np.var(draws, axis=0, ddof=1)))

    def final_parameters(self):
        return self.parameters
