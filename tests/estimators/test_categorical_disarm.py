"""Categorical DisARM and stick-breaking DisARM (Dong, Mnih & Tucker, 2021): exact means and
variances by enumerating the coupled pair, the coupling's joint law, the reduction to
Bernoulli DisARM at K = 2, every execution mode, and bad input.

Both cards run the same coupling (categorical DisARM over the classes sorted by ascending
logit, stick-breaking DisARM in the given order), so most tests here are parametrised over
both; each names stick-breaking DisARM in a comment. Its own test, the formula on the drawn
pairs, is in ``test_stick_breaking_disarm.py``.

Both estimates depend on the uniforms only through the coupled pair ``(z_d, z~_d)`` of each
variable (the decisions after a sequence stops are integrated out or multiplied by 0), and
the pairs of different variables are independent. So the exact law of one estimate is a sum
over the ``(K^2)^D`` joint pair states with the coupling's probabilities, which this file
derives on its own (``coupling_probabilities``, the product formula of the stick-breaking
construction) and checks against the sampler.

Tests and their error rates:

- Exact mean (deterministic): ``sum_pairs P(pair) g(pair)`` equals the exact gradient by
  enumeration to 1e-10 relative: no sampling, any bias in the estimate or the weight fails.
- Coupling law: chi-square goodness of fit of 2^16 sampled pairs per variable against
  ``coupling_probabilities`` (cells with expected count < 5 pooled), false-failure rate 1e-6
  per variable (Bonferroni over the variables). Power: with 2^16 draws a cell-probability
  error of 1e-2 on a cell of probability 0.05 moves the statistic by about 130, far above
  the critical value (about 45 for 10 degrees of freedom).
- Exact variance (deterministic): computed by enumeration and compared with REINFORCE-LOO
  with two samples (the same two evaluations of ``f``), whose variance is enumerated over
  the independent pairs; the numbers are printed (``-s``) and the test asserts only what
  was computed: the trace of each coupled estimator's covariance against REINFORCE-LOO's.
- Sampled against enumerated (slow set): the estimators' own draws against the enumerated
  variance and mean (rates in the test's docstring).
- K = 2 and modes: equalities to rounding (tolerances stated at each assertion). TensorFlow
  and JAX draw different uniforms for one seed, so modes are compared within a framework.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from support import softmax as _softmax
from support import stick_breaking_jacobian

from fxgx.backends import framework_by_name
from fxgx.core.seeds import canonical_seed
from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.estimators import categorical_disarm, disarm, stick_breaking_disarm
from fxgx.estimators.categorical_disarm import categorical_disarm_gradient
from fxgx.estimators.stick_breaking import CoupledCategoricalPairs, coupled_pairs
from fxgx.estimators.stick_breaking_disarm import stick_breaking_disarm_gradient
from fxgx.problems import enumerate_categorical, get_problem
from fxgx.problems.builtin import (
    CATEGORICAL_LOGITS,
    LARGE_CATEGORICAL_LOGITS,
    categorical_function,
)
from fxgx.testing import assert_unbiased, assert_variance, gradient_moments

#: The JAX instances run the same backend-generic code as the TensorFlow ones: in the slow
#: set (CI runs it), to keep the default suite within its time budget.
pytestmark = pytest.mark.jax_in_slow_set

ESTIMATORS = {"categorical_disarm": categorical_disarm,
              "stick_breaking_disarm": stick_breaking_disarm}


def stop_probabilities(logits):
    """``pi_k = p_k / sum_{j >= k} p_j`` for ``k < K - 1`` (float64, numpy)."""
    probabilities = _softmax(np.asarray(logits, np.float64))
    remaining = np.cumsum(probabilities[..., ::-1], axis=-1)[..., ::-1]
    return probabilities[..., :-1] / remaining[..., :-1]


def coupling_probabilities(logits):
    """The joint law ``P(z = n, z~ = m)`` of the stick-breaking antithetic coupling of one
    variable, shape ``[K, K]``, from the product formula: both sequences pass decision ``i``
    with probability ``max(0, 1 - 2 pi_i)``, stop together with ``max(0, 2 pi_i - 1)``, part
    with ``min(pi_i, 1 - pi_i)`` each way; after parting the live one runs on alone."""
    stop = stop_probabilities(logits)
    num_classes = len(stop) + 1
    stop_all = np.append(stop, 1.0)  # the last class: a sequence that gets there stops
    table = np.zeros((num_classes, num_classes))
    both_reach = 1.0
    for n in range(num_classes):
        if n == num_classes - 1:
            table[n, n] = both_reach
            break
        table[n, n] = both_reach * max(0.0, 2 * stop[n] - 1)
        part = both_reach * min(stop[n], 1 - stop[n])
        alone = 1.0
        for m in range(n + 1, num_classes):
            probability = part * alone * stop_all[m]
            table[n, m] = table[m, n] = probability
            alone *= 1 - stop_all[m]
        both_reach *= max(0.0, 1 - 2 * stop[n])
    return table


def class_order(logits, ascending):
    """The coupling's class order: ascending logits (stable) or the given order."""
    logits = np.asarray(logits)
    return np.argsort(logits, kind="stable") if ascending else np.arange(logits.shape[-1])


