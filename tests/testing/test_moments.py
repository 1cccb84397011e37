"""Streaming moments: the Chan/Pebay merge, chunked compiled estimates on both frameworks,
and the standard error of the variance.

The merge and chunking checks are deterministic (float tolerances only). The two statistical
checks (``test_streaming_reinforce_matches_exact_mean_and_variance``) have a false-failure
rate of 1e-5 each (Holm over the coordinates) at a fixed seed, and the unbiasedness check
first proves it could detect a bias of 0.005 with power 0.99.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxgx.core.custom_gradient import custom_gradient
from fxgx.core.seeds import canonical_seed
from fxgx.estimators import reinforce
from fxgx.estimators.base import Estimator
from fxgx.problems import get_problem
from fxgx.testing import (
    Moments,
    assert_unbiased,
    assert_variance,
    gradient_moments,
    merge,
    moments_of,
)
from fxgx.testing.moments import gradient_estimates_function

# ------------------------------------------------------------------ helpers


def two_pass(samples):
    """Reference: mean and central sums of powers 2..4 by numpy, in two passes, float64."""
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean(axis=0)
    centred = samples - mean
    return mean, (centred**2).sum(0), (centred**3).sum(0), (centred**4).sum(0)


def merge_all(parts, *, tree: bool):
    """Merge a list of Moments left to right, or pairwise as a balanced tree."""
    if not tree:
        total = Moments(count=0, mean=0.0, sum_squares=0.0, sum_cubes=0.0, sum_fourth_powers=0.0)
        for part in parts:
            total = merge(total, part)
        return total
    while len(parts) > 1:
        parts = [
            merge(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    return parts[0]


def assert_moments_close(moments, samples, rtol=1e-9):
    """Compare with :func:`two_pass`, with absolute tolerances on each moment's natural scale
    (``rtol * n * sd^k``): M3 is ~0 for symmetric data, so a relative test alone would not do."""
    reference = two_pass(samples)
    count = len(samples)
    scale = np.sqrt(reference[1] / count)  # per-coordinate standard deviation
    assert moments.count == count
    actual = (moments.mean, moments.sum_squares, moments.sum_cubes, moments.sum_fourth_powers)
    for power, (name, got, expected) in enumerate(
        zip(("mean", "M2", "M3", "M4"), actual, reference, strict=True), start=1
    ):
        natural = scale**power * (1 if power == 1 else count)
        tolerance = rtol * (np.abs(expected) + natural)
        assert np.all(np.abs(got - expected) <= tolerance), (name, got, expected)


def random_data(rng, kind, count, columns=3):
    if kind == "normal":
        return rng.normal(size=(count, columns))
    if kind == "shifted":  # a large common offset: the naive sum-of-powers formula fails here
        return 1e4 + rng.normal(size=(count, columns))
    if kind == "skewed":
        return rng.exponential(size=(count, columns)) ** 2
    if kind == "discrete":
        return rng.integers(0, 3, size=(count, columns)).astype(float)
    raise ValueError(kind)


def uneven_chunks(rng, count, num_chunks):
    cuts = np.sort(rng.choice(np.arange(1, count), size=num_chunks - 1, replace=False))
    return np.split(np.arange(count), cuts)


# ------------------------------------------------------------------ the merge


@pytest.mark.parametrize("kind", ["normal", "shifted", "skewed", "discrete"])
@pytest.mark.parametrize("tree", [False, True], ids=["sequential", "tree"])
def test_merge_of_uneven_chunks_equals_two_pass_numpy(kind, tree):
    rng = np.random.default_rng(sum(map(ord, kind)))
    data = random_data(rng, kind, 5003)
    chunks = uneven_chunks(rng, len(data), 17)
    data = np.concatenate([data, data[-1:] + 0.5])
    chunks.append(np.arange(len(data) - 1, len(data)))  # and a one-element chunk
    assert min(map(len, chunks)) == 1 and max(map(len, chunks)) > 10 * min(map(len, chunks))
    merged = merge_all([moments_of(data[index]) for index in chunks], tree=tree)
    assert_moments_close(merged, data)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    offset=st.sampled_from([0.0, -3.0, 1e3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_merge_property_any_partition(sizes, offset, seed):
    rng = np.random.default_rng(seed)
    data = offset + rng.standard_t(df=5, size=(sum(sizes), 2))
    edges = np.cumsum([0] + sizes)
    parts = [moments_of(data[a:b]) for a, b in itertools.pairwise(edges)]
    if sum(sizes) < 2:
        return
    assert_moments_close(merge_all(parts, tree=False), data, rtol=1e-8)
    assert_moments_close(merge_all(parts, tree=True), data, rtol=1e-8)


def test_merge_with_an_empty_summary_is_the_identity():
    data = np.random.default_rng(0).normal(size=(10, 2))
    summary = moments_of(data)
    empty = dataclasses.replace(summary, count=0)
    assert merge(empty, summary) is summary
    assert merge(summary, empty) is summary


def test_merge_detects_a_wrong_formula():
    """The reference comparison can fail: drop Pebay's cross term from M3 and it does."""
    rng = np.random.default_rng(1)
    data = random_data(rng, "skewed", 400)
    first, second = moments_of(data[:100]), moments_of(data[100:])
    merged = merge(first, second)
    delta = second.mean - first.mean
    wrong = dataclasses.replace(
        merged, sum_cubes=merged.sum_cubes - 3.0 * delta * (100 * second.sum_squares
                                                              - 300 * first.sum_squares) / 400
    )
    with pytest.raises(AssertionError):
        assert_moments_close(wrong, data)


