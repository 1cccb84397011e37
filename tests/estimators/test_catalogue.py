"""The catalogue is the source of truth: every card points at an estimator, every estimator
has a card, and every unbiased estimator is unbiased on every problem its card names.

False-failure rate of each unbiasedness test: 1e-5 family-wise (Holm over the problem's
coordinates), so over the ~100 tests below fewer than 1e-3 runs fail by chance; the seeds
are fixed, so a run is deterministic. Power: each test first checks that it could detect a
bias of ``problem.detectable_bias`` (a quarter of the gradient's root-mean-square by default)
with probability 0.99: the card's ``num_estimates`` is a pilot, and where it is too few the
test draws as many as the pilot's variance says are needed (at most ``MAXIMUM_ESTIMATES``),
and still fails as underpowered if that was not enough.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import fxgx.estimators
from fxgx import catalogue
from fxgx.estimators import reinforce
from fxgx.estimators.base import Estimator
from fxgx.problems import get_problem
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


def _unbiased_cases():
    for card in CARDS:
        if not card.unbiased:
            continue
        for problem_name in card.test.get("problems", []):
            for backend, regime, slow in REGIMES:
                marks = ([pytest.mark.slow] if problem_name in SLOW_PROBLEMS or slow else [])
                label = backend if backend == "jax" else f"{backend}-{regime}"
                yield pytest.param(card, problem_name, backend, regime, marks=marks,
                                   id=f"{card.name}-{problem_name}-{label}")


def _biased_cases():
    for card in CARDS:
        if card.unbiased or card.test.get("bias_check") == "none":
            continue
        for backend in ("tensorflow", "jax"):
            yield pytest.param(card, backend, id=f"{card.name}-{backend}")


def test_every_card_points_at_an_estimator_factory():
    for card in CARDS:
        estimator = card.make()
        assert isinstance(estimator, Estimator), card.name
        assert estimator.name == card.name, (card.name, estimator.name)
        assert estimator.unbiased == card.unbiased, card.name
        assert estimator.target == card.test.get("target", "expectation"), card.name


def test_every_estimator_has_a_card():
    carded = {card.name for card in CARDS}
    classes = {
        value.name
        for value in vars(fxgx.estimators).values()
        if inspect.isclass(value) and issubclass(value, Estimator) and value is not Estimator
    }
    assert classes, "no estimator classes exported by fxgx.estimators"
    assert classes <= carded, f"estimators without a card: {sorted(classes - carded)}"


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
    moments = _powered_moments(card.make(), card.num_samples, problem, backend,
                               int(card.test.get("num_estimates", 200_000)), regime)
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-5,
                    detectable_bias=problem.detectable_bias)


@dataclasses.dataclass(frozen=True)
class SignFlippedReinforce(Estimator):
    """A planted bug: REINFORCE with its gradient negated (bias = -2 x the exact gradient)."""

    name = "sign_flipped_reinforce"

    def _estimate(self, function, distribution, backend, seed, num_samples):
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
