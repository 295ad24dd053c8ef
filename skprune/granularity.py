"""What a pruning step removes: weights, hidden units or input features (pure torch).

The public path of :mod:`skprune._core.granularity`, where the code lives.
"""

from ._core.granularity import (
    GRANULARITIES,
    FeatureGranularity,
    Granularity,
    NeuronGranularity,
    WeightGranularity,
    make_granularity,
)

__all__ = [
    "GRANULARITIES",
    "FeatureGranularity",
    "Granularity",
    "NeuronGranularity",
    "WeightGranularity",
    "make_granularity",
]
