"""The catalogue is the source of truth: every card points at an estimator, every estimator
has a card, every card has a test module named for it (``test_<name>.py``), and every
unbiased estimator is unbiased on every problem its card names.

False-failure rate of each unbiasedness test: 1e-5 family-wise (Holm over the problem's
coordinates), so over the ~100 tests below fewer than 1e-3 runs fail by chance; the seeds
are fixed, so a run is deterministic. Power: each test first checks that it could detect a
bias of ``problem.detectable_bias`` (a quarter of the gradient's root-mean-square by default)
with probability 0.99: the card's ``num_estimates`` is a pilot, and where it is too few the
test draws as many as the pilot's variance says are needed (at most ``MAXIMUM_ESTIMATES``),
and still fails as underpowered if that was not enough.

Estimators whose defaults reduce them to another card (``learned_baseline`` and
``moving_average_baseline`` with baseline 0 are REINFORCE, ``relax`` without a residual is
REBAR, ``rodeo`` without a surrogate is REINFORCE-LOO) are tested as they are used: with the
non-trivial baseline, state or control variate of ``CONFIGURED`` below. Any of these is
unbiased for every baseline that does not depend on the estimate's own samples, so the
exact-gradient test applies unchanged and now runs the baseline code.
``test_the_configured_baseline_changes_the_estimate_by_exactly_its_term`` checks,
deterministically, that the estimate differs from the default's by exactly the baseline's
term for the same seed: it fails if the baseline were ignored. On the Bernoulli and
categorical problems the same draws also show the score-function baselines' variance below
REINFORCE's exact variance (``assert_variance_below_reinforce``: one-sided, false
pass rate for an ignored baseline below 1e-5, power 0.99 for a 10 % reduction).
"""

from __future__ import annotations

import dataclasses
import inspect
import pathlib
from statistics import NormalDist

import numpy as np
import pytest

import fxgx.estimators
from fxgx import catalogue
from fxgx.backends import default_framework_name, framework_by_name
from fxgx.core.seeds import canonical_seed, split_seed
from fxgx.estimators import reinforce, relax, rodeo
from fxgx.estimators.base import Estimator
from fxgx.estimators.relaxations import relaxed_latents
from fxgx.problems import get_problem
from fxgx.problems.enumeration import (
    bernoulli_log_probabilities,
    bernoulli_states,
    categorical_log_probabilities,
    categorical_states,
)
from fxgx.testing import assert_biased, assert_unbiased, gradient_moments, required_estimates

CARDS = catalogue.load_cards()
CHUNK_SIZE = 65536
#: Upper bound on estimates per test: REINFORCE on the t = 0.499 toy needs ~2.4e8 (about
#: 3 s on 2 CPU cores, the toy is tiny); REBAR/RELAX ~7.4e7.
MAXIMUM_ESTIMATES = 2**28
LARGE_CHUNK_SIZE = 2**20


#: In the slow set, which CI runs too (``.ci/run``): the hardest toy, whose power runs take
#: tens of seconds (up to 2.4e8 estimates), and the categorical decoder problem (the
#: Bernoulli decoder problem checks the gradient to what f closes over in the default set).
SLOW_PROBLEMS = ("bernoulli_toy_0499", "decoder_categorical")


#: (backend, regime, slow): TensorFlow runs in graph mode in the default set and under XLA in
#: the slow set. The estimators give the same numbers in every regime (the "same numbers in
#: every mode" tests of each estimator, in the default set), and a TF-XLA compile costs about
#: 3x a graph-mode trace at these sizes, which are compile-bound.
REGIMES = (("tensorflow", "graph", False), ("tensorflow", "xla", True), ("jax", "jit", False))
#: JAX runs the same estimator code on its own backend: in the default set on the
#: non-additive Bernoulli and the Gaussian problems, on every other problem (the categorical
#: ones included: 10^4 states make their power runs the longest) in the slow set.
JAX_DEFAULT_PROBLEMS = ("nonadditive_bernoulli", "gaussian")
#: A card may name ``default_problems`` in its ``[test]`` table: then only those of its
#: problems run in the default set (with the rules above), the others in the slow set. Cards
#: that share a code path with one already in the default set use it to keep the default
#: suite within its time budget.


# ------------------------------------------ cards whose defaults reduce them to another card

