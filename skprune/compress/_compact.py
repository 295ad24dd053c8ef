"""The compact inference network: what a pruned MLP computes, in numpy and scipy.

Masks alone make a network sparse, not smaller or faster. :func:`compact_mlp`
turns a trained module into a :class:`CompactMLP`: numpy, scipy and compiled
loops (:mod:`skprune._nn._kernels`), no torch at prediction time; dead structure
removed (:mod:`skprune.compress._shrink` finds it), each weight matrix stored
sparse where that is smaller and multiplied in the layout predicted fastest
(:func:`choose_layouts`), for fast prediction and small files.

No scikit-learn here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .._nn import _kernels
from .._nn.data import as_canonical_csr
from .._nn.modules import MLPModule
from ._shrink import _check_mlp, _in_major, _live_structure, _restricted

__all__ = [
    "LAYOUTS",
    "CompactMLP",
    "choose_layouts",
    "compact_mlp",
]


# Measured by ``benchmarks/sparse_training.py --layouts``: the compiled CSR-weight
# product beats the dense alternative below these fractions of kept weights.
# First layer on CSR input: against adding whole (dense) weight rows per value.
_CSR_BELOW_DENSITY_FIRST = 0.03
# Dense activations: against BLAS's dense product, which is far faster per flop.
_CSR_BELOW_DENSITY_DENSE = 0.02


#: How a layer may multiply (see :class:`CompactMLP`); ``"row-sparse"`` is for
#: the first layer only.
LAYOUTS = ("csr", "row-sparse", "dense")


@dataclass(frozen=True, eq=False, repr=False)
class CompactMLP:
    """A trained MLP reduced to what it computes, in numpy, scipy and compiled loops.

    Everything is checked at construction (and when unpickled, which constructs
    again): the chain of shapes, the indices, each CSR weight's structure,
    finite values, the activation and the layouts. Each weight is then made
    once into the form its layout multiplies, so every call runs the same code
    on arrays nothing can change: the fields are read-only, and so are their
    arrays (copies of those given). ``dataclasses.replace`` makes a changed copy.

    With numba (:data:`skprune._nn._kernels.HAVE_NUMBA`), each output row is added
    up in one fixed order by compiled loops, so a row's prediction does not
    depend on the other rows of the batch, to the bit. Without numba, dense
    layers use BLAS, whose rounding can depend on the number of rows, and CSR
    input scipy's product.

    Parameters
    ----------
    n_features : int
        Width of the input it takes (the original number of features).
    input_index : array-like of int, shape (n_inputs,)
        The distinct columns of the input that the first layer reads, each in
        ``[0, n_features)``; the first weight has one row per entry.
    weights : sequence of ndarray or scipy.sparse CSR matrix
        Each of shape (inputs, outputs), finite floats; layer ``i + 1`` has as
        many inputs as layer ``i`` has outputs. Stored as float32, sparse ones
        as ``csr_matrix`` with sorted, summed indices.
    biases : sequence of ndarray
        One per weight, as long as its outputs; finite floats.
    activation : {"relu", "tanh", "logistic"}, default="relu"
        Between hidden layers.
    layouts : sequence of {"csr", "row-sparse", "dense"}, default=None
        How each layer multiplies; None chooses by the share of kept weights
        (:func:`choose_layouts`). ``"csr"``: a compiled loop over the surviving
        weights of each input, skipping zero inputs; ``"row-sparse"`` (first
        layer only): one dense weight row added per stored input value;
        ``"dense"``: a compiled loop over the dense weight. Without numba every
        layer is ``"dense"``.

    Attributes
    ----------
    n_features, input_index, weights, biases, activation, layouts
        The parameters as checked and stored: ``input_index`` int64, weights
        and biases float32, the sequences as tuples.

    Raises
    ------
    ValueError
        If any of these is inconsistent, out of range or not finite.
    TypeError
        If a weight is neither a numpy array nor a scipy.sparse CSR matrix.

    Examples
    --------
    A 2-unit network that reads columns 0 and 3 of a 4-column input:

    >>> import numpy as np
    >>> from skprune.compress import CompactMLP
    >>> first = np.array([[1.0, -1.0], [0.5, 2.0]], dtype=np.float32)
    >>> network = CompactMLP(
    ...     n_features=4,
    ...     input_index=[0, 3],
    ...     weights=[first, np.ones((2, 1), dtype=np.float32)],
    ...     biases=[np.zeros(2), np.zeros(1)],
    ... )
    >>> network
    CompactMLP(n_features=4, layers=[2x2 row-sparse (100.0% kept), 2x1 dense \
(100.0% kept)], activation='relu')

    Column 0 is 1 and column 3 is 2, so the hidden units are ``relu([2, 3])``:

    >>> network.decision_function(np.array([[1.0, 9.0, 9.0, 2.0]])).tolist()
    [[5.0]]
    >>> network.nbytes
    52
    >>> CompactMLP(4, [0, 4], network.weights, network.biases)
    Traceback (most recent call last):
    ...
    ValueError: input_index holds feature 4, but the network takes 4 features: \
