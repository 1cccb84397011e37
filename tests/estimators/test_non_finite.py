"""Non-finite input never becomes a finite answer, on every card, backend and mode.

The rule (``fxgx.estimators.base.propagate_non_finite``): a batch member whose parameters
hold a NaN or an infinity gets a NaN surrogate value and a non-finite gradient for those
parameters; the other batch members are untouched. ``validate_args=True`` on the
distribution (fxgx's or TensorFlow Probability's) raises an error naming the parameter
instead. Deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fxgx import catalogue
from fxgx.distributions import Bernoulli, Normal

CARDS = catalogue.load_cards()
#: Cards that hand the primitive ``x = logits`` (or probabilities): without the rule, the
#: primitive's mask gave a NaN logit the gradient 0 there.
PRIMITIVE_MASKED = ("arm", "disarm", "straight_through", "gumbel_softmax_hard")
# Batch member 0 holds a NaN, member 1 an infinity, member 2 only finite logits.
LOGITS = np.array([[math.nan, 0.2, -0.3], [0.1, math.inf, -0.2], [0.5, -0.5, 0.0]],
                  np.float32)


def _backend_cases():
    """Every card on TensorFlow eagerly; compiled (XLA) and on JAX (the same backend-generic
    rule) the cards the primitive would zero and REINFORCE in the default set, the others in
    the slow set (CI runs it)."""
    for card in CARDS:
        for backend in ("tensorflow", "jax"):
            for compiled in (False, True):
                if backend == "jax" and not compiled:
                    continue  # the JAX case runs eagerly and compiled in one test
                representative = card.name in PRIMITIVE_MASKED + ("reinforce",)
                slow = (backend == "jax" or compiled) and not representative
                # The Gaussian-only cards: in the default set through the NaN-scale test below.
                slow = slow or card.distributions == ("normal",)
                label = f"{card.name}-{backend}" + ("-compiled" if compiled else "")
                yield pytest.param(backend, card, compiled, id=label,
                                   marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("backend, card, compiled", list(_backend_cases()),
                         indirect=["backend"])
def test_a_non_finite_logit_gives_nan_value_and_non_finite_gradient(framework, card, compiled):
    estimator = card.make()
    num_samples = max(card.num_samples, estimator.minimum_samples)

    def surrogate(logits):
        if card.supports("bernoulli"):
            distribution = Bernoulli(logits, event_ndims=1)
        else:  # the Gaussian-only cards: the non-finite values as means
            distribution = Normal(logits, 0.7, event_ndims=1)
        return estimator(lambda z: framework.backend.xp.sum(z * z, axis=-1),
                         distribution, seed=2, num_samples=num_samples)

    # The rule is one backend-generic function: eagerly on both backends, compiled on TF's
    # XLA for every card; JAX's jit for the cards whose gradient the primitive would zero.
    if framework.name == "tensorflow":
        modes = [framework.modes[-1]] if compiled else ["eager"]
    else:
        modes = ["eager"] + ([framework.modes[-1]] if card.name in PRIMITIVE_MASKED else [])
    for mode in modes:
        value, (gradient,) = framework.value_and_vjp(surrogate, framework.constant(LOGITS),
                                                     mode=mode)
        assert np.isnan(value[0]) and np.isnan(value[1]), (mode, value)
        assert np.isfinite(value[2]), (mode, value)
        assert not np.isfinite(gradient[0, 0]) and not np.isfinite(gradient[1, 1]), mode
        assert np.all(np.isfinite(gradient[2])), (mode, gradient)


def test_a_nan_scale_gives_nan_for_a_normal(framework):
    from fxgx.estimators import reinforce

    def surrogate(scale):
        return reinforce()(lambda z: z * z, Normal(framework.constant([0.0, 1.0]), scale),
                           seed=0, num_samples=3)

    value, (gradient,) = framework.value_and_vjp(surrogate, framework.constant([math.nan, 1.0]))
    assert np.isnan(value[0]) and np.isfinite(value[1])
    assert np.isnan(gradient[0]) and np.isfinite(gradient[1])


MESSAGE = "Bernoulli logits has non-finite values"


def test_validate_args_raises_eagerly_naming_the_parameter(framework):
    with pytest.raises(ValueError, match=MESSAGE):
        Bernoulli(framework.constant(LOGITS), event_ndims=1, validate_args=True)
    with pytest.raises(ValueError, match="Normal scale has non-finite"):
        Normal(framework.constant(0.0), framework.constant(math.inf), validate_args=True)
    with pytest.raises(TypeError, match="validate_args"):
        Bernoulli(framework.constant(LOGITS), validate_args="yes")
    finite = Bernoulli(framework.constant(LOGITS[2]), validate_args=True)
    assert finite.validate_args


def test_validate_args_raises_when_compiled_code_runs(framework):
    from fxgx.estimators import disarm

    def surrogate(logits):
        return disarm()(lambda z: framework.backend.xp.sum(z, axis=-1),
                        Bernoulli(logits, event_ndims=1, validate_args=True), seed=0)

    compiled = framework.compile(surrogate, "function" if framework.name == "tensorflow" else "jit")
    assert np.all(np.isfinite(framework.numpy(compiled(framework.constant(LOGITS[2:])))))
    with pytest.raises(Exception, match=MESSAGE):
        framework.numpy(compiled(framework.constant(LOGITS)))


def test_tensorflow_probability_validate_args_carries_over():
    tfd = pytest.importorskip("tensorflow_probability").distributions
    from fxgx.estimators import reinforce

    with pytest.raises(ValueError, match=MESSAGE):
        reinforce()(lambda z: z, tfd.Bernoulli(logits=LOGITS[0], validate_args=True), seed=0)
    with pytest.raises(ValueError, match=MESSAGE):
        reinforce()(lambda z: z, tfd.Independent(tfd.Bernoulli(logits=LOGITS), 1,
                                                 validate_args=True), seed=0)


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("card", [card for card in CARDS if card.distributions == ("normal",)],
                         ids=lambda card: card.name)
def test_a_nan_scale_gives_nan_for_the_gaussian_estimators(framework, card):
    """The Gaussian-only cards (pathwise, measure-valued, delta method): a NaN scale gives a
    NaN value and gradient for its batch member only."""
    estimator = card.make()

    def surrogate(scale):
        return estimator(lambda z: z * z, Normal(framework.constant([0.0, 1.0]), scale),
                         seed=0, num_samples=3)

    value, (gradient,) = framework.value_and_vjp(surrogate, framework.constant([math.nan, 1.0]))
    assert np.isnan(value[0]) and np.isfinite(value[1])
    assert np.isnan(gradient[0]) and np.isfinite(gradient[1])
