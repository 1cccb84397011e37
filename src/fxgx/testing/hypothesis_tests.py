"""Calibrated statistical checks of gradient estimates against exact values.

Unbiasedness: for each coordinate ``j``, ``z_j = (mean_j - exact_j) / se_j`` with
``se_j = sqrt(variance_j / n)`` is approximately standard normal when the estimator is
unbiased (central limit theorem; ``n`` is large). Two-sided p-values are adjusted with
Holm's step-down procedure, so the probability that an unbiased estimator fails is at most
``false_failure_rate`` (family-wise, over all coordinates).

Power: a bias of size ``delta`` on coordinate ``j`` is detected with probability at least
``power`` when ``|delta| >= (z_{1 - a/(2m)} + z_{power}) * se_j`` (Bonferroni bound, which Holm
only improves). That bound is the *minimum detectable bias*; asking for a smaller one fails
the check as underpowered rather than passing it.

Rounding: a standard error of 0 (e.g. DisARM at ``theta = 0``, whose estimate is constant)
would make any rounding difference infinitely significant, so ``se`` is floored at
``64 * eps(dtype) * (|exact| + rms)``: differences below that are rounding, not bias.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def two_sided_p_values(z: np.ndarray) -> np.ndarray:
    return np.array([math.erfc(abs(float(value)) / math.sqrt(2.0)) for value in np.ravel(z)])


def holm_rejections(p_values: np.ndarray, level: float) -> np.ndarray:
    """Boolean mask of hypotheses rejected by Holm's step-down procedure at ``level``."""
    p_values = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p_values)
    m = len(p_values)
    rejected = np.zeros(m, dtype=bool)
    for rank, index in enumerate(order):
        if p_values[index] <= level / (m - rank):
            rejected[index] = True
        else:
            break
    return rejected


def minimum_detectable_bias(standard_error, *, false_failure_rate: float, power: float,
                            num_coordinates: int) -> np.ndarray:
    """Smallest per-coordinate bias detected with probability >= ``power``.

    ``(z_{1 - a/(2m)} + z_power) * standard_error`` for a Holm (Bonferroni-bounded) two-sided
    z-test of ``m`` coordinates at family-wise level ``a``.

    Args:
        standard_error: the standard error of each coordinate's mean.
        false_failure_rate: ``a``, the family-wise probability of failing an unbiased
            estimator.
        power: the probability of detecting the bias.
        num_coordinates: ``m``.

    Returns:
        The detectable bias per coordinate (an array of the standard error's shape).
    """
    critical = _NORMAL.inv_cdf(1.0 - false_failure_rate / (2.0 * num_coordinates))
    return (critical + _NORMAL.inv_cdf(power)) * np.asarray(standard_error)


def required_estimates(moments, detectable_bias: float, *, false_failure_rate: float = 1e-5,
                       power: float = 0.99) -> int:
    """How many estimates make ``minimum_detectable_bias <= detectable_bias`` on every
    coordinate, given the per-estimate variance measured in ``moments`` (a pilot run):
    ``n = ((z_{1 - a/(2m)} + z_power) * sigma_max / delta)^2``.

    Args:
        moments: the ``Moments`` of the estimates (``gradient_moments``).
        detectable_bias: ``delta``, the absolute bias to detect.
        false_failure_rate: ``a``, the family-wise false-failure rate.
        power: the probability of detecting a bias of ``delta``.

    Returns:
        The number of estimates (at least 2).

    Raises:
        ValueError: ``detectable_bias`` is not positive.
    """
    if detectable_bias <= 0:
        raise ValueError(f"detectable_bias={detectable_bias} must be positive.")
    critical = _NORMAL.inv_cdf(1.0 - false_failure_rate / (2.0 * moments.mean.size))
    sigma = float(np.sqrt(np.max(moments.variance)))
    return max(2, math.ceil(((critical + _NORMAL.inv_cdf(power)) * sigma / detectable_bias) ** 2))


def rounding_floor(moments, exact) -> np.ndarray:
    eps = float(np.finfo(np.dtype(moments.dtype if moments.dtype != "bfloat16" else "float32")).eps)
    rms = np.sqrt(moments.variance + moments.mean**2)
    return 64.0 * eps * (np.abs(exact) + rms)


