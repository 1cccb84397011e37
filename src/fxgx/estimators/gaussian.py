"""Gradient estimators for Gaussian latents beyond the score function.

For ``z ~ N(mu, diag sigma^2)`` (fxgx's ``Normal``, or TFP's converted to it) three ways to
estimate ``grad_{mu, sigma} E[f(z)]``, after Mohamed, Rosca, Figurnov & Mnih (2020), "Monte
Carlo gradient estimation in machine learning", JMLR 21 (sections 5, 6 and 7.2):

- ``pathwise``: reparameterise ``z = mu + sigma eps`` and differentiate ``f`` through it
  (``f`` must be differentiable in ``z``):

      g_mu = 1/S sum_s grad f(z_s),   g_sigma = 1/S sum_s grad f(z_s) * eps_s.

- ``measure_valued``: write each derivative of the density as a difference of two densities
  (a weak derivative), one coordinate ``i`` at a time, the other coordinates kept at the
  sample's values:

      d/dmu_i E[f]    = 1/(sigma_i sqrt(2 pi)) E[f(z; z_i = mu_i + sigma_i W)
                                              - f(z; z_i = mu_i - sigma_i W)],
      d/dsigma_i E[f] = 1/sigma_i E[f(z; z_i = mu_i + sigma_i M) - f(z)],

  with ``W ~ Weibull(scale sqrt 2, shape 2)`` (the Rayleigh law, density ``w exp(-w^2/2)``)
  and ``M`` double-sided Maxwell (density ``m^2 exp(-m^2/2) / sqrt(2 pi)``). The coupling:
  both mean terms share one ``W``, and the base sample is built as ``eps_i = M_i U_i`` with
  ``U_i ~ Uniform(0, 1)`` (a standard normal), so the Gaussian half of the scale derivative is
  ``f`` at the base sample itself and shares ``M``. ``f`` need not be differentiable.
  Cost per sample: ``2 D`` evaluations for the means, ``D`` for the scales and 1 for the
  base sample: ``3 D + 1`` for ``D`` latent coordinates per batch member.

- ``delta_method_control_variate``: the score-function estimator with the second-order
  Taylor expansion of ``f`` around the (stopped) mean ``m`` as its control variate,

      h(z) = f(m) + grad f(m) . (z - m) + 1/2 (z - m)^T H(m) (z - m),
      g = 1/S sum_s (f(z_s) - h(z_s)) grad log q(z_s) + grad_{mu, sigma} E_q[h],

  whose expectation is known: ``E[h] = f(m) + 1/2 sum_i H_ii sigma_i^2`` at ``mu = m``, so
  ``grad_mu E[h] = grad f(m)`` and ``grad_sigma_i E[h] = H_ii(m) sigma_i``. Unbiased for any
  twice-differentiable ``f``; exact (zero variance) when ``f`` is quadratic. ``H v`` is
  taken by differentiating the gradient (``backend.value_and_gradient`` nested), once per
  sample (for ``h(z_s)``) and once per coordinate (for the diagonal ``H_ii``).

Each passes the gradient for what ``f`` closes over unbiasedly: pathwise by autodiff; the
other two through the surrogate's value ``mean_s f(z_s)`` (samples stopped), as REINFORCE
does. The estimators treat batch members independently: ``f`` must not mix them.
"""

from __future__ import annotations

import dataclasses
import math

from fxgx.core.custom_gradient import custom_gradient
from fxgx.estimators.base import Estimator, evaluate, sub_seeds

