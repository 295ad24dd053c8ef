"""Physical removal: shrinking during retraining and compact inference models."""

import dataclasses
import functools
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import small_net
from skorch import NeuralNetClassifier

import skprune
from skprune import (
    CompressedClassifier,
    CompressedRegressor,
    MLPModule,
    PrunedClassifier,
    PrunedRegressor,
)
from skprune._nn import _kernels
from skprune._regressor import default_regressor_net
from skprune.compress import (
    LAYOUTS,
    CompactMLP,
    choose_layouts,
    compact_mlp,
    shrink_mlp_,
    structure_to_keep,
)
from skprune.data import to_torch
from skprune.datasets import make_text_classification
from skprune.persistence import ModelFileError


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


def test_weights_are_held_in_their_layouts_form_and_saved_in_the_smaller_one(
    monkeypatch,
):
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", True)  # numba is a dependency
    torch.manual_seed(0)
    module = MLPModule(200, 3, hidden_layer_sizes=(20,))
    with torch.no_grad():
        weight = module.layers[0].weight
        weight.mul_((torch.rand(weight.shape) < 0.05).float())
    compact = compact_mlp(module)
    for layouts in (["row-sparse", "dense"], ["csr", "csr"]):
        compact = dataclasses.replace(compact, layouts=layouts)
        for weight, layout in zip(compact.weights, layouts, strict=True):
            assert sp.issparse(weight) == (layout == "csr")
        saved = compact.__getstate__()["weights"]
        assert sp.issparse(saved[0])  # 5% kept: CSR is smaller
        assert isinstance(saved[1], np.ndarray)  # dense output layer


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
    net = small_net(max_epochs=6, module__hidden_layer_sizes=(32, 16))
    clf = PrunedClassifier(
        net,
        granularity=granularity,
        prune_ratio=0.75,
        retrain_epochs=4,
        random_state=0,
    ).fit(X[:200], y[:200])
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
    # The smaller network still learns: held-out rows, where the majority class
    # holds 0.36 (0.75-0.87 over seeds 0-2).
    assert clf.score(X[200:], y[200:]) > 0.6


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
def test_every_layout_computes_the_module_function(layouts, monkeypatch):
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", True)  # numba is a dependency
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


def test_layout_follows_the_share_of_kept_weights_and_shows_in_the_repr(monkeypatch):
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", True)  # numba is a dependency
    rng = np.random.default_rng(0)

    def weight(shape, density):
        return (rng.random(shape) < density) * rng.standard_normal(shape)

    sparse = [weight((300, 1024), 0.005), weight((1024, 256), 0.01)]
    assert choose_layouts(sparse) == ["csr", "csr"]
    dense = [weight((300, 40), 1.0), weight((40, 4), 1.0)]
    assert choose_layouts(dense) == ["row-sparse", "dense"]
    # A narrow layer's rows are cheap whole: CSR's fixed cost per value loses.
    assert choose_layouts([weight((300, 40), 0.005)]) == ["row-sparse"]
    # 1% kept: dense rows win from cache, lose when read from memory.
    in_cache = sp.random(3000, 256, density=0.01, format="csr", random_state=0)
    from_memory = sp.random(70_000, 256, density=0.01, format="csr", random_state=0)
    assert choose_layouts([in_cache]) == ["row-sparse"]
    assert choose_layouts([from_memory.astype(np.float32)]) == ["csr"]
    compact = compact_mlp(_module_with_density(1.0))
    assert compact.layouts == ("row-sparse", "dense", "dense")
    assert "300x40 row-sparse (100.0% kept)" in repr(compact)
    compact = dataclasses.replace(compact, layouts=["csr", "dense", "csr"])
    compressed = CompressedClassifier(compact, classes=[0, 1, 2, 3])
    assert "csr, " in repr(compressed) or "csr (" in repr(compressed)


