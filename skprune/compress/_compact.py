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

import warnings
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
from ._shrink import (
    _all_finite,
    _check_mlp,
    _in_major,
    _live_structure,
    _occupancy,
    _row_chunks,
)

__all__ = [
    "DTYPES",
    "LAYOUTS",
    "CompactMLP",
    "choose_layouts",
    "check_dtype",
    "compact_mlp",
    "quantize_rows",
]


# The cost model of :func:`choose_layouts`, in nanoseconds per input value (a
# stored value of the CSR input for the first layer, a non-zero activation for
# the others): the products ``benchmarks/layout_cost.py`` times (2,000 rows,
# 256 outputs, uniform data at 10,000 and 100,000 features and 20 Newsgroups
# TF-IDF, densities 0.5% to 50%, torch on one thread), from its quiet run
# (``benchmarks/results/layout_cost.md``, commit 7ef5dd0, load 1.0). A CSR
# weight adds the surviving weights of the input's row, prefetched, at one
# cost wherever the weight lies; a dense row adds every weight, vectorised,
# cheaply from cache and at memory speed beyond it. The fixed cost of a CSR
# walk (16 ns an input value) is what a whole 256-wide row costs from memory
# (20 ns): CSR wins only below about 2% kept.
_COST_NS = {
    # layout: (per input value, per surviving weight)
    "csr": (16.2, 0.925),
    "dense-csr": (13.7, 0.721),
    # layout: (per input value, per kept block of the input's row), 8 wide
    "block-csr": (12.5, 4.223),
    # layout: (per input value, per weight from cache, per weight from memory)
    "row-sparse": (0.0, 0.050, 0.079),  # torch's embedding_bag
    "row-sparse-int8": (0.0, 0.056, 0.073),  # the compiled loop over int8 rows
    "dense": (0.0, 0.067, 0.067),
}

#: Weights larger than this (bytes) are read from memory, not from cache.
_CACHE_BYTES = 16 * 2**20


#: How a layer may multiply (see :class:`CompactMLP`); ``"block-csr"`` and
#: ``"row-sparse"`` are for the first layer only.
LAYOUTS = ("csr", "block-csr", "row-sparse", "dense")


