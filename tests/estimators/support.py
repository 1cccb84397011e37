"""Helpers shared by several estimator test modules (each card's ``test_<card>.py`` and the
modules that test several cards at once). Nothing here is a test.

The test folders have no ``__init__.py``, so pytest puts this folder on ``sys.path`` and the
modules import it as ``from support import ...``. Each helper states the exact reference it
computes; the false-failure rates and power of the tests that use them are stated in those
tests' modules.
"""

from __future__ import annotations

import itertools
from statistics import NormalDist

import numpy as np

from fxgx.testing import assert_variance
from fxgx.testing.hypothesis_tests import holm_rejections, two_sided_p_values

# ------------------------------------------------------------------------ numpy references


def sigmoid(x):
    """The logistic function in float64 (the ``tanh`` form: no overflow for large ``|x|``)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def softmax(x):
    """Softmax over the last axis."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------- statistical checks

#: False-failure rate of ``assert_variance_with_power``'s z-test of the variance.
VARIANCE_FALSE_FAILURE_RATE = 1e-5


def assert_variance_with_power(moments, exact_variance, relative_error=0.05, **options):
    """``assert_variance`` (two-sided z-test, false-failure rate 1e-5) after checking that it
    has power 0.99 to detect a ``relative_error`` error in the variance: it fails as
    underpowered otherwise."""
    critical = (NormalDist().inv_cdf(1 - VARIANCE_FALSE_FAILURE_RATE / 2)
                + NormalDist().inv_cdf(0.99))
    detectable = critical * float(np.max(moments.variance_standard_error))
    assert detectable <= relative_error * exact_variance, (
        f"underpowered: detects only variance errors above {detectable:.3g}, "
        f"{detectable / exact_variance:.1%} of {exact_variance:.4g}"
    )
    assert_variance(moments, exact_variance, false_failure_rate=VARIANCE_FALSE_FAILURE_RATE,
                    **options)