#: The moving-average baseline is tested with the state that ``HISTORY_BATCHES`` earlier
#: calls of ``HISTORY_SAMPLES`` samples each leave behind (decay ``MOVING_AVERAGE_DECAY``,
#: one average per batch member), drawn with seeds split off the estimate's own: the
#: baseline ``a / w`` is then ``(d m_1 + m_2) / (1 + d)`` for the history means ``m_k``,
#: random but independent of the estimate's samples, so the estimate stays unbiased.
MOVING_AVERAGE_DECAY = 0.5
HISTORY_BATCHES = 2
HISTORY_SAMPLES = 4
#: RELAX's residual ``r(z; a, c) = a sum_event tanh(c z)`` with ``(a, c)`` passed at call
#: time (``control_variate_parameters=``), on top of the REBAR term (scale 1).
RESIDUAL_PARAMETERS = (0.1, 0.5)


def parameter_baseline(distribution):
    """A learned baseline with fixed, non-trivial weights, one value per batch member:
    ``b(q) = 0.4 + 0.3 sum_i mean_event tanh(stop(psi_i))`` over the distribution's
    parameters ``psi_i`` (logits; or loc and scale). It reads the (stopped) parameters the
    way an NVIL baseline network reads the observation."""
    backend = distribution.framework
    batch_rank = len(distribution.batch_shape)
    total = 0.4
    for _, parameter, _ in distribution.parameter_arrays():
        feature = backend.xp.tanh(backend.stop_gradient(parameter))
        axes = tuple(range(batch_rank, len(tuple(feature.shape))))
        total = total + 0.3 * (backend.xp.mean(feature, axis=axes) if axes else feature)
    return total


def moving_average_history(estimator, function, distribution, seed):
    """The moving-average state after ``HISTORY_BATCHES`` calls from the initial state (one
    average per batch member), the ``k``-th drawn with the sub-seed ``history_k`` of
    ``seed``."""
    backend = distribution.framework
    state = estimator.init(distribution, shape=distribution.batch_shape)
    names = [f"history_{index}" for index in range(HISTORY_BATCHES)]
    seeds = split_seed(canonical_seed(seed, backend), names, backend)
    for name in names:
        _, state, _ = estimator.apply(state, function, distribution, seed=seeds[name],
                                      num_samples=HISTORY_SAMPLES)
    return state


def estimate_seeds(seed, backend):
    """``{"history": ..., "estimate": ...}``: independent sub-seeds of a call's seed."""
    return split_seed(canonical_seed(seed, backend), ("history", "estimate"), backend)


def tanh_residual(batch_rank):
    """RELAX's residual ``r(z; a, c) = a sum_event tanh(c z)`` for perturbed logits ``z`` of
    shape ``[S] + batch_shape + event axes`` (``batch_rank`` batch axes)."""

    def residual(perturbed, parameters):
        from fxgx.backends import get_framework

        backend = get_framework(perturbed)
        axes = tuple(range(1 + batch_rank, len(tuple(perturbed.shape))))
        xp = backend.xp
        return parameters[0] * xp.sum(xp.tanh(parameters[1] * perturbed), axis=axes)

    return residual


def residual_parameters(distribution):
    backend = distribution.framework
    return backend.xp.asarray(RESIDUAL_PARAMETERS, dtype=distribution.logits.dtype)


@dataclasses.dataclass(frozen=True)
class Configured:
    """A card's estimator called the way it is used: ``call(estimator, f, q, seed,
    num_samples)`` gives the surrogate. Same calling convention as an estimator."""

    estimator: Estimator
    call: object

    @property
    def name(self) -> str:
        return self.estimator.name

    def __call__(self, function, distribution, *, seed, num_samples: int = 1):
        return self.call(self.estimator, function, distribution, seed, num_samples)


def _call_with_history(estimator, function, distribution, seed, num_samples):
    seeds = estimate_seeds(seed, distribution.framework)
    state = moving_average_history(estimator, function, distribution, seeds["history"])
    return estimator.apply(state, function, distribution, seed=seeds["estimate"],
                           num_samples=num_samples)[0]


def _call_with_residual(estimator, function, distribution, seed, num_samples):
    with_residual = relax(tanh_residual(len(distribution.batch_shape)),
                          temperature=estimator.temperature, scale=estimator.scale)
    return with_residual(function, distribution, seed=seed, num_samples=num_samples,
                         control_variate_parameters=residual_parameters(distribution))


