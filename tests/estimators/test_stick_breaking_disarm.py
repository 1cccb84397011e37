"""Stick-breaking DisARM (``fxgx.estimators.stick_breaking_disarm``): for one seed its value
and gradient are the Rao-Blackwellised DisARM formula on the drawn pairs, computed in NumPy
(float64, deterministic).

The tests it shares with categorical DisARM (exact means and variances by enumerating the
coupled pair, the coupling's law, the reduction to Bernoulli DisARM at K = 2, modes, bad
input; parametrised over both cards) are in ``test_categorical_disarm.py``;
``test_catalogue.py`` tests it against the exact gradient of every problem its card names.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import sigmoid, stick_breaking_jacobian

from fxgx.distributions import OneHotCategorical
from fxgx.estimators import stick_breaking_disarm

#: Two variables of four classes, and the weights of a non-additive ``f``.
LOGITS = np.array([[0.3, -0.8, 1.1, 0.2], [-0.5, 0.4, -1.2, 0.9]])
WEIGHTS = np.array([[0.5, -1.0, 0.3, 0.8], [0.2, 0.9, -0.4, -0.7]])


def test_the_estimate_is_the_formula_on_the_drawn_pairs():
    """Eight pairs from one seed (TensorFlow, float64): the value is the mean of ``f`` over
    both members of every pair, and the gradient is the mean over pairs of ``J^T g`` with
    ``g_k = 1/2 (f(z) - f(z~))`` times ``(b_k - b~_k) sigmoid(|eta_k|)`` where both decision
    sequences are alive, ``b_k - sigmoid(eta_k)`` where only ``z``'s is, ``-(b~_k -
    sigmoid(eta_k))`` where only ``z~``'s is, 0 elsewhere, and ``J = d eta / d theta``
    (``eta_k = theta_k - logsumexp(theta_{k+1:})``). The decisions are read off the classes
    ``f`` was given (a sequence alive at ``k <= z`` has ``b_k = 1[k = z]``); the draws cover
    all three cases, so a formula that differs in any of them fails."""
    tf = pytest.importorskip("tensorflow")
    num_pairs = 8
    seen = []

    def function(samples):
        seen.append(samples.numpy())
        linear = tf.reduce_sum(samples * tf.constant(WEIGHTS, samples.dtype), axis=(-2, -1))
        return linear**2 + samples[..., 0, 1] * samples[..., 1, 3]

    logits = tf.Variable(LOGITS)
    with tf.GradientTape() as tape:
        value = stick_breaking_disarm()(function, OneHotCategorical(logits, event_ndims=1),
                                        seed=8, num_samples=num_pairs)
    gradient = tape.gradient(value, logits).numpy()
    assert len(seen) == 1  # f is called once, on the first members and then their partners
    samples = seen[0]
    values = np.sum(samples * WEIGHTS, axis=(-2, -1)) ** 2 + samples[..., 0, 1] * samples[..., 1, 3]
    classes = np.argmax(samples, axis=-1)  # [2 S, D]
    first, second = classes[:num_pairs, :, None], classes[num_pairs:, :, None]
    steps = np.arange(LOGITS.shape[-1] - 1)  # the K - 1 decisions
    eta = np.stack([LOGITS[:, k] - np.logaddexp.reduce(LOGITS[:, k + 1:], axis=-1)
                    for k in steps], axis=-1)
    decisions, partner_decisions = (steps == first).astype(float), (steps == second).astype(float)
    both = (steps <= first) & (steps <= second)
    only_first, only_second = (steps <= first) & ~both, (steps <= second) & ~both
    parted = both & (decisions != partner_decisions)
    assert parted.any() and only_first.any() and only_second.any()
    per_decision = (both * (decisions - partner_decisions) * sigmoid(np.abs(eta))
                    + only_first * (decisions - sigmoid(eta))
                    - only_second * (partner_decisions - sigmoid(eta)))
    half_difference = 0.5 * (values[:num_pairs] - values[num_pairs:])[:, None, None]
    expected = np.mean(np.einsum("sdk,dkj->sdj", half_difference * per_decision,
                                 stick_breaking_jacobian(LOGITS)), axis=0)
    np.testing.assert_allclose(value.numpy(), np.mean(values), rtol=1e-12)
    np.testing.assert_allclose(gradient, expected, rtol=1e-10, atol=1e-14)
    assert np.max(np.abs(gradient)) > 1e-2