each must be in [0, 3].
    """

    n_features: int
    input_index: np.ndarray
    weights: tuple
    biases: tuple
    activation: str = "relu"
    layouts: tuple | None = None

    def __post_init__(self) -> None:
        n_features = _checked_n_features(self.n_features)
        input_index = _checked_input_index(self.input_index, n_features)
        if isinstance(self.weights, np.ndarray) or sp.issparse(self.weights):
            raise TypeError("weights must be a sequence of arrays, one per layer.")
        weights = tuple(_checked_weight(w, i) for i, w in enumerate(self.weights))
        biases = _checked_biases(self.biases, weights)
        _check_shape_chain(input_index, weights)
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got "
                f"{self.activation!r}."
            )
        layouts = _checked_layouts(self.layouts, weights)
        checked = {
            "n_features": n_features,
            "input_index": input_index,
            "weights": weights,
            "biases": biases,
            "layouts": layouts,
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        column_map = np.full(n_features, -1, dtype=np.int64)
        column_map[input_index] = np.arange(len(input_index))
        operands = [
            _operand(w, layout) for w, layout in zip(weights, layouts, strict=True)
        ]
        object.__setattr__(
            self, "_sparse_first", _sparse_product(operands[0], layouts[0], column_map)
        )
        object.__setattr__(
            self,
            "_dense_products",
            tuple(map(_dense_product, operands, layouts)),
        )

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
        """Output-layer scores (logits) for ``X`` of shape (n_samples, n_features).

        ``X`` is a dense array or any scipy sparse matrix, converted to float32;
        a sparse one's indices are checked first
        (:func:`skprune.data.as_canonical_csr`).
        """
        if sp.issparse(X):
            X = as_canonical_csr(X).astype(np.float32, copy=False)
        else:
            X = np.asarray(X, dtype=np.float32)
            if X.ndim != 2:
                raise ValueError(f"X must be 2-d, got shape {X.shape}.")
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, the network takes {self.n_features}."
            )
        if sp.issparse(X):
            h = self._sparse_first(X)
        else:
            h = self._dense_products[0](np.ascontiguousarray(X[:, self.input_index]))
        for i, bias in enumerate(self.biases):
            if i > 0:
                h = self._dense_products[i](h)
            h += bias
            if i < len(self.weights) - 1:
                h = _ACTIVATIONS[self.activation](h)
        return h

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state) -> None:
        # Unpickling constructs again, so a tampered pickle meets the same checks.
        names = {f.name for f in fields(self)}
        if not isinstance(state, dict) or not (
            {"n_features", "input_index", "weights", "biases"} <= set(state) <= names
        ):
            listed = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"Not the state of a CompactMLP: {listed}; it holds {sorted(names)}."
            )
        self.__init__(**state)

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


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _checked_n_features(n_features) -> int:
    if (
        not isinstance(n_features, Integral)
        or isinstance(n_features, bool)
        or n_features < 1
    ):
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}.")
    return int(n_features)


def _checked_input_index(input_index, n_features: int) -> np.ndarray:
    index = np.asarray(input_index)
    if index.ndim != 1 or (index.dtype.kind not in "iu" and len(index)):
        raise ValueError(
            f"input_index must be a 1-d array of integers, got {index.ndim}-d "
            f"{index.dtype}."
        )
    index = _frozen(np.array(index, dtype=np.int64, copy=True))
    if len(index) and (index.min() < 0 or index.max() >= n_features):
        bad = index.min() if index.min() < 0 else index.max()
        raise ValueError(
            f"input_index holds feature {int(bad)}, but the network takes "
            f"{n_features} features: each must be in [0, {n_features - 1}]."
        )
    if len(np.unique(index)) != len(index):
        raise ValueError("input_index must not repeat a feature.")
    return index


def _checked_weight(weight, i: int):
    """Weight ``i`` as a read-only float32 ndarray or canonical CSR matrix."""
    name = f"weights[{i}]"
    if sp.issparse(weight):
        checked = _kernels.CheckedCSR(weight, name=name)
        data = checked.data.astype(np.float32)
        _check_finite(data, name)
        stored = sp.csr_matrix(
            (data, checked.indices, checked.indptr), shape=checked.shape, copy=True
        )
        stored.sum_duplicates()
        for array in (stored.data, stored.indices, stored.indptr):
            _frozen(array)
        return stored
    if not isinstance(weight, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array or a scipy.sparse CSR matrix, got "
            f"{type(weight).__name__}."
        )
    if weight.ndim != 2 or weight.dtype.kind != "f":
        raise ValueError(
            f"{name} must be a 2-d array of floats, got {weight.ndim}-d {weight.dtype}."
        )
    stored = np.array(weight, dtype=np.float32, order="C", copy=True)
    _check_finite(stored, name)
    return _frozen(stored)


def _checked_biases(biases, weights) -> tuple:
    biases = tuple(biases)
    if len(biases) != len(weights):
        raise ValueError(
            f"There are {len(weights)} weights but {len(biases)} biases: each layer "
            "needs one of each."
        )
    checked = []
    for i, (bias, weight) in enumerate(zip(biases, weights, strict=True)):
        bias = np.asarray(bias)
        if bias.ndim != 1 or bias.dtype.kind != "f":
            raise ValueError(
                f"biases[{i}] must be a 1-d array of floats, got {bias.ndim}-d "
                f"{bias.dtype}."
            )
        if len(bias) != weight.shape[1]:
            raise ValueError(
                f"biases[{i}] has {len(bias)} entries, but weights[{i}] has "
                f"{weight.shape[1]} outputs: one bias per output."
            )
        bias = np.array(bias, dtype=np.float32, copy=True)
        _check_finite(bias, f"biases[{i}]")
        checked.append(_frozen(bias))
    return tuple(checked)


def _check_shape_chain(input_index: np.ndarray, weights: tuple) -> None:
    if not weights:
        raise ValueError("A CompactMLP needs at least one weight.")
    if weights[0].shape[0] != len(input_index):
        raise ValueError(
            f"weights[0] has {weights[0].shape[0]} rows, but input_index has "
            f"{len(input_index)} entries: one row per input read."
        )
    for i in range(len(weights) - 1):
        if weights[i].shape[1] != weights[i + 1].shape[0]:
            raise ValueError(
                f"weights[{i}] has {weights[i].shape[1]} outputs, but weights[{i + 1}] "
                f"has {weights[i + 1].shape[0]} inputs: they must agree."
            )


def _check_finite(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or infinite values.")


def _checked_layouts(layouts, weights: tuple) -> tuple:
    if layouts is None or (not isinstance(layouts, str) and len(layouts) == 0):
        layouts = choose_layouts(weights)
    if isinstance(layouts, str) or len(layouts) != len(weights):
        raise ValueError(
            f"layouts must list one layout per weight ({len(weights)}), got "
            f"{layouts!r}."
        )
    for i, layout in enumerate(layouts):
        allowed = LAYOUTS if i == 0 else tuple(x for x in LAYOUTS if x != "row-sparse")
        if layout not in allowed:
            raise ValueError(
                f"layouts[{i}] must be one of {list(allowed)}, got {layout!r}."
            )
    if not _kernels.HAVE_NUMBA:  # the compiled layouts need numba
        return ("dense",) * len(weights)
    return tuple(layouts)


def _operand(weight, layout: str):
    """A checked weight in the form its layout multiplies, made once."""
    if layout == "csr":
        return _kernels.CheckedCSR(sp.csr_matrix(weight), name="weight", own=True)
    if sp.issparse(weight):
        return _frozen(weight.toarray())
    return weight  # already a read-only, C-contiguous float32 copy


def _sparse_product(operand, layout: str, column_map: np.ndarray):
    """The first layer's product for CSR input, chosen once."""
    if layout == "csr":
        return partial(_kernels.csr_times_csr, column_map=column_map, weight=operand)
    if _kernels.HAVE_NUMBA:
        return partial(_kernels.csr_times_rows, column_map=column_map, weight=operand)
    return partial(_scipy_product, column_map=column_map, weight=operand)


