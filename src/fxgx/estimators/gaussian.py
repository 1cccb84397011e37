"""What the Gaussian estimators share: the layout of a normal ``q`` and their surrogate.

For ``z ~ N(mu, diag sigma^2)`` (fxgx's ``Normal``, or TFP's converted to it) fxgx has three
estimators of ``grad_{mu, sigma} E[f(z)]`` beyond the score function, after Mohamed, Rosca,
Figurnov & Mnih (2020), "Monte Carlo gradient estimation in machine learning", JMLR 21
(sections 5, 6 and 7.2), each in the module of its card: ``fxgx.estimators.pathwise`` (the
reparameterisation), ``measure_valued`` (weak derivatives, coupled) and
``delta_method_control_variate`` (the second-order Taylor expansion as control variate).

Each passes the gradient for what ``f`` closes over unbiasedly: pathwise by autodiff; the
other two through the surrogate's value ``mean_s f(z_s)`` (samples stopped), as REINFORCE
does. The estimators treat batch members independently: ``f`` must not mix them.
"""

from __future__ import annotations

import dataclasses
import math

from fxgx.core.arrays import expand_trailing, one_hot, sum_trailing
from fxgx.core.custom_gradient import with_gradient

SQRT_TWO_PI = math.sqrt(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class NormalLayout:
    """Shapes of a normal ``q``: ``batch + event`` and how many trailing axes are the event."""

    batch_shape: tuple
    event_shape: tuple

    @property
    def shape(self) -> tuple:
        """``batch_shape + event_shape``."""
        return self.batch_shape + self.event_shape

    @property
    def event_size(self) -> int:
        """The number of coordinates of one event."""
        return int(math.prod(self.event_shape))

    @property
    def event_axes(self) -> tuple:
        """The event's axes of a parameter (``batch + event``)."""
        rank = len(self.shape)
        return tuple(range(rank - len(self.event_shape), rank))

    def sum_event(self, xp, values):
        """``values`` summed over the event axes (the trailing ``len(event_shape)`` ones)."""
        return sum_trailing(xp, values, len(self.event_shape))

    def expand_event(self, xp, values):
        """``values`` of shape ``... + batch`` with size-1 event axes appended."""
        return expand_trailing(xp, values, len(self.event_shape))

    def event_basis(self, xp, dtype, leading: int = 0):
        """The ``E = prod(event_shape)`` unit vectors of the event, shape ``[E] + [1] *
        (leading + batch rank) + event_shape``: row ``k`` is 1 at the ``k``-th event
        coordinate."""
        size = self.event_size
        rows = one_hot(xp, xp.arange(size, dtype=xp.int32), size, dtype)
        ones = (1,) * (leading + len(self.batch_shape))
        return xp.reshape(rows, (size,) + ones + self.event_shape)


def normal_layout(distribution) -> NormalLayout:
    """The layout of a normal distribution with static shapes.

    Args:
        distribution: fxgx's ``Normal`` (TFP's is converted to it).

    Returns:
        Its ``NormalLayout``.

    Raises:
        ValueError: a dimension is not static.
    """
    shape = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
    if any(size is None for size in shape):
        raise ValueError(
            f"distribution has shape {shape}; the Gaussian estimators need a static batch and "
            "event shape."
        )
    return NormalLayout(tuple(distribution.batch_shape), tuple(distribution.event_shape))


def broadcast_parameters(framework, distribution, layout):
    """``loc`` and ``scale`` broadcast to ``batch + event`` (still differentiable)."""
    xp = framework.xp
    return (xp.broadcast_to(distribution.loc, layout.shape),
            xp.broadcast_to(distribution.scale, layout.shape))


def gaussian_surrogate(framework, values, gradients, parameters, layout):
    """``mean_s values`` whose gradient w.r.t. ``(loc, scale)`` is ``gradients`` (stopped)
    and w.r.t. what ``values`` depend on (``f``'s own parameters) is ``mean_s grad values``."""
    stopped = tuple(framework.stop_gradient(gradient) for gradient in gradients)
    return with_gradient(framework, framework.xp.mean(values, axis=0), stopped,
                         tuple(parameters), axis=layout.event_axes,
                         fx_gx_manually_stopped=True)
