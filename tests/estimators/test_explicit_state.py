"""The explicit-state form of every estimator: ``init`` -> state, ``apply`` -> (surrogate,
new state, info).

Deterministic tests (fixed seeds, no statistical verdicts): the explicit form computes the
same surrogate as the plain call, bit for bit, for the same seed and state; it compiles
(``tf.function``, XLA, ``jax.jit``, ``jax.lax.scan``); the moving average's state follows its
recursion exactly; the learned baseline's and RELAX's ``info`` are their training losses.
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx import catalogue
from fxgx.core.arrays import dtype_name
from fxgx.distributions import Bernoulli, Normal
from fxgx.estimators import learned_baseline, moving_average_baseline, reinforce, relax, rodeo
from fxgx.estimators.moving_average_baseline import MovingAverageState

CARDS = catalogue.load_cards()
STATEFUL = ("moving_average_baseline", "learned_baseline", "rebar", "relax",
            "double_control_variate", "rodeo")
LOGITS = [[-1.0, 0.5, 2.0], [0.3, -0.2, 0.0]]
TARGET = np.array([0.45, 0.2, 0.8], dtype=np.float32)


def _make(card):
    """The card's estimator, with its state logic switched on (a learned baseline that is
    not zero, a RELAX residual)."""
    if card.name == "learned_baseline":
        return learned_baseline(lambda distribution: 0.3)
    if card.name == "relax":
        return relax(lambda perturbed, parameters: 0.1 * (perturbed[..., 0] ** 2))
    if card.name == "rodeo":
        return rodeo(lambda samples, parameters: 0.1 * (samples[..., 0] - samples[..., 1]) ** 2)
    return card.make()


def _latents(card, value):
    """The card's latents at ``value``: Bernoulli logits, or, for the Gaussian-only cards,
    the means of normals with scale 0.7."""
    if card.supports("bernoulli"):
        return Bernoulli(value, event_ndims=1)
    return Normal(value, 0.7, event_ndims=1)


def _num_samples(estimator, card):
    return max(card.num_samples, estimator.minimum_samples, 2)


def _function(samples):
    """``f(z) = sum_d (z_d - t_d)^2``, differentiable (REBAR/RELAX evaluate relaxed z)."""
    return ((samples - TARGET) ** 2)[..., 0] + ((samples - TARGET) ** 2)[..., 1] + (
        (samples - TARGET) ** 2)[..., 2]


def _ids(cards):
    return [card.name for card in cards]


#: On JAX in the default set: the cards with state and REINFORCE; the stateless others
#: run the same backend-generic code and are in the slow set (CI runs it).
JAX_DEFAULT = STATEFUL + ("reinforce",)
#: Compiled in the default set: the cards whose state or info is more than a wrapper.
COMPILED_DEFAULT = ("moving_average_baseline", "relax")


def _backend_cases(cards):
    for card in cards:
        for backend in ("tensorflow", "jax"):
            slow = backend == "jax" and card.name not in JAX_DEFAULT
            yield pytest.param(backend, card, id=f"{card.name}-{backend}",
                               marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("backend, card", list(_backend_cases(CARDS)), indirect=["backend"])
def test_apply_from_init_equals_the_plain_call(framework, card):
    """Value and gradient of ``apply(init(q), ...)[0]`` equal the plain call's bitwise."""
    estimator = _make(card)
    num_samples = _num_samples(estimator, card)
    logits = framework.constant(LOGITS)

    def plain(value):
        return estimator(_function, _latents(card, value), seed=11,
                         num_samples=num_samples)

    def explicit(value):
        distribution = _latents(card, value)
        surrogate, _, _ = estimator.apply(estimator.init(distribution), _function,
                                          distribution, seed=11, num_samples=num_samples)
        return surrogate

    plain_value, (plain_gradient,) = framework.value_and_vjp(plain, logits)
    value, (gradient,) = framework.value_and_vjp(explicit, logits)
    np.testing.assert_array_equal(value, plain_value)
    np.testing.assert_array_equal(gradient, plain_gradient)
    assert np.any(plain_gradient != 0.0), card.name


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("card", [card for card in CARDS if card.name not in STATEFUL],
                         ids=_ids([card for card in CARDS if card.name not in STATEFUL]))
def test_stateless_estimators_have_the_empty_state_and_no_info(framework, card):
    estimator = card.make()
    distribution = _latents(card, framework.constant(LOGITS))
    state = estimator.init(distribution)
    assert state == ()
    _, new_state, info = estimator.apply(state, _function, distribution, seed=1,
                                         num_samples=_num_samples(estimator, card))
    assert new_state == () and info == {}
    with pytest.raises(TypeError, match=r"has no state: pass state=\(\)"):
        estimator.apply(None, _function, distribution, seed=1,
                        num_samples=_num_samples(estimator, card))


