"""ONNX export (skprune.onnx): onnxruntime predicts what the estimators predict."""

import functools
import pickle

import numpy as np
import onnxruntime as ort
import pytest
import scipy.sparse as sp
import skl2onnx
import torch
from conftest import small_net
from onnx import numpy_helper
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier

from skprune import (
    CompressedClassifier,
    PrunedClassifier,
    PrunedRegressor,
    default_regressor_net,
)
from skprune.compress import CompactMLP
from skprune.compress._estimators import decision_from_logits
from skprune.datasets import make_text_classification
from skprune.granularity import GRANULARITIES
from skprune.onnx import to_onnx

pytestmark = pytest.mark.filterwarnings(
    "ignore:Sparse CSR tensor support is in beta:UserWarning"
)

# Float32 graph against the estimators' float64 (or compiled float32) sums.
TOLERANCE = 1e-5


@functools.cache
def classification_data(n_classes: int):
    X, y = make_text_classification(
        240,
        300,
        n_classes=n_classes,
        n_topic_words=40,
        mean_length=20.0,
        random_state=0,
    )
    return sp.csr_matrix(X, dtype=np.float32), y


@functools.cache
def regression_data(n_outputs: int):
    rng = np.random.RandomState(0)
    X = rng.rand(200, 20).astype(np.float32)
    Y = np.tanh(X @ rng.randn(20, n_outputs)).astype(np.float32)
    return X, (Y[:, 0] if n_outputs == 1 else Y)


@functools.cache
def fitted_classifier(n_classes: int, granularity: str) -> PrunedClassifier:
    X, y = classification_data(n_classes)
    net = small_net(module__hidden_layer_sizes=(16,), verbose=0)
    return PrunedClassifier(
        net, prune_ratio=0.9, granularity=granularity, retrain_epochs=2, random_state=0
    ).fit(X, y)


@functools.cache
def fitted_regressor(n_outputs: int, granularity: str) -> PrunedRegressor:
    X, y = regression_data(n_outputs)
    net = default_regressor_net().set_params(
        max_epochs=3, module__hidden_layer_sizes=(16, 8), verbose=0
    )
    return PrunedRegressor(
        net, prune_ratio=0.9, granularity=granularity, retrain_epochs=2, random_state=0
    ).fit(X, y)


def run(graph, X, name="X"):
    session = ort.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {name: X})


def as_input(X, fmt):
    """What the Python model gets; onnxruntime always takes the dense float32 rows."""
    dense = X.toarray() if sp.issparse(X) else np.asarray(X)
    return (sp.csr_matrix(dense) if fmt == "csr" else dense), dense.astype(np.float32)


