"""What the pruning callback does to a module's tensors, in pure torch.

- :func:`prepare_granularity`: what can be pruned in a module, refusing before
  training a ratio that cannot be reached;
- :func:`choose_masks`: the masks of one pruning step, from the importance of the
  current weights at a granularity, never reviving a pruned weight;
- :class:`MaskSet`: the masks in force, held on the parameters while training:
  row-sparse gradients masked before the optimizer step, pruned weights with
  dense gradients zeroed after it, the optimizer's state zeroed at a step;
- :class:`GradientSums`: the absolute gradients that ``importance="taylor"``
  averages;
- :func:`take_snapshot` and :func:`rewind_`: the values that rewinding restores;
- :func:`set_learning_rates`: the retraining's learning rates;
- :func:`count_kept` and :func:`sparsity`: how much of the prunable weights is
  left.

:class:`skprune.callbacks.Pruning` is the skorch layer that calls these at its
hooks; each can be used and tested on a plain ``torch.nn.Module``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch

from . import importance as importance_lib
from .granularity import DEFAULT_BLOCK_SIZE, Granularity, make_granularity
from .masks import (
    PrunableLayer,
    apply_masks,
    find_prunable_layers,
    mask_sparse_gradient,
    reachable_ratio,
    select_masks,
)

__all__ = [
    "GradientSums",
    "MaskSet",
    "choose_masks",
    "count_kept",
    "floor_of",
    "prepare_granularity",
    "rewind_",
    "set_learning_rates",
    "sparsity",
    "take_snapshot",
]


def floor_of(min_keep: int | float, n_entries: int) -> int:
    """Entries of a group of ``n_entries`` that always survive: ``min_keep`` as a
    count (at most ``n_entries``), or as a fraction in (0, 1), rounded up."""
    if isinstance(min_keep, float):
        return math.ceil(min_keep * n_entries)
    return min(int(min_keep), n_entries)


def prepare_granularity(
    module: torch.nn.Module,
    granularity: str,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    patterns,
    prune_output: bool,
    prune_bias: bool,
    prune_ratio: float,
    min_keep: int | float,
    scope: str,
    importance,
) -> tuple[list[PrunableLayer], Granularity]:
    """The module's affine layers, and what a step at ``granularity`` removes.

    Fails before any training when nothing can be pruned, when ``prune_ratio``
    cannot be reached with ``min_keep`` and ``scope``, or when a callable
    ``importance`` fails on the module's weights (given zero gradients).

    Returns
    -------
    layers : list of skprune.masks.PrunableLayer
        Every affine layer of the module, input first.
    granularity : skprune.granularity.Granularity
    """
    params = dict(module.named_parameters())
    layers = find_prunable_layers(module)
    made = make_granularity(
        granularity,
        layers,
        {name: tuple(p.shape) for name, p in params.items()},
        block_size=block_size,
        patterns=patterns,
        prune_output=prune_output,
        prune_bias=prune_bias,
    )
    sizes = made.group_sizes()
    reachable = reachable_ratio(
        sizes, {n: floor_of(min_keep, size) for n, size in sizes.items()}, scope
    )
    if prune_ratio > reachable + 1e-12:
        raise ValueError(
            f"prune_ratio={prune_ratio} cannot be reached with "
            f"min_keep={min_keep!r} and scope={scope!r}; the highest "
            f"reachable ratio is {reachable:.4f}."
        )
    if callable(importance):  # a misbehaving callable fails here
        importance_lib.compute_scores(
            importance,
            {n: params[n] for n in made.scored},
            {n: torch.zeros_like(params[n]) for n in made.scored},
        )
    return layers, made


def choose_masks(
    params: Mapping[str, torch.Tensor],
    ratio: float,
    *,
    granularity: Granularity,
    criterion,
    scope: str,
    min_keep: int | float,
    previous: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Masks at ``granularity`` that prune ``ratio``, ranking by ``criterion``.

    Parameters
    ----------
    params : mapping of str to torch.Tensor
        The module's parameters by name.
    ratio : float
        Fraction to prune (of the weights, units or features the granularity
        counts).
    granularity : skprune.granularity.Granularity
    criterion : callable
        ``(name, weight, grad) -> scores``, as :func:`skprune.importance.resolve`
        returns.
    scope : {"global", "layer"}
    min_keep : int or float
        Floor per group, see :func:`floor_of`.
    previous : mapping of str to torch.Tensor of bool
        The masks in force; what they prune stays pruned.
    grads : mapping of str to torch.Tensor, optional
        Mean absolute gradients of the scored weights (``importance="taylor"``).

    Returns
    -------
    masks : dict of str to torch.Tensor of bool
        True where a weight is kept, for every prunable parameter.
    """
    # Weight scores that need no pooling are made a block of rows at a time
    # while the masks are selected: no full-size copy of a wide layer.
    score = (
        importance_lib.score_by_rows
        if granularity.scores_by_rows
        else importance_lib.compute_scores
    )
    scores = granularity.pool(
        score(criterion, {n: params[n] for n in granularity.scored}, grads)
    )
    kept = select_masks(
        scores,
        ratio,
        scope=scope,
        min_keep={n: floor_of(min_keep, s.numel()) for n, s in scores.items()},
        previous=granularity.group_masks(previous),
    )
    return granularity.expand(kept)