#: RODEO's surrogate ``h(z; a, c) = a (t + 0.3 t^2)`` with ``t = sum_event tanh(c z)`` (not
#: additive over the event), ``(a, c)`` passed at call time; both Stein terms at scale 1.
SURROGATE_PARAMETERS = (0.3, 0.5)


def tanh_surrogate(batch_rank):
    """RODEO's fixed surrogate ``h(z; a, c) = a (t + 0.3 t^2)``, ``t = sum_event tanh(c z)``,
    for samples of shape ``[N] + batch_shape + event axes`` (``batch_rank`` batch axes)."""
    residual = tanh_residual(batch_rank)

    def surrogate(samples, parameters):
        total = residual(samples, (1.0, parameters[1]))
        return parameters[0] * (total + 0.3 * total * total)

    return surrogate


def _call_with_surrogate(estimator, function, distribution, seed, num_samples):
    backend = distribution.framework
    with_surrogate = rodeo(tanh_surrogate(len(distribution.batch_shape)),
                           baseline_scale=estimator.baseline_scale,
                           score_scale=estimator.score_scale)
    parameters = backend.xp.asarray(SURROGATE_PARAMETERS, dtype=distribution.logits.dtype)
    return with_surrogate(function, distribution, seed=seed, num_samples=num_samples,
                          control_variate_parameters=parameters)


#: Card name -> the estimator the catalogue tests: every card whose estimator holds state or
#: takes a user callable is here (``test_stateful_and_callable_estimators_are_configured``).
CONFIGURED = {
    "learned_baseline": lambda card: card.make(baseline=parameter_baseline),
    "moving_average_baseline": lambda card: Configured(
        card.make(decay=MOVING_AVERAGE_DECAY), _call_with_history),
    "relax": lambda card: Configured(card.make(), _call_with_residual),
    "rodeo": lambda card: Configured(card.make(), _call_with_surrogate),
}


def estimator_under_test(card):
    """The estimator the catalogue tests for ``card``: its default, or ``CONFIGURED``'s."""
    return CONFIGURED[card.name](card) if card.name in CONFIGURED else card.make()


def _unbiased_cases():
    for card in CARDS:
        if not card.unbiased:
            continue
        for problem_name in card.test.get("problems", []):
            for backend, regime, slow in REGIMES:
                slow = slow or problem_name in SLOW_PROBLEMS or (
                    backend == "jax" and problem_name not in JAX_DEFAULT_PROBLEMS) or (
                    problem_name not in card.test.get("default_problems", (problem_name,)))
                marks = [pytest.mark.slow] if slow else []
                label = backend if backend == "jax" else f"{backend}-{regime}"
                yield pytest.param(card, problem_name, backend, regime, marks=marks,
                                   id=f"{card.name}-{problem_name}-{label}")


def _biased_cases():
    for card in CARDS:
        if card.unbiased or card.test.get("bias_check") == "none":
            continue
        for backend in ("tensorflow", "jax"):
            # The biased cards' JAX runs (the same code on the other backend) are slow.
            yield pytest.param(card, backend, id=f"{card.name}-{backend}",
                               marks=[pytest.mark.slow] if backend == "jax" else [])


def test_every_card_points_at_an_estimator_factory():
    for card in CARDS:
        estimator = card.make()
        assert isinstance(estimator, Estimator), card.name
        assert estimator.name == card.name, (card.name, estimator.name)
        assert estimator.unbiased == card.unbiased, card.name
        assert estimator.target == card.test.get("target", "expectation"), card.name
        assert tuple(estimator.supports) == tuple(card.distributions), card.name


def test_each_estimator_class_reads_the_card_its_factory_is_on():
    """A class takes name, unbiasedness, distributions and target from the card it names
    (``card=``); the card's factory must build that class, and no class may be on two cards.
    A factory pointing at another card's class fails here."""
    named = {}
    for card in CARDS:
        cls = type(card.make())
        assert named.setdefault(cls, card.name) == card.name, (cls.__name__, card.name)
        assert cls.name == card.name, (card.name, cls.__name__, cls.name)
    classes = {value for name, value in vars(fxgx.estimators).items()
               if isinstance(value, type) and issubclass(value, Estimator)
               and value is not Estimator}
    assert classes == set(named), sorted(cls.__name__ for cls in classes ^ set(named))