def test_layouts_survive_pickling_and_only_the_fields_are_pickled(monkeypatch):
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", True)
    compact = compact_mlp(_module_with_density(0.1))
    compact = dataclasses.replace(compact, layouts=["csr", "dense", "csr"])
    X = sp.random(5, 300, density=0.05, format="csr", random_state=2, dtype=np.float32)
    before = compact.decision_function(X)
    assert set(compact.__getstate__()) == {f.name for f in dataclasses.fields(compact)}
    again = pickle.loads(pickle.dumps(compact))
    assert again.layouts == ("csr", "dense", "csr")
    np.testing.assert_array_equal(again.decision_function(X), before)


# batch invariance ------------------------------------------------------------------

RATIOS = [0.5, 0.9, 0.98]
GRANULARITIES = ["weight", "neuron", "feature"]
EVERY_LAYOUT = [
    (first, second, third)
    for first in LAYOUTS
    for second in ("csr", "dense")
    for third in ("csr", "dense")
]


@functools.cache
def _pruned(estimator: str, granularity: str, prune_ratio: float):
    """A pruned fit with two hidden layers, so that dense layers follow the first."""
    X, y = make_text_classification(300, 2000, n_classes=3, random_state=0)
    net = small_net(max_epochs=1, module__hidden_layer_sizes=(100, 50))
    params = {"granularity": granularity, "prune_ratio": prune_ratio}
    params.update(retrain_epochs=1, random_state=0)
    if estimator == "classifier":
        return PrunedClassifier(net, **params).fit(X, y)
    net = default_regressor_net().set_params(
        max_epochs=1, module__hidden_layer_sizes=(100, 50)
    )
    target = np.column_stack([y, X[:, :50].sum(axis=1).A1])
    return PrunedRegressor(net, **params).fit(X, target)


def _compiled_copy(compressed, layouts=None):
    """``compressed`` with its products made while numba is on, in ``layouts``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_kernels, "HAVE_NUMBA", True)
        network = dataclasses.replace(compressed.network, layouts=layouts)
    if isinstance(compressed, CompressedClassifier):
        return CompressedClassifier(network, compressed.classes)
    return CompressedRegressor(network)


def _methods(compressed):
    if isinstance(compressed, CompressedClassifier):
        return [compressed.predict_proba, compressed.decision_function]
    return [compressed.predict]


def _assert_batch_invariant(compressed, X, seed: int) -> None:
    """Every random split into batches, and each row alone, gives the same bits."""
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    for method in _methods(compressed):
        whole = method(X)
        for _ in range(3):
            size = rng.integers(1, 6)
            cuts = np.sort(rng.choice(np.arange(1, n), size=size, replace=False))
            bounds = zip([0, *cuts], [*cuts, n], strict=True)
            parts = [method(X[start:stop]) for start, stop in bounds]
            assert np.array_equal(np.concatenate(parts), whole), method.__name__
        rows = np.concatenate([method(X[i : i + 1]) for i in range(n)])
        assert np.array_equal(rows, whole), method.__name__


@pytest.mark.parametrize("prune_ratio", RATIOS)
@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("estimator", ["classifier", "regressor"])
def test_compressed_prediction_of_a_row_does_not_depend_on_its_batch(
    text_data, estimator, granularity, prune_ratio
):
    compressed = _compiled_copy(_pruned(estimator, granularity, prune_ratio).compress())
    X = text_data[0][:40]
    _assert_batch_invariant(compressed, X, seed=0)
    _assert_batch_invariant(compressed, X.toarray(), seed=1)


@pytest.mark.parametrize("layouts", EVERY_LAYOUT, ids="-".join)
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_every_layout_is_batch_invariant(text_data, granularity, layouts):
    for estimator in ("classifier", "regressor"):
        fitted = _pruned(estimator, granularity, 0.9).compress()
        compressed = _compiled_copy(fitted, layouts)
        assert compressed.network.layouts == layouts
        X = text_data[0][:24]
        _assert_batch_invariant(compressed, X, seed=2)
        _assert_batch_invariant(compressed, X.toarray(), seed=3)


def test_the_layout_is_chosen_once_and_every_call_runs_the_same_products(text_data):
    compressed = _pruned("classifier", "weight", 0.9).compress()
    network = compressed.network
    before = dict(vars(network))
    compressed.predict_proba(text_data[0][:5])
    compressed.predict_proba(text_data[0][:5].toarray())
    after = vars(network)
    assert after.keys() == before.keys()
    assert all(after[key] is before[key] for key in before)  # nothing made lazily
    with pytest.raises(dataclasses.FrozenInstanceError):
        network.layouts = ("csr", "csr", "csr")
    arrays = [network.input_index, *network.biases]
    for weight in network.weights:
        arrays += [weight.data, weight.indices] if sp.issparse(weight) else [weight]
    assert not any(array.flags.writeable for array in arrays)


# a CompactMLP checks what it is built from --------------------------------------


def _fields(**changes):
    """A valid CompactMLP's fields (8 features, 5 read, 4 and 3 units), changed."""
    rng = np.random.default_rng(0)
    first = rng.standard_normal((5, 4)).astype(np.float32)
    first[rng.random(first.shape) < 0.5] = 0.0
    fields = {
        "n_features": 8,
        "input_index": np.array([0, 2, 3, 6, 7]),
        "weights": [sp.csr_matrix(first), rng.standard_normal((4, 3))],
        "biases": [np.zeros(4, dtype=np.float32), np.ones(3)],
        "activation": "relu",
        "layouts": None,
    }
    return {**fields, **changes}


