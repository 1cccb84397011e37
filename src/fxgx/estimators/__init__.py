"""Gradient estimators: each an ``(fx, gx)`` pair handed to ``fxgx.custom_gradient``.

Every estimator is made by a lowercase factory and called the same way:
``estimator(f, distribution, *, seed, num_samples=1)``. The catalogue cards in the
top-level ``estimators/`` folder describe each one.
"""

from fxgx.estimators.base import Estimator
from fxgx.estimators.reinforce import Reinforce, reinforce

# Each estimator module adds its factory below (one line per module).

__all__ = ["Estimator", "Reinforce", "reinforce"]
