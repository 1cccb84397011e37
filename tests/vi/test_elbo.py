"""``fxgx.vi.elbo``: unbiased against the exact ELBO and its gradient, any estimator, mixed
discrete/continuous surrogates, and clear errors.

Statistical tests (all against EXACT values: enumeration over 2^5 states in NumPy float64,
cross-checked with TensorFlow float64 autodiff; Gaussian expectations in closed form):
``fxgx.testing.assert_unbiased`` with family-wise false-failure rate 1e-5 (Holm over the
coordinates of each test), and power 0.99 to detect a bias of a quarter of the exact
gradient's root-mean-square (``problem.detectable_bias``; the test fails as underpowered
otherwise). About 20 such tests run, so fewer than 1 run in 5000 fails by chance; the seeds
are fixed, so runs are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from enumerable_models import (
    SURROGATE_LOGITS,
    WEIGHTS,
    ElboProblem,
    EnumerableModel,
    batched_estimates,
)

import fxgx.estimators as estimators
import fxgx.vi as vi
from fxgx import catalogue
from fxgx.backends import framework_by_name
from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.problems.enumeration import bernoulli_states
from fxgx.testing import assert_unbiased, gradient_moments, moments_of

FALSE_FAILURE_RATE = 1e-5
POWER = 0.99


@pytest.fixture(scope="module")
def model() -> EnumerableModel:
    return EnumerableModel()


class ElboEstimator:
    """Adapter for ``gradient_moments``: ``(f, q) -> fxgx.vi.elbo(f, q)`` with ``estimator``."""

    def __init__(self, estimator, analytic_entropy=True):
        self.estimator = estimator
        self.analytic_entropy = analytic_entropy

    def __call__(self, function, distribution, *, seed, num_samples):
        return vi.elbo(function, distribution, seed=seed, num_samples=num_samples,
                       estimator=self.estimator, analytic_entropy=self.analytic_entropy)


def test_exact_elbo_gradient_matches_float64_autodiff(model):
    """The closed-form score sum equals TF float64 autodiff of the enumerated ELBO."""
    tf = pytest.importorskip("tensorflow")
    states = tf.constant(bernoulli_states(model.dimension))
    logits = tf.Variable(SURROGATE_LOGITS)
    weights = tf.Variable(WEIGHTS)
    with tf.GradientTape() as tape:
        log_q = tf.reduce_sum(states * tf.math.log_sigmoid(logits)
                              + (1 - states) * tf.math.log_sigmoid(-logits), -1)
        value = tf.reduce_sum(tf.exp(log_q) * (model.log_joint(states, weights) - log_q))
    gradient, weights_gradient = tape.gradient(value, [logits, weights])
    exact_value, exact_gradient, exact_weights_gradient = model.exact()
    np.testing.assert_allclose(value.numpy(), exact_value, rtol=1e-12)
    np.testing.assert_allclose(gradient.numpy(), exact_gradient, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(weights_gradient.numpy(), exact_weights_gradient, rtol=1e-10)


# (estimator, num_samples, analytic_entropy, num_estimates). num_estimates is about 1.5x what
# the power requirement needs (REINFORCE with one sample has by far the largest variance).
UNBIASED_CASES = {
    ("reinforce", 1, True): 100_000,
    ("reinforce", 1, False): 100_000,
    ("reinforce_leave_one_out", 4, True): 20_000,
    ("reinforce_leave_one_out", 4, False): 20_000,
    ("disarm", 1, True): 20_000,
    ("disarm", 1, False): 20_000,
}
# The default run covers each estimator, each entropy form and each backend; -m slow runs
# the full matrix.
FAST_CASES = {
    ("reinforce", 1, True, "tensorflow"), ("reinforce_leave_one_out", 4, False, "tensorflow"),
    ("disarm", 1, True, "tensorflow"), ("reinforce", 1, False, "jax"),
    ("reinforce_leave_one_out", 4, True, "jax"), ("disarm", 1, False, "jax"),
}


def _unbiased_cases():
    for (name, num_samples, analytic_entropy), num_estimates in UNBIASED_CASES.items():
        for backend_name in ("tensorflow", "jax"):
            fast = (name, num_samples, analytic_entropy, backend_name) in FAST_CASES
            yield pytest.param(
                name, num_samples, analytic_entropy, num_estimates, backend_name,
                marks=() if fast else pytest.mark.slow,
                id=f"{name}-S{num_samples}-{'analytic' if analytic_entropy else 'sampled'}"
                   f"-{backend_name}")


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name, num_samples, analytic_entropy, num_estimates, backend_name",
                         list(_unbiased_cases()))
def test_elbo_gradient_is_unbiased(model, name, num_samples, analytic_entropy, num_estimates,
                                   backend_name):
    """Mean of the ELBO gradient estimates == exact ELBO gradient (Holm over 5 coordinates,
    false-failure 1e-5, power 0.99 at a quarter of the gradient's RMS), both entropy forms."""
    problem = ElboProblem(model)
    estimator = getattr(estimators, name)()
    moments = gradient_moments(
        ElboEstimator(estimator, analytic_entropy), problem, num_estimates=num_estimates,
        seed=20260101, backend=backend_name, dtype="float32", num_samples=num_samples,
        chunk_size=num_estimates,
    )
    assert_unbiased(moments, problem.exact_gradient(), false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=problem.detectable_bias, power=POWER)


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend_name, analytic_entropy", [("tensorflow", True),
                                                            ("jax", False)])