@dataclass(frozen=True, eq=False, repr=False)
class CompactMLP:
    """A trained MLP reduced to what it computes, in numpy, scipy and compiled loops.

    Everything is checked at construction (and when unpickled, which constructs
    again): the chain of shapes, the indices, each CSR weight's structure,
    finite values, the scales, the activation and the layouts. Each weight is
    then held in the form its layout multiplies (CSR for ``"csr"``, CSR and
    its blocks for ``"block-csr"``, dense otherwise), so every call runs the
    same code on arrays nothing can change and nothing is made later
    (:attr:`nbytes` is what stays resident): the fields are read-only, and
    so are their arrays (copies of those given).
    Pickles and files hold each weight in its smaller form instead.
    ``dataclasses.replace`` makes a changed copy.

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
        Each of shape (inputs, outputs), finite floats (int8 when ``scales``
        are given); layer ``i + 1`` has as many inputs as layer ``i`` has
        outputs. Stored as float32 (or int8), sparse ones as ``csr_matrix``
        with sorted, summed indices.
    biases : sequence of ndarray
        One per weight, as long as its outputs; finite floats.
    activation : {"relu", "tanh", "logistic"}, default="relu"
        Between hidden layers.
    layouts : sequence of {"csr", "block-csr", "row-sparse", "dense"}, default=None
        How each layer multiplies; None chooses by the share of kept weights
        (:func:`choose_layouts`). ``"csr"``: a compiled loop over the surviving
        weights of each input, skipping zero inputs; ``"block-csr"`` (first
        layer only): the same weight held as CSR, multiplied for CSR input as
        blocks of 4, 8 or 16 consecutive outputs (the width that stores fewest
        bytes), each block whole, zeros padding the blocks a row keeps only in
        part; ``"row-sparse"`` (first layer only): one dense weight row added
        per stored input value
        (torch's ``embedding_bag`` for float32, a compiled loop for int8);
        ``"dense"``: a compiled loop over the dense weight. Without numba every
        layer is ``"dense"``.
    scales : sequence of ndarray, default=None
        For int8 weights: one array per weight of one float32 scale per row,
        finite and positive; row ``j`` of weight ``i`` stands for
        ``scales[i][j] * weights[i][j]``. None for float weights.

    Attributes
    ----------
    n_features, input_index, weights, biases, activation, layouts, scales
        The parameters as checked and stored: ``input_index`` int64, weights
        float32 or int8, biases and scales float32, the sequences as tuples.
    dtype : {"float32", "int8"}
    nbytes : int

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
    >>> network.nbytes  # the weights, biases, input_index and its column map
    68
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
    scales: tuple | None = None

    def __post_init__(self) -> None:
        n_features = _checked_n_features(self.n_features)
        input_index = _checked_input_index(self.input_index, n_features)
        if isinstance(self.weights, np.ndarray) or sp.issparse(self.weights):
            raise TypeError("weights must be a sequence of arrays, one per layer.")
        quantized = self.scales is not None
        weights = tuple(
            _checked_weight(w, i, quantized) for i, w in enumerate(self.weights)
        )
        biases = _checked_biases(self.biases, weights)
        _check_shape_chain(input_index, weights)
        scales = _checked_scales(self.scales, weights) if quantized else None
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got "
                f"{self.activation!r}."
            )
        layouts = _checked_layouts(self.layouts, weights)
        # Held in the form its layout multiplies, so nothing else is made later.
        weights = tuple(map(_in_layout_form, weights, layouts))
        checked = {
            "n_features": n_features,
            "input_index": input_index,
            "weights": weights,
            "biases": biases,
            "layouts": layouts,
            "scales": scales,
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        column_map = np.full(n_features, -1, dtype=np.int64)
        column_map[input_index] = np.arange(len(input_index))
        column_map = _kernels.CheckedColumnMap(column_map, len(input_index))
        layer_scales = scales or (None,) * len(weights)
        operands = [
            _operand(w, layout) for w, layout in zip(weights, layouts, strict=True)
        ]
        first = _sparse_product(operands[0], layouts[0], column_map, layer_scales[0])
        object.__setattr__(self, "_sparse_first", first)
        object.__setattr__(
            self,
            "_dense_products",
            tuple(map(_dense_product, operands, layouts, layer_scales)),
        )

    def __repr__(self) -> str:
        layers = ", ".join(
            f"{w.shape[0]}x{w.shape[1]} {layout} ({_density(w):.1%} kept)"
            for w, layout in zip(self.weights, self.layouts, strict=True)
        )
        dtype = ", dtype='int8'" if self.scales is not None else ""
        return (
            f"CompactMLP(n_features={self.n_features}, layers=[{layers}], "
            f"activation={self.activation!r}{dtype})"
        )

    @property
    def dtype(self) -> str:
        """``"int8"`` for int8 weights with per-row scales, else ``"float32"``."""
        return "int8" if self.scales is not None else "float32"

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
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["weights"] = tuple(map(smaller_form, self.weights))
        return state

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
        """Bytes of every array the network holds, each counted once.

        The fields (input index, weights, biases, scales) and what the products
        were made of (the column map, a weight in the form its layout
        multiplies where that differs from how it is stored). Nothing is made
        or cached later, so this is what stays resident after predicting.
        """
        buffers = {}
        for array in _held_arrays(vars(self)):
            buffers[_address(array)] = max(
                buffers.get(_address(array), 0), _size(array)
            )
        return sum(buffers.values())


def _held_arrays(value):
    """Every numpy array and torch tensor reachable from ``value``."""
    if isinstance(value, np.ndarray | torch.Tensor):
        yield value
    elif sp.issparse(value) or isinstance(value, _kernels.CheckedCSR):
        yield from (value.data, value.indices, value.indptr)
    elif isinstance(value, _kernels.CheckedBlockCSR):
        yield from (value.values, value.columns, value.indptr)
    elif isinstance(value, _kernels.CheckedColumnMap):
        yield value.array
    elif isinstance(value, partial):
        yield from _held_arrays(value.keywords)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _held_arrays(item)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _held_arrays(item)


def _address(array) -> int:
    if isinstance(array, torch.Tensor):
        return array.untyped_storage().data_ptr()
    base = array
    while isinstance(base.base, np.ndarray):
        base = base.base
    return base.__array_interface__["data"][0]


def _size(array) -> int:
    if isinstance(array, torch.Tensor):
        return array.untyped_storage().nbytes()
    base = array
    while isinstance(base.base, np.ndarray):
        base = base.base
    return base.nbytes


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
    # increasing (as compact_mlp makes it) is unique; np.unique is slow at 2^20
    increasing = bool((index[1:] > index[:-1]).all())
    if not increasing and len(np.unique(index)) != len(index):
        raise ValueError("input_index must not repeat a feature.")
    return index


def _checked_weight(weight, i: int, quantized: bool = False):
    """Weight ``i`` as a read-only ndarray or canonical CSR matrix.

    float32 for a float network; int8, as given, for a quantized one.
    """
    name = f"weights[{i}]"
    dtype = np.int8 if quantized else None
    if sp.issparse(weight):
        checked = _kernels.CheckedCSR(weight, name=name, dtype=dtype)
        data = (
            checked.data if quantized else checked.data.astype(np.float32, copy=False)
        )
        _check_finite(data, name)
        stored = sp.csr_matrix(
            (data, checked.indices, checked.indptr), shape=checked.shape, copy=True
        )
        stored.sum_duplicates()
        if quantized and stored.dtype != np.int8:  # int8 overflowing when summed
            raise ValueError(f"{name} repeats an index: int8 weights cannot be summed.")
        for array in (stored.data, stored.indices, stored.indptr):
            _frozen(array)
        return stored
    if not isinstance(weight, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array or a scipy.sparse CSR matrix, got "
            f"{type(weight).__name__}."
        )
    if quantized:
        if weight.ndim != 2 or weight.dtype != np.int8:
            raise ValueError(
                f"{name} must be a 2-d array of int8 (the network has scales), got "
                f"{weight.ndim}-d {weight.dtype}."
            )
        return _frozen(np.array(weight, order="C", copy=True))
    if weight.ndim != 2 or weight.dtype.kind != "f":
        raise ValueError(
            f"{name} must be a 2-d array of floats, got {weight.ndim}-d {weight.dtype}."
        )
    stored = np.array(weight, dtype=np.float32, order="C", copy=True)
    _check_finite(stored, name)
    return _frozen(stored)


def _checked_scales(scales, weights: tuple) -> tuple:
    """One read-only float32 scale per row of each int8 weight, finite and > 0."""
    if isinstance(scales, np.ndarray) or len(scales) != len(weights):
        raise ValueError(
            f"scales must list one array per weight ({len(weights)}), got "
            f"{type(scales).__name__} of {len(scales)}."
        )
    checked = []
    for i, (scale, weight) in enumerate(zip(scales, weights, strict=True)):
        scale = np.asarray(scale)
        if scale.ndim != 1 or scale.dtype.kind != "f" or len(scale) != weight.shape[0]:
            raise ValueError(
                f"scales[{i}] must be a 1-d float array with one scale per row of "
                f"weights[{i}] ({weight.shape[0]}), got {scale.ndim}-d {scale.dtype} "
                f"of shape {scale.shape}."
            )
        scale = np.array(scale, dtype=np.float32, copy=True)
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(f"scales[{i}] must be finite and positive.")
        checked.append(_frozen(scale))
    return tuple(checked)


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
    first_only = ("row-sparse", "block-csr")
    for i, layout in enumerate(layouts):
        allowed = (
            LAYOUTS if i == 0 else tuple(x for x in LAYOUTS if x not in first_only)
        )
        if layout not in allowed:
            raise ValueError(
                f"layouts[{i}] must be one of {list(allowed)}, got {layout!r}."
            )
    if not _kernels.HAVE_NUMBA:  # the compiled layouts need numba
        return ("dense",) * len(weights)
    return tuple(layouts)


def _in_layout_form(weight, layout: str):
    """``weight`` as CSR for the ``"csr"`` and ``"block-csr"`` layouts, else dense.

    A block-CSR weight is held as CSR too (what files store, and the dense-input
    product's operand); its blocks are made from it, sharing its values where
    the runs are whole (:func:`_block_operand`).
    """
    sparse = layout in ("csr", "block-csr")
    if sparse == sp.issparse(weight):
        return weight
    if sparse:
        stored = sp.csr_matrix(weight)
        for array in (stored.data, stored.indices, stored.indptr):
            _frozen(array)
        return stored
    return _frozen(weight.toarray())


def smaller_form(weight):
    """``weight`` as CSR or dense, whichever takes fewer bytes: how files hold it."""
    nnz = weight.nnz if sp.issparse(weight) else int(np.count_nonzero(weight))
    sparse_bytes = nnz * (weight.dtype.itemsize + 4) + (weight.shape[0] + 1) * 4
    dense_bytes = weight.shape[0] * weight.shape[1] * weight.dtype.itemsize
    if sparse_bytes < dense_bytes:
        return weight if sp.issparse(weight) else sp.csr_matrix(weight)
    return weight.toarray() if sp.issparse(weight) else weight


def _operand(weight, layout: str):
    """A weight (already in its layout's form) as its product takes it, shared.

    A CSR weight's operand shares the stored arrays; the float first layer's
    row-sparse product is torch's ``embedding_bag``, the uncompressed model's
    own, on a tensor sharing the dense array.
    """
    int8 = weight.dtype == np.int8
    if layout in ("csr", "block-csr"):  # the blocks are made for CSR input only
        dtype = np.int8 if int8 else None
        return _kernels.CheckedCSR(weight, name="weight", dtype=dtype)
    if layout == "row-sparse" and not int8 and _kernels.HAVE_NUMBA:
        with warnings.catch_warnings():  # read-only: torch never writes it here
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(weight)
    return weight


def _sparse_product(operand, layout: str, column_map, scales=None):
    """The first layer's product for CSR input, chosen once."""
    if layout == "block-csr":
        return partial(_kernels.csr_times_blocks, column_map=column_map,
                       weight=_block_operand(operand), scales=scales)  # fmt: skip
    if layout == "csr":
        return partial(
            _kernels.csr_times_csr, column_map=column_map, weight=operand, scales=scales
        )
    if isinstance(operand, torch.Tensor):
        return partial(_kernels.csr_times_rows_embedding, column_map=column_map,
                       weight=operand)  # fmt: skip
    if _kernels.HAVE_NUMBA:
        return partial(
            _kernels.csr_times_rows,
            column_map=column_map,
            weight=operand,
            scales=scales,
        )
    return partial(
        _scipy_product, column_map=column_map.array, weight=operand, scales=scales
    )


def _dense_product(operand, layout: str, scales=None):
    """A layer's product for dense rows, chosen once."""
    if layout in ("csr", "block-csr"):
        return partial(_kernels.dense_times_csr, weight=operand, scales=scales)
    if isinstance(operand, torch.Tensor):
        operand = operand.numpy()  # the same memory, for dense input
    if _kernels.HAVE_NUMBA:
        return partial(_kernels.dense_times_rows, weight=operand, scales=scales)
    return partial(_blas_product, weight=operand, scales=scales)


def _blas_product(h: np.ndarray, weight: np.ndarray, scales=None) -> np.ndarray:
    # Without numba an int8 weight is widened per call: numpy has no int8 kernel.
    if scales is not None:
        return (h * scales) @ weight.astype(np.float32)
    return h @ weight


def _scipy_product(X, column_map: np.ndarray, weight: np.ndarray, scales=None):
    X = _select_columns(X, column_map)
    if scales is not None:
        return np.asarray(
            X.multiply(scales[None, :]).tocsr() @ weight.astype(np.float32)
        )
    return np.asarray(X @ weight)


def _density(weight) -> float:
    nnz = weight.nnz if sp.issparse(weight) else np.count_nonzero(weight)
    return nnz / max(1, weight.shape[0] * weight.shape[1])


def choose_layouts(weights) -> list[str]:
    """The predicted fastest layout of each weight, from a measured cost model.

    Per input value (a stored value of the CSR input for the first layer, a
    non-zero activation for the others), a layout costs a fixed part plus a
    part per weight it adds: the surviving weights of that input's row for
    ``"csr"``, its kept blocks for ``"block-csr"`` (first layer only, offered
    only for a float weight that keeps whole aligned runs of 4, 8 or 16
    outputs, so that no padding is stored), the whole row for
    ``"row-sparse"`` and ``"dense"``, whose
    weights cost more when the whole weight exceeds the cache. The constants
    were measured across densities from 0.5% to 50% on uniform data and 20
    Newsgroups TF-IDF (``benchmarks/layout_cost.py``); the cheaper layout wins.
    So a first layer goes CSR only when very sparse: below about 2% kept
    when it is far larger than the cache, almost never when it fits in it.

    Parameters
    ----------
    weights : list of ndarray or scipy.sparse matrix
        Each of shape (inputs, outputs), the input layer first; int8 weights
        use the int8 loops' constants.

    Returns
    -------
    layouts : list of str
        ``"csr"`` or, for a first layer in whole runs, ``"block-csr"`` where the
        compiled product costs less, otherwise ``"row-sparse"`` for the first
        layer and ``"dense"`` for the others;
        ``"dense"`` everywhere when numba is not installed.

    Examples
    --------
    A first layer keeping 1% of its weights multiplies as CSR when it is far
    larger than the cache, as dense rows when it is small enough to stay in it
    (the cost model's cache term); the small last layer multiplies dense:

    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skprune.compress import LAYOUTS, choose_layouts
    >>> LAYOUTS
    ('csr', 'block-csr', 'row-sparse', 'dense')
    >>> wide = sp.random(20_000, 256, density=0.01, format="csr", random_state=0)
    >>> choose_layouts([wide, np.ones((256, 3))])
    ['csr', 'dense']
    >>> narrow = sp.random(2_000, 256, density=0.01, format="csr", random_state=0)
    >>> choose_layouts([narrow, np.ones((256, 3))])
    ['row-sparse', 'dense']
    """
    if not _kernels.HAVE_NUMBA:
        return ["dense"] * len(weights)
    layouts = []
    for i, weight in enumerate(weights):
        n_rows, n_out = weight.shape
        per_row = _density(weight) * n_out  # surviving weights per input
        from_memory = n_rows * n_out * weight.dtype.itemsize > _CACHE_BYTES
        if i == 0:
            rows = "row-sparse-int8" if weight.dtype == np.int8 else "row-sparse"
            costs = {
                "csr": _sparse_cost("csr", per_row),
                "block-csr": _block_cost(weight),
                "row-sparse": _dense_cost(rows, n_out, from_memory),
            }
            layouts.append(min(costs, key=costs.get))
        else:
            csr = _sparse_cost("dense-csr", per_row)
            dense = _dense_cost("dense", n_out, from_memory)
            layouts.append("csr" if csr < dense else "dense")
    return layouts


def _block_width(weight) -> int:
    """The width of :data:`~skprune._nn._kernels.BLOCK_SIZES` whose block-CSR copy
    of ``weight`` takes the fewest bytes (the widest on a tie).

    When ``weight`` keeps whole aligned runs of ``B`` outputs (as
    ``granularity="block"`` with ``block_size=B`` leaves it), every width
    dividing ``B`` stores no padding, and the widest of them is chosen.
    """
    if not isinstance(weight, _kernels.CheckedCSR):
        weight = sp.csr_matrix(weight)  # shares a CSR weight's arrays, unchanged
    best, best_bytes = None, None
    for width in sorted(_kernels.BLOCK_SIZES, reverse=True):
        padded = weight.nnz + _kernels.block_padding(weight, width)
        stored = padded * weight.dtype.itemsize + padded // width * 2
        if best_bytes is None or stored < best_bytes:
            best, best_bytes = width, stored
    return best


def _block_operand(operand: _kernels.CheckedCSR) -> _kernels.CheckedBlockCSR:
    """The block-CSR form of a checked CSR weight, at its :func:`_block_width`."""
    return _kernels.CheckedBlockCSR.from_csr(operand, _block_width(operand))


def _block_cost(weight) -> float:
    """The block-CSR cost of a first layer, or infinity where runs are not whole."""
    # Not measured for int8: int8 blocks stay CSR. A weight stored dense keeps
    # over half its entries, where whole rows win: no CSR copy is made of it.
    if weight.dtype == np.int8 or not sp.issparse(weight):
        return np.inf
    csr = sp.csr_matrix(weight)
    if _kernels.block_padding(csr, min(_kernels.BLOCK_SIZES)):  # then every width
        return np.inf
    width = _block_width(csr)
    fixed, per_block = _COST_NS["block-csr"]
    # blocks per input (a ragged last block counts as the share it holds)
    return fixed + per_block * csr.nnz / width / max(1, csr.shape[0])


def _sparse_cost(layout: str, surviving: float) -> float:
    fixed, per_weight = _COST_NS[layout]
    return fixed + per_weight * surviving


def _dense_cost(layout: str, n_out: int, from_memory: bool) -> float:
    fixed, from_cache, from_ram = _COST_NS[layout]
    return fixed + (from_ram if from_memory else from_cache) * n_out


def _select_columns(X, column_map: np.ndarray):
    """The CSR matrix ``X`` restricted to the columns ``column_map`` keeps."""
    column_map = np.asarray(column_map)
    indices = X.indices.astype(np.int64, copy=False)
    columns, offsets, values = _kernels.kept_entries_array(
        column_map.astype(np.int64, copy=False), indices, X.indptr, X.data
    )
    n_kept = int((column_map >= 0).sum())
    return sp.csr_matrix((values, columns, offsets), shape=(X.shape[0], n_kept))


_ACTIVATIONS = {
    "relu": lambda h: np.maximum(h, 0.0, out=h),
    "tanh": np.tanh,
    "logistic": lambda h: 1.0 / (1.0 + np.exp(-h)),
}
_ACTIVATION_NAMES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "logistic"}


#: The weight dtypes :func:`compact_mlp` stores.
DTYPES = ("float32", "int8")


def check_dtype(dtype) -> str:
    """``dtype`` if it is one of :data:`DTYPES`, else ``ValueError`` naming it."""
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}.")
    return dtype


