"""The named problems that the catalogue tests, ``fxgx compare`` and the docs use.

- ``bernoulli_toy``: ``E[(b - 0.45)^2]`` at ``theta = (-2, 0, 2)`` (three independent toys).
- ``bernoulli_toy_0499``: the same at ``t = 0.499``, the REBAR/RELAX stress test; its
  gradient is 500 times smaller than the noise of REINFORCE, so tests on it must detect half
  the gradient's size (``detectable_fraction = 0.5``), which takes ~3e7 REINFORCE estimates.
- ``nonadditive_bernoulli``: ``(w . b - 1.3)^2 + 0.8 b_0 b_1 b_2`` over ``D = 8`` Bernoulli
  variables; exact by enumerating 256 states. The default problem of ``fxgx compare``.
- ``categorical``: ``(sum_d u_d . z_d - 0.6)^2 + z_{0,1} z_{1,2} - 0.5 z_{2,3} z_{3,4}`` over
  ``D = 4`` ten-class variables; exact by enumerating ``10^4`` states. The categorical problem
  of ``fxgx compare`` and the catalogue (K >= 5 classes, D >= 3 variables, non-additive f).
- ``small_categorical``: ``(sum_d v_d . z_d - 0.7)^2 + z_{0,0} z_{1,1}`` over ``D = 3``
  four-class variables; exact by enumerating 64 states (small enough to enumerate several
  joint draws in tests).
- ``gaussian``: ``E_{N(mu, sigma^2)}[(z - 0.5)^2] = (mu - 0.5)^2 + sigma^2`` (closed form).
- ``gaussian_linear``, ``gaussian_quadratic`` and ``gaussian_cubic``: polynomials of degree 1,
  2 and 3 (with cross terms ``z_0 z_1`` and, for the cubic, ``z_0 z_1 z_2``) over a ``D = 3``
  diagonal normal with distinct means and scales; closed form from the normal's moments
  (``GaussianPolynomial``). The problems of the Gaussian-only estimators (pathwise,
  measure-valued, the delta-method control variate).
- ``decoder_bernoulli`` and ``decoder_categorical``: ``nonadditive_bernoulli`` and
  ``categorical`` with the weights ``w`` (``v``) as parameters of ``f``, the way a decoder's
  weights are: the parameters are ``[logits, w]``, and the exact gradient holds
  ``E[df/dw]`` too (enumeration differentiated by autodiff). They test that an estimator
  passes an unbiased gradient to what ``f`` closes over, and that the logits' gradient is
  unchanged by it.
"""

from __future__ import annotations

import numpy as np

from fxgx.backends import array_namespace
from fxgx.distributions import Normal
from fxgx.problems.base import Problem
from fxgx.problems.bernoulli_toy import BernoulliToy
from fxgx.problems.enumeration import EnumeratedBernoulli, EnumeratedCategorical

NONADDITIVE_WEIGHTS = np.array([0.9, -0.4, 0.6, 0.3, -0.8, 0.5, 0.2, -0.3])
NONADDITIVE_LOGITS = np.array([-1.5, -0.8, -0.2, 0.0, 0.4, 0.9, 1.3, 2.0])
CATEGORICAL_VALUES = np.array(
    [[0.3, -0.5, 0.8, 0.1], [-0.2, 0.6, 0.0, -0.7], [0.5, 0.2, -0.4, 0.9]]
)
CATEGORICAL_LOGITS = np.array([[0.5, -0.3, 0.0, 1.0], [-1.0, 0.2, 0.4, 0.0], [0.0, 0.0, 0.7, -0.5]])
#: ``u`` and the logits of ``categorical`` (D = 4 variables, K = 10 classes): fixed, smooth
#: and unevenly spread, so that every class has probability between 0.03 and 0.26.
LARGE_CATEGORICAL_VALUES = np.round(0.8 * np.sin(1.3 * np.arange(40.0) + 0.4), 2).reshape(4, 10)
LARGE_CATEGORICAL_LOGITS = np.round(1.0 * np.cos(0.7 * np.arange(40.0)), 2).reshape(4, 10)


