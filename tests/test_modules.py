"""Tests for skprune.modules: SparseLinear and MLPModule."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from skprune.data import to_torch
from skprune.modules import MLPModule, SparseLinear

pytestmark = pytest.mark.filterwarnings(
    "ignore:Sparse CSR tensor support is in beta:UserWarning"
)

ATOL = 1e-5


def batch_with_empty_rows():
    """A 6 x 8 dense batch; rows 1 and 4 are empty, features 2 and 6 never occur."""
    generator = torch.Generator().manual_seed(0)
    dense = torch.randn(6, 8, generator=generator)
    dense[dense.abs() < 0.6] = 0.0
    dense[[1, 4]] = 0.0
    dense[:, [2, 6]] = 0.0
    dense[0, 0] = 1.5  # at least one value
    return dense


def layouts(dense):
    return {
        "dense": dense.clone(),
        "csr": dense.to_sparse_csr(),
        "coo": dense.to_sparse(),
        "scipy_csr": to_torch(sp.csr_matrix(dense.numpy())),  # int32 indices
    }


def forward_backward(layer, x, seed=1):
    """Output and gradients of a fixed linear function of the output."""
    layer.zero_grad(set_to_none=True)
    out = layer(x)
    generator = torch.Generator().manual_seed(seed)
    (out * torch.randn(out.shape, generator=generator)).sum().backward()
    return out.detach(), layer.weight.grad, layer.bias.grad


def test_sparse_linear_weight_is_input_major_and_initialised_like_linear():
    torch.manual_seed(0)
    layer = SparseLinear(16, 5)
    assert layer.weight.shape == (16, 5)
    assert layer.bias.shape == (5,)
    assert layer.in_axis == 0
    assert layer.weight.abs().max() <= 1 / 4
    assert layer.bias.abs().max() <= 1 / 4
    assert SparseLinear(3, 2, bias=False).bias is None


@pytest.mark.parametrize("layout", ["csr", "coo", "scipy_csr"])
def test_sparse_linear_same_output_and_gradients_for_sparse_and_dense_input(layout):
    torch.manual_seed(0)
    layer = SparseLinear(8, 3)
    dense = batch_with_empty_rows()
    out_ref, wgrad_ref, bgrad_ref = forward_backward(layer, dense)
    torch.testing.assert_close(
        out_ref, dense @ layer.weight.detach() + layer.bias.detach()
    )

    out, wgrad, bgrad = forward_backward(layer, layouts(dense)[layout])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, out_ref, atol=ATOL, rtol=0)
    assert wgrad.layout == torch.strided
    torch.testing.assert_close(wgrad, wgrad_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(bgrad, bgrad_ref, atol=ATOL, rtol=0)
    # Empty rows give the bias alone.
    torch.testing.assert_close(out[[1, 4]], layer.bias.detach().expand(2, 3))


def test_sparse_linear_accepts_float64_scipy_batches():
    torch.manual_seed(0)
    layer = SparseLinear(8, 3)
    dense = batch_with_empty_rows()
    x = to_torch(sp.csr_matrix(dense.numpy().astype(np.float64)))
    out = layer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, layer(dense), atol=ATOL, rtol=0)


def test_sparse_linear_batch_of_only_empty_rows_gives_the_bias():
    torch.manual_seed(0)
    layer = SparseLinear(5, 2)
    x = torch.zeros(3, 5).to_sparse_csr()
    out = layer(x)
    torch.testing.assert_close(out, layer.bias.detach().expand(3, 2))


@pytest.mark.parametrize("layout", ["csr", "coo", "scipy_csr"])
def test_sparse_grad_is_sparse_and_only_in_rows_of_present_features(layout):
    torch.manual_seed(0)
    dense_layer = SparseLinear(8, 3)
    sparse_layer = SparseLinear(8, 3, sparse_grad=True)
    sparse_layer.load_state_dict(dense_layer.state_dict())
    dense = batch_with_empty_rows()
    _, wgrad_ref, bgrad_ref = forward_backward(dense_layer, dense)

    out, wgrad, bgrad = forward_backward(sparse_layer, layouts(dense)[layout])
    assert wgrad.is_sparse
    present = (dense != 0).any(dim=0)
    assert not present[[2, 6]].any()
    rows = wgrad.coalesce().indices()[0].unique()
    assert present[rows].all()  # no row of an absent feature is stored
    densified = wgrad.to_dense()
    assert torch.equal(densified[~present], torch.zeros(int((~present).sum()), 3))
    torch.testing.assert_close(densified, wgrad_ref, atol=ATOL, rtol=0)
    assert bgrad.layout == torch.strided
    torch.testing.assert_close(bgrad, bgrad_ref, atol=ATOL, rtol=0)


def test_sparse_grad_steps_with_sgd():
    torch.manual_seed(0)
    layer = SparseLinear(8, 3, sparse_grad=True)
    before = layer.weight.detach().clone()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    dense = batch_with_empty_rows()
    forward_backward(layer, dense.to_sparse_csr())
    optimizer.step()
    changed = (layer.weight.detach() != before).any(dim=1)
    assert torch.equal(changed, (dense != 0).any(dim=0))


# MLPModule ----------------------------------------------------------------------------


@pytest.mark.parametrize("hidden", [(7,), (7, 5), ()])
def test_mlp_output_shape_for_sparse_and_dense_input(hidden):
    torch.manual_seed(0)
    module = MLPModule(8, 4, hidden_layer_sizes=hidden).eval()
    dense = batch_with_empty_rows()
    out = module(dense)
    assert out.shape == (6, 4)
    torch.testing.assert_close(module(dense.to_sparse_csr()), out, atol=ATOL, rtol=0)
    assert len(module.layers) == len(hidden) + 1
    assert isinstance(module.layers[0], SparseLinear)
    assert all(type(layer) is nn.Linear for layer in module.layers[1:])
    assert module.hidden_layer_sizes == hidden


def test_mlp_without_hidden_layers_is_a_linear_model():
    torch.manual_seed(0)
    module = MLPModule(8, 3, hidden_layer_sizes=(), dropout=0.5).train()
    (layer,) = module.layers
    assert (layer.in_features, layer.out_features) == (8, 3)
    dense = batch_with_empty_rows()
    expected = dense @ layer.weight.detach() + layer.bias.detach()
    # No dropout or activation is applied even in training mode.
    torch.testing.assert_close(
        module(dense.to_sparse_csr()), expected, atol=ATOL, rtol=0
    )


def test_mlp_layer_sizes_and_sparse_grad_are_passed_on():
    module = MLPModule(10, 2, hidden_layer_sizes=[6, 4], sparse_grad=True)
    assert module.n_features == 10
    assert module.n_classes == 2
    assert module.hidden_layer_sizes == (6, 4)
    assert module.layers[0].sparse_grad is True
    assert module.layers[0].weight.shape == (10, 6)
    assert module.layers[1].weight.shape == (4, 6)
    assert module.layers[2].weight.shape == (2, 4)


@pytest.mark.parametrize(
    ("activation", "cls"),
    [("relu", nn.ReLU), ("tanh", nn.Tanh), ("logistic", nn.Sigmoid)],
)
def test_mlp_activation(activation, cls):
    module = MLPModule(4, 2, hidden_layer_sizes=(3,), activation=activation)
    assert isinstance(module.activation, cls)


def test_mlp_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    module = MLPModule(8, 3, hidden_layer_sizes=(64,), dropout=0.5)
    x = torch.ones(4, 8)
    module.eval()
    assert torch.equal(module(x), module(x))
    module.train()
    assert not torch.equal(module(x), module(x))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "sigmoid"}, "activation"),
        ({"activation": "ReLU"}, "activation"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": float("nan")}, "dropout"),
        ({"n_features": 0}, "positive"),
        ({"n_classes": 0}, "positive"),
        ({"hidden_layer_sizes": (8, 0)}, "positive"),
        ({"hidden_layer_sizes": (-2,)}, "positive"),
    ],
)
def test_mlp_bad_arguments_raise_value_error(kwargs, match):
    arguments = {"n_features": 5, "n_classes": 2, "hidden_layer_sizes": (4,)}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        MLPModule(**arguments)


def test_mlp_parameters_are_deterministic_under_manual_seed():
    torch.manual_seed(3)
    first = MLPModule(12, 3, hidden_layer_sizes=(6, 4)).state_dict()
    torch.manual_seed(3)
    second = MLPModule(12, 3, hidden_layer_sizes=(6, 4)).state_dict()
    torch.manual_seed(4)
    third = MLPModule(12, 3, hidden_layer_sizes=(6, 4)).state_dict()
    assert list(first) == list(second)
    for name in first:
        assert torch.equal(first[name], second[name])
    assert not all(torch.equal(first[n], third[n]) for n in first)


class _DevicesOfNewTensors(TorchDispatchMode):
    """Records the device of every tensor the operations run under it produce."""

    def __init__(self):
        super().__init__()
        self.devices = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.devices.add(leaf.device.type)
        return out


def test_restrict_inputs_builds_its_column_map_on_the_weights_device():
    # The meta device stands in for a GPU: a map built on the CPU shows up here.
    layer = SparseLinear(6, 3).to("meta")
    with _DevicesOfNewTensors() as log:
        layer.restrict_inputs(torch.tensor([0, 2, 5], device="meta"))
    assert log.devices == {"meta"}
    assert layer.input_index.device.type == "meta"


@pytest.mark.parametrize("sparse_grad", [False, True])
def test_restricted_layer_computes_the_same_for_dense_and_sparse_input(sparse_grad):
    # A dense batch was cut to the kept columns, then (with sparse_grad) cut again
    # through the column map, which dropped every value: the layer read nothing.
    dense = batch_with_empty_rows()
    kept = torch.tensor([0, 3, 5, 7])
    layer = SparseLinear(8, 3, sparse_grad=sparse_grad)
    with torch.no_grad():
        expected = dense[:, kept] @ layer.weight[kept] + layer.bias
        layer.weight = nn.Parameter(layer.weight[kept])
    layer.restrict_inputs(kept)
    with torch.no_grad():
        for x in (dense, dense.to_sparse_csr()):
            torch.testing.assert_close(layer(x), expected, atol=ATOL, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_restricted_layer_runs_on_cuda_like_on_the_cpu():
    dense = batch_with_empty_rows()
    torch.manual_seed(0)
    layer = SparseLinear(8, 3)
    kept = torch.tensor([0, 3, 5, 7])
    cpu = SparseLinear(8, 3)
    cpu.load_state_dict(layer.state_dict())
    with torch.no_grad():
        cpu.weight = nn.Parameter(cpu.weight[kept])
    cpu.restrict_inputs(kept)
    gpu = SparseLinear(8, 3).cuda()
    gpu.load_state_dict(layer.state_dict())
    with torch.no_grad():
        gpu.weight = nn.Parameter(gpu.weight[kept.cuda()])
    gpu.restrict_inputs(kept.cuda())
    for x in (dense, dense.to_sparse_csr()):
        expected = cpu(x)
        torch.testing.assert_close(gpu(x.cuda()).cpu(), expected, atol=ATOL, rtol=0)


# torch warns about CSR tensors once per process, so only a fresh process shows it.
DENSE_FITS_RECORDING_WARNINGS = """
import json, warnings
import numpy as np
from conftest import small_net
from skprune import PrunedClassifier, PrunedRegressor, default_regressor_net

rng = np.random.default_rng(0)
X = rng.normal(size=(120, 10)).astype(np.float32)
y = (X[:, 0] > 0).astype(np.int64)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    PrunedClassifier(small_net(max_epochs=1), retrain_epochs=1, random_state=0).fit(
        X, y
    )
    regressor_net = default_regressor_net().set_params(max_epochs=1)
    PrunedRegressor(regressor_net, retrain_epochs=1, random_state=0).fit(X, X[:, 0])
user_warnings = [w for w in caught if issubclass(w.category, UserWarning)]
print(json.dumps([str(w.message) for w in user_warnings]))
"""


def test_a_dense_input_fit_emits_no_user_warning_in_a_fresh_process():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    result = subprocess.run(
        [sys.executable, "-c", DENSE_FITS_RECORDING_WARNINGS],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == []
