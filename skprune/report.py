"""Per-layer counts, sparsity and operations of a pruned network (pure torch).

The public path of :mod:`skprune._core.report`, where the code lives.
"""

from ._core.report import (
    Summary,
    flops,
    kept_inputs,
    pruning_report,
    summarize,
)

__all__ = [
    "Summary",
    "flops",
    "kept_inputs",
    "pruning_report",
    "summarize",
]
