"""The Bernoulli toy of REBAR/RELAX: ``E_{b ~ Bernoulli(sigmoid(theta))}[(b - t)^2]``.

With ``p = sigmoid(theta)``: ``E = p (1 - t)^2 + (1 - p) t^2`` and
``dE/dtheta = p (1 - p) (1 - 2 t)``. At ``t = 0.499`` the gradient is tiny next to the
noise of REINFORCE, which is what made it the standard stress test (Tucker et al., 2017;
Grathwohl et al., 2018). ``theta`` may be a vector: each coordinate is its own toy and
``f`` sums them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fxgx.backends import array_namespace
from fxgx.distributions import Bernoulli
from fxgx.problems.base import Problem


class BernoulliToy(Problem):
    """``E_{b ~ Bernoulli(sigmoid(theta))}[(b - t)^2]`` with its exact value and gradient
    ``p (1 - p) (1 - 2 t)``, ``p = sigmoid(theta)`` (Tucker et al., 2017).

    Args:
        target: ``t``, in ``[0, 1]``.
        logits: ``theta``, a number or a vector (each coordinate its own toy; ``f`` sums
            them).
        detectable_fraction: the bias, relative to the root-mean-square exact gradient, that
            tests on this problem must be able to detect (``Problem.detectable_bias``).

    Raises:
        ValueError: ``target`` is outside ``[0, 1]`` or ``detectable_fraction`` is not
            positive.
    """

    kind = "bernoulli"

    def __init__(self, target: float = 0.45, logits: ArrayLike = 0.0, *,
                 detectable_fraction: float = 0.25):
        if not 0.0 < float(detectable_fraction):
            raise ValueError(f"detectable_fraction={detectable_fraction} must be positive.")
        self.detectable_fraction = float(detectable_fraction)
        if not 0.0 <= float(target) <= 1.0:
            raise ValueError(f"target={target} must lie in [0, 1].")
        self.target = float(target)
        self.logits = np.asarray(logits, dtype=np.float64)
        self.name = f"bernoulli_toy(t={self.target:g}, theta={np.array2string(self.logits)})"

    def parameter_values(self):
        """``[theta]``.

        Returns:
            The logits as a float64 array, in a list.
        """
        return [self.logits]

    def distribution(self, logits):
        """``Bernoulli(logits)``, one event of all coordinates.

        Args:
            logits: ``theta``, with any leading batch dimensions.

        Returns:
            A ``Bernoulli``.
        """
        return Bernoulli(logits, event_ndims=self.logits.ndim)

    def function(self, samples):
        """``sum_d (b_d - t)^2``.

        Args:
            samples: 0/1 samples.

        Returns:
            ``(b - t)^2``, summed over the coordinates of a vector ``theta``.
        """
        xp = array_namespace(samples)
        squared = xp.square(samples - self.target)
        if self.logits.ndim == 0:
            return squared
        return xp.sum(squared, axis=tuple(range(-self.logits.ndim, 0)))

    def _probabilities(self):
        """``(p, 1 - p)``, each computed as a sigmoid so neither rounds to 0 early."""
        return np.exp(-np.logaddexp(0.0, -self.logits)), np.exp(-np.logaddexp(0.0, self.logits))

    def exact_value(self) -> float:
        """``sum_d p_d (1 - t)^2 + (1 - p_d) t^2``.

        Returns:
            A float.
        """
        p, complement = self._probabilities()
        return float(np.sum(p * (1 - self.target) ** 2 + complement * self.target**2))

    def exact_gradient(self) -> np.ndarray:
        """``p (1 - p) (1 - 2 t)`` per coordinate.

        Returns:
            A float64 array of ``theta``'s size.
        """
        p, complement = self._probabilities()
        return np.ravel(p * complement * (1 - 2 * self.target)).astype(np.float64)
