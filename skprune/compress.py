"""Physically remove what pruning zeroed: smaller modules and compact inference models.

Masks alone make a network sparse, not smaller or faster. Here:

- :func:`structure_to_keep` finds the input features and hidden units of an MLP
  that still do something (a unit with no incoming weights only adds a constant,
  a unit with no outgoing weights adds nothing, an input with no weights is
  ignored);
- :func:`shrink_mlp_` removes the others from a :class:`~skprune.MLPModule` in
  place, so retraining after structured pruning runs on the smaller network and
  touches only the surviving columns of the input;
- :func:`compact_mlp` turns a trained module into a :class:`CompactMLP`: numpy,
  scipy and compiled loops (:mod:`skprune._kernels`), no torch at prediction
  time; dead structure removed, each weight matrix stored sparse where that is
  smaller and multiplied in the layout predicted fastest
  (:func:`choose_layouts`), for fast prediction and small files.

No scikit-learn here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from . import _kernels
from .modules import MLPModule, SparseLinear

__all__ = [
    "CompactMLP",
    "choose_layouts",
    "compact_mlp",
    "shrink_mlp_",
    "structure_to_keep",
]


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
    return _live_structure(weights, biases)


def _live_structure(weights, biases) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Inputs with a weight; units with an input (weight or bias) and an output."""
    units = []
    for i in range(len(weights) - 1):
        has_input = (weights[i] != 0).any(dim=0) | (biases[i] != 0)
        has_output = (weights[i + 1] != 0).any(dim=1)
        units.append(torch.nonzero(has_input & has_output).squeeze(1))
    inputs = torch.nonzero((weights[0] != 0).any(dim=1)).squeeze(1)
    return inputs, units


def _restricted(weights, biases, inputs, units):
    """Weights (inputs, outputs) and biases cut down to ``inputs`` and ``units``."""
    keep_in = [inputs, *units]
    keep_out = [*units, None]
    for weight, bias, rows, cols in zip(
        weights, biases, keep_in, keep_out, strict=True
    ):
        weight = weight[rows]
        if cols is not None:
            weight, bias = weight[:, cols], bias[cols]
        yield weight, bias


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
    weights = [_in_major(layer) for layer in layers]
    biases = [layer.bias.detach() for layer in layers]
    restricted = _restricted(weights, biases, inputs, units)
    for layer, rows, (weight, bias) in zip(
        layers, [inputs, *units], restricted, strict=True
    ):
        if isinstance(layer, SparseLinear):
            layer.restrict_inputs(rows)
            layer.weight = nn.Parameter(weight.contiguous())
        else:
            layer.weight = nn.Parameter(weight.T.contiguous())
            layer.in_features = weight.shape[0]
        layer.bias = nn.Parameter(bias.clone())
        layer.out_features = weight.shape[1]
    module.hidden_layer_sizes = tuple(len(u) for u in units)


# Measured by ``benchmarks/sparse_training.py --layouts``: the compiled CSR-weight
# product beats the dense alternative below these fractions of kept weights.
# First layer on CSR input: against adding whole (dense) weight rows per value.
_CSR_BELOW_DENSITY_FIRST = 0.03
# Dense activations: against BLAS's dense product, which is far faster per flop.
_CSR_BELOW_DENSITY_DENSE = 0.02


@dataclass(repr=False)
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
    layouts : list of str
        How each layer multiplies, chosen from the share of kept weights by
        :func:`choose_layouts` unless given: ``"csr"`` (a compiled loop over
        the surviving weights of each input, skipping zero inputs),
        ``"row-sparse"`` (first layer on CSR input: one dense weight row added
        per stored input value) or ``"dense"`` (BLAS, or scipy's product for
        CSR input when numba is not installed).
    """

    n_features: int
    input_index: np.ndarray
    weights: list = field(default_factory=list)
    biases: list = field(default_factory=list)
    activation: str = "relu"
    layouts: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.layouts:
            self.layouts = choose_layouts(self.weights)

    def __repr__(self) -> str:
        layers = ", ".join(
            f"{w.shape[0]}x{w.shape[1]} {layout} ({_density(w):.1%} kept)"
            for w, layout in zip(self.weights, self.layouts, strict=True)
        )
        return (
            f"CompactMLP(n_features={self.n_features}, layers=[{layers}], "
            f"activation={self.activation!r})"
        )

    def decision_function(self, X) -> np.ndarray:
        """Output-layer scores (logits) for ``X`` of shape (n, n_features)."""
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, the network takes {self.n_features}."
            )
        h = self._first_layer(X)
        for i, bias in enumerate(self.biases):
            if i > 0:
                h = _dense_product(h, self._operand(i), self.layouts[i])
            h += bias
            if i < len(self.weights) - 1:
                h = _ACTIVATIONS[self.activation](h)
        return h

    def _first_layer(self, X) -> np.ndarray:
        """The first layer's product, without its bias."""
        weight, layout = self._operand(0), self.layouts[0]
        if not sp.issparse(X):
            X = np.asarray(X, dtype=np.float32)[:, self.input_index]
            return _dense_product(X, weight, layout)
        X = sp.csr_matrix(X, dtype=np.float32)
        if layout == "dense":  # numba absent: scipy's product on the kept columns
            return np.asarray(_select_columns(X, self._column_map()) @ weight)
        product = _kernels.csr_times_csr if layout == "csr" else _kernels.csr_times_rows
        return product(X, self._column_map(), weight)

    def _column_map(self) -> np.ndarray:
        cache = self.__dict__.setdefault("_cache", {})
        if "column_map" not in cache:
            column_map = np.full(self.n_features, -1, dtype=np.int64)
            column_map[self.input_index] = np.arange(len(self.input_index))
            cache["column_map"] = column_map
        return cache["column_map"]

    def _operand(self, i: int):
        """Weight ``i`` in its layout's form, made once and left out of pickles."""
        cache = self.__dict__.setdefault("_cache", {})
        if i not in cache:
            weight = self.weights[i]
            if self.layouts[i] == "csr":
                weight = sp.csr_matrix(weight, dtype=np.float32)
                weight.sort_indices()
            else:
                weight = weight.toarray() if sp.issparse(weight) else weight
                weight = np.ascontiguousarray(weight, dtype=np.float32)
            cache[i] = weight
        return cache[i]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_cache", None)
        state.pop("_dense_weights", None)
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        if not self.__dict__.get("layouts"):
            self.layouts = choose_layouts(self.weights)
        elif not _kernels.HAVE_NUMBA:
            self.layouts = ["dense"] * len(self.weights)

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


