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

from fxgx.backends import tensorflow_backend
from fxgx.vi import trainer as trainer_protocol
from fxgx.vi.trainer import Block, StopReason, TraceableQuantities


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


def resolve_strategy(devices) -> tf.distribute.Strategy | None:
    """``devices=`` of ``fit`` as a ``tf.distribute.Strategy`` (``None`` stays ``None``)."""
    if devices is None:
        return None
    if isinstance(devices, int) and not isinstance(devices, bool):
        available = (tf.config.list_logical_devices("GPU")
                     or tf.config.list_logical_devices("CPU"))
        if devices > len(available):
            raise ValueError(
                f"devices={devices} but TensorFlow sees only {len(available)} logical "
                f"{available[0].device_type} device(s). On CPU, simulate more before "
                "TensorFlow initialises its devices: tf.config.set_logical_device_configuration("
                "tf.config.list_physical_devices('CPU')[0], "
                f"[tf.config.LogicalDeviceConfiguration()] * {devices}).")
        return tf.distribute.MirroredStrategy([device.name for device in available[:devices]])
    if isinstance(devices, tf.distribute.Strategy):
        return devices
    raise TypeError("devices= must be None, an int or a tf.distribute.MirroredStrategy on "
                    f"TensorFlow, got {type(devices).__name__}.")


def _created_in_scope(strategy, parameters) -> bool:
    """Whether the variables were made under ``strategy.scope()`` (all or none of them)."""
    inside = [strategy.extended.variable_created_in_scope(
        getattr(parameter, "value", parameter) if _is_keras_variable(parameter) else parameter)
        for parameter in parameters]
    if any(inside) and not all(inside):
        raise ValueError(
            "parameters mixes variables created under devices.scope() with variables created "
            "outside it; create all of them under the strategy's scope, or none.")
    return all(inside)


