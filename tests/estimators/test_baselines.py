"""Score-function estimators with baselines: REINFORCE-LOO, the moving-average baseline
(explicit state), the learned (NVIL) baseline and the leave-one-out optimal baseline.

Statistical tests, their false-failure rates and power:

- Exact variances (``assert_variance``): two-sided z-test of the sample variance of the
  estimates against the exact variance by enumeration (numpy float64; REINFORCE's and
  LOO's also checked against a closed form, ``closed_form_variance``), standard error from
  the fourth moment, false-failure rate 1e-5. Each test first checks that it would detect a
  5 % error in the variance with probability 0.99 (``_assert_variance_with_power``). The
  same draws check the mean against the exact gradient (power 0.99 for a bias of 0.005).
- Unbiasedness (``assert_unbiased``): Holm z-tests against the exact gradient, family-wise
  false-failure rate 1e-5, power 0.99 to detect the problem's ``detectable_bias``.
"""

from __future__ import annotations

import itertools
from statistics import NormalDist

import numpy as np
import pytest

from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.estimators import (
    learned_baseline,
    moving_average_baseline,
    optimal_baseline,
    reinforce,
    reinforce_leave_one_out,
)
from fxgx.estimators.moving_average_baseline import MovingAverageState
from fxgx.problems import BernoulliToy
from fxgx.testing import assert_unbiased, assert_variance, gradient_moments

TARGET = 0.45
FALSE_FAILURE_RATE = 1e-5
NUM_ESTIMATES = 2**18
CRITICAL = NormalDist().inv_cdf(1 - FALSE_FAILURE_RATE / 2) + NormalDist().inv_cdf(0.99)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def exact_score_function_moments(logit, num_samples, baseline_rule, target=TARGET):
    """Exact mean and variance of ``1/S sum_s (f_s - c_s) (b_s - p)`` on the toy, by
    enumerating all ``2^S`` sample tuples. ``baseline_rule(f, w, s)`` gives ``c_s`` from the
    values ``f``, the squared scores ``w`` and the index ``s``."""
    p = _sigmoid(logit)
    first_moment = second_moment = 0.0
    for states in itertools.product((0.0, 1.0), repeat=num_samples):
        b = np.array(states)
        probability = np.prod(np.where(b == 1.0, p, 1.0 - p))
        values, scores = (b - target) ** 2, b - p
        estimate = np.mean([
            (values[s] - baseline_rule(values, scores**2, s)) * scores[s]
            for s in range(num_samples)
        ])
        first_moment += probability * estimate
        second_moment += probability * estimate**2
    return first_moment, second_moment - first_moment**2


def _others(s, size):
    return np.arange(size) != s


RULES = {
    "reinforce": lambda values, weights, s: 0.0,
    "leave_one_out": lambda values, weights, s: np.mean(values[_others(s, len(values))]),
    "optimal": lambda values, weights, s: (
        np.sum((values * weights)[_others(s, len(values))])
        / np.sum(weights[_others(s, len(values))])
    ),
}


def constant_rule(constant):
    return lambda values, weights, s: constant


def _assert_variance_with_power(moments, exact_variance, relative_error=0.05):
    detectable = CRITICAL * float(np.max(moments.variance_standard_error))
    assert detectable <= relative_error * exact_variance, (
        f"underpowered: detects only variance errors above {detectable:.3g}, "
        f"{detectable / exact_variance:.1%} of {exact_variance:.4g}"
    )
    assert_variance(moments, exact_variance, false_failure_rate=FALSE_FAILURE_RATE)