@dataclasses.dataclass
class BiasReport:
    """Everything a failure message needs; ``passed`` is the verdict.

    Attributes:
        mean: the mean estimate per coordinate.
        exact: the exact gradient per coordinate.
        standard_error: the standard error of the mean (with a floor for float rounding).
        z: ``(mean - exact) / standard_error``.
        p_values: two-sided p-values of ``z``.
        rejected: the coordinates Holm's procedure rejects at ``false_failure_rate``.
        minimum_detectable_bias: per coordinate, at ``power``.
        false_failure_rate: the family-wise probability of failing an unbiased estimator.
        power: the probability of detecting ``minimum_detectable_bias``.
        count: the number of estimates.
        seed: the seed of the estimates.
        underpowered: the test cannot detect ``requested_bias`` with ``power``.
        requested_bias: the bias the test was asked to be able to detect, or None.
    """

    mean: np.ndarray
    exact: np.ndarray
    standard_error: np.ndarray
    z: np.ndarray
    p_values: np.ndarray
    rejected: np.ndarray
    minimum_detectable_bias: np.ndarray
    false_failure_rate: float
    power: float
    count: int
    seed: object
    underpowered: bool = False
    requested_bias: float | None = None

    @property
    def max_abs_z(self) -> float:
        """The largest ``|z|`` over the coordinates."""
        return float(np.max(np.abs(self.z)))

    @property
    def min_p_value(self) -> float:
        """Holm-adjusted smallest p-value (the family-wise p-value of the test)."""
        m = len(self.p_values)
        return float(min(1.0, np.min(self.p_values) * m))

    @property
    def bias(self) -> np.ndarray:
        """``mean - exact`` per coordinate."""
        return self.mean - self.exact

    @property
    def passed(self) -> bool:
        """The verdict: no coordinate rejected, and the test not underpowered."""
        return not self.underpowered and not bool(np.any(self.rejected))

    def table(self, limit: int = 12) -> str:
        """The coordinates with the largest ``|z|``, as a text table.

        Args:
            limit: the most rows.

        Returns:
            The table: coordinate, mean, exact value, standard error, z.
        """
        order = np.argsort(-np.abs(self.z))[:limit]
        lines = [f"{'coord':>5} {'mean':>13} {'exact':>13} {'std err':>11} {'z':>8}"]
        for j in order:
            lines.append(
                f"{j:>5} {self.mean[j]:>13.6g} {self.exact[j]:>13.6g} "
                f"{self.standard_error[j]:>11.3g} {self.z[j]:>8.2f}"
            )
        return "\n".join(lines)

    def message(self) -> str:
        """The failure message: sample size, seed, error rate, power, and the table.

        Returns:
            The message, several lines.
        """
        head = (
            f"n={self.count} estimates, seed={self.seed!r}, family-wise false-failure rate "
            f"{self.false_failure_rate:g} (Holm over {len(self.z)} coordinates), max |z| = "
            f"{self.max_abs_z:.2f}, smallest detectable bias (power {self.power:g}) = "
            f"{float(np.max(self.minimum_detectable_bias)):.3g}"
        )
        return head + "\n" + self.table()


