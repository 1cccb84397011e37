"""Streamed estimates (``chunk_size=``) against the chunks computed one call at a time.

A streamed call with ``N`` samples in chunks of ``C`` is, by definition, the weighted mean of
plain calls with ``C`` samples (the last chunk: the rest) and the seeds ``chunk_seeds``. Each
test computes those plain calls one by one (a Python loop, no streaming) and checks that the
compiled loop gives the same value and the same gradients, w.r.t. the distribution's parameters
and w.r.t. a parameter ``f`` reads, for a non-uniform upstream cotangent. The leave-one-out
REINFORCE streams exactly: it is checked against its one-shot formula over the union of the
chunks' samples, written out in NumPy, and so is the two-pass optimal baseline. Deterministic:
equalities to float32 rounding, no statistics.
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx import catalogue
from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.estimators import reinforce, reinforce_leave_one_out
from fxgx.estimators.sampling import sub_seeds
from fxgx.estimators.streaming import chunk_seeds

NUM_SAMPLES, CHUNK_SIZE = 700, 128  # five full chunks and one of 60
COTANGENT = [1.0, 3.0]  # two batch members, weighted differently
# The default set streams REINFORCE (and the leave-one-out REINFORCE, below); the slow set
# streams every card that streams.
DEFAULT_CARDS = ("reinforce",)
CARDS = {card.name: card for card in catalogue.load_cards()}


def streaming_cards():
    for card in CARDS.values():
        estimator = card.make()
        if estimator.streaming.kind != "mean":
            continue  # "exact" and "two_pass": checked against their one-shot formulas below
        marks = () if card.name in DEFAULT_CARDS else (pytest.mark.slow,)
        yield pytest.param(card.name, marks=marks, id=card.name)


def problem_for(estimator, framework):
    """``(make distribution from the parameter, f(z, weight), parameter, weight)``."""
    rng = np.random.default_rng(0)
    if "bernoulli" in estimator.supports or "any" in estimator.supports:
        parameter, weight = rng.normal(size=(2, 3)), rng.uniform(size=3)

        def distribution(logits):
            return Bernoulli(logits, event_ndims=1)
    elif "categorical" in estimator.supports:
        parameter, weight = rng.normal(size=(2, 3, 4)), rng.uniform(size=(3, 4))

        def distribution(logits):
            return OneHotCategorical(logits, event_ndims=1)
    else:
        parameter, weight = rng.normal(size=(2, 3)), rng.uniform(size=3)

        def distribution(loc):
            return Normal(loc, loc * 0 + 0.7, event_ndims=1)

    def function(weight):
        def f(z):
            axes = tuple(range(2, len(z.shape)))
            return framework.backend.xp.sum((z - weight) ** 2, axis=axes)
        return f

    # On TensorFlow, what f reads must be a variable (as a Keras layer's weights are): the
    # streamed loop differentiates w.r.t. the variables it reads, not captured tensors.
    return distribution, function, framework.constant(parameter), framework.variable(weight)


def streamed_and_chunked(framework, estimator, mode="jit"):
    distribution, function, parameter, weight = problem_for(estimator, framework)
    seed = framework.backend.split_seed(
        framework.backend.xp.asarray(np.array([5, 6], np.int64))
        if framework.name == "tensorflow" else __import__("jax").random.key(5), 1)[0]
    cotangent = framework.constant(COTANGENT)

    def streamed(parameter, weight):
        return estimator(function(weight), distribution(parameter), seed=seed,
                         num_samples=NUM_SAMPLES, chunk_size=CHUNK_SIZE)

    def chunked(parameter, weight):
        seeds = chunk_seeds(seed, NUM_SAMPLES, CHUNK_SIZE, framework.backend)
        sizes = [CHUNK_SIZE] * (NUM_SAMPLES // CHUNK_SIZE) + [NUM_SAMPLES % CHUNK_SIZE]
        return sum(size * estimator(function(weight), distribution(parameter), seed=seeds[c],
                                    num_samples=size)
                   for c, size in enumerate(sizes)) / NUM_SAMPLES

    actual = framework.value_and_vjp(streamed, parameter, weight, cotangent=cotangent,
                                     mode=mode)
    expected = framework.value_and_vjp(chunked, parameter, weight, cotangent=cotangent,
                                       mode="function" if mode == "xla" else mode)
    return actual, expected


def assert_close(actual, expected):
    (value, gradients), (expected_value, expected_gradients) = actual, expected
    np.testing.assert_allclose(value, expected_value, rtol=2e-5, atol=2e-5)
    for gradient, expected_gradient in zip(gradients, expected_gradients, strict=True):
        scale = np.max(np.abs(expected_gradient)) + 1e-6
        np.testing.assert_allclose(gradient / scale, expected_gradient / scale, atol=3e-5)


@pytest.mark.parametrize("name", list(streaming_cards()))
def test_streamed_estimate_equals_its_chunks_estimated_one_call_at_a_time(framework, name):
    estimator = CARDS[name].make()
    mode = "jit" if framework.name == "jax" else "function"
    assert_close(*streamed_and_chunked(framework, estimator, mode))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_streaming_runs_eagerly_and_under_xla_on_tensorflow(mode):
    from fxgx.backends import framework_by_name

    pytest.importorskip("tensorflow")
    from tests.conftest import FrameworkHelper

    assert_close(*streamed_and_chunked(FrameworkHelper(framework_by_name("tensorflow")),
                                       reinforce(),
                                       mode))


@pytest.mark.parametrize("name", ["reinforce_leave_one_out", "optimal_baseline"])
def test_baselines_from_the_other_samples_stream_their_one_shot_formula(framework, name):
    """Over the union of the chunks' samples (drawn as each chunk draws them), with the score
    ``s = z - p`` and ``f_s = sum (z_s - w)^2``, the logits' gradient is

    - leave-one-out: ``sum_s (f_s - mean f) s_s / (N - 1)``;
    - optimal baseline: ``sum_s (f_s - c_s) s_s / N`` with
      ``c_s = sum_{j != s} f_j ||s_j||^2 / sum_{j != s} ||s_j||^2``;

    and the weight's gradient is ``mean_s grad_w f(z_s)`` for both."""
    estimator = CARDS[name].make()
    distribution, function, logits, weight = problem_for(estimator, framework)
    backend = framework.backend
    seed = backend.split_seed(
        backend.xp.asarray(np.array([5, 6], np.int64)) if framework.name == "tensorflow"
        else __import__("jax").random.key(5), 1)[0]
    mode = "jit" if framework.name == "jax" else "function"
    value, (logits_gradient, weight_gradient) = framework.value_and_vjp(
        lambda logits, weight: estimator(function(weight), distribution(logits), seed=seed,
                                         num_samples=NUM_SAMPLES, chunk_size=CHUNK_SIZE),
        logits, weight, cotangent=framework.constant(COTANGENT), mode=mode)

    seeds = chunk_seeds(seed, NUM_SAMPLES, CHUNK_SIZE, backend)
    sizes = [CHUNK_SIZE] * (NUM_SAMPLES // CHUNK_SIZE) + [NUM_SAMPLES % CHUNK_SIZE]
    samples = np.concatenate([
        framework.numpy(distribution(logits).sample(
            (size,), sub_seeds(backend, seeds[c], "samples")["samples"]))
        for c, size in enumerate(sizes)]).astype(np.float64)  # [N, 2, 3]
    theta, w = framework.numpy(logits).astype(np.float64), framework.numpy(weight)
    values = np.sum((samples - w) ** 2, axis=-1)  # [N, 2]
    scores = samples - 1 / (1 + np.exp(-theta))
    if name == "reinforce_leave_one_out":
        weights = values - values.mean(axis=0)
        expected_logits = np.sum(weights[..., None] * scores, axis=0) / (NUM_SAMPLES - 1)
    else:
        norms = np.sum(scores**2, axis=-1)
        baseline = ((np.sum(values * norms, axis=0) - values * norms)
                    / (np.sum(norms, axis=0) - norms))
        expected_logits = np.mean((values - baseline)[..., None] * scores, axis=0)
    cotangent = np.array(COTANGENT)
    expected_weight = np.sum(cotangent[:, None] * np.mean(-2 * (samples - w), axis=0), axis=0)

    np.testing.assert_allclose(value, values.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(logits_gradient, cotangent[:, None] * expected_logits,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(weight_gradient, expected_weight, rtol=1e-4, atol=1e-5)


def test_one_chunk_is_the_plain_call(framework):
    estimator = reinforce()
    distribution, function, logits, weight = problem_for(estimator, framework)
    seed = 3
    plain = estimator(function(weight), distribution(logits), seed=seed, num_samples=64)
    whole = estimator(function(weight), distribution(logits), seed=seed, num_samples=64,
                      chunk_size=64)
    np.testing.assert_array_equal(framework.numpy(plain), framework.numpy(whole))


def test_boundary_errors(framework):
    distribution, function, logits, weight = problem_for(reinforce(), framework)
    q, f = distribution(logits), function(weight)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        reinforce()(f, q, seed=1, num_samples=10, chunk_size=2.5)
    with pytest.raises(ValueError, match="pass chunk_size too"):
        reinforce()(f, q, seed=1, num_samples=10, devices=1)
    with pytest.raises(ValueError, match="vimco cannot stream"):
        CARDS["vimco"].make()(f, q, seed=1, num_samples=10, chunk_size=5)
    with pytest.raises(ValueError, match="at least 2 samples per chunk"):
        reinforce_leave_one_out()(f, q, seed=1, num_samples=9, chunk_size=4)
    with pytest.raises(ValueError, match="sees 1 "):
        reinforce()(f, q, seed=1, num_samples=10, chunk_size=5, devices=64)
