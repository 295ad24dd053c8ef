"""Per-sample weighted training losses.

The public path of :mod:`skprune._nn.losses`, where the code lives.
"""

from ._nn.losses import (
    WeightedLoss,
    unweighted_loss,
)

__all__ = [
    "WeightedLoss",
    "unweighted_loss",
]
