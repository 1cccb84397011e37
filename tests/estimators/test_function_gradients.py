"""Each estimator's ``passes_function_gradients`` declaration matches what it does.

For ``f = c`` (a constant that the estimator cannot tell from data), the surrogate's
derivative w.r.t. ``c`` is 1 when the estimator lets gradients flow through the values of
``f`` and 0 when it evaluates ``f`` under ``stop_gradient``. ``fxgx.vi`` relies on the
declaration to give every estimator the same gradient for parameters that ``f`` closes over.
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx import catalogue
from fxgx.distributions import Bernoulli, Normal, OneHotCategorical

CARDS = catalogue.load_cards()


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("card", CARDS, ids=[card.name for card in CARDS])
def test_declared_function_gradient_behaviour(card, backend):
    estimator = card.make()
    if card.supports("bernoulli"):
        distribution = Bernoulli(backend.xp.asarray(np.array([0.3, -0.2], np.float32)),
                                 event_ndims=1)
    elif card.supports("categorical"):
        logits = np.array([[0.3, -0.2, 0.1], [0.0, 0.4, -0.5]], np.float32)
        distribution = OneHotCategorical(backend.xp.asarray(logits), event_ndims=1)
    else:  # the Gaussian-only cards
        distribution = Normal(backend.xp.asarray(np.array([0.3, -0.2], np.float32)),
                              backend.xp.asarray(np.array([0.5, 1.2], np.float32)), event_ndims=1)
    num_samples = max(card.num_samples, estimator.minimum_samples)

    def total(constant):
        def function(samples):
            rank = len(tuple(samples.shape))
            event_axes = tuple(range(1 + len(distribution.batch_shape), rank))
            return backend.xp.sum(samples * 0.0, axis=event_axes) + constant

        return estimator(function, distribution, seed=0, num_samples=num_samples)

    _, (derivative,) = backend.value_and_gradient(
        total, [backend.xp.asarray(1.0, dtype=backend.xp.float32)])
    expected = 1.0 if estimator.passes_function_gradients else 0.0
    assert float(np.asarray(derivative)) == pytest.approx(expected, abs=1e-6)
