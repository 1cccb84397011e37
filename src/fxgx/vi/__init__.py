"""Variational inference with any fxgx gradient estimator.

- ``elbo``: the evidence lower bound; discrete latents through the chosen estimator,
  continuous ones reparameterised. Minimise ``-elbo(...)``.
- ``importance_weighted_bound``: the multi-sample bound (VIMCO by default).
- ``fit``: a seeded, compiled optimisation loop that minimises a loss, on TensorFlow
  (Keras optimizers) or JAX (optax), resumable, with ``trace_fn`` and a convergence
  criterion (``LossNotDecreasing``); ``fit_surrogate_posterior`` is the common case with
  ``tfp.vi``'s argument names.

``fxgx.vi.expectation.expectation`` is the building block under both bounds: an estimator's
``E_q[f]`` whose gradient also reaches what ``f`` closes over. See ``docs/vi.md``.
"""

from fxgx.vi.bounds import estimator_target
from fxgx.vi.convergence import LossNotDecreasing
from fxgx.vi.elbo import elbo
from fxgx.vi.fit import FitResult, NonFiniteLossError, fit, fit_surrogate_posterior
from fxgx.vi.importance_weighted import importance_weighted_bound
from fxgx.vi.trainer import StopReason, TraceableQuantities

__all__ = [
    "FitResult",
    "LossNotDecreasing",
    "NonFiniteLossError",
    "StopReason",
    "TraceableQuantities",
    "elbo",
    "estimator_target",
    "fit",
    "fit_surrogate_posterior",
    "importance_weighted_bound",
]
