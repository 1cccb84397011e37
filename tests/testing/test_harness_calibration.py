"""The harness measured against its own promises.

1. False failures: ``check_unbiased`` on an unbiased estimator (REINFORCE) fails in a
   fraction of seeds that a binomial test finds consistent with the stated rate: for one
   coordinate the rate itself (two-sided), for several coordinates at most the rate and at
   least ``rate / m`` (Holm is conservative, never more lenient than one of its z-tests).
2. Power: three planted bugs whose bias is computed exactly are caught, after the harness
   itself reports power >= 0.99 for that bias (``minimum_detectable_bias <= |bias|``).

Each binomial test has a false-failure rate of 1e-3 (its level). The planted-bug tests use
twice the estimates the harness needs for power 0.99, so each misses its bug with
probability below 1e-6; the matching correct estimator on the same settings passes with
probability 1 - 1e-5. Seeds are fixed, so every run of this file is deterministic.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import binomtest

from fxgx.estimators import reinforce
from fxgx.estimators.base import Estimator
from fxgx.estimators.sampling import draw, evaluate
from fxgx.estimators.score_function import score_function_surrogate
from fxgx.problems import BernoulliToy, enumerate_bernoulli, get_problem
from fxgx.problems.builtin import (
    CATEGORICAL_LOGITS,
    CATEGORICAL_VALUES,
    NONADDITIVE_LOGITS,
    NONADDITIVE_WEIGHTS,
)
from fxgx.testing import assert_biased, assert_unbiased, check_unbiased, gradient_moments

NORMAL = NormalDist()
BINOMIAL_LEVEL = 1e-3  # false-failure rate of each calibration test below

# ============================================================ 1. false-failure rate


def count_failures(problem, *, seeds, rate, backend, num_estimates=2000):
    """How many of the runs (one per seed) of the harness reject the unbiased REINFORCE."""
    exact = problem.exact_gradient()
    failures = 0
    for seed in seeds:
        moments = gradient_moments(
            reinforce(), problem, num_estimates=num_estimates, seed=seed, backend=backend,
            chunk_size=num_estimates, jit_compile=False,
        )
        failures += not check_unbiased(moments, exact, false_failure_rate=rate).passed
    return failures


def assert_calibrated(failures, runs, rate, num_coordinates):
    """Binomial tests at level 1e-3. One coordinate: two-sided against ``rate``. Several:
    not above ``rate`` (Holm's guarantee) and not below ``rate / m`` (any Holm rejection
    includes the smallest p-value's, which alone fails with probability ``rate / m``)."""
    observed = failures / runs
    summary = f"{failures}/{runs} = {observed:.3f} failures at stated rate {rate}"
    print(f"m = {num_coordinates}: {summary}")  # shown by pytest -rA
    if num_coordinates == 1:
        p_value = binomtest(failures, runs, rate, alternative="two-sided").pvalue
        assert p_value >= BINOMIAL_LEVEL, f"miscalibrated (p = {p_value:.2g}): {summary}"
        return
    above = binomtest(failures, runs, rate, alternative="greater").pvalue
    assert above >= BINOMIAL_LEVEL, f"more false failures than stated (p = {above:.2g}): {summary}"
    below = binomtest(failures, runs, rate / num_coordinates, alternative="less").pvalue
    assert below >= BINOMIAL_LEVEL, f"implausibly few failures (p = {below:.2g}): {summary}"


def test_false_failure_rate_short():
    """60 seeds, one coordinate, the harness at a stated rate of 0.2 (so that 60 runs can
    resolve it: 12 failures expected). The two-sided binomial test flags an actual rate of
    0.5 with probability 0.95 and one of 0.02 with probability 0.88; its own false-failure
    rate is 1e-3. The 200-seed versions at 0.05 are in the slow tests below."""
    problem = BernoulliToy(0.45, 0.0)
    runs, rate = 60, 0.2
    failures = count_failures(problem, seeds=range(1000, 1000 + runs), rate=rate, backend="jax")
    assert_calibrated(failures, runs, rate, num_coordinates=1)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("problem_name", ["scalar_toy", "bernoulli_toy", "nonadditive_bernoulli"])
def test_false_failure_rate_200_seeds(problem_name, backend):
    """200 seeds at the stated rate 0.05 (10 failures expected). One coordinate: a
    two-sided binomial test flags an actual rate of 0.15 with probability 0.96 (a standard
    error too small by sqrt(2) gives 0.17). Three and eight coordinates: one-sided tests
    against 0.05 (above) and 0.05 / m (below). Each at level 1e-3."""
    if problem_name == "scalar_toy":
        problem = BernoulliToy(0.45, 0.0)
    else:
        problem = get_problem(problem_name)
    runs, rate = 200, 0.05
    failures = count_failures(problem, seeds=range(5000, 5000 + runs), rate=rate,
                              backend=backend)
    assert_calibrated(failures, runs, rate, num_coordinates=problem.num_coordinates)


def test_the_calibration_check_can_fail():
    """The binomial checks reject the outcomes a broken harness would produce."""
    with pytest.raises(AssertionError, match="miscalibrated"):
        assert_calibrated(30, 60, 0.2, num_coordinates=1)  # rate 0.5 observed
    with pytest.raises(AssertionError, match="miscalibrated"):
        assert_calibrated(0, 60, 0.2, num_coordinates=1)  # a harness that never fails
    with pytest.raises(AssertionError, match="more false failures"):
        assert_calibrated(25, 200, 0.05, num_coordinates=3)
    with pytest.raises(AssertionError, match="implausibly few"):
        assert_calibrated(0, 1000, 0.05, num_coordinates=3)
    assert_calibrated(10, 200, 0.05, num_coordinates=1)
    assert_calibrated(5, 200, 0.05, num_coordinates=3)


# ============================================================ 2. planted bugs


@dataclasses.dataclass(frozen=True)
class SelfBaselineReinforce(Estimator):
    """Planted bug: the baseline of sample s depends on sample s, b_s = 0.5 f(z_s).

    E[(f - 0.5 f) grad log q] = 0.5 grad E[f]: the bias is -0.5 grad E[f]."""

    name = "planted_self_baseline"

    def _estimate(self, backend, function, distribution, seed, num_samples):
        samples = draw(backend, distribution, seed, num_samples)
        values = backend.stop_gradient(
            evaluate(backend, function, samples, distribution, num_samples)
        )
        log_prob = distribution.log_prob(samples)
        return score_function_surrogate(backend, values, log_prob, 0.5 * values, num_samples)


@dataclasses.dataclass(frozen=True)
class MeanBaselineReinforce(Estimator):
    """Planted bug: a "leave-one-out" baseline that leaves nothing out, b_s = mean_j f(z_j).

    The j = s term of the mean correlates with the score of sample s:
    E[g] = (1 - 1/S) grad E[f], a bias of -grad E[f] / S."""

    name = "planted_mean_baseline"

    def _estimate(self, backend, function, distribution, seed, num_samples):
        samples = draw(backend, distribution, seed, num_samples)
        values = backend.stop_gradient(
            evaluate(backend, function, samples, distribution, num_samples)
        )
        log_prob = distribution.log_prob(samples)
        baseline = backend.xp.mean(values, axis=0, keepdims=True)
        return score_function_surrogate(backend, values, log_prob, baseline, num_samples)


@dataclasses.dataclass(frozen=True)
class ScaledGradient(Estimator):
    """Planted bug: another estimator's gradient times ``factor`` (value unchanged)."""

    inner: Estimator = dataclasses.field(default_factory=reinforce)
    factor: float = 1.01
    name = "planted_scaled"

    def _estimate(self, backend, function, distribution, seed, num_samples):
        surrogate = self.inner._estimate(backend, function, distribution, seed, num_samples)
        return surrogate + (self.factor - 1.0) * (surrogate - backend.stop_gradient(surrogate))


def detection_factor(num_coordinates, rate=1e-5, power=0.99):
    """``(z_{1 - rate/(2m)} + z_power)``: minimum detectable bias = this * standard error."""
    return NORMAL.inv_cdf(1 - rate / (2 * num_coordinates)) + NORMAL.inv_cdf(power)


def estimates_for_power(standard_deviation, bias, num_coordinates, margin=2.0):
    """``margin`` times the estimates needed for power 0.99 at the smallest ``|bias|`` on
    every coordinate (a single detectable bias, as ``assert_unbiased`` takes)."""
    smallest = np.min(np.abs(bias))
    needed = (detection_factor(num_coordinates) * np.max(standard_deviation) / smallest) ** 2
    return int(math.ceil(margin * needed))


def assert_caught(moments, exact, bias, coordinates=None):
    """The harness reports power >= 0.99 for ``bias`` on ``coordinates`` and detects it there
    with the sign of the bias."""
    selected = np.arange(len(exact)) if coordinates is None else np.asarray(coordinates)
    report = check_unbiased(moments, exact, false_failure_rate=1e-5, power=0.99)
    detectable = report.minimum_detectable_bias[selected]
    assert np.all(detectable <= np.abs(bias[selected])), (detectable, bias[selected])
    assert not report.passed
    assert_biased(moments, exact, expected_sign=np.sign(bias), coordinates=selected)
    # And the measured bias is the planted one (within 6 standard errors).
    error = np.abs(report.bias - bias)[selected]
    assert np.all(error <= 6 * report.standard_error[selected]), report.message()


def nonadditive_numpy(states):
    """The ``nonadditive_bernoulli`` f in numpy, for states ``[N, 8]``."""
    interaction = states[:, 0] * states[:, 1] * states[:, 2]
    return (states @ NONADDITIVE_WEIGHTS - 1.3) ** 2 + 0.8 * interaction


def test_planted_baseline_that_depends_on_its_own_sample():
    """Bug 1 on ``nonadditive_bernoulli`` (8 coordinates, S = 1). Exact bias by enumeration:
    E[g] = sum_s q(s) 0.5 f(s) grad log q(s), i.e. ``enumerate_bernoulli(0.5 f)``."""
    problem = get_problem("nonadditive_bernoulli")
    exact = problem.exact_gradient()
    _, expected = enumerate_bernoulli(lambda b: 0.5 * problem.function(b), NONADDITIVE_LOGITS)
    bias = expected - exact
    np.testing.assert_allclose(bias, -0.5 * exact, rtol=1e-9)  # the closed form agrees
    # Exact per-estimate standard deviation of REINFORCE, by enumeration; the buggy estimator
    # is REINFORCE halved, so this also covers the control run below.
    states = np.array(list(itertools.product((0.0, 1.0), repeat=8)))
    p = 1.0 / (1.0 + np.exp(-NONADDITIVE_LOGITS))
    q = np.prod(np.where(states == 1.0, p, 1 - p), axis=1)
    per_state = nonadditive_numpy(states)[:, None] * (states - p)
    deviation = np.sqrt(q @ per_state**2 - (q @ per_state) ** 2)
    count = estimates_for_power(deviation, bias, num_coordinates=8)
    assert count < 200_000
    moments = gradient_moments(SelfBaselineReinforce(), problem, num_estimates=count, seed=41,
                               backend="jax")
    assert_caught(moments, exact, bias)
    # Control: the correct estimator, same settings, passes with the same power.
    correct = gradient_moments(reinforce(), problem, num_estimates=count, seed=41,
                               backend="jax")
    assert_unbiased(correct, exact, detectable_bias=float(np.min(np.abs(bias))))


def expected_mean_baseline_estimate(function, logits, num_samples):
    """Exact E[g] of :class:`MeanBaselineReinforce` on a categorical problem, by enumerating
    all ``(K^D)^S`` joint draws of the S samples (numpy, vectorised over draws)."""
    num_variables, num_classes = logits.shape
    indices = np.array(list(itertools.product(range(num_classes), repeat=num_variables)))
    states = np.eye(num_classes)[indices]  # [N, D, K]
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    q = np.prod(np.sum(states * softmax, -1), -1)
    f = function(states)
    score = (states - softmax).reshape(len(states), -1)  # grad log q w.r.t. the logits
    draws = np.array(list(itertools.product(range(len(states)), repeat=num_samples)))
    weight = np.prod(q[draws], axis=1)  # [N^S]
    values = f[draws]  # [N^S, S]
    centred = (values - values.mean(axis=1, keepdims=True)) / num_samples
    total = np.zeros(score.shape[1])
    for s in range(num_samples):
        total += (weight * centred[:, s]) @ score[draws[:, s]]
    return total


def categorical_numpy(states):
    """The ``categorical`` problem's f in numpy, for one-hot states ``[..., 3, 4]``."""
    linear = np.sum(states * CATEGORICAL_VALUES, axis=(-2, -1))
    return (linear - 0.7) ** 2 + states[..., 0, 0] * states[..., 1, 1]


@pytest.mark.parametrize("num_samples", [2, 3])
def test_mean_baseline_closed_form_by_enumeration(num_samples):
    """E[g] = (1 - 1/S) grad E[f] for the mean-including-itself baseline, checked on the
    ``categorical`` problem by enumerating all 64^S joint draws (S = 3: 262144 draws)."""
    problem = get_problem("small_categorical")
    expected = expected_mean_baseline_estimate(categorical_numpy, CATEGORICAL_LOGITS,
                                               num_samples)
    np.testing.assert_allclose(expected, (1 - 1 / num_samples) * problem.exact_gradient(),
                               rtol=1e-9, atol=1e-15)


def test_planted_leave_one_out_baseline_that_keeps_the_sample():
    """Bug 2 on ``categorical`` (12 coordinates), S = 4: bias = -grad E[f] / 4 (closed form,
    checked by enumeration above). The nine coordinates with |bias| >= 0.01 must be detected
    with their sign; the other three (|gradient| < 0.04) are too small for a quick test."""
    problem = get_problem("small_categorical")
    exact = problem.exact_gradient()
    bias = -exact / 4
    coordinates = np.flatnonzero(np.abs(bias) >= 0.01)
    assert len(coordinates) == 9
    moments = gradient_moments(MeanBaselineReinforce(), problem, num_estimates=120_000,
                               seed=42, backend="jax", num_samples=4)
    assert_caught(moments, exact, bias, coordinates)


def test_planted_gradient_scaled_by_one_percent():
    """Bug 3: REINFORCE (baseline E[f] = 1.5, S = 64) times 1.01 on the toy with t = 0
    (f = sum_j b_j, gradient p(1 - p)) at logits (-1, 0, 1). Bias = 0.01 grad E[f] exactly.
    The number of estimates comes from the exact variance (enumeration): twice what power
    0.99 at that bias needs."""
    logits = np.array([-1.0, 0.0, 1.0])
    problem = BernoulliToy(0.0, logits)
    exact = problem.exact_gradient()
    bias = 0.01 * exact
    baseline = float(np.sum(1.0 / (1.0 + np.exp(-logits))))
    states = np.array(list(itertools.product((0.0, 1.0), repeat=3)))
    p = 1.0 / (1.0 + np.exp(-logits))
    q = np.prod(np.where(states == 1.0, p, 1 - p), axis=1)
    per_state = (states.sum(1) - baseline)[:, None] * (states - p)
    np.testing.assert_allclose(q @ per_state, exact, rtol=1e-12)
    num_samples = 64
    deviation = np.sqrt((q @ per_state**2 - exact**2) / num_samples)
    count = estimates_for_power(deviation, bias, num_coordinates=3)
    assert count < 100_000
    scaled = ScaledGradient(inner=reinforce(baseline=baseline), factor=1.01)
    moments = gradient_moments(scaled, problem, num_estimates=count, seed=43, backend="jax",
                               num_samples=num_samples)
    assert_caught(moments, exact, bias)
    correct = gradient_moments(reinforce(baseline=baseline), problem, num_estimates=count,
                               seed=43, backend="jax", num_samples=num_samples)
    assert_unbiased(correct, exact, detectable_bias=float(np.min(np.abs(bias))))
