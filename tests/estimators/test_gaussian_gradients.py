"""Deterministic checks of the Gaussian estimators: pathwise, measure-valued and the
delta-method control variate (``fxgx.estimators.gaussian``).

Unbiasedness against the exact gradients of ``gaussian``, ``gaussian_linear``,
``gaussian_quadratic`` and ``gaussian_cubic`` is the catalogue's (tests/estimators/
test_catalogue.py). Here: identities that hold for every draw, checked on a batch of
``BATCH`` independent batch members (each with its own draws, so one call covers many seeds);
a hand computation of the measure-valued formula from the same draws; the laws of the Weibull
and double-sided Maxwell draws (Kolmogorov-Smirnov, false-failure rate 1e-6 each); the
evaluation count of the card; and the same numbers in every execution mode.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fxgx import catalogue
from fxgx.core.seeds import canonical_seed
from fxgx.distributions import Bernoulli, Normal
from fxgx.estimators import (
    delta_method_control_variate,
    double_sided_maxwell_sample,
    measure_valued,
    pathwise,
    rayleigh_sample,
)
from fxgx.estimators.sampling import sub_seeds
from fxgx.problems import get_problem

#: The JAX instances run the same backend-generic code as the TensorFlow ones: in the slow
#: set (CI runs it), to keep the default suite within its time budget.
pytestmark = pytest.mark.jax_in_slow_set

BATCH = 64
ESTIMATORS = {"pathwise": pathwise, "measure_valued": measure_valued,
              "delta_method_control_variate": delta_method_control_variate}


def _compiled_mode(framework):
    return "function" if framework.name == "tensorflow" else "jit"


def _batched_gradients(framework, estimator, problem, *, seed, num_samples, function=None,
                       dtype="float32", mode=None):
    """``(value, loc_gradient, scale_gradient)`` for ``BATCH`` independent copies of the
    problem's parameters (one row per batch member), as NumPy arrays."""
    loc, scale = (np.broadcast_to(value, (BATCH,) + np.shape(value))
                  for value in problem.parameter_values())

    def surrogate(loc, scale):
        distribution, problem_function = problem.bind(loc, scale)
        return estimator(function or problem_function, distribution, seed=seed,
                         num_samples=num_samples)

    value, (loc_gradient, scale_gradient) = framework.value_and_vjp(
        surrogate, framework.constant(loc, dtype), framework.constant(scale, dtype),
        mode=mode or _compiled_mode(framework))
    return value, loc_gradient, scale_gradient


# ------------------------------------------------------------------------------ pathwise


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


# ------------------------------------------------------------------------ measure-valued


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


# ---------------------------------------------------------------------------- delta method


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


# ------------------------------------------------------------------------------- shared


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_non_normal_latents_are_a_type_error(name):
    import tensorflow as tf

    with pytest.raises(TypeError, match=f"{name} supports normal distributions"):
        ESTIMATORS[name]()(lambda z: z, Bernoulli(tf.constant([0.1])), seed=0, num_samples=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_same_numbers_in_every_mode(framework, name):
    """Eager, ``tf.function`` and XLA on TensorFlow, eager and ``jax.jit`` on JAX: the same
    value and gradients for one seed (float32 rounding only)."""
    problem = get_problem("gaussian_cubic")
    results = [_batched_gradients(framework, ESTIMATORS[name](), problem, seed=4, num_samples=2,
                                  mode=mode) for mode in framework.modes]
    for result in results[1:]:
        for got, expected in zip(result, results[0], strict=True):
            np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
