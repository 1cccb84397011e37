"""The REINFORCE (score-function) surrogate, with an optional constant baseline.

    grad E[f(z)] = E[(f(z) - b) grad log q(z)] + E[grad f(z)]      (Williams, 1992)

The first term is the score-function estimate for the parameters of ``q``; the second is
the gradient w.r.t. what ``f`` itself depends on (a decoder's weights), which the surrogate
passes through unchanged: its value is ``mean_s f(z_s)`` with the samples stopped and ``f``
not, as in ``tfp.monte_carlo.expectation``. Two forms, chosen by ``higher_order``:

- ``higher_order=True`` (default): the primitive gets ``x = magic(log q(z)) = exp(log q -
  stop(log q))``, whose value is 1 and whose derivatives are those of DiCE (Foerster et al.,
  2018), and ``gx = (f(z) - b) / S`` left differentiable w.r.t. ``f``'s own parameters.
  Every order of derivative, mixed ones included (``d^2 / d theta d phi`` for a decoder
  ``phi``), is then an unbiased estimate of the matching derivative of ``E[f]`` (for a
  stopped baseline). For fxgx's Bernoulli and one-hot categorical latents ``log q`` is
  written ``z . theta - sum softplus(theta)`` (``- logsumexp`` for a categorical), linear in
  the stopped ``z``, and the magic box is ``framework.magic_box``, whose value (1) does not
  read ``log q``: a first-order gradient then costs what the hand-written closed form
  costs, ``sum_s w_s z_s - (sum_s w_s) sigmoid(theta)``, while the higher orders are
  unchanged (``fxgx.estimators.score_function``).
- ``higher_order=False``: for Bernoulli and one-hot categorical latents the primitive gets
  ``x = logits`` and the closed-form score, ``gx = sum_s (f(z_s) - b)/S (z_s - p)``, the
  hand-fused gradient with no ``log_prob`` pass (about twice as fast on CPU; the second
  derivative is then 0). Other distributions use ``x = log q(z)``.

``f`` is differentiated only w.r.t. what it closes over, never w.r.t. the samples, so an
``f`` that is not differentiable in ``z`` is fine.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.base import Estimator
from fxgx.estimators.sampling import draw_and_evaluate
from fxgx.estimators.score_function import (
    CLOSED_FORM_KINDS,
    closed_form_score_surrogate,
    dice_surrogate,
)


@dataclasses.dataclass(frozen=True)
class Reinforce(Estimator, card="reinforce"):
    """REINFORCE with a constant baseline (0 by default). See ``reinforce``.

    Attributes:
        baseline: the constant subtracted from ``f``.
        higher_order: use DiCE's magic box (every derivative order unbiased).
    """

    baseline: float = 0.0
    higher_order: bool = True

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        samples, values = draw_and_evaluate(framework, function, distribution, seed,
                                            num_samples)
        baseline = xp.asarray(self.baseline, dtype=values.dtype)
        if not self.higher_order and getattr(distribution, "kind", "") in CLOSED_FORM_KINDS:
            return closed_form_score_surrogate(
                framework, values, samples, distribution, baseline, num_samples
            )
        if self.higher_order:
            return dice_surrogate(framework, values, samples, distribution, baseline,
                                  num_samples)
        log_prob = distribution.log_prob(samples)
        weights = framework.stop_gradient((values - baseline) / num_samples)
        return with_gradient(framework, xp.mean(values, axis=0), weights, log_prob, axis=0,
                             fx_gx_manually_stopped=True)


def reinforce(baseline: float = 0.0, higher_order: bool = True) -> Reinforce:
    """The score-function estimator ``(f(z) - baseline) grad log q(z)``, averaged over samples.

    Works for any distribution with ``sample`` and ``log_prob``; unbiased for a constant
    ``baseline``. ``higher_order=True`` makes every derivative order unbiased (DiCE);
    ``False`` uses the closed-form score of Bernoulli/categorical logits, first order only.
    References: Williams (1992), "Simple statistical gradient-following algorithms for
    connectionist reinforcement learning"; Foerster et al. (2018), "DiCE".

    Args:
        baseline: a constant subtracted from ``f``.
        higher_order: DiCE's form (``True``) or the hand-fused first-order form
            (``False``).

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]``.

    Raises:
        TypeError: ``baseline`` is not a number or ``higher_order`` not a bool.
    """
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
        raise TypeError(f"baseline must be a number, got {baseline!r}.")
    if not isinstance(higher_order, bool):
        raise TypeError(f"higher_order must be True or False, got {higher_order!r}.")
    return Reinforce(baseline=float(baseline), higher_order=higher_order)