@torch.no_grad()
def compact_mlp(module: MLPModule, dtype: str = "float32") -> CompactMLP:
    """Build the compact inference model of a trained (pruned) MLP.

    Units with no incoming weight contribute the constant ``act(bias)`` to the
    next layer; it is folded into that layer's bias, so the result computes the
    same function (up to float rounding) as the module in evaluation mode. Each
    layer's layout is chosen by :func:`choose_layouts`.

    Parameters
    ----------
    module : MLPModule
    dtype : {"float32", "int8"}, default="float32"
        How the weights are stored. ``"int8"``: each row of each weight (one
        input's outgoing weights) becomes int8 values times one float32 scale,
        its largest magnitude over 127, rounded to nearest; zeros stay zeros,
        biases stay float32. The kernels multiply the int8 values as stored.

    Returns
    -------
    compact : CompactMLP

    Raises
    ------
    TypeError
        If ``module`` is not an :class:`~skprune.MLPModule`.
    ValueError
        If ``dtype`` is not one of these, or the module's weights or biases
        are not all finite.

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

    Stored in int8 (one of :data:`DTYPES`), each weight row has one scale:

    >>> from skprune.compress import DTYPES
    >>> DTYPES
    ('float32', 'int8')
    >>> small = compact_mlp(module, dtype="int8")
    >>> [w.dtype.name for w in small.weights], [s.shape for s in small.scales]
    (['int8', 'int8'], [(5,), (3,)])
    """
    check_dtype(dtype)
    _check_mlp(module)
    for name, parameter in module.named_parameters():
        if not _all_finite(parameter.detach()):
            raise ValueError(
                f"The module's {name} holds NaN or infinite values: it cannot be "
                "compressed (nor quantized to int8)."
            )
    activation = _ACTIVATION_NAMES[type(module.activation)]
    layers = list(module.layers)
    # The first layer (a GiB at hashing width) is only read: no copy of it.
    weights = [_in_major(layers[0]).cpu().float()]
    weights += [_in_major(layer).cpu().float().clone() for layer in layers[1:]]
    biases = [layer.bias.detach().cpu().float().clone() for layer in layers]
    # Fold units without incoming weights into the next bias; they then have no
    # outgoing weight either, and go with the other dead units.
    occupancy = [_occupancy(weights[0])]
    for i in range(len(weights) - 1):
        constant = ~occupancy[i][1]
        if constant.any():
            value = module.activation(biases[i][constant])
            biases[i + 1] += value @ weights[i + 1][constant]
            weights[i + 1][constant] = 0.0
        occupancy.append(_occupancy(weights[i + 1]))
    inputs, units = _live_structure(weights, biases, occupancy)
    first = layers[0]
    columns = (
        first.input_index.cpu().numpy()
        if first.input_index is not None
        else np.arange(first.in_features)
    )
    kept = [_stored_weight(w, rows, cols, dtype) for w, rows, cols in
            zip(weights, [inputs, *units], [*units, None], strict=True)]  # fmt: skip
    # fancy indexing copies: the module's biases stay its own
    kept_biases = [
        b.numpy()[u.numpy()] for b, u in zip(biases[:-1], units, strict=True)
    ]
    return CompactMLP(
        n_features=module.n_features,
        input_index=columns[inputs.numpy()].astype(np.int64),
        weights=[w for w, _ in kept],
        biases=[*kept_biases, biases[-1].numpy().copy()],
        activation=activation,
        scales=[s for _, s in kept] if dtype == "int8" else None,
    )


