"""Fit a surrogate by stochastic optimisation of a Monte Carlo loss, on either framework.

``fit(loss_fn, parameters, num_steps=..., seed=...)`` **minimises** ``loss_fn(parameters,
seed_t)`` (for variational inference the loss is the negative ELBO, ``-fxgx.vi.elbo(...)``),
with a fresh seed at every step ``t``: ``seed_t`` is the ``steps`` stream of ``seed`` folded
with the step's global index ``t``. The same seed gives the same losses, and a run cut in two
(``resume=``) gives the same numbers as one run.

The steps run in blocks inside one compiled loop (``jax.lax.fori_loop`` under ``jax.jit``;
a ``tf.while_loop`` in a ``tf.function`` with AutoGraph, so a Python ``if`` on a tensor in
``loss_fn`` works). Between blocks the progress bar (iterations per second, time left) is
redrawn; blocks grow to about ``BLOCK_SECONDS`` of work, so the loop pays Python and
synchronisation once per block instead of once per step.

- TensorFlow: ``parameters`` is a list of variables, updated in place: ``tf.Variable`` or a
  Keras 3 model's ``model.trainable_variables``. The optimizer is a Keras optimizer of the
  same Keras (default Adam: ``keras.optimizers.Adam`` for Keras 3 variables,
  ``tf_keras.optimizers.Adam`` otherwise); it holds its own state, so resuming passes it on.
  Checkpoint with ``tf.train.Checkpoint(optimizer=result.optimizer, ...)``.
- JAX: ``parameters`` is a pytree (a dict of arrays, Flax ``params``, an Equinox module)
  whose floating arrays are trained; the optimizer is an optax ``GradientTransformation``
  (default ``optax.adam(learning_rate)`` when optax is installed, else fxgx's own Adam with
  the same update) and its state is ``result.optimizer_state``, a pytree (checkpoint it with
  orbax like the parameters).

A step whose loss or gradients are not finite is not applied: ``fit`` stops there and raises
``NonFiniteLossError``, whose ``result`` holds the losses so far and the parameters after the
last finite step. A ``convergence_criterion`` (``fxgx.vi.LossNotDecreasing``) is evaluated in
the loop at every step; ``fit`` stops after the step at which it is met.

With ``trace_variance_every = m > 0``, at global steps ``0, m, 2m, ...`` fit also draws
``VARIANCE_DRAWS`` extra independent gradient estimates at the current parameters (own
seeds, from the ``variance`` stream) and records the total variance ``sum_j Var(g_j)`` (the
trace of the estimate's covariance, sample variance with ``ddof=1``): an unbiased estimate of
``E||g - E g||^2`` for comparing estimators along a run.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from typing import NamedTuple

import numpy as np

from fxgx.backends import find_framework
from fxgx.core.seeds import canonical_seed, split_seed
from fxgx.vi.convergence import LossNotDecreasing
from fxgx.vi.trainer import StopReason, TraceableQuantities, Trainer, stack_trace

__all__ = ["FitResult", "NonFiniteLossError", "StopReason", "TraceableQuantities", "fit",
           "fit_surrogate_posterior"]

#: Each framework's trainer module (``fxgx.vi.trainer.Trainer``).
TRAINER_MODULES = {"tensorflow": "fxgx.vi.fit_tensorflow", "jax": "fxgx.vi.fit_jax"}

#: Independent gradient estimates drawn each time the variance is traced.
VARIANCE_DRAWS = 8
#: Target wall-clock seconds of one compiled block of steps (the progress bar's period).
BLOCK_SECONDS = 0.2
#: Most steps in one block (the length of the per-step output buffers).
MAX_BLOCK_STEPS = 4096
#: Most numbers the per-step outputs of one block may hold (bounds the buffers' memory).
MAX_BLOCK_ELEMENTS = 2**22


class FitResult(NamedTuple):
    """What ``fit`` returns. Pass it back as ``fit(..., resume=result)`` to continue."""

    parameters: object  #: final parameters (TF: the same variables, updated in place)
    losses: np.ndarray  #: [steps run], loss at each step (before its update)
    gradient_variance: np.ndarray  #: [steps run], traced total variance, NaN elsewhere
    seconds: float  #: wall-clock time of the optimisation loop (compilation included)
    trace: object = None  #: ``trace_fn``'s outputs stacked over the steps run (or None)
    optimizer: object = None  #: the optimizer (Keras optimizer or optax transformation)
    optimizer_state: object = None  #: JAX: the optax state; TF: the optimizer's variables
    step: int = 0  #: global steps done so far (resumed runs included)
    converged: bool = False  #: whether ``convergence_criterion`` stopped the run


class NonFiniteLossError(FloatingPointError):
    """``fit`` met a non-finite loss or gradient. ``result`` is the ``FitResult`` up to and
    including that step, with the parameters of the step before it (the last finite ones;
    on TensorFlow the variables themselves were left at those values).

    Args:
        message: the error message (it names the step).
        result: the ``FitResult`` up to and including the non-finite step.

    Attributes:
        result: the ``result`` given.
    """

    def __init__(self, message: str, result: FitResult):
        super().__init__(message)
        self.result = result


class _Progress:
    """A one-line progress bar on stderr with iterations per second and time left."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.start = time.perf_counter()

    def update(self, done: int, loss: float, final: bool = False):
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = done / elapsed
        left = (self.total - done) / rate if rate > 0 else math.inf
        width = 24
        filled = int(width * done / self.total)
        sys.stderr.write(f"\rfit [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"
                         f"  {rate:.3g} it/s  ETA {_duration(left)}  loss {loss:.6g}")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _trainer_module(parameters):
    framework = find_framework(parameters)
    if framework is None:
        raise TypeError(
            "Could not tell the framework from parameters: pass a list of tf.Variable or "
            "Keras 3 variables (TensorFlow) or a pytree of jax.Array (JAX)."
        )
    return framework, importlib.import_module(TRAINER_MODULES[framework.name])