def _compiled_cases():
    """Every card in ``tf.function`` and ``jax.jit``, the stateful ones under XLA too. The
    stateless cards run the plain call's code, which their own test files compile in every
    mode, so their cases are in the slow set (about 30 s), with those of the learned baseline
    and REBAR (a wrapper of the plain call, and RELAX's code without a residual)."""
    for card in CARDS:
        marks = [] if card.name in COMPILED_DEFAULT else [pytest.mark.slow]
        for backend, mode in (("tensorflow", "function"), ("jax", "jit")):
            yield pytest.param(card, backend, mode, marks=marks,
                               id=f"{card.name}-{backend}-{mode}")
        if card.name in STATEFUL:
            yield pytest.param(card, "tensorflow", "xla", id=f"{card.name}-tensorflow-xla",
                               marks=marks)


@pytest.mark.parametrize("card, backend, mode", list(_compiled_cases()),
                         indirect=["backend"])
def test_apply_compiles_and_matches_eager(framework, card, mode):
    """``tf.function``/XLA/``jax.jit`` over ``apply`` (state in, state and info out) give
    eager's surrogate, state and info."""
    estimator = _make(card)
    num_samples = _num_samples(estimator, card)
    logits = framework.constant(LOGITS)
    state = estimator.init(_latents(card, logits))

    def step(value, state):
        return estimator.apply(state, _function, _latents(card, value), seed=5,
                               num_samples=num_samples)

    eager = step(logits, state)
    compiled = framework.compile(step, mode)
    first = compiled(logits, state)
    second = compiled(logits, first[1])  # the returned state goes back in
    eager_second = step(logits, eager[1])
    for got, expected in ((first, eager), (second, eager_second)):
        got_leaves, expected_leaves = _leaves(got), _leaves(expected)
        assert len(got_leaves) == len(expected_leaves)
        for got_leaf, expected_leaf in zip(got_leaves, expected_leaves, strict=True):
            np.testing.assert_allclose(framework.numpy(got_leaf), framework.numpy(expected_leaf),
                                       rtol=2e-6, atol=1e-7)


def _leaves(value):
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key])]
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_moving_average_state_follows_its_recursion(framework):
    """Four steps with decay 0.8 on recorded samples: ``a <- d a + (1 - d) mean_s f``,
    ``w <- d w + (1 - d)``, baseline ``a / w`` (0 at first), gradient
    ``1/S sum_s (f_s - b) (z_s - sigmoid(theta))`` w.r.t. the logits, all in float64 NumPy."""
    decay, num_samples = 0.8, 5
    estimator = moving_average_baseline(decay=decay)
    logits_values = np.array(LOGITS, dtype=np.float32)
    logits = framework.constant(logits_values)
    recorded = []

    def function(samples):
        recorded.append(framework.numpy(samples).astype(np.float64))
        return _function(samples)

    state = estimator.init(Bernoulli(logits, event_ndims=1))
    assert isinstance(state, MovingAverageState)
    average, weight = 0.0, 0.0
    probabilities = 1.0 / (1.0 + np.exp(-logits_values.astype(np.float64)))
    for step in range(4):
        recorded.clear()
        surrogate, new_state, info = estimator.apply(
            state, function, Bernoulli(logits, event_ndims=1), seed=100 + step,
            num_samples=num_samples)
        (samples,) = recorded
        values = ((samples - TARGET.astype(np.float64)) ** 2).sum(axis=-1)
        baseline = average / weight if weight > 0 else 0.0
        np.testing.assert_allclose(framework.numpy(info["baseline"]), baseline, rtol=1e-5)
        np.testing.assert_allclose(framework.numpy(surrogate), values.mean(axis=0), rtol=1e-5)

        def surrogate_of(value, state=state, step=step):
            return estimator.apply(state, _function, Bernoulli(value, event_ndims=1),
                                   seed=100 + step, num_samples=num_samples)[0]

        _, (gradient,) = framework.value_and_vjp(surrogate_of, logits)
        expected_gradient = ((values - baseline)[..., None] * (samples - probabilities)).mean(0)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-4, atol=1e-6)

        average = decay * average + (1 - decay) * values.mean()
        weight = decay * weight + (1 - decay)
        np.testing.assert_allclose(framework.numpy(new_state.average), average, rtol=1e-5)
        np.testing.assert_allclose(framework.numpy(new_state.weight), weight, rtol=1e-6)
        state = new_state


