"""Multi-sample DisARM: ``S = 2n`` samples as ``n`` antithetic pairs, and why a leave-one-out
baseline across the pairs is not a separate estimator.

DisARM's estimate for pair ``i`` is ``1/2 (f(b_i) - f(b~_i)) (b_i - b~_i) sigma(|theta|)``:
only the difference of ``f`` over the pair enters, so any baseline that is the same for both
members of a pair (the mean of ``f`` over the other pairs, say) cancels exactly. DisARM with
``num_samples = n`` (the mean over ``n`` independent pairs) is therefore already the
leave-one-out multi-sample estimator; the first test checks the cancellation on the code,
and that a baseline that differs between the members of a pair does change the estimate
(so the test can fail). The others check that ``n = 4`` pairs are unbiased against the exact
gradient: Holm-adjusted z-tests, family-wise false-failure rate 1e-5, each demanding power
0.99 against ``problem.detectable_bias`` (``assert_unbiased`` fails as underpowered
otherwise). Seeds are fixed, so every run is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.backends import get_framework
from fxgx.estimators import disarm
from fxgx.problems import get_problem
from fxgx.testing import assert_unbiased, gradient_moments

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
