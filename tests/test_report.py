"""Tests for skprune.report: per-layer counts and theoretical FLOPs."""

import pytest
import torch
from torch import nn

from skprune.masks import find_prunable_layers
from skprune.modules import MLPModule, SparseLinear
from skprune.report import flops, kept_inputs, pruning_report


def ones_mlp():
    """MLPModule(6 -> 4 -> 2) with every weight and bias equal to one."""
    module = MLPModule(6, 2, hidden_layer_sizes=(4,))
    with torch.no_grad():
        for param in module.parameters():
            param.fill_(1.0)
    return module


def pruned_mlp():
    module = ones_mlp()
    with torch.no_grad():
        first = module.layers[0]  # SparseLinear: weight (in=6, out=4)
        first.weight[[1, 3]] = 0.0  # inputs 1 and 3 gone: 8 weights
        first.weight[0, 0] = 0.0  # one more weight
        first.weight[:, 2] = 0.0  # hidden unit 2 loses its incoming weights (4 more)
        first.bias[2] = 0.0  # and its bias: unit 2 gone
        second = module.layers[1]  # nn.Linear: weight (out=2, in=4)
        second.weight[:, 0] = 0.0  # input 0 of the output layer gone: 2 weights
        second.weight[1] = 0.0  # output 1 loses its weights (3 more)...
        # ...but keeps its bias, so it still counts as kept.
    return module


def test_pruning_report_rows_of_a_pruned_mlp():
    module = pruned_mlp()
    rows = pruning_report(module, find_prunable_layers(module))
    assert rows == [
        {
            "layer": "layers.0",
            "shape": (6, 4),
            "n_weights": 24,
            "kept": 11,
            "sparsity": pytest.approx(13 / 24),
            "inputs": 6,
            "inputs_kept": 4,
            "outputs": 4,
            "outputs_kept": 3,
        },
        {
            "layer": "layers.1",
            "shape": (2, 4),
            "n_weights": 8,
            "kept": 3,
            "sparsity": pytest.approx(5 / 8),
            "inputs": 4,
            "inputs_kept": 3,
            "outputs": 2,
            "outputs_kept": 2,
        },
    ]


def test_pruning_report_output_without_weights_or_bias_is_not_kept():
    module = pruned_mlp()
    with torch.no_grad():
        module.layers[1].bias[1] = 0.0
    rows = pruning_report(module, find_prunable_layers(module))
    assert rows[1]["outputs_kept"] == 1


def test_pruning_report_of_an_unpruned_mlp():
    module = ones_mlp()
    rows = pruning_report(module, find_prunable_layers(module))
    for row in rows:
        assert row["kept"] == row["n_weights"]
        assert row["sparsity"] == 0.0
        assert row["inputs_kept"] == row["inputs"]
        assert row["outputs_kept"] == row["outputs"]


def test_pruning_report_layer_without_bias_counts_outputs_by_weights():
    module = nn.Sequential(nn.Linear(3, 4, bias=False))
    with torch.no_grad():
        module[0].weight.fill_(1.0)
        module[0].weight[2] = 0.0  # output 2
        module[0].weight[:, 1] = 0.0  # input 1
    (row,) = pruning_report(module, find_prunable_layers(module))
    assert row["shape"] == (4, 3)
    assert row["kept"] == 6
    assert row["inputs_kept"] == 2
    assert row["outputs_kept"] == 3


def test_kept_inputs_for_both_weight_layouts():
    module = nn.Sequential(SparseLinear(2, 3), nn.Linear(3, 2))
    layers = find_prunable_layers(module)
    with torch.no_grad():
        module[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
        module[1].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]))
    # SparseLinear (in_axis=0): rows are inputs; nn.Linear (in_axis=1): columns.
    assert kept_inputs(module, layers[0]).tolist() == [True, False]
    assert kept_inputs(module, layers[1]).tolist() == [True, False, True]


def test_kept_inputs_maps_shrunk_layers_back_to_original_columns():
    layer = SparseLinear(5, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.ones(5, 2))
    layer.restrict_inputs(torch.tensor([1, 3]))
    layer.weight = nn.Parameter(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    module = nn.Sequential(layer)
    [spec] = find_prunable_layers(nn.Sequential(SparseLinear(5, 2)))
    assert kept_inputs(module, spec).tolist() == [False, False, False, True, False]


def test_flops_of_the_dense_network():
    module = MLPModule(10, 3, hidden_layer_sizes=(8, 5))
    layers = find_prunable_layers(module)
    expected = (2 * 10 * 8 + 8) + (2 * 8 * 5 + 5) + (2 * 5 * 3 + 3)
    assert flops(layers) == expected


def test_flops_of_an_unpruned_module_equal_the_dense_count():
    module = ones_mlp()
    layers = find_prunable_layers(module)
    assert flops(layers, module) == flops(layers) == (2 * 24 + 4) + (2 * 8 + 2)


def test_flops_of_a_pruned_module_count_non_zeros():
    module = pruned_mlp()
    layers = find_prunable_layers(module)
    # 11 + 3 weights kept, 3 + 2 biases non-zero.
    assert flops(layers, module) == 2 * (11 + 3) + (3 + 2)
    assert flops(layers, module) < flops(layers)


def test_flops_of_layers_without_bias_count_no_bias_operations():
    module = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        for param in module.parameters():
            param.fill_(1.0)
    layers = find_prunable_layers(module)
    expected = 2 * 4 * 3 + (2 * 3 * 2 + 2)
    assert flops(layers, module) == expected
    assert flops(layers) == expected  # the dense count agrees


def test_summarize_counts_what_the_separate_functions_count():
    from skprune.report import summarize

    module = pruned_mlp()
    layers = find_prunable_layers(module)
    summary = summarize(module, layers, counted=["layers.0.weight", "layers.0.bias"])
    assert summary.rows == pruning_report(module, layers)
    assert summary.flops_dense == flops(layers)
    assert summary.flops_pruned == flops(layers, module)
    assert summary.support.tolist() == kept_inputs(module, layers[0]).tolist()
    # layers.0: 24 weights, 13 zero; bias: 4 entries, 1 zero.
    assert (summary.n_params, summary.n_nonzero) == (24 + 4, 11 + 3)


def test_summarize_gives_the_same_counts_block_by_block(monkeypatch):
    from skprune.report import summarize

    module = pruned_mlp()
    layers = find_prunable_layers(module)
    whole = summarize(module, layers)
    monkeypatch.setattr("skprune._core.report._BLOCK_ENTRIES", 1)  # a row per block
    blocks = summarize(module, layers)
    assert blocks.rows == whole.rows
    assert (blocks.n_params, blocks.n_nonzero) == (whole.n_params, whole.n_nonzero)
    assert torch.equal(blocks.support, whole.support)
    assert blocks.flops_pruned == whole.flops_pruned