def frequency_test(counts, trials, probabilities, false_failure_rate=1e-6):
    """Holm-adjusted z-tests of sample counts against exact probabilities (normal
    approximation to the binomial), family-wise false-failure rate ``false_failure_rate``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    z = (counts - trials * probabilities) / np.sqrt(trials * probabilities * (1 - probabilities))
    rejected = holm_rejections(two_sided_p_values(z), false_failure_rate)
    assert not rejected.any(), f"frequencies differ from the exact probabilities: z = {z}"


# ---------------------------------------------------------- f is never differentiated


def guard_against_differentiation(framework_name, function):
    """``function`` whose derivative raises ``AssertionError`` if anyone asks for it."""
    if framework_name == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def guarded(samples):
            def gradient(upstream):
                raise AssertionError("the estimator differentiated f")

            return function(samples), gradient

        return guarded
    import jax

    @jax.custom_vjp
    def guarded(samples):
        return function(samples)

    def forward(samples):
        return function(samples), None

    def backward(residual, upstream):
        raise AssertionError("the estimator differentiated f")

    guarded.defvjp(forward, backward)
    return guarded


# ----------------------------- the pair and baseline estimators' modes, guard and bad input

#: Two batch members of three Bernoulli variables.
BERNOULLI_LOGITS = np.array([[-1.0, 0.2, 1.5], [0.4, -0.3, 0.0]])


def bernoulli_function(samples):
    """A scalar per batch member of samples ``[..., 3]``, non-linear in the samples."""
    from fxgx.backends import get_framework

    backend = get_framework(samples)
    return backend.xp.square(backend.xp.sum(samples, axis=-1) - 1.2) + samples[..., 0]


def modes_for(framework, dtype):
    """Every mode in float32; eager and the most compiled one (XLA, jit) otherwise."""
    return framework.modes if dtype == "float32" else ("eager", framework.modes[-1])


# ----------------------------------------------- ARM and DisARM on the Bernoulli toy


def exact_pair_moments(name: str, target: float, logit: float):
    """Exact mean and variance of one ARM/DisARM estimate on ``E[(b - t)^2]`` (one logit).

    Both estimates are functions of one ``u ~ U(0, 1)``: ``b = 1[u < sigmoid(theta)]`` and
    ``b~ = 1[u > sigmoid(-theta)]`` are constant between the breakpoints ``sigmoid(+-theta)``,
    so each piece is integrated in closed form (ARM: a constant times ``u - 1/2``; DisARM: a
    constant).
    """
    p, q = sigmoid(logit), sigmoid(-logit)
    points = np.unique([0.0, p, q, 1.0])
    first_moment = second_moment = 0.0
    for low, high in zip(points[:-1], points[1:], strict=True):
        middle = 0.5 * (low + high)
        b, b_tilde = float(middle < p), float(middle > q)
        f_b, f_tilde = (b - target) ** 2, (b_tilde - target) ** 2
        if name == "arm":
            difference = f_tilde - f_b
            first_moment += difference * ((high - 0.5) ** 2 - (low - 0.5) ** 2) / 2
            second_moment += difference**2 * ((high - 0.5) ** 3 - (low - 0.5) ** 3) / 3
        else:
            value = 0.5 * (f_b - f_tilde) * (b - b_tilde) * sigmoid(abs(logit))
            first_moment += value * (high - low)
            second_moment += value**2 * (high - low)
    return first_moment, second_moment - first_moment**2


# ----------------------------------------- score-function baselines on the Bernoulli toy

#: The Bernoulli toy's target ``t`` in ``E[(b - t)^2]``.
TARGET = 0.45


def exact_score_function_moments(logit, num_samples, baseline_rule, target=TARGET):
    """Exact mean and variance of ``1/S sum_s (f_s - c_s) (b_s - p)`` on the toy, by
    enumerating all ``2^S`` sample tuples. ``baseline_rule(f, w, s)`` gives ``c_s`` from the
    values ``f``, the squared scores ``w`` and the index ``s``."""
    p = sigmoid(logit)
    first_moment = second_moment = 0.0
    for states in itertools.product((0.0, 1.0), repeat=num_samples):
        b = np.array(states)
        probability = np.prod(np.where(b == 1.0, p, 1.0 - p))
        values, scores = (b - target) ** 2, b - p
        estimate = np.mean([
            (values[s] - baseline_rule(values, scores**2, s)) * scores[s]
            for s in range(num_samples)
        ])
        first_moment += probability * estimate
        second_moment += probability * estimate**2
    return first_moment, second_moment - first_moment**2


def _others(s, size):
    return np.arange(size) != s


#: The baseline ``c_s`` of REINFORCE (none), REINFORCE-LOO and the leave-one-out optimal
#: baseline, as ``baseline_rule``s of ``exact_score_function_moments``.
RULES = {
    "reinforce": lambda values, weights, s: 0.0,
    "leave_one_out": lambda values, weights, s: np.mean(values[_others(s, len(values))]),
    "optimal": lambda values, weights, s: (
        np.sum((values * weights)[_others(s, len(values))])
        / np.sum(weights[_others(s, len(values))])
    ),
}


# ------------------------------------------------ the Gaussian estimators, batched

#: Independent batch members per call of ``batched_gradients`` (each its own draws).
BATCH = 64


def _compiled_mode(framework):
    return "function" if framework.name == "tensorflow" else "jit"


def batched_gradients(framework, estimator, problem, *, seed, num_samples, function=None,
                      dtype="float32", mode=None):
    """``(value, loc_gradient, scale_gradient)`` for ``BATCH`` independent copies of the
    problem's parameters (one row per batch member), as NumPy arrays."""
    loc, scale = (np.broadcast_to(value, (BATCH,) + np.shape(value))
                  for value in problem.parameter_values())

    def surrogate(loc, scale):
        distribution, problem_function = problem.bind(loc, scale)
        return estimator(function or problem_function, distribution, seed=seed,
                         num_samples=num_samples)

    value, (loc_gradient, scale_gradient) = framework.value_and_vjp(
        surrogate, framework.constant(loc, dtype), framework.constant(scale, dtype),
        mode=mode or _compiled_mode(framework))
    return value, loc_gradient, scale_gradient


