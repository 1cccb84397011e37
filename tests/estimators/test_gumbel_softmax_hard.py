"""The hard (straight-through) Gumbel-softmax estimator (``gumbel_softmax_hard``, or
``gumbel_softmax(hard=True)``): its one-hot samples have the softmax probabilities, and its
value is ``f`` at the one-hot samples.

The tests it shares with the relaxed estimator (the exact mean by quadrature, numerical
safety, modes, the interface; most parametrised over ``hard``) are in
``test_gumbel_softmax.py``; ``test_catalogue.py`` checks the sign of its bias on the problems
its card names.

Statistical test: Holm-adjusted z-tests of the one-hot frequencies against
``softmax(logits)`` (normal approximation to the binomial, ``n = 2^16`` per cell),
family-wise false-failure rate 1e-6; a probability off by 0.01 has ``|z| > 5`` plus margin.
Seeds are fixed. The other test is deterministic.
"""

from __future__ import annotations

import numpy as np
from support import frequency_test as _frequency_test
from support import softmax

from fxgx.distributions import OneHotCategorical
from fxgx.estimators import gumbel_softmax_hard, gumbel_softmax_sample


def test_gumbel_softmax_hard_samples_have_the_softmax_probabilities(backend):
    trials = 2**16
    logits_ = np.array([[1.0, -0.5, 0.0, 2.0], [0.0, 0.0, 0.0, -4.0]])
    logits = backend.xp.asarray(np.broadcast_to(logits_, (trials, 2, 4)), dtype=backend.xp.float32)
    one_hot = np.asarray(gumbel_softmax_sample(logits, temperature=0.7, seed=2, hard=True))
    _frequency_test(one_hot.sum(axis=0).ravel(), trials, softmax(logits_).ravel())
    relaxed = np.asarray(gumbel_softmax_sample(logits, temperature=0.7, seed=2))
    np.testing.assert_array_equal(np.argmax(relaxed, -1), np.argmax(one_hot, -1))
    np.testing.assert_allclose(relaxed.sum(-1), 1.0, rtol=1e-5)
    assert relaxed.min() >= 0.0


def test_hard_estimator_value_is_f_at_the_one_hot_samples(backend):
    seen = []
    values = np.array([[0.3, -0.5, 0.8], [1.0, 0.0, -1.0]])

    def function(samples):
        seen.append(samples)
        return backend.xp.sum(samples * backend.xp.asarray(values, dtype=backend.xp.float32),
                              axis=(-2, -1))

    logits = backend.xp.asarray(np.array([[0.2, 0.1, -0.3], [0.0, 1.0, 0.5]]),
                                dtype=backend.xp.float32)
    value = gumbel_softmax_hard()(function, OneHotCategorical(logits, event_ndims=1), seed=4,
                                  num_samples=16)
    samples = np.asarray(seen[0])
    assert samples.shape == (16, 2, 3) and set(np.unique(samples)) <= {0.0, 1.0}
    np.testing.assert_array_equal(samples.sum(-1), 1.0)
    expected = np.mean(np.sum(samples * values.astype(np.float32), axis=(-2, -1)))
    np.testing.assert_allclose(np.asarray(value), expected, rtol=1e-6)