def assert_labels_match(onnx_labels, onnx_proba, model, X, proba):
    classes = model.classes_
    # The graph's label is its own argmax, exactly.
    np.testing.assert_array_equal(onnx_labels, classes[np.argmax(onnx_proba, axis=1)])
    # And the model's wherever rounding cannot swap the top two classes.
    top2 = np.sort(proba, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 10 * TOLERANCE
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(onnx_labels[clear], model.predict(X)[clear])


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("compressed", [False, True], ids=["pruned", "compressed"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_classifier_graph_gives_the_models_probabilities_and_labels(
    granularity, n_classes, compressed, fmt
):
    clf = fitted_classifier(n_classes, granularity)
    model = clf.compress() if compressed else clf
    X, dense = as_input(classification_data(n_classes)[0], fmt)
    labels, proba = run(to_onnx(model, X, options={"zipmap": False}), dense)
    expected = model.predict_proba(X)
    assert proba.shape == (X.shape[0], n_classes)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=TOLERANCE)
    assert_labels_match(labels, proba, model, X, expected)


@pytest.mark.parametrize("compressed", [False, True], ids=["pruned", "compressed"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_raw_scores_give_the_decision_function(granularity, n_classes, compressed):
    clf = fitted_classifier(n_classes, granularity)
    model = clf.compress() if compressed else clf
    X = classification_data(n_classes)[0]
    graph = to_onnx(model, X, options={"zipmap": False, "raw_scores": True})
    _, logits = run(graph, X.toarray())
    expected = model.decision_function(X)
    np.testing.assert_allclose(
        decision_from_logits(logits), expected, rtol=TOLERANCE, atol=TOLERANCE
    )


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("compressed", [False, True], ids=["pruned", "compressed"])
@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_regressor_graph_gives_the_models_predictions(
    granularity, n_outputs, compressed, fmt
):
    reg = fitted_regressor(n_outputs, granularity)
    model = reg.compress() if compressed else reg
    X, dense = as_input(regression_data(n_outputs)[0], fmt)
    (outputs,) = run(to_onnx(model, X), dense)
    assert outputs.shape == (X.shape[0], n_outputs)
    expected = model.predict(X).reshape(X.shape[0], n_outputs)
    np.testing.assert_allclose(outputs, expected, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_every_activation_exports(activation):
    X, y = regression_data(2)
    net = default_regressor_net().set_params(
        max_epochs=2,
        module__hidden_layer_sizes=(16, 8),
        module__activation=activation,
        verbose=0,
    )
    reg = PrunedRegressor(net, prune_ratio=0.5, random_state=0).fit(X, y)
    (outputs,) = run(to_onnx(reg, X), X)
    np.testing.assert_allclose(outputs, reg.predict(X), rtol=TOLERANCE, atol=TOLERANCE)
    graph_ops = {n.op_type for n in to_onnx(reg, X).graph.node}
    expected = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid"}[activation]
    assert expected in graph_ops


def initializers(graph) -> dict:
    return {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}


def layer_weights(graph) -> list:
    """The MatMul weights, input layer first."""
    values = initializers(graph)
    return [values[n.input[1]] for n in graph.graph.node if n.op_type == "MatMul"]


def test_feature_pruning_graph_reads_only_the_kept_columns():
    clf = fitted_classifier(3, "feature")
    network = clf.compress().network
    graph = to_onnx(clf)  # the input's width from n_features_in_
    values = initializers(graph)
    # The column gather is the one whose indices, not data, are stored.
    (gather,) = [
        n for n in graph.graph.node if n.op_type == "Gather" and n.input[1] in values
    ]
    columns = values[gather.input[1]]
    np.testing.assert_array_equal(columns, network.input_index)
    assert len(columns) < clf.n_features_in_ // 2
    assert layer_weights(graph)[0].shape[0] == len(columns)


def test_neuron_pruning_graph_has_only_the_surviving_units():
    clf = fitted_classifier(3, "neuron")
    network = clf.compress().network
    shapes = [w.shape for w in layer_weights(to_onnx(clf))]
    assert shapes == [w.shape for w in network.weights]
    assert shapes[0][1] < 16  # of 16 hidden units, 90% pruned


def test_weight_pruning_graph_stores_its_layers_dense():
    clf = fitted_classifier(3, "weight")
    network = clf.compress().network
    weights = layer_weights(to_onnx(clf))
    for stored, kept in zip(weights, network.weights, strict=True):
        dense = kept.toarray() if sp.issparse(kept) else kept
        np.testing.assert_array_equal(stored, dense)
    # The zeros are stored and multiplied: no sparse product in onnxruntime.
    assert (weights[0] == 0).mean() > 0.5


# skl2onnx's vectorizer converts these options exactly; not sublinear_tf, nor
# n-grams across one-character words (see skprune.onnx's limits).
@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2)])
@pytest.mark.parametrize("final", ["pruned", "compressed"])
def test_tfidf_pipeline_on_raw_text_converts_with_skl2onnx(final, ngram_range):
    texts = [
        "The cat sat on the mat.",
        "Dogs chase cats (and birds)!",
        "Stocks fell sharply today; bonds rose.",
        "The market rallied: shares up 3%.",
        "My cat, my dog, and my bird.",
        "Bond yields rose again?",
        "My dog barks at the mail-man.",
        "Shares of the company rose, then fell.",
    ] * 6
    y = np.array(["pets", "pets", "money", "money"] * 12)
    net = small_net(module__hidden_layer_sizes=(8,), verbose=0)
    fitted = make_pipeline(
        TfidfVectorizer(ngram_range=ngram_range),
        PrunedClassifier(net, prune_ratio=0.5, random_state=0),
    ).fit(texts, y)
    model = fitted
    if final == "compressed":
        model = make_pipeline(fitted[0], fitted[-1].compress())
    # skl2onnx's own entry point: the registered converter does the last step.
    # tokenexp="" tokenizes with scikit-learn's pattern; the C locale is present
    # on every machine, the default en_US one is not.
    graph = skl2onnx.to_onnx(
        model,
        initial_types=[("text", StringTensorType([None, 1]))],
        options={
            id(model[0]): {"tokenexp": "", "locale": "C.UTF-8"},
            id(model[-1]): {"zipmap": False},
        },
    )
    queries = [*texts[:8], "the dog and the market", "no known word here"]
    labels, proba = run(graph, np.array(queries).reshape(-1, 1), name="text")
    expected = model.predict_proba(queries)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=TOLERANCE)
    assert_labels_match(labels, proba, model, queries, expected)
    assert labels.dtype == object  # string labels stay strings


def test_class_weights_change_training_not_the_probability_graph():
    X, y = classification_data(3)
    net = small_net(module__hidden_layer_sizes=(16,), verbose=0)
    clf = PrunedClassifier(
        net, prune_ratio=0.9, class_weight="balanced", random_state=0
    ).fit(X, y)
    _, proba = run(to_onnx(clf, X, options={"zipmap": False}), X.toarray())
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=0, atol=TOLERANCE)


def test_zipmap_gives_one_dictionary_per_row_keyed_by_class():
    clf = fitted_classifier(3, "neuron")
    X = classification_data(3)[0][:5]
    labels, rows = run(to_onnx(clf, X), X.toarray())
    assert [sorted(row) for row in rows] == [sorted(clf.classes_.tolist())] * 5
    proba = clf.predict_proba(X)
    for row, expected in zip(rows, proba, strict=True):
        np.testing.assert_allclose(
            [row[c] for c in clf.classes_], expected, rtol=0, atol=TOLERANCE
        )