def test_elbo_value_is_unbiased(model, backend_name, analytic_entropy):
    """Mean of the ELBO values == exact ELBO (z-test, false-failure 1e-5; power 0.99 to see
    an error of 0.05 nats, 2 % of the ELBO, checked)."""
    backend = framework_by_name(backend_name)

    def loss(parameters, seed):
        return vi.elbo(model.log_joint, Bernoulli(parameters[0], event_ndims=1), seed=seed,
                       num_samples=2, analytic_entropy=analytic_entropy)

    values, _ = batched_estimates(backend, loss, [SURROGATE_LOGITS], 50_000, seed=3)
    moments = moments_of(values[:, None])
    assert_unbiased(moments, [model.exact()[0]], false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.05, power=POWER)


@pytest.mark.parametrize("name, num_samples, backend_name", [
    ("reinforce_leave_one_out", 4, "tensorflow"), ("disarm", 1, "jax"),
    ("straight_through", 1, "tensorflow"), ("straight_through", 1, "jax"),
])
@pytest.mark.jax_in_slow_set
def test_decoder_gradient_is_unbiased(model, backend_name, name, num_samples):
    """Gradient w.r.t. parameters the target closes over (decoder weights ``w``) ==
    ``E_q[grad_w log p(x, z)]`` exactly, whether the estimator stops ``f`` (REINFORCE-LOO,
    DisARM) or differentiates through it (straight-through, whose value is at hard
    samples). Holm over 5 coordinates, false-failure 1e-5, power 0.99 at 1/4 RMS."""
    backend = framework_by_name(backend_name)
    estimator = getattr(estimators, name)()

    def loss(parameters, seed):
        logits, weights = parameters
        return vi.elbo(lambda z: model.log_joint(z, weights),
                       Bernoulli(logits, event_ndims=1), seed=seed,
                       num_samples=num_samples, estimator=estimator)

    _, gradients = batched_estimates(backend, loss, [SURROGATE_LOGITS, WEIGHTS], 20_000,
                                     seed=11)
    exact = model.exact()[2]
    moments = moments_of(gradients[:, model.dimension:])
    assert_unbiased(moments, exact, false_failure_rate=FALSE_FAILURE_RATE, power=POWER,
                    detectable_bias=0.25 * float(np.sqrt(np.mean(exact**2))))


# ------------------------------------------------------------ every catalogued estimator


def _elbo_cards():
    for card in catalogue.load_cards():
        if not card.supports("bernoulli"):
            continue
        if vi.estimator_target(card.make()) != "expectation":
            continue
        yield card


#: On JAX in the default set (the ELBO code is backend-generic): one estimator of each kind.
JAX_DEFAULT = ("reinforce", "reinforce_leave_one_out", "disarm", "relax", "gumbel_softmax_hard")


