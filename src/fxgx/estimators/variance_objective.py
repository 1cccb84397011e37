"""The variance objective of estimators with trainable control variates.

REBAR, RELAX, RODEO and the double control variate are unbiased for every setting of their
control variate's parameters ``phi`` (a temperature, a scale, a surrogate's weights). Since
``E[g] = grad E[f]`` does not depend on ``phi``, ``d Var(g) / d phi = d E[|g|^2] / d phi``:
minimising ``|g|^2`` w.r.t. ``phi`` minimises the variance (Tucker et al., 2017; Grathwohl et
al., 2018). ``VarianceObjective`` gives such an estimator ``gradient_estimate``,
``variance_loss`` and the ``apply`` whose ``info["variance_loss"]`` is that loss.

The parameters are trainable, so they are not estimator state: they are given at
construction or passed per call (``call_option`` fields) and trained by the user's
optimizer. The state is ``()``.
"""

from __future__ import annotations

from fxgx.distributions import Bernoulli, OneHotCategorical
from fxgx.estimators.base import Estimator


class VarianceObjective(Estimator):
    """``gradient_estimate``, ``variance_loss`` and ``info["variance_loss"]`` (see the
    module docstring); a mixin for estimator dataclasses."""

    def _apply(self, state, call, with_info):
        """The surrogate; with ``with_info``, ``info["variance_loss"]`` equals
        ``variance_loss(...)`` with the same arguments (the same samples). It costs one more
        pass (the estimate ``g`` is differentiated w.r.t. the logits), which a plain call
        does not make."""
        surrogate = self._estimate(call.framework, call.function, call.distribution,
                                   call.seed, call.num_samples)
        info = {}
        if with_info:
            info["variance_loss"] = self.variance_loss(call.function, call.distribution,
                                                       seed=call.seed,
                                                       num_samples=call.num_samples)
        return surrogate, () if state is None else state, info

    def gradient_estimate(self, function, distribution, *, seed, num_samples: int | None = None,
                          **options):
        """The estimate ``g`` of ``grad E[f]`` w.r.t. the logits.

        Args:
            function: ``f``.
            distribution: a Bernoulli or one-hot categorical ``q``.
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S`` (default ``minimum_samples``).
            **options: the estimator's per-call options, as in a call.

        Returns:
            ``g``, of the logits' shape, differentiable w.r.t. the control variate's
            parameters (temperature, scale, ``control_variate_parameters``).

        Raises:
            TypeError: ``distribution`` is not a Bernoulli or one-hot categorical one.
        """
        return self._framework_and_gradient(function, distribution, seed, num_samples,
                                            options)[1]

    def variance_loss(self, function, distribution, *, seed, num_samples: int | None = None,
                      **options):
        """``sum(g^2)`` over every logit: minimise it w.r.t. the control variate's
        parameters (only those: its gradient w.r.t. the model is not a useful signal).

        Args:
            function: ``f``.
            distribution: a Bernoulli or one-hot categorical ``q``.
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S`` (default ``minimum_samples``).
            **options: the estimator's per-call options, as in a call.

        Returns:
            The scalar loss.
        """
        framework, gradient = self._framework_and_gradient(function, distribution, seed,
                                                           num_samples, options)
        return framework.xp.sum(framework.xp.square(gradient))

    def _framework_and_gradient(self, function, distribution, seed, num_samples, options):
        checked = self._check_distribution(distribution)
        if not isinstance(checked, (Bernoulli, OneHotCategorical)):
            raise TypeError(f"{self.name} needs a Bernoulli or OneHotCategorical distribution.")
        rebuild = Bernoulli if checked.kind == "bernoulli" else OneHotCategorical

        def surrogate(logits):
            return self(function, rebuild(logits, event_ndims=checked.event_ndims), seed=seed,
                        num_samples=num_samples, **options)

        _, (gradient,) = checked.framework.value_and_gradient(surrogate, [checked.logits])
        return checked.framework, gradient