def check_unbiased(moments, exact, *, false_failure_rate: float = 1e-5,
                   detectable_bias: float | None = None, power: float = 0.99) -> BiasReport:
    """Holm-adjusted z-tests of ``moments.mean`` against ``exact``; never raises on a verdict.

    Args:
        moments: the ``Moments`` of the estimates (``gradient_moments``).
        exact: the exact gradient, with as many coordinates as the estimates.
        false_failure_rate: the family-wise probability of rejecting an unbiased estimator.
        detectable_bias: if given, the test must be able to detect an absolute bias of this
            size on every coordinate with probability ``power``; otherwise it is
            *underpowered*.
        power: see ``detectable_bias``.

    Returns:
        The ``BiasReport``.

    Raises:
        ValueError: ``exact`` has the wrong number of coordinates, or
            ``false_failure_rate`` is outside (0, 1).
    """
    exact = np.ravel(np.asarray(exact, dtype=np.float64))
    if exact.shape != moments.mean.shape:
        raise ValueError(
            f"exact has {exact.size} coordinates but the estimates have {moments.mean.size}."
        )
    if not 0.0 < false_failure_rate < 1.0:
        raise ValueError(f"false_failure_rate={false_failure_rate} must lie in (0, 1).")
    standard_error = np.sqrt(moments.standard_error**2 + rounding_floor(moments, exact) ** 2)
    difference = moments.mean - exact
    with np.errstate(divide="ignore", invalid="ignore"):
        # A zero standard error only arises when both sides are exactly 0 (the floor is
        # otherwise positive): no evidence of bias there.
        z = np.where(standard_error > 0, difference / standard_error,
                     np.where(difference == 0, 0.0, np.inf))
    p_values = two_sided_p_values(z)
    rejected = holm_rejections(p_values, false_failure_rate)
    detectable = minimum_detectable_bias(
        standard_error, false_failure_rate=false_failure_rate, power=power, num_coordinates=z.size
    )
    underpowered = detectable_bias is not None and bool(np.any(detectable > detectable_bias))
    return BiasReport(
        mean=moments.mean, exact=exact, standard_error=standard_error, z=z, p_values=p_values,
        rejected=rejected, minimum_detectable_bias=detectable,
        false_failure_rate=false_failure_rate, power=power, count=moments.count,
        seed=moments.seed, underpowered=underpowered, requested_bias=detectable_bias,
    )


def assert_unbiased(moments, exact, **options) -> BiasReport:
    """Raise ``AssertionError`` if the estimates are biased or the test is underpowered.

    Args:
        moments: the ``Moments`` of the estimates (``gradient_moments``).
        exact: the exact gradient.
        **options: ``false_failure_rate``, ``detectable_bias``, ``power`` of
            ``check_unbiased``.

    Returns:
        The ``BiasReport`` of a passed test.

    Raises:
        AssertionError: a coordinate is rejected, or the test is underpowered; the message
            has the table of the worst coordinates.
    """
    report = check_unbiased(moments, exact, **options)
    if report.underpowered:
        raise AssertionError(
            f"Underpowered: with these samples the smallest detectable bias is "
            f"{float(np.max(report.minimum_detectable_bias)):.3g} > the requested "
            f"{report.requested_bias:.3g}; draw more estimates.\n{report.message()}"
        )
    if not report.passed:
        raise AssertionError(f"Biased gradient estimate.\n{report.message()}")
    return report


def measure_bias(moments, exact, **options) -> BiasReport:
    """The bias ``mean - exact`` with its standard error and Holm-adjusted z-tests.

    Args:
        moments: the ``Moments`` of the estimates (``gradient_moments``).
        exact: the exact gradient.
        **options: as for ``check_unbiased``.

    Returns:
        The ``BiasReport`` (``report.bias`` is ``mean - exact``).
    """
    return check_unbiased(moments, exact, **options)


def assert_biased(moments, exact, *, expected_sign=None, false_failure_rate: float = 1e-5,
                  coordinates=None) -> BiasReport:
    """Raise unless a bias is detected (Holm at ``false_failure_rate``) with ``expected_sign``.

    Args:
        moments: the ``Moments`` of the estimates (``gradient_moments``).
        exact: the exact gradient.
        expected_sign: +1/-1, or an array of them per coordinate; None checks no sign.
        false_failure_rate: the probability of passing when the estimator is unbiased.
        coordinates: the indices whose sign is checked (default: all).

    Returns:
        The ``BiasReport``.

    Raises:
        AssertionError: no bias is detected, or not with the expected sign on every
            selected coordinate.
    """
    report = check_unbiased(moments, exact, false_failure_rate=false_failure_rate)
    if not np.any(report.rejected):
        raise AssertionError(f"No bias detected where one was expected.\n{report.message()}")
    if expected_sign is not None:
        selected = np.arange(report.z.size) if coordinates is None else np.asarray(coordinates)
        signs = np.broadcast_to(np.asarray(expected_sign), report.z.shape)[selected]
        observed = np.sign(report.bias[selected])
        if not (np.all(report.rejected[selected]) and np.all(observed == signs)):
            raise AssertionError(
                f"Bias detected but not with the expected sign {expected_sign} on coordinates "
                f"{selected.tolist()}.\n{report.message()}"
            )
    return report


