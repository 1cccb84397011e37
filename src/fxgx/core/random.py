"""Backend-neutral noise built on the backends' stateless uniform draws.

The backends draw on the grid ``k * eps`` in ``[0, 1)``. ``open_uniform`` adds half a step,
giving the grid ``(k + 1/2) * eps``: symmetric about 1/2 and never 0 or 1, so
``1[u < p]`` is never 1 for a probability that rounds below the grid, and logs of ``u`` and
``1 - u`` are finite.
"""

from __future__ import annotations


def open_uniform(backend, shape, seed, dtype):
    """Uniform draws strictly inside (0, 1)."""
    half_step = 0.5 * backend.finfo_eps(dtype)
    uniform = backend.uniform(shape, seed, dtype) + half_step
    # Half-precision draws are rounded from float32 and may land on 1: keep them inside.
    return backend.minimum(uniform, 1.0 - half_step)


def logistic_noise(backend, shape, seed, dtype):
    """Standard logistic noise ``log u - log(1 - u)``, finite."""
    uniform = open_uniform(backend, shape, seed, dtype)
    return backend.log(uniform) - backend.log1p(-uniform)


def gumbel_noise(backend, shape, seed, dtype):
    """Standard Gumbel noise ``-log(-log u)``, finite."""
    uniform = open_uniform(backend, shape, seed, dtype)
    return -backend.log(-backend.log(uniform))
