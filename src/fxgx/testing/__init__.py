"""Statistical testing of gradient estimators against exact gradients."""

from fxgx.testing.hypothesis_tests import (
    BiasReport,
    VarianceReport,
    assert_biased,
    assert_unbiased,
    assert_variance,
    check_unbiased,
    check_variance,
    measure_bias,
    minimum_detectable_bias,
    required_estimates,
)
from fxgx.testing.moments import Moments, gradient_moments, merge, moments_of

__all__ = [
    "BiasReport",
    "Moments",
    "VarianceReport",
    "assert_biased",
    "assert_unbiased",
    "assert_variance",
    "check_unbiased",
    "check_variance",
    "gradient_moments",
    "measure_bias",
    "merge",
    "minimum_detectable_bias",
    "moments_of",
    "required_estimates",
]
