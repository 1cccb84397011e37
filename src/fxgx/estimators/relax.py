"""RELAX: REBAR's unbiased control-variate scheme with a learned control variate.

    g = [f(b) - c_phi(z~)] grad log q(b) + grad c_phi(z) - grad c_phi(z~)

with ``b = H(z)``, ``z`` the logistic (Bernoulli) or Gumbel (categorical) perturbed logits and
``z~ ~ p(z | b)`` the conditional relaxed sample (see ``fxgx.estimators.rebar``). It is
unbiased for every differentiable ``c_phi``, so ``phi`` is trained to minimise ``E[|g|^2]``
(``info["variance_loss"]`` of ``apply``, or ``variance_loss``), whose gradient equals that
of ``Var(g)``. Following Grathwohl et al.
(2018, section 3.3), fxgx's control variate is

    c_phi(z) = eta f(s_lambda(z)) + r(z, parameters)

a scaled REBAR term plus the user's residual ``r``; ``scale = 0`` drops the REBAR term (and
with it the need for a differentiable ``f``). ``r`` receives the parameters given at call
time (``control_variate_parameters=``), so under JAX they can be traced and differentiated.

Reference: Grathwohl, Choi, Wu, Roeder & Duvenaud (2018), "Backpropagation through the void:
Optimizing control variates for black-box gradient estimation", ICLR.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fxgx.core.arrays import shape_of
from fxgx.estimators.base import Estimator, call_option
from fxgx.estimators.control_variates import check_control_variate_parameters, control_values
from fxgx.estimators.hyperparameters import as_hyperparameter, finite, positive, unchecked
from fxgx.estimators.relaxations import control_variate_surrogate, relax_sample, relaxed_latents
from fxgx.estimators.sampling import evaluate
from fxgx.estimators.variance_objective import VarianceObjective


@dataclasses.dataclass(frozen=True)
class Relax(VarianceObjective, Estimator, card="relax"):
    """RELAX for Bernoulli and categorical latents. See ``relax``.

    Explicit state: the state is ``()`` (the control variate's parameters are trainable, so
    they are passed per call or closed over, not carried as state), and
    ``surrogate, (), info = est.apply((), f, q, seed=, num_samples=,
    control_variate_parameters=...)`` returns the loss that trains them as
    ``info["variance_loss"]``. Per-call options: ``temperature``, ``scale`` and
    ``control_variate_parameters``.

    Attributes:
        control_variate: the residual ``r(z, parameters)`` added to the relaxed-``f`` term,
            or ``None`` for none (then RELAX equals REBAR).
        temperature: ``lambda > 0`` of the relaxation ``s``.
        scale: ``eta``, the weight of the relaxed-``f`` term; 0 drops it.
        control_variate_parameters: the ``parameters`` handed to ``control_variate``; set
            per call (``control_variate_parameters=``), ``None`` by default.
    """

    control_variate: Callable | None = None
    temperature: object = call_option(0.5, positive)
    scale: object = call_option(1.0, finite)
    control_variate_parameters: object = call_option(None, unchecked)

    def __post_init__(self):
        check_control_variate_parameters(self, "relax")

    def _uses_relaxed_function(self) -> bool:
        return not (isinstance(self.scale, float) and self.scale == 0.0)

    def _estimate(self, framework, function, distribution, seed, num_samples):
        latents = relaxed_latents(framework, distribution, seed, num_samples)
        logits_shape = shape_of(distribution.logits)
        dtype = distribution.logits.dtype
        values = evaluate(framework, function, latents.samples, distribution, num_samples)
        relaxed_term = self._uses_relaxed_function()
        if not relaxed_term and self.control_variate is None:
            return control_variate_surrogate(framework, distribution, values, latents, None,
                                             num_samples)
        temperature = as_hyperparameter(framework, self.temperature, dtype, logits_shape,
                                        "temperature")
        scale = as_hyperparameter(framework, self.scale, dtype, distribution.batch_shape,
                                  "scale", target="the batch")
        batch_shape = distribution.batch_shape

        def control_variate(perturbed):
            total = None
            if relaxed_term:
                relaxed = relax_sample(framework, distribution.kind, perturbed, temperature)
                total = scale * evaluate(framework, function, relaxed, distribution,
                                         num_samples)
            if self.control_variate is not None:
                residual = control_values(
                    framework, self.control_variate(perturbed, self.control_variate_parameters),
                    num_samples, batch_shape, dtype, "control_variate")
                total = residual if total is None else total + residual
            return total

        return control_variate_surrogate(framework, distribution, values, latents,
                                         control_variate, num_samples)


def relax(control_variate: Callable | None = None, *, temperature=0.5, scale=1.0) -> Relax:
    """RELAX with ``c(z) = scale * f(s(z / temperature)) + control_variate(z, parameters)``.

    Unbiased for any control variate; train it on ``info["variance_loss"]`` from
    ``est.apply`` (or on ``est.variance_loss(...)``). Reference: Grathwohl et al. (2018),
    ICLR.

    Args:
        control_variate: the residual ``r(z, parameters)``, mapping perturbed logits ``z``
            (shape ``[S] + logits.shape``) to ``[S] + batch_shape``; ``parameters`` are those
            passed at call time (``control_variate_parameters=``, default ``None``).
            ``None`` means no residual (then RELAX equals REBAR).
        temperature: ``lambda > 0`` of the relaxation ``s``.
        scale: ``eta``; 0 drops the relaxed-``f`` term, so ``f`` may be non-differentiable.

    Returns:
        A :class:`Relax`.

    Raises:
        TypeError: ``control_variate`` is not callable.
        ValueError: ``temperature`` is not positive or ``scale`` is not finite.
    """
    if control_variate is not None and not callable(control_variate):
        raise TypeError(
            "control_variate must be a callable control_variate(z, parameters) -> values, got "
            f"{control_variate!r}."
        )
    return Relax(control_variate=control_variate,
                 temperature=positive(temperature, "temperature"),
                 scale=finite(scale, "scale"))
