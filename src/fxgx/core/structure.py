"""Nested list/tuple helpers (fxgx needs no dm-tree/optree for its tiny structures)."""

from __future__ import annotations


def flatten(value) -> list:
    """Leaves of a nested list/tuple, depth first."""
    if isinstance(value, (list, tuple)):
        leaves = []
        for item in value:
            leaves.extend(flatten(item))
        return leaves
    return [value]


def structure_of(value):
    """A hashable description of the nesting, used to compare structures."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(structure_of(item) for item in value))
    return "*"


def describe(value) -> str:
    structure = structure_of(value)
    return "a single tensor" if structure == "*" else f"structure {structure}"
