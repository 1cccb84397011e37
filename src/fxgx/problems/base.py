"""A problem: a distribution family, a function ``f``, and the exact value and gradient of
``E_{z ~ q_theta}[f(z)]`` at one parameter value ``theta``.

Problems do not depend on a framework: ``parameters(framework, dtype)`` makes the parameter
arrays on a framework, ``bind(*parameters)`` gives ``q_theta`` and ``f`` at those parameters
(with any leading batch dimensions the caller adds to them; ``f`` may close over parameters
of its own), and ``f`` is written once in the array API standard, on the namespace of its
samples (``fxgx.backends.array_namespace``). ``exact_gradient()`` is a flat
float64 NumPy vector, one entry per parameter element, in the order of ``parameters``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fxgx.backends import array_namespace
from fxgx.core.arrays import as_dtype


class Problem:
    """Base class. Subclasses set ``name`` and implement the methods below."""

    name = "problem"
    #: distribution kind: "bernoulli", "categorical" or "normal".
    kind = "bernoulli"

    def parameter_values(self) -> list[np.ndarray]:
        """The parameter values ``theta`` at which the exact answers hold.

        Returns:
            A list of float64 NumPy arrays.
        """
        raise NotImplementedError

    def parameters(self, framework, dtype) -> list:
        """The parameter values as arrays of a framework.

        Args:
            framework: an fxgx framework (``fxgx.backends.framework_by_name("jax")``).
            dtype: the floating dtype, e.g. ``"float32"``.

        Returns:
            A list of the framework's arrays.
        """
        xp = framework.xp
        dtype = as_dtype(xp, dtype)
        return [xp.asarray(value, dtype=dtype) for value in self.parameter_values()]

    def distribution(self, *parameters):
        """``q_theta`` at the given parameters.

        Args:
            *parameters: the parameters, each with any leading batch dimensions.

        Returns:
            An fxgx distribution.
        """
        raise NotImplementedError

    def bind(self, *parameters):
        """``q_theta`` and ``f`` at ``parameters``.

        Problems whose ``f`` has parameters of its own (a decoder) close ``f`` over them here; by
        default every parameter is ``q``'s.

        Args:
            *parameters: the parameters, each with any leading batch dimensions.

        Returns:
            ``(distribution, function)``.
        """
        return self.distribution(*parameters), self.function

    def function(self, samples):
        """``f``, evaluated on a batch of samples.

        Args:
            samples: ``sample_shape + batch_shape + event_shape`` samples of ``q``.

        Returns:
            ``f`` per sample, shape ``sample_shape + batch_shape``.
        """
        raise NotImplementedError

    def exact_value(self) -> float:
        """The exact ``E_q[f]``.

        Returns:
            A float.
        """
        raise NotImplementedError

    def exact_gradient(self) -> np.ndarray:
        """The exact gradient of ``E_q[f]`` w.r.t. every parameter, flattened and concatenated.

        Returns:
            A float64 NumPy array of ``num_coordinates`` entries.
        """
        raise NotImplementedError

    #: ``detectable_bias`` as a fraction of the root-mean-square exact gradient.
    detectable_fraction = 0.25

    @property
    def detectable_bias(self) -> float:
        """The absolute bias a test on this problem must be able to detect (power 0.99):
        ``detectable_fraction`` (a quarter by default) of the root-mean-square exact
        gradient."""
        return self.detectable_fraction * float(np.sqrt(np.mean(self.exact_gradient() ** 2)))

    @property
    def num_coordinates(self) -> int:
        """The number of gradient coordinates (all parameters' elements)."""
        return int(sum(np.size(value) for value in self.parameter_values()))

    def describe(self) -> str:
        """A one-line description for reports.

        Returns:
            The problem's name.
        """
        return self.name


class FunctionParameters:
    """Mixin for problems whose ``f(z, *phi)`` has parameters of its own (a decoder's
    weights): the parameters are ``[logits, *phi]`` and ``bind`` closes ``f`` over ``phi``.

    Expects ``self.logits``, ``self.function_parameters`` (NumPy arrays), ``self._function``
    and ``self.distribution(logits)``.
    """

    # Declared for the type checker only (no values: the class using the mixin sets them).
    logits: np.ndarray
    function_parameters: list
    _function: Callable[..., Any]
    distribution: Callable[..., Any]

    def parameter_values(self):
        return [self.logits, *self.function_parameters]

    def bind(self, logits, *function_parameters):
        def function(samples):
            return self._function(samples, *function_parameters)

        return self.distribution(logits), function

    def function(self, samples):
        """``f`` with the problem's own values of its parameters (if any)."""
        if not self.function_parameters:
            return self._function(samples)
        xp = array_namespace(samples)
        dtype = samples.dtype
        return self._function(samples, *(xp.asarray(value, dtype=dtype)
                                         for value in self.function_parameters))
