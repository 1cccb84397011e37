"""Measure-valued gradients for normal latents (``fxgx.estimators.measure_valued``).

Unbiasedness against the exact gradients of the Gaussian problems is the catalogue's
(``test_catalogue.py``); the tests the three Gaussian estimators share (non-normal latents,
the same numbers in every execution mode) are in ``test_gaussian_gradients.py``. Here, on a
batch of ``BATCH`` independent batch members (each with its own draws, so one call covers
many seeds): exact zeros where ``f`` does not depend on a coordinate; a hand computation of
the measure-valued formula from the same draws; the laws of the Weibull and double-sided
Maxwell draws (Kolmogorov-Smirnov, false-failure rate 1e-6 each; power stated in the test);
and the evaluation count of the card.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from support import BATCH
from support import batched_gradients as _batched_gradients

from fxgx import catalogue
from fxgx.core.seeds import canonical_seed
from fxgx.distributions import Normal
from fxgx.estimators import double_sided_maxwell_sample, measure_valued, rayleigh_sample
from fxgx.estimators.sampling import sub_seeds
from fxgx.problems import get_problem

#: The JAX instances run the same backend-generic code as the TensorFlow ones: in the slow
#: set (CI runs it), to keep the default suite within its time budget.
pytestmark = pytest.mark.jax_in_slow_set


@pytest.mark.slow  # two traces, about 7 s; the hand computation below is in the default set
def test_measure_valued_gives_exact_zeros_where_f_does_not_depend(framework):
    """``f = c`` gives 0 exactly; ``f = z_0^3`` gives 0 for coordinates 1 and 2 (the coupled
    halves of each difference see the same ``z_0``; up to 1e-6 because XLA may fuse the base
    sample ``mu + sigma eps`` into a multiply-add in one place and not in another), and a
    non-zero gradient for coordinate 0."""
    problem = get_problem("gaussian_cubic")
    _, loc_gradient, scale_gradient = _batched_gradients(
        framework, measure_valued(), problem, seed=3, num_samples=2,
        function=lambda samples: 0.0 * samples[..., 0] + 1.5)
    assert np.all(loc_gradient == 0.0) and np.all(scale_gradient == 0.0)
    _, loc_gradient, scale_gradient = _batched_gradients(
        framework, measure_valued(), problem, seed=3, num_samples=2,
        function=lambda samples: samples[..., 0] ** 3)
    np.testing.assert_allclose(loc_gradient[:, 1:], 0.0, atol=1e-6)
    np.testing.assert_allclose(scale_gradient[:, 1:], 0.0, atol=1e-6)
    assert np.all(np.abs(loc_gradient[:, 0]) > 1e-3) and np.all(scale_gradient[:, 0] != 0.0)


@pytest.mark.jax_in_slow_set
def test_measure_valued_matches_a_hand_computation_from_its_draws(framework):
    """For ``f = sum_i (a_i z_i + b_i z_i^2)`` the weak-derivative differences have closed
    forms in the draws ``W`` (Weibull), ``M`` (Maxwell) and ``eps = M U``:
    ``g_mu_i = mean_s 2 W (a_i + 2 b_i mu_i) / sqrt(2 pi)`` and
    ``g_sigma_i = mean_s [a_i (M - eps) + b_i ((mu_i + sigma_i M)^2 - (mu_i + sigma_i eps)^2)
    / sigma_i]``, computed here in NumPy from the draws the same seed gives."""
    backend = framework.backend
    problem = get_problem("gaussian_quadratic")
    linear, quadratic = problem.linear, problem.quadratic

    def function(samples):
        return backend.xp.sum(samples * (framework.constant(linear)
                                             + samples * framework.constant(quadratic)), axis=-1)

    seed, num_samples = 17, 3
    _, loc_gradient, scale_gradient = _batched_gradients(
        framework, measure_valued(), problem, seed=seed, num_samples=num_samples,
        function=function)
    seeds = sub_seeds(backend, canonical_seed(seed, backend), "weibull", "maxwell", "uniform")
    shape = (num_samples, BATCH, 3)
    weibull = framework.numpy(rayleigh_sample(backend, shape, seeds["weibull"], "float32"))
    maxwell = framework.numpy(
        double_sided_maxwell_sample(backend, shape, seeds["maxwell"], "float32"))
    noise = maxwell * framework.numpy(backend.uniform(shape, seeds["uniform"], "float32"))
    loc, scale = (np.asarray(value, np.float64) for value in problem.parameter_values())
    expected_loc = np.mean(2 * weibull * (linear + 2 * quadratic * loc), 0) / math.sqrt(2 * math.pi)
    expected_scale = np.mean(
        linear * (maxwell - noise)
        + quadratic * ((loc + scale * maxwell) ** 2 - (loc + scale * noise) ** 2) / scale, 0)
    np.testing.assert_allclose(loc_gradient, expected_loc, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scale_gradient, expected_scale, rtol=1e-4, atol=1e-4)


@pytest.mark.jax_in_slow_set
def test_the_weibull_maxwell_and_coupled_normal_draws_have_their_laws(framework):
    """Kolmogorov-Smirnov at 20000 draws each (false-failure rate 1e-6 per law): ``W`` against
    the Rayleigh law (Weibull, scale sqrt 2, shape 2), ``|M|`` against chi with 3 degrees of
    freedom, the sign of ``M`` against a fair coin (binomial test), and ``M U`` against the
    standard normal. Power: a scale off by 10 % moves the KS distance by about 0.04, ten times
    the 1e-6 critical value (about 0.018 at n = 20000)."""
    backend = framework.backend
    seeds = sub_seeds(backend, canonical_seed(123, backend), "weibull", "maxwell", "uniform")
    count = 20000
    weibull = framework.numpy(rayleigh_sample(backend, (count,), seeds["weibull"], "float32"))
    maxwell = framework.numpy(
        double_sided_maxwell_sample(backend, (count,), seeds["maxwell"], "float32"))
    uniform = framework.numpy(backend.uniform((count,), seeds["uniform"], "float32"))
    assert stats.kstest(weibull, stats.weibull_min(2, scale=math.sqrt(2)).cdf).pvalue > 1e-6
    assert stats.kstest(np.abs(maxwell), stats.chi(3).cdf).pvalue > 1e-6
    assert stats.binomtest(int(np.sum(maxwell > 0)), count).pvalue > 1e-6
    assert stats.kstest(maxwell * uniform, stats.norm.cdf).pvalue > 1e-6


def test_measure_valued_evaluates_f_3d_plus_1_times_per_sample(framework):
    """The card's count: ``3 D + 1`` evaluations per sample (``D = 3``: 10, as the card says;
    ``D = 1``: 4), counted as the rows ``f`` receives."""
    card = catalogue.get_card("measure_valued")
    for dimension in (3, 1):
        rows = []

        def function(samples, rows=rows):
            rows.append(int(tuple(samples.shape)[0]))
            return framework.backend.xp.sum(samples, axis=-1)

        distribution = Normal(framework.constant(np.zeros(dimension)), 1.0, event_ndims=1)
        measure_valued()(function, distribution, seed=0, num_samples=5)
        assert sum(rows) == 5 * (3 * dimension + 1)
        if dimension == 3:
            assert card.evaluations(dimension) == 3 * dimension + 1
