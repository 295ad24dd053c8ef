"""Physically remove what pruning zeroed: smaller modules and compact inference models.

Masks alone make a network sparse, not smaller or faster. Here:

- :func:`structure_to_keep` finds the input features and hidden units of an MLP
  that still do something (a unit with no incoming weights only adds a constant,
  a unit with no outgoing weights adds nothing, an input with no weights is
  ignored);
- :func:`shrink_mlp_` removes the others from a :class:`~skprune.MLPModule` in
  place, so retraining after structured pruning runs on the smaller network and
  touches only the surviving columns of the input;
- :func:`compact_mlp` turns a trained module into a :class:`CompactMLP`: numpy
  and scipy only, dead structure removed, each weight matrix stored sparse where
  that is smaller, for fast prediction and small files.

No scikit-learn here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .modules import MLPModule, SparseLinear

__all__ = ["CompactMLP", "compact_mlp", "shrink_mlp_", "structure_to_keep"]


def _check_mlp(module) -> None:
    if not isinstance(module, MLPModule):
        raise TypeError(
            "Only skprune.MLPModule networks can be physically shrunk or "
            f"compacted, got {type(module).__name__}."
        )


def _in_major(layer) -> torch.Tensor:
    """A layer's weight as (inputs, outputs), whatever its own layout."""
    weight = layer.weight.detach()
    return weight if isinstance(layer, SparseLinear) else weight.T