def ordered_coupling_probabilities(logits, ascending):
    """``coupling_probabilities`` of the classes in the coupling's order, indexed by the
    given classes."""
    order = class_order(logits, ascending)
    table = np.zeros((len(order), len(order)))
    table[np.ix_(order, order)] = coupling_probabilities(np.asarray(logits)[order])
    return table


#: categorical_disarm runs the coupling over classes sorted by ascending logit.
ASCENDING = {"categorical_disarm": True, "stick_breaking_disarm": False}


def test_the_coupling_has_the_categorical_as_both_marginals():
    """Deterministic: the product formula's margins are ``softmax(theta)`` (1e-14)."""
    for logits in list(CATEGORICAL_LOGITS) + list(LARGE_CATEGORICAL_LOGITS):
        table = coupling_probabilities(logits)
        np.testing.assert_allclose(table.sum(axis=1), _softmax(logits), atol=1e-14)
        np.testing.assert_allclose(table.sum(axis=0), _softmax(logits), atol=1e-14)


def _backend():
    return framework_by_name("tensorflow")


def _pairs_from_classes(backend, logits, first_classes, second_classes, first_values,
                        second_values, ascending):
    """``CoupledCategoricalPairs`` for given classes (``[N, D]``), in float64: the decisions
    up to a sequence's class (in the coupling's order) are determined by it (0 before, 1 at
    it); later ones are set to 0 (the estimators do not read them)."""
    num_classes = logits.shape[-1]
    steps = np.arange(num_classes - 1)
    orders = np.stack([class_order(row, ascending) for row in logits])  # [D, K]
    ranks = np.argsort(orders, axis=-1)  # rank of each given class
    dimension = np.arange(logits.shape[0])

    def parts(classes):
        rank = ranks[dimension, classes]
        decisions = (steps == rank[..., None]).astype(np.float64)
        alive = (steps <= rank[..., None]).astype(np.float64)
        return decisions, np.eye(num_classes)[classes], alive

    first_decisions, first, first_alive = parts(first_classes)
    second_decisions, second, second_alive = parts(second_classes)
    ordered = np.take_along_axis(logits, orders, axis=-1)
    eta = np.log(stop_probabilities(ordered)) - np.log1p(-stop_probabilities(ordered))
    convert = lambda array: backend.xp.asarray(  # noqa: E731
        np.asarray(array, np.float64), dtype=backend.xp.float64)
    return CoupledCategoricalPairs(
        convert(eta), convert(first_decisions), convert(second_decisions), convert(first),
        convert(second), convert(first_alive), convert(second_alive), convert(first_values),
        convert(second_values))