def _check_arguments(loss_fn, num_steps, trace_variance_every, learning_rate, trace_fn,
                     convergence_criterion, resume, devices=None):
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
    if trace_fn is not None and not callable(trace_fn):
        raise TypeError(f"trace_fn must be callable or None, got {type(trace_fn).__name__}.")
    if convergence_criterion is not None:
        if not isinstance(convergence_criterion, LossNotDecreasing):
            raise TypeError(
                "convergence_criterion must be a fxgx.vi.LossNotDecreasing (evaluated inside "
                f"the compiled loop), got {type(convergence_criterion).__name__}.")
        convergence_criterion.check()
    if devices is not None and (isinstance(devices, bool) or (
            isinstance(devices, int) and devices < 1)):
        raise ValueError(f"devices={devices!r} must be None, an int >= 1, a one-axis JAX Mesh "
                         "or a tf.distribute.MirroredStrategy.")
    if resume is not None and not isinstance(resume, FitResult):
        raise TypeError(f"resume must be the FitResult of an earlier fit, got "
                        f"{type(resume).__name__}.")


def fit(loss_fn, parameters, *, num_steps: int, seed, optimizer=None,
        learning_rate: float = 0.01, trace_fn=None, convergence_criterion=None,
        resume: FitResult | None = None, trace_variance_every: int = 0,
        progress: bool = True, data=None, devices=None) -> FitResult:
    """Minimise ``loss_fn(parameters, seed)`` (e.g. ``-fxgx.vi.elbo(...)``) for ``num_steps``.

    **Data-parallel fitting** (``data=`` with ``devices=``). The data the loss reads is
    passed as ``data=`` (a pytree of arrays whose leading axis is the batch) and ``fit``
    calls ``loss_fn(parameters, seed, data)``. It is an argument rather than something the
    loss closes over because then (1) it enters the compiled loop as an input, so ``fit``
    can place it (sharded over the batch axis) and the partitioner sees that placement,
    where a captured array would be folded into the program as a constant; (2) it is the
    one design that carries over to ``tf.distribute``, which must hand each replica its own
    shard; (3) calls without ``data=`` are unchanged. With ``devices=`` the parameters and
    the optimizer state are replicated on every device and ``data`` is split along its
    leading axis:

    - JAX (``devices`` an int ``N``: the first ``N`` of ``jax.devices()``; or a one-axis
      ``jax.sharding.Mesh``): every leaf of ``data`` is placed with
      ``NamedSharding(mesh, P(axis))`` and the parameters with ``P()``; ``jax.jit``'s
      partitioner runs the loss data-parallel and all-reduces the gradients. ``loss_fn``
      keeps the global view (it sees the whole batch), so any loss works unchanged. Random
      numbers do not depend on the device count: JAX's random values do not depend on
      their sharding, and with ``jax_threefry_partitionable`` (True by default in JAX
      0.10.1) a draw of shape ``[S, batch, ...]`` sharded over ``batch`` is generated
      shard by shard without communication and equals the unsharded draw bit for bit
      (tested). Losses and parameters then equal the one-device run up to the order of
      the float sums over the batch.
    - TensorFlow (``devices`` a ``tf.distribute.MirroredStrategy``, or an int ``N``: one
      over the first ``N`` logical GPUs, else CPUs): ``loss_fn`` runs once per replica,
      under ``strategy.run``, on that replica's shard of ``data``, with the same step seed
      on every replica; the replicas' losses and gradients are summed (all-reduced) and
      the optimizer applies the sum once. Write the loss additive over the batch (weight
      the batch-independent terms, prior and entropy, by ``shard size / total size``:
      e.g. ``-(m / n) * elbo`` of the minibatch ELBO with the likelihood scaled by
      ``n / m``), which on one device is the whole loss. Draws whose shape has no batch
      axis (global latents) are then the same on every replica and equal to the
      one-device run, and the sum equals the one-device gradient for estimators linear in
      ``f`` (score function with a fixed or leave-one-out baseline, ARM/DisARM,
      reparameterised). Draws with a batch axis (local latents) would repeat the same
      numbers on every shard: use JAX for those. The variables may be plain or created
      under ``strategy.scope()`` (then make a custom optimizer under the scope too; the
      default one is).

    Args:
      loss_fn: ``(parameters, seed) -> scalar`` to minimise (``(parameters, seed, data)``
        when ``data`` is given); ``seed`` is a framework-native seed, pass it on to
        ``elbo(..., seed=seed)``.
      parameters: TF: a list of ``tf.Variable`` or Keras 3 variables; JAX: a pytree whose
        floating arrays are trained (dict of arrays, Flax params, Equinox module). When
        resuming, the parameters of the earlier result.
      num_steps: number of optimizer updates in this call.
      seed: int, TF seed pair or JAX key; the same one when resuming.
      optimizer: a Keras optimizer (TF) or an optax ``GradientTransformation`` (JAX); when
        given, ``learning_rate`` is not used.
      learning_rate: of the default Adam.
      trace_fn: ``TraceableQuantities -> pytree of arrays``, evaluated in the compiled loop
        at every step; ``result.trace`` stacks its outputs over the steps. ``None``: no trace
        (the losses are always recorded).
      convergence_criterion: a ``fxgx.vi.LossNotDecreasing``; ``fit`` stops after the first
        step at which it is met (``result.converged``). It restarts when resuming.
      resume: the ``FitResult`` of an earlier ``fit`` with the same ``loss_fn`` and ``seed``:
        its optimizer and optimizer state are reused and the step count continues, so that
        ``n`` steps then ``m`` resumed steps equal ``n + m`` steps.
      trace_variance_every: record the gradient estimate's total variance every this many
        steps (0: never).
      progress: draw a progress bar on stderr.
      data: a pytree of arrays (JAX) or a nest of tensors (TF) with the batch as leading
        axis, passed to ``loss_fn`` as its third argument; ``None``: ``loss_fn`` takes two.
      devices: ``None`` (one device, as before); JAX: an int ``N`` or a one-axis
        ``jax.sharding.Mesh``; TF: an int ``N`` or a ``tf.distribute.MirroredStrategy``.
        ``data``'s batch size must be divisible by the number of devices.

    Returns:
      ``FitResult(parameters, losses, gradient_variance, seconds, trace, optimizer,
      optimizer_state, step, converged)``. On JAX with ``devices`` the parameters and the
      optimizer state are replicated over the mesh.

    Raises:
      NonFiniteLossError: at the first step whose loss or gradient is not finite; that
        step is not applied and ``error.result`` holds what was done so far.
      TypeError: parameters of no known framework, a bad optimizer, ``loss_fn`` or
        ``trace_fn`` not callable, an unknown convergence criterion.
      ValueError: ``num_steps < 1``, a negative learning rate or variance period, a loss that
        is not a scalar, more ``devices`` than are visible, a mesh with more than one axis,
        a batch not divisible by the number of devices.
    """
    _check_arguments(loss_fn, num_steps, trace_variance_every, learning_rate, trace_fn,
                     convergence_criterion, resume, devices)
    framework, module = _trainer_module(parameters)
    if resume is not None:
        if optimizer is not None and optimizer is not resume.optimizer:
            raise ValueError("resume= brings its own optimizer; do not pass optimizer= too.")
        optimizer = resume.optimizer
    first_step = 0 if resume is None else int(resume.step)
    streams = split_seed(canonical_seed(seed, framework), ("steps", "variance"), framework)
    trainer: Trainer = module.Trainer(
        loss_fn, parameters, optimizer, float(learning_rate), steps_seed=streams["steps"],
        trace_fn=trace_fn, convergence_criterion=convergence_criterion,
        optimizer_state=None if resume is None else resume.optimizer_state,
        max_block_steps=min(num_steps, MAX_BLOCK_STEPS), max_block_elements=MAX_BLOCK_ELEMENTS,
        data=data, devices=devices)

    losses = np.full(num_steps, np.nan)
    variances = np.full(num_steps, np.nan)
    traces: list = []
    bar = _Progress(num_steps, bool(progress))
    start = time.perf_counter()
    done, block_steps, stop = 0, min(num_steps, 8, trainer.max_block_steps), None
    first_block = True
    while done < num_steps:
        global_step = first_step + done
        if trace_variance_every and global_step % trace_variance_every == 0:
            draws = framework.split_seed(
                framework.fold_in(streams["variance"], global_step), VARIANCE_DRAWS)
            variances[done] = trainer.gradient_variance(draws)
        count = min(block_steps, num_steps - done)
        if trace_variance_every:
            count = min(count, trace_variance_every - global_step % trace_variance_every)
        block_start = time.perf_counter()
        block = trainer.run_block(global_step, count)
        block_seconds = time.perf_counter() - block_start
        ran = count if block.stop_reason == StopReason.RUNNING else block.stop_index + 1
        losses[done:done + ran] = block.losses[:ran]
        if block.trace is not None:
            traces.append((block.trace, ran))
        done += ran
        if block.stop_reason != StopReason.RUNNING:
            stop = block.stop_reason
        bar.update(done, float(losses[done - 1]), final=stop is not None or done == num_steps)
        if stop is not None:
            break
        if not first_block:  # the first block's time is mostly compilation
            block_steps = int(min(trainer.max_block_steps, max(
                1, BLOCK_SECONDS * count / max(block_seconds, 1e-9))))
        first_block = False
    seconds = time.perf_counter() - start
    result = FitResult(
        trainer.final_parameters(), losses[:done], variances[:done], seconds,
        trace=stack_trace(trainer, traces) if trace_fn is not None else None,
        optimizer=trainer.optimizer, optimizer_state=trainer.optimizer_state(),
        step=first_step + done - (1 if stop == StopReason.NON_FINITE else 0),
        converged=stop == StopReason.CONVERGED)
    if stop == StopReason.NON_FINITE:
        step = done - 1
        what = ("the loss is " + f"{losses[step]:g}" if not math.isfinite(losses[step])
                else "a gradient is not finite")
        kept = ("the initial ones" if step == 0 and resume is None
                else f"those after step {first_step + step - 1}")
        raise NonFiniteLossError(
            f"fit stopped at step {first_step + step}: {what}. The parameters are {kept}, the "
            "last finite ones (error.result holds them and the losses). "
            "Lower the learning rate, or look in loss_fn for log(0) or a division by 0; "
            "distributions made with validate_args=True name a non-finite parameter.",
            result,
        )
    return result