# --------------------------------------------- REBAR and RELAX: exact quadrature on the toy


def _softplus(x):
    return np.logaddexp(0.0, x)


def _logit(u):
    return np.log(u) - np.log1p(-u)


def _legendre(low, high, count):
    nodes, weights = np.polynomial.legendre.leggauss(count)
    return 0.5 * (high - low) * nodes + 0.5 * (high + low), 0.5 * (high - low) * weights


def toy_estimate_moments(theta, target, temperature, scale, residual=0.0, count=200, offset=0.0):
    """``(E[g], E[g^2])`` of one RELAX estimate on ``E[(b - t)^2]``, ``b ~ Bern(sigmoid(theta))``,
    with ``c(z) = scale (sigmoid(z / temperature) - t)^2 + residual tanh(z) + offset``.

    ``g = [f(b) - c(z~)] (b - p) + c'(z) - c'(z~) dz~/dtheta``; ``z = theta + logit u``,
    ``b = 1[u > 1 - p]``, ``z~`` from ``v`` by the conditional inverse CDF. Gauss-Legendre
    quadrature over ``(u, v)``, ``count`` nodes per axis on each side of ``u = 1 - p`` (the
    integrand is a rational function of ``u`` and ``v`` there: 200 nodes reach float64
    rounding).
    """
    p = sigmoid(theta)

    def function(y):
        return (y - target) ** 2

    def control(z):
        return scale * function(sigmoid(z / temperature)) + residual * np.tanh(z) + offset

    def control_slope(z):
        y = sigmoid(z / temperature)
        return scale * 2 * (y - target) * y * (1 - y) / temperature + residual / np.cosh(z) ** 2

    v, v_weights = _legendre(0.0, 1.0, count)
    first = second = 0.0
    for b, (low, high) in ((0.0, (0.0, 1.0 - p)), (1.0, (1.0 - p, 1.0))):
        u, u_weights = _legendre(low, high, count)
        z = theta + _logit(u)
        if b == 1.0:
            inner = _logit(v) + _softplus(theta)
            conditional, slope = _softplus(inner), sigmoid(inner) * sigmoid(theta)
        else:
            inner = _logit(v) + _softplus(-theta)
            conditional, slope = -_softplus(inner), sigmoid(inner) * sigmoid(-theta)
        estimate = (
            (function(b) - control(conditional))[None, :] * (b - p)
            + control_slope(z)[:, None]
            - (control_slope(conditional) * slope)[None, :]
        )
        weights = u_weights[:, None] * v_weights[None, :]
        first += np.sum(weights * estimate)
        second += np.sum(weights * estimate**2)
    return first, second


def fast_mode(framework):
    """JAX runs op by op slowly in eager mode; compile it. TensorFlow eager is quick."""
    return "jit" if framework.name == "jax" else "eager"


def central_difference(function, point, step=1e-4):
    return (function(point + step) - function(point - step)) / (2 * step)


# ------------------------------------------------------------- the stick-breaking decisions


def stick_breaking_jacobian(logits):
    """``d eta_k / d theta_j = 1[j = k] - 1[j > k] softmax(theta_{k+1:})_j``, ``[..., K-1, K]``."""
    logits = np.asarray(logits, np.float64)
    num_classes = logits.shape[-1]
    jacobian = np.zeros(logits.shape[:-1] + (num_classes - 1, num_classes))
    for k in range(num_classes - 1):
        jacobian[..., k, k] = 1.0
        jacobian[..., k, k + 1:] = -softmax(logits[..., k + 1:])
    return jacobian
