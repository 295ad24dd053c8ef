"""Importance criteria: functions from weights (and gradients) to scores (pure torch).

The public path of :mod:`skprune._core.importance`, where the code lives.
"""

from ._core.importance import (
    IMPORTANCE_CRITERIA,
    RowScores,
    compute_scores,
    magnitude,
    resolve,
    score_by_rows,
    taylor,
)
from ._core.importance import needs_gradients as needs_gradients

__all__ = [
    "IMPORTANCE_CRITERIA",
    "RowScores",
    "compute_scores",
    "magnitude",
    "resolve",
    "score_by_rows",
    "taylor",
]
