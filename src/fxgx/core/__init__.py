"""Core: the ``custom_gradient`` primitive, seeds and structure helpers."""

from fxgx.core.custom_gradient import custom_gradient
from fxgx.core.seeds import canonical_seed, split_seed

__all__ = ["canonical_seed", "custom_gradient", "split_seed"]
