"""Physical removal: shrinking during retraining and compact inference models."""

import dataclasses
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import small_net
from skorch import NeuralNetClassifier

from skprune import CompressedClassifier, MLPModule, PrunedClassifier, _kernels
from skprune.compress import (
    choose_layouts,
    compact_mlp,
    shrink_mlp_,
    structure_to_keep,
)
from skprune.data import to_torch


def fit(X, y, **params):
    net = small_net(max_epochs=2, module__hidden_layer_sizes=(32, 16))
    params = {"retrain_epochs": 1, "random_state": 0, "prune_ratio": 0.75, **params}
    return PrunedClassifier(net, **params).fit(X, y)


@pytest.mark.parametrize("granularity", ["weight", "neuron", "feature"])
def test_compressed_model_predicts_like_the_fitted_one(text_data, granularity):
    X, y = text_data
    clf = fit(X, y, granularity=granularity)
    compressed = clf.compress()
    assert isinstance(compressed, CompressedClassifier)
    np.testing.assert_allclose(
        compressed.predict_proba(X), clf.predict_proba(X), atol=1e-5
    )
    np.testing.assert_array_equal(compressed.predict(X), clf.predict(X))
    np.testing.assert_allclose(
        compressed.predict_proba(X.toarray()), clf.predict_proba(X), atol=1e-5
    )
    assert compressed.score(X, y) == clf.score(X, y)


def test_compressed_model_pickles_several_times_smaller(text_data):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.9)
    compressed = clf.compress()
    assert len(pickle.dumps(compressed)) * 5 < len(pickle.dumps(clf))
    again = pickle.loads(pickle.dumps(compressed))
    np.testing.assert_array_equal(again.predict_proba(X), compressed.predict_proba(X))


def test_compact_network_drops_dead_units_and_unused_features(text_data):
    X, y = text_data
    clf = fit(X, y, granularity="neuron", prune_ratio=0.5)
    network = clf.compress().network
    report = clf.pruning_report_
    assert [w.shape[1] for w in network.weights[:-1]] == [
        row["outputs_kept"] for row in report[:-1]
    ]
    assert len(network.input_index) == report[0]["inputs_kept"]


def test_unit_left_with_only_a_bias_is_folded_into_the_next_layer():
    torch.manual_seed(0)
    module = MLPModule(6, 2, hidden_layer_sizes=(3,), dropout=0.0).eval()
    with torch.no_grad():
        module.layers[0].weight[:, 1] = 0.0  # unit 1: no inputs, bias only
        module.layers[0].bias[1] = 0.7
    compact = compact_mlp(module)
    assert compact.weights[0].shape[1] == 2
    x = torch.rand(5, 6)
    np.testing.assert_allclose(
        compact.decision_function(x.numpy()), module(x).detach().numpy(), atol=1e-6
    )


def test_weights_are_stored_sparse_only_where_that_is_smaller():
    torch.manual_seed(0)
    module = MLPModule(200, 3, hidden_layer_sizes=(20,))
    with torch.no_grad():
        weight = module.layers[0].weight
        weight.mul_((torch.rand(weight.shape) < 0.05).float())
    compact = compact_mlp(module)
    assert sp.issparse(compact.weights[0])
    assert isinstance(compact.weights[1], np.ndarray)  # dense output layer


def test_shrunk_module_computes_the_same_function_on_full_width_input():
    torch.manual_seed(0)
    module = MLPModule(8, 2, hidden_layer_sizes=(4, 3), dropout=0.0).eval()
    with torch.no_grad():
        module.layers[0].weight[[1, 5]] = 0.0  # two unused features
        module.layers[0].weight[:, 2] = 0.0  # one dead unit in the first layer
        module.layers[0].bias[2] = 0.0
        module.layers[1].weight[:, 2] = 0.0
    x = sp.random(6, 8, density=0.6, format="csr", random_state=0, dtype=np.float32)
    before = module(to_torch(x)).detach()
    inputs, units = structure_to_keep(module)
    assert inputs.tolist() == [0, 2, 3, 4, 6, 7]
    assert units[0].tolist() == [0, 1, 3]
    shrink_mlp_(module, inputs, units)
    assert module.layers[0].weight.shape == (6, 3)
    assert module.layers[1].weight.shape == (3, 3)
    torch.testing.assert_close(module(to_torch(x)).detach(), before)
    torch.testing.assert_close(module(torch.from_numpy(x.toarray())).detach(), before)


@pytest.mark.parametrize("granularity", ["neuron", "feature"])
def test_structured_pruning_retrains_a_physically_smaller_network(
    text_data, granularity
):
    X, y = text_data
    clf = fit(X, y, granularity=granularity, retrain_epochs=2)
    module = clf.estimator_.module_
    first = module.layers[0].weight
    if granularity == "feature":
        assert first.shape[0] == X.shape[1] - round(0.75 * X.shape[1])
        np.testing.assert_array_equal(
            np.sort(module.layers[0].input_index.numpy()),
            np.flatnonzero(clf.support_),
        )
    else:
        assert first.shape[1] + module.layers[1].weight.shape[0] == 12  # of 48
    # The optimizer steps the new, smaller parameters.
    optimized = {
        id(p) for g in clf.estimator_.optimizer_.param_groups for p in g["params"]
    }
    assert {id(p) for p in module.parameters()} == optimized
    assert clf.pruning_report_[0]["shape"] == (X.shape[1], 32)
    assert clf.score(X, y) > 0.8