SQRT_TWO_PI = math.sqrt(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Shapes of a normal ``q``: ``batch + event`` and how many trailing axes are the event."""

    batch_shape: tuple
    event_shape: tuple

    @property
    def shape(self) -> tuple:
        return self.batch_shape + self.event_shape

    @property
    def event_size(self) -> int:
        return int(math.prod(self.event_shape))

    @property
    def event_axes(self) -> tuple:
        rank = len(self.shape)
        return tuple(range(rank - len(self.event_shape), rank))


def _layout(distribution) -> _Layout:
    shape = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
    if any(size is None for size in shape):
        raise ValueError(
            f"distribution has shape {shape}; the Gaussian estimators need a static batch and "
            "event shape."
        )
    return _Layout(tuple(distribution.batch_shape), tuple(distribution.event_shape))


def _parameters(distribution, backend, layout):
    """``loc`` and ``scale`` broadcast to ``batch + event`` (still differentiable)."""
    return (backend.broadcast_to(distribution.loc, layout.shape),
            backend.broadcast_to(distribution.scale, layout.shape))


def _sum_event(backend, values, layout):
    """``values`` summed over the event axes (the trailing ``len(event_shape)`` ones)."""
    if not layout.event_shape:
        return values
    rank = len(backend.shape_of(values))
    return backend.reduce_sum(values, axis=tuple(range(rank - len(layout.event_shape), rank)))


def _expand_event(backend, values, layout):
    """``values`` of shape ``... + batch`` with size-1 event axes appended."""
    for _ in layout.event_shape:
        values = backend.expand_dims(values, -1)
    return values


def _event_basis(backend, layout, dtype, leading: int = 0):
    """The ``E = prod(event_shape)`` unit vectors of the event, shape ``[E] + [1] * (leading
    + batch rank) + event_shape``: row ``k`` is 1 at the ``k``-th event coordinate."""
    size = layout.event_size
    rows = backend.one_hot(backend.arange(size, "int32"), size, dtype)
    ones = (1,) * (leading + len(layout.batch_shape))
    return backend.reshape(rows, (size,) + ones + layout.event_shape)


def _surrogate(backend, values, gradients, parameters, layout):
    """``mean_s values`` whose gradient w.r.t. ``(loc, scale)`` is ``gradients`` (stopped)
    and w.r.t. what ``values`` depend on (``f``'s own parameters) is ``mean_s grad values``."""
    stopped = tuple(backend.stop_gradient(gradient) for gradient in gradients)
    return custom_gradient(backend.reduce_mean(values, axis=0), stopped, tuple(parameters),
                           axis=layout.event_axes, fx_gx_manually_stopped=True)


# -------------------------------------------------------------------------------- pathwise


@dataclasses.dataclass(frozen=True)
class Pathwise(Estimator):
    """The reparameterisation (pathwise) estimator for normal latents. See ``pathwise``."""

    name = "pathwise"
    supports = ("normal",)

    def _estimate(self, function, distribution, backend, seed, num_samples):
        layout = _layout(distribution)
        seeds = sub_seeds(seed, backend, "noise")
        noise = backend.stop_gradient(backend.normal((num_samples,) + layout.shape,
                                                     seeds["noise"], distribution.dtype))
        samples = distribution.loc + distribution.scale * noise
        values = evaluate(function, samples, distribution, backend, num_samples)
        return backend.reduce_mean(values, axis=0)


def pathwise() -> Pathwise:
    """The pathwise (reparameterisation) estimator: ``z_s = mu + sigma eps_s`` and autodiff
    through ``f``, so ``g = 1/S sum_s grad_{mu, sigma} f(mu + sigma eps_s)``.

    Normal latents only; ``f`` must be differentiable in ``z``. One evaluation of ``f`` (and
    its backward pass) per sample. References: Kingma & Welling (2014), "Auto-encoding
    variational Bayes"; Rezende, Mohamed & Wierstra (2014), "Stochastic backpropagation";
    Mohamed et al. (2020), JMLR 21, section 5.

    Returns:
        An estimator, called as ``estimator(f, normal, *, seed, num_samples=1)``; it returns
        a surrogate whose value estimates ``E_q[f]`` and whose gradient estimates
        ``grad E_q[f]``.
    """
    return Pathwise()


# -------------------------------------------------------------------------- measure-valued


def rayleigh_sample(backend, shape, seed, dtype):
    """Draws of ``W ~ Weibull(scale sqrt 2, shape 2)``, the Rayleigh law with density
    ``w exp(-w^2 / 2)`` on ``w > 0``: ``W = sqrt(-2 log(1 - U))`` for ``U ~ Uniform[0, 1)``.

    Args:
        backend: the backend module.
        shape: the shape of the draws.
        seed: a native seed.
        dtype: a floating dtype.

    Returns:
        The draws (stopped).
    """
    uniform = backend.uniform(shape, seed, dtype)
    return backend.stop_gradient(backend.sqrt(-2.0 * backend.log1p(-uniform)))


def double_sided_maxwell_sample(backend, shape, seed, dtype):
    """Draws of the double-sided Maxwell law, density ``m^2 exp(-m^2/2) / sqrt(2 pi)`` on the
    real line: a random sign times the length of a standard normal 3-vector.

    Args:
        backend: the backend module.
        shape: the shape of the draws.
        seed: a native seed.
        dtype: a floating dtype.

    Returns:
        The draws (stopped).
    """
    seeds = sub_seeds(seed, backend, "radius", "sign")
    gaussian = backend.normal((3,) + tuple(shape), seeds["radius"], dtype)
    radius = backend.sqrt(backend.reduce_sum(backend.square(gaussian), axis=0))
    coin = backend.uniform(shape, seeds["sign"], dtype)
    sign = backend.where(backend.less(coin, 0.5), -backend.ones_like(coin),
                         backend.ones_like(coin))
    return backend.stop_gradient(sign * radius)


@dataclasses.dataclass(frozen=True)
class MeasureValued(Estimator):
    """Measure-valued gradients for normal latents, coupled. See ``measure_valued``."""

    name = "measure_valued"
    supports = ("normal",)

    def _estimate(self, function, distribution, backend, seed, num_samples):
        layout = _layout(distribution)
        dtype = distribution.dtype
        loc, scale = _parameters(distribution, backend, layout)
        stopped_loc, stopped_scale = backend.stop_gradient(loc), backend.stop_gradient(scale)
        seeds = sub_seeds(seed, backend, "weibull", "maxwell", "uniform")
        shape = (num_samples,) + layout.shape
        weibull = rayleigh_sample(backend, shape, seeds["weibull"], dtype)
        maxwell = double_sided_maxwell_sample(backend, shape, seeds["maxwell"], dtype)
        # The coupling: eps = M U is standard normal and shares M with the scale's positive part.
        noise = backend.stop_gradient(maxwell * backend.uniform(shape, seeds["uniform"], dtype))
        samples = stopped_loc + stopped_scale * noise
        values = evaluate(function, samples, distribution, backend, num_samples)

        # Row k of each block: the samples with event coordinate k replaced.
        basis = _event_basis(backend, layout, dtype, leading=1)
        size = layout.event_size
        blocks = [samples + basis * stopped_scale * (replacement - noise)
                  for replacement in (weibull, -weibull, maxwell)]
        count = 3 * size * num_samples
        perturbed = backend.reshape(backend.concat(blocks, axis=0), (count,) + layout.shape)
        perturbed_values = backend.stop_gradient(
            evaluate(function, perturbed, distribution, backend, count))
        perturbed_values = backend.reshape(perturbed_values,
                                           (3, size, num_samples) + layout.batch_shape)
        plus, minus, positive = perturbed_values[0], perturbed_values[1], perturbed_values[2]
        base = backend.expand_dims(backend.stop_gradient(values), 0)

        per_coordinate_basis = _event_basis(backend, layout, dtype)

        def to_event(per_coordinate):  # [E] + batch -> batch + event
            expanded = _expand_event(backend, per_coordinate, layout)
            return backend.reduce_sum(per_coordinate_basis * expanded, axis=0)

        loc_gradient = to_event(backend.reduce_mean(plus - minus, axis=1)) / (
            stopped_scale * SQRT_TWO_PI)
        scale_gradient = to_event(backend.reduce_mean(positive - base, axis=1)) / stopped_scale
        return _surrogate(backend, values, (loc_gradient, scale_gradient), (loc, scale), layout)


def measure_valued() -> MeasureValued:
    """Measure-valued gradients of ``E_{N(mu, diag sigma^2)}[f]``, one coordinate at a time:

        g_mu_i    = 1/(S sigma_i sqrt(2 pi)) sum_s [f(z_s; z_i = mu_i + sigma_i W_s)
                                                    - f(z_s; z_i = mu_i - sigma_i W_s)],
        g_sigma_i = 1/(S sigma_i) sum_s [f(z_s; z_i = mu_i + sigma_i M_s) - f(z_s)],

    ``W`` Weibull(sqrt 2, 2) (Rayleigh), ``M`` double-sided Maxwell, and the base sample
    ``z_s = mu + sigma M U`` (``U ~ Uniform(0, 1)``) coupled to ``M``. Unbiased; ``f`` need
    not be differentiable. Cost: ``3 D + 1`` evaluations of ``f`` per sample for ``D`` latent
    coordinates (2 per coordinate for the means, 1 per coordinate for the scales, 1 shared).
    References: Pflug (1989), "Sampling derivatives of probabilities", Computing 42;
    Mohamed et al. (2020), JMLR 21, section 6.

    Returns:
        An estimator, called as ``estimator(f, normal, *, seed, num_samples=1)``; it returns
        a surrogate whose value estimates ``E_q[f]`` and whose gradient estimates
        ``grad E_q[f]``.
    """
    return MeasureValued()


# ------------------------------------------------------------ delta-method control variate


def gradient_and_hessian_products(function, points, directions, backend):
    """``grad f(x)`` and ``H(x) v`` row by row, by differentiating the gradient (the
    backend's ``value_and_gradient`` nested).

    Args:
        function: maps ``[R] + shape`` points to ``[R] + batch`` values, each value depending
            only on its own row and batch member.
        points: ``[R] + shape`` points ``x_r``.
        directions: ``[R] + shape`` directions ``v_r``.
        backend: the backend module.

    Returns:
        ``(values, gradients, products)``: ``f(x_r)``, ``grad f(x_r)`` and ``H(x_r) v_r``
        (stopped), of shapes ``[R] + batch``, ``[R] + shape`` and ``[R] + shape``.
    """
    def gradient(point):
        return backend.value_and_gradient(function, [point])

    def directional(point):
        _, (point_gradient,) = gradient(point)
        return backend.reduce_sum(point_gradient * directions)

    values, (gradients,) = gradient(points)
    _, (products,) = backend.value_and_gradient(directional, [points])
    stop = backend.stop_gradient
    return stop(values), stop(gradients), stop(products)


@dataclasses.dataclass(frozen=True)
class DeltaMethodControlVariate(Estimator):
    """REINFORCE with the second-order Taylor expansion of ``f`` as its control variate.
    See ``delta_method_control_variate``."""

    name = "delta_method_control_variate"
    supports = ("normal",)

    def _estimate(self, function, distribution, backend, seed, num_samples):
        layout = _layout(distribution)
        dtype = distribution.dtype
        loc, scale = _parameters(distribution, backend, layout)
        stopped_loc, stopped_scale = backend.stop_gradient(loc), backend.stop_gradient(scale)
        seeds = sub_seeds(seed, backend, "noise")
        noise = backend.stop_gradient(backend.normal((num_samples,) + layout.shape,
                                                     seeds["noise"], dtype))
        differences = stopped_scale * noise
        samples = stopped_loc + differences
        values = evaluate(function, samples, distribution, backend, num_samples)

        # One Hessian-vector product per sample (h(z_s)) and per event coordinate (H_ii).
        size = layout.event_size
        rows = num_samples + size
        basis = backend.broadcast_to(_event_basis(backend, layout, dtype),
                                     (size,) + layout.shape)
        directions = backend.concat([differences, basis], axis=0)
        points = backend.broadcast_to(stopped_loc, (rows,) + layout.shape)

        def checked(point):
            return evaluate(function, point, distribution, backend, rows)

        at_mean, gradients, products = gradient_and_hessian_products(
            checked, points, directions, backend)
        value_at_mean, gradient_at_mean = at_mean[0], gradients[0]
        control = (value_at_mean
                   + _sum_event(backend, gradient_at_mean * differences, layout)
                   + 0.5 * _sum_event(backend, differences * products[:num_samples], layout))
        hessian_diagonal = backend.reduce_sum(basis * products[num_samples:], axis=0)

        weights = _expand_event(
            backend, (backend.stop_gradient(values) - control) / num_samples, layout)
        standardized = noise / stopped_scale  # (z - mu) / sigma^2
        loc_score = standardized
        scale_score = (backend.square(noise) - 1.0) / stopped_scale
        loc_gradient = backend.reduce_sum(weights * loc_score, axis=0) + gradient_at_mean
        scale_gradient = (backend.reduce_sum(weights * scale_score, axis=0)
                          + hessian_diagonal * stopped_scale)
        return _surrogate(backend, values, (loc_gradient, scale_gradient), (loc, scale), layout)


def delta_method_control_variate() -> DeltaMethodControlVariate:
    """The score-function estimator with the delta-method (second-order Taylor) control
    variate ``h(z) = f(m) + grad f(m).(z - m) + 1/2 (z - m)^T H(m) (z - m)`` at ``m = mu``:

        g_mu    = 1/S sum_s (f(z_s) - h(z_s)) (z_s - mu) / sigma^2 + grad f(mu),
        g_sigma = 1/S sum_s (f(z_s) - h(z_s)) ((z_s - mu)^2 / sigma^2 - 1) / sigma
                  + diag H(mu) sigma.

    Normal latents; ``f`` twice differentiable in ``z``. Unbiased for every such ``f``, and
    exact for every seed when ``f`` is quadratic. Cost per call: ``S`` evaluations of ``f``,
    plus one gradient and ``S + D`` Hessian-vector products at the mean (``D`` latent
    coordinates). References: Paisley, Blei & Jordan (2012), "Variational Bayesian inference
    with stochastic search", ICML; Mohamed et al. (2020), JMLR 21, section 7.2.

    Returns:
        An estimator, called as ``estimator(f, normal, *, seed, num_samples=1)``; it returns
        a surrogate whose value estimates ``E_q[f]`` and whose gradient estimates
        ``grad E_q[f]``.
    """
    return DeltaMethodControlVariate()