def _stored_weight(weight: torch.Tensor, rows, columns, dtype: str):
    """``weight[rows][:, columns]`` in :func:`smaller_form` (int8 and its row
    scales for ``dtype="int8"``), built by row chunks.

    One pass counts each row's non-zeros, one writes the arrays of the chosen
    form: no full-size temporary, at most a chunk of rows besides the result.
    """
    all_rows, all_columns = (
        index is None or len(index) == size
        for index, size in zip((rows, columns), weight.shape, strict=True)
    )
    shape = (weight.shape[0] if all_rows else len(rows),
             weight.shape[1] if all_columns else len(columns))  # fmt: skip
    chunks = _row_chunks(shape)

    array = weight.numpy()  # numpy's indexing: see _shrink._chunk_array
    rows = None if all_rows else rows.numpy()
    columns = None if all_columns else columns.numpy()

    def parts():
        # kept rows are sorted: every row kept means the rows in order
        for chunk in chunks:
            part = array[chunk] if rows is None else array[rows[chunk]]
            part = part if columns is None else part[:, columns]
            yield quantize_rows(part) if dtype == "int8" else (part, None)

    counts = np.zeros(shape[0] + 1, dtype=np.int64)
    for chunk, (values, _) in zip(chunks, parts(), strict=True):
        counts[1:][chunk] = np.count_nonzero(values, axis=1)
    nnz = int(counts.sum())
    itemsize = np.dtype(np.int8 if dtype == "int8" else np.float32).itemsize
    # smaller_form's rule, decided before anything of the size is made
    sparse = nnz * (itemsize + 4) + (shape[0] + 1) * 4 < shape[0] * shape[1] * itemsize
    stored_dtype = np.int8 if dtype == "int8" else np.float32
    scales = np.empty(shape[0], dtype=np.float32)
    if sparse:
        index_dtype = np.int32 if max(nnz, shape[1]) < 2**31 else np.int64
        indptr = np.cumsum(counts).astype(index_dtype)
        data = np.empty(nnz, dtype=stored_dtype)
        indices = np.empty(nnz, dtype=index_dtype)
    else:
        dense = np.empty(shape, dtype=stored_dtype)
    for chunk, (values, part_scales) in zip(chunks, parts(), strict=True):
        if part_scales is not None:
            scales[chunk] = part_scales
        if not sparse:
            dense[chunk] = values
            continue
        where = slice(indptr[chunk.start], indptr[chunk.stop])
        nonzero = values != 0
        data[where] = values[nonzero]  # row-major: sorted columns in each row
        indices[where] = np.flatnonzero(nonzero) % shape[1]  # cheaper than 2-d
    stored = sp.csr_matrix((data, indices, indptr), shape=shape) if sparse else dense
    return stored, scales


def quantize_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and one float32 scale per row, ``weight ~ scale[:, None] * q``.

    Each row's scale is its largest magnitude over 127 (1 for an all-zero row,
    at least float32's smallest normal number, so that every scale is
    positive); values round to nearest, so each differs from the weight by at
    most half its row's scale.

    Parameters
    ----------
    weight : ndarray of float32, shape (n_rows, n_columns), finite

    Returns
    -------
    values : ndarray of int8, shape (n_rows, n_columns)
    scales : ndarray of float32, shape (n_rows,)
    """
    values = np.empty(weight.shape, dtype=np.int8)
    scales = np.empty(weight.shape[0], dtype=np.float32)
    for chunk in _row_chunks(weight.shape):  # temporaries of a chunk of rows
        part = weight[chunk]
        largest = np.abs(part).max(axis=1, initial=0.0).astype(np.float32)
        # float32's smallest normal number where a subnormal row's scale would be 0
        scale = np.maximum(largest / np.float32(127), np.finfo(np.float32).tiny)
        scales[chunk] = np.where(largest > 0, scale, np.float32(1))
        values[chunk] = np.clip(np.rint(part / scales[chunk, None]), -127, 127)
    return values, scales
