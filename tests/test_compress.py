"""Physical removal: shrinking during retraining and compact inference models."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import small_net
from skorch import NeuralNetClassifier

from skprune import CompressedClassifier, MLPModule, PrunedClassifier
from skprune.compress import compact_mlp, shrink_mlp_, structure_to_keep
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
