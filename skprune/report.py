"""What pruning left: per-layer counts and the theoretical cost of a prediction.

Pure torch. Rows are plain dicts of scalars, so ``pandas.DataFrame(rows)`` takes
them as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import PrunableLayer

__all__ = ["flops", "kept_inputs", "pruning_report"]


@torch.no_grad()
def kept_inputs(module: nn.Module, layer: PrunableLayer) -> torch.Tensor:
    """Boolean mask, over the layer's original inputs, of those with a weight left.

    Inputs removed by :func:`skprune.compress.shrink_mlp_` count as not kept.
    """
    params = dict(module.named_parameters())
    nonzero = (params[layer.weight] != 0).any(dim=1 - layer.in_axis)
    index = getattr(module.get_submodule(layer.name), "input_index", None)
    if index is None:
        return nonzero
    kept = torch.zeros(layer.in_features, dtype=torch.bool, device=nonzero.device)
    kept[index[nonzero]] = True
    return kept


@torch.no_grad()
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
    """
    params = dict(module.named_parameters())
    rows = []
    for layer in layers:
        weight = params[layer.weight]
        nonzero = weight != 0
        outputs = nonzero.any(dim=layer.in_axis)
        if layer.bias is not None:
            outputs |= params[layer.bias] != 0
        n_kept = int(nonzero.sum())
        shape = [0, 0]
        shape[layer.in_axis] = layer.in_features
        shape[layer.out_axis] = layer.out_features
        n_weights = layer.in_features * layer.out_features
        rows.append(
            {
                "layer": layer.name,
                "shape": tuple(shape),
                "n_weights": n_weights,
                "kept": n_kept,
                "sparsity": 1.0 - n_kept / n_weights,
                "inputs": layer.in_features,
                "inputs_kept": int(kept_inputs(module, layer).sum()),
                "outputs": layer.out_features,
                "outputs_kept": int(outputs.sum()),
            }
        )
    return rows


@torch.no_grad()
def flops(layers: list[PrunableLayer], module: nn.Module | None = None) -> int:
    """Theoretical floating-point operations of one prediction on a dense input.

    Two operations (a multiply and an add) per weight and one per bias: of every
    weight when ``module`` is None (the dense network), of the non-zero ones
    otherwise. Activations are not counted.
    """
    params = dict(module.named_parameters()) if module is not None else {}
    total = 0
    for layer in layers:
        if module is None:
            total += 2 * layer.in_features * layer.out_features
            total += layer.out_features if layer.bias is not None else 0
            continue
        total += 2 * int((params[layer.weight] != 0).sum())
        if layer.bias is not None:
            total += int((params[layer.bias] != 0).sum())
    return total
