"""Fit a surrogate by stochastic optimisation of a Monte Carlo loss, on either framework.

``fit(loss_fn, parameters, num_steps=..., seed=...)`` calls ``loss_fn(parameters, seed_t)``
with a fresh, independent seed at every step ``t`` (split from ``seed``), differentiates it
and applies the optimizer. The same seed gives the same losses, eagerly on either framework.

- TensorFlow: ``parameters`` is a list of ``tf.Variable`` (updated in place); the optimizer
  is a Keras optimizer (default ``tf_keras.optimizers.Adam(learning_rate)``); the step runs
  in a ``tf.function``.
- JAX: ``parameters`` is a pytree of arrays; the optimizer is an optax
  ``GradientTransformation`` (default ``optax.adam(learning_rate)`` when optax is
  installed, else fxgx's own Adam with the same update); the step is ``jax.jit``-ed.

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
            "Could not tell the framework from parameters: pass a list of tf.Variable "
            "(TensorFlow) or a pytree of jax.Array (JAX)."
        )
    return backend, importlib.import_module(f"fxgx.backends.{backend.name}_optimization")


def fit(loss_fn, parameters, *, num_steps: int, seed, optimizer=None,
        learning_rate: float = 0.01, trace_variance_every: int = 0,
        progress: bool = True) -> FitResult:
    """Minimise ``loss_fn(parameters, seed)`` (e.g. ``-fxgx.vi.elbo(...)``) for ``num_steps``.

    Args:
      loss_fn: ``(parameters, seed) -> scalar``; ``seed`` is a backend-native seed, pass it
        on to ``elbo(..., seed=seed)``.
      parameters: TF: a list of ``tf.Variable``; JAX: a pytree of floating arrays.
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
        losses[step] = trainer.step(step_seeds[step])
        bar.update(step + 1, losses[step])
    seconds = time.perf_counter() - start
    return FitResult(trainer.final_parameters(), losses, variances, seconds)