def closed_form_variance(rule: str, logit: float, target: float = TARGET) -> float:
    """The variance of one estimate on the toy in closed form, derived apart from the
    enumeration of ``exact_score_function_moments``. With ``p = sigmoid(theta)``,
    ``f_1 = (1 - t)^2`` and ``f_0 = t^2``:

    - REINFORCE (``S = 1``), ``g = f(b) (b - p)``: ``f_1 (1 - p)`` with probability ``p``,
      ``-f_0 p`` otherwise, so ``Var = p (1 - p) (f_1 (1 - p) + f_0 p)^2``.
    - REINFORCE-LOO (``S = 2``), ``g = 1/2 sum_s (f(b_s) - f(b_other)) (b_s - p)``: 0 when
      ``b_1 = b_2``, and ``(f_1 - f_0) / 2`` when they differ (probability
      ``r = 2 p (1 - p)``), so ``Var = ((f_1 - f_0) / 2)^2 r (1 - r)``.
    """
    p = _sigmoid(logit)
    one, zero = (1.0 - target) ** 2, target**2
    if rule == "reinforce":
        return p * (1.0 - p) * (one * (1.0 - p) + zero * p) ** 2
    differ = 2.0 * p * (1.0 - p)
    return (0.5 * (one - zero)) ** 2 * differ * (1.0 - differ)


@pytest.mark.parametrize(
    "factory, rule, num_samples",
    [(reinforce, "reinforce", 1), (reinforce_leave_one_out, "leave_one_out", 2)],
    ids=["reinforce", "reinforce_leave_one_out"],
)
def test_exact_variance_on_the_bernoulli_toy(backend, factory, rule, num_samples):
    """The enumerated variance equals the closed form (at theta = 0: REINFORCE's is
    ``0.505^2 / 16``, LOO's ``0.05^2 / 4``); the draws are checked at theta = -1, where one
    estimate takes unequally likely values: at theta = 0 REINFORCE's takes two equally
    likely ones, Var(s^2) is O(1/n^2) and no z-test of the variance is valid there
    (``check_variance`` refuses such data)."""
    for logit in (0.0, -1.0, 1.5):
        mean, variance = exact_score_function_moments(logit, num_samples, RULES[rule])
        assert mean == pytest.approx(BernoulliToy(TARGET, logit).exact_gradient()[0],
                                     rel=1e-12)
        assert variance == pytest.approx(closed_form_variance(rule, logit), rel=1e-12)
    mean, variance = exact_score_function_moments(-1.0, num_samples, RULES[rule])
    moments = gradient_moments(
        factory(), BernoulliToy(TARGET, -1.0), num_estimates=NUM_ESTIMATES, seed=41,
        backend=backend.name, dtype="float32", num_samples=num_samples,
    )
    _assert_variance_with_power(moments, variance)
    assert_unbiased(moments, [mean], false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.005)


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("logit, num_samples", [(-2.0, 3), (1.0, 8)])
def test_optimal_baseline_exact_variance(backend, logit, num_samples):
    """The leave-one-out optimal baseline matches its own exact variance, which differs
    from REINFORCE-LOO's by more than the test resolves (so the formula is pinned down).
    At S = 3 the plug-in coefficient's noise makes it worse than LOO; at S = 8 it wins."""
    mean, variance = exact_score_function_moments(logit, num_samples, RULES["optimal"])
    _, leave_one_out_variance = exact_score_function_moments(
        logit, num_samples, RULES["leave_one_out"]
    )
    assert mean == pytest.approx(BernoulliToy(TARGET, logit).exact_gradient()[0], rel=1e-12)
    assert abs(variance - leave_one_out_variance) > 0.1 * variance
    if num_samples >= 8:
        assert variance < leave_one_out_variance
    moments = gradient_moments(
        optimal_baseline(), BernoulliToy(TARGET, logit), num_estimates=NUM_ESTIMATES,
        seed=42, backend=backend.name, dtype="float32", num_samples=num_samples,
    )
    _assert_variance_with_power(moments, variance)
    assert_unbiased(moments, [mean], false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.005)


# --------------------------------------------------------------- moving-average baseline


def _with_state(estimator, state_values):
    """An ``est(f, q, seed=, num_samples=)`` callable that uses a fixed non-initial state."""

    def call(function, distribution, *, seed, num_samples):
        backend = distribution.framework
        dtype = distribution.dtype
        state = MovingAverageState(*(backend.xp.asarray(value, dtype=dtype)
                                     for value in state_values))
        surrogate, _, _ = estimator.apply(state, function, distribution, seed=seed,
                                          num_samples=num_samples)
        return surrogate

    return call


