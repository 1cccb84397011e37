"""The pathwise (reparameterisation) estimator for Gaussian latents.

Reparameterise ``z = mu + sigma eps`` and differentiate ``f`` through it (``f`` must be
differentiable in ``z``):

    g_mu = 1/S sum_s grad f(z_s),   g_sigma = 1/S sum_s grad f(z_s) * eps_s.

References: Kingma & Welling (2014), "Auto-encoding variational Bayes"; Rezende, Mohamed &
Wierstra (2014), "Stochastic backpropagation"; Mohamed, Rosca, Figurnov & Mnih (2020), "Monte
Carlo gradient estimation in machine learning", JMLR 21, section 5.
"""

from __future__ import annotations

import dataclasses

from fxgx.estimators.base import Estimator
from fxgx.estimators.gaussian import normal_layout
from fxgx.estimators.sampling import evaluate, sub_seeds


@dataclasses.dataclass(frozen=True)
class Pathwise(Estimator, card="pathwise"):
    """The reparameterisation (pathwise) estimator for normal latents. See ``pathwise``."""

    def _estimate(self, framework, function, distribution, seed, num_samples):
        layout = normal_layout(distribution)
        seeds = sub_seeds(framework, seed, "noise")
        noise = framework.stop_gradient(framework.normal((num_samples,) + layout.shape,
                                                         seeds["noise"], distribution.dtype))
        samples = distribution.loc + distribution.scale * noise
        values = evaluate(framework, function, samples, distribution, num_samples)
        return framework.xp.mean(values, axis=0)


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