def exact_moments(name, function, logits):
    """Exact mean and variance (per logit) of one estimate (one coupled pair), by enumerating
    the ``(K^2)^D`` joint pair states. ``logits`` has shape ``[D, K]``."""
    logits = np.asarray(logits, np.float64)
    dimension, num_classes = logits.shape
    tables = [ordered_coupling_probabilities(row, ASCENDING[name]) for row in logits]
    per_variable = list(itertools.product(range(num_classes), repeat=2))
    states = np.array(list(itertools.product(per_variable, repeat=dimension)))  # [N, D, 2]
    probability = np.prod([tables[d][states[:, d, 0], states[:, d, 1]]
                           for d in range(dimension)], axis=0)
    keep = probability > 0
    states, probability = states[keep], probability[keep]
    eye = np.eye(num_classes)
    backend = _backend()
    values = [np.asarray(function(backend.xp.asarray(eye[states[:, :, side]],
                                                     dtype=backend.xp.float64)))
              for side in (0, 1)]
    pairs = _pairs_from_classes(backend, logits, states[:, :, 0], states[:, :, 1], *values,
                                ascending=ASCENDING[name])
    if name == "categorical_disarm":
        gradient = np.asarray(categorical_disarm_gradient(backend, pairs, 1))
    else:
        eta_gradient = np.asarray(stick_breaking_disarm_gradient(backend, pairs, 1))
        gradient = np.einsum("ndk,dkj->ndj", eta_gradient, stick_breaking_jacobian(logits))
    gradient = gradient.reshape(len(states), -1)
    mean = probability @ gradient
    return mean, probability @ gradient**2 - mean**2


def leave_one_out_exact_moments(function, logits):
    """Exact mean and variance of REINFORCE-LOO with two independent samples,
    ``sum_s (f(z_s) - mean f) (e_{z_s} - p)`` (``1/(S-1) = 1``), by enumerating the
    ``K^D x K^D`` pairs of states."""
    logits = np.asarray(logits, np.float64)
    dimension, num_classes = logits.shape
    probabilities = _softmax(logits)
    classes = np.array(list(itertools.product(range(num_classes), repeat=dimension)))
    one_hot = np.eye(num_classes)[classes]  # [M, D, K]
    backend = _backend()
    values = np.asarray(function(backend.xp.asarray(one_hot, dtype=backend.xp.float64)))
    state_probability = np.prod(probabilities[np.arange(dimension), classes], axis=1)
    score = (one_hot - probabilities).reshape(len(classes), -1)
    mean_value = 0.5 * (values[:, None] + values[None, :])
    gradient = ((values[:, None] - mean_value)[..., None] * score[:, None, :]
                + (values[None, :] - mean_value)[..., None] * score[None, :, :])
    weight = state_probability[:, None] * state_probability[None, :]
    mean = np.einsum("ij,ijk->k", weight, gradient)
    return mean, np.einsum("ij,ijk->k", weight, gradient**2) - mean**2


def two_large_variables(samples):
    """A non-additive ``f`` over two ten-class variables."""
    from fxgx.backends import get_framework

    backend = get_framework(samples)
    weights = backend.xp.asarray(np.linspace(-1.0, 1.0, 20).reshape(2, 10), dtype=samples.dtype)
    linear = backend.xp.sum(samples * weights, axis=(-2, -1))
    return backend.xp.square(linear - 0.3) + samples[..., 0, 8] * samples[..., 1, 2]


#: ``small_categorical``; the ``categorical`` problem's logits rows 0-1 (in the given order
#: every stick-breaking probability before the last decision is below 1/2) and rows 2-3
#: (``pi_7 = 0.55`` and ``0.46, 0.65``: the given order cannot part the pairs (8, 9)).
CASES = {
    "small_categorical": (categorical_function, CATEGORICAL_LOGITS),
    "ten_class_rows_0_1": (two_large_variables, LARGE_CATEGORICAL_LOGITS[:2]),
    "ten_class_rows_2_3": (two_large_variables, LARGE_CATEGORICAL_LOGITS[2:]),
}


