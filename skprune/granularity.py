"""What a pruning step removes: weights, blocks, units or features (pure torch).

The public path of :mod:`skprune._core.granularity`, where the code lives.
"""

from ._core.granularity import (
    DEFAULT_BLOCK_SIZE,
    GRANULARITIES,
    BlockGranularity,
    FeatureGranularity,
    Granularity,
    NeuronGranularity,
    WeightGranularity,
    make_granularity,
)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "GRANULARITIES",
    "BlockGranularity",
    "FeatureGranularity",
    "Granularity",
    "NeuronGranularity",
    "WeightGranularity",
    "make_granularity",
]
