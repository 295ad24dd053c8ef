"""Which weights a network keeps: finding prunable layers, choosing and holding masks.

Pure torch, no scikit-learn. A mask is a boolean tensor of the parameter's shape,
True where the weight is kept, held as a plain tensor next to the module rather
than as a ``torch.nn.utils.prune`` re-parametrisation (whose forward pre-hooks
break ``copy.deepcopy`` and pickling, which scikit-learn does constantly).

Masks are chosen from importance scores (see :mod:`skprune.importance`), either
per weight or per group of weights (a hidden unit, an input feature), across all
layers at once (``scope="global"``) or layer by layer (``scope="layer"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch

import torch
from torch import nn

__all__ = [
    "PrunableLayer",
    "apply_masks",
    "find_prunable_layers",
    "mask_sparse_gradient",
    "reachable_ratio",
    "select_masks",
]


@dataclass(frozen=True)
class PrunableLayer:
    """An affine layer whose weights can be pruned.

    Attributes
    ----------
    name : str
        The layer's path in the module, for example ``"layers.0"``.
    weight : str
        Full name of its weight parameter, for example ``"layers.0.weight"``.
    bias : str or None
        Full name of its bias parameter, if it has one.
    in_axis : int
        Axis of the weight that indexes the layer's inputs (1 for
        ``torch.nn.Linear``, 0 for :class:`skprune.modules.SparseLinear`).
    in_features : int
    out_features : int
    """

    name: str
    weight: str
    bias: str | None
    in_axis: int
    in_features: int
    out_features: int

    @property
    def out_axis(self) -> int:
        """Axis of the weight that indexes the layer's outputs."""
        return 1 - self.in_axis


def find_prunable_layers(module: nn.Module) -> list[PrunableLayer]:
    """List the affine layers of ``module`` in registration order.

    Layers are ``torch.nn.Linear`` and any module with a 2-d ``weight`` and an
    ``in_axis`` attribute (such as :class:`skprune.modules.SparseLinear`). For the
    networks this package builds, registration order is the order of the forward
    pass, so the last layer is the output layer.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    layers : list of PrunableLayer
    """
    layers = []
    for name, layer in module.named_modules():
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            continue
        if isinstance(layer, nn.Linear):
            in_axis = 1
        elif hasattr(layer, "in_axis"):
            in_axis = int(layer.in_axis)
        else:
            continue
        prefix = f"{name}." if name else ""
        bias = getattr(layer, "bias", None)
        layers.append(
            PrunableLayer(
                name=name,
                weight=prefix + "weight",
                bias=prefix + "bias" if isinstance(bias, torch.Tensor) else None,
                in_axis=in_axis,
                in_features=weight.shape[in_axis],
                out_features=weight.shape[1 - in_axis],
            )
        )
    return layers


