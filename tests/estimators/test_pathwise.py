"""The pathwise (reparameterisation) estimator for normal latents
(``fxgx.estimators.pathwise``): an identity that holds for every draw.

Unbiasedness against the exact gradients of the Gaussian problems is the catalogue's
(``test_catalogue.py``); the tests the three Gaussian estimators share (non-normal latents,
the same numbers in every execution mode) are in ``test_gaussian_gradients.py``. Here, on a
batch of ``BATCH`` independent batch members (each with its own draws, so one call covers
many seeds): for a linear ``f`` the gradient of the means is exact and that of the scales is
the draws' mean noise (deterministic).
"""

from __future__ import annotations

import numpy as np
import pytest
from support import BATCH
from support import batched_gradients as _batched_gradients

from fxgx.estimators import pathwise
from fxgx.problems import get_problem

#: The JAX instances run the same backend-generic code as the TensorFlow ones: in the slow
#: set (CI runs it), to keep the default suite within its time budget.
pytestmark = pytest.mark.jax_in_slow_set


@pytest.mark.jax_in_slow_set
def test_pathwise_is_exact_for_the_means_of_a_linear_function(framework):
    """``f = a.z``: ``g_mu = a`` for every draw; ``g_sigma = a * mean_s eps_s``, so
    ``sum_i sigma_i g_sigma_i = value - a.mu`` (the value is ``a.(mu + sigma mean eps)``)."""
    problem = get_problem("gaussian_linear")
    value, loc_gradient, scale_gradient = _batched_gradients(
        framework, pathwise(), problem, seed=5, num_samples=3)
    linear, loc, scale = problem.linear, *problem.parameter_values()
    np.testing.assert_allclose(loc_gradient, np.broadcast_to(linear, (BATCH, 3)), rtol=1e-6)
    np.testing.assert_allclose(scale_gradient @ scale, value - linear @ loc, atol=2e-5)
    assert np.std(scale_gradient[:, 0]) > 0.1  # the draws differ between batch members