@pytest.mark.parametrize("kind", ["moving_average", "learned"])
def test_a_fixed_baseline_gives_the_exact_variance_and_no_bias(backend, kind):
    """Baseline 0.1 from a moving-average state (0.05 / 0.5) or a learned baseline: the
    estimate is unbiased and has the exact variance of ``(f - 0.1) (b - p)``. Using the
    state *after* this batch's update would change both."""
    logit, constant = -2.0, 0.1
    if kind == "moving_average":
        estimator = _with_state(moving_average_baseline(decay=0.8), (0.05, 0.5))
    else:
        estimator = learned_baseline(lambda distribution: constant)
    problem = BernoulliToy(TARGET, logit)
    _, variance = exact_score_function_moments(logit, 1, constant_rule(constant))
    _, variance_without = exact_score_function_moments(logit, 1, RULES["reinforce"])
    assert variance < 0.5 * variance_without
    moments = gradient_moments(estimator, problem, num_estimates=NUM_ESTIMATES, seed=43,
                               backend=backend.name, dtype="float32", num_samples=1)
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=problem.detectable_bias)
    _assert_variance_with_power(moments, variance)


@pytest.mark.jax_in_slow_set
def test_moving_average_state_update(framework):
    """Deterministic: with a constant ``f = 0.7`` the first call has baseline 0 and a
    non-zero gradient; the returned state is ``((1 - d) 0.7, 1 - d)``; the next call's
    baseline is 0.7, so its gradient is exactly 0."""
    estimator = moving_average_baseline(decay=0.75)
    logits = framework.constant([[0.3, -0.2], [1.0, 0.5]])
    distribution = Bernoulli(logits, event_ndims=1)

    def constant(samples):
        return 0.0 * samples[..., 0] + 0.7

    state = estimator.init(distribution)

    def first(value):
        return estimator.apply(state, constant, Bernoulli(value, event_ndims=1), seed=2,
                               num_samples=3)[0]

    _, (gradient,) = framework.value_and_vjp(first, logits)
    assert np.any(np.abs(gradient) > 1e-3)
    _, new_state, _ = estimator.apply(state, constant, distribution, seed=2, num_samples=3)
    np.testing.assert_allclose(framework.numpy(new_state.average), 0.25 * 0.7, rtol=1e-6)
    np.testing.assert_allclose(framework.numpy(new_state.weight), 0.25, rtol=1e-6)

    def second(value):
        return estimator.apply(new_state, constant, Bernoulli(value, event_ndims=1), seed=3,
                               num_samples=3)[0]

    _, (gradient,) = framework.value_and_vjp(second, logits)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-6)
    assert distribution.batch_shape == (2,)


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("shape", [(), (2,)])
def test_moving_average_state_shapes(framework, shape):
    """A scalar state averages over the batch; a batch-shaped state keeps one per member."""
    estimator = moving_average_baseline(decay=0.5)
    logits = framework.constant([[0.3, -0.2], [1.0, 0.5]])

    def per_member(samples):
        from fxgx.backends import get_framework

        backend = get_framework(samples)
        return 0.0 * samples[..., 0] + backend.xp.asarray([1.0, 3.0], dtype=samples.dtype)

    distribution = Bernoulli(logits, event_ndims=1)
    state = estimator.init(distribution, shape=shape)
    _, new_state, _ = estimator.apply(state, per_member, distribution, seed=0, num_samples=2)
    expected = 0.5 * (np.array([1.0, 3.0]) if shape else 2.0)
    np.testing.assert_allclose(framework.numpy(new_state.average), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="broadcast"):
        bad = estimator.init(distribution, shape=(3,))
        estimator.apply(bad, per_member, distribution, seed=0)


