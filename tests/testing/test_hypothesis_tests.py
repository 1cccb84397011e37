"""The verdict logic of ``check_unbiased``/``assert_unbiased``/``assert_biased``: Holm's
procedure, failure messages, power and underpowered failures, the rounding floor.

Most checks are deterministic (hand-made moments and p-values). The two checks that draw
estimates (``test_underpowered_*``) run REINFORCE on the scalar Bernoulli toy whose exact
per-estimate variance is known; their only chance failure is a false rejection of an unbiased
estimator, probability 1e-5 each at their fixed seeds.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxgx.estimators import reinforce
from fxgx.problems import BernoulliToy
from fxgx.testing import (
    Moments,
    assert_biased,
    assert_unbiased,
    check_unbiased,
    check_variance,
    gradient_moments,
    minimum_detectable_bias,
)
from fxgx.testing.hypothesis_tests import holm_rejections, two_sided_p_values
from fxgx.testing.moments import moments_of

NORMAL = NormalDist()


def hand_made_moments(mean, standard_deviation, count, *, seed=None, dtype="float64"):
    mean = np.asarray(mean, dtype=np.float64)
    variance = np.broadcast_to(np.asarray(standard_deviation, np.float64) ** 2, mean.shape)
    return Moments(
        count=count, mean=mean, sum_squares=variance * (count - 1),
        sum_cubes=np.zeros_like(mean), sum_fourth_powers=3 * variance**2 * count,
        seed=seed, dtype=dtype,
    )


# ------------------------------------------------------------------ Holm


@pytest.mark.parametrize(
    "p_values, level, expected",
    [
        # sorted: 0.005 <= .05/4, 0.01 <= .05/3, then 0.03 > .05/2: stop.
        ([0.01, 0.04, 0.03, 0.005], 0.05, [True, False, False, True]),
        # Holm rejects 0.02 (<= .05/2 at the second step) where Bonferroni (.05/3) would not.
        ([0.2, 0.001, 0.02], 0.05, [False, True, True]),
        # Every step passes, the last against the full level.
        ([0.04, 0.001], 0.05, [True, True]),
        # The first step fails, so nothing is rejected even though 0.03 < 0.05.
        ([0.03, 0.03], 0.05, [False, False]),
        # A small p-value after a failed step is not rejected: step-down stops at the first
        # failure (0.011 > .05/5 stops before 0.012 is considered).
        ([0.011, 0.012, 0.9, 0.9, 0.9], 0.05, [False, False, False, False, False]),
        ([0.0, 1.0], 1e-12, [True, False]),
        ([0.5], 0.5, [True]),
    ],
)
def test_holm_on_hand_made_p_values(p_values, level, expected):
    np.testing.assert_array_equal(holm_rejections(np.array(p_values), level), expected)


def holm_by_adjusted_p_values(p_values, level):
    """Reference: Holm-adjusted p-values ``max_{j <= i} min(1, (m - j + 1) p_(j))``."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p_values[order]))
    rejected = np.zeros(m, dtype=bool)
    rejected[order] = adjusted <= level
    return rejected


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    p_values=st.lists(st.floats(0.0, 1.0) | st.sampled_from([0.01, 0.02, 0.025]),
                      min_size=1, max_size=10),
    level=st.floats(1e-6, 0.5),
)
def test_holm_matches_adjusted_p_values_and_bonferroni_bound(p_values, level):
    p_values = np.array(p_values)
    rejected = holm_rejections(p_values, level)
    np.testing.assert_array_equal(rejected, holm_by_adjusted_p_values(p_values, level))
    # Any p-value at or below level / m is rejected whatever the others are: the basis of
    # the power guarantee (minimum detectable bias uses the Bonferroni critical value).
    assert np.all(rejected[p_values <= level / len(p_values)])


def test_two_sided_p_values():
    z = np.array([0.0, 1.959963984540054, -2.5758293035489004, 40.0])
    np.testing.assert_allclose(two_sided_p_values(z), [1.0, 0.05, 0.01, 0.0], atol=1e-15)


# ------------------------------------------------------------------ power


