"""Measure-valued gradients for Gaussian latents, coupled.

Write each derivative of the density as a difference of two densities (a weak derivative),
one coordinate ``i`` at a time, the other coordinates kept at the sample's values:

    d/dmu_i E[f]    = 1/(sigma_i sqrt(2 pi)) E[f(z; z_i = mu_i + sigma_i W)
                                          - f(z; z_i = mu_i - sigma_i W)],
    d/dsigma_i E[f] = 1/sigma_i E[f(z; z_i = mu_i + sigma_i M) - f(z)],

with ``W ~ Weibull(scale sqrt 2, shape 2)`` (the Rayleigh law, density ``w exp(-w^2/2)``)
and ``M`` double-sided Maxwell (density ``m^2 exp(-m^2/2) / sqrt(2 pi)``). The coupling:
both mean terms share one ``W``, and the base sample is built as ``eps_i = M_i U_i`` with
``U_i ~ Uniform(0, 1)`` (a standard normal), so the Gaussian half of the scale derivative is
``f`` at the base sample itself and shares ``M``. ``f`` need not be differentiable.
Cost per sample: ``2 D`` evaluations for the means, ``D`` for the scales and 1 for the
base sample: ``3 D + 1`` for ``D`` latent coordinates per batch member. What ``f`` closes
over gets its gradient through the surrogate's value ``mean_s f(z_s)`` (samples stopped).

References: Pflug (1989), "Sampling derivatives of probabilities", Computing 42; Mohamed,
Rosca, Figurnov & Mnih (2020), JMLR 21, section 6.
"""

from __future__ import annotations

import dataclasses

from fxgx.estimators.base import Estimator
from fxgx.estimators.gaussian import (
    SQRT_TWO_PI,
    broadcast_parameters,
    gaussian_surrogate,
    normal_layout,
)
from fxgx.estimators.sampling import evaluate, sub_seeds


def rayleigh_sample(framework, shape, seed, dtype):
    """Draws of ``W ~ Weibull(scale sqrt 2, shape 2)``, the Rayleigh law with density
    ``w exp(-w^2 / 2)`` on ``w > 0``: ``W = sqrt(-2 log(1 - U))`` for ``U ~ Uniform[0, 1)``.

    Args:
        framework: the framework.
        shape: the shape of the draws.
        seed: a native seed.
        dtype: a floating dtype.

    Returns:
        The draws (stopped).
    """
    xp = framework.xp
    uniform = framework.uniform(shape, seed, dtype)
    return framework.stop_gradient(xp.sqrt(-2.0 * xp.log1p(-uniform)))


def double_sided_maxwell_sample(framework, shape, seed, dtype):
    """Draws of the double-sided Maxwell law, density ``m^2 exp(-m^2/2) / sqrt(2 pi)`` on the
    real line: a random sign times the length of a standard normal 3-vector.

    Args:
        framework: the framework.
        shape: the shape of the draws.
        seed: a native seed.
        dtype: a floating dtype.

    Returns:
        The draws (stopped).
    """
    xp = framework.xp
    seeds = sub_seeds(framework, seed, "radius", "sign")
    gaussian = framework.normal((3,) + tuple(shape), seeds["radius"], dtype)
    radius = xp.sqrt(xp.sum(xp.square(gaussian), axis=0))
    coin = framework.uniform(shape, seeds["sign"], dtype)
    sign = xp.where(xp.less(coin, 0.5), -xp.ones_like(coin), xp.ones_like(coin))
    return framework.stop_gradient(sign * radius)


@dataclasses.dataclass(frozen=True)
class MeasureValued(Estimator, card="measure_valued"):
    """Measure-valued gradients for normal latents, coupled. See ``measure_valued``."""

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        stop = framework.stop_gradient
        layout = normal_layout(distribution)
        dtype = distribution.dtype
        loc, scale = broadcast_parameters(framework, distribution, layout)
        stopped_loc, stopped_scale = stop(loc), stop(scale)
        seeds = sub_seeds(framework, seed, "weibull", "maxwell", "uniform")
        shape = (num_samples,) + layout.shape
        weibull = rayleigh_sample(framework, shape, seeds["weibull"], dtype)
        maxwell = double_sided_maxwell_sample(framework, shape, seeds["maxwell"], dtype)
        # The coupling: eps = M U is standard normal and shares M with the scale's positive part.
        noise = stop(maxwell * framework.uniform(shape, seeds["uniform"], dtype))
        samples = stopped_loc + stopped_scale * noise
        values = evaluate(framework, function, samples, distribution, num_samples)

        # Row k of each block: the samples with event coordinate k replaced.
        basis = layout.event_basis(xp, dtype, leading=1)
        size = layout.event_size
        blocks = [samples + basis * stopped_scale * (replacement - noise)
                  for replacement in (weibull, -weibull, maxwell)]
        count = 3 * size * num_samples
        perturbed = xp.reshape(xp.concat(blocks, axis=0), (count,) + layout.shape)
        perturbed_values = stop(evaluate(framework, function, perturbed, distribution, count))
        perturbed_values = xp.reshape(perturbed_values,
                                      (3, size, num_samples) + layout.batch_shape)
        plus, minus, positive = (perturbed_values[index, ...] for index in range(3))
        base = xp.expand_dims(stop(values), axis=0)

        per_coordinate_basis = layout.event_basis(xp, dtype)

        def to_event(per_coordinate):  # [E] + batch -> batch + event
            expanded = layout.expand_event(xp, per_coordinate)
            return xp.sum(per_coordinate_basis * expanded, axis=0)

        loc_gradient = to_event(xp.mean(plus - minus, axis=1)) / (stopped_scale * SQRT_TWO_PI)
        scale_gradient = to_event(xp.mean(positive - base, axis=1)) / stopped_scale
        return gaussian_surrogate(framework, values, (loc_gradient, scale_gradient),
                                  (loc, scale), layout)


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
