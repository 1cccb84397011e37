"""The score-function estimator with the delta-method (second-order Taylor) control variate.

The control variate is the second-order Taylor expansion of ``f`` around the (stopped)
mean ``m``,

    h(z) = f(m) + grad f(m) . (z - m) + 1/2 (z - m)^T H(m) (z - m),
    g = 1/S sum_s (f(z_s) - h(z_s)) grad log q(z_s) + grad_{mu, sigma} E_q[h],

whose expectation is known: ``E[h] = f(m) + 1/2 sum_i H_ii sigma_i^2`` at ``mu = m``, so
``grad_mu E[h] = grad f(m)`` and ``grad_sigma_i E[h] = H_ii(m) sigma_i``. Unbiased for any
twice-differentiable ``f``; exact (zero variance) when ``f`` is quadratic. ``H v`` is
taken by differentiating the gradient (``framework.value_and_gradient`` nested), once per
sample (for ``h(z_s)``) and once per coordinate (for the diagonal ``H_ii``). What ``f``
closes over gets its gradient through the surrogate's value ``mean_s f(z_s)``.

References: Paisley, Blei & Jordan (2012), "Variational Bayesian inference with stochastic
search", ICML; Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21, section 7.2.
"""

from __future__ import annotations

import dataclasses

from fxgx.estimators.base import Estimator
from fxgx.estimators.gaussian import broadcast_parameters, gaussian_surrogate, normal_layout
from fxgx.estimators.sampling import evaluate, sub_seeds


def gradient_and_hessian_products(framework, function, points, directions):
    """``grad f(x)`` and ``H(x) v`` row by row, by differentiating the gradient (the
    framework's ``value_and_gradient`` nested).

    Args:
        framework: the framework.
        function: maps ``[R] + shape`` points to ``[R] + batch`` values, each value depending
            only on its own row and batch member.
        points: ``[R] + shape`` points ``x_r``.
        directions: ``[R] + shape`` directions ``v_r``.

    Returns:
        ``(values, gradients, products)``: ``f(x_r)``, ``grad f(x_r)`` and ``H(x_r) v_r``
        (stopped), of shapes ``[R] + batch``, ``[R] + shape`` and ``[R] + shape``.
    """
    def gradient(point):
        return framework.value_and_gradient(function, [point])

    def directional(point):
        _, (point_gradient,) = gradient(point)
        return framework.xp.sum(point_gradient * directions)

    values, (gradients,) = gradient(points)
    _, (products,) = framework.value_and_gradient(directional, [points])
    stop = framework.stop_gradient
    return stop(values), stop(gradients), stop(products)


@dataclasses.dataclass(frozen=True)
class DeltaMethodControlVariate(Estimator, card="delta_method_control_variate"):
    """REINFORCE with the second-order Taylor expansion of ``f`` as its control variate.
    See ``delta_method_control_variate``."""

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        stop = framework.stop_gradient
        layout = normal_layout(distribution)
        dtype = distribution.dtype
        loc, scale = broadcast_parameters(framework, distribution, layout)
        stopped_loc, stopped_scale = stop(loc), stop(scale)
        seeds = sub_seeds(framework, seed, "noise")
        noise = stop(framework.normal((num_samples,) + layout.shape, seeds["noise"], dtype))
        differences = stopped_scale * noise
        samples = stopped_loc + differences
        values = evaluate(framework, function, samples, distribution, num_samples)

        # One Hessian-vector product per sample (h(z_s)) and per event coordinate (H_ii).
        size = layout.event_size
        rows = num_samples + size
        basis = xp.broadcast_to(layout.event_basis(xp, dtype), (size,) + layout.shape)
        directions = xp.concat([differences, basis], axis=0)
        points = xp.broadcast_to(stopped_loc, (rows,) + layout.shape)

        def checked(point):
            return evaluate(framework, function, point, distribution, rows)

        at_mean, gradients, products = gradient_and_hessian_products(
            framework, checked, points, directions)
        value_at_mean, gradient_at_mean = at_mean[0, ...], gradients[0, ...]
        control = (value_at_mean
                   + layout.sum_event(xp, gradient_at_mean * differences)
                   + 0.5 * layout.sum_event(xp, differences * products[:num_samples, ...]))
        hessian_diagonal = xp.sum(basis * products[num_samples:, ...], axis=0)

        weights = layout.expand_event(xp, (stop(values) - control) / num_samples)
        standardized = noise / stopped_scale  # (z - mu) / sigma^2
        loc_score = standardized
        scale_score = (xp.square(noise) - 1.0) / stopped_scale
        loc_gradient = xp.sum(weights * loc_score, axis=0) + gradient_at_mean
        scale_gradient = (xp.sum(weights * scale_score, axis=0)
                          + hessian_diagonal * stopped_scale)
        return gaussian_surrogate(framework, values, (loc_gradient, scale_gradient),
                                  (loc, scale), layout)


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
