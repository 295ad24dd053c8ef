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
def kept_inputs(weight: torch.Tensor, in_axis: int) -> torch.Tensor:
    """Boolean mask of the inputs of a layer with at least one non-zero weight."""
    return (weight != 0).any(dim=1 - in_axis)


@torch.no_grad()
def pruning_report(module: nn.Module, layers: list[PrunableLayer]) -> list[dict]:
    """One row per affine layer: shape, weights kept, sparsity, units kept.

    Parameters
    ----------
    module : torch.nn.Module
    layers : list of skprune.masks.PrunableLayer

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
        rows.append(
            {
                "layer": layer.name,
                "shape": tuple(weight.shape),
                "n_weights": weight.numel(),
                "kept": n_kept,
                "sparsity": 1.0 - n_kept / weight.numel(),
                "inputs": layer.in_features,
                "inputs_kept": int(kept_inputs(weight, layer.in_axis).sum()),
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
