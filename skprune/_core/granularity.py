"""What pruning removes: single weights, blocks, whole hidden units or input features.

Pure torch, no scikit-learn. A granularity groups the weights of a network's
affine layers; pruning ranks and removes groups. The :class:`~skprune.callbacks.Pruning`
callback makes one with :func:`make_granularity` and asks it

- which parameters count as prunable (``prunable``) and which get importance
  scores (``scored``);
- how weight scores pool into group scores (:meth:`~Granularity.pool`), and the
  previous round's masks into group masks (:meth:`~Granularity.group_masks`),
  for :func:`skprune.masks.select_masks` to choose among;
- how kept groups expand back into weight masks (:meth:`~Granularity.expand`);
- how many groups each tensor ranks (:meth:`~Granularity.group_sizes`, for
  :func:`skprune.masks.reachable_ratio`), and whether removed groups may be cut
  out of the module (``shrinks``).

A group tensor is named after the weight it ranks along (for ``"neuron"``, the
weight of the layer whose outputs are the units) and holds one entry per group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral

import torch

from .masks import PrunableLayer, matching_names

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "GRANULARITIES",
    "BlockGranularity",
    "FeatureGranularity",
    "Granularity",
    "NeuronGranularity",
    "WeightGranularity",
    "make_granularity",
]

GRANULARITIES = ("weight", "block", "neuron", "feature")

#: Outputs per block of ``granularity="block"``: 8 float32 weights fill one
#: 256-bit (AVX2) vector register, the widest most x86 CPUs have; 16 (AVX-512)
#: would be a coarser pattern, costing more accuracy for a wider kernel.
DEFAULT_BLOCK_SIZE = 8


class Granularity:
    """Base class: the groups of weights that pruning removes together.

    Parameters
    ----------
    layers : sequence of PrunableLayer
        Every affine layer of the module, input first (as
        :func:`skprune.masks.find_prunable_layers` lists them).
    shapes : mapping of str to tuple of int
        Shape of each parameter of the module, by name.
    patterns : sequence of str or None, default=None
        ``fnmatch`` patterns over weight names selecting the layers that may be
        pruned; overrides ``prune_output``. None selects every layer except the
        output layer. Of those, the granularity keeps the ones it can prune.
    prune_output : bool, default=False
        Whether the output layer may be pruned (when ``patterns`` is None).
    prune_bias : bool, default=False
        Whether the biases of the selected layers are prunable (``"weight"``
        only; removing a unit always removes its bias).

    Attributes
    ----------
    prunable : list of str
        Parameters whose zeros count towards the sparsity.
    scored : list of str
        Parameters that get importance scores, in the order they are scored.
    shrinks : bool
        Whether removed groups may be cut out of the module after the last step.

    Raises
    ------
    ValueError
        If there are no layers, or none of the selected ones can be pruned at
        this granularity.

    See Also
    --------
    make_granularity : The subclass for a granularity's name.

    Examples
    --------
    The base class is abstract; every granularity answers the same questions:

    >>> import torch
    >>> from skprune.granularity import GRANULARITIES, Granularity, make_granularity
    >>> from skprune.masks import find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    >>> GRANULARITIES
    ('weight', 'block', 'neuron', 'feature')
    >>> for name in GRANULARITIES:
    ...     g = make_granularity(name, layers, shapes)
    ...     print(name, isinstance(g, Granularity), g.group_sizes(), g.shrinks)
    weight True {'0.weight': 12} False
    block True {'0.weight': 4} False
    neuron True {'0.weight': 3} True
    feature True {'0.weight': 4} True
    """

    shrinks = False
    #: Why nothing is prunable when ``prunable`` comes out empty.
    _nothing_selected = ""

    def __init__(
        self,
        layers: Sequence[PrunableLayer],
        shapes: Mapping[str, tuple[int, ...]],
        *,
        patterns: Sequence[str] | None = None,
        prune_output: bool = False,
        prune_bias: bool = False,
    ) -> None:
        if not layers:
            raise ValueError(
                "The module has no prunable layer: Pruning needs torch.nn.Linear "
                "or skprune.modules.SparseLinear layers."
            )
        self.layers = list(layers)
        self.shapes = {name: tuple(shape) for name, shape in shapes.items()}
        if patterns is not None:
            selected = [
                layer
                for layer in self.layers
                if matching_names([layer.weight], patterns)
            ]
        else:
            selected = self.layers if prune_output else self.layers[:-1]
        self.prunable = self._prunable(selected, prune_bias)
        if not self.prunable:
            raise ValueError(f"Nothing to prune: {self._nothing_selected}.")
        self.scored = list(self.prunable)

    @property
    def n_weights(self) -> int:
        """Number of prunable weights of the original module."""
        return sum(math.prod(self.shapes[name]) for name in self.prunable)

    def group_sizes(self) -> dict[str, int]:
        """Number of groups each group tensor ranks."""
        return {name: math.prod(self.shapes[name]) for name in self.prunable}

    #: Whether :meth:`pool` passes weight scores through as they are, so that they
    #: may be computed lazily, a block of rows at a time.
    scores_by_rows = True

    def pool(self, scores: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Group scores from the scores of the ``scored`` weights."""
        return dict(scores)

    def group_masks(self, masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Group masks (True where kept) from weight masks of an earlier round."""
        return dict(masks)

    def expand(self, kept: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weight masks from group masks: a weight is kept if all its groups are."""
        return dict(kept)

    def _prunable(self, selected: list[PrunableLayer], prune_bias: bool) -> list[str]:
        raise NotImplementedError


class WeightGranularity(Granularity):
    """Each weight is a group of its own (unstructured pruning).

    Parameters and attributes as for :class:`Granularity`.

    Examples
    --------
    >>> import torch
    >>> from skprune.granularity import WeightGranularity
    >>> from skprune.masks import find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    >>> weights = WeightGranularity(layers, shapes, prune_bias=True)
    >>> weights.prunable, weights.n_weights, weights.group_sizes()
    (['0.weight', '0.bias'], 15, {'0.weight': 12, '0.bias': 3})
    >>> WeightGranularity(layers, shapes, patterns=["decoder.*"])
    Traceback (most recent call last):
    ...
    ValueError: Nothing to prune: no layer is selected (the output layer is \
excluded unless prune_output=True, and layers= may match nothing).
    """

    _nothing_selected = (
        "no layer is selected (the output layer is excluded unless "
        "prune_output=True, and layers= may match nothing)"
    )

    def _prunable(self, selected, prune_bias):
        names = [layer.weight for layer in selected]
        if prune_bias:
            names += [layer.bias for layer in selected if layer.bias is not None]
        return names


class BlockGranularity(Granularity):
    """Blocks of ``block_size`` consecutive outputs of one input of a layer.

    Block ``b`` of input ``i`` of a ``torch.nn.Linear`` weight (shape ``(out,
    in)``) is ``W[b * block_size:(b + 1) * block_size, i]``: a contiguous run in
    a row of ``W.T``, and in a row of a :class:`skprune.modules.SparseLinear`
    weight (shape ``(in, out)``), the pattern a kernel that walks the inputs
    multiplies a vector at a time. Every selected layer's weight is blocked;
    biases are not prunable. A layer whose width is not a multiple of
    ``block_size`` ends each input's run with a shorter block; a block counts
    as one, whatever its length.

    A block's score is the mean score of its weights, so a ranking of blocks is
    a ranking of weights when ``block_size`` is 1.

    Parameters
    ----------
    layers, shapes, patterns, prune_output
        As for :class:`Granularity`.
    prune_bias : bool, default=False
        Ignored: a block holds weights only.
    block_size : int, default=8
        Consecutive outputs per block, at least 1.

    Raises
    ------
    ValueError
        If ``block_size`` is not an int of at least 1, or as :class:`Granularity`.

    Examples
    --------
    A 2-6-2 network in blocks of 4 (the default is :data:`DEFAULT_BLOCK_SIZE`):
    each of the 2 inputs of the first layer has a block of outputs 0-3 and a
    ragged one of outputs 4-5, so 4 blocks, each scored by its weights' mean:

    >>> import torch
    >>> from skprune.granularity import DEFAULT_BLOCK_SIZE, BlockGranularity
    >>> from skprune.masks import find_prunable_layers
    >>> DEFAULT_BLOCK_SIZE
    8
    >>> module = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Linear(6, 2))
    >>> layers = find_prunable_layers(module)
    >>> shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    >>> blocks = BlockGranularity(layers, shapes, block_size=4)
    >>> blocks.group_sizes()
    {'0.weight': 4}
    >>> scores = {"0.weight": torch.arange(12.0).reshape(6, 2)}
    >>> pooled = blocks.pool(scores)["0.weight"]
    >>> pooled.tolist()
    [[3.0, 4.0], [9.0, 10.0]]

    Dropping the lowest block (outputs 0-3 of input 0) zeroes that whole run:

    >>> masks = blocks.expand({"0.weight": pooled > 3})
    >>> masks["0.weight"].int().T.tolist()
    [[0, 0, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1]]
    """

    scores_by_rows = False
    _nothing_selected = WeightGranularity._nothing_selected

    def __init__(
        self, layers, shapes, *, block_size: int = DEFAULT_BLOCK_SIZE, **options
    ):
        if not isinstance(block_size, Integral) or block_size < 1:
            raise ValueError(f"block_size must be an int >= 1, got {block_size!r}.")
        self.block_size = int(block_size)
        super().__init__(layers, shapes, **options)
        # Each weight is blocked along its output axis.
        self.axes = {layer.weight: layer.out_axis for layer in self.layers}

    def _prunable(self, selected, prune_bias):
        return [layer.weight for layer in selected]

    def group_sizes(self):
        return {name: math.prod(self._block_shape(name)) for name in self.prunable}

    def _block_shape(self, name: str) -> tuple[int, ...]:
        shape = list(self.shapes[name])
        axis = self.axes[name]
        shape[axis] = -(-shape[axis] // self.block_size)
        return tuple(shape)

    def pool(self, scores):
        pooled = {}
        for name in self.prunable:
            axis, width = self.axes[name], self.shapes[name][self.axes[name]]
            sums = _per_block(scores[name], axis, self.block_size, torch.sum)
            # Members per block: block_size, but fewer in a ragged last block.
            sizes = torch.full((sums.shape[axis],), float(self.block_size))
            sizes[-1] = width - (len(sizes) - 1) * self.block_size
            view = [1, 1]
            view[axis] = -1
            pooled[name] = sums / sizes.to(sums).reshape(view)
        return pooled

    def group_masks(self, masks):
        return {
            name: _per_block(masks[name], self.axes[name], self.block_size, torch.any)
            for name in self.prunable
            if name in masks
        }

    def expand(self, kept):
        masks = {}
        for name, blocks in kept.items():
            axis, width = self.axes[name], self.shapes[name][self.axes[name]]
            masks[name] = (
                blocks.repeat_interleave(self.block_size, dim=axis)
                .narrow(axis, 0, width)
                .contiguous()
            )
        return masks


class _GroupGranularity(Granularity):
    """Groups that are slices of weights: units or features.

    ``groups`` maps each group tensor to its members, ``(parameter, axis)``
    pairs: group ``i`` is slice ``i`` of the parameter along that axis.
    """

    shrinks = True
    scores_by_rows = False

    def __init__(self, layers, shapes, **options):
        super().__init__(layers, shapes, **options)
        self.groups = self._groups()
        self.scored = list(
            dict.fromkeys(
                name
                for members in self.groups.values()
                for name, _ in members
                if len(self.shapes[name]) == 2
            )
        )

    def _groups(self) -> dict[str, list[tuple[str, int]]]:
        raise NotImplementedError

    def group_sizes(self):
        return {
            key: self.shapes[key][members[0][1]] for key, members in self.groups.items()
        }

    def pool(self, scores):
        # A group's score is the mean score of its weights, slice by slice (a
        # unit's incoming and outgoing weights count alike), each tensor's scores
        # relative to their own mean: layers with large fan-in have small weights,
        # and a global ranking would otherwise empty them first.
        return {
            key: torch.stack(
                [
                    scores[name].mean(dim=1 - axis)
                    / scores[name].mean().clamp_min(1e-30)
                    for name, axis in members
                    if name in scores
                ]
            ).mean(0)
            for key, members in self.groups.items()
        }

    def group_masks(self, masks):
        return {
            key: masks[key].any(dim=1 - members[0][1])
            for key, members in self.groups.items()
            if key in masks
        }

    def expand(self, kept):
        masks = {}
        for key, members in self.groups.items():
            for name, axis in members:
                mask = _expand(kept[key], axis, self.shapes[name])
                masks[name] = mask if name not in masks else masks[name] & mask
        return masks


class NeuronGranularity(_GroupGranularity):
    """Hidden units: a unit is a row of its layer's weight, its bias and the
    matching column of the next layer's weight.

    Parameters and attributes as for :class:`Granularity`.

    Raises
    ------
    ValueError
        If a selected layer's outputs are not the next layer's inputs.

    Examples
    --------
    The 3 hidden units of a 4-3-2 network; the second scores lowest:

    >>> import torch
    >>> from skprune.granularity import NeuronGranularity
    >>> from skprune.masks import find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    >>> units = NeuronGranularity(layers, shapes)
    >>> units.group_sizes()
    {'0.weight': 3}
    >>> scores = {"0.weight": torch.ones(3, 4), "1.weight": torch.ones(2, 3)}
    >>> scores["0.weight"][1] = 0.0
    >>> [round(v, 2) for v in units.pool(scores)["0.weight"].tolist()]
    [1.25, 0.5, 1.25]

    Removing a unit removes its row, its bias and the next layer's column:

    >>> masks = units.expand({"0.weight": torch.tensor([True, False, True])})
    >>> masks["0.bias"].tolist(), masks["1.weight"].tolist()
    ([True, False, True], [[True, False, True], [True, False, True]])
    """

    _nothing_selected = (
        "no hidden layer is selected (a network without hidden layers has no "
        "units to remove)"
    )

    def _prunable(self, selected, prune_bias):
        return [layer.weight for layer in self.layers[:-1] if layer in selected]

    def _groups(self):
        groups = {}
        for layer, following in zip(self.layers, self.layers[1:], strict=False):
            if layer.weight not in self.prunable:
                continue
            if layer.out_features != following.in_features:
                raise ValueError(
                    "granularity='neuron' needs a chain of layers, each feeding "
                    f"the next, but {layer.name!r} has {layer.out_features} "
                    f"outputs and {following.name!r} {following.in_features} inputs."
                )
            members = [(layer.weight, layer.out_axis)]
            if layer.bias is not None:
                members.append((layer.bias, 0))
            members.append((following.weight, following.in_axis))
            groups[layer.weight] = members
        return groups


class FeatureGranularity(_GroupGranularity):
    """Input features: a feature is a column of the first layer's weight.

    Parameters and attributes as for :class:`Granularity`.

    Examples
    --------
    >>> import torch
    >>> from skprune.granularity import FeatureGranularity
    >>> from skprune.masks import find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    >>> features = FeatureGranularity(layers, shapes)
    >>> features.group_sizes()
    {'0.weight': 4}
    >>> mask = features.expand({"0.weight": torch.tensor([True, False, True, True])})
    >>> mask["0.weight"].tolist()
    [[True, False, True, True], [True, False, True, True], [True, False, True, True]]
    """

    _nothing_selected = "the first layer is not selected"

    def _prunable(self, selected, prune_bias):
        return [self.layers[0].weight] if self.layers[0] in selected else []

    def _groups(self):
        first = self.layers[0]
        return {first.weight: [(first.weight, first.in_axis)]}


_CLASSES = {
    "weight": WeightGranularity,
    "block": BlockGranularity,
    "neuron": NeuronGranularity,
    "feature": FeatureGranularity,
}


def make_granularity(
    name: str,
    layers: Sequence[PrunableLayer],
    shapes: Mapping[str, tuple[int, ...]],
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    **options,
) -> Granularity:
    """The granularity called ``name``, over a module's layers.

    Parameters
    ----------
    name : {"weight", "block", "neuron", "feature"}
    layers, shapes
        As for :class:`Granularity`.
    block_size : int, default=8
        Outputs per block of ``"block"`` (see :class:`BlockGranularity`);
        unused by the others.
    **options
        ``patterns``, ``prune_output``, ``prune_bias``, as for :class:`Granularity`.

    Returns
    -------
    granularity : Granularity

    Examples
    --------
    >>> import torch
    >>> from skprune.granularity import make_granularity
    >>> from skprune.masks import find_prunable_layers
    >>> module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> layers = find_prunable_layers(module)
    >>> shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    >>> units = make_granularity("neuron", layers, shapes)
    >>> units.prunable, units.scored, units.group_sizes()
    (['0.weight'], ['0.weight', '1.weight'], {'0.weight': 3})
    """
    if name not in _CLASSES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {name!r}.")
    if name == "block":
        options["block_size"] = block_size
    return _CLASSES[name](layers, shapes, **options)


def _expand(group_keep: torch.Tensor, axis: int, shape: tuple[int, ...]):
    """Broadcast a mask over groups (slices along ``axis``) to a tensor's shape."""
    if len(shape) == 1:
        return group_keep.clone()
    view = [1, 1]
    view[axis] = -1
    return group_keep.reshape(view).expand(shape).clone()


def _per_block(tensor: torch.Tensor, axis: int, block_size: int, reduce):
    """``reduce`` (``torch.sum``, ``torch.any``) over each run of ``block_size``
    entries along ``axis`` of a 2-d tensor; a shorter run ends the axis."""
    width = tensor.shape[axis]
    whole = width - width % block_size
    split = list(tensor.shape)
    split[axis : axis + 1] = [whole // block_size, block_size]
    parts = [reduce(tensor.narrow(axis, 0, whole).reshape(split), dim=axis + 1)]
    if whole < width:
        parts.append(
            reduce(tensor.narrow(axis, whole, width - whole), dim=axis, keepdim=True)
        )
    return torch.cat(parts, dim=axis) if len(parts) > 1 else parts[0]