def _csr_with(matrix, **arrays):
    matrix = matrix.copy()
    for name, change in arrays.items():
        array = getattr(matrix, name).astype(np.int64)
        change(array)
        setattr(matrix, name, array)
    return matrix


def _weights_with(position, weight):
    weights = _fields()["weights"]
    weights[position] = weight
    return weights


def _set(position, value):
    def change(array):
        array[position] = value

    return change


FIRST = _fields()["weights"][0]
BAD_FIELDS = {
    "a stored column index past the outputs": (
        {"weights": _weights_with(0, _csr_with(FIRST, indices=_set(0, 4)))},
        "weights[0] has column index 4",
    ),
    "a negative stored column index": (
        {"weights": _weights_with(0, _csr_with(FIRST, indices=_set(-1, -1)))},
        "weights[0] has column index -1",
    ),
    "decreasing row pointers": (
        {"weights": _weights_with(0, _csr_with(FIRST, indptr=_set(1, 10**6)))},
        "weights[0] has inconsistent row pointers",
    ),
    "a NaN weight": (
        {"weights": _weights_with(1, np.full((4, 3), np.nan))},
        "weights[1] holds NaN",
    ),
    "an infinite stored weight": (
        {"weights": _weights_with(0, FIRST * np.float32(np.inf))},
        "weights[0] holds NaN or infinite",
    ),
    "a weight beyond float32": (
        {"weights": _weights_with(1, np.full((4, 3), 1e39))},
        "weights[1] holds NaN or infinite",
    ),
    "a NaN bias": (
        {"biases": [np.zeros(4), np.array([0.0, np.nan, 0.0])]},
        "biases[1] holds NaN",
    ),
    "a bias of the wrong length": (
        {"biases": [np.zeros(5), np.zeros(3)]},
        "biases[0] has 5 entries, but weights[0] has 4 outputs",
    ),
    "a missing bias": ({"biases": [np.zeros(4)]}, "2 weights but 1 biases"),
    "weights that do not chain": (
        {"weights": _weights_with(1, np.zeros((5, 3)))},
        "weights[0] has 4 outputs, but weights[1] has 5 inputs",
    ),
    "an input index of another length": (
        {"input_index": np.array([0, 2, 3, 6])},
        "weights[0] has 5 rows, but input_index has 4 entries",
    ),
    "an input index past the features": (
        {"input_index": np.array([0, 2, 3, 6, 8])},
        "input_index holds feature 8",
    ),
    "a negative input index": (
        {"input_index": np.array([-1, 2, 3, 6, 7])},
        "input_index holds feature -1",
    ),
    "a repeated input index": (
        {"input_index": np.array([0, 2, 2, 6, 7])},
        "input_index must not repeat",
    ),
    "a float input index": (
        {"input_index": np.array([0.0, 2, 3, 6, 7])},
        "input_index must be a 1-d array of integers",
    ),
    "no features": ({"n_features": 0}, "n_features must be a positive integer"),
    "a boolean feature count": ({"n_features": True}, "n_features must be"),
    "an unknown activation": ({"activation": "gelu"}, "activation must be one of"),
    "an unknown layout": ({"layouts": ["csr", "blas"]}, "layouts[1] must be one of"),
    "row-sparse after the first layer": (
        {"layouts": ["csr", "row-sparse"]},
        "layouts[1] must be one of ['csr', 'dense']",
    ),
    "a layout too few": ({"layouts": ["csr"]}, "one layout per weight (2)"),
    "an integer weight": (
        {"weights": _weights_with(1, np.zeros((4, 3), dtype=int))},
        "weights[1] must be a 2-d array of floats",
    ),
}