def nonadditive_decoder(samples, weights):
    """``(w . b - 1.3)^2 + 0.8 b_0 b_1 b_2`` for samples of shape ``[S] + batch + [8]`` and
    weights of shape ``batch + [8]`` (or ``[8]``)."""
    xp = array_namespace(samples, weights)
    linear = xp.sum(samples * weights, axis=-1)
    interaction = samples[..., 0] * samples[..., 1] * samples[..., 2]
    return xp.square(linear - 1.3) + 0.8 * interaction


def nonadditive_function(samples):
    """``nonadditive_decoder`` with the fixed weights ``NONADDITIVE_WEIGHTS``."""
    xp = array_namespace(samples)
    return nonadditive_decoder(
        samples, xp.asarray(NONADDITIVE_WEIGHTS, dtype=samples.dtype))


def categorical_decoder(samples, values):
    """``(sum_d v_d . z_d - 0.7)^2 + z_{0,0} z_{1,1}`` for one-hot samples
    ``[S] + batch + [3, 4]`` and values of shape ``batch + [3, 4]`` (or ``[3, 4]``)."""
    xp = array_namespace(samples, values)
    linear = xp.sum(samples * values, axis=(-2, -1))
    return xp.square(linear - 0.7) + samples[..., 0, 0] * samples[..., 1, 1]


def categorical_function(samples):
    """``categorical_decoder`` with the fixed values ``CATEGORICAL_VALUES``."""
    xp = array_namespace(samples)
    return categorical_decoder(
        samples, xp.asarray(CATEGORICAL_VALUES, dtype=samples.dtype))


def large_categorical_function(samples):
    """``(sum_d u_d . z_d - 0.6)^2 + z_{0,1} z_{1,2} - 0.5 z_{2,3} z_{3,4}`` for one-hot (or
    relaxed) samples of shape ``[S] + batch + [4, 10]``, with ``u = LARGE_CATEGORICAL_VALUES``."""
    xp = array_namespace(samples)
    values = xp.asarray(LARGE_CATEGORICAL_VALUES, dtype=samples.dtype)
    linear = xp.sum(samples * values, axis=(-2, -1))
    interaction = (samples[..., 0, 1] * samples[..., 1, 2]
                   - 0.5 * samples[..., 2, 3] * samples[..., 3, 4])
    return xp.square(linear - 0.6) + interaction


class GaussianQuadratic(Problem):
    """``E_{z ~ N(mu, sigma^2)}[(z - c)^2]``; gradients ``2 (mu - c)`` and ``2 sigma``.

    Args:
        loc: the mean ``mu``.
        scale: the standard deviation ``sigma``.
        center: ``c``.
    """

    kind = "normal"

    def __init__(self, loc: float = 0.3, scale: float = 0.8, center: float = 0.5):
        self.loc, self.scale, self.center = float(loc), float(scale), float(center)
        self.name = f"gaussian(mu={loc:g}, sigma={scale:g}, c={center:g})"

    def parameter_values(self):
        """``[mu, sigma]``.

        Returns:
            Two float64 NumPy scalars.
        """
        return [np.asarray(self.loc), np.asarray(self.scale)]

    def distribution(self, loc, scale):
        """``N(loc, scale)``.

        Args:
            loc: the mean.
            scale: the standard deviation.

        Returns:
            A ``Normal``.
        """
        return Normal(loc, scale)

    def function(self, samples):
        """``(z - c)^2``.

        Args:
            samples: the normal samples.

        Returns:
            ``(samples - c)^2``, elementwise.
        """
        return array_namespace(samples).square(samples - self.center)

    def exact_value(self):
        """``(mu - c)^2 + sigma^2``.

        Returns:
            A float.
        """
        return (self.loc - self.center) ** 2 + self.scale**2

    def exact_gradient(self):
        """``(2 (mu - c), 2 sigma)``.

        Returns:
            A float64 array of 2 entries.
        """
        return np.array([2 * (self.loc - self.center), 2 * self.scale])