@dataclasses.dataclass
class VarianceReport:
    """The verdict of ``check_variance``; ``passed`` is the verdict.

    Attributes:
        variance: the sample variance of one estimate, per coordinate.
        expected: the exact variance.
        standard_error: the standard error of the sample variance (from the fourth moment).
        z: ``(variance - expected) / standard_error``.
        rejected: the coordinates Holm's procedure rejects.
        false_failure_rate: the family-wise probability of rejecting a correct variance.
        count: the number of estimates.
        seed: the seed of the estimates.
    """

    variance: np.ndarray
    expected: np.ndarray
    standard_error: np.ndarray
    z: np.ndarray
    rejected: np.ndarray
    false_failure_rate: float
    count: int
    seed: object

    @property
    def passed(self) -> bool:
        """The verdict: no coordinate rejected."""
        return not bool(np.any(self.rejected))

    def message(self) -> str:
        """The failure message: sample size, seed, error rate, and a table.

        Returns:
            The message, several lines.
        """
        rows = [f"{'coord':>5} {'variance':>13} {'expected':>13} {'std err':>11} {'z':>8}"]
        for j in range(min(self.z.size, 12)):
            rows.append(
                f"{j:>5} {self.variance[j]:>13.6g} {self.expected[j]:>13.6g} "
                f"{self.standard_error[j]:>11.3g} {self.z[j]:>8.2f}"
            )
        return f"n={self.count}, seed={self.seed!r}, false-failure rate " \
               f"{self.false_failure_rate:g}\n" + "\n".join(rows)


def check_variance(moments, expected_variance, *, false_failure_rate: float = 1e-5,
                   absolute_tolerance: float = 0.0) -> VarianceReport:
    """z-test of the per-estimate variance against an exact value (SE from the 4th moment).

    Args:
        moments: the ``Moments`` of the estimates (``gradient_moments``).
        expected_variance: the exact variance of one estimate (broadcast to the
            coordinates).
        false_failure_rate: the family-wise probability of rejecting a correct variance.
        absolute_tolerance: added to the standard error; covers rounding when the exact
            variance is 0.

    Returns:
        The ``VarianceReport``.

    Raises:
        ValueError: the estimates take two equally likely values (kurtosis 1), where the
            z-test is not valid (see docs/testing.md).
    """
    expected = np.broadcast_to(np.asarray(expected_variance, np.float64), moments.mean.shape)
    variance = moments.variance
    with np.errstate(divide="ignore", invalid="ignore"):
        kurtosis = moments.fourth_central_moment / (variance * (moments.count - 1)
                                                   / moments.count) ** 2
    degenerate = (variance > 0) & (kurtosis < 1.0 + 1e-3)
    if np.any(degenerate):
        raise ValueError(
            f"The estimates of coordinates {np.flatnonzero(degenerate).tolist()} take two "
            "equally likely values (kurtosis 1): the variance of their sample variance is "
            "O(1/n^2), far below its plug-in estimate's resolution, so no z-test of the "
            "variance is valid. Test the variance where the values are not equally likely."
        )
    standard_error = np.sqrt(moments.variance_standard_error**2 + absolute_tolerance**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(standard_error > 0, (moments.variance - expected) / standard_error,
                     np.where(moments.variance == expected, 0.0, np.inf))
    rejected = holm_rejections(two_sided_p_values(z), false_failure_rate)
    return VarianceReport(
        variance=moments.variance, expected=expected, standard_error=standard_error, z=z,
        rejected=rejected, false_failure_rate=false_failure_rate, count=moments.count,
        seed=moments.seed,
    )


def assert_variance(moments, expected_variance, **options) -> VarianceReport:
    """Raise ``AssertionError`` if the variance differs from ``expected_variance``.

    Args:
        moments: the ``Moments`` of the estimates (``gradient_moments``).
        expected_variance: the exact variance of one estimate.
        **options: ``false_failure_rate``, ``absolute_tolerance`` of ``check_variance``.

    Returns:
        The ``VarianceReport`` of a passed test.

    Raises:
        AssertionError: a coordinate is rejected.
        ValueError: as for ``check_variance``.
    """
    report = check_variance(moments, expected_variance, **options)
    if not report.passed:
        raise AssertionError(f"Variance differs from the exact value.\n{report.message()}")
    return report
