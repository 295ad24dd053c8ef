"""Granularities: which weights form a group, pooled scores, expanded masks.

Exact expectations on tiny hand-made tensors; nothing is trained.
"""

import pytest
import torch
from torch import nn

from skprune.granularity import (
    FeatureGranularity,
    NeuronGranularity,
    WeightGranularity,
    make_granularity,
)
from skprune.masks import PrunableLayer, find_prunable_layers, select_masks

T, F = True, False


def chain(*sizes):
    """Layers and shapes of torch.nn.Linear layers named "0", "1", ... in a chain."""
    module = nn.Sequential(
        *(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    )
    shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    return find_prunable_layers(module), shapes


def sparse_first_chain():
    """A SparseLinear-style first layer, (inputs, units) = (3, 2), then Linear(2, 2)."""
    first = PrunableLayer("a", "a.weight", "a.bias", 0, 3, 2)
    second = PrunableLayer("b", "b.weight", "b.bias", 1, 2, 2)
    shapes = {"a.weight": (3, 2), "a.bias": (2,), "b.weight": (2, 2), "b.bias": (2,)}
    return [first, second], shapes


def tensor(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_factory_makes_each_granularity_and_refuses_unknown_names():
    layers, shapes = chain(3, 2, 2)
    assert type(make_granularity("weight", layers, shapes)) is WeightGranularity
    assert type(make_granularity("neuron", layers, shapes)) is NeuronGranularity
    assert type(make_granularity("feature", layers, shapes)) is FeatureGranularity
    with pytest.raises(ValueError, match="granularity must be one of"):
        make_granularity("unit", layers, shapes)


def test_weight_granularity_selects_layers_and_biases_and_passes_scores_through():
    layers, shapes = chain(3, 2, 2)
    default = make_granularity("weight", layers, shapes)
    assert default.prunable == default.scored == ["0.weight"]
    assert default.group_sizes() == {"0.weight": 6}
    assert default.n_weights == 6 and not default.shrinks
    everything = make_granularity(
        "weight", layers, shapes, prune_output=True, prune_bias=True
    )
    assert everything.prunable == ["0.weight", "1.weight", "0.bias", "1.bias"]
    assert everything.n_weights == 6 + 4 + 2 + 2
    by_pattern = make_granularity("weight", layers, shapes, patterns=["1.*"])
    assert by_pattern.prunable == ["1.weight"]
    scores = {"0.weight": tensor([[3, 1, 2], [0, 5, 4]])}
    assert default.pool(scores)["0.weight"] is scores["0.weight"]
    kept = {"0.weight": torch.tensor([[T, F, T], [F, T, T]])}
    assert torch.equal(default.expand(kept)["0.weight"], kept["0.weight"])
    assert torch.equal(default.group_masks(kept)["0.weight"], kept["0.weight"])


def test_neuron_score_is_the_mean_of_each_slice_relative_to_its_tensor():
    layers, shapes = chain(3, 2, 2)
    units = make_granularity("neuron", layers, shapes)
    assert units.prunable == ["0.weight"] and units.shrinks
    # The unit's row of layer 0 and its column of layer 1; biases are not scored.
    assert units.scored == ["0.weight", "1.weight"]
    assert units.group_sizes() == {"0.weight": 2}
    assert units.n_weights == 6
    scores = {
        "0.weight": tensor([[1, 2, 3], [4, 5, 6]]),  # row means 2, 5; mean 3.5
        "1.weight": tensor([[1, 3], [1, 3]]),  # column means 1, 3; mean 2
    }
    pooled = units.pool(scores)["0.weight"]
    expected = tensor([(2 / 3.5 + 1 / 2) / 2, (5 / 3.5 + 3 / 2) / 2])
    torch.testing.assert_close(pooled, expected)


def test_removing_a_unit_removes_its_row_its_bias_and_the_next_column():
    layers, shapes = chain(3, 2, 2)
    units = make_granularity("neuron", layers, shapes)
    masks = units.expand({"0.weight": torch.tensor([F, T])})
    assert list(masks) == ["0.weight", "0.bias", "1.weight"]
    assert torch.equal(masks["0.weight"], torch.tensor([[F, F, F], [T, T, T]]))
    assert torch.equal(masks["0.bias"], torch.tensor([F, T]))
    assert torch.equal(masks["1.weight"], torch.tensor([[F, T], [F, T]]))
    assert torch.equal(units.group_masks(masks)["0.weight"], torch.tensor([F, T]))


def test_a_weight_between_two_hidden_layers_is_kept_only_if_both_units_are():
    layers, shapes = chain(3, 2, 2, 2)
    units = make_granularity("neuron", layers, shapes)
    assert units.prunable == ["0.weight", "1.weight"]
    masks = units.expand(
        {"0.weight": torch.tensor([T, F]), "1.weight": torch.tensor([F, T])}
    )
    # Layer 1's rows are its units (1 kept), its columns layer 0's (0 kept).
    assert torch.equal(masks["1.weight"], torch.tensor([[F, F], [T, F]]))
    assert torch.equal(masks["2.weight"], torch.tensor([[F, T], [F, T]]))
    # A unit whose incoming weights all died with the previous layer's units is
    # still alive as long as one of them is kept.
    assert torch.equal(units.group_masks(masks)["1.weight"], torch.tensor([F, T]))


def test_units_of_a_sparse_layer_are_its_columns():
    layers, shapes = sparse_first_chain()
    units = make_granularity("neuron", layers, shapes)
    assert units.group_sizes() == {"a.weight": 2}
    masks = units.expand({"a.weight": torch.tensor([F, T])})
    assert torch.equal(masks["a.weight"], torch.tensor([[F, T], [F, T], [F, T]]))
    assert torch.equal(masks["a.bias"], torch.tensor([F, T]))
    assert torch.equal(masks["b.weight"], torch.tensor([[F, T], [F, T]]))
    scores = {
        "a.weight": tensor([[1, 0], [1, 0], [1, 6]]),
        "b.weight": tensor([[1, 1], [1, 1]]),
    }
    # Column means 1, 2 relative to 1.5; next layer's columns all 1 relative to 1.
    torch.testing.assert_close(
        units.pool(scores)["a.weight"], tensor([(2 / 3 + 1) / 2, (4 / 3 + 1) / 2])
    )


def test_features_are_columns_of_the_first_layer():
    layers, shapes = chain(3, 2, 2)
    features = make_granularity("feature", layers, shapes)
    assert features.prunable == features.scored == ["0.weight"]
    assert features.group_sizes() == {"0.weight": 3}
    scores = {"0.weight": tensor([[1, 0, 2], [1, 0, 4]])}  # mean 4/3
    torch.testing.assert_close(
        features.pool(scores)["0.weight"], tensor([0.75, 0.0, 2.25])
    )
    masks = features.expand({"0.weight": torch.tensor([T, F, T])})
    assert list(masks) == ["0.weight"]
    assert torch.equal(masks["0.weight"], torch.tensor([[T, F, T], [T, F, T]]))
    sparse_layers, sparse_shapes = sparse_first_chain()
    rows = make_granularity("feature", sparse_layers, sparse_shapes)
    assert torch.equal(
        rows.expand({"a.weight": torch.tensor([F, T, F])})["a.weight"],
        torch.tensor([[F, F], [T, T], [F, F]]),
    )


def test_pool_select_expand_removes_the_lowest_scoring_unit():
    layers, shapes = chain(3, 2, 2)
    units = make_granularity("neuron", layers, shapes)
    scores = {"0.weight": tensor([[5, 5, 5], [1, 1, 1]]), "1.weight": torch.ones(2, 2)}
    kept = select_masks(units.pool(scores), 0.5)
    masks = units.expand(kept)
    assert torch.equal(masks["0.weight"], torch.tensor([[T, T, T], [F, F, F]]))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("weight", {"patterns": ["nothing*"]}, "no layer is selected"),
        ("neuron", {"patterns": ["1.weight"]}, "no hidden layer is selected"),
        ("feature", {"patterns": ["1.weight"]}, "the first layer is not selected"),
    ],
)
def test_nothing_to_prune_says_why(name, options, message):
    layers, shapes = chain(3, 2, 2)
    with pytest.raises(ValueError, match=f"Nothing to prune: {message}"):
        make_granularity(name, layers, shapes, **options)


def test_a_module_without_affine_layers_is_refused():
    with pytest.raises(ValueError, match="no prunable layer"):
        make_granularity("weight", [], {})


def test_neuron_granularity_needs_each_layer_to_feed_the_next():
    layers = [
        PrunableLayer("a", "a.weight", None, 1, 3, 4),
        PrunableLayer("b", "b.weight", None, 1, 5, 2),
    ]
    shapes = {"a.weight": (4, 3), "b.weight": (2, 5)}
    with pytest.raises(ValueError, match="'a' has 4 outputs and 'b' 5 inputs"):
        make_granularity("neuron", layers, shapes)
    assert make_granularity("weight", layers, shapes).prunable == ["a.weight"]