#: Means and scales of the ``D = 3`` Gaussian polynomial problems: distinct, mixed signs.
POLYNOMIAL_LOC = np.array([0.4, -0.7, 1.1])
POLYNOMIAL_SCALE = np.array([0.6, 1.3, 0.9])
#: Coefficients ``(a, b, c, r, t)`` of ``sum_i (a_i z_i + b_i z_i^2 + c_i z_i^3) + r z_0 z_1 +
#: t z_0 z_1 z_2`` for the linear, quadratic and cubic problems.
POLYNOMIAL_COEFFICIENTS = {
    "linear": ([0.8, -0.5, 0.3], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.0, 0.0),
    "quadratic": ([0.8, -0.5, 0.3], [0.5, -0.2, 0.35], [0.0, 0.0, 0.0], 0.6, 0.0),
    "cubic": ([0.8, -0.5, 0.3], [0.5, -0.2, 0.35], [0.15, -0.1, 0.05], 0.6, -0.3),
}


class GaussianPolynomial(Problem):
    """``E_{z ~ N(mu, diag sigma^2)}[f(z)]`` for the polynomial

        f(z) = sum_i (a_i z_i + b_i z_i^2 + c_i z_i^3) + r z_0 z_1 + t z_0 z_1 z_2

    over ``D >= 3`` independent normals. With ``E[z] = mu``, ``E[z^2] = mu^2 + sigma^2`` and
    ``E[z^3] = mu^3 + 3 mu sigma^2``, and independence for the cross terms,

        E[f] = sum_i (a_i mu_i + b_i (mu_i^2 + sigma_i^2) + c_i (mu_i^3 + 3 mu_i sigma_i^2))
               + r mu_0 mu_1 + t mu_0 mu_1 mu_2,
        dE/dmu_i    = a_i + 2 b_i mu_i + 3 c_i (mu_i^2 + sigma_i^2) + (cross terms),
        dE/dsigma_i = 2 b_i sigma_i + 6 c_i mu_i sigma_i.

    The parameters are ``[mu, sigma]`` (``D`` entries each); the normal has one event axis.

    Args:
        loc: ``mu``, ``D`` entries.
        scale: ``sigma``, ``D`` entries (positive).
        linear: ``a``.
        quadratic: ``b``.
        cubic: ``c``.
        pair: ``r``, the coefficient of ``z_0 z_1``.
        triple: ``t``, the coefficient of ``z_0 z_1 z_2``.
        name: the problem's name in reports.
    """

    kind = "normal"

    def __init__(self, loc, scale, linear, quadratic, cubic, pair=0.0, triple=0.0,
                 name="gaussian_polynomial"):
        self.loc = np.asarray(loc, np.float64)
        self.scale = np.asarray(scale, np.float64)
        self.linear = np.asarray(linear, np.float64)
        self.quadratic = np.asarray(quadratic, np.float64)
        self.cubic = np.asarray(cubic, np.float64)
        self.pair, self.triple = float(pair), float(triple)
        self.name = name

    def parameter_values(self):
        """``[mu, sigma]``.

        Returns:
            Two float64 NumPy arrays of ``D`` entries.
        """
        return [self.loc, self.scale]

    def distribution(self, loc, scale):
        """``N(loc, diag scale^2)`` with one event axis.

        Args:
            loc: the means, ``batch + [D]``.
            scale: the standard deviations, ``batch + [D]``.

        Returns:
            A ``Normal`` with ``event_ndims=1``.
        """
        return Normal(loc, scale, event_ndims=1)

    def function(self, samples):
        """``f(z)``, summed over the event axis.

        Args:
            samples: ``[S] + batch + [D]`` normal samples.

        Returns:
            ``f`` per sample and batch member, shape ``[S] + batch``.
        """
        xp = array_namespace(samples)
        dtype = samples.dtype
        linear, quadratic, cubic = (xp.asarray(value, dtype=dtype) for value in
                                    (self.linear, self.quadratic, self.cubic))
        polynomial = samples * (linear + samples * (quadratic + samples * cubic))
        total = xp.sum(polynomial, axis=-1)
        first, second, third = samples[..., 0], samples[..., 1], samples[..., 2]
        return total + self.pair * first * second + self.triple * first * second * third

    def exact_value(self):
        """The closed form of ``E[f]`` (class docstring).

        Returns:
            A float.
        """
        mu, variance = self.loc, self.scale**2
        single = (self.linear * mu + self.quadratic * (mu**2 + variance)
                  + self.cubic * (mu**3 + 3 * mu * variance))
        return float(np.sum(single) + self.pair * mu[0] * mu[1]
                     + self.triple * mu[0] * mu[1] * mu[2])

    def exact_gradient(self):
        """``(dE/dmu, dE/dsigma)`` in closed form (class docstring).

        Returns:
            A float64 array of ``2 D`` entries.
        """
        mu, sigma = self.loc, self.scale
        d_loc = self.linear + 2 * self.quadratic * mu + 3 * self.cubic * (mu**2 + sigma**2)
        d_loc[0] += self.pair * mu[1] + self.triple * mu[1] * mu[2]
        d_loc[1] += self.pair * mu[0] + self.triple * mu[0] * mu[2]
        d_loc[2] += self.triple * mu[0] * mu[1]
        d_scale = 2 * self.quadratic * sigma + 6 * self.cubic * mu * sigma
        return np.concatenate([d_loc, d_scale])


