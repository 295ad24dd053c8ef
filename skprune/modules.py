"""torch modules with a sparse-input first layer: :class:`MLPModule` and
:class:`SparseLinear`.

The public path of :mod:`skprune._nn.modules`, where the code lives.
"""

from ._nn.modules import (
    MLPModule,
    SparseLinear,
    float64_prediction,
)

__all__ = [
    "MLPModule",
    "SparseLinear",
    "float64_prediction",
]