def test_a_numeric_pipeline_ending_in_a_regressor_converts():
    X, y = regression_data(1)
    net = default_regressor_net().set_params(max_epochs=2, verbose=0)
    model = make_pipeline(
        StandardScaler(), PrunedRegressor(net, prune_ratio=0.5, random_state=0)
    ).fit(X, y)
    (outputs,) = run(to_onnx(model, X), X)
    np.testing.assert_allclose(
        outputs[:, 0], model.predict(X), rtol=TOLERANCE, atol=TOLERANCE
    )


def test_zipmap_columns_gives_one_output_per_class():
    clf = fitted_classifier(3, "weight")
    X = classification_data(3)[0]
    session = ort.InferenceSession(
        to_onnx(clf, X, options={"zipmap": "columns"}).SerializeToString()
    )
    label, *columns = session.run(None, {"X": X.toarray()})
    assert len(columns) == 3
    np.testing.assert_allclose(
        np.column_stack(columns), clf.predict_proba(X), rtol=0, atol=TOLERANCE
    )


def test_nocl_labels_are_class_positions():
    clf = fitted_classifier(3, "weight")
    X = classification_data(3)[0]
    labels, proba = run(
        to_onnx(clf, X, options={"zipmap": False, "nocl": True}), X.toarray()
    )
    np.testing.assert_array_equal(labels, np.argmax(proba, axis=1))


def test_double_input_computes_in_double():
    clf = fitted_classifier(2, "weight")
    X = classification_data(2)[0]
    n_features = X.shape[1]
    graph = to_onnx(
        clf,
        initial_types=[("X", DoubleTensorType([None, n_features]))],
        options={"zipmap": False},
    )
    dense = X.toarray().astype(np.float64)
    _, proba = run(graph, dense)
    assert proba.dtype == np.float64
    # The network's own float64 arithmetic (the estimator's first layer sums
    # in float32, so it is not the reference here).
    network = clf.compress().network
    h = dense[:, network.input_index]
    for i, (weight, bias) in enumerate(
        zip(network.weights, network.biases, strict=True)
    ):
        weight = weight.toarray() if sp.issparse(weight) else weight
        h = h @ weight.astype(np.float64) + bias.astype(np.float64)
        if i < len(network.weights) - 1:
            h = np.maximum(h, 0.0)
    expected = np.exp(h - h.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-12)


def test_compressed_classifier_with_fractional_float_classes_is_refused():
    network = CompactMLP(4, np.arange(4), [np.ones((4, 2))], [np.zeros(2)])
    model = CompressedClassifier(network, np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"int64 or strings.*float64"):
        to_onnx(model)
    whole = CompressedClassifier(network, np.array([1.0, 2.0]))
    labels, _ = run(to_onnx(whole, options={"zipmap": False}), np.eye(4, dtype="f4"))
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [1, 1, 1, 1])


def test_a_compressed_model_whose_network_is_not_float32_is_refused():
    class Int8Network:  # what compress(dtype="int8") may hold: not float weights
        n_features = 4
        weights = (np.ones((4, 2), dtype=np.int8),)
        biases = (np.zeros(2, dtype=np.float32),)

    model = CompressedClassifier(Int8Network(), np.array([0, 1]))
    with pytest.raises(TypeError, match=r"Only float32 CompactMLP.*int8.*quantize"):
        to_onnx(model)


def test_a_net_that_is_not_an_mlp_module_is_refused_by_name():
    class Plain(torch.nn.Module):
        def __init__(self, n_features, n_classes):
            super().__init__()
            self.hidden = torch.nn.Linear(n_features, 8)
            self.out = torch.nn.Linear(8, n_classes)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x)))

    X, y = classification_data(2)
    net = NeuralNetClassifier(
        Plain,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=1,
        train_split=None,
        verbose=0,
    )
    clf = PrunedClassifier(net, retrain_epochs=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match=r"PrunedClassifier cannot be exported.*Plain"):
        to_onnx(clf, X)


def test_a_classifier_not_trained_on_logits_is_refused():
    X, y = classification_data(2)
    net = small_net(max_epochs=1, criterion=torch.nn.MultiMarginLoss, verbose=0)
    clf = PrunedClassifier(net, retrain_epochs=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="CrossEntropyLoss"):
        to_onnx(clf, X)


def test_an_unfitted_model_is_refused_before_conversion():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        to_onnx(PrunedClassifier(), np.zeros((2, 3)))


def test_a_pipeline_without_a_sample_or_types_is_refused():
    clf = fitted_classifier(2, "weight")
    # A vectorizer has no n_features_in_ to read the input's type from.
    pipeline = make_pipeline(TfidfVectorizer(), clf)
    with pytest.raises(ValueError, match="Give X .* or initial_types"):
        to_onnx(pipeline)


def test_export_leaves_the_model_unchanged():
    clf = fitted_classifier(3, "feature")
    before = pickle.dumps(clf.estimator_.module_.state_dict())
    params = clf.get_params(deep=False)
    to_onnx(clf, classification_data(3)[0])
    assert pickle.dumps(clf.estimator_.module_.state_dict()) == before
    assert clf.get_params(deep=False) == params