def test_a_card_that_lists_an_unknown_distribution_kind_is_refused(tmp_path):
    card = catalogue.get_card("rebar").path.read_text(encoding="utf-8").replace(
        'distributions = ["bernoulli", "categorical"]',
        'distributions = ["bernoulli", "categorical", "decoder_categorical"]')
    path = tmp_path / "rebar.toml"
    path.write_text(card, encoding="utf-8")
    with pytest.raises(ValueError, match="decoder_categorical"):
        catalogue.read_card(path)


def test_costs_that_grow_with_the_latents_are_counted_per_problem():
    """IndeCateR evaluates f at every class of every variable (D K per sample); the
    measure-valued estimator at two points per mean and one per scale plus a shared base
    sample (1 + 3 D); the others a constant. The counts are what the estimators evaluate
    (their own tests count the rows f receives)."""
    indecater, measure_valued = catalogue.get_card("indecater"), catalogue.get_card(
        "measure_valued")
    assert indecater.evaluations_on(get_problem("categorical")) == 40
    assert indecater.evaluations_on(get_problem("nonadditive_bernoulli")) == 16
    assert measure_valued.evaluations_on(get_problem("gaussian_cubic")) == 10
    assert measure_valued.evaluations_on(get_problem("gaussian")) == 4
    assert (indecater.cost_formula(), measure_valued.cost_formula()) == ("D K", "1 + 3 D")
    with pytest.raises(ValueError, match="num_variables"):
        indecater.evaluations()
    disarm = catalogue.get_card("disarm")
    assert disarm.evaluations_on(get_problem("nonadditive_bernoulli")) == 2 == disarm.evaluations()


def test_every_estimator_has_a_card():
    carded = {card.name for card in CARDS}
    classes = {
        value.name
        for value in vars(fxgx.estimators).values()
        if inspect.isclass(value) and issubclass(value, Estimator) and value is not Estimator
    }
    assert classes, "no estimator classes exported by fxgx.estimators"
    assert classes <= carded, f"estimators without a card: {sorted(classes - carded)}"


def test_every_card_has_a_test_module_named_for_it():
    """Each card's own tests are in ``tests/estimators/test_<name>.py``, where a newcomer
    looks for them (tests across several cards, such as this module's, live elsewhere too)."""
    folder = pathlib.Path(__file__).parent
    names = [card.name for card in catalogue.load_cards()]
    assert names, "the catalogue lists no cards"
    missing = sorted(name for name in names if not (folder / f"test_{name}.py").is_file())
    assert not missing, (
        f"cards without a test module named for them: {missing} (expected "
        + ", ".join(f"tests/estimators/test_{name}.py" for name in missing) + ")")


def test_cards_name_known_problems_that_the_estimator_supports():
    for card in CARDS:
        names = list(card.test.get("problems", []))
        if not card.unbiased and card.test.get("bias_check") != "none":
            names.append(card.test["bias_problem"])
        for name in names:
            problem = get_problem(name)
            assert card.supports(problem.kind), (card.name, name, problem.kind)


def _powered_moments(estimator, num_samples, problem, backend, pilot_count, regime="jit"):
    """Moments of enough estimates to detect ``problem.detectable_bias`` with power 0.99:
    ``pilot_count`` is a pilot; where it is too few, draw as many as its variance says are
    needed (fresh draws: same seed, new count), at most ``MAXIMUM_ESTIMATES``."""

    def moments_of_estimates(count, chunk_size):
        return gradient_moments(
            estimator, problem, num_estimates=count, seed=20261126, backend=backend,
            dtype="float32", num_samples=num_samples, chunk_size=chunk_size,
            jit_compile=regime != "graph",
        )

    moments = moments_of_estimates(pilot_count, CHUNK_SIZE)
    needed = required_estimates(moments, problem.detectable_bias)
    if needed > moments.count:
        assert needed <= MAXIMUM_ESTIMATES, (
            f"{estimator.name} would need {needed} estimates on {problem.name} to detect a bias "
            f"of {problem.detectable_bias:.3g}; more than {MAXIMUM_ESTIMATES}"
        )
        moments = moments_of_estimates(int(1.05 * needed), LARGE_CHUNK_SIZE)
    return moments