def fit_surrogate_posterior(target_log_prob_fn, surrogate_posterior, *, num_steps: int, seed,
                            optimizer=None, learning_rate: float = 0.01,
                            convergence_criterion=None, trace_fn=None, sample_size: int = 1,
                            estimator=None, trainable_variables=None, initial_parameters=None,
                            resume: FitResult | None = None,
                            progress: bool = True) -> FitResult:
    """Fit ``q`` to ``p`` by minimising the negative ELBO, with ``tfp.vi``'s argument names.

    The loss at each step is ``-fxgx.vi.elbo(target_log_prob_fn, q, seed=seed_t,
    num_samples=sample_size, estimator=estimator)``: discrete latents through ``estimator``,
    continuous ones reparameterised. Unlike ``tfp.vi.fit_surrogate_posterior``, which returns
    only the trace, this returns the whole ``FitResult`` (``result.losses`` is the trace of the
    loss; ``result.trace`` holds ``trace_fn``'s outputs).

    Two ways to give ``q``:

    - a distribution that owns its variables (TensorFlow: a TFP distribution built on
      ``tf.Variable`` parameters, or any ``tf.Module``), trained through
      ``trainable_variables`` (default: ``surrogate_posterior.trainable_variables``);
    - a function ``parameters -> distribution`` with ``initial_parameters=`` (either
      framework; the JAX way, as ``tfp.vi.fit_surrogate_posterior_stateless``): a list of
      ``tf.Variable`` on TensorFlow, a pytree of arrays on JAX.

    Args:
      target_log_prob_fn: ``log p(x, z)``, as for ``fxgx.vi.elbo``.
      surrogate_posterior: the distribution, or the function building it (see above).
      num_steps: optimizer updates.
      seed: int, TF seed pair or JAX key.
      optimizer: Keras optimizer (TF) or optax transformation (JAX); default Adam.
      learning_rate: of the default Adam.
      convergence_criterion: a ``fxgx.vi.LossNotDecreasing``, or ``None``.
      trace_fn: as for ``fxgx.vi.fit`` (``TraceableQuantities -> outputs``).
      sample_size: Monte Carlo samples per step (``num_samples`` of the ELBO).
      estimator: gradient estimator for discrete latents (default as ``fxgx.vi.elbo``).
      trainable_variables: TF only: the variables to train (default: those of ``q``).
      initial_parameters: the parameters passed to a ``surrogate_posterior`` function.
      resume: the ``FitResult`` of an earlier call, to continue it.
      progress: draw a progress bar on stderr.

    Returns:
      The ``FitResult`` of ``fxgx.vi.fit``; ``result.parameters`` are the fitted parameters
      (build the fitted ``q`` from them when ``surrogate_posterior`` is a function).

    Raises:
      TypeError: ``q`` neither owns variables nor is a function with ``initial_parameters``.
      NonFiniteLossError: as ``fxgx.vi.fit``.
    """
    from fxgx.vi.elbo import elbo  # noqa: PLC0415 - elbo is the heavier module

    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 1:
        raise ValueError(f"sample_size={sample_size!r} must be an int >= 1.")
    is_distribution = hasattr(surrogate_posterior, "sample") and hasattr(
        surrogate_posterior, "log_prob")
    if not is_distribution and callable(surrogate_posterior):
        if initial_parameters is None:
            raise TypeError("surrogate_posterior is a function of the parameters: pass "
                            "initial_parameters= (a list of tf.Variable, or a JAX pytree).")
        if trainable_variables is not None:
            raise TypeError("trainable_variables= is for a surrogate_posterior distribution; "
                            "with a function, pass initial_parameters= only.")
        build, parameters = surrogate_posterior, initial_parameters
    elif is_distribution:
        if initial_parameters is not None:
            raise TypeError("initial_parameters= is for a surrogate_posterior function "
                            "(parameters -> distribution), not a distribution.")
        parameters = (trainable_variables if trainable_variables is not None
                      else list(getattr(surrogate_posterior, "trainable_variables", ())))
        if not parameters:
            raise TypeError(
                f"surrogate_posterior ({type(surrogate_posterior).__name__}) owns no trainable "
                "variables: build it on tf.Variable parameters (TFP), pass "
                "trainable_variables=, or pass a function parameters -> distribution with "
                "initial_parameters= (fxgx distributions and JAX hold arrays, not variables).")

        def build(_):
            return surrogate_posterior
    else:
        raise TypeError("surrogate_posterior must be a distribution or a function "
                        f"parameters -> distribution, got {type(surrogate_posterior).__name__}.")

    def loss(current, step_seed):
        return -elbo(target_log_prob_fn, build(current), seed=step_seed,
                     num_samples=sample_size, estimator=estimator)

    return fit(loss, parameters, num_steps=num_steps, seed=seed, optimizer=optimizer,
               learning_rate=learning_rate, trace_fn=trace_fn,
               convergence_criterion=convergence_criterion, resume=resume, progress=progress)