class MaskSet:
    """The masks in force on a module's parameters, held there while it trains.

    Only the parameters that have pruned weights are held, each with its mask
    on the parameter's device. Row-sparse gradients are masked before the
    optimizer step (:meth:`mask_sparse_gradients`), which with a zeroed
    optimizer state keeps a pruned weight at exactly zero; dense gradients can
    move any weight, so those weights are zeroed again after the step
    (:meth:`zero_pruned`).

    Parameters
    ----------
    params : mapping of str to torch.Tensor
        The module's parameters by name.
    masks : mapping of str to torch.Tensor of bool
        True where a weight is kept.
    """

    def __init__(
        self, params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> None:
        self.masks = dict(masks)
        self.held = [
            (params[name], mask.to(params[name].device))
            for name, mask in self.masks.items()
            if not bool(mask.all())
        ]

    def mask_sparse_gradients(self) -> None:
        """Zero the row-sparse gradients' entries on pruned weights."""
        for param, kept in self.held:
            if param.grad is not None and param.grad.is_sparse:
                mask_sparse_gradient(param, kept=kept)

    @torch.no_grad()
    def zero_pruned(self) -> None:
        """Zero the pruned weights of the parameters without a sparse gradient."""
        for param, kept in self.held:
            if param.grad is None or not param.grad.is_sparse:
                param.masked_fill_(~kept, 0.0)

    def apply(
        self,
        params: Mapping[str, torch.Tensor],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        """Zero every pruned weight, and its optimizer state if ``optimizer``."""
        apply_masks(params, self.masks, optimizer)


class GradientSums:
    """Sums of the absolute gradients of the scored weights over batches.

    Parameters
    ----------
    sums : dict of str to torch.Tensor, optional
        Sums so far, by parameter name; kept by reference and added to in place.
    batches : int, default=0
        Batches summed so far.
    """

    def __init__(self, sums: dict | None = None, batches: int = 0) -> None:
        self.sums = {} if sums is None else sums
        self.batches = batches

    def add(
        self,
        named_parameters: Iterable[tuple[str, torch.Tensor]],
        scored: Iterable[str],
    ) -> None:
        """Add one batch's absolute gradients of the ``scored`` parameters."""
        scored = set(scored)
        for name, param in named_parameters:
            if name not in scored or param.grad is None:
                continue
            grad = param.grad.detach()
            total = self.sums.get(name)
            if total is None:
                total = self.sums[name] = torch.zeros_like(param)
            if grad.is_sparse:
                grad = grad.coalesce()
                total.index_add_(0, grad.indices()[0], grad.values().abs())
            else:
                total.add_(grad.abs())
        self.batches += 1

    def means(self) -> dict[str, torch.Tensor] | None:
        """Mean absolute gradients; None before the first batch."""
        if not self.batches:
            return None
        return {name: total / self.batches for name, total in self.sums.items()}


def take_snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter of ``module``, by name: what rewinding restores."""
    return {n: p.detach().clone() for n, p in module.named_parameters()}


@torch.no_grad()
def rewind_(
    params: Mapping[str, torch.Tensor],
    snapshot: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Put the snapshot's values back into the parameters; clear the optimizer's
    state, which belongs to the values being replaced."""
    for name, value in snapshot.items():
        params[name].copy_(value)
    if optimizer is not None:
        optimizer.state.clear()


def count_kept(
    params: Mapping[str, torch.Tensor], granularity: Granularity
) -> tuple[int, int]:
    """The granularity's prunable weights in the original network, and how many
    of them are non-zero in ``params``; weights removed by shrinking count as
    zero."""
    nonzero = sum(int(torch.count_nonzero(params[n])) for n in granularity.prunable)
    return granularity.n_weights, nonzero


def sparsity(params: Mapping[str, torch.Tensor], granularity: Granularity) -> float:
    """Fraction of the granularity's prunable weights that are zero or removed."""
    total, nonzero = count_kept(params, granularity)
    return 1.0 - nonzero / total if total else 0.0


def set_learning_rates(
    optimizer: torch.optim.Optimizer, lrs: list[float], factor: float = 1.0
) -> None:
    """Set each parameter group's learning rate to its entry of ``lrs`` times
    ``factor``; one entry per group."""
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr * factor