def _dense_product(operand, layout: str):
    """A layer's product for dense rows, chosen once."""
    if layout == "csr":
        return partial(_kernels.dense_times_csr, weight=operand)
    if _kernels.HAVE_NUMBA:
        return partial(_kernels.dense_times_rows, weight=operand)
    return partial(_blas_product, weight=operand)


def _blas_product(h: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return h @ weight


def _scipy_product(X, column_map: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.asarray(_select_columns(X, column_map) @ weight)


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

    Examples
    --------
    A layer with 1% of its weights left multiplies as CSR:

    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skprune.compress import LAYOUTS, choose_layouts
    >>> LAYOUTS
    ('csr', 'row-sparse', 'dense')
    >>> thin = sp.random(100, 10, density=0.01, format="csr", random_state=0)
    >>> choose_layouts([thin, np.ones((10, 3))])
    ['csr', 'dense']
    >>> choose_layouts([np.ones((100, 10)), thin.T.tocsr()])
    ['row-sparse', 'csr']
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

    Raises
    ------
    TypeError
        If ``module`` is not an :class:`~skprune.MLPModule`.

    Examples
    --------
    Input 1 and hidden unit 2 are dead; the compact network leaves them out
    and computes what the module computes:

    >>> import numpy as np
    >>> import torch
    >>> from skprune import MLPModule
    >>> from skprune.compress import compact_mlp
    >>> _ = torch.manual_seed(0)
    >>> module = MLPModule(n_features=6, n_classes=2, hidden_layer_sizes=(4,)).eval()
    >>> with torch.no_grad():
    ...     module.layers[0].weight[1] = 0.0
    ...     module.layers[1].weight[:, 2] = 0.0
    >>> compact = compact_mlp(module)
    >>> compact
    CompactMLP(n_features=6, layers=[5x3 row-sparse (100.0% kept), 3x2 dense \
(100.0% kept)], activation='relu')
    >>> compact.input_index.tolist()
    [0, 2, 3, 4, 5]
    >>> x = torch.rand(3, 6)
    >>> outputs = module(x).detach().numpy()
    >>> bool(np.allclose(compact.decision_function(x.numpy()), outputs, atol=1e-6))
    True
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
