"""Physically remove what pruning zeroed: smaller modules and compact inference models.

Masks alone make a network sparse, not smaller or faster. Here:

- :func:`structure_to_keep` and :func:`shrink_mlp_` (``_shrink``): the input
  features and hidden units of an MLP that still do something, and removing
  the others in place during training;
- :func:`compact_mlp` and :class:`CompactMLP` (``_compact``): a trained module
  as numpy, scipy and compiled loops (torch's ``embedding_bag`` for a dense
  first layer on sparse input), float32 or int8 with per-row scales;
- :class:`~skprune.CompressedClassifier` and :class:`~skprune.CompressedRegressor`
  (``_estimators``): what ``compress()`` returns, prediction-only estimators
  around a :class:`CompactMLP`.
"""

from ._compact import DTYPES, LAYOUTS, CompactMLP, choose_layouts, compact_mlp
from ._estimators import CompressedClassifier, CompressedRegressor
from ._shrink import shrink_mlp_, structure_to_keep

__all__ = [
    "DTYPES",
    "LAYOUTS",
    "CompactMLP",
    "CompressedClassifier",
    "CompressedRegressor",
    "choose_layouts",
    "compact_mlp",
    "shrink_mlp_",
    "structure_to_keep",
]