# ------------------------------------------------------------------ chunked streaming

PATTERN = np.array(
    [[-1.5, 0.25, 3.0], [0.5, -2.0, 0.125], [2.25, 1.0, -0.75], [0.0, 4.0, 1.5]]
)  # exactly representable in float32


@dataclasses.dataclass(frozen=True)
class PeriodicGradient(Estimator):
    """Test double: ignores the seed; replicate ``b`` of a chunk has gradient
    ``PATTERN[b mod 4]``. Any partition into chunks of multiples of 4 therefore holds the
    same multiset of gradients, so every chunk size must give the same moments."""

    name = "periodic_gradient"

    def _estimate(self, backend, function, distribution, seed, num_samples):
        logits = distribution.logits  # [chunk, D]
        batch, dimension = tuple(logits.shape)
        if batch % 4:
            raise ValueError(f"chunk size {batch} is not a multiple of 4")
        pattern = backend.xp.asarray(PATTERN[:, :dimension], dtype=logits.dtype)
        gradient = backend.xp.tile(pattern, (batch // 4, 1))
        value = backend.xp.sum(backend.stop_gradient(logits), axis=-1)
        return custom_gradient(value, gradient, logits, axis=-1)


def test_every_chunk_size_gives_the_same_count_and_moments(backend):
    """Chunks of 4 to 48, with and without a partial last chunk (44 = 5 * 8 + 4 = 3 * 12 + 8
    = 2 * 20 + 4), all reduce to the moments of the same multiset (the periodic pattern):
    compared with two-pass numpy, float32 tolerance."""
    problem = get_problem("bernoulli_toy")
    for num_estimates, chunk_size in ((48, 4), (48, 48), (44, 8), (44, 12), (44, 20)):
        moments = gradient_moments(
            PeriodicGradient(), problem, num_estimates=num_estimates, seed=0,
            backend=backend.name, chunk_size=chunk_size,
        )
        assert moments.count == num_estimates, chunk_size
        expected = np.tile(PATTERN, (num_estimates // 4, 1))
        assert_moments_close(moments, expected, rtol=1e-6)


def test_partial_chunk_keeps_only_its_first_rows(backend):
    """10 estimates in chunks of 8 are chunk 0 (8 rows) and the first 2 rows of chunk 1, each
    chunk drawn from its split of the seed: rebuilt here row by row, uncompiled."""
    problem = get_problem("bernoulli_toy")
    estimator = reinforce()
    partial = gradient_moments(estimator, problem, num_estimates=10, seed=5,
                               backend=backend.name, chunk_size=8)
    chunk_seeds = backend.split_seed(canonical_seed(5, backend), 2)
    tiled = [backend.xp.broadcast_to(value, (8,) + tuple(value.shape))
             for value in problem.parameters(backend, "float32")]
    estimates = gradient_estimates_function(estimator, problem, backend, 1)
    rows = [np.asarray(estimates(tiled, chunk_seeds[index])) for index in range(2)]
    kept = np.concatenate([rows[0], rows[1][:2]])
    assert partial.count == 10
    assert not np.allclose(kept.mean(0), np.concatenate(rows).mean(0))
    assert_moments_close(partial, kept, rtol=1e-5)


def test_same_seed_same_moments_different_seed_different(backend):
    problem = get_problem("bernoulli_toy")

    def run(seed):
        return gradient_moments(reinforce(), problem, num_estimates=3000, seed=seed,
                                backend=backend.name, chunk_size=2048)

    first, again, other = run(11), run(11), run(12)
    for field in ("mean", "sum_squares", "sum_cubes", "sum_fourth_powers"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.mean, other.mean)
    assert first.seed == 11 and first.backend == backend.name


def reinforce_exact_variance(problem):
    """Exact per-estimate variance of REINFORCE (S = 1, no baseline) on a vector-logit
    Bernoulli problem, by enumerating all 2^D states in numpy."""
    logits = problem.logits
    states = np.array(list(itertools.product((0.0, 1.0), repeat=len(logits))))
    p = 1.0 / (1.0 + np.exp(-logits))
    q = np.prod(np.where(states == 1.0, p, 1 - p), axis=1)
    f = np.sum((states - problem.target) ** 2, axis=1)
    per_state = f[:, None] * (states - p)
    mean = q @ per_state
    np.testing.assert_allclose(mean, problem.exact_gradient(), rtol=1e-12)
    return q @ per_state**2 - mean**2


def test_streaming_reinforce_matches_exact_mean_and_variance(backend):
    """400k REINFORCE estimates in 7 chunks (the last partial) on the 3-coordinate toy.

    Unbiasedness: Holm z-test, false-failure rate 1e-5, required power 0.99 at bias 0.005.
    Variance: Holm z-test of the streamed variance against the enumerated exact variance
    (standard error from the streamed fourth moment), false-failure rate 1e-5.
    """
    problem = get_problem("bernoulli_toy")
    moments = gradient_moments(reinforce(), problem, num_estimates=400_000, seed=2026,
                               backend=backend.name, chunk_size=65_536)
    assert moments.count == 400_000
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5,
                    detectable_bias=problem.detectable_bias)
    assert_variance(moments, reinforce_exact_variance(problem), false_failure_rate=1e-5)


# ------------------------------------------------------------------ standard error of s^2


def bernoulli_central_moments(p):
    """Variance and fourth central moment of a Bernoulli(p) variable."""
    variance = p * (1 - p)
    fourth = p * (1 - p) ** 4 + (1 - p) * p**4  # = p (1 - p) (1 - 3p + 3p^2)
    return variance, fourth


def variance_of_sample_variance(p, n):
    """Var(s^2) = (mu_4 - sigma^4 (n - 3) / (n - 1)) / n for iid samples."""
    variance, fourth = bernoulli_central_moments(p)
    return (fourth - variance**2 * (n - 3) / (n - 1)) / n


@pytest.mark.parametrize("p", [0.1, 0.37, 0.5])
@pytest.mark.parametrize("n", [4, 7])
def test_the_formula_is_exact_for_bernoulli_samples(p, n):
    """Validate the textbook formula itself by enumerating all 2^n Bernoulli samples."""
    total, total_square = 0.0, 0.0
    for sample in itertools.product((0.0, 1.0), repeat=n):
        sample = np.array(sample)
        weight = p ** sample.sum() * (1 - p) ** (n - sample.sum())
        s2 = sample.var(ddof=1)
        total += weight * s2
        total_square += weight * s2**2
    exact = total_square - total**2
    np.testing.assert_allclose(total, p * (1 - p), rtol=1e-12)
    np.testing.assert_allclose(exact, variance_of_sample_variance(p, n), rtol=1e-12)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.8])
def test_variance_standard_error_on_a_bernoulli_variable(p):
    """Data with exactly p n ones: the plug-in moments are the Bernoulli(p) moments (up to
    n / (n - 1)), so ``variance_standard_error`` must match the formula to O(1/n).

    (p = 0.5 is left out on purpose: there mu_4 = sigma^4, the true Var(s^2) is O(1/n^2),
    and a sample with exactly n/2 ones carries no information about it; see docs/testing.md.)"""
    n = 200_000
    ones = round(p * n)
    data = np.zeros((n, 1))
    data[:ones] = 1.0
    np.random.default_rng(0).shuffle(data)
    moments = moments_of(data)
    np.testing.assert_allclose(moments.variance, p * (1 - p) * n / (n - 1), rtol=1e-9)
    expected = np.sqrt(variance_of_sample_variance(p, n))
    np.testing.assert_allclose(moments.variance_standard_error, expected, rtol=5e-5)
    # The same numbers merged from uneven chunks.
    chunks = uneven_chunks(np.random.default_rng(1), n, 9)
    merged = merge_all([moments_of(data[index]) for index in chunks], tree=True)
    np.testing.assert_allclose(merged.variance_standard_error, expected, rtol=5e-5)
