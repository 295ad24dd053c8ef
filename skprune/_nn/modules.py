"""Torch modules that take sparse input: :class:`SparseLinear` and :class:`MLPModule`.

A batch of a scipy CSR matrix arrives here as a torch sparse CSR tensor. The first
layer multiplies it with its weight through ``embedding_bag`` (a gather and a sum per
row, the cost of the stored values), so no batch is ever densified. With
``sparse_grad=True`` the first layer's gradient holds only the rows (input features)
that the batch touched, which :class:`skprune.optim.LazyAdam` steps lazily.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._kernels import kept_entries
from ._random import fit_generator
from .data import quiet_sparse_csr_beta

__all__ = ["MLPModule", "SparseLinear", "float64_prediction"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid}

# A context variable, not a module attribute: threads predicting with one module
# at the same time each keep their own setting.
_FLOAT64_PREDICTION = contextvars.ContextVar("float64_prediction", default=False)


@contextlib.contextmanager
def float64_prediction() -> Iterator[None]:
    """Make :class:`MLPModule` compute its dense products and outputs in float64.

    The estimators' prediction methods run the net inside it, so that a row's
    prediction does not depend on the batch it comes in: BLAS chooses its
    kernels by the number of rows, and in float32 two kernels round the same
    row differently (about 1e-7); in float64 the difference is float64
    rounding (about 1e-16). The first layer's sparse product (``embedding_bag``)
    sums each row in a fixed order whatever the batch, and stays float32, so
    that a wide first layer is never copied. Training never runs inside it.

    Examples
    --------
    >>> import torch
    >>> from skprune.modules import MLPModule, float64_prediction
    >>> module = MLPModule(n_features=5, n_classes=2, hidden_layer_sizes=(4,)).eval()
    >>> with float64_prediction():
    ...     module(torch.ones(3, 5)).dtype
    torch.float64
    """
    token = _FLOAT64_PREDICTION.set(True)
    try:
        yield
    finally:
        _FLOAT64_PREDICTION.reset(token)


class SparseLinear(nn.Module):
    """Affine layer ``x @ weight + bias`` whose input may be sparse.

    Parameters
    ----------
    in_features : int
        Number of input features.
    out_features : int
        Number of output units.
    bias : bool, default=True
        Whether to learn an additive bias.
    sparse_grad : bool, default=False
        If True, the gradient of ``weight`` is a sparse tensor holding only the rows
        of the input features present in the batch. Optimizers must then accept
        sparse gradients (:class:`skprune.optim.LazyAdam`, ``torch.optim.SGD``).
        Dense input then goes through the sparse path as well, so that training
        does not depend on the input's format.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (in_features, out_features)
        Stored input-major, the transpose of :class:`torch.nn.Linear`, so that one
        input feature is one row: that is what makes row-sparse gradients possible.
    bias : torch.nn.Parameter of shape (out_features,) or None
    in_axis : int
        Axis of ``weight`` indexed by input features (0 here, 1 for ``nn.Linear``).
    input_width : int
        Number of columns of the input the layer takes; ``in_features`` until
        :meth:`restrict_inputs` removes some.
    input_index : torch.Tensor of int64 or None
        After :meth:`restrict_inputs`, the input column of each weight row.

    Examples
    --------
    Two rows of a 1000-column sparse batch, three stored values in all:

    >>> import torch
    >>> from skprune.modules import SparseLinear
    >>> layer = SparseLinear(1000, 4, sparse_grad=True)
    >>> x = torch.sparse_csr_tensor(
    ...     [0, 2, 3], [5, 900, 7], [1.0, 0.5, 2.0], (2, 1000), check_invariants=True
    ... )
    >>> out = layer(x)
    >>> out.shape, layer.weight.shape
    (torch.Size([2, 4]), torch.Size([1000, 4]))
    >>> torch.allclose(out, x.to_dense() @ layer.weight + layer.bias)
    True

    The weight's gradient holds the rows of the features the batch touched:

    >>> out.sum().backward()
    >>> grad = layer.weight.grad.coalesce()
    >>> grad.is_sparse, grad.indices()[0].tolist()
    (True, [5, 7, 900])
    """

    in_axis = 0

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        sparse_grad: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.input_width = in_features
        self.sparse_grad = sparse_grad
        self.register_buffer("input_index", None)
        self.register_buffer("_column_map", None)
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like :class:`torch.nn.Linear`: uniform in ``±1/sqrt(fan_in)``.

        Draws from the running fit's generator (:func:`skprune.fit_generator`),
        outside a fit from torch's global one.
        """
        generator = fit_generator(self.weight.device)
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        nn.init.uniform_(self.weight, -bound, bound, generator=generator)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound, generator=generator)

    @torch.no_grad()
    def restrict_inputs(self, rows: torch.Tensor) -> None:
        """Record that only these weight rows remain (the caller slices the weight).

        Afterwards the layer still takes inputs of ``input_width`` columns and
        skips the others: for sparse input, their stored values are dropped
        before the product, so they cost nothing.

        Parameters
        ----------
        rows : torch.Tensor of int64
            Positions, among the current weight rows, of the rows kept.
        """
        # Built where the weight lives: indexing a CPU map with device indices fails.
        device = self.weight.device
        rows = rows.to(device=device, dtype=torch.int64)
        index = rows if self.input_index is None else self.input_index[rows]
        column_map = torch.full(
            (self.input_width,), -1, dtype=torch.int64, device=device
        )
        column_map[index] = torch.arange(len(index), device=device)
        self.input_index = index
        self._column_map = column_map
        self.in_features = len(index)

    def forward(self, x: torch.Tensor, dtype: torch.dtype | None = None):
        """``x @ weight + bias``, of ``dtype`` (None: the weight's).

        A dense input's product is computed in ``dtype``; a sparse one's in the
        weight's dtype (each row summed in a fixed order), then converted.
        """
        # A dense batch is cut to the kept columns here; a sparse one below.
        sliced = self._column_map is not None and x.layout == torch.strided
        if sliced:
            x = x[:, self.input_index]
        if x.layout == torch.sparse_coo:
            with quiet_sparse_csr_beta():
                x = x.coalesce().to_sparse_csr()
        elif x.layout == torch.strided and self.sparse_grad:
            # A dense batch takes the sparse path too, so that the gradient (and
            # with it a lazy optimizer's trajectory) does not depend on the format.
            with quiet_sparse_csr_beta():
                x = x.to_sparse_csr()
        if x.layout == torch.sparse_csr:
            columns, offsets, values = x.col_indices(), x.crow_indices(), x.values()
            if self._column_map is not None and not sliced:
                columns, offsets, values = kept_entries(
                    self._column_map, columns, offsets, values
                )
            out = F.embedding_bag(
                columns,
                self.weight,
                offsets,
                mode="sum",
                sparse=self.sparse_grad,
                per_sample_weights=values.to(self.weight.dtype),
                include_last_offset=True,
            )
            out = out.to(dtype or out.dtype)
        else:
            dtype = dtype or self.weight.dtype
            out = x.to(dtype) @ self.weight.to(dtype)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, sparse_grad={self.sparse_grad}"
        )