def test_moving_average_state_in_compiled_loops(framework):
    """The state threads through ``tf.function``/XLA and ``jax.jit`` and matches eager."""
    estimator = moving_average_baseline(decay=0.9)
    logits = framework.constant([0.4, -1.0, 2.0])

    def step(value, average, weight):
        surrogate, state, _ = estimator.apply(
            (average, weight), lambda samples: samples * 2.0 - 0.3, Bernoulli(value), seed=7,
            num_samples=4,
        )
        return surrogate + 0.0 * (state.average + state.weight), state

    initial = estimator.init(Bernoulli(logits), shape=(3,))
    results = {}
    for mode in framework.modes:
        compiled = framework.compile(step, mode)
        _, state = compiled(logits, initial.average, initial.weight)
        _, state = compiled(logits, state.average, state.weight)
        results[mode] = framework.numpy(state.average)
    for mode, average in results.items():
        np.testing.assert_allclose(average, results["eager"], rtol=1e-6, err_msg=mode)


def test_moving_average_uses_tensorflow_variables():
    tf = pytest.importorskip("tensorflow")
    estimator = moving_average_baseline(decay=0.5)
    logits = tf.Variable([0.2, -0.4])
    state = MovingAverageState(*(tf.Variable(value) for value in estimator.init(
        Bernoulli(logits, event_ndims=1))))
    for _ in range(2):
        with tf.GradientTape() as tape:
            surrogate, new_state, _ = estimator.apply(
                state, lambda samples: tf.reduce_sum(samples, -1) + 1.0,
                Bernoulli(logits, event_ndims=1), seed=1, num_samples=2)
        assert tape.gradient(surrogate, logits) is not None
        for variable, value in zip(state, new_state, strict=True):
            variable.assign(value)
    assert float(state.weight.numpy()) == pytest.approx(0.75)


@pytest.mark.parametrize("decay, error", [(1.0, ValueError), (-0.1, ValueError),
                                          ("0.9", TypeError)])
def test_moving_average_rejects_bad_decay(decay, error):
    with pytest.raises(error, match="decay"):
        moving_average_baseline(decay=decay)


# ---------------------------------------------------------------------- learned baseline


def test_learned_baseline_depending_on_the_parameters_is_unbiased(backend):
    """A baseline computed from the (stopped) logits, one value per batch member."""

    def baseline(distribution):
        logits = distribution.framework.stop_gradient(distribution.logits)
        probabilities = distribution.framework.sigmoid(logits)
        return 0.2 + 0.3 * distribution.framework.xp.sum(probabilities, axis=-1)

    problem = BernoulliToy(TARGET, [-2.0, 0.0, 2.0])
    moments = gradient_moments(learned_baseline(baseline), problem, num_estimates=400_000,
                               seed=44, backend=backend.name, dtype="float32")
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=problem.detectable_bias)


@pytest.mark.jax_in_slow_set
def test_learned_baseline_regression_loss_trains_only_the_baseline(framework):
    """``d loss / d c = -2 (mean f - c)`` and ``d surrogate / d c = 0`` (deterministic)."""
    logits = framework.constant([[0.3, -0.2, 0.9], [1.0, 0.5, -1.5]])

    def function(samples):
        from fxgx.backends import get_framework

        return get_framework(samples).xp.sum(samples * samples, axis=-1) * 0.5 + 0.1

    def both(value, coefficient):
        estimator = learned_baseline(lambda distribution: coefficient)
        surrogate, _, info = estimator.apply((), function, Bernoulli(value, event_ndims=1),
                                             seed=3, num_samples=5)
        return surrogate, info["baseline_loss"]

    coefficient = framework.constant([0.4, 0.6])
    surrogate, _ = both(logits, coefficient)
    _, (_, loss_gradient) = framework.value_and_vjp(lambda v, c: both(v, c)[1], logits,
                                                    coefficient)
    _, (_, surrogate_gradient) = framework.value_and_vjp(lambda v, c: both(v, c)[0], logits,
                                                         coefficient)
    expected = -2.0 * (framework.numpy(surrogate) - np.array([0.4, 0.6]))
    np.testing.assert_allclose(loss_gradient, expected, rtol=1e-5)
    np.testing.assert_array_equal(framework.zero_if_none(surrogate_gradient, coefficient), 0.0)
    loss_only = learned_baseline(lambda distribution: coefficient).regression_loss(
        function, Bernoulli(logits, event_ndims=1), seed=3, num_samples=5)
    np.testing.assert_allclose(framework.numpy(loss_only),
                               framework.numpy(both(logits, coefficient)[1]), rtol=1e-6)


