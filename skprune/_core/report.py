"""What pruning left: per-layer counts and the theoretical cost of a prediction.

Pure torch. Rows are plain dicts of scalars, so ``pandas.DataFrame(rows)`` takes
them as they are. Everything is counted in one pass over each weight, a block of
rows at a time (:func:`summarize`): a 268M-weight layer is read once, with no
full-size temporary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .masks import PrunableLayer

__all__ = ["Summary", "flops", "kept_inputs", "pruning_report", "summarize"]

# Rows per block are chosen so that a block holds about this many weights.
_BLOCK_ENTRIES = 1 << 20


@dataclass(frozen=True)
class _LayerCounts:
    kept: int  # non-zero weights
    inputs: torch.Tensor  # bool over the original inputs: any weight left
    outputs: torch.Tensor  # bool over outputs: any weight or bias left
    bias_kept: int  # non-zero biases


@dataclass(frozen=True)
class Summary:
    """Everything :func:`summarize` counts, from one pass over the weights.

    Attributes
    ----------
    rows : list of dict
        The per-layer report of :func:`pruning_report`.
    n_params : int
        Entries of the counted parameters in the original network.
    n_nonzero : int
        How many of them are non-zero (removed ones count as zero).
    flops_dense : int
        :func:`flops` of the dense network.
    flops_pruned : int
        :func:`flops` of the module as it is.
    support : torch.Tensor of bool
        :func:`kept_inputs` of the first layer.

    Examples
    --------
    Half of the first layer's weights, two of its four inputs, zeroed:

    >>> import torch
    >>> from skprune.report import summarize
    >>> from skprune.masks import apply_masks, find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> half = torch.tensor([[True, False, True, False]] * 3)
    >>> apply_masks(dict(module.named_parameters()), {"0.weight": half})
    >>> summary = summarize(module, layers, counted=["0.weight"])
    >>> summary.n_params, summary.n_nonzero, summary.support.tolist()
    (12, 6, [True, False, True, False])
    >>> summary.flops_dense, summary.flops_pruned
    (41, 29)
    """

    rows: list
    n_params: int
    n_nonzero: int
    flops_dense: int
    flops_pruned: int
    support: torch.Tensor


@torch.no_grad()
def _count_layer(module: nn.Module, layer: PrunableLayer) -> _LayerCounts:
    """Non-zero weights, and which inputs and outputs keep any, in one pass."""
    params = dict(module.named_parameters())
    weight = params[layer.weight]
    n_rows = weight.shape[0]
    step = max(1, _BLOCK_ENTRIES // max(weight.shape[1], 1))
    per_row = torch.empty(n_rows, dtype=torch.int64, device=weight.device)
    per_column = torch.zeros(weight.shape[1], dtype=torch.bool, device=weight.device)
    for start in range(0, n_rows, step):
        block = weight[start : start + step]
        per_row[start : start + step] = torch.count_nonzero(block, dim=1)
        per_column |= (block != 0).any(dim=0)
    any_in_row = per_row > 0
    inputs, outputs = (
        (any_in_row, per_column) if layer.in_axis == 0 else (per_column, any_in_row)
    )
    bias_kept = 0
    if layer.bias is not None:
        bias_nonzero = params[layer.bias] != 0
        outputs = outputs | bias_nonzero
        bias_kept = int(bias_nonzero.sum())
    index = getattr(module.get_submodule(layer.name), "input_index", None)
    if index is not None:  # shrunk: map the rows left back to the original inputs
        kept = torch.zeros(layer.in_features, dtype=torch.bool, device=inputs.device)
        kept[index[inputs]] = True
        inputs = kept
    return _LayerCounts(int(per_row.sum()), inputs, outputs, bias_kept)


def _dense_flops(layers: list[PrunableLayer]) -> int:
    return sum(
        2 * layer.in_features * layer.out_features
        + (layer.out_features if layer.bias is not None else 0)
        for layer in layers
    )


@torch.no_grad()
def summarize(
    module: nn.Module,
    layers: list[PrunableLayer],
    counted: Iterable[str] | None = None,
) -> Summary:
    """Per-layer report, parameter counts, FLOPs and support, in one pass.

    Parameters
    ----------
    module : torch.nn.Module
    layers : list of skprune.masks.PrunableLayer
        The layers as they were before any shrinking: shapes and counts refer
        to the original network, and removed weights count as pruned.
    counted : iterable of str, optional
        Names of the weights and biases of ``layers`` that ``n_params`` and
        ``n_nonzero`` count (the prunable ones); None counts every weight.

    Returns
    -------
    summary : Summary

    Examples
    --------
    >>> import torch
    >>> from skprune.report import summarize
    >>> from skprune.masks import apply_masks, find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> half = torch.tensor([[True, False, True, False]] * 3)
    >>> apply_masks(dict(module.named_parameters()), {"0.weight": half})
    >>> summary = summarize(module, layers)
    >>> [row["kept"] for row in summary.rows], summary.n_params, summary.n_nonzero
    ([6, 6], 18, 12)
    """
    counts = [_count_layer(module, layer) for layer in layers]
    rows = []
    sizes, nonzero = {}, {}
    for layer, count in zip(layers, counts, strict=True):
        shape = [0, 0]
        shape[layer.in_axis] = layer.in_features
        shape[layer.out_axis] = layer.out_features
        n_weights = layer.in_features * layer.out_features
        rows.append(
            {
                "layer": layer.name,
                "shape": tuple(shape),
                "n_weights": n_weights,
                "kept": count.kept,
                "sparsity": 1.0 - count.kept / n_weights,
                "inputs": layer.in_features,
                "inputs_kept": int(count.inputs.sum()),
                "outputs": layer.out_features,
                "outputs_kept": int(count.outputs.sum()),
            }
        )
        sizes[layer.weight], nonzero[layer.weight] = n_weights, count.kept
        if layer.bias is not None:
            sizes[layer.bias], nonzero[layer.bias] = layer.out_features, count.bias_kept
    counted = [layer.weight for layer in layers] if counted is None else counted
    counted = list(counted)
    return Summary(
        rows=rows,
        n_params=sum(sizes[name] for name in counted),
        n_nonzero=sum(nonzero[name] for name in counted),
        flops_dense=_dense_flops(layers),
        flops_pruned=sum(2 * c.kept + c.bias_kept for c in counts),
        support=counts[0].inputs if counts else torch.zeros(0, dtype=torch.bool),
    )


@torch.no_grad()
def kept_inputs(module: nn.Module, layer: PrunableLayer) -> torch.Tensor:
    """Boolean mask, over the layer's original inputs, of those with a weight left.

    Inputs removed by :func:`skprune.compress.shrink_mlp_` count as not kept.

    Parameters
    ----------
    module : torch.nn.Module
    layer : skprune.masks.PrunableLayer
        The layer as it was before any shrinking.

    Returns
    -------
    kept : torch.Tensor of bool
        Of length ``layer.in_features``.

    Examples
    --------
    >>> import torch
    >>> from skprune.report import kept_inputs
    >>> from skprune.masks import apply_masks, find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> half = torch.tensor([[True, False, True, False]] * 3)
    >>> apply_masks(dict(module.named_parameters()), {"0.weight": half})
    >>> kept_inputs(module, layers[0]).tolist()
    [True, False, True, False]
    """
    return _count_layer(module, layer).inputs


def pruning_report(module: nn.Module, layers: list[PrunableLayer]) -> list[dict]:
    """One row per affine layer: shape, weights kept, sparsity, units kept.

    Parameters
    ----------
    module : torch.nn.Module
    layers : list of skprune.masks.PrunableLayer
        The layers as they were before any shrinking: shapes and counts refer
        to the original network, and removed weights count as pruned.

    Returns
    -------
    rows : list of dict
        Keys ``layer``, ``shape``, ``n_weights``, ``kept``, ``sparsity``,
        ``inputs``, ``inputs_kept``, ``outputs``, ``outputs_kept``. An input is
        kept when any of its weights is non-zero; an output unit when any of its
        weights or its bias is.

    Examples
    --------
    >>> import torch
    >>> from skprune.report import pruning_report
    >>> from skprune.masks import apply_masks, find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> half = torch.tensor([[True, False, True, False]] * 3)
    >>> apply_masks(dict(module.named_parameters()), {"0.weight": half})
    >>> first = pruning_report(module, layers)[0]
    >>> first["shape"], first["kept"], first["sparsity"], first["inputs_kept"]
    ((3, 4), 6, 0.5, 2)
    """
    return summarize(module, layers).rows


def flops(layers: list[PrunableLayer], module: nn.Module | None = None) -> int:
    """Theoretical floating-point operations of one prediction on a dense input.

    Two operations (a multiply and an add) per weight and one per bias: of every
    weight when ``module`` is None (the dense network), of the non-zero ones
    otherwise. Activations are not counted.

    Parameters
    ----------
    layers : list of skprune.masks.PrunableLayer
    module : torch.nn.Module, optional
        The module whose non-zero weights are counted; None counts them all.

    Returns
    -------
    flops : int

    Examples
    --------
    A 4-3-2 network: 2 * (12 + 6) weights and 3 + 2 biases, then half of the
    first layer's weights zeroed:

    >>> import torch
    >>> from skprune.report import flops
    >>> from skprune.masks import apply_masks, find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> half = torch.tensor([[True, False, True, False]] * 3)
    >>> apply_masks(dict(module.named_parameters()), {"0.weight": half})
    >>> flops(layers), flops(layers, module)
    (41, 29)
    """
    if module is None:
        return _dense_flops(layers)
    return summarize(module, layers).flops_pruned