@pytest.mark.parametrize("rate", [1e-5, 0.05])
@pytest.mark.parametrize("power", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("num_coordinates", [1, 3, 12])
def test_a_bias_equal_to_the_minimum_detectable_bias_is_detected_with_that_power(
    rate, power, num_coordinates
):
    """Exact: with z ~ N(delta / se, 1), coordinate j is surely rejected when its p-value is
    below rate / m, i.e. |z| > c = z_{1 - rate/(2m)}; that has probability
    Phi(delta/se - c) + Phi(-delta/se - c), which must be >= power at delta = MDB."""
    standard_error = np.array([0.5, 2.0])
    detectable = minimum_detectable_bias(standard_error, false_failure_rate=rate, power=power,
                                         num_coordinates=num_coordinates)
    critical = NORMAL.inv_cdf(1 - rate / (2 * num_coordinates))
    for delta, se in zip(detectable, standard_error, strict=True):
        shift = delta / se
        probability = NORMAL.cdf(shift - critical) + NORMAL.cdf(-shift - critical)
        # The near tail gives exactly ``power``; the far tail adds a sliver.
        far_tail = NORMAL.cdf(-2 * critical - NORMAL.inv_cdf(power))
        assert probability >= power
        assert probability == pytest.approx(power + far_tail, abs=1e-9)
    # Monotone: more coordinates or more power need a larger bias.
    more = minimum_detectable_bias(standard_error, false_failure_rate=rate, power=power,
                                   num_coordinates=num_coordinates + 1)
    assert np.all(more > detectable)


# ------------------------------------------------------------------ messages


def test_failure_message_prints_mean_exact_standard_error_z_and_seed():
    moments = hand_made_moments([0.3, 0.1], [0.2, 0.1], 1000, seed=424242)
    with pytest.raises(AssertionError) as failure:
        assert_unbiased(moments, [0.1, 0.1])
    message = str(failure.value)
    standard_error = 0.2 / math.sqrt(1000)
    z = 0.2 / standard_error
    assert "Biased" in message
    assert "seed=424242" in message
    for header in ("mean", "exact", "std err", "z"):
        assert header in message
    # The row of the biased coordinate, in the table's formats.
    row = f"{0:>5} {0.3:>13.6g} {0.1:>13.6g} {standard_error:>11.3g} {z:>8.2f}"
    assert row in message, message
    assert "n=1000" in message and "Holm over 2 coordinates" in message


def test_a_passing_report_carries_the_same_numbers():
    moments = hand_made_moments([0.1001, -0.2], [0.1, 0.3], 10_000, seed=(1, 2))
    report = assert_unbiased(moments, [0.1, -0.2])
    assert report.passed and report.seed == (1, 2) and report.count == 10_000
    np.testing.assert_allclose(report.standard_error, [0.001, 0.003], rtol=1e-9)
    np.testing.assert_allclose(report.z, [0.1, 0.0], atol=1e-9)
    assert report.min_p_value == pytest.approx(min(1.0, 2 * two_sided_p_values([0.1])[0]))


def test_invalid_arguments_are_errors_not_verdicts():
    moments = hand_made_moments([0.1, 0.2], 0.1, 100)
    with pytest.raises(ValueError, match="coordinates"):
        check_unbiased(moments, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="false_failure_rate"):
        check_unbiased(moments, [0.1, 0.2], false_failure_rate=0.0)


# ------------------------------------------------------------------ underpowered

TOY = BernoulliToy(0.45, 0.0)  # one coordinate; the estimate takes two values


def reinforce_toy_standard_deviation():
    """Exact: g = f(b) (b - 1/2) is 0.55^2 / 2 (b = 1) or -0.45^2 / 2 (b = 0), each w.p. 1/2."""
    values = np.array([0.55**2 * 0.5, -(0.45**2) * 0.5])
    return float(np.sqrt(np.mean(values**2) - np.mean(values) ** 2))


def required_estimates(bias, *, rate=1e-5, power=0.99):
    factor = NORMAL.inv_cdf(1 - rate / 2) + NORMAL.inv_cdf(power)
    return math.ceil((factor * reinforce_toy_standard_deviation() / bias) ** 2)


@pytest.mark.parametrize("backend", ["jax", "tensorflow"], indirect=True)
def test_underpowered_request_fails_and_more_samples_pass(backend):
    """Ask for power 0.99 at bias 0.005: about 29k estimates are needed. With a quarter of
    them the smallest detectable bias is ~0.01, so the check fails as underpowered even though
    the estimator is unbiased; with three times as many it passes."""
    bias = 0.005
    needed = required_estimates(bias)
    assert 25_000 < needed < 35_000

    def run(count):
        return gradient_moments(reinforce(), TOY, num_estimates=count, seed=99,
                                backend=backend.name, chunk_size=8192)

    few = run(needed // 4)
    report = check_unbiased(few, TOY.exact_gradient(), detectable_bias=bias)
    assert report.underpowered and not report.passed
    assert not np.any(report.rejected)  # nothing looked biased: only the power is missing
    assert report.minimum_detectable_bias[0] == pytest.approx(2 * bias, rel=0.1)
    with pytest.raises(AssertionError, match="Underpowered") as failure:
        assert_unbiased(few, TOY.exact_gradient(), detectable_bias=bias)
    assert "seed=99" in str(failure.value) and "draw more estimates" in str(failure.value)

    many = run(3 * needed)
    report = assert_unbiased(many, TOY.exact_gradient(), detectable_bias=bias)
    assert report.minimum_detectable_bias[0] < bias


def test_underpowered_even_without_a_chance_of_rejection():
    """A huge standard error: no z-test can reject, and the check must still fail."""
    moments = hand_made_moments([5.0], [1e3], 100)
    report = check_unbiased(moments, [0.0], detectable_bias=1.0)
    assert report.underpowered and not report.passed
    with pytest.raises(AssertionError, match="Underpowered"):
        assert_unbiased(moments, [0.0], detectable_bias=1.0)
    # Without a power requirement the same data passes: that is exactly the silent pass that
    # the requirement exists to prevent.
    assert check_unbiased(moments, [0.0]).passed


# ------------------------------------------------------------------ rounding floor


def test_rounding_floor_for_a_constant_estimate():
    """A zero-variance estimate (DisARM at theta = 0) equal to the exact value up to float32
    rounding passes; a 1e-3 relative error does not; and the floor follows the dtype."""
    exact = np.array([0.123456789, -2.5e-3, 7.0])
    rounded = exact.astype(np.float32).astype(np.float64)
    assert not np.array_equal(rounded, exact)
    constant = hand_made_moments(rounded, 0.0, 10_000, dtype="float32")
    assert check_unbiased(constant, exact).passed
    wrong = hand_made_moments(exact * (1 + 1e-3), 0.0, 10_000, dtype="float32")
    assert not check_unbiased(wrong, exact).passed
    # At float64 the same float32 rounding error is far above the floor: detected.
    as_float64 = hand_made_moments(rounded, 0.0, 10_000, dtype="float64")
    assert not check_unbiased(as_float64, exact).passed


# ------------------------------------------------------------------ assert_biased


def test_assert_biased_checks_detection_and_sign():
    moments = hand_made_moments([0.2, -0.1, 0.0], 0.1, 10_000)
    exact = [0.1, 0.0, 0.0]
    report = assert_biased(moments, exact, expected_sign=[1, -1, 1], coordinates=[0, 1])
    np.testing.assert_array_equal(report.rejected, [True, True, False])
    with pytest.raises(AssertionError, match="expected sign"):
        assert_biased(moments, exact, expected_sign=-1, coordinates=[0])
    with pytest.raises(AssertionError, match="expected sign"):  # coordinate 2 is not biased
        assert_biased(moments, exact, expected_sign=1, coordinates=[0, 2])
    with pytest.raises(AssertionError, match="No bias detected"):
        assert_biased(hand_made_moments([0.1], 0.1, 100), [0.1])


def test_variance_test_refuses_two_equally_likely_values():
    """For a symmetric two-point sample the variance of ``s^2`` is O(1/n^2) and ``s^2`` is
    far from normal: ``check_variance`` must refuse instead of returning a meaningless z."""
    data = np.where(np.random.default_rng(0).random((10_000, 1)) < 0.5, 0.15125, -0.10125)
    with pytest.raises(ValueError, match="two equally likely values"):
        check_variance(moments_of(data), [0.0159390625])
    uneven = np.where(np.random.default_rng(0).random((10_000, 1)) < 0.2, 1.0, 0.0)
    assert check_variance(moments_of(uneven), [0.16]).count == 10_000
