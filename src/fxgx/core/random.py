"""Noise built on a framework's stateless uniform draws, written once in the array API.

The frameworks draw on the grid ``k * eps`` in ``[0, 1)``. ``open_uniform`` adds half a step,
giving the grid ``(k + 1/2) * eps``: symmetric about 1/2 and never 0 or 1, so
``1[u < p]`` is never 1 for a probability that rounds below the grid, and logs of ``u`` and
``1 - u`` are finite.
"""

from __future__ import annotations


def open_uniform(framework, shape, seed, dtype):
    """Uniform draws strictly inside (0, 1)."""
    half_step = 0.5 * framework.xp.finfo(dtype).eps
    uniform = framework.uniform(shape, seed, dtype) + half_step
    # Half-precision draws are rounded from float32 and may land on 1: keep them inside.
    return framework.xp.minimum(uniform, 1.0 - half_step)


def logistic_noise(framework, shape, seed, dtype):
    """Standard logistic noise ``log u - log(1 - u)``, finite."""
    xp = framework.xp
    uniform = open_uniform(framework, shape, seed, dtype)
    return xp.log(uniform) - xp.log1p(-uniform)


def gumbel_noise(framework, shape, seed, dtype):
    """Standard Gumbel noise ``-log(-log u)``, finite."""
    xp = framework.xp
    uniform = open_uniform(framework, shape, seed, dtype)
    return -xp.log(-xp.log(uniform))