# categorical_disarm and stick_breaking_disarm (the name parameter).
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_exact_mean_is_the_exact_gradient(name, case):
    function, logits = CASES[case]
    exact = enumerate_categorical(function, logits, backend="tensorflow")[1].ravel()
    mean, _ = exact_moments(name, function, logits)
    np.testing.assert_allclose(mean, exact, rtol=1e-10, atol=1e-12)


# Both cards, against reinforce_leave_one_out's exact variance.
def test_exact_variance_against_reinforce_leave_one_out(capsys):
    """Exact variances at equal cost (two evaluations of ``f``), printed; the assertion is
    the ordering of the traces the enumeration gives (computed, not assumed)."""
    traces = {}
    for case, (function, logits) in CASES.items():
        _, loo_variance = leave_one_out_exact_moments(function, logits)
        traces[case, "reinforce_leave_one_out(S=2)"] = loo_variance.sum()
        for name in ESTIMATORS:
            _, variance = exact_moments(name, function, logits)
            traces[case, name] = variance.sum()
    with capsys.disabled():
        for key, value in traces.items():
            print(f"exact trace of the covariance, {key[0]}, {key[1]}: {value:.6g}")
    for case in CASES:
        loo = traces[case, "reinforce_leave_one_out(S=2)"]
        assert traces[case, "stick_breaking_disarm"] < loo
        assert traces[case, "categorical_disarm"] < loo


# ------------------------------------------------------------------ the sampler's law

LAW_DRAWS = 2**16
LAW_FALSE_FAILURE_RATE = 1e-6


def _zero_function(samples):
    from fxgx.backends import get_framework

    return get_framework(samples).xp.sum(samples, axis=(-2, -1)) * 0.0


# The coupling of both cards: stick_breaking_disarm's order and the ascending one.
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("ascending", [False, True])
def test_sampled_pairs_follow_the_coupling_law(backend, ascending):
    """Chi-square test of the sampled ``(z_d, z~_d)`` against the product formula for each
    of the ``categorical`` problem's four ten-class variables, in the given class order and
    in ascending order of logit (error rates: module docstring)."""
    logits = backend.xp.asarray(LARGE_CATEGORICAL_LOGITS, dtype=backend.xp.float32)
    pairs = coupled_pairs(backend, _zero_function, OneHotCategorical(logits, event_ndims=1),
                          canonical_seed(7, backend), LAW_DRAWS, ascending=ascending)
    first = np.argmax(np.asarray(pairs.first), axis=-1)  # [S, D]
    second = np.argmax(np.asarray(pairs.second), axis=-1)
    num_classes = LARGE_CATEGORICAL_LOGITS.shape[-1]
    for d, row in enumerate(LARGE_CATEGORICAL_LOGITS):
        expected = ordered_coupling_probabilities(row, ascending).ravel() * LAW_DRAWS
        observed = np.bincount(first[:, d] * num_classes + second[:, d],
                               minlength=num_classes**2)
        assert observed[expected == 0].sum() == 0, f"variable {d}: an impossible pair was drawn"
        large, small = expected >= 5, (expected > 0) & (expected < 5)
        pooled_expected = np.append(expected[large], expected[small].sum())
        pooled_observed = np.append(observed[large], observed[small].sum())
        if not small.any():
            pooled_expected, pooled_observed = pooled_expected[:-1], pooled_observed[:-1]
        statistic = np.sum((pooled_observed - pooled_expected) ** 2 / pooled_expected)
        critical = stats.chi2.ppf(1 - LAW_FALSE_FAILURE_RATE / 4, len(pooled_expected) - 1)
        assert statistic < critical, f"variable {d}: chi2 = {statistic:.1f} > {critical:.1f}"


# ------------------------------------------------------------------ K = 2 is Bernoulli DisARM