def matching_names(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """Names that match at least one of the ``fnmatch`` patterns, in order."""
    patterns = list(patterns)
    return [n for n in names if any(fnmatch(n, p) for p in patterns)]


def select_masks(
    scores: Mapping[str, torch.Tensor],
    ratio: float,
    *,
    scope: str = "global",
    min_keep: Mapping[str, int] | None = None,
    previous: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Keep the highest-scoring entries so that ``ratio`` of all entries are pruned.

    Entries pruned before (False in ``previous``) stay pruned; ties are broken by
    position, so the number of entries pruned is exact.

    Parameters
    ----------
    scores : mapping of str to torch.Tensor
        Importance of each entry (a weight, or a group of weights); higher is more
        important. NaN is not allowed.
    ratio : float in [0, 1)
        Fraction of entries pruned in the end, counting those pruned before:
        across all tensors together for ``scope="global"``, in each tensor for
        ``scope="layer"``.
    scope : {"global", "layer"}, default="global"
    min_keep : mapping of str to int, optional
        Entries of each tensor that always survive (a floor). Missing names have
        no floor.
    previous : mapping of str to torch.Tensor of bool, optional
        Masks from an earlier round; a new mask never revives a pruned entry.

    Returns
    -------
    masks : dict of str to torch.Tensor of bool
        True where the entry is kept.

    Raises
    ------
    ValueError
        If the floors make ``ratio`` unreachable; the message says which ratio is.
    """
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}.")
    min_keep = min_keep or {}
    previous = previous or {}
    ranked = {}
    for name, score in scores.items():
        # One float32 copy per tensor, modified in place below.
        score = score.detach().reshape(-1).to(torch.float32, copy=True)
        if torch.isnan(score).any():
            raise ValueError(f"Importance scores of {name!r} contain NaN.")
        # Earlier prunes rank below everything, then floors (taken among the
        # survivors) above everything.
        if name in previous:
            score.masked_fill_(~previous[name].reshape(-1), -torch.inf)
        n_alive = int((~torch.isneginf(score)).sum())
        floor = min(int(min_keep.get(name, 0)), n_alive)
        if floor:
            score[torch.topk(score, floor).indices] = torch.inf
        ranked[name] = score

    groups = [list(ranked)] if scope == "global" else [[name] for name in ranked]
    keep = {}
    for names in groups:
        sizes = [ranked[name].numel() for name in names]
        parts = [ranked.pop(name) for name in names]
        flat = parts[0] if len(parts) == 1 else torch.cat(parts)
        del parts
        n_keep = flat.numel() - round(ratio * flat.numel())
        _check_reachable(ratio, int(torch.isposinf(flat).sum()), flat.numel(), names)
        flat_keep = _keep_largest(flat, n_keep)
        flat_keep &= ~torch.isneginf(flat)
        del flat
        for name, part in zip(names, torch.split(flat_keep, sizes), strict=True):
            keep[name] = part.reshape(scores[name].shape)
    return keep


def reachable_ratio(
    sizes: Mapping[str, int], floors: Mapping[str, int], scope: str = "global"
) -> float:
    """Highest ratio that :func:`select_masks` can reach with these floors.

    Parameters
    ----------
    sizes : mapping of str to int
        Number of entries of each tensor.
    floors : mapping of str to int
        Entries of each tensor that must survive.
    scope : {"global", "layer"}, default="global"

    Returns
    -------
    ratio : float
    """
    kept = {name: min(floors.get(name, 0), size) for name, size in sizes.items()}
    if scope == "global":
        return 1.0 - sum(kept.values()) / sum(sizes.values())
    return min(1.0 - kept[name] / size for name, size in sizes.items())


def _check_reachable(ratio, n_floor, n_total, names):
    n_keep = n_total - round(ratio * n_total)
    if n_keep < n_floor:
        raise ValueError(
            f"prune_ratio={ratio} cannot be reached: min_keep keeps {n_floor} of "
            f"{n_total} entries in {', '.join(names)}; the highest reachable "
            f"ratio is {1.0 - n_floor / n_total:.4f}."
        )


def _keep_largest(flat: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Mask of the ``n_keep`` largest entries; ties go to the earlier position.

    A selection (``kthvalue``) rather than a full sort: pruning a 25-million
    weight layer takes a fraction of a second.
    """
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if n_keep <= 0:
        return keep
    if n_keep >= flat.numel():
        return ~keep
    threshold = torch.kthvalue(flat, flat.numel() - n_keep + 1).values
    keep = flat > threshold
    ties = torch.nonzero(flat == threshold).squeeze(1)
    keep[ties[: n_keep - int(keep.sum())]] = True
    return keep


@torch.no_grad()
def apply_masks(
    parameters: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Zero the pruned entries of parameters, and of the optimizer's state for them.

    Zeroing the optimizer's per-weight state (momentum, Adam's moments) keeps it
    from pushing a pruned weight away from zero on the next step.

    Parameters
    ----------
    parameters : mapping of str to torch.Tensor
        The parameters by name, for example ``dict(module.named_parameters())``.
    masks : mapping of str to torch.Tensor of bool
        True where the weight is kept; names absent from ``parameters`` are an
        error.
    optimizer : torch.optim.Optimizer, optional
        Its state tensors with the parameter's shape are masked too.
    """
    for name, mask in masks.items():
        param = parameters[name]
        pruned = ~mask.to(param.device)
        param.masked_fill_(pruned, 0.0)
        if optimizer is None:
            continue
        for value in optimizer.state.get(param, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                value.masked_fill_(pruned, 0.0)


@torch.no_grad()
def mask_sparse_gradient(param: torch.Tensor, pruned: torch.Tensor) -> None:
    """Zero the entries of ``param``'s row-sparse gradient that fall on pruned weights.

    The gradient is coalesced (as the optimizer would do anyway) and replaced.
    The cost follows the rows the batch touched, not the size of the layer. With
    a pruned weight, its optimizer state and its gradient all zero, torch's
    optimizers that accept sparse gradients (``SGD``, ``SparseAdam``,
    ``Adagrad``, :class:`skprune.optim.LazyAdam`) leave the weight at exactly zero.

    Parameters
    ----------
    param : torch.Tensor
        A parameter whose ``grad`` is a sparse COO tensor (sparse in its first
        dimension).
    pruned : torch.Tensor of bool
        True where the weight is pruned, of ``param``'s shape.
    """
    grad = param.grad.coalesce()
    rows = grad._indices()[0]
    # In place: the coalesced gradient is either new or param.grad itself.
    grad._values().masked_fill_(pruned[rows], 0.0)
    param.grad = grad
