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

import math
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

    Examples
    --------
    >>> import torch
    >>> from skprune.masks import find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> first = find_prunable_layers(module)[0]
    >>> first
    PrunableLayer(name='0', weight='0.weight', bias='0.bias', in_axis=1, \
in_features=4, out_features=3)
    >>> first.out_axis
    0
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

    Examples
    --------
    >>> from skprune import MLPModule
    >>> from skprune.masks import find_prunable_layers
    >>> module = MLPModule(n_features=5, n_classes=3, hidden_layer_sizes=(4,))
    >>> [(layer.weight, layer.in_axis) for layer in find_prunable_layers(module)]
    [('layers.0.weight', 0), ('layers.1.weight', 1)]
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
    position (flattened in row-major order, tensors in the mapping's order), so
    the number of entries pruned is exact.

    The selection costs a few passes over the scores, a block of rows at a
    time, and never sorts them: a threshold is bracketed on a fixed random
    sample, then found exactly among the few entries inside the bracket. Apart
    from the boolean masks returned, memory stays at a block's worth.

    Parameters
    ----------
    scores : mapping of str to torch.Tensor or row-wise scores
        Importance of each entry (a weight, or a group of weights); higher is more
        important. NaN is not allowed. Besides tensors, objects with a ``shape``
        and a ``rows(start, stop)`` method returning the scores of those rows
        (see :func:`skprune.importance.score_by_rows`) are accepted, so that
        scores need never exist in full.
    ratio : float in [0, 1)
        Fraction of entries pruned in the end, counting those pruned before:
        across all tensors together for ``scope="global"``, in each tensor for
        ``scope="layer"``.
    scope : {"global", "layer"}, default="global"
    min_keep : mapping of str to int, optional
        Entries of each tensor that always survive (a floor), taken among the
        survivors of ``previous``. Missing names have no floor.
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

    Examples
    --------
    Half of the six entries go, the lowest-scoring ones across both tensors:

    >>> import torch
    >>> from skprune.masks import select_masks
    >>> scores = {
    ...     "a": torch.tensor([[4.0, 1.0], [3.0, 2.0]]),
    ...     "b": torch.tensor([0.5, 5.0]),
    ... }
    >>> masks = select_masks(scores, 0.5)
    >>> masks["a"].tolist(), masks["b"].tolist()
    ([[True, False], [True, False]], [False, True])

    An entry pruned before stays pruned, and ``min_keep`` sets a floor:

    >>> select_masks(scores, 0.5, previous=masks, min_keep={"b": 2})["b"].tolist()
    [False, True]
    >>> select_masks(scores, 0.9, min_keep={"a": 2, "b": 2})
    Traceback (most recent call last):
    ...
    ValueError: prune_ratio=0.9 cannot be reached: min_keep keeps 4 of 6 entries \
in a, b; the highest reachable ratio is 0.3333.
    """
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}.")
    min_keep = min_keep or {}
    previous = previous or {}
    ranked = {}
    for name, source in scores.items():
        # Earlier prunes rank below everything (-inf), then floors, taken among
        # the survivors, above everything (+inf).
        floor = int(min_keep.get(name, 0))
        # Alone in its ranking, a tensor keeps its top entries anyway (the
        # ratio is reachable): its floor need not be found.
        alone = scope == "layer" or len(scores) == 1
        ranked[name] = _Ranked(name, source, previous.get(name), floor, not alone)

    groups = [list(ranked)] if scope == "global" else [[name] for name in ranked]
    keep = {}
    for names in groups:
        parts = [ranked[name] for name in names]
        n_total = sum(part.numel for part in parts)
        n_keep = n_total - round(ratio * n_total)
        _check_reachable(ratio, sum(p.n_posinf for p in parts), n_total, names)
        n_alive = sum(part.n_alive for part in parts)
        if n_keep >= n_alive:  # every survivor stays
            for part in parts:
                keep[part.name] = part.mask(torch.inf, 0, alive_only=True)
            continue
        if n_keep == 0:  # no floor (checked above): nothing survives, no k-th
            for part in parts:
                keep[part.name], _ = part.mask(torch.inf, 0)
            continue
        chunks = _Chain(parts)
        value, n_above = _kth_largest(chunks, n_keep, _merge_samples(parts, n_total))
        ties = n_keep - n_above
        for part in parts:
            keep[part.name], ties = part.mask(value, ties)
    return keep


# Rows per block are chosen so that a block holds about this many entries. A
# block's float32 scores (32 MB) are then at glibc's largest mmap threshold, so
# they go back to the system when freed instead of fragmenting the heap: on
# 268M scores, 2^20-entry blocks left about 200 MB more resident at the peak.
_BLOCK_ENTRIES = 1 << 23
# Entries of each tensor sampled to bracket a threshold.
_SAMPLE_SIZE = 1 << 16


def _rows(source, start: int, stop: int) -> torch.Tensor:
    """Scores of rows ``start:stop`` of ``source``, flat, float32."""
    if isinstance(source, torch.Tensor):
        block = source.detach()
        block = block.reshape(1) if block.dim() == 0 else block[start:stop]
    else:
        block = source.rows(start, stop)
    return block.reshape(-1).to(torch.float32)


class _Ranked:
    """One tensor's ranking keys, made a block of rows at a time.

    The key of an entry is its score, -inf where ``previous`` pruned it, +inf
    where a floor keeps it. Position order is row-major.
    """

    def __init__(self, name, source, previous, floor, find_floor=True):
        self.name = name
        self.source = source
        self.shape = tuple(source.shape)
        self.numel = math.prod(self.shape)
        n_rows = self.shape[0] if self.shape else 1
        row_size = max(1, self.numel // max(n_rows, 1))
        step = max(1, _BLOCK_ENTRIES // row_size)
        self.blocks = [(a, min(a + step, n_rows)) for a in range(0, n_rows, step)]
        self.previous = None if previous is None else previous.reshape(-1)
        # Floors: a few positions, or for large floors a threshold and ties.
        self.floor_positions = None
        self.floor_value, self.floor_ties = torch.inf, 0
        # One pass: check for NaN, count survivors, sample for bracketing, and
        # find a small floor. Row-wise scores are checked finite when made, and
        # where no floor is to be found, a sample of rows is all it takes.
        finite = getattr(source, "finite", False)
        generator = torch.Generator().manual_seed(0)
        self.n_alive = self.n_posinf = 0
        samples, top = [], None
        small_floor = 0 < floor <= _SMALL_FLOOR
        per_entry = min(1.0, _SAMPLE_SIZE / max(self.numel, 1))
        full_pass = not finite or (floor > 0 and find_floor)
        if not full_pass:
            samples = self._sample_rows(generator)
        for offset, block in self._blocks() if full_pass else ():
            if not finite:
                if torch.isnan(block).any():
                    raise ValueError(f"Importance scores of {name!r} contain NaN.")
                self.n_posinf += int(torch.count_nonzero(torch.isposinf(block)))
                dead = int(torch.count_nonzero(torch.isneginf(block)))
                self.n_alive += block.numel() - dead
            n_sample = math.ceil(per_entry * block.numel())
            index = torch.randint(block.numel(), (n_sample,), generator=generator)
            samples.append(block[index.to(block.device)].cpu())
            if small_floor:
                top = _merge_top(top, block, offset, floor)
        if finite:  # the dead are exactly the entries pruned before
            self.n_alive = self.numel
            if self.previous is not None:
                self.n_alive = int(torch.count_nonzero(self.previous))
        self.sample = torch.cat(samples) if samples else torch.empty(0)
        self.sample_weight = self.numel / max(len(self.sample), 1)
        floor = min(floor, self.n_alive)
        if floor == 0:
            return
        if not find_floor:  # counted for the reachable ratio, never searched
            self.n_posinf = max(self.n_posinf, floor)
            return
        if small_floor:
            self.floor_positions = top[1][:floor].sort().values
        else:
            sample = (self.sample, self.sample_weight)
            value, n_above = _kth_largest(self, floor, sample)
            self.floor_value, self.floor_ties = value, floor - n_above
        # Keys of +inf: the scores that were +inf already, or the floor.
        self.n_posinf = max(self.n_posinf, floor)

    def _sample_rows(self, generator):
        """Keys of random entries of up to 256 random rows, for bracketing."""
        n_rows = self.shape[0] if self.shape else 1
        row_size = max(1, self.numel // max(n_rows, 1))
        picked = torch.randperm(n_rows, generator=generator)[:256].sort().values
        per_row = max(1, math.ceil(_SAMPLE_SIZE / max(len(picked), 1)))
        samples = []
        for row in picked.tolist():
            keys = _rows(self.source, row, row + 1)
            if self.previous is not None:
                alive = self.previous[row * row_size : (row + 1) * row_size]
                keys = keys.masked_fill(~alive.to(keys.device), -torch.inf)
            if per_row < keys.numel():
                index = torch.randint(keys.numel(), (per_row,), generator=generator)
                keys = keys[index.to(keys.device)]
            samples.append(keys.cpu())
        return samples

    def _blocks(self):
        """Yield ``(offset, keys)`` per block of rows, in position order."""
        offset = 0
        ties = self.floor_ties
        positions = self.floor_positions
        for start, stop in self.blocks:
            # Out of place below: the block may be a view of the caller's scores.
            block = _rows(self.source, start, stop)
            n = block.numel()
            if self.previous is not None:
                alive = self.previous[offset : offset + n]
                block = block.masked_fill(~alive.to(block.device), -torch.inf)
            if positions is not None:
                local = positions[(positions >= offset) & (positions < offset + n)]
                if len(local):
                    block = block.clone()
                    block[(local - offset).to(block.device)] = torch.inf
            elif self.floor_value < torch.inf or ties:
                top, ties = _top(block, self.floor_value, ties)
                block = block.masked_fill(top, torch.inf)
            yield offset, block
            offset += n

    def mask(self, value, ties, alive_only=False):
        """Keep keys above ``value`` and the first ``ties`` equal to it.

        ``value`` is above -inf (the k-th largest of fewer than the survivors),
        so no pruned entry is kept; ``alive_only`` keeps every survivor instead.
        """
        out = None
        for offset, block in self._blocks():
            if out is None:
                out = torch.empty(self.numel, dtype=torch.bool, device=block.device)
            part = out[offset : offset + block.numel()]
            if alive_only:
                torch.ne(block, -torch.inf, out=part)
                continue
            torch.gt(block, value, out=part)
            if ties > 0:
                equal = torch.nonzero(block == value).squeeze(1)[:ties]
                part[equal] = True
                ties -= len(equal)
        if out is None:
            out = torch.empty(0, dtype=torch.bool)
        out = out.reshape(self.shape)
        return out if alive_only else (out, ties)


# Floors up to this many entries are found during the first pass.
_SMALL_FLOOR = 64


def _merge_top(top, block, offset, k):
    """The ``k`` largest ``(values, positions)``, ties to the earlier position."""
    if block.numel() > k:
        best = torch.topk(block, k).values
        if top is not None and len(top[0]) == k and not best[0] > top[0][-1]:
            return top  # nothing here beats the k-th best so far, nor ties it earlier
        local = torch.nonzero(block >= best[-1]).squeeze(1)  # every tie included
    else:
        local = torch.arange(block.numel(), device=block.device)
    values, positions = block[local].cpu(), local.cpu() + offset
    if top is not None:
        values = torch.cat([top[0], values])
        positions = torch.cat([top[1], positions])
    # Positions ascend; a stable sort by value keeps that order among ties.
    order = torch.sort(values, descending=True, stable=True).indices[:k]
    return values[order], positions[order]


class _Chain:
    """Several rankings read one after another, as one long row of keys."""

    def __init__(self, parts):
        self.parts = parts

    def _blocks(self):
        offset = 0
        for part in self.parts:
            for local, block in part._blocks():
                yield offset + local, block
            offset += part.numel


def _merge_samples(parts, n_total):
    """One sample of the chained keys, each tensor weighted by its size."""
    if len(parts) == 1:
        return parts[0].sample, parts[0].sample_weight
    # Subsample each tensor's sample in proportion to its share of entries.
    pieces = []
    for part in parts:
        share = part.numel / n_total
        n = min(len(part.sample), max(1, round(share * _SAMPLE_SIZE)))
        if len(part.sample) and n:
            step = max(1, len(part.sample) // n)
            pieces.append(part.sample[::step])
    sample = torch.cat(pieces) if pieces else torch.empty(0)
    return sample, n_total / max(len(sample), 1)


def _top(block, value, ties):
    """Entries above ``value``, plus the first ``ties`` entries equal to it."""
    top = block > value
    if ties > 0:
        equal = torch.nonzero(block == value).squeeze(1)[:ties]
        top[equal] = True
        ties -= len(equal)
    return top, ties


def _kth_largest(keys, k, sample):
    """The ``k``-th largest key (1-based) and how many keys are strictly larger.

    ``keys`` yields blocks of keys; ``sample`` is ``(values, entries per sample
    value)``, a sample of the keys that brackets the answer: one pass counts the
    keys above the bracket and keeps those inside it, whose k-th largest is then
    exact. If the bracket missed, it widens and the pass repeats.
    """
    values, weight = sample
    lo, hi = -torch.inf, torch.inf
    if len(values):
        ordered = values.sort(descending=True).values
        m = len(ordered)
        rank = k / weight  # expected rank of the answer in the sample
        spread = 4.0 * math.sqrt(max(rank * (1 - rank / m), 1.0)) + 2
        upper, lower = math.floor(rank - spread), math.ceil(rank + spread)
        if upper >= 1:
            hi = float(ordered[upper - 1])
        if lower <= m:
            lo = float(ordered[lower - 1])
    while True:
        n_above, inside = 0, []
        for _, block in keys._blocks():
            # Above the bracket: at or above lo, less those inside it (lo <= hi).
            selected = block >= lo
            n_at_least = int(torch.count_nonzero(selected))
            if hi < math.inf:
                selected &= block <= hi
            chosen = block[selected]
            n_above += n_at_least - len(chosen)
            inside.append(chosen.cpu())
        inside = torch.cat(inside)
        if n_above < k <= n_above + len(inside):
            value = inside.kthvalue(len(inside) - (k - n_above) + 1).values
            n_above += int(torch.count_nonzero(inside > value))
            return float(value), n_above
        if k <= n_above:  # the answer is above the bracket
            lo, hi = math.nextafter(hi, math.inf), math.inf
        else:  # below it
            lo, hi = -math.inf, math.nextafter(lo, -math.inf)


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

    Examples
    --------
    >>> from skprune.masks import reachable_ratio
    >>> reachable_ratio({"a": 6, "b": 2}, {"b": 2})
    0.75
    >>> reachable_ratio({"a": 6, "b": 2}, {"b": 1}, scope="layer")
    0.5
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

    Examples
    --------
    >>> import torch
    >>> from skprune.masks import apply_masks
    >>> layer = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    >>> optimizer = torch.optim.Adam(layer.parameters())
    >>> layer(torch.ones(1, 2)).sum().backward()
    >>> optimizer.step()
    >>> mask = torch.tensor([[True, False], [False, True]])
    >>> apply_masks(dict(layer.named_parameters()), {"weight": mask}, optimizer)
    >>> (layer.weight != 0).tolist()
    [[True, False], [False, True]]
    >>> (optimizer.state[layer.weight]["exp_avg"] != 0).tolist()
    [[True, False], [False, True]]
    """
    for name, mask in masks.items():
        param = parameters[name]
        tensors = [param]
        if optimizer is not None:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if not isinstance(value, torch.Tensor) or value.shape != param.shape:
                    continue
                if value.is_sparse:  # e.g. SGD's momentum of a row-sparse gradient
                    state[key] = _masked_sparse(value, mask)
                else:
                    tensors.append(value)
        if param.dim() == 0:
            tensors, mask = [t.reshape(1) for t in tensors], mask.reshape(1)
        # A block of rows at a time, in place: no full-size temporary.
        step = max(1, _BLOCK_ENTRIES // max(param[:1].numel(), 1))
        for start in range(0, len(tensors[0]), step):
            pruned = ~mask[start : start + step].to(param.device)
            for tensor in tensors:
                tensor[start : start + step].masked_fill_(pruned, 0.0)


def _masked_sparse(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A sparse COO tensor with its entries on pruned positions set to zero."""
    value = value.coalesce()
    index = tuple(value._indices())
    # Indexed by the sparse dimensions, the mask has the values' shape (a
    # hybrid tensor's values are whole rows).
    kept = mask.to(value.device)[index]
    return torch.sparse_coo_tensor(
        value._indices(), value._values() * kept, value.shape, is_coalesced=True
    )


@torch.no_grad()
def mask_sparse_gradient(
    param: torch.Tensor,
    pruned: torch.Tensor | None = None,
    *,
    kept: torch.Tensor | None = None,
) -> None:
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
    kept : torch.Tensor of bool, optional
        The mask itself (True where the weight is kept), instead of ``pruned``:
        the caller need not hold a second, inverted copy of a large mask.

    Examples
    --------
    >>> import torch
    >>> from skprune.masks import mask_sparse_gradient
    >>> embedding = torch.nn.Embedding(3, 2, sparse=True)
    >>> embedding(torch.tensor([0, 2])).sum().backward()
    >>> kept = torch.tensor([[True, False], [True, True], [False, True]])
    >>> mask_sparse_gradient(embedding.weight, kept=kept)
    >>> embedding.weight.grad.is_sparse
    True
    >>> embedding.weight.grad.to_dense().tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """
    grad = param.grad.coalesce()
    rows = grad._indices()[0]
    pruned = ~kept[rows] if pruned is None else pruned[rows]
    # In place: the coalesced gradient is either new or param.grad itself.
    grad._values().masked_fill_(pruned, 0.0)
    param.grad = grad
