"""Batching scipy sparse matrices as torch sparse tensors.

The public path of :mod:`skprune._nn.data`, where the code lives.
"""

from ._nn.data import (
    BatchLoader,
    SparseDataset,
    as_canonical_csr,
    to_torch,
)

__all__ = [
    "BatchLoader",
    "SparseDataset",
    "as_canonical_csr",
    "to_torch",
]
