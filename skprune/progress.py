"""The skorch callback that prints one line per dense epoch and per pruning round.

The public path of :mod:`skprune.callbacks.progress`, where the code lives.
"""

from .callbacks.progress import (
    PruningProgress,
    format_round,
)

__all__ = [
    "PruningProgress",
    "format_round",
]