@torch.no_grad()
def structure_to_keep(module: MLPModule) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Indices of the input features and hidden units that affect the output.

    A hidden unit is kept when it has a non-zero incoming weight and a non-zero
    outgoing weight. A unit with no incoming weight outputs a constant, which
    :func:`compact_mlp` folds into the next layer's bias; this function leaves
    such units in place only if they have outgoing weights and a non-zero bias.

    Parameters
    ----------
    module : MLPModule

    Returns
    -------
    inputs : torch.Tensor of int64
        Positions of the kept input features.
    units : list of torch.Tensor of int64
        Positions of the kept units, one tensor per hidden layer.
    """
    _check_mlp(module)
    weights = [_in_major(layer) for layer in module.layers]
    biases = [layer.bias.detach() for layer in module.layers]
    units = []
    for i in range(len(weights) - 1):
        has_input = (weights[i] != 0).any(dim=0) | (biases[i] != 0)
        has_output = (weights[i + 1] != 0).any(dim=1)
        units.append(torch.nonzero(has_input & has_output).squeeze(1))
    inputs = torch.nonzero((weights[0] != 0).any(dim=1)).squeeze(1)
    return inputs, units


@torch.no_grad()
def shrink_mlp_(
    module: MLPModule, inputs: torch.Tensor, units: list[torch.Tensor]
) -> None:
    """Keep only the given input features and hidden units, in place.

    The first layer keeps the weight rows of ``inputs`` and learns which input
    columns they were (:attr:`SparseLinear.input_index`), so the module still
    takes inputs of the original width. Parameters are replaced by new, smaller
    ones: an optimizer built over the old ones must be built again.

    Parameters
    ----------
    module : MLPModule
    inputs : torch.Tensor of int64
        Input positions to keep, relative to the layer's current inputs.
    units : list of torch.Tensor of int64
        Unit positions to keep in each hidden layer, relative to its current
        units.
    """
    _check_mlp(module)
    layers = list(module.layers)
    if len(units) != len(layers) - 1:
        raise ValueError(
            f"units must hold one index per hidden layer ({len(layers) - 1}), "
            f"got {len(units)}."
        )
    keep_in = [inputs, *units]
    keep_out = [*units, None]
    for layer, rows, cols in zip(layers, keep_in, keep_out, strict=True):
        weight = _in_major(layer)[rows]
        bias = layer.bias.detach()
        if cols is not None:
            weight, bias = weight[:, cols], bias[cols]
        if isinstance(layer, SparseLinear):
            layer.restrict_inputs(rows)
            layer.weight = nn.Parameter(weight.contiguous())
        else:
            layer.weight = nn.Parameter(weight.T.contiguous())
            layer.in_features = weight.shape[0]
        layer.bias = nn.Parameter(bias.clone())
        layer.out_features = weight.shape[1]
    module.hidden_layer_sizes = tuple(len(u) for u in units)


@dataclass
class CompactMLP:
    """A trained MLP reduced to what it computes, in numpy and scipy.

    Attributes
    ----------
    n_features : int
        Width of the input it takes (the original number of features).
    input_index : ndarray of int64
        Columns of the input that the first layer reads.
    weights : list of ndarray or scipy.sparse.csr_matrix
        Each of shape (inputs, outputs); sparse where that takes fewer bytes.
    biases : list of ndarray
    activation : str
        ``"relu"``, ``"tanh"`` or ``"logistic"``, between hidden layers.
    """

    n_features: int
    input_index: np.ndarray
    weights: list = field(default_factory=list)
    biases: list = field(default_factory=list)
    activation: str = "relu"

    def decision_function(self, X) -> np.ndarray:
        """Output-layer scores (logits) for ``X`` of shape (n, n_features)."""
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, the network takes {self.n_features}."
            )
        h = _select_columns(X, self.input_index, self.n_features)
        for i, bias in enumerate(self.biases):
            h = h @ self._operand(i, h)
            h = (h.toarray() if sp.issparse(h) else np.asarray(h)) + bias
            if i < len(self.weights) - 1:
                h = _ACTIVATIONS[self.activation](h)
        return h

    def _operand(self, i: int, h):
        """Weight ``i`` in the form that multiplies ``h`` fastest.

        scipy's sparse-times-sparse product is slow; against a sparse input the
        weight is used as a dense copy, made once and left out of pickles.
        """
        weight = self.weights[i]
        if not (sp.issparse(weight) and sp.issparse(h)):
            return weight
        cache = self.__dict__.setdefault("_dense_weights", {})
        if i not in cache:
            cache[i] = weight.toarray()
        return cache[i]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_dense_weights", None)
        return state

    @property
    def nbytes(self) -> int:
        """Bytes held by the weights, biases and input index."""
        total = self.input_index.nbytes + sum(b.nbytes for b in self.biases)
        for w in self.weights:
            total += (
                w.data.nbytes + w.indices.nbytes + w.indptr.nbytes
                if sp.issparse(w)
                else w.nbytes
            )
        return total


def _select_columns(X, columns: np.ndarray, n_features: int):
    """``X[:, columns]`` in one pass over the stored values of a CSR matrix."""
    if not sp.issparse(X):
        return np.asarray(X)[:, columns]
    X = sp.csr_matrix(X)
    column_map = np.full(n_features, -1, dtype=np.int64)
    column_map[columns] = np.arange(len(columns))
    mapped = column_map[X.indices]
    kept = mapped >= 0
    counts = np.add.reduceat(kept, X.indptr[:-1]) if X.nnz else np.zeros(X.shape[0])
    counts[np.diff(X.indptr) == 0] = 0  # reduceat repeats values at empty rows
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix(
        (X.data[kept], mapped[kept], indptr), shape=(X.shape[0], len(columns))
    )


_ACTIVATIONS = {
    "relu": lambda h: np.maximum(h, 0.0, out=h),
    "tanh": np.tanh,
    "logistic": lambda h: 1.0 / (1.0 + np.exp(-h)),
}
_ACTIVATION_NAMES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "logistic"}


@torch.no_grad()
def compact_mlp(module: MLPModule) -> CompactMLP:
    """Build the compact inference model of a trained (pruned) MLP.

    Units with no incoming weight contribute the constant ``act(bias)`` to the
    next layer; it is folded into that layer's bias, so the result computes the
    same function (up to float rounding) as the module in evaluation mode.

    Parameters
    ----------
    module : MLPModule

    Returns
    -------
    compact : CompactMLP
    """
    _check_mlp(module)
    activation = _ACTIVATION_NAMES[type(module.activation)]
    act = _ACTIVATIONS[activation]
    weights = [
        _in_major(layer).cpu().numpy().astype(np.float32) for layer in module.layers
    ]
    biases = [
        layer.bias.detach().cpu().numpy().astype(np.float32).copy()
        for layer in module.layers
    ]
    # Fold units without incoming weights into the next bias, then drop them.
    for i in range(len(weights) - 1):
        constant = ~(weights[i] != 0).any(axis=0)
        if constant.any():
            value = act(biases[i][constant].copy())
            biases[i + 1] = biases[i + 1] + value @ weights[i + 1][constant]
            weights[i + 1][constant] = 0.0
    first = module.layers[0]
    columns = (
        first.input_index.cpu().numpy()
        if first.input_index is not None
        else (np.arange(first.in_features))
    )
    kept = np.flatnonzero((weights[0] != 0).any(axis=1))
    rows = kept
    for i in range(len(weights) - 1):
        units = np.flatnonzero(
            (weights[i] != 0).any(axis=0) & (weights[i + 1] != 0).any(axis=1)
        )
        weights[i] = weights[i][rows][:, units]
        biases[i] = biases[i][units]
        rows = units
    weights[-1] = weights[-1][rows]
    return CompactMLP(
        n_features=module.n_features,
        input_index=columns[kept].astype(np.int64),
        weights=[_smaller_storage(w) for w in weights],
        biases=biases,
        activation=activation,
    )


def _smaller_storage(weight: np.ndarray):
    """CSR when it takes fewer bytes than the dense array (values + indices)."""
    nnz = int(np.count_nonzero(weight))
    sparse_bytes = nnz * (weight.itemsize + 4) + (weight.shape[0] + 1) * 4
    if sparse_bytes < weight.nbytes:
        return sp.csr_matrix(weight)
    return weight