@pytest.mark.parametrize("problem", BAD_FIELDS)
def test_compact_mlp_refuses_an_inconsistent_structure_at_construction(problem):
    changes, match = BAD_FIELDS[problem]
    with pytest.raises(ValueError, match=re.escape(match)):
        CompactMLP(**_fields(**changes))


def test_compact_mlp_refuses_a_weight_that_is_not_an_array_or_csr():
    with pytest.raises(TypeError, match=r"weights\[1\] must be a numpy array"):
        CompactMLP(**_fields(weights=_weights_with(1, [[0.0] * 3] * 4)))
    with pytest.raises(TypeError, match=r"weights\[0\] must be a scipy.sparse CSR"):
        CompactMLP(**_fields(weights=_weights_with(0, FIRST.tocoo())))


def test_compact_mlp_keeps_copies_so_its_inputs_can_change_afterwards():
    fields = _fields()
    compact = CompactMLP(**fields)
    X = np.random.default_rng(1).random((3, 8)).astype(np.float32)
    before = compact.decision_function(X)
    fields["weights"][0].indices[:] = 10**6  # would point outside, had it been kept
    fields["weights"][1][:] = np.nan
    fields["input_index"][:] = 0
    np.testing.assert_array_equal(compact.decision_function(X), before)


class _Pickled:
    """Pickles as a CompactMLP with the given state, as a tampered file would."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return CompactMLP.__new__, (CompactMLP,), self.state


@pytest.mark.parametrize(
    "problem",
    ["a stored column index past the outputs", "a NaN weight", "a missing bias"],
)
def test_an_unpickled_compact_mlp_meets_the_same_checks(problem):
    valid = CompactMLP(**_fields())
    state = {**valid.__getstate__(), **BAD_FIELDS[problem][0]}
    with pytest.raises(ValueError, match=re.escape(BAD_FIELDS[problem][1])):
        pickle.loads(pickle.dumps(_Pickled(state)))
    with pytest.raises(ValueError, match="Not the state of a CompactMLP"):
        pickle.loads(pickle.dumps(_Pickled({**state, "__class__": "os.system"})))
    # The valid state, through the same door, loads and predicts as before.
    again = pickle.loads(pickle.dumps(_Pickled(valid.__getstate__())))
    X = np.ones((2, 8), dtype=np.float32)
    np.testing.assert_array_equal(
        again.decision_function(X), valid.decision_function(X)
    )


def test_a_compact_mlp_checks_its_input_when_called_directly():
    compact = CompactMLP(**_fields())
    X = sp.random(4, 8, density=0.5, format="csr", random_state=0, dtype=np.float32)
    X.indices[0] = 8
    with pytest.raises(ValueError, match="column index 8"):
        compact.decision_function(X)
    X = sp.random(4, 8, density=0.5, format="coo", random_state=0, dtype=np.float32)
    X.row[0] = 4
    with pytest.raises(ValueError, match="row index 4"):
        compact.decision_function(X)


# feature names ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def named_fits():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        rng.random((120, 6)).astype(np.float32), columns=[f"f{i}" for i in range(6)]
    )
    y = (X["f0"] + X["f3"] > 1).to_numpy().astype(int)
    net = small_net(max_epochs=2, module__hidden_layer_sizes=(8,))
    classifier = PrunedClassifier(net, retrain_epochs=1, random_state=0).fit(X, y)
    regressor_net = default_regressor_net().set_params(
        max_epochs=2, module__hidden_layer_sizes=(8,)
    )
    regressor = PrunedRegressor(regressor_net, retrain_epochs=1, random_state=0)
    return X, [classifier, regressor.fit(X, X["f1"].to_numpy())]


def test_compressed_models_refuse_reordered_columns_as_the_estimator_does(named_fits):
    X, estimators = named_fits
    reordered = X[X.columns[::-1]]
    renamed = X.rename(columns={"f2": "g2"})
    for estimator in estimators:
        compressed = estimator.compress()
        np.testing.assert_array_equal(
            compressed.feature_names_in_, estimator.feature_names_in_
        )
        for bad in (reordered, renamed):
            with pytest.raises(ValueError) as expected:
                estimator.predict(bad)
            with pytest.raises(ValueError) as refused:
                compressed.predict(bad)
            message = str(expected.value).replace(type(estimator).__name__, "")
            name = type(compressed).__name__
            assert str(refused.value).replace(name, "") == message
            assert "feature names should match" in message


def test_compressed_models_predict_like_the_estimator_on_the_same_columns(named_fits):
    X, (classifier, regressor) = named_fits
    compressed = classifier.compress()
    np.testing.assert_array_equal(compressed.predict(X), classifier.predict(X))
    np.testing.assert_allclose(
        compressed.predict_proba(X), classifier.predict_proba(X), atol=1e-5
    )
    np.testing.assert_allclose(
        regressor.compress().predict(X), regressor.predict(X), atol=1e-5
    )


def test_compressed_models_warn_as_scikit_learn_does_about_names(named_fits, text_data):
    X, (classifier, _) = named_fits
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        classifier.compress().predict(X.to_numpy())
    unnamed = fit(*text_data).compress()  # fitted on a matrix, without names
    frame = pd.DataFrame(text_data[0][:5].toarray(), columns=[f"w{i}" for i in
                                                              range(2000)])  # fmt: skip
    with pytest.warns(UserWarning, match="fitted without feature names"):
        unnamed.predict(frame)


def test_a_saved_model_whose_stored_weight_points_past_its_outputs_is_refused(
    text_data, tmp_path
):
    # A file is written by whoever wrote it: tamper with the saved arrays (here
    # through the frozen dataclass's back door) and load must refuse them before
    # any kernel runs, not write outside the output (which it did: SIGSEGV).
    compressed = fit(*text_data, prune_ratio=0.95).compress()
    network = compressed.network
    weights = [sp.csr_matrix(w, copy=True) for w in network.weights]
    weights[0].indices = weights[0].indices.copy()
    weights[0].indices[0] = weights[0].shape[1] + 5
    object.__setattr__(network, "weights", tuple(weights))
    skprune.save(compressed, tmp_path / "tampered.skprune")
    with pytest.raises(ModelFileError, match=r"weights\[0\].*column ind"):
        skprune.load(tmp_path / "tampered.skprune")


@pytest.fixture(scope="module")
def text_pipeline():
    """A fitted TfidfVectorizer -> PrunedClassifier pipeline and its raw texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    words = np.array(["spam", "ham", "eggs", "toast", "tea", "jam", "milk", "rice"])
    y = rng.integers(0, 2, 120)
    texts = [
        " ".join(rng.choice(words[:5] if label else words[3:], size=6)) for label in y
    ]
    net = small_net(max_epochs=2, module__hidden_layer_sizes=(8,))
    model = make_pipeline(
        TfidfVectorizer(), PrunedClassifier(net, retrain_epochs=1, random_state=0)
    )
    return model.fit(texts, y), texts, y