def test_compress_needs_an_mlp_module_trained_with_cross_entropy(text_data):
    X, y = text_data

    class Plain(torch.nn.Module):
        def __init__(self, n_features, n_classes):
            super().__init__()
            self.hidden = torch.nn.Linear(n_features, 8)
            self.out = torch.nn.Linear(8, n_classes)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x)))

    net = NeuralNetClassifier(
        Plain,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=1,
        train_split=None,
        verbose=0,
    )
    clf = PrunedClassifier(net, retrain_epochs=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="MLPModule"):
        clf.compress()
    # logits under another criterion (NLLLoss on logits is refused by fit)
    margin = small_net(max_epochs=1, criterion=torch.nn.MultiMarginLoss)
    clf = PrunedClassifier(margin, retrain_epochs=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="CrossEntropyLoss"):
        clf.compress()


def test_compressed_model_refuses_the_wrong_number_of_features(text_data):
    X, y = text_data
    compressed = fit(X, y).compress()
    with pytest.raises(ValueError, match="features"):
        compressed.predict(X[:, :-1])


def test_compressed_model_predicts_like_the_estimator_when_the_last_rows_are_empty(
    text_data, monkeypatch
):
    X, y = text_data
    X = X[:30].tolil()
    X[25:] = 0.0  # the last five rows store nothing
    X = X.tocsr()
    X.eliminate_zeros()
    clf = fit(*text_data)
    compressed = clf.compress()
    np.testing.assert_array_equal(compressed.predict(X), clf.predict(X))
    np.testing.assert_allclose(
        compressed.predict_proba(X), clf.predict_proba(X), atol=1e-5
    )
    # The scipy path, taken without numba, too.
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", False)
    without_kernels = clf.compress()
    assert set(without_kernels.network.layouts) == {"dense"}
    np.testing.assert_allclose(
        without_kernels.predict_proba(X), clf.predict_proba(X), atol=1e-5
    )


def _module_with_density(density, seed=0):
    torch.manual_seed(seed)
    module = MLPModule(300, 4, hidden_layer_sizes=(40, 30), dropout=0.0).eval()
    with torch.no_grad():
        for layer in module.layers:
            layer.weight.mul_((torch.rand(layer.weight.shape) < density).float())
    return module


@pytest.mark.parametrize(
    "layouts",
    [
        ["csr", "csr", "csr"],
        ["row-sparse", "dense", "dense"],
        ["dense", "dense", "dense"],
        ["csr", "dense", "csr"],
    ],
)
def test_every_layout_computes_the_module_function(layouts):
    pytest.importorskip("numba")
    module = _module_with_density(0.2)
    X = sp.random(12, 300, density=0.05, format="csr", random_state=1, dtype=np.float32)
    X = sp.vstack([X, sp.csr_matrix((3, 300), dtype=np.float32)]).tocsr()
    expected = module(to_torch(X)).detach().numpy()
    compact = dataclasses.replace(compact_mlp(module), layouts=layouts)
    assert compact.layouts == tuple(layouts)
    np.testing.assert_allclose(compact.decision_function(X), expected, atol=1e-5)
    np.testing.assert_allclose(
        compact.decision_function(X.toarray()), expected, atol=1e-5
    )


def test_layout_follows_the_share_of_kept_weights_and_shows_in_the_repr():
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)

    def weight(shape, density):
        return (rng.random(shape) < density) * rng.standard_normal(shape)

    sparse = [weight((300, 40), 0.005), weight((400, 40), 0.005)]
    assert choose_layouts(sparse) == ["csr", "csr"]
    dense = [weight((300, 40), 1.0), weight((40, 4), 1.0)]
    assert choose_layouts(dense) == ["row-sparse", "dense"]
    compact = compact_mlp(_module_with_density(1.0))
    assert compact.layouts == ("row-sparse", "dense", "dense")
    assert "300x40 row-sparse (100.0% kept)" in repr(compact)
    compact = dataclasses.replace(compact, layouts=["csr", "dense", "csr"])
    compressed = CompressedClassifier(compact, classes=[0, 1, 2, 3])
    assert "csr, " in repr(compressed) or "csr (" in repr(compressed)


def test_layouts_survive_pickling_and_caches_are_left_out():
    compact = compact_mlp(_module_with_density(0.1))
    X = sp.random(5, 300, density=0.05, format="csr", random_state=2, dtype=np.float32)
    before = compact.decision_function(X)
    again = pickle.loads(pickle.dumps(compact))
    assert "_cache" not in again.__dict__
    assert again.layouts == compact.layouts
    np.testing.assert_array_equal(again.decision_function(X), before)
