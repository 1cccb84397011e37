"""DisARM (``fxgx.estimators.disarm``): its exact variance of 0 at ``theta = 0`` on the
Bernoulli toy, its variance below ARM's in ten dimensions, and ``S = 2n`` samples as ``n``
antithetic pairs, with why a leave-one-out baseline across the pairs is not a separate
estimator.

The tests DisARM shares with ARM (exact variances at ``theta = -2`` and their two
derivations, batch and matrix events, every execution mode, TFP inputs, ``f`` never
differentiated, bad input) are parametrised over both cards and live in ``test_arm.py``;
``test_catalogue.py`` tests DisARM against the exact gradient of every problem its card
names.

Multiple pairs: DisARM's estimate for pair ``i`` is ``1/2 (f(b_i) - f(b~_i)) (b_i - b~_i)
sigma(|theta|)``: only the difference of ``f`` over the pair enters, so any baseline that is
the same for both members of a pair (the mean of ``f`` over the other pairs, say) cancels
exactly. DisARM with ``num_samples = n`` (the mean over ``n`` independent pairs) is therefore
already the leave-one-out multi-sample estimator; a test checks the cancellation on the code,
and that a baseline that differs between the members of a pair does change the estimate (so
the test can fail).

Statistical tests, their false-failure rates and power:

- Exact variance at ``theta = 0`` (``assert_variance``): DisARM's exact variance there is 0
  (every estimate is the same number; ``exact_pair_moments``, piecewise integration over
  ``u``); a z-test at false-failure rate 1e-5 with an absolute tolerance of 1e-12 that
  absorbs rounding, and any real spread (ARM's is 2e-4) fails it.
- Ordering in D = 10: one-sided z-tests of ``var_ARM - var_DisARM > 0`` per coordinate
  (independent runs, standard error ``sqrt(se_ARM^2 + se_DisARM^2)``), Holm at 1e-5. A wrong
  ordering passes with probability below 1e-5; with 50,000 estimates each the smallest
  expected z is about 12 against a critical value of 4.8, so a correct estimator fails with
  probability below 1e-9 (power 1 - 1e-9). The same runs check both estimators' means
  (``assert_unbiased``: Holm, 1e-5, power 0.99 for the problem's ``detectable_bias``).
- ``n = 4`` pairs are unbiased against the exact gradient: Holm-adjusted z-tests,
  family-wise false-failure rate 1e-5, each demanding power 0.99 against
  ``problem.detectable_bias`` (``assert_unbiased`` fails as underpowered otherwise).

Seeds are fixed, so every run is deterministic.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from support import exact_pair_moments

from fxgx.backends import get_framework
from fxgx.estimators import arm, disarm
from fxgx.problems import BernoulliToy, EnumeratedBernoulli, get_problem
from fxgx.testing import assert_unbiased, assert_variance, gradient_moments
from fxgx.testing.hypothesis_tests import holm_rejections

ESTIMATORS = {"arm": arm, "disarm": disarm}
TARGET = 0.45
FALSE_FAILURE_RATE = 1e-5

# ----------------------------------------------------------- exact variance on the toy


def test_disarm_variance_is_exactly_zero_at_logit_zero(backend):
    _, variance = exact_pair_moments("disarm", TARGET, 0.0)
    assert variance == 0.0
    moments = gradient_moments(
        disarm(), BernoulliToy(TARGET, 0.0), num_estimates=2**16, seed=12,
        backend=backend.name, dtype="float32", num_samples=1,
    )
    assert_variance(moments, 0.0, false_failure_rate=FALSE_FAILURE_RATE,
                    absolute_tolerance=1e-12)
    np.testing.assert_allclose(moments.mean, BernoulliToy(TARGET, 0.0).exact_gradient(), rtol=1e-6)


# ---------------------------------------------------- below ARM in ten dimensions


WEIGHTS_10 = np.linspace(-1.0, 1.0, 10)
LOGITS_10 = np.linspace(-2.0, 2.0, 10)


def ten_dimensional_function(samples):
    """``(w . b - 0.4)^2 + b_0 b_1`` over ``D = 10`` Bernoulli variables."""
    from fxgx.backends import get_framework

    backend = get_framework(samples)
    weights = backend.xp.asarray(WEIGHTS_10, dtype=samples.dtype)
    linear = backend.xp.sum(samples * weights, axis=-1)
    return backend.xp.square(linear - 0.4) + samples[..., 0] * samples[..., 1]


# Compares DisARM with ARM.
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend", ["jax"], indirect=True)
def test_disarm_variance_is_below_arm_in_ten_dimensions(backend):
    problem = EnumeratedBernoulli(ten_dimensional_function, LOGITS_10, name="ten_dimensions")
    runs = {
        name: gradient_moments(
            ESTIMATORS[name](), problem, num_estimates=50_000, seed=seed,
            backend=backend.name, dtype="float32", num_samples=1,
        )
        for name, seed in (("arm", 21), ("disarm", 22))
    }
    difference = runs["arm"].variance - runs["disarm"].variance
    standard_error = np.sqrt(
        runs["arm"].variance_standard_error ** 2 + runs["disarm"].variance_standard_error ** 2
    )
    z = difference / standard_error
    one_sided_p = np.array([1.0 - NormalDist().cdf(value) for value in z])
    rejected = holm_rejections(one_sided_p, FALSE_FAILURE_RATE)
    assert rejected.all(), f"DisARM's variance is not below ARM's everywhere: z = {z}"
    # Both are unbiased here too (same false-failure rate and power as the catalogue tests).
    for moments in runs.values():
        assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5,
                        detectable_bias=problem.detectable_bias)


# ---------------------------------------------------------- several antithetic pairs

NUM_PAIRS = 4


def _with_pair_baseline(function, num_pairs, second_member_shift=0.0):
    """``f`` minus, for the members of pair ``i``, the mean of ``f`` over the other pairs.

    DisARM calls ``f`` once on ``[b_1..b_n, b~_1..b~_n]``; the baseline of pair ``i`` is
    ``1/(n-1) sum_{j != i} (f(b_j) + f(b~_j)) / 2``, subtracted from ``f(b_i)`` and from
    ``f(b~_i)`` alike (plus ``second_member_shift`` on the ``b~`` half)."""

    def shifted(samples):
        backend = get_framework(samples)
        values = function(samples)
        pair_means = 0.5 * (values[:num_pairs] + values[num_pairs:])
        total = backend.xp.sum(pair_means, axis=0, keepdims=True)
        baseline = backend.stop_gradient((total - pair_means) / (num_pairs - 1))
        both = backend.xp.concat([baseline, baseline + second_member_shift], axis=0)
        return values - both

    return shifted


@pytest.mark.jax_in_slow_set
def test_a_leave_one_out_baseline_across_pairs_cancels(backend):
    problem = get_problem("nonadditive_bernoulli")
    logits = backend.xp.asarray(problem.logits, dtype="float64" if backend.name == "tensorflow"
                             else "float32")

    def gradient(function):
        def surrogate(theta):
            return disarm()(function, problem.distribution(theta), seed=17,
                            num_samples=NUM_PAIRS)

        _, (result,) = backend.value_and_gradient(surrogate, [logits])
        return np.asarray(result)

    plain = gradient(problem.function)
    baselined = gradient(_with_pair_baseline(problem.function, NUM_PAIRS))
    tolerance = 1e-12 if backend.name == "tensorflow" else 1e-5
    np.testing.assert_allclose(baselined, plain, rtol=tolerance, atol=tolerance)
    assert np.abs(plain).max() > 1e-3
    # A shift that differs between the two members of each pair does not cancel.
    unequal = gradient(_with_pair_baseline(problem.function, NUM_PAIRS, 0.5))
    assert np.abs(unequal - plain).max() > 1e-3


@pytest.mark.parametrize(
    "problem_name",
    ["nonadditive_bernoulli",
     pytest.param("bernoulli_toy", marks=pytest.mark.slow),
     pytest.param("decoder_bernoulli", marks=pytest.mark.slow)])
def test_several_pairs_are_unbiased(problem_name):
    problem = get_problem(problem_name)
    moments = gradient_moments(disarm(), problem, num_estimates=16384, seed=31,
                               backend="tensorflow", dtype="float32", num_samples=NUM_PAIRS)
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5,
                    detectable_bias=problem.detectable_bias)
