"""A problem: a distribution family, a function ``f``, and the exact value and gradient of
``E_{z ~ q_theta}[f(z)]`` at one parameter value ``theta``.

Problems are backend-agnostic: ``parameters(backend, dtype)`` makes the parameter arrays on
a backend, ``bind(*parameters)`` gives ``q_theta`` and ``f`` at those parameters (with any
leading batch dimensions the caller adds to them; ``f`` may close over parameters of its
own), and ``f`` is written with backend-neutral operations. ``exact_gradient()`` is a flat
float64 NumPy vector, one entry per parameter element, in the order of ``parameters``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fxgx.backends import get_backend


class Problem:
    """Base class. Subclasses set ``name`` and implement the methods below."""

    name = "problem"
    #: distribution kind: "bernoulli", "categorical" or "normal".
    kind = "bernoulli"

    def parameter_values(self) -> list[np.ndarray]:
        """The parameter values ``theta`` as float64 NumPy arrays."""
        raise NotImplementedError

    def parameters(self, backend, dtype) -> list:
        return [backend.convert(value, dtype) for value in self.parameter_values()]

    def distribution(self, *parameters):
        raise NotImplementedError

    def bind(self, *parameters):
        """``(distribution, function)`` at ``parameters`` (each with any leading batch
        dimensions): ``q_theta`` and ``f``. Problems whose ``f`` has parameters of its own (a
        decoder) close ``f`` over them here; by default every parameter is ``q``'s."""
        return self.distribution(*parameters), self.function

    def function(self, samples):
        raise NotImplementedError

    def exact_value(self) -> float:
        raise NotImplementedError

    def exact_gradient(self) -> np.ndarray:
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
        return int(sum(np.size(value) for value in self.parameter_values()))

    def describe(self) -> str:
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
        backend = get_backend(samples)
        dtype = backend.dtype_of(samples)
        return self._function(samples, *(backend.convert(value, dtype)
                                         for value in self.function_parameters))
