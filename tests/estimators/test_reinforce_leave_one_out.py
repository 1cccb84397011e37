"""REINFORCE-LOO (``fxgx.estimators.reinforce_leave_one_out``): its exact variance on the
Bernoulli toy, next to REINFORCE's.

The tests it shares with the other baselines (every execution mode, ``jax.vmap``, ``f`` never
differentiated, bad input) are in ``test_baselines.py``; ``test_catalogue.py`` tests it
against the exact gradient of every problem its card names.

Statistical tests, their false-failure rates and power:

- Exact variance (``assert_variance``): two-sided z-test of the sample variance of 2^18
  estimates against the exact variance by enumerating the ``2^S`` sample tuples (numpy
  float64, ``exact_score_function_moments``; REINFORCE's and LOO's also checked against a
  closed form, ``closed_form_variance``), standard error from the fourth moment,
  false-failure rate 1e-5. The test first checks that it would detect a 5 % error in the
  variance with probability 0.99 (``_assert_variance_with_power``). The same draws check the
  mean against the exact gradient (``assert_unbiased``, 1e-5, power 0.99 for a bias of
  0.005).
"""

from __future__ import annotations

import pytest
from support import RULES, TARGET, exact_score_function_moments, sigmoid
from support import assert_variance_with_power as _assert_variance_with_power

from fxgx.estimators import reinforce, reinforce_leave_one_out
from fxgx.problems import BernoulliToy
from fxgx.testing import assert_unbiased, gradient_moments

FALSE_FAILURE_RATE = 1e-5
NUM_ESTIMATES = 2**18


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
    p = sigmoid(logit)
    one, zero = (1.0 - target) ** 2, target**2
    if rule == "reinforce":
        return p * (1.0 - p) * (one * (1.0 - p) + zero * p) ** 2
    differ = 2.0 * p * (1.0 - p)
    return (0.5 * (one - zero)) ** 2 * differ * (1.0 - differ)


# Compares REINFORCE-LOO with REINFORCE (one sample, no baseline).
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
