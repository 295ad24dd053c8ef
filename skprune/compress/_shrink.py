"""Shrinking during training: cut the units and features pruning emptied out of
an :class:`~skprune.MLPModule`, in place.

:func:`structure_to_keep` finds the input features and hidden units of an MLP
that still do something (a unit with no incoming weights only adds a constant,
a unit with no outgoing weights adds nothing, an input with no weights is
ignored); :func:`shrink_mlp_` removes the others, so retraining after structured
pruning runs on the smaller network and touches only the surviving columns of
the input. No scikit-learn here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._nn.modules import MLPModule, SparseLinear

__all__ = ["shrink_mlp_", "structure_to_keep"]


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

    Raises
    ------
    TypeError
        If ``module`` is not an :class:`~skprune.MLPModule`.

    Examples
    --------
    >>> import torch
    >>> from skprune import MLPModule
    >>> from skprune.compress import shrink_mlp_, structure_to_keep
    >>> _ = torch.manual_seed(0)
    >>> module = MLPModule(n_features=6, n_classes=2, hidden_layer_sizes=(4,)).eval()
    >>> with torch.no_grad():
    ...     module.layers[0].weight[[1, 4]] = 0.0  # inputs 1 and 4 are read by no unit
    ...     module.layers[1].weight[:, 2] = 0.0  # unit 2 feeds no output
    >>> inputs, units = structure_to_keep(module)
    >>> inputs.tolist(), [u.tolist() for u in units]
    ([0, 2, 3, 5], [[0, 1, 3]])
    """
    _check_mlp(module)
    weights = [_in_major(layer) for layer in module.layers]
    biases = [layer.bias.detach() for layer in module.layers]
    return _live_structure(weights, biases)


#: Bytes of a weight's rows looked at in one go: temporaries stay this size
#: however wide the layer (a 2^20-feature first layer is a GiB).
_CHUNK_BYTES = 4 * 2**20


def _row_chunks(shape) -> list[slice]:
    """Slices of the rows of a float32 array of ``shape``, about
    :data:`_CHUNK_BYTES` each."""
    n_rows, n_columns = shape
    step = max(1, _CHUNK_BYTES // max(1, n_columns * 4))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def _chunk_array(tensor: torch.Tensor, chunk: slice) -> np.ndarray:
    # numpy: one thread, vectorised; torch's elementwise ops wait on their
    # threads on a loaded machine (a pass took 20x a copy's time)
    return tensor[chunk].detach().cpu().float().numpy()


def _occupancy(weight) -> tuple[torch.Tensor, torch.Tensor]:
    """Which rows and which columns of ``weight`` hold a non-zero: one pass."""
    rows = np.zeros(weight.shape[0], dtype=bool)
    columns = np.zeros(weight.shape[1], dtype=bool)
    for chunk in _row_chunks(weight.shape):
        nonzero = _chunk_array(weight, chunk) != 0
        rows[chunk] = nonzero.any(axis=1)
        columns |= nonzero.any(axis=0)
    device = weight.device  # with the biases they are combined with
    return torch.from_numpy(rows).to(device), torch.from_numpy(columns).to(device)


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value of ``tensor`` is finite, by chunks of rows."""
    if tensor.dim() != 2:
        return bool(torch.isfinite(tensor).all())
    chunks = _row_chunks(tensor.shape)
    return all(np.isfinite(_chunk_array(tensor, chunk)).all() for chunk in chunks)


def _live_structure(
    weights, biases, occupancy=None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Inputs with a weight; units with an input (weight or bias) and an output.

    ``occupancy``: each weight's :func:`_occupancy`, where the caller has it.
    """
    if occupancy is None:
        occupancy = [_occupancy(weight) for weight in weights]
    units = []
    for i in range(len(weights) - 1):
        has_input = occupancy[i][1] | (biases[i] != 0)
        has_output = occupancy[i + 1][0]
        units.append(torch.nonzero(has_input & has_output).squeeze(1))
    inputs = torch.nonzero(occupancy[0][0]).squeeze(1)
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

    Raises
    ------
    TypeError
        If ``module`` is not an :class:`~skprune.MLPModule`.
    ValueError
        If ``units`` does not hold one index tensor per hidden layer.

    Examples
    --------
    Cutting out what :func:`structure_to_keep` finds dead leaves the function
    the module computes as it was, on inputs of the same width:

    >>> import torch
    >>> from skprune import MLPModule
    >>> from skprune.compress import shrink_mlp_, structure_to_keep
    >>> _ = torch.manual_seed(0)
    >>> module = MLPModule(n_features=6, n_classes=2, hidden_layer_sizes=(4,)).eval()
    >>> with torch.no_grad():
    ...     module.layers[0].weight[[1, 4]] = 0.0  # inputs 1 and 4 are read by no unit
    ...     module.layers[1].weight[:, 2] = 0.0  # unit 2 feeds no output
    >>> x = torch.rand(3, 6)
    >>> before = module(x)
    >>> shrink_mlp_(module, *structure_to_keep(module))
    >>> module.layers[0].weight.shape, module.hidden_layer_sizes
    (torch.Size([4, 3]), (3,))
    >>> module.layers[0].input_index.tolist()
    [0, 2, 3, 5]
    >>> torch.allclose(module(x), before, atol=1e-6)
    True
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
