"""The protocol each framework's trainer satisfies, and what it hands back to ``fxgx.vi.fit``.

``fit`` is written once: it splits the steps into blocks, draws the variance seeds, stacks
the traces and reports. The compiled loop is the framework's: ``fxgx.vi.fit_jax.Trainer``
(a ``lax.fori_loop`` under ``jax.jit``, optax) and ``fxgx.vi.fit_tensorflow.Trainer`` (a
``tf.while_loop`` in a ``tf.function``, Keras optimizers). Both satisfy ``Trainer``, which
``pyright src`` checks in each module (a typed identity at its end).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np


class StopReason(enum.IntEnum):
    """Why a block of steps stopped (an int inside the compiled loops)."""

    #: No step stopped the run: the block ran every step.
    RUNNING = 0
    #: A step's loss or gradient was not finite; that step was not applied.
    NON_FINITE = 1
    #: The convergence criterion was met at a step; that step was applied.
    CONVERGED = 2


class TraceableQuantities(NamedTuple):
    """What ``trace_fn`` receives at each step (TFP's name and fields)."""

    loss: Any  #: the loss at this step, before its update
    gradients: Any  #: its gradients, in the structure of the trained parameters
    parameters: Any  #: the parameters the loss was evaluated at (before the update)
    step: Any  #: the global step index (counting steps of resumed runs)


class Block(NamedTuple):
    """What a trainer's ``run_block`` returns (NumPy)."""

    losses: np.ndarray  #: [count]
    trace: object  #: pytree of [count, ...] arrays, or None
    stop_index: int  #: index in the block of the step that stopped the run, or -1
    stop_reason: StopReason  #: why the block stopped


class Trainer(Protocol):
    """One framework's compiled optimisation loop (see the module docstring)."""

    #: The optimizer (a Keras optimizer or an optax transformation).
    optimizer: Any
    #: The most steps one block may run (bounded by the trace buffers' memory).
    max_block_steps: int

    def run_block(self, first_step: int, count: int) -> Block:
        """Steps ``first_step .. first_step + count - 1`` (global indices) in one compiled
        loop; a step is applied only while the run has not stopped and its loss and
        gradients are finite."""
        ...

    def gradient_variance(self, seeds: Any) -> float:
        """The sum over coordinates of the sample variance (ddof 1) of independent gradient
        estimates, one per seed, at the current parameters."""
        ...

    def optimizer_state(self) -> Any:
        """The optimizer's state (JAX: the optax pytree; TF: the optimizer's variables)."""
        ...

    def final_parameters(self) -> Any:
        """The parameters after the last applied step."""
        ...

    def map_structure(self, function: Callable[..., Any], *trees: Any) -> Any:
        """``function`` applied leaf by leaf to trees of one structure (``jax.tree.map``,
        ``tf.nest.map_structure``)."""
        ...


def stack_trace(trainer: Trainer, blocks: list) -> Any:
    """The blocks' traces concatenated along steps (the first ``ran`` of each).

    Args:
        trainer: the trainer whose ``map_structure`` walks the trace's structure.
        blocks: ``(trace, ran)`` pairs, in order.

    Returns:
        The stacked trace, or None when there are no blocks.
    """
    if not blocks:
        return None
    return trainer.map_structure(
        lambda *leaves: np.concatenate([leaf[:ran] for leaf, (_, ran) in
                                        zip(leaves, blocks, strict=True)]),
        *[trace for trace, _ in blocks])