def test_learned_baseline_rejects_sample_shaped_or_non_callable_baselines(framework):
    distribution = Bernoulli(framework.constant([[0.3, -0.2], [1.0, 0.5]]), event_ndims=1)
    estimator = learned_baseline(
        lambda q: q.framework.xp.zeros((4, 2), dtype=q.framework.xp.float32))
    with pytest.raises(ValueError, match="must not depend on the samples"):
        estimator(lambda samples: samples[..., 0], distribution, seed=0, num_samples=4)
    with pytest.raises(TypeError, match="baseline"):
        learned_baseline(0.5)


# ------------------------------------------------------------------ optimal baseline


@pytest.mark.jax_in_slow_set
def test_optimal_baseline_survives_degenerate_probabilities(framework):
    """With logits +-100 every score is 0 in float32: the fallback keeps the gradient
    finite (and 0, the exact value)."""
    logits = framework.constant([[100.0, -100.0]])

    def surrogate(value):
        return optimal_baseline()(lambda samples: samples[..., 0] * 3.0 + samples[..., 1],
                                  Bernoulli(value, event_ndims=1), seed=0, num_samples=3)

    _, (gradient,) = framework.value_and_vjp(surrogate, logits)
    np.testing.assert_array_equal(gradient, 0.0)


@pytest.mark.jax_in_slow_set
def test_optimal_baseline_supports_categorical_and_normal(framework):
    categorical = OneHotCategorical(framework.constant([[0.1, 0.5, -0.2], [0.0, 1.0, 0.3]]))
    normal = Normal(framework.constant([0.3, -0.1]), framework.constant([0.8, 1.5]))
    for distribution, function in (
        (categorical, lambda z: z[..., 1] * 2.0 + z[..., 2]),
        (normal, lambda z: z * z),
    ):
        value = optimal_baseline()(function, distribution, seed=1, num_samples=4)
        assert framework.numpy(value).shape == (2,)


# -------------------------------------------------- all four: modes, f, bad input


FACTORIES = {
    "reinforce_leave_one_out": reinforce_leave_one_out,
    "moving_average_baseline": moving_average_baseline,
    "learned_baseline": learned_baseline,
    "optimal_baseline": optimal_baseline,
}
LOGITS = np.array([[-1.0, 0.2, 1.5], [0.4, -0.3, 0.0]])


def _function(samples):
    from fxgx.backends import get_framework

    backend = get_framework(samples)
    return backend.xp.square(backend.xp.sum(samples, axis=-1) - 1.2) + samples[..., 0]


def _modes(framework, dtype):
    """Every mode in float32; eager and the most compiled one (XLA, jit) otherwise."""
    return framework.modes if dtype == "float32" else ("eager", framework.modes[-1])


# The moving-average and learned baselines share REINFORCE's code path, and the optimal
# baseline covers REINFORCE-LOO's sample-axis code in float64: those twins' mode checks (both
# dtypes), the float64 run of REINFORCE-LOO and the vmap runs are in the slow set.
SLOW_TWINS = ("learned_baseline", "moving_average_baseline")
SLOW_FLOAT64 = SLOW_TWINS + ("reinforce_leave_one_out", "optimal_baseline")


def _names(slow_when):
    return [pytest.param(name, marks=pytest.mark.slow) if slow_when(name) else name
            for name in sorted(FACTORIES)]


