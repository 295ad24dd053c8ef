"""Which weights are kept: prunable layers, mask selection, masking (pure torch).

The public path of :mod:`skprune._core.masks`, where the code lives.
"""

from ._core.masks import (
    PrunableLayer,
    apply_masks,
    find_prunable_layers,
    mask_sparse_gradient,
    reachable_ratio,
    select_masks,
)
from ._core.masks import matching_names as matching_names

__all__ = [
    "PrunableLayer",
    "apply_masks",
    "find_prunable_layers",
    "mask_sparse_gradient",
    "reachable_ratio",
    "select_masks",
]