def test_moving_average_state_through_lax_scan():
    """``jax.lax.scan`` carries the state: the scanned steps equal the same steps eagerly."""
    jax = pytest.importorskip("jax")
    estimator = moving_average_baseline(decay=0.7)
    logits = jax.numpy.asarray(LOGITS, dtype=jax.numpy.float32)
    distribution = Bernoulli(logits, event_ndims=1)

    def step(state, seed):
        surrogate, state, info = estimator.apply(state, _function, distribution, seed=seed,
                                                 num_samples=3)
        return state, (surrogate, info["baseline"])

    seeds = jax.numpy.arange(6)
    final, (surrogates, baselines) = jax.lax.scan(step, estimator.init(distribution), seeds)
    state = estimator.init(distribution)
    for index in range(6):
        state, (surrogate, baseline) = step(state, int(index))
        np.testing.assert_allclose(np.asarray(surrogates[index]), np.asarray(surrogate),
                                   rtol=2e-6)
        np.testing.assert_allclose(np.asarray(baselines[index]), np.asarray(baseline),
                                   rtol=2e-6)
    np.testing.assert_allclose(np.asarray(final.average), np.asarray(state.average), rtol=2e-6)
    assert float(final.weight) == pytest.approx(1 - 0.7**6, rel=1e-6)


def test_moving_average_init_takes_the_distributions_dtype_and_a_shape(framework):
    estimator = moving_average_baseline()
    with framework.x64():
        distribution = Bernoulli(framework.constant(LOGITS, "float64"), event_ndims=1)
        state = estimator.init(distribution, shape=(2,))
        assert dtype_name(state.average.dtype) == "float64"
        assert tuple(state.weight.shape) == (2,)
    with pytest.raises(TypeError, match="MovingAverageState"):
        estimator.apply((), _function, distribution, seed=0)


def test_learned_baseline_info_is_its_regression_loss(framework):
    """``info["baseline_loss"]`` is ``mean_s (f(z_s) - b)^2`` on the call's own samples, and
    equals ``regression_loss``'s for the same seed, and the surrogate is the plain call's."""
    estimator = learned_baseline(lambda distribution: 0.3)
    distribution = Bernoulli(framework.constant(LOGITS), event_ndims=1)
    recorded = []

    def function(samples):
        recorded.append(framework.numpy(samples).astype(np.float64))
        return _function(samples)

    surrogate, state, info = estimator.apply((), function, distribution, seed=9, num_samples=4)
    assert state == ()
    values = ((recorded[0] - TARGET.astype(np.float64)) ** 2).sum(axis=-1)
    np.testing.assert_allclose(framework.numpy(info["baseline_loss"]),
                               ((values - 0.3) ** 2).mean(axis=0), rtol=1e-5)
    plain = estimator(_function, distribution, seed=9, num_samples=4)
    np.testing.assert_array_equal(framework.numpy(plain), framework.numpy(surrogate))
    np.testing.assert_array_equal(
        framework.numpy(estimator.regression_loss(_function, distribution, seed=9,
                                                  num_samples=4)),
        framework.numpy(info["baseline_loss"]))


def test_relax_info_is_its_variance_loss(framework):
    """``info["variance_loss"]`` from ``apply`` (with per-call control-variate parameters)
    equals ``variance_loss`` for the same seed, and so does its gradient w.r.t. those
    parameters."""
    estimator = relax(lambda perturbed, parameters: parameters * perturbed[..., 0])
    logits = framework.constant(LOGITS)
    parameters = framework.constant(0.4)

    def from_apply(coefficient):
        distribution = Bernoulli(logits, event_ndims=1)
        _, state, info = estimator.apply((), _function, distribution, seed=21, num_samples=2,
                                         control_variate_parameters=coefficient)
        assert state == ()
        return info["variance_loss"]

    def from_method(coefficient):
        return estimator.variance_loss(_function, Bernoulli(logits, event_ndims=1), seed=21,
                                       num_samples=2, control_variate_parameters=coefficient)

    value, (gradient,) = framework.value_and_vjp(from_apply, parameters)
    expected_value, (expected_gradient,) = framework.value_and_vjp(from_method, parameters)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5)
    assert abs(float(gradient)) > 0.0


def test_plain_reinforce_and_apply_accept_the_same_arguments(framework):
    """The boundary checks are shared: a bad ``num_samples`` fails the same way."""
    estimator = reinforce()
    distribution = Bernoulli(framework.constant(LOGITS), event_ndims=1)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        estimator.apply((), _function, distribution, seed=0, num_samples=2.0)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        estimator(_function, distribution, seed=0, num_samples=2.0)
