"""When pruning steps happen: one-shot, iterative and gradual schedules.

The public path of :mod:`skprune._core.schedules`, where the code lives.
"""

from ._core.schedules import (
    SCHEDULES,
    PruningStep,
    make_schedule,
    total_epochs,
)

__all__ = [
    "SCHEDULES",
    "PruningStep",
    "make_schedule",
    "total_epochs",
]