def test_compressed_model_is_the_last_step_of_a_pipeline_on_raw_text(text_pipeline):
    from sklearn.pipeline import Pipeline, make_pipeline

    model, texts, _ = text_pipeline
    small = make_pipeline(model[0], model[-1].compress())
    np.testing.assert_array_equal(small.predict(texts), model.predict(texts))
    # the README's way: the fitted pipeline's steps, the last one replaced
    replaced = Pipeline([*model.steps[:-1], ("compressed", model[-1].compress())])
    np.testing.assert_array_equal(
        replaced.predict_proba(texts), small.predict_proba(texts)
    )


def test_frozen_estimator_accepts_a_pipeline_ending_in_a_compressed_model(
    text_pipeline,
):
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import make_pipeline

    model, texts, y = text_pipeline
    small = make_pipeline(model[0], model[-1].compress())
    frozen = FrozenEstimator(small).fit(["unrelated words"], [0])
    np.testing.assert_array_equal(frozen.predict(texts), model.predict(texts))
    assert FrozenEstimator(small[-1]).fit(None, None).score(
        model[0].transform(texts), y
    ) == model.score(texts, y)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_fitting_a_compressed_model_raises_that_it_cannot_be_trained(text_data, kind):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler

    X, y = text_data
    if kind == "classifier":
        compressed = fit(X, y).compress()
    else:
        net = default_regressor_net().set_params(max_epochs=1)
        compressed = PrunedRegressor(net, retrain_epochs=1, random_state=0)
        compressed = compressed.fit(X, y.astype(float)).compress()
    name = type(compressed).__name__
    with pytest.raises(TypeError, match=f"{name} cannot be trained"):
        compressed.fit(X, y)
    with pytest.raises(TypeError, match=f"{name} cannot be trained"):
        make_pipeline(MaxAbsScaler(), compressed).fit(X, y)


