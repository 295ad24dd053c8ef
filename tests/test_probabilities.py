"""predict_proba returns probabilities, whatever the options and the net.

Weights wrap the net's criterion in :class:`skprune.losses.WeightedLoss`, and
skorch infers predict_proba's nonlinearity from the criterion's type: these
tests pin that the wrapper changes nothing of what skorch infers, for every
combination of weights, granularity and schedule, for a module returning logits
(``CrossEntropyLoss``) and one returning probabilities (skorch's default
``NLLLoss``), in two and three classes, fitted, pickled and loaded.
"""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_array_equal
from scipy.special import expit, softmax
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.dataset import ValidSplit

import skprune
from skprune import MLPModule, PrunedClassifier, PrunedClassifierCV
from skprune.losses import WeightedLoss
from skprune.optim import LazyAdam

LABELS = np.array(["ham", "eggs", "spam"])


def make_data(n_classes, n_samples=150, n_features=300, seed=0):
    """Sparse rows whose labels follow a random linear rule; string labels."""
    rng = np.random.default_rng(seed)
    X = sp.random_array(
        (n_samples, n_features), density=0.05, format="csr", rng=rng
    ).astype(np.float32)
    scores = X @ rng.normal(size=(n_features, n_classes))
    y = np.argmax(scores + 0.1 * rng.normal(size=scores.shape), axis=1)
    y[:n_classes] = np.arange(n_classes)  # every class present
    return sp.csr_matrix(X), LABELS[y]


DATA = {n_classes: make_data(n_classes) for n_classes in (2, 3)}


class SoftmaxModule(torch.nn.Module):
    """A user's module that ends in a softmax: probabilities for NLLLoss."""

    def __init__(self, n_features=1, n_classes=2):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, 16)
        self.output = torch.nn.Linear(16, n_classes)

    def forward(self, x):
        return torch.softmax(self.output(torch.relu(self.hidden(x))), dim=-1)


def logits_net(**params):
    """skprune's module, returning logits, under CrossEntropyLoss."""
    return NeuralNetClassifier(
        MLPModule,
        module__hidden_layer_sizes=(16,),
        module__sparse_grad=True,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=LazyAdam,
        **{**QUICK, **params},
    )


def probabilities_net(**params):
    """A softmax module under skorch's default criterion, NLLLoss."""
    return NeuralNetClassifier(
        SoftmaxModule, optimizer=torch.optim.Adam, **{**QUICK, **params}
    )


QUICK = {
    "lr": 0.02,
    "max_epochs": 2,
    "batch_size": 32,
    "iterator_train__shuffle": True,
    "train_split": None,
    "verbose": 0,
}
NETS = {"logits": logits_net, "probabilities": probabilities_net}
WEIGHTS = ["none", "balanced", "dict", "sample_weight"]
GRANULARITIES = ["weight", "neuron", "feature"]
SCHEDULES = ["oneshot", "iterative", "gradual"]


def weighting(kind, y):
    """``(class_weight, sample_weight)`` for a kind of weights."""
    if kind == "balanced":
        return "balanced", None
    if kind == "dict":
        return {np.unique(y)[0]: 3.0}, None
    if kind == "sample_weight":
        sample_weight = np.random.default_rng(1).uniform(0, 2, len(y))
        sample_weight[::7] = 0
        return None, sample_weight
    return None, None


# Every pair of (weights, granularity, schedule) is covered: the schedule cycles
# with the weights and the granularity (a Latin square), for both nets and both
# numbers of classes.
COMBINATIONS = [
    (net, n_classes, w, g, SCHEDULES[(i + j) % 3])
    for net in NETS
    for n_classes in DATA
    for i, w in enumerate(WEIGHTS)
    for j, g in enumerate(GRANULARITIES)
]


def fit(net, n_classes, weights, granularity, schedule):
    X, y = DATA[n_classes]
    class_weight, sample_weight = weighting(weights, y)
    clf = PrunedClassifier(
        NETS[net](),
        prune_ratio=0.5,
        granularity=granularity,
        schedule=schedule,
        n_rounds=1 if schedule == "oneshot" else 2,
        retrain_epochs=1,
        class_weight=class_weight,
        random_state=0,
    )
    return clf.fit(X, y, sample_weight=sample_weight)


