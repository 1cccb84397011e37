"""Convergence criteria for ``fxgx.vi.fit``, evaluated inside the compiled loop at every step.

A criterion is an object with ``initial_state(zero)`` and ``update(state, loss, where) ->
(state, converged)``, written with arithmetic and comparisons only, so that the same code runs
on ``tf.Tensor`` and ``jax.Array`` (``where`` is ``tf.where`` or ``jnp.where``). Because it runs
in the loop, the step at which ``fit`` stops depends on the seed alone, not on how the loop is
cut into compiled blocks.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class LossNotDecreasing(NamedTuple):
    """Stop when the smoothed decrease of the loss is small, as TFP's criterion of that name.

    With ``d_t = loss_{t-1} - loss_t``, the average decrease is the exponential moving average
    ``a_1 = d_1``, ``a_t = a_{t-1} + (d_t - a_{t-1}) / window_size``; ``a_0`` is its value at
    step ``window_size`` (the initial rate of decrease). ``fit`` stops after step
    ``t >= max(min_num_steps, window_size)`` when ``a_t < atol`` or ``a_t < rtol * a_0``.
    Monte Carlo losses are noisy: a larger ``window_size`` smooths more.

    Attributes:
      atol: absolute tolerance on the average decrease (``None``: not used).
      rtol: tolerance relative to the initial average decrease (``None``: not used).
      window_size: the moving average's window, in steps.
      min_num_steps: never stop before this many steps.

    Raises:
      ValueError: from ``check`` (which ``fit`` calls): neither tolerance given, a negative
        or non-finite tolerance, or a ``window_size``/``min_num_steps`` below 1.
    """

    atol: float | None = None
    rtol: float | None = None
    window_size: int = 10
    min_num_steps: int = 20

    def check(self) -> LossNotDecreasing:
        """Validate the fields.

        Returns:
          ``self``, unchanged.

        Raises:
          ValueError: neither tolerance given, a tolerance that is not a finite number
            ``>= 0``, or a ``window_size``/``min_num_steps`` that is not an int ``>= 1``.
        """
        if self.atol is None and self.rtol is None:
            raise ValueError("LossNotDecreasing needs atol=, rtol= or both.")
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value < 0
            ):
                raise ValueError(f"LossNotDecreasing {name}={value!r} must be a finite number "
                                 ">= 0 or None.")
        for name in ("window_size", "min_num_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LossNotDecreasing {name}={value!r} must be an int >= 1.")
        return self

    def initial_state(self, zero):
        """The state before the first step.

        Args:
          zero: a scalar zero of the loss's dtype (a ``tf.Tensor`` or ``jax.Array``).

        Returns:
          ``(previous_loss, average_decrease, initial_average_decrease, losses_seen)``, all
          ``zero``.
        """
        return (zero, zero, zero, zero)

    def update(self, state, loss, where):
        """One step: the new state and whether the loss has stopped decreasing.

        Args:
          state: the state from ``initial_state`` or the previous ``update``.
          loss: this step's scalar loss, of the state's dtype.
          where: ``tf.where`` or ``jnp.where``, the framework's elementwise select.

        Returns:
          ``(state, converged)``: the new state, and a scalar boolean that is true when
          ``fit`` should stop after this step.
        """
        previous, average, initial, seen = state
        decrease = previous - loss
        smoothed = where(seen < 1.5, decrease, average + (decrease - average) / self.window_size)
        average = where(seen < 0.5, average, smoothed)
        initial = where(abs(seen - self.window_size) < 0.5, average, initial)
        stopped = loss != loss  # a False of the right kind; never True for a finite loss
        if self.atol is not None:
            stopped = stopped | (average < self.atol)
        if self.rtol is not None:
            stopped = stopped | (average < self.rtol * initial)
        enough = (seen + 1 >= self.min_num_steps) & (seen >= self.window_size)
        return (loss, average, initial, seen + 1), enough & stopped