@pytest.mark.parametrize("card, problem_name, backend, regime", list(_unbiased_cases()))
def test_unbiased_against_exact_gradient(card, problem_name, backend, regime):
    problem = get_problem(problem_name)
    moments = _powered_moments(estimator_under_test(card), card.num_samples, problem, backend,
                               int(card.test.get("num_estimates", 200_000)), regime)
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5,
                    detectable_bias=problem.detectable_bias)
    if card.name in VARIANCE_CHECKED and problem.kind in ("bernoulli", "categorical"):
        assert_variance_below_reinforce(moments, problem)


#: Score-function cards whose configured baseline (IndeCateR: its Rao-Blackwellisation, whose
#: variance is never above REINFORCE's, coordinate by coordinate) must lower the variance below
#: REINFORCE's.
VARIANCE_CHECKED = ("learned_baseline", "moving_average_baseline", "indecater")
#: One-sided critical value at false-failure rate 1e-5, and the 0.99 power quantile.
ONE_SIDED_CRITICAL = NormalDist().inv_cdf(1.0 - 1e-5)
POWER_QUANTILE = NormalDist().inv_cdf(0.99)


def reinforce_variance_by_enumeration(problem):
    """``(sum_j Var(g_j), exact dE/dtheta)`` over the logits for one REINFORCE estimate
    (``S = 1``, baseline 0) on a Bernoulli or categorical problem, by enumerating every state
    ``z``: ``g_j = f(z) s_j(z)`` with the score ``s = z - sigmoid(theta)`` (Bernoulli) or
    ``z - softmax(theta)`` (categorical), so ``Var(g_j) = sum_z q(z) f(z)^2 s_j(z)^2 -
    (sum_z q(z) f(z) s_j(z))^2``."""
    logits = np.asarray(problem.parameter_values()[0], np.float64)
    if problem.kind == "bernoulli":
        flat = logits.ravel()
        states = bernoulli_states(flat.size)
        log_q = bernoulli_log_probabilities(states, flat)
        scores = states - 1.0 / (1.0 + np.exp(-flat))
        shaped = states.reshape((-1,) + logits.shape)
    else:
        states = categorical_states(*logits.shape)
        log_q = categorical_log_probabilities(states, logits)
        softmax = np.exp(logits - logits.max(-1, keepdims=True))
        softmax /= softmax.sum(-1, keepdims=True)
        scores = (states - softmax).reshape(len(states), -1)
        shaped = states
    backend = framework_by_name(default_framework_name())
    values = np.asarray(problem.function(backend.xp.asarray(shaped, dtype=backend.widest_float())))
    weighted = np.exp(log_q)[:, None] * np.asarray(values, np.float64)[:, None] * scores
    gradient = np.sum(weighted, axis=0)
    second_moment = np.sum(weighted * np.asarray(values, np.float64)[:, None] * scores, axis=0)
    return float(np.sum(second_moment - gradient**2)), gradient


def assert_variance_below_reinforce(moments, problem):
    """One-sided test that the estimates' total variance over the logits is below
    REINFORCE's exact one: ``sum_j v_j + z_{1-1e-5} sum_j se(v_j) < V_REINFORCE``, where the
    standard errors come from the fourth moments and their sum bounds that of the total
    (``sd(X + Y) <= sd(X) + sd(Y)``), so an estimator that ignored its baseline (variance
    ``V_REINFORCE``) passes with probability below 1e-5. Power: the test first checks that it
    detects a reduction of 10 % of ``V_REINFORCE`` with probability 0.99, and fails as
    underpowered otherwise; the baselines here reduce it by 25 % to 99 %."""
    exact_total, exact_gradient = reinforce_variance_by_enumeration(problem)
    size = exact_gradient.size
    np.testing.assert_allclose(exact_gradient, problem.exact_gradient()[:size], rtol=1e-9,
                               atol=1e-12)
    total = float(np.sum(moments.variance[:size]))
    standard_error = float(np.sum(moments.variance_standard_error[:size]))
    margin = (ONE_SIDED_CRITICAL + POWER_QUANTILE) * standard_error
    assert margin <= 0.1 * exact_total, (
        f"underpowered: resolves only variance reductions above {margin:.3g}, "
        f"{margin / exact_total:.1%} of REINFORCE's {exact_total:.4g}"
    )
    assert total + ONE_SIDED_CRITICAL * standard_error < exact_total, (
        f"the baseline does not lower the variance: total {total:.5g} (standard error "
        f"{standard_error:.3g}) against REINFORCE's exact {exact_total:.5g}; n={moments.count}, "
        f"seed={moments.seed!r}"
    )