def assert_probabilities(proba, n_samples, n_classes):
    assert proba.dtype == np.float64
    assert proba.shape == (n_samples, n_classes)
    assert proba.min() >= 0.0
    assert proba.max() <= 1.0
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "net, n_classes, weights, granularity, schedule",
    COMBINATIONS,
    ids=["-".join(map(str, combination)) for combination in COMBINATIONS],
)
def test_predict_proba_is_a_distribution_and_predict_is_its_argmax(
    net, n_classes, weights, granularity, schedule
):
    X, _ = DATA[n_classes]
    clf = fit(net, n_classes, weights, granularity, schedule)
    proba = clf.predict_proba(X)
    assert_probabilities(proba, X.shape[0], n_classes)
    predicted = clf.predict(X)
    assert_array_equal(predicted, clf.classes_[np.argmax(proba, axis=1)])
    # skorch's own predict_proba on the fitted net: probabilities too (float32).
    np.testing.assert_allclose(
        clf.estimator_.predict_proba(X).sum(axis=1), 1.0, rtol=0, atol=1e-5
    )
    if net == "probabilities":
        assert not hasattr(clf, "decision_function")  # no logits to show
        return
    scores = clf.decision_function(X)
    if n_classes == 2:
        assert scores.shape == (X.shape[0],)
        np.testing.assert_allclose(expit(scores), proba[:, 1], rtol=0, atol=1e-12)
        assert_array_equal(predicted, clf.classes_[(scores > 0).astype(int)])
    else:
        np.testing.assert_allclose(softmax(scores, axis=1), proba, rtol=0, atol=1e-12)
    compressed = clf.compress()
    np.testing.assert_allclose(compressed.predict_proba(X), proba, rtol=0, atol=1e-5)
    # The compressed model computes in float32: labels agree wherever the top
    # two classes are not tied to float32 precision.
    top_two = np.sort(proba, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-5
    assert clear.mean() > 0.9
    assert_array_equal(compressed.predict(X)[clear], predicted[clear])


@pytest.mark.parametrize(
    "loss, nonlinearity",
    [(torch.nn.CrossEntropyLoss, "softmax"), (torch.nn.NLLLoss, "identity")],
)
def test_weighting_a_criterion_leaves_skorchs_predict_nonlinearity_as_it_was(
    loss, nonlinearity
):
    module = MLPModule if loss is torch.nn.CrossEntropyLoss else SoftmaxModule
    plain = NeuralNetClassifier(
        module, module__n_features=4, module__n_classes=3, criterion=loss
    ).initialize()
    weighted = NeuralNetClassifier(
        module,
        module__n_features=4,
        module__n_classes=3,
        criterion=WeightedLoss,
        criterion__loss=loss,
    ).initialize()
    x = torch.randn(5, 4)
    outputs = plain.module_.eval()(x)
    expected = torch.softmax(outputs, dim=-1) if nonlinearity == "softmax" else outputs
    for net in (plain, weighted):
        torch.testing.assert_close(net._get_predict_nonlinearity()(outputs), expected)


def test_loaded_and_unpickled_weighted_classifiers_predict_probabilities(tmp_path):
    X, y = DATA[3]
    clf = fit("logits", 3, "balanced", "weight", "oneshot")
    expected = clf.predict_proba(X)
    skprune.save(clf, tmp_path / "clf.skprune")
    for restored in (
        skprune.load(tmp_path / "clf.skprune"),
        pickle.loads(pickle.dumps(clf)),
    ):
        proba = restored.predict_proba(X)
        assert_probabilities(proba, X.shape[0], 3)
        np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            restored.estimator_.predict_proba(X).sum(axis=1), 1.0, rtol=0, atol=1e-5
        )


def test_probability_scoring_ranks_prune_ratios_of_a_class_weighted_search():
    X, y = DATA[3]
    search = PrunedClassifierCV(
        logits_net(),
        prune_ratios=(0.5, 0.8),
        cv=2,
        scoring="neg_log_loss",
        retrain_epochs=1,
        class_weight="balanced",
        random_state=0,
    ).fit(X, y)
    scores = np.asarray(search.cv_results_["mean_test_score"], dtype=float)
    assert np.all(np.isfinite(scores))
    assert np.all(scores < 0)  # a log loss of probabilities, never of logits
    assert_probabilities(search.predict_proba(X), X.shape[0], 3)


def test_a_validation_split_with_float32_class_weights_trains_and_scores():
    """During training skorch evaluates the module in eval mode (validation,
    scoring): that stays float32, whose class weights the criterion holds, and
    the scoring callback sees probabilities."""
    X, y = DATA[3]
    net = logits_net(
        criterion__weight=torch.tensor([1.0, 2.0, 0.5]),
        train_split=ValidSplit(3, stratified=True),
        callbacks=[EpochScoring("neg_log_loss", lower_is_better=False)],
    )
    for class_weight in (None, "balanced"):
        clf = PrunedClassifier(
            net, retrain_epochs=1, class_weight=class_weight, random_state=0
        ).fit(X, y)
        for row in clf.estimator_.history:
            assert np.isfinite(row["valid_loss"])
            assert -np.inf < row["neg_log_loss"] < 0
        assert_probabilities(clf.predict_proba(X), X.shape[0], 3)