#: ``theta_0 - theta_1`` per variable, all <= 0 so that categorical_disarm's ascending order
#: is the given one (a tie keeps it).
TWO_CLASS_LOGITS = np.array([-1.3, 0.0, -0.4, -2.2, -0.2])


def _bits_function(bits):
    from fxgx.backends import get_framework

    backend = get_framework(bits)
    weights = backend.xp.asarray(np.linspace(-1.0, 1.5, 5), dtype=bits.dtype)
    linear = backend.xp.sum(bits * weights, axis=-1)
    return backend.xp.square(linear - 0.4) + bits[..., 0] * bits[..., 3]


# categorical_disarm and stick_breaking_disarm (the name parameter).
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_two_classes_are_bernoulli_disarm(framework, name):
    """With ``theta = [eta, 0]`` per variable and ``f(z) = h(z[..., 0])`` both estimators
    give Bernoulli DisARM's value and gradient on ``eta`` with ``h`` (same seed, same
    uniforms), ``+g`` on ``theta_0`` and ``-g`` on ``theta_1``; float64, to 1e-12."""
    estimator = ESTIMATORS[name]()
    two_class = np.stack([TWO_CLASS_LOGITS, np.zeros(5)], axis=-1)

    def categorical_surrogate(logits):
        return estimator(lambda samples: _bits_function(samples[..., 0]),
                         OneHotCategorical(logits, event_ndims=1), seed=4, num_samples=6)

    def bernoulli_surrogate(logits):
        return disarm()(_bits_function, Bernoulli(logits, event_ndims=1), seed=4,
                        num_samples=6)

    with framework.x64("float64"):
        value, (gradient,) = framework.value_and_vjp(
            categorical_surrogate, framework.constant(two_class, "float64"))
        expected_value, (expected,) = framework.value_and_vjp(
            bernoulli_surrogate, framework.constant(TWO_CLASS_LOGITS, "float64"))
    assert np.any(expected != 0)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(gradient[:, 0], expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gradient[:, 1], -expected, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ modes and bad input

MODE_LOGITS = np.array([[[0.3, -0.2, 1.0, 0.0], [1.0, 0.5, -0.5, 0.2]],
                        [[-0.7, 0.0, 0.1, 0.9], [0.0, 0.0, 0.0, 0.0]]])


def _event_function(samples):
    """``(sum_{d,k} k z_{d,k} - 2)^2 + z_{0,1}`` per batch member of samples ``[..., 2, 4]``."""
    from fxgx.backends import get_framework

    backend = get_framework(samples)
    weights = backend.xp.asarray(np.arange(4.0), dtype=samples.dtype)
    linear = backend.xp.sum(samples * weights, axis=(-2, -1))
    return backend.xp.square(linear - 2.0) + samples[..., 0, 1]


# categorical_disarm and stick_breaking_disarm (the name parameter).
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", [
    "stick_breaking_disarm",
    # The same pair machinery plus the class sort (a longer XLA compile): in the slow set.
    pytest.param("categorical_disarm", marks=pytest.mark.slow),
])
def test_same_numbers_in_every_mode(framework, name):
    """Eager, graph and XLA (TensorFlow) or eager and jit (JAX) give the same value and
    gradient for one seed (float32: rtol 1e-5, atol 1e-6)."""
    estimator = ESTIMATORS[name]()

    def surrogate(logits):
        return estimator(_event_function, OneHotCategorical(logits, event_ndims=1), seed=5,
                         num_samples=3)

    results = {mode: framework.value_and_vjp(surrogate, framework.constant(MODE_LOGITS),
                                             mode=mode)
               for mode in framework.modes}
    value, (gradient,) = results["eager"]
    assert value.shape == (2,) and gradient.shape == (2, 2, 4)
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)
    for mode, (other_value, (other_gradient,)) in results.items():
        np.testing.assert_allclose(other_value, value, rtol=1e-6, err_msg=mode)
        np.testing.assert_allclose(other_gradient, gradient, rtol=1e-5, atol=1e-6, err_msg=mode)


