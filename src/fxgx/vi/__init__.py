"""Variational inference with any fxgx gradient estimator.

- ``elbo``: the evidence lower bound; discrete latents through the chosen estimator,
  continuous ones reparameterised. Minimise ``-elbo(...)``.
- ``importance_weighted_bound``: the multi-sample bound (VIMCO by default).
- ``fit``: a seeded optimisation loop on TensorFlow (Keras optimizers) or JAX (optax).

``fxgx.vi.expectation.expectation`` is the building block under both bounds: an estimator's
``E_q[f]`` whose gradient also reaches what ``f`` closes over. See ``docs/vi.md``.
"""

from fxgx.vi.elbo import elbo, estimator_target
from fxgx.vi.fit import FitResult, NonFiniteLossError, fit
from fxgx.vi.importance_weighted import importance_weighted_bound

__all__ = [
    "FitResult",
    "NonFiniteLossError",
    "elbo",
    "estimator_target",
    "fit",
    "importance_weighted_bound",
]
