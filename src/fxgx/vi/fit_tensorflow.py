"""The TensorFlow side of ``fxgx.vi.fit``: a compiled optimisation step with a Keras
optimizer, and a compiled measurement of the gradient estimate's variance.

``parameters`` is a list of variables: ``tf.Variable`` (``tf.Module``, tf_keras models) or
Keras 3 variables (``model.trainable_variables`` of a ``keras`` model, the Keras that
``pip install tensorflow`` brings). The optimizer is any Keras optimizer with
``apply_gradients`` of the same Keras; the default Adam matches the variables: Keras 3's for
Keras 3 variables, tf_keras' otherwise. Gradients of parameters the loss does not use are
zeros. A step whose loss or gradients are not finite is not applied.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _is_keras_variable(value) -> bool:
    """A Keras 3 variable (``keras.Variable``; on TensorFlow it wraps a ``tf.Variable``)."""
    return (type(value).__module__ or "").split(".")[0] == "keras" and hasattr(value, "assign")


def _is_keras_optimizer(optimizer) -> bool:
    return (type(optimizer).__module__ or "").split(".")[0] == "keras"


def default_optimizer(learning_rate: float, keras_variables: bool):
    if keras_variables:
        import keras  # noqa: PLC0415 - Keras 3, only when its variables are trained

        return keras.optimizers.Adam(learning_rate)
    try:
        import tf_keras  # noqa: PLC0415 - optional, the Keras 2 that matches tf.Variable

        return tf_keras.optimizers.Adam(learning_rate)
    except ImportError:  # pragma: no cover - tf_keras is in the [tf] extra
        import keras  # noqa: PLC0415

        return keras.optimizers.Adam(learning_rate)


def check_parameters(parameters) -> list:
    if isinstance(parameters, tf.Variable) or _is_keras_variable(parameters):
        parameters = [parameters]
    if not isinstance(parameters, (list, tuple)) or not parameters:
        raise TypeError(
            "parameters must be a non-empty list of variables on TensorFlow (tf.Variable, or "
            "a Keras model's model.trainable_variables), got "
            f"{type(parameters).__name__}."
        )
    for index, parameter in enumerate(parameters):
        if not (isinstance(parameter, tf.Variable) or _is_keras_variable(parameter)):
            raise TypeError(
                f"parameters[{index}] is a {type(parameter).__name__}; fit updates variables "
                "in place: pass tf.Variable objects (wrap a tensor in tf.Variable(...)) or a "
                "Keras model's model.trainable_variables."
            )
    kinds = {_is_keras_variable(parameter) for parameter in parameters}
    if len(kinds) > 1:
        raise TypeError(
            "parameters mixes Keras 3 variables with tf.Variable objects; one optimizer "
            "cannot update both. Make the tf.Variable ones keras.Variable (or the other way).")
    return list(parameters)


class Trainer:
    """``step(seed) -> (loss, applied)`` (one optimizer update, applied only when the loss
    and the gradients are finite) and ``gradient_variance(seeds)``."""

    def __init__(self, loss_fn, parameters, optimizer, learning_rate: float):
        self.parameters = check_parameters(parameters)
        keras_variables = _is_keras_variable(self.parameters[0])
        if optimizer is None:
            optimizer = default_optimizer(learning_rate, keras_variables)
        if not hasattr(optimizer, "apply_gradients"):
            raise TypeError(
                "optimizer must be a Keras optimizer (with apply_gradients) on TensorFlow, "
                f"got {type(optimizer).__name__}."
            )
        if keras_variables and not _is_keras_optimizer(optimizer):
            raise TypeError(
                f"The parameters are Keras 3 variables but the optimizer is a "
                f"{type(optimizer).__module__}.{type(optimizer).__name__}; use a Keras 3 "
                "optimizer, e.g. keras.optimizers.Adam(learning_rate)."
            )
        self.optimizer = optimizer
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
        finite = tf.reduce_all(tf.stack(
            [tf.reduce_all(tf.math.is_finite(loss))]
            + [tf.reduce_all(tf.math.is_finite(gradient)) for gradient in gradients]))

        def apply():
            self.optimizer.apply_gradients(zip(gradients, self.parameters, strict=True))
            return tf.constant(True)

        applied = tf.cond(finite, apply, lambda: tf.constant(False))
        return loss, applied

    def _gradients_function(self, seeds):
        flat = []
        for index in range(seeds.shape[0]):
            _, gradients = self._loss_and_gradients(seeds[index])
            flat.append(tf.concat([tf.reshape(tf.cast(g, tf.float64), [-1])
                                   for g in gradients], axis=0))
        return tf.stack(flat)

    def step(self, seed) -> tuple[float, bool]:
        loss, applied = self._step(seed)
        return float(loss.numpy()), bool(applied.numpy())

    def gradient_variance(self, seeds) -> float:
        """Sum over coordinates of the sample variance (ddof 1) of independent gradient
        estimates, one per seed, at the current parameters."""
        draws = self._gradients(seeds).numpy()
        return float(np.sum(np.var(draws, axis=0, ddof=1)))

    def final_parameters(self):
        return self.parameters
