"""``Distribution.sample`` takes every seed form its docstring names (an int, a pair, a
framework seed), as every other random function of fxgx does, and the same seed gives the
same draws in each form."""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.core.seeds import canonical_seed
from fxgx.distributions import Bernoulli, Normal, OneHotCategorical


def _distributions(framework):
    logits = framework.constant([[0.3, -1.2, 2.0], [0.0, 0.5, -0.4]])
    return [Bernoulli(logits, event_ndims=1), OneHotCategorical(logits),
            Normal(logits, framework.constant([1.0, 0.5, 2.0]))]


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("index", [0, 1, 2], ids=["bernoulli", "categorical", "normal"])
def test_an_int_seed_gives_the_draws_of_its_canonical_seed(framework, index):
    distribution = _distributions(framework)[index]
    native = canonical_seed(7, framework.backend)
    from_int = framework.numpy(distribution.sample((4,), 7))
    np.testing.assert_array_equal(from_int, framework.numpy(distribution.sample((4,), native)))
    np.testing.assert_array_equal(from_int, framework.numpy(distribution.sample((4,), [0, 7])))
    assert not np.array_equal(from_int, framework.numpy(distribution.sample((4,), 8)))


@pytest.mark.jax_in_slow_set
def test_a_bad_seed_is_a_clear_error(framework):
    distribution = _distributions(framework)[0]
    with pytest.raises(TypeError, match="seed=0.5 is a float"):
        distribution.sample((2,), 0.5)