class MLPModule(nn.Module):
    """Multi-layer perceptron whose first layer takes sparse or dense input.

    The layers are ``SparseLinear(n_features, h1)``, then ``nn.Linear`` for every
    further hidden layer and for the output, with an activation and dropout after
    each hidden layer. The output is unnormalised scores (logits), to be paired
    with ``torch.nn.CrossEntropyLoss``.

    Parameters
    ----------
    n_features : int
        Number of input features. :class:`skprune.PrunedClassifier` sets it from
        the data.
    n_classes : int
        Number of outputs. :class:`skprune.PrunedClassifier` sets it from the data.
    hidden_layer_sizes : int or sequence of int, default=(256,)
        Width of each hidden layer; empty for a linear model.
    activation : {"relu", "tanh", "logistic"}, default="relu"
        Non-linearity after each hidden layer.
    dropout : float, default=0.5
        Dropout probability after each hidden layer's activation, as
        ``torch.nn.Dropout`` (``module.dropout.p``) but drawn, during a fit, from
        the fit's own generator.
    sparse_grad : bool, default=False
        Passed to the first layer: make its gradient row-sparse. Needs an
        optimizer that accepts sparse gradients, such as
        :class:`skprune.optim.LazyAdam`.

    Attributes
    ----------
    layers : torch.nn.ModuleList
        The affine layers, input first, output last. Initialised like
        ``torch.nn.Linear``, from the running fit's generator
        (:func:`skprune.fit_generator`); constructed outside a fit, from torch's
        global generator.
    dropout : torch.nn.Dropout
        The dropout after each hidden layer; ``dropout.p`` is its probability.
    accepts_sparse_input : bool
        Class attribute telling :class:`skprune.PrunedClassifier` that batches may
        be handed over as torch sparse tensors. Modules without it get dense
        batches (densified one batch at a time).

    Examples
    --------
    >>> import torch
    >>> from skprune import MLPModule
    >>> module = MLPModule(n_features=1000, n_classes=3, hidden_layer_sizes=(32,))
    >>> x = torch.sparse_csr_tensor(
    ...     [0, 2, 3], [5, 900, 7], [1.0, 0.5, 2.0], (2, 1000), check_invariants=True
    ... )
    >>> module(x).shape
    torch.Size([2, 3])
    """

    accepts_sparse_input = True

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden_layer_sizes: int | Sequence[int] = (256,),
        activation: str = "relu",
        dropout: float = 0.5,
        sparse_grad: bool = False,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        if isinstance(hidden_layer_sizes, int):  # as in MLPClassifier
            hidden_layer_sizes = (hidden_layer_sizes,)
        sizes = [n_features, *hidden_layer_sizes, n_classes]
        if not all(isinstance(size, int | np.integer) for size in sizes):
            raise ValueError(
                "n_features, n_classes and hidden_layer_sizes must be integers, "
                f"got layer sizes {sizes}."
            )
        sizes = [int(size) for size in sizes]
        if any(size < 1 for size in sizes):
            raise ValueError(
                "n_features, n_classes and hidden_layer_sizes must all be positive, "
                f"got layer sizes {sizes}."
            )
        self.n_features = sizes[0]
        self.n_classes = sizes[-1]
        self.hidden_layer_sizes = tuple(sizes[1:-1])
        first = SparseLinear(sizes[0], sizes[1], sparse_grad=sparse_grad)
        # Built uninitialised: nn.Linear's own initialisation draws from the
        # global generator, which concurrent fits share.
        device = first.weight.device  # torch's default device, as nn.Linear's
        rest = [
            nn.utils.skip_init(nn.Linear, a, b, device=device)
            for a, b in zip(sizes[1:-1], sizes[2:], strict=True)
        ]
        for layer in rest:
            _init_like_linear(layer, fit_generator(layer.weight.device))
        self.layers = nn.ModuleList([first, *rest])
        self.activation = _ACTIVATIONS[activation]()
        self.dropout = _FitDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.float64 if _FLOAT64_PREDICTION.get() else None
        *hidden, output = self.layers
        for layer in hidden:
            x = self.dropout(self.activation(_affine(layer, x, dtype)))
        return _affine(output, x, dtype)


def _affine(layer: nn.Module, x: torch.Tensor, dtype) -> torch.Tensor:
    """``layer(x)``, computed in ``dtype`` if given (float32 weights are upcast)."""
    if dtype is None:
        return layer(x)
    if isinstance(layer, SparseLinear):
        return layer(x, dtype=dtype)
    bias = None if layer.bias is None else layer.bias.to(dtype)
    return F.linear(x.to(dtype), layer.weight.to(dtype), bias)


def _init_like_linear(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """``nn.Linear.reset_parameters``, drawing from ``generator`` (None: global)."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class _FitDropout(nn.Dropout):
    """``nn.Dropout`` whose mask comes from the running fit's generator.

    ``nn.Dropout`` can only draw from torch's global generator. In training mode
    during a fit, each element is kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``, as ``nn.Dropout`` does; in evaluation mode it is the
    identity, and outside a fit it is ``nn.Dropout`` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = fit_generator(x.device)
        if generator is None or not self.training or self.p == 0.0:
            return super().forward(x)
        keep = 1.0 - self.p
        noise = torch.empty_like(x)
        if keep == 0.0:
            noise.zero_()
        else:
            noise.bernoulli_(keep, generator=generator).div_(keep)
        return x.mul_(noise) if self.inplace else x * noise