def distribute_data(data, strategy):
    """``data`` split along its leading axis, one equal shard per replica of ``strategy``."""
    count = strategy.num_replicas_in_sync
    flat = [tf.convert_to_tensor(leaf) for leaf in tf.nest.flatten(data)]
    for index, leaf in enumerate(flat):
        size = leaf.shape[0] if leaf.shape.rank else None
        if size is None or size % count:
            what = "a scalar" if not leaf.shape.rank else f"batch size {size}"
            raise ValueError(
                f"data (leaf {index}) has {what}, which the {count} replicas of devices= "
                "cannot split evenly: give every leaf of data a leading (batch) axis whose "
                f"size is a multiple of {count}.")

    def shard(context):
        replica = context.replica_id_in_sync_group
        return tf.nest.pack_sequence_as(data, [
            tf.identity(leaf[replica * (leaf.shape[0] // count):
                             (replica + 1) * (leaf.shape[0] // count)]) for leaf in flat])

    return strategy.experimental_distribute_values_from_function(shard)


def _all_finite(loss, gradients):
    return tf.reduce_all(tf.stack(
        [tf.reduce_all(tf.math.is_finite(loss))]
        + [tf.reduce_all(tf.math.is_finite(gradient)) for gradient in gradients]))


class Trainer:
    """Runs blocks of optimisation steps in one ``tf.function`` (see ``fxgx.vi.fit``).

    ``run_block(first_step, count)`` performs steps ``first_step .. first_step + count - 1``
    in a ``tf.while_loop`` (global indices; the step seed is
    ``stateless_fold_in(steps_seed, step)``); a step is applied only while the run has not
    stopped and its loss and gradients are finite. AutoGraph converts ``loss_fn``.
    """

    def __init__(self, loss_fn, parameters, optimizer, learning_rate: float, *, steps_seed,
                 trace_fn=None, convergence_criterion=None, optimizer_state=None,
                 max_block_steps: int, max_block_elements: int, data=None, devices=None):
        del optimizer_state  # a Keras optimizer holds its own state; resume passes it on
        self.parameters = check_parameters(parameters)
        keras_variables = _is_keras_variable(self.parameters[0])
        self._strategy = strategy = resolve_strategy(devices)
        if strategy is not None and data is None:
            raise ValueError(
                "devices= on TensorFlow needs data=: each replica evaluates loss_fn on its "
                "shard of data, and the replicas' losses and gradients are summed.")
        mirrored = bool(strategy is not None and _created_in_scope(strategy, self.parameters))
        if optimizer is None:
            if mirrored and strategy is not None:  # made (and built) in the scope
                with strategy.scope():
                    optimizer = default_optimizer(learning_rate, keras_variables)
            else:
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
        if mirrored and getattr(optimizer, "_distribution_strategy", strategy) is not strategy:
            raise ValueError(
                "optimizer= was made outside devices.scope() but the variables were made "
                "under it: make the optimizer under `with strategy.scope():` too.")
        self.optimizer = optimizer
        if hasattr(self.optimizer, "build"):
            if not mirrored:
                self.optimizer.build(self.parameters)
            elif strategy is not None:  # mirrored slots for mirrored variables, else the
                with strategy.scope():      # update is applied wrongly
                    self.optimizer.build(self.parameters)
        self._loss_fn = loss_fn
        self._with_data = data is not None
        if data is None:
            self._data = ()
        elif strategy is None:
            self._data = tf.nest.map_structure(tf.convert_to_tensor, data)
        else:
            self._data = distribute_data(data, strategy)
        self._trace_fn = trace_fn
        self._criterion = convergence_criterion
        self._steps_seed = tf.convert_to_tensor(steps_seed)
        self.max_block_steps = max_block_steps
        self._trace_specs = None
        if trace_fn is not None:
            probe = tf.function(self._traced_outputs).get_concrete_function(
                tf.TensorSpec([], tf.int64), self._data)
            self._trace_specs = tf.nest.map_structure(
                lambda output: tf.TensorSpec(output.shape, output.dtype),
                probe.structured_outputs)
            elements = 1 + sum(spec.shape.num_elements() or 1
                               for spec in tf.nest.flatten(self._trace_specs))
            self.max_block_steps = max(1, min(max_block_steps, max_block_elements // elements))
        self._criterion_state = None
        # Fresh functions per trainer: TensorFlow's retracing warning counts traces per Python
        # function, and each fit traces its own loop once by design.
        def run_block(first_step, count, criterion_state, data):
            return self._run_block_function(first_step, count, criterion_state, data)

        def gradients(seeds, data):
            return self._gradients_function(seeds, data)

        self._run_block = tf.function(run_block, autograph=True)
        self._gradients = tf.function(gradients, autograph=True)

    def _local_loss_and_gradients(self, seed, data):
        with tf.GradientTape() as tape:
            loss = (self._loss_fn(self.parameters, seed, data) if self._with_data
                    else self._loss_fn(self.parameters, seed))
        if loss.shape.rank != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {loss.shape}.")
        gradients = tape.gradient(loss, self.parameters,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, gradients

    def _loss_and_gradients(self, seed, data):
        strategy = self._strategy
        if strategy is None:
            return self._local_loss_and_gradients(seed, data)

        def replica(seed, shard):
            loss, gradients = self._local_loss_and_gradients(seed, shard)
            return loss, [tf.convert_to_tensor(gradient) for gradient in gradients]

        # Every replica gets the same step seed and its own shard; the sums are all-reduced.
        losses, gradients = strategy.run(replica, args=(seed, data))
        total = tf.distribute.ReduceOp.SUM
        return (strategy.reduce(total, losses, axis=None),
                [strategy.reduce(total, gradient, axis=None) for gradient in gradients])

    def _step_seed(self, step):
        return tensorflow_backend.fold_in(self._steps_seed, step)

    def _traced_outputs(self, step, data):
        trace_fn = self._trace_fn
        if trace_fn is None:
            raise RuntimeError("_traced_outputs is traced only when fit was given a trace_fn")
        loss, gradients = self._loss_and_gradients(self._step_seed(step), data)
        return trace_fn(TraceableQuantities(
            loss=loss, gradients=list(gradients),
            parameters=[tf.convert_to_tensor(p) for p in self.parameters], step=step))

    def _run_block_function(self, first_step, count, criterion_state, data):
        capacity = self.max_block_steps
        trace_fn = self._trace_fn if self._trace_specs is not None else None
        losses = tf.TensorArray(tf.float64, size=capacity, element_shape=[])
        traces = ()
        if self._trace_specs is not None:
            traces = tf.nest.map_structure(
                lambda spec: tf.TensorArray(spec.dtype, size=capacity, element_shape=spec.shape),
                self._trace_specs)

        def body(index, reason, stop_index, criterion_state, losses, traces):
            step = first_step + tf.cast(index, tf.int64)
            loss, gradients = self._loss_and_gradients(self._step_seed(step), data)
            if trace_fn is not None:
                outputs = trace_fn(TraceableQuantities(
                    loss=loss, gradients=list(gradients),
                    parameters=[tf.convert_to_tensor(p) for p in self.parameters], step=step))
                traces = tf.nest.map_structure(
                    lambda array, output: array.write(index, output), traces, outputs)
            running = tf.equal(reason, int(StopReason.RUNNING))
            finite = _all_finite(loss, gradients)
            applied = tf.logical_and(running, finite)
            converged = tf.constant(False)
            if self._criterion is not None:
                new_criterion, converged = self._criterion.update(
                    criterion_state, tf.cast(loss, tf.float64), tf.where)
                criterion_state = tf.nest.map_structure(
                    lambda new, old: tf.where(applied, new, old), new_criterion,
                    criterion_state)

            def apply():
                self.optimizer.apply_gradients(zip(gradients, self.parameters, strict=True))
                return tf.constant(True)

            tf.cond(applied, apply, lambda: tf.constant(False))
            new_reason = tf.where(tf.logical_and(running, tf.logical_not(finite)),
                                  int(StopReason.NON_FINITE),
                                  tf.where(tf.logical_and(applied, converged),
                                           int(StopReason.CONVERGED), reason))
            stop_index = tf.where(
                tf.logical_and(running, tf.not_equal(new_reason, int(StopReason.RUNNING))),
                index, stop_index)
            losses = losses.write(index, tf.cast(loss, tf.float64))
            return index + 1, new_reason, stop_index, criterion_state, losses, traces

        _, reason, stop_index, criterion_state, losses, traces = tf.while_loop(
            lambda index, *_: index < count, body,
            (tf.constant(0), tf.constant(0), tf.constant(-1), criterion_state, losses, traces))
        stacked = None if self._trace_specs is None else tf.nest.map_structure(
            lambda array: array.stack(), traces)
        return losses.stack(), stacked, stop_index, reason, criterion_state

    def _gradients_function(self, seeds, data):
        flat = []
        for index in range(seeds.shape[0]):
            _, gradients = self._loss_and_gradients(seeds[index], data)
            # tf.cast takes the IndexedSlices gradient of a gathered variable too; the
            # stubs list only Tensor, SparseTensor and RaggedTensor.
            flat.append(tf.concat(
                [tf.reshape(tf.cast(g, tf.float64), [-1])  # pyright: ignore[reportCallIssue, reportArgumentType]
                 for g in gradients], axis=0))
        return tf.stack(flat)

    def run_block(self, first_step: int, count: int):
        if self._criterion is not None and self._criterion_state is None:
            self._criterion_state = self._criterion.initial_state(tf.constant(0.0, tf.float64))
        criterion_state = () if self._criterion is None else self._criterion_state
        losses, traced, stop_index, reason, criterion_state = self._run_block(
            tf.constant(first_step, tf.int64), tf.constant(count, tf.int32), criterion_state,
            self._data)
        if self._criterion is not None:
            self._criterion_state = criterion_state
        trace = None if traced is None else tf.nest.map_structure(
            lambda array: array.numpy()[:count], traced)
        return Block(losses.numpy()[:count], trace, int(stop_index), StopReason(int(reason)))

    def map_structure(self, function, *trees):
        return tf.nest.map_structure(function, *trees)

    def gradient_variance(self, seeds) -> float:
        """Sum over coordinates of the sample variance (ddof 1) of independent gradient
        estimates, one per seed, at the current parameters."""
        draws = self._gradients(seeds, self._data).numpy()
        return float(np.sum(np.var(draws, axis=0, ddof=1)))

    def optimizer_state(self):
        return list(getattr(self.optimizer, "variables", []))

    def final_parameters(self):
        return self.parameters


def _is_a_trainer(trainer: Trainer) -> trainer_protocol.Trainer:
    """Typed identity: ``pyright src`` fails here when ``Trainer`` stops satisfying the
    protocol that ``fxgx.vi.fit`` relies on."""
    return trainer