# what a compressed model holds -----------------------------------------------------


def _resident_bytes(root) -> int:
    """Bytes of every distinct array buffer reachable from ``root`` (gc's view)."""
    import gc
    import types

    seen, buffers = set(), {}
    stack = [root]
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
            str, bytes, int, float)  # fmt: skip
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            buffers[storage.data_ptr()] = storage.nbytes()
            continue
        if isinstance(obj, np.ndarray):
            while isinstance(obj.base, np.ndarray):
                obj = obj.base
            buffers[obj.__array_interface__["data"][0]] = obj.nbytes
            continue
        stack.extend(gc.get_referents(obj))
    return sum(buffers.values())


@pytest.mark.parametrize("layouts", EVERY_LAYOUT, ids="-".join)
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_nbytes_counts_every_array_the_network_holds_after_predicting(
    text_data, layouts, dtype
):
    fitted = _pruned("classifier", "weight", 0.9)
    compressed = _compiled_copy(fitted.compress(dtype=dtype), layouts)
    network = compressed.network
    compressed.predict_proba(text_data[0][:30])
    compressed.predict_proba(text_data[0][:3].toarray())
    assert network.nbytes == _resident_bytes(network)
    # and a dense first layer stored as CSR would show: nothing is hidden
    if layouts[0] == "row-sparse":
        first = network.weights[0]
        assert isinstance(first, np.ndarray)
        assert network.nbytes >= first.nbytes