# categorical_disarm and stick_breaking_disarm (the name parameter).
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_bad_distributions_are_rejected(framework, name):
    estimator = ESTIMATORS[name]()
    logits = framework.constant(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="at least 2 classes"):
        estimator(lambda samples: samples[..., 0], OneHotCategorical(logits), seed=1)
    with pytest.raises(TypeError, match="supports bernoulli and categorical"):
        estimator(lambda samples: samples, Normal(framework.constant(np.zeros(3)),
                                                  framework.constant(np.ones(3))), seed=1)


def test_only_the_ascending_order_parts_every_pair_of_classes():
    """Deterministic: in the given order row 3 of the ``categorical`` logits has
    ``pi_7 > 1/2``, so the pair of classes (8, 9) has coupling probability 0 although
    ``q(8) q(9) > 0`` (importance sampling would miss it); in ascending order every
    off-diagonal pair has positive probability, for every row."""
    row = LARGE_CATEGORICAL_LOGITS[3]
    assert stop_probabilities(row)[7] > 0.5
    assert coupling_probabilities(row)[8, 9] == 0.0 and np.prod(_softmax(row)[8:]) > 0
    for row in list(LARGE_CATEGORICAL_LOGITS) + list(CATEGORICAL_LOGITS):
        table = ordered_coupling_probabilities(row, ascending=True)
        assert np.all(table[~np.eye(len(row), dtype=bool)] > 0)


# categorical_disarm and stick_breaking_disarm (the name parameter).
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_a_non_finite_logit_poisons_only_its_batch_member(framework, name):
    """The generic non-finite test runs on Bernoulli latents (DisARM here); this is the
    categorical path: batch member 0 holds a NaN, member 1 an infinity, member 2 is finite
    (deterministic)."""
    logits = np.array(MODE_LOGITS[0].tolist() + [[0.1, -0.4, 0.0, 0.3]], np.float32)
    logits = np.stack([logits[:2], logits[1:], logits[[0, 2]]])  # [3, 2, 4]
    logits[0, 0, 1], logits[1, 1, 2] = np.nan, np.inf
    estimator = ESTIMATORS[name]()

    def surrogate(value):
        return estimator(_event_function, OneHotCategorical(value, event_ndims=1), seed=3,
                         num_samples=2)

    value, (gradient,) = framework.value_and_vjp(surrogate, framework.constant(logits))
    assert np.isnan(value[0]) and np.isnan(value[1]) and np.isfinite(value[2])
    assert not np.isfinite(gradient[0, 0, 1]) and not np.isfinite(gradient[1, 1, 2])
    assert np.all(np.isfinite(gradient[2]))


# categorical_disarm and stick_breaking_disarm (the name parameter).
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_sampled_variance_is_the_enumerated_variance(name):
    """End to end: the estimator's own draws (JAX, float64) have the enumerated variance and
    mean on ``small_categorical`` (``assert_variance``: z-tests per logit, fourth-moment
    standard errors, false-failure rate 1e-5; with 2^18 estimates a variance error of 7 % is
    detected with power 0.99 on every coordinate: measured, the detectable error is 4 %
    (median) to 6.8 % (largest); Holm-corrected mean test at 1e-5)."""
    jax = pytest.importorskip("jax")
    problem = get_problem("small_categorical", backend="jax")
    function, logits = CASES["small_categorical"]
    mean, variance = exact_moments(name, function, logits)
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        moments = gradient_moments(ESTIMATORS[name](), problem, num_estimates=2**18, seed=17,
                                   backend="jax", dtype="float64", num_samples=1)
    finally:
        jax.config.update("jax_enable_x64", previous)
    assert_variance(moments, variance, false_failure_rate=1e-5)
    assert_unbiased(moments, mean, false_failure_rate=1e-5,
                    detectable_bias=problem.detectable_bias)