@pytest.mark.parametrize("dtype, name", [
    pytest.param(dtype, name, marks=[pytest.mark.slow] * (
        name in SLOW_TWINS or (dtype == "float64" and name in SLOW_FLOAT64)))
    for dtype in ("float32", "float64") for name in sorted(FACTORIES)
])
def test_same_numbers_in_every_mode(framework, name, dtype):
    estimator = FACTORIES[name]()

    def surrogate(logits):
        return estimator(_function, Bernoulli(logits, event_ndims=1), seed=5, num_samples=3)

    with framework.x64(dtype):
        results = {
            mode: framework.value_and_vjp(surrogate, framework.constant(LOGITS, dtype),
                                          mode=mode)
            for mode in _modes(framework, dtype)
        }
    value, (gradient,) = results["eager"]
    assert value.shape == (2,) and value.dtype == np.dtype(dtype)
    assert gradient.shape == (2, 3) and gradient.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)
    for mode, (other_value, (other_gradient,)) in results.items():
        np.testing.assert_allclose(other_value, value, rtol=1e-6, err_msg=mode)
        np.testing.assert_allclose(other_gradient, gradient, rtol=1e-5, atol=1e-7, err_msg=mode)


@pytest.mark.parametrize("name", _names(lambda name: name in SLOW_TWINS))
def test_jax_vmap_matches_a_loop(name):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    estimator = FACTORIES[name]()

    def gradient(logits):
        return jax.grad(lambda value: estimator(
            _function, Bernoulli(value, event_ndims=1), seed=9, num_samples=2))(logits)

    logits = jnp.asarray(LOGITS, jnp.float32)
    batched = jax.jit(jax.vmap(gradient))(logits)
    looped = jnp.stack([gradient(row) for row in logits])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-6)


def guard_against_differentiation(framework_name, function):
    """``function`` whose derivative raises ``AssertionError`` if anyone asks for it."""
    if framework_name == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def guarded(samples):
            def gradient(upstream):
                raise AssertionError("the estimator differentiated f")

            return function(samples), gradient

        return guarded
    import jax

    @jax.custom_vjp
    def guarded(samples):
        return function(samples)

    def forward(samples):
        return function(samples), None

    def backward(residual, upstream):
        raise AssertionError("the estimator differentiated f")

    guarded.defvjp(forward, backward)
    return guarded


def test_the_guard_raises_when_f_is_differentiated(framework):
    guarded = guard_against_differentiation(framework.name, _function)
    with pytest.raises(AssertionError, match="differentiated f"):
        framework.value_and_vjp(guarded, framework.constant(LOGITS))


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", sorted(FACTORIES) + ["reinforce"])
def test_f_is_never_differentiated(framework, name):
    guarded = guard_against_differentiation(framework.name, _function)
    estimator = FACTORIES.get(name, reinforce)()

    def surrogate(logits):
        return estimator(guarded, Bernoulli(logits, event_ndims=1), seed=1, num_samples=2)

    for mode in _modes(framework, "float64"):
        _, (gradient,) = framework.value_and_vjp(surrogate, framework.constant(LOGITS),
                                                 mode=mode)
        assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)


@pytest.mark.parametrize("name", ["reinforce_leave_one_out", "optimal_baseline"])
def test_one_sample_is_rejected_where_two_are_needed(framework, name):
    distribution = Bernoulli(framework.constant(LOGITS), event_ndims=1)
    with pytest.raises(ValueError, match="num_samples"):
        FACTORIES[name]()(_function, distribution, seed=0, num_samples=1)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_seed_is_required(framework, name):
    distribution = Bernoulli(framework.constant(LOGITS), event_ndims=1)
    estimator = FACTORIES[name]()
    with pytest.raises(TypeError, match="seed"):
        estimator(_function, distribution, num_samples=2)
    with pytest.raises(ValueError, match="seed"):
        estimator(_function, distribution, seed=None, num_samples=2)
    state = estimator.init(distribution)
    with pytest.raises(TypeError, match="seed"):
        estimator.apply(state, _function, distribution, num_samples=2)
    with pytest.raises(ValueError, match="seed"):
        estimator.apply(state, _function, distribution, seed=None)
    if name == "learned_baseline":
        with pytest.raises(ValueError, match="seed"):
            estimator.regression_loss(_function, distribution, seed=None)


def test_optimal_baseline_rejects_distributions_without_a_closed_form_score():
    tfp = pytest.importorskip("tensorflow_probability")
    poisson = tfp.distributions.Poisson(rate=[1.0, 2.0])
    with pytest.raises(TypeError, match="Poisson"):
        optimal_baseline()(lambda z: z, poisson, seed=0, num_samples=2)