def test_stateful_and_callable_estimators_are_configured():
    """A card whose estimator keeps state (its own ``init``) or takes a user callable
    (a dataclass field typed ``Callable``) is a plainer card under its defaults; the
    catalogue must test it configured."""
    needing = set()
    for card in CARDS:
        estimator = card.make()
        callables = any("Callable" in str(field.type) for field in dataclasses.fields(estimator))
        if callables or type(estimator).init is not Estimator.init:
            needing.add(card.name)
    assert needing == set(CONFIGURED), (
        f"configure {sorted(needing - set(CONFIGURED))}; drop {sorted(set(CONFIGURED) - needing)}"
    )


def _gradients(framework, problem, estimator, *, seed, num_samples=3, function=None):
    """The estimator's gradient w.r.t. every parameter of ``problem`` (eager, float32), as
    one flat vector; ``function`` replaces the problem's ``f`` (given ``f``, returns f')."""

    def surrogate(*parameters):
        distribution, problem_function = problem.bind(*parameters)
        used = problem_function if function is None else function(problem_function)
        return estimator(used, distribution, seed=seed, num_samples=num_samples)

    parameters = [framework.constant(value) for value in problem.parameter_values()]
    _, gradients = framework.value_and_vjp(surrogate, *parameters)
    return np.concatenate([np.ravel(framework.zero_if_none(gradient, parameter))
                           for gradient, parameter in zip(gradients, parameters, strict=True)])


def _constant_one(function):
    """``f = 1`` with ``f``'s shape: its REINFORCE gradient is ``mean_s grad log q(z_s)``."""
    return lambda samples: 0.0 * function(samples) + 1.0


def _baseline_term(framework, problem, name, seed, num_samples):
    """``(estimate with the configured baseline) - (the default's)`` predicted from the
    baseline alone: ``-b mean_s grad log q(z_s)`` (score function) or RELAX's residual
    ``mean_s [-r(z~_s) grad log q(b_s) + grad r(z_s) - grad r(z~_s)]``, on the samples that the
    same seed draws; and the default estimator to compare with."""
    parameters = [framework.constant(value) for value in problem.parameter_values()]
    distribution, function = problem.bind(*parameters)
    backend = framework.backend
    card = catalogue.get_card(name)
    if name == "learned_baseline":
        baseline = framework.numpy(parameter_baseline(distribution))
        default = card.make()
        unit = _gradients(framework, problem, default, seed=seed, num_samples=num_samples,
                          function=_constant_one)
        return -baseline * unit, default, baseline
    if name == "moving_average_baseline":
        estimator = card.make(decay=MOVING_AVERAGE_DECAY)
        seeds = estimate_seeds(seed, backend)
        state = moving_average_history(estimator, function, distribution, seeds["history"])
        baseline = framework.numpy(state.average) / framework.numpy(state.weight)
        initial = estimator.init(distribution, shape=distribution.batch_shape)
        default = Configured(estimator, lambda estimator, f, q, seed, num_samples:
                             estimator.apply(initial, f, q, seed=seeds["estimate"],
                                             num_samples=num_samples)[0])
        unit = _gradients(framework, problem, default, seed=seed, num_samples=num_samples,
                          function=_constant_one)
        return -baseline * unit, default, baseline

    residual = tanh_residual(len(distribution.batch_shape))

    def residual_term(logits, *function_parameters):
        rebuilt = problem.bind(logits, *function_parameters)[0]
        latents = relaxed_latents(backend, rebuilt, canonical_seed(seed, backend), num_samples)
        weights = residual_parameters(rebuilt)
        at_conditional = residual(latents.conditional, weights)
        score_term = -backend.stop_gradient(at_conditional) * rebuilt.log_prob(latents.samples)
        pathwise = residual(latents.perturbed, weights) - at_conditional
        return backend.xp.mean(score_term + pathwise, axis=0)

    _, gradients = framework.value_and_vjp(residual_term, *parameters)
    term = np.concatenate([np.ravel(framework.zero_if_none(gradient, parameter))
                           for gradient, parameter in zip(gradients, parameters, strict=True)])
    return term, card.make(), np.asarray(RESIDUAL_PARAMETERS)


