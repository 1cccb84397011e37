"""Every catalogued estimator takes the distributions a TensorFlow Probability user has, in
every TensorFlow regime, with the same numbers for one seed.

For each card: fxgx's ``Bernoulli`` against ``tfd.Bernoulli`` (one latent per element) and
against ``tfd.Independent(tfd.Bernoulli, 1)`` (one latent vector per batch member), each run
eagerly, in ``tf.function`` and in ``tf.function(jit_compile=True)``. The surrogate's value
and its gradients w.r.t. the logits and w.r.t. a parameter that ``f`` closes over must agree
across all of them (float32 rounding only: XLA may fuse differently). Deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx import catalogue
from fxgx.distributions import Bernoulli, Normal, OneHotCategorical

tf = pytest.importorskip("tensorflow")
tfd = pytest.importorskip("tensorflow_probability").distributions

CARDS = catalogue.load_cards()
MODES = ("eager", "function", "xla")
LOGITS = np.array([[0.3, -0.6, 1.1], [-0.4, 0.2, 0.0]], np.float32)
CATEGORICAL_LOGITS = np.array([[[0.3, -0.6, 1.1], [0.5, 0.0, -0.2]],
                               [[-0.4, 0.2, 0.0], [1.0, -1.0, 0.1]]], np.float32)
CENTER = np.array([0.2, 0.7, 0.4], np.float32)


def _forms(kind):
    """``{name: (make_distribution(logits), event_axes_of_f)}``: fxgx and TFP forms with the
    same latents, the pairs that must agree, and how many trailing axes ``f`` sums."""
    if kind == "normal":  # the Gaussian-only cards: loc = logits, scale = exp(0.3 logits)
        return {
            "fxgx-event": (lambda logits: Normal(logits, tf.exp(0.3 * logits), event_ndims=1), 1),
            "tfd-independent": (lambda logits: tfd.Independent(
                tfd.Normal(logits, tf.exp(0.3 * logits)), 1), 1),
            "fxgx-element": (lambda logits: Normal(logits, tf.exp(0.3 * logits)), 0),
            "tfd-element": (lambda logits: tfd.Normal(logits, tf.exp(0.3 * logits)), 0),
        }
    if kind == "bernoulli":
        return {
            "fxgx-event": (lambda logits: Bernoulli(logits, event_ndims=1), 1),
            "tfd-independent": (lambda logits: tfd.Independent(
                tfd.Bernoulli(logits=logits, dtype=tf.float32), 1), 1),
            "fxgx-element": (lambda logits: Bernoulli(logits), 0),
            "tfd-element": (lambda logits: tfd.Bernoulli(logits=logits, dtype=tf.float32), 0),
        }
    return {
        "fxgx-event": (lambda logits: OneHotCategorical(logits, event_ndims=1), 2),
        "tfd-independent": (lambda logits: tfd.Independent(
            tfd.OneHotCategorical(logits=logits, dtype=tf.float32), 1), 2),
        "fxgx-element": (lambda logits: OneHotCategorical(logits), 1),
        "tfd-element": (lambda logits: tfd.OneHotCategorical(logits=logits, dtype=tf.float32), 1),
    }


#: In the default set: one card per way of drawing from the distribution (score function,
#: antithetic pairs, Gumbel relaxation with a control variate, multi-sample); the other cards
#: share those paths and run in the slow set (CI runs it).
DEFAULT_CARDS = ("reinforce", "disarm", "relax", "vimco")


def _cases():
    for card in CARDS:
        marks = [] if card.name in DEFAULT_CARDS else [pytest.mark.slow]
        if card.distributions == ("normal",):
            yield pytest.param(card, "normal", id=f"{card.name}-normal", marks=marks)
            continue
        yield pytest.param(card, "bernoulli", id=f"{card.name}-bernoulli", marks=marks)
        if card.supports("categorical") and "any" not in card.distributions:
            # The same conversion path with a class axis: in the slow set (CI runs it).
            yield pytest.param(card, "categorical", id=f"{card.name}-categorical",
                               marks=pytest.mark.slow)


def _run(card, kind, make, event_axes, mode):
    estimator = card.make()
    num_samples = max(card.num_samples, estimator.minimum_samples, 2)
    logits = tf.Variable(CATEGORICAL_LOGITS if kind == "categorical" else LOGITS)
    center = tf.Variable(CENTER)

    def function(samples):
        squared = tf.square(samples - center)
        if event_axes == 0:
            return squared
        return tf.reduce_sum(squared, axis=list(range(-event_axes, 0)))

    def compute():
        with tf.GradientTape() as tape:
            surrogate = estimator(function, make(logits), seed=11, num_samples=num_samples)
            total = tf.reduce_sum(surrogate)
        logits_gradient, center_gradient = tape.gradient(total, [logits, center])
        return surrogate, logits_gradient, center_gradient

    if mode != "eager":
        compute = tf.function(compute, jit_compile=mode == "xla", autograph=False)
    return [None if value is None else value.numpy() for value in compute()]


@pytest.mark.parametrize("card, kind", list(_cases()))
def test_same_numbers_for_every_distribution_form_and_regime(card, kind):
    """fxgx's event form and both TFP forms in all three regimes, against the eager fxgx
    forms (the element form, a reference only, runs eagerly)."""
    forms = _forms(kind)
    for reference, checked in (("fxgx-event", ("fxgx-event", "tfd-independent")),
                               ("fxgx-element", ("tfd-element",))):
        expected = _run(card, kind, *forms[reference], "eager")
        assert expected[2] is not None, "no gradient reached the parameter f closes over"
        for value in expected:
            assert np.all(np.isfinite(value))
        for name in checked:
            for mode in MODES:
                if (name, mode) == (reference, "eager"):
                    continue
                actual = _run(card, kind, *forms[name], mode)
                for part, want, got in zip(("value", "logits gradient", "f's gradient"),
                                           expected, actual, strict=True):
                    np.testing.assert_allclose(
                        got, want, rtol=2e-6, atol=2e-7,
                        err_msg=f"{card.name}: {part} of {name} in {mode} mode")
