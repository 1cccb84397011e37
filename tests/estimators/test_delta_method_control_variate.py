"""The score-function estimator with the delta-method (second-order Taylor) control variate
for normal latents (``fxgx.estimators.delta_method_control_variate``).

Unbiasedness on the cubic is the catalogue's (``test_catalogue.py``; its card runs only
``gaussian_cubic``, since elsewhere every estimate is exact); the tests the three Gaussian
estimators share (non-normal latents, the same numbers in every execution mode) are in
``test_gaussian_gradients.py``. Here, deterministically, on a batch of ``BATCH``
independent batch members (each with its own draws, so one call covers many seeds): the
estimate is the exact gradient for quadratic ``f``, and varies between draws on the cubic.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import BATCH
from support import batched_gradients as _batched_gradients

from fxgx.estimators import delta_method_control_variate
from fxgx.problems import get_problem

#: The JAX instances run the same backend-generic code as the TensorFlow ones: in the slow
#: set (CI runs it), to keep the default suite within its time budget.
pytestmark = pytest.mark.jax_in_slow_set


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", ["gaussian", "gaussian_linear", "gaussian_quadratic"])
def test_delta_method_is_exact_for_quadratic_functions(framework, name):
    """For a quadratic ``f`` (with the cross term ``z_0 z_1`` in ``gaussian_quadratic``) the
    Taylor control variate equals ``f``, so every draw gives the exact gradient (float32
    rounding only)."""
    problem = get_problem(name)
    _, loc_gradient, scale_gradient = _batched_gradients(
        framework, delta_method_control_variate(), problem, seed=9, num_samples=3)
    got = np.concatenate([np.reshape(loc_gradient, (BATCH, -1)),
                          np.reshape(scale_gradient, (BATCH, -1))], axis=1)
    np.testing.assert_allclose(got, np.broadcast_to(problem.exact_gradient(), got.shape),
                               rtol=2e-5, atol=2e-6)


@pytest.mark.jax_in_slow_set
def test_delta_method_is_not_exact_for_a_cubic(framework):
    """On the cubic the Taylor expansion leaves a residual, so the estimates vary between
    draws (its unbiasedness is the catalogue's test): a check that the score-function term is
    there at all."""
    problem = get_problem("gaussian_cubic")
    _, loc_gradient, scale_gradient = _batched_gradients(
        framework, delta_method_control_variate(), problem, seed=9, num_samples=3)
    assert np.min(np.std(np.concatenate([loc_gradient, scale_gradient], 1), axis=0)) > 1e-2
