"""Fit a surrogate by stochastic optimisation of a Monte Carlo loss, on either framework.

``fit(loss_fn, parameters, num_steps=..., seed=...)`` calls ``loss_fn(parameters, seed_t)``
with a fresh, independent seed at every step ``t`` (split from ``seed``), differentiates it
and applies the optimizer. The same seed gives the same losses, eagerly on either framework.

- TensorFlow: ``parameters`` is a list of variables, updated in place: ``tf.Variable`` or a
  Keras 3 model's ``model.trainable_variables``. The optimizer is a Keras optimizer of the
  same Keras (default Adam: ``keras.optimizers.Adam`` for Keras 3 variables,
  ``tf_keras.optimizers.Adam`` otherwise); the step runs in a ``tf.function``.
- JAX: ``parameters`` is a pytree (a dict of arrays, Flax ``params``, an Equinox module)
  whose floating arrays are trained; the optimizer is an optax ``GradientTransformation``
  (default ``optax.adam(learning_rate)`` when optax is installed, else fxgx's own Adam with
  the same update); the step is ``jax.jit``-ed.

A step whose loss or gradients are not finite is not applied: ``fit`` stops there and raises
``NonFiniteLossError``, whose ``result`` holds the losses so far and the parameters after the
last finite step.

With ``trace_variance_every = m > 0``, at steps ``0, m, 2m, ...`` fit also draws
``VARIANCE_DRAWS`` extra independent gradient estimates at the current parameters (own
seeds, not shared with the steps) and records the total variance
``sum_j Var(g_j)`` (the trace of the estimate's covariance, sample variance with ``ddof=1``):
an unbiased estimate of ``E||g - E g||^2`` for comparing estimators along a run.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from typing import NamedTuple

import numpy as np

from fxgx.backends import find_backend
from fxgx.core.seeds import canonical_seed, split_seed

#: Independent gradient estimates drawn each time the variance is traced.
VARIANCE_DRAWS = 8


class FitResult(NamedTuple):
    """What ``fit`` returns."""

    parameters: object  #: final parameters (TF: the same variables, updated in place)
    losses: np.ndarray  #: [num_steps], loss at each step (before its update)
    gradient_variance: np.ndarray  #: [num_steps], traced total variance, NaN elsewhere
    seconds: float  #: wall-clock time of the optimisation loop


class NonFiniteLossError(FloatingPointError):
    """``fit`` met a non-finite loss or gradient. ``result`` is the ``FitResult`` up to and
    including that step, with the parameters of the step before it (the last finite ones;
    on TensorFlow the variables themselves were left at those values)."""

    def __init__(self, message: str, result: FitResult):
        super().__init__(message)
        self.result = result


class _Progress:
    """A one-line progress bar on stderr, redrawn at most every 0.1 s."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.last = 0.0

    def update(self, done: int, loss: float):
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < self.total and now - self.last < 0.1:
            return
        self.last = now
        width = 24
        filled = int(width * done / self.total)
        sys.stderr.write(f"\rfit [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"
                         f"  loss {loss:.6g}")
        if done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _trainer_module(parameters):
    backend = find_backend(parameters)
    if backend is None:
        raise TypeError(
            "Could not tell the framework from parameters: pass a list of tf.Variable or "
            "Keras 3 variables (TensorFlow) or a pytree of jax.Array (JAX)."
        )
    return backend, importlib.import_module(f"fxgx.vi.fit_{backend.name}")


def fit(loss_fn, parameters, *, num_steps: int, seed, optimizer=None,
        learning_rate: float = 0.01, trace_variance_every: int = 0,
        progress: bool = True) -> FitResult:
    """Minimise ``loss_fn(parameters, seed)`` (e.g. ``-fxgx.vi.elbo(...)``) for ``num_steps``.

    Args:
      loss_fn: ``(parameters, seed) -> scalar``; ``seed`` is a backend-native seed, pass it
        on to ``elbo(..., seed=seed)``.
      parameters: TF: a list of ``tf.Variable`` or Keras 3 variables; JAX: a pytree whose
        floating arrays are trained (dict of arrays, Flax params, Equinox module).
      num_steps: number of optimizer updates.
      seed: int, TF seed pair or JAX key.
      optimizer: a Keras optimizer (TF) or an optax ``GradientTransformation`` (JAX); when
        given, ``learning_rate`` is not used.
      learning_rate: of the default Adam.
      trace_variance_every: record the gradient estimate's total variance every this many
        steps (0: never).
      progress: draw a progress bar on stderr.

    Returns:
      ``FitResult(parameters, losses, gradient_variance, seconds)``.

    Raises:
      NonFiniteLossError: at the first step whose loss or gradient is not finite; that
        step is not applied and ``error.result`` holds what was done so far.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
    for name, value in (("num_steps", num_steps), ("trace_variance_every", trace_variance_every)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}.")
    if num_steps < 1:
        raise ValueError(f"num_steps={num_steps} must be at least 1.")
    if trace_variance_every < 0:
        raise ValueError(f"trace_variance_every={trace_variance_every} must be >= 0.")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not (
        math.isfinite(learning_rate) and learning_rate >= 0
    ):
        raise ValueError(f"learning_rate={learning_rate!r} must be a finite number >= 0.")
    backend, module = _trainer_module(parameters)
    root = canonical_seed(seed, backend)
    streams = split_seed(root, ("steps", "variance"), backend)
    step_seeds = backend.split_seed(streams["steps"], num_steps)
    variance_seeds = backend.split_seed(streams["variance"], num_steps)
    trainer = module.Trainer(loss_fn, parameters, optimizer, float(learning_rate))

    losses = np.full(num_steps, np.nan)
    variances = np.full(num_steps, np.nan)
    bar = _Progress(num_steps, bool(progress))
    start = time.perf_counter()
    for step in range(num_steps):
        if trace_variance_every and step % trace_variance_every == 0:
            draws = backend.split_seed(variance_seeds[step], VARIANCE_DRAWS)
            variances[step] = trainer.gradient_variance(draws)
        losses[step], applied = trainer.step(step_seeds[step])
        bar.update(step + 1, losses[step])
        if not applied:
            bar.update(num_steps, losses[step])
            result = FitResult(trainer.final_parameters(), losses[:step + 1],
                               variances[:step + 1], time.perf_counter() - start)
            what = ("the loss is " + f"{losses[step]:g}" if not math.isfinite(losses[step])
                    else "a gradient is not finite")
            kept = "the initial ones" if step == 0 else f"those after step {step - 1}"
            raise NonFiniteLossError(
                f"fit stopped at step {step}: {what}. The parameters are {kept}, the last "
                "finite ones (error.result holds them and the losses). "
                "Lower the learning rate, or look in loss_fn for log(0) or a division by 0; "
                "distributions made with validate_args=True name a non-finite parameter.",
                result,
            )
    seconds = time.perf_counter() - start
    return FitResult(trainer.final_parameters(), losses, variances, seconds)