def _elbo_cases():
    for card in _elbo_cards():
        for backend_name in ("tensorflow", "jax"):
            slow = backend_name == "jax" and card.name not in JAX_DEFAULT
            yield pytest.param(backend_name, card, id=f"{backend_name}-{card.name}",
                               marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("backend_name, card", list(_elbo_cases()))
def test_every_catalogued_estimator_runs_in_the_loss(model, backend_name, card):
    """Swapping the estimator is one argument: finite value and gradient of the logits'
    shape (and of the decoder weights') for every card that supports Bernoulli latents."""
    backend = framework_by_name(backend_name)
    estimator = card.make()
    num_samples = max(card.num_samples, estimator.minimum_samples)

    def loss(logits, weights):
        return -vi.elbo(lambda z: model.log_joint(z, weights), Bernoulli(logits, event_ndims=1),
                        seed=5, num_samples=num_samples, estimator=estimator)

    def value_and_gradient(logits, weights):
        return backend.value_and_gradient(loss, [logits, weights])

    if backend_name == "jax":  # one compile is cheaper than compiling every eager JAX op
        value_and_gradient = backend.compile(value_and_gradient)
    value, (logits_gradient, weights_gradient) = value_and_gradient(
        backend.xp.asarray(SURROGATE_LOGITS, dtype=backend.xp.float32),
        backend.xp.asarray(WEIGHTS, dtype=backend.xp.float32))
    for array, shape in ((value, ()), (logits_gradient, (5,)), (weights_gradient, (5,))):
        array = np.asarray(array)
        assert array.shape == shape
        assert np.all(np.isfinite(array)), (card.name, array)


@pytest.mark.parametrize("backend_name", ["tensorflow",
                                          pytest.param("jax", marks=pytest.mark.slow)])
def test_compiled_elbo_equals_eager(model, backend_name):
    """Same seed, same numbers: eager, ``tf.function(jit_compile=True)`` / ``jax.jit``."""
    backend = framework_by_name(backend_name)
    logits = backend.xp.asarray(SURROGATE_LOGITS, dtype=backend.xp.float32)

    def loss(logits):
        return vi.elbo(model.log_joint, Bernoulli(logits, event_ndims=1), seed=9, num_samples=3,
                       estimator=estimators.disarm())

    eager = backend.value_and_gradient(loss, [logits])
    compiled = backend.compile(lambda l: backend.value_and_gradient(loss, [l]))(logits)
    np.testing.assert_allclose(np.asarray(compiled[0]), np.asarray(eager[0]),
                               rtol=1e-5)
    np.testing.assert_allclose(np.asarray(compiled[1][0]), np.asarray(eager[1][0]),
                               rtol=1e-4, atol=1e-6)


# ------------------------------------------------------ mixed discrete and continuous


def _mixed_exact(with_dependence):
    """Exact ELBO gradient of the mixed model by enumeration + Gaussian closed forms, by TF
    float64 autodiff. Parameters: theta [2], m, log s, (a [2] when the continuous part
    depends on b). Model: b ~ Bern(sigmoid(alpha)), y | b ~ N(v.b, 1), x | b, y ~
    N(y + u.b, sigma^2). Surrogate: b ~ Bern(theta), y | b ~ N(m + a.b, s)."""
    tf = pytest.importorskip("tensorflow")
    states = tf.constant(bernoulli_states(2))
    parameters = [tf.Variable(value) for value in MIXED_PARAMETERS[: 4 if with_dependence else 3]]
    with tf.GradientTape() as tape:
        theta, loc, log_scale = parameters[:3]
        scale = tf.exp(log_scale)
        shift = tf.reduce_sum(states * parameters[3], -1) if with_dependence else 0.0
        mean = loc + shift  # E[y | b]
        log_q = tf.reduce_sum(states * tf.math.log_sigmoid(theta)
                              + (1 - states) * tf.math.log_sigmoid(-theta), -1)
        alpha = tf.constant(MIXED_PRIOR)
        prior = tf.reduce_sum(states * tf.math.log_sigmoid(alpha)
                              + (1 - states) * tf.math.log_sigmoid(-alpha), -1)
        centre = tf.reduce_sum(states * MIXED_V, -1)
        offset = tf.reduce_sum(states * MIXED_U, -1)
        half_log_two_pi = 0.5 * np.log(2 * np.pi)
        expected_y = -half_log_two_pi - ((mean - centre) ** 2 + scale**2) / 2
        expected_x = (-half_log_two_pi - np.log(MIXED_SIGMA)
                      - ((MIXED_X - mean - offset) ** 2 + scale**2) / (2 * MIXED_SIGMA**2))
        entropy_y = 0.5 * np.log(2 * np.pi * np.e) + log_scale
        value = tf.reduce_sum(tf.exp(log_q) * (prior - log_q + expected_y + expected_x
                                               + entropy_y))
    gradients = tape.gradient(value, parameters)
    return float(value), np.concatenate([np.ravel(g.numpy()) for g in gradients])


MIXED_PRIOR = np.array([0.3, -0.4])
MIXED_V = np.array([0.8, -0.6])
MIXED_U = np.array([0.5, 1.0])
MIXED_X = 1.2
MIXED_SIGMA = 0.8
MIXED_PARAMETERS = [np.array([0.2, -0.5]), np.array(0.3), np.array(-0.4), np.array([0.6, -0.2])]


def _mixed_log_joint(backend):
    def target(b, y):
        dtype = y.dtype
        alpha = backend.xp.asarray(MIXED_PRIOR, dtype=dtype)
        prior = backend.xp.sum(b * backend.log_sigmoid(alpha)
                                   + (1 - b) * backend.log_sigmoid(-alpha), axis=-1)
        centre = backend.xp.sum(b * backend.xp.asarray(MIXED_V, dtype=dtype), axis=-1)
        offset = backend.xp.sum(b * backend.xp.asarray(MIXED_U, dtype=dtype), axis=-1)
        half_log_two_pi = float(0.5 * np.log(2 * np.pi))
        return (prior - half_log_two_pi - 0.5 * backend.xp.square(y - centre)
                - half_log_two_pi - float(np.log(MIXED_SIGMA))
                - 0.5 * backend.xp.square((MIXED_X - y - offset) / MIXED_SIGMA))

    return target


def _assert_mixed_unbiased(gradients, exact):
    moments = moments_of(gradients)
    assert_unbiased(moments, exact, false_failure_rate=FALSE_FAILURE_RATE, power=POWER,
                    detectable_bias=0.25 * float(np.sqrt(np.mean(exact**2))))


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_mixed_tuple_surrogate_is_unbiased(backend_name):
    """(Bernoulli, Normal) parts: REINFORCE-LOO for b, reparameterisation for y; the mean
    gradient w.r.t. (theta, m, log s) equals the exact one (Holm over 4 coordinates,
    false-failure 1e-5, power 0.99 at 1/4 RMS)."""
    backend = framework_by_name(backend_name)
    target = _mixed_log_joint(backend)

    def loss(parameters, seed):
        theta, loc, log_scale = parameters
        surrogate = (Bernoulli(theta, event_ndims=1), Normal(loc, backend.xp.exp(log_scale)))
        return vi.elbo(target, surrogate, seed=seed, num_samples=4)

    _, gradients = batched_estimates(backend, loss, MIXED_PARAMETERS[:3], 100_000, seed=21)
    _assert_mixed_unbiased(gradients, _mixed_exact(with_dependence=False)[1])


@pytest.mark.parametrize("joint", ["sequential", "named", "coroutine"])
@pytest.mark.parametrize("name", ["reinforce_leave_one_out", "disarm"])
def test_mixed_joint_distribution_is_unbiased(joint, name):
    """TFP JointDistributionSequential/Named/Coroutine ``[Bernoulli, b -> Normal(m + a.b, s)]``:
    the estimator for b, TFP's reparameterised sampler for y | b. Mean gradient w.r.t.
    (theta, m, log s, a) equals the exact one (Holm over 6 coordinates, false-failure 1e-5,
    power 0.99 at 1/4 RMS)."""
    tf = pytest.importorskip("tensorflow")
    tfd = pytest.importorskip("tensorflow_probability").distributions
    backend = framework_by_name("tensorflow")
    target = _mixed_log_joint(backend)
    estimator = getattr(estimators, name)()
    num_samples = 4 if name == "reinforce_leave_one_out" else 2

    def loss(parameters, seed):
        theta, loc, log_scale, slope = parameters
        b_part = tfd.Independent(tfd.Bernoulli(logits=theta, dtype=tf.float32), 1)

        def y_part(b):
            return tfd.Normal(loc + tf.reduce_sum(b * slope, -1), tf.exp(log_scale))

        if joint == "sequential":
            surrogate = tfd.JointDistributionSequential([b_part, y_part])
            function = target
        elif joint == "coroutine":
            def model():
                b = yield tfd.JointDistributionCoroutine.Root(b_part)
                yield y_part(b)

            surrogate = tfd.JointDistributionCoroutine(model)
            function = target
        else:
            surrogate = tfd.JointDistributionNamed({"b": b_part, "y": y_part})

            def function(b, y):
                return target(b, y)
        return vi.elbo(function, surrogate, seed=seed, num_samples=num_samples,
                       estimator=estimator)

    _, gradients = batched_estimates(backend, loss, MIXED_PARAMETERS, 50_000, seed=31,
                                     jit=False)
    _assert_mixed_unbiased(gradients, _mixed_exact(with_dependence=True)[1])


def test_reparameterized_only_surrogate_is_unbiased():
    """A Normal surrogate alone: pure reparameterisation. ``E_{N(m, s)}[log N(y; 1, 1)] +
    H`` has gradient ``(1 - m, 1 - s^2)`` w.r.t. ``(m, log s)``; Holm over 2 coordinates,
    false-failure 1e-5, power 0.99 at 1/4 RMS."""
    backend = framework_by_name("jax")
    loc, log_scale = 0.3, -0.2

    def loss(parameters, seed):
        surrogate = Normal(parameters[0], backend.xp.exp(parameters[1]))
        return vi.elbo(lambda y: -0.5 * backend.xp.square(y - 1.0), surrogate, seed=seed,
                       num_samples=2, estimator=estimators.straight_through())

    _, gradients = batched_estimates(backend, loss, [np.array(loc), np.array(log_scale)],
                                     50_000, seed=41)
    exact = np.array([1.0 - loc, 1.0 - np.exp(2 * log_scale)])
    _assert_mixed_unbiased(gradients, exact)


def test_categorical_surrogates_are_merged():
    """Two one-hot categorical parts (same K) go to the estimator as one distribution; the
    target receives each part in its own shape."""
    backend = framework_by_name("tensorflow")
    seen = {}

    def target(first, second):
        seen["shapes"] = (tuple(first.shape), tuple(second.shape))
        return backend.xp.sum(first[..., 0], axis=-1) + second[..., 1]

    surrogate = {"first": OneHotCategorical(backend.xp.asarray(np.zeros((2, 3)),
                                                               dtype=backend.xp.float32),
                                            event_ndims=1),
                 "second": OneHotCategorical(backend.xp.asarray(np.zeros(3),
                                                                dtype=backend.xp.float32))}
    value = vi.elbo(target, surrogate, seed=0, num_samples=4,
                    estimator=estimators.gumbel_softmax())
    assert seen["shapes"] == ((4, 2, 3), (4, 3))
    assert np.isfinite(np.asarray(value))


# --------------------------------------------------------------------------- bad input


def test_poisson_surrogate_with_a_logit_estimator_is_a_type_error():
    tf = pytest.importorskip("tensorflow")
    tfd = pytest.importorskip("tensorflow_probability").distributions
    surrogate = tfd.Independent(tfd.Poisson(rate=tf.Variable([1.0, 2.0])), 1)

    def target(z):
        return -tf.reduce_sum(z, -1)

    with pytest.raises(TypeError, match="disarm supports bernoulli"):
        vi.elbo(target, surrogate, seed=0, estimator=estimators.disarm())
    # A score-function estimator accepts it.
    value = vi.elbo(target, surrogate, seed=0, num_samples=2)
    assert np.isfinite(value.numpy())


def test_biased_estimator_with_require_unbiased_warns(model):
    xp = framework_by_name("tensorflow").xp
    logits = xp.asarray(SURROGATE_LOGITS, dtype=xp.float32)
    with pytest.warns(UserWarning, match="straight_through is a biased"):
        vi.elbo(model.log_joint, Bernoulli(logits, event_ndims=1), seed=0,
                estimator=estimators.straight_through(), require_unbiased=True)


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_mismatched_model_and_surrogate_shapes_are_value_errors(model, backend_name):
    """Eagerly on TF, while tracing under jax.jit (where shape errors surface)."""
    backend = framework_by_name(backend_name)

    def elbo(target, logits):
        run = lambda logits: vi.elbo(target, Bernoulli(logits, event_ndims=1), seed=0,  # noqa: E731
                                     num_samples=2)
        run = backend.compile(run) if backend_name == "jax" else run
        return run(backend.xp.asarray(logits, dtype=backend.xp.float32))

    with pytest.raises(ValueError, match=r"\(2, 4\)"):  # the model needs D = 5
        elbo(model.log_joint, np.zeros(4))
    with pytest.raises(ValueError, match=r"returned shape \(2, 5\).*shape \(2,\)"):
        elbo(lambda z: z * 1.0, np.zeros(5))  # forgot to sum over D
    with pytest.raises(ValueError, match=r"\(2, 3\)"):  # batch shape [3] ignored
        elbo(lambda z: backend.xp.sum(z, axis=(-2, -1)), np.zeros((3, 5)))


def test_other_bad_inputs():
    backend = framework_by_name("jax")
    logits = backend.xp.asarray(np.zeros(3), dtype=backend.xp.float32)
    bernoulli = Bernoulli(logits, event_ndims=1)

    def target(z):
        return backend.xp.sum(z, axis=-1)

    with pytest.raises(TypeError, match="importance_weighted_bound"):
        vi.elbo(target, bernoulli, seed=0, num_samples=2, estimator=_vimco())
    with pytest.raises(TypeError, match="target_log_prob_fn must be callable"):
        vi.elbo(3.0, bernoulli, seed=0)
    with pytest.raises(TypeError, match="surrogate posterior must be"):
        vi.elbo(target, "not a distribution", seed=0)
    with pytest.raises(TypeError, match="fxgx estimator"):
        vi.elbo(target, bernoulli, seed=0, estimator=lambda *a, **k: 0.0)
    with pytest.raises(ValueError, match="num_samples=0"):
        vi.elbo(target, bernoulli, seed=0, num_samples=0)
    with pytest.raises(ValueError, match="seed"):
        vi.elbo(target, bernoulli, seed=None)
    mixed = (bernoulli, OneHotCategorical(backend.xp.asarray(np.zeros(3),
                                                             dtype=backend.xp.float32)))
    with pytest.raises(TypeError, match="several discrete parts"):
        vi.elbo(lambda b, c: target(b), mixed, seed=0)
    uneven = (bernoulli, Normal(backend.xp.asarray(np.zeros(2), dtype=backend.xp.float32), 1.0))
    with pytest.raises(ValueError, match="different batch shapes"):
        vi.elbo(lambda b, y: target(b), uneven, seed=0)


def test_discrete_part_depending_on_another_part_is_a_type_error():
    tf = pytest.importorskip("tensorflow")
    tfd = pytest.importorskip("tensorflow_probability").distributions
    surrogate = tfd.JointDistributionSequential([
        tfd.Normal(tf.Variable(0.0), 1.0),
        lambda y: tfd.Bernoulli(logits=y, dtype=tf.float32),
    ])
    with pytest.raises(TypeError, match="must be a root|needs every discrete part"):
        vi.elbo(lambda y, b: y + b, surrogate, seed=0)
    location = tf.Variable(0.0)

    def model():
        y = yield tfd.JointDistributionCoroutine.Root(tfd.Normal(location, 1.0))
        yield tfd.Bernoulli(logits=y, dtype=tf.float32)

    with pytest.raises(TypeError, match="needs every discrete part"):
        vi.elbo(lambda y, b: y + b, tfd.JointDistributionCoroutine(model), seed=0)
    without_roots = tfd.JointDistributionCoroutine(lambda: (yield tfd.Normal(0.0, 1.0)))
    with pytest.raises(TypeError, match="Root"):
        vi.elbo(lambda y: y, without_roots, seed=0)
    auto_batched = tfd.JointDistributionCoroutineAutoBatched(
        lambda: (yield tfd.Normal(0.0, 1.0)))
    with pytest.raises(TypeError, match="auto-batched"):
        vi.elbo(lambda y: y, auto_batched, seed=0)


def _vimco():
    from fxgx.estimators.vimco import vimco

    return vimco()