def gaussian_polynomial(degree: str) -> GaussianPolynomial:
    """The built-in ``gaussian_<degree>`` problem.

    Args:
        degree: ``"linear"``, ``"quadratic"`` or ``"cubic"``.

    Returns:
        The problem at ``POLYNOMIAL_LOC``, ``POLYNOMIAL_SCALE``.
    """
    linear, quadratic, cubic, pair, triple = POLYNOMIAL_COEFFICIENTS[degree]
    return GaussianPolynomial(POLYNOMIAL_LOC, POLYNOMIAL_SCALE, linear, quadratic, cubic, pair,
                              triple, name=f"gaussian_{degree}(D=3)")


def _factories(backend):
    return {
        "bernoulli_toy": lambda: BernoulliToy(0.45, [-2.0, 0.0, 2.0]),
        "bernoulli_toy_0499": lambda: BernoulliToy(
            0.499, [-2.0, 0.0, 2.0], detectable_fraction=0.5
        ),
        "nonadditive_bernoulli": lambda: EnumeratedBernoulli(
            nonadditive_function,
            NONADDITIVE_LOGITS,
            name="nonadditive_bernoulli(D=8)",
            backend=backend,
        ),
        "categorical": lambda: EnumeratedCategorical(
            large_categorical_function,
            LARGE_CATEGORICAL_LOGITS,
            name="categorical(D=4, K=10)",
            backend=backend,
        ),
        "small_categorical": lambda: EnumeratedCategorical(
            categorical_function,
            CATEGORICAL_LOGITS,
            name="small_categorical(D=3, K=4)",
            backend=backend,
        ),
        "gaussian": GaussianQuadratic,
        "gaussian_linear": lambda: gaussian_polynomial("linear"),
        "gaussian_quadratic": lambda: gaussian_polynomial("quadratic"),
        "gaussian_cubic": lambda: gaussian_polynomial("cubic"),
        "decoder_bernoulli": lambda: EnumeratedBernoulli(
            nonadditive_decoder,
            NONADDITIVE_LOGITS,
            name="decoder_bernoulli(D=8, f with weights w)",
            backend=backend,
            function_parameters=[NONADDITIVE_WEIGHTS],
        ),
        "decoder_categorical": lambda: EnumeratedCategorical(
            categorical_decoder,
            CATEGORICAL_LOGITS,
            name="decoder_categorical(D=3, K=4, f with values v)",
            backend=backend,
            function_parameters=[CATEGORICAL_VALUES],
        ),
    }


PROBLEM_NAMES = tuple(_factories(None))
DEFAULT_PROBLEM = "nonadditive_bernoulli"


def get_problem(name: str, backend: str | None = None) -> Problem:
    """A fresh instance of the built-in problem ``name``.

    ``backend`` names the framework that evaluates ``f`` on the enumerated states for the
    exact gradient (default: TensorFlow if installed, else JAX).

    Args:
        name: one of ``PROBLEM_NAMES``.
        backend: ``"tensorflow"``, ``"jax"`` or None.

    Returns:
        The problem.

    Raises:
        ValueError: ``name`` is not a built-in problem; the message lists them.
    """
    factories = _factories(backend)
    if name not in factories:
        raise ValueError(f"problem={name!r} is not built in; choose one of {sorted(factories)}.")
    return factories[name]()
