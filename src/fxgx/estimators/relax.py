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

from fxgx.estimators.base import Estimator, evaluate
from fxgx.estimators.hyperparameters import as_hyperparameter, finite, positive
from fxgx.estimators.rebar import (
    VarianceObjectiveMixin,
    check_control_values,
    control_variate_surrogate,
    relax_sample,
    relaxed_latents,
)


@dataclasses.dataclass(frozen=True)
class Relax(VarianceObjectiveMixin, Estimator):
    """RELAX for Bernoulli and categorical latents. See ``relax``.

    Explicit state: the state is ``()`` (the control variate's parameters are trainable, so
    they are passed per call or closed over, not carried as state), and
    ``surrogate, (), info = est.apply((), f, q, seed=, num_samples=,
    control_variate_parameters=...)`` returns the loss that trains them as
    ``info["variance_loss"]``.

    Attributes:
        control_variate: the residual ``r(z, parameters)`` added to the relaxed-``f`` term,
            or ``None`` for none (then RELAX equals REBAR).
        temperature: ``lambda > 0`` of the relaxation ``s``.
        scale: ``eta``, the weight of the relaxed-``f`` term; 0 drops it.
        control_variate_parameters: the ``parameters`` handed to ``control_variate``; set
            per call (``control_variate_parameters=``), ``None`` by default.
    """

    control_variate: Callable | None = None
    temperature: object = 0.5
    scale: object = 1.0
    control_variate_parameters: object = None
    name = "relax"
    supports = ("bernoulli", "categorical")

    def __call__(self, function, distribution, *, seed, num_samples: int = 1,
                 chunk_size=None, devices=None,
                 temperature=None, scale=None, control_variate_parameters=None):
        """The surrogate of ``E[f]`` (see ``Estimator.__call__``).

        Args:
            function: ``f``; differentiable unless ``scale`` is 0.
            distribution: a Bernoulli or one-hot categorical ``q``.
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S``.
            chunk_size: stream the estimate in chunks (see ``Estimator.__call__``).
            devices: spread the chunks over devices (see ``Estimator.__call__``).
            temperature: overrides the estimator's for this call (a trainable tensor).
            scale: overrides the estimator's for this call (a trainable tensor).
            control_variate_parameters: handed to the residual
                ``control_variate(z, parameters)`` (traced and differentiated under JAX).

        Returns:
            The surrogate, of the distribution's batch shape.

        Raises:
            ValueError: ``control_variate_parameters`` were given without a control
                variate, or a hyper-parameter or ``f`` is invalid.
            TypeError: as for any estimator.
        """
        estimator = self.with_call_options(
            temperature=temperature, scale=scale,
            control_variate_parameters=control_variate_parameters)
        return Estimator.__call__(estimator, function, distribution, seed=seed,
                                  num_samples=num_samples, chunk_size=chunk_size,
                                  devices=devices)

    def with_call_options(self, temperature=None, scale=None, control_variate_parameters=None):
        """A copy with the per-call options applied.

        Args:
            temperature: a new temperature, or ``None`` to keep the estimator's.
            scale: a new scale, or ``None`` to keep the estimator's.
            control_variate_parameters: the residual's parameters, or ``None``.

        Returns:
            A :class:`Relax`.

        Raises:
            ValueError: ``control_variate_parameters`` without a ``control_variate``.
        """
        estimator = self.with_overrides(temperature, scale)
        if control_variate_parameters is not None:
            if self.control_variate is None:
                raise ValueError(
                    "control_variate_parameters were given but this RELAX estimator has no "
                    "control_variate; make it with relax(control_variate=...)."
                )
            estimator = dataclasses.replace(
                estimator, control_variate_parameters=control_variate_parameters)
        return estimator

    def _uses_relaxed_function(self) -> bool:
        return not (isinstance(self.scale, float) and self.scale == 0.0)

    def _estimate(self, function, distribution, backend, seed, num_samples):
        latents = relaxed_latents(distribution, backend, seed, num_samples)
        logits_shape = backend.shape_of(distribution.logits)
        dtype = backend.dtype_of(distribution.logits)
        values = evaluate(function, latents.samples, distribution, backend, num_samples)
        relaxed_term = self._uses_relaxed_function()
        if not relaxed_term and self.control_variate is None:
            return control_variate_surrogate(backend, distribution, values, latents, None,
                                             num_samples)
        temperature = as_hyperparameter(backend, self.temperature, dtype, logits_shape,
                                        "temperature")
        scale = as_hyperparameter(backend, self.scale, dtype, distribution.batch_shape, "scale",
                                  target="the batch")
        batch_shape = distribution.batch_shape

        def control_variate(perturbed):
            total = None
            if relaxed_term:
                relaxed = relax_sample(backend, distribution.kind, perturbed, temperature)
                total = scale * evaluate(function, relaxed, distribution, backend, num_samples)
            if self.control_variate is not None:
                residual = self.control_variate(perturbed, self.control_variate_parameters)
                if not backend.is_array(residual):
                    residual = backend.convert(residual, dtype)
                residual = check_control_values(backend, residual, num_samples, batch_shape,
                                                "control_variate")
                if backend.dtype_of(residual) != dtype:
                    residual = backend.cast(residual, dtype)
                total = residual if total is None else total + residual
            return total

        return control_variate_surrogate(backend, distribution, values, latents,
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