#: One problem per code path: Bernoulli with a decoder (f's own parameters), categorical,
#: and Gaussian (a distribution with two parameters) where the card supports it, on
#: TensorFlow; JAX (whose op-by-op eager mode takes seconds per case) on the first only.
DIFFERENCE_PROBLEMS = ("decoder_bernoulli", "categorical", "gaussian")
#: Configured cards whose term is checked the same way in their own test file: RODEO's Stein
#: terms against a brute-force enumeration of the Gibbs neighbours (tests/estimators/
#: test_rodeo.py).
OWN_TERM_TESTS = ("rodeo",)


def _difference_cases():
    for name in sorted(set(CONFIGURED) - set(OWN_TERM_TESTS)):
        for problem_name in catalogue.get_card(name).test["problems"]:
            if problem_name not in DIFFERENCE_PROBLEMS:
                continue
            for backend in ("tensorflow", "jax")[:2 if problem_name == "decoder_bernoulli" else 1]:
                # JAX runs the same backend-generic term: in the slow set (CI runs it).
                yield pytest.param(name, problem_name, backend,
                                   id=f"{name}-{problem_name}-{backend}",
                                   marks=[pytest.mark.slow] if backend == "jax" else [])


@pytest.mark.parametrize("name, problem_name, backend", list(_difference_cases()),
                         indirect=["backend"])
def test_the_configured_baseline_changes_the_estimate_by_exactly_its_term(
        framework, name, problem_name):
    """Deterministic: for one seed, the configured estimate minus the default's equals the
    baseline's own term computed independently (above) to float32 rounding, and that term
    is far from 0, so an estimator that ignored its baseline, state or residual fails."""
    problem = get_problem(problem_name)
    seed, num_samples = 20261201, 3
    expected, default, baseline = _baseline_term(framework, problem, name, seed, num_samples)
    assert np.all(np.isfinite(baseline)) and np.all(baseline != 0), baseline
    configured = estimator_under_test(catalogue.get_card(name))
    difference = (_gradients(framework, problem, configured, seed=seed, num_samples=num_samples)
                  - _gradients(framework, problem, default, seed=seed, num_samples=num_samples))
    scale = float(np.max(np.abs(expected)))
    assert scale > 1e-2, f"the baseline's term is too small to tell apart: {expected}"
    np.testing.assert_allclose(difference, expected, rtol=1e-4, atol=1e-5 * scale)


@dataclasses.dataclass(frozen=True)
class SignFlippedReinforce(Estimator):
    """A planted bug: REINFORCE with its gradient negated (bias = -2 x the exact gradient)."""

    name = "sign_flipped_reinforce"

    def _estimate(self, backend, function, distribution, seed, num_samples):
        surrogate = reinforce()(function, distribution, seed=seed, num_samples=num_samples)
        return 2 * backend.stop_gradient(surrogate) - surrogate


@pytest.mark.slow
def test_the_catalogue_procedure_catches_a_flipped_sign_on_the_hardest_toy():
    """On t = 0.499 the gradient is 500x below REINFORCE's noise; the procedure above must
    still reject an estimator whose mean is the negated gradient (power >= 0.99)."""
    problem = get_problem("bernoulli_toy_0499")
    moments = _powered_moments(SignFlippedReinforce(), 1, problem, "tensorflow", 400_000)
    with pytest.raises(AssertionError, match="Biased gradient estimate"):
        assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5,
                        detectable_bias=problem.detectable_bias)


@pytest.mark.parametrize("card, backend", list(_biased_cases()))
def test_bias_detected_with_expected_sign(card, backend):
    problem = get_problem(card.test["bias_problem"])
    moments = gradient_moments(
        card.make(), problem, num_estimates=int(card.test.get("num_estimates", 200_000)),
        seed=7, backend=backend, dtype="float32", num_samples=card.num_samples,
        chunk_size=65536,
    )
    coordinates = card.test.get("bias_coordinates")
    assert_biased(moments, problem.exact_gradient(), expected_sign=card.test["bias_sign"],
                  coordinates=coordinates)


def test_the_harness_rejects_a_card_pointing_at_nothing(tmp_path):
    (tmp_path / "ghost.toml").write_text((catalogue.cards_directory() / "reinforce.toml")
                                         .read_text().replace('"reinforce"', '"ghost"', 1)
                                         .replace(":reinforce", ":no_such_factory"))
    (card,) = catalogue.load_cards(tmp_path)
    with pytest.raises(AttributeError):
        card.make()
