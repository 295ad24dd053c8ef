""":class:`LazyAdam`, Adam with lazy row-sparse steps.

The public path of :mod:`skprune._nn.optim`, where the code lives.
"""

from ._nn.optim import (
    LazyAdam,
)

__all__ = [
    "LazyAdam",
]