def _density(weight) -> float:
    nnz = weight.nnz if sp.issparse(weight) else np.count_nonzero(weight)
    return nnz / max(1, weight.shape[0] * weight.shape[1])


def choose_layouts(weights) -> list[str]:
    """The predicted fastest layout of each weight, from its share of kept weights.

    Parameters
    ----------
    weights : list of ndarray or scipy.sparse matrix
        Each of shape (inputs, outputs), the input layer first.

    Returns
    -------
    layouts : list of str
        ``"csr"`` where the compiled CSR product wins, otherwise
        ``"row-sparse"`` for the first layer and ``"dense"`` for the others;
        ``"dense"`` everywhere when numba is not installed.
    """
    if not _kernels.HAVE_NUMBA:
        return ["dense"] * len(weights)
    layouts = []
    for i, weight in enumerate(weights):
        limit = _CSR_BELOW_DENSITY_FIRST if i == 0 else _CSR_BELOW_DENSITY_DENSE
        if _density(weight) < limit:
            layouts.append("csr")
        else:
            layouts.append("row-sparse" if i == 0 else "dense")
    return layouts


def _dense_product(h: np.ndarray, weight, layout: str) -> np.ndarray:
    if layout == "csr":
        return _kernels.dense_times_csr(h, weight)
    return h @ weight


def _select_columns(X, column_map: np.ndarray):
    """The CSR matrix ``X`` restricted to the columns ``column_map`` keeps."""
    columns, offsets, values = _kernels.kept_entries(
        torch.from_numpy(column_map),
        torch.from_numpy(X.indices),
        torch.from_numpy(X.indptr),
        torch.from_numpy(X.data),
    )
    n_kept = int((column_map >= 0).sum())
    return sp.csr_matrix(
        (values.numpy(), columns.numpy(), offsets.numpy()), shape=(X.shape[0], n_kept)
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
    same function (up to float rounding) as the module in evaluation mode. Each
    layer's layout is chosen by :func:`choose_layouts`.

    Parameters
    ----------
    module : MLPModule

    Returns
    -------
    compact : CompactMLP
    """
    _check_mlp(module)
    activation = _ACTIVATION_NAMES[type(module.activation)]
    weights = [_in_major(layer).cpu().float().clone() for layer in module.layers]
    biases = [layer.bias.detach().cpu().float().clone() for layer in module.layers]
    # Fold units without incoming weights into the next bias; they then have no
    # outgoing weight either, and go with the other dead units.
    for i in range(len(weights) - 1):
        constant = ~(weights[i] != 0).any(dim=0)
        if constant.any():
            value = module.activation(biases[i][constant])
            biases[i + 1] += value @ weights[i + 1][constant]
            weights[i + 1][constant] = 0.0
    inputs, units = _live_structure(weights, biases)
    first = module.layers[0]
    columns = (
        first.input_index.cpu().numpy()
        if first.input_index is not None
        else np.arange(first.in_features)
    )
    restricted = list(_restricted(weights, biases, inputs, units))
    return CompactMLP(
        n_features=module.n_features,
        input_index=columns[inputs.numpy()].astype(np.int64),
        weights=[_smaller_storage(w.numpy()) for w, _ in restricted],
        biases=[b.numpy().copy() for _, b in restricted],
        activation=activation,
    )


def _smaller_storage(weight: np.ndarray):
    """CSR when it takes fewer bytes than the dense array (values + indices)."""
    nnz = int(np.count_nonzero(weight))
    sparse_bytes = nnz * (weight.itemsize + 4) + (weight.shape[0] + 1) * 4
    if sparse_bytes < weight.nbytes:
        return sp.csr_matrix(weight)
    return weight
