"""class_weight and sample_weight: the training loss, the loader and the estimator."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import small_net
from numpy.testing import assert_array_equal
from sklearn.metrics import recall_score
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EpochScoring
from skorch.dataset import ValidSplit
from torch.utils.data import DataLoader, Subset

from skprune import MLPModule, PrunedClassifier
from skprune.data import BatchLoader, SparseDataset
from skprune.datasets import make_text_classification
from skprune.losses import WeightedLoss, unweighted_loss


def quick(estimator=None, **params):
    return PrunedClassifier(
        small_net() if estimator is None else estimator,
        prune_ratio=0.8,
        retrain_epochs=2,
        random_state=0,
        **params,
    )


def assert_same_model(a, b):
    X = make_text_classification(50, a.n_features_in_, random_state=9)[0]
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.masks_.keys() == b.masks_.keys()
    for name in a.masks_:
        assert_array_equal(a.masks_[name], b.masks_[name])


@pytest.fixture(scope="module")
def data():
    """A 200 x 2,000 text-like CSR matrix, 3 classes, string labels."""
    X, y = make_text_classification(200, 2000, n_classes=3, random_state=1)
    return X, np.array(["ham", "eggs", "spam"])[y]


# The training loss ------------------------------------------------------------------


def test_weighted_loss_is_the_batch_mean_of_weight_times_sample_loss():
    torch.manual_seed(0)
    logits, y = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    weights = torch.tensor([0.0, 1.0, 2.5, 1.0, 4.0])
    per_sample = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    loss = WeightedLoss(torch.nn.CrossEntropyLoss)
    assert loss(logits, (y, weights)).item() == pytest.approx(
        float((weights * per_sample).sum() / 5), rel=1e-6
    )
    # Plain targets (validation, scoring) and unit weights: the unweighted loss.
    unweighted = torch.nn.functional.cross_entropy(logits, y).item()
    assert loss(logits, y).item() == pytest.approx(unweighted, rel=1e-6)
    assert loss(logits, [y, torch.ones(5)]).item() == pytest.approx(
        unweighted, rel=1e-6
    )


def test_weighted_loss_forwards_class_parameters_and_keeps_a_sum_reduction():
    torch.manual_seed(0)
    logits, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    weights = torch.tensor([1.0, 0.0, 2.0, 1.0])
    loss = WeightedLoss(torch.nn.CrossEntropyLoss, label_smoothing=0.2, reduction="sum")
    per_sample = torch.nn.functional.cross_entropy(
        logits, y, label_smoothing=0.2, reduction="none"
    )
    assert loss.reduction == "sum"
    assert loss(logits, (y, weights)).item() == pytest.approx(
        float((weights * per_sample).sum()), rel=1e-6
    )


def test_weighted_loss_copies_an_instance_and_leaves_it_as_it_was():
    user_loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    loss = WeightedLoss(user_loss)
    assert user_loss.reduction == "mean"
    assert loss.loss_ is not user_loss and loss.loss_.reduction == "none"
    assert loss.loss_.label_smoothing == 0.1
    assert unweighted_loss(loss) is loss.loss_
    assert unweighted_loss(user_loss) is user_loss


def test_weighted_nll_loss_takes_the_log_of_probabilities():
    torch.manual_seed(0)
    proba = torch.softmax(torch.randn(4, 3), dim=1)
    y, weights = torch.tensor([0, 2, 1, 1]), torch.tensor([1.0, 3.0, 0.0, 1.0])
    per_sample = torch.nn.functional.nll_loss(
        torch.log(proba + torch.finfo(proba.dtype).eps), y, reduction="none"
    )
    loss = WeightedLoss(torch.nn.NLLLoss, nll_on_probabilities=True)
    assert loss(proba, (y, weights)).item() == pytest.approx(
        float((weights * per_sample).mean()), rel=1e-6
    )
    # Without the flag NLLLoss is given y_pred as it is (log-probabilities).
    plain = WeightedLoss(torch.nn.NLLLoss)
    assert plain(proba.log(), y).item() == pytest.approx(
        torch.nn.functional.nll_loss(proba.log(), y).item(), rel=1e-6
    )


def test_weighted_loss_averages_several_values_of_a_sample_first():
    torch.manual_seed(0)
    y_pred, y_true = torch.randn(3, 4), torch.randn(3, 4)
    weights = torch.tensor([2.0, 0.0, 1.0])
    per_sample = ((y_pred - y_true) ** 2).mean(dim=1)
    assert WeightedLoss(torch.nn.MSELoss)(y_pred, (y_true, weights)).item() == (
        pytest.approx(float((weights * per_sample).mean()), rel=1e-6)
    )


class ScalarOnlyLoss(torch.nn.Module):
    def forward(self, y_pred, y_true):
        return torch.nn.functional.cross_entropy(y_pred, y_true)


class IgnoresReduction(torch.nn.Module):
    reduction = "mean"

    def forward(self, y_pred, y_true):
        return torch.nn.functional.cross_entropy(y_pred, y_true)


@pytest.mark.parametrize(
    "loss, error, match",
    [
        (ScalarOnlyLoss, ValueError, "ScalarOnlyLoss does not take reduction='none'"),
        (ScalarOnlyLoss(), ValueError, "does not take reduction='none'"),
        (torch.nn.CrossEntropyLoss(reduction="none"), ValueError, "'mean' or 'sum'"),
        ("cross_entropy", TypeError, "torch.nn.Module class or instance"),
    ],
)
def test_weighted_loss_rejects_losses_without_per_sample_values(loss, error, match):
    with pytest.raises(error, match=match):
        WeightedLoss(loss)


def test_weighted_loss_rejects_a_loss_that_ignores_reduction_at_the_first_batch():
    loss = WeightedLoss(IgnoresReduction())
    with pytest.raises(ValueError, match=r"shape \(\) .* one loss per sample"):
        loss(torch.randn(4, 3), (torch.tensor([0, 1, 2, 0]), torch.ones(4)))


# The training loader ------------------------------------------------------------------


def loader_data(n=8):
    X = sp.csr_matrix(np.arange(1, n + 1, dtype=np.float32)[:, None])
    return SparseDataset(X, np.arange(n))


def test_batch_loader_pairs_targets_with_weights_and_leaves_out_zero_weights():
    weights = np.array([1, 0, 2, 3, 0, 1, 1, 0.5], dtype=np.float32)
    loader = BatchLoader(loader_data(), batch_size=3, sample_weight=weights)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    rows = np.concatenate([yb.numpy() for _, (yb, _) in batches])
    assert_array_equal(rows, [0, 2, 3, 5, 6, 7])
    for Xb, (yb, wb) in batches:
        assert_array_equal(Xb.to_dense().numpy()[:, 0], yb.numpy() + 1)
        assert_array_equal(wb.numpy(), weights[yb.numpy()])


def test_batch_loader_weights_follow_the_rows_of_a_subset():
    weights = np.arange(8, dtype=np.float32) / 10
    subset = Subset(loader_data(), [6, 0, 3, 5])
    loader = BatchLoader(subset, batch_size=2, shuffle=True, sample_weight=weights)
    seen = []
    for _, (yb, wb) in loader:
        assert_array_equal(wb.numpy(), weights[yb.numpy()])
        seen.extend(yb.tolist())
    assert sorted(seen) == [3, 5, 6]  # row 0 weighs 0


def test_batch_loader_checks_the_number_of_weights():
    with pytest.raises(ValueError, match="sample_weight has shape"):
        BatchLoader(loader_data(), sample_weight=np.ones(7, dtype=np.float32))


# The estimator ------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [4, 9])
def test_balanced_class_weight_raises_minority_recall_on_held_out_data(ratio):
    X, y = make_text_classification(
        1000,
        2000,
        n_classes=2,
        weights=[ratio / (ratio + 1), 1 / (ratio + 1)],
        random_state=0,
    )
    train, test = slice(0, 600), slice(600, None)
    fits = {
        cw: PrunedClassifier(
            small_net(), prune_ratio=0.9, class_weight=cw, random_state=0
        ).fit(X[train], y[train])
        for cw in (None, "balanced")
    }
    recall = {
        cw: recall_score(y[test], clf.predict(X[test]), pos_label=1)
        for cw, clf in fits.items()
    }
    assert fits[None].sparsity_ == fits["balanced"].sparsity_
    assert recall["balanced"] > recall[None] + (0.05 if ratio == 4 else 0.15)


@pytest.mark.parametrize("importance", ["magnitude", "taylor"])
def test_zero_sample_weight_is_the_same_fit_as_removing_the_samples(data, importance):
    X, y = data
    weights = np.ones(len(y))
    weights[::7] = 0
    weights[1::5] = 2.5
    kept = weights > 0
    weighted = quick(importance=importance).fit(X, y, sample_weight=weights)
    removed = quick(importance=importance).fit(
        X[kept], y[kept], sample_weight=weights[kept]
    )
    assert_same_model(weighted, removed)


def test_a_zero_weight_sample_has_no_influence_through_its_label_or_features(data):
    X, y = data
    weights = np.ones(len(y))
    weights[:40] = 0
    other_y = y.copy()
    other_y[:40] = np.roll(y[:40], 1)
    other_X = X.tolil()
    other_X[:40] = make_text_classification(40, X.shape[1], random_state=5)[0]
    reference = quick(importance="taylor").fit(X, y, sample_weight=weights)
    changed = quick(importance="taylor").fit(
        other_X.tocsr(), other_y, sample_weight=weights
    )
    assert_same_model(reference, changed)
    # A non-zero weight does count.
    weights[:40] = 0.5
    counted = quick(importance="taylor").fit(
        other_X.tocsr(), other_y, sample_weight=weights
    )
    assert not np.array_equal(counted.predict_proba(X), reference.predict_proba(X))


def test_unit_weights_are_bit_identical_to_no_weights_and_leave_the_net_as_is(data):
    X, y = data
    plain = quick().fit(X, y)
    for fit_params in ({"sample_weight": np.ones(len(y))}, {"sample_weight": 1}):
        weighted = quick().fit(X, y, **fit_params)
        assert_same_model(plain, weighted)
        assert weighted.estimator_.criterion is torch.nn.CrossEntropyLoss
        assert weighted.estimator_.get_params().keys() == (
            plain.estimator_.get_params().keys()
        )
    unit = quick(class_weight={"ham": 1, "spam": 1.0}).fit(X, y)
    assert_same_model(plain, unit)


def test_dict_class_weight_equals_the_same_weights_given_per_sample(data):
    X, y = data
    class_weight = {"spam": 3.0, "eggs": 0.5}  # "ham" weighs 1
    by_class = quick(class_weight=class_weight).fit(X, y)
    per_sample = np.array([class_weight.get(label, 1.0) for label in y])
    by_sample = quick().fit(X, y, sample_weight=per_sample)
    assert_same_model(by_class, by_sample)
    assert not np.array_equal(
        by_class.predict_proba(X), quick().fit(X, y).predict_proba(X)
    )


def test_class_and_sample_weights_multiply_and_balanced_counts_sample_weights(data):
    X, y = data
    sample_weight = np.where(np.arange(len(y)) % 3 == 0, 2.0, 1.0)
    classes, y_index = np.unique(y, return_inverse=True)
    weighted_counts = np.bincount(y_index, weights=sample_weight)
    balanced = sample_weight.sum() / (len(classes) * weighted_counts)
    by_both = quick(class_weight="balanced").fit(X, y, sample_weight=sample_weight)
    by_hand = quick().fit(X, y, sample_weight=sample_weight * balanced[y_index])
    assert_same_model(by_both, by_hand)


class FailsIfTrained(Callback):
    def on_batch_begin(self, net, **kwargs):
        raise AssertionError("training started")


@pytest.mark.parametrize(
    "sample_weight, class_weight, match",
    [
        (-np.ones(200), None, "Negative values in data passed to `sample_weight`"),
        (np.ones(199), None, r"sample_weight.shape == \(199,\), expected \(200,\)"),
        (np.ones((200, 2)), None, "sample_weight: Sample weights must be 1D"),
        (np.full(200, np.nan), None, "Input sample_weight contains NaN"),
        (np.full(200, np.inf), None, "Input sample_weight contains infinity"),
        (np.zeros(200), None, "sample_weight: Sample weights must contain at least"),
        # float32, in which the net trains, overflows or rounds weights to 0.
        (np.full(200, 1e39), None, "sample_weight sums to 2e.41, beyond the range"),
        (np.full(200, 1e37), None, "sample_weight sums to 2e.39, beyond the range"),
        (np.full(200, 1e-46), None, "sample_weight has positive values below "),
        (np.r_[np.ones(199), 1e-46], None, "1 of them, the smallest 1e-46"),
        (np.full(200, 1e-40), {"ham": 1e-6}, "sample_weight times class_weight has"),
        (np.full(200, 1e-46), "balanced", "sample_weight times class_weight has"),
        (np.full(200, 1e20), {"spam": 1e20}, "sample_weight times class_weight sums"),
        (None, {"eggs": 1e39}, "class_weight sums to .*e.4., beyond the range"),
        (None, {"ham": 2, "toast": 1}, r"class_weight has classes \['toast'\]"),
        (None, {"ham": -1}, "non-negative numbers; got -1 for class 'ham'"),
        (None, {"ham": float("nan")}, "got nan for class 'ham'"),
        (None, {"ham": 0, "eggs": 0, "spam": 0}, "every sample a weight of zero"),
        (None, "equal", "The 'class_weight' parameter of PrunedClassifier"),
    ],
)
def test_bad_weights_raise_before_training(data, sample_weight, class_weight, match):
    X, y = data
    clf = quick(small_net(callbacks=[FailsIfTrained()]), class_weight=class_weight)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y, sample_weight=sample_weight)
    assert not hasattr(clf, "estimator_")


def test_a_criterion_without_per_sample_losses_is_refused_before_training(data):
    X, y = data
    net = small_net(criterion=ScalarOnlyLoss, callbacks=[FailsIfTrained()])
    with pytest.raises(ValueError, match="ScalarOnlyLoss does not take reduction"):
        quick(net, class_weight="balanced").fit(X, y)
    quick(net.set_params(callbacks=[])).fit(X, y)  # unweighted, it trains


class OwnLoader(DataLoader):
    pass


def test_weights_need_skprunes_training_loader(data):
    X, y = data
    net = small_net(iterator_train=OwnLoader, callbacks=[FailsIfTrained()])
    with pytest.raises(ValueError, match="iterator_train is <class .*OwnLoader"):
        quick(net).fit(X, y, sample_weight=np.arange(len(y)) % 3)


def test_the_callers_weights_and_estimator_are_not_modified(data):
    X, y = data
    net = small_net()
    for sample_weight in (
        np.linspace(0, 2, len(y)),
        np.linspace(0, 2, len(y)).astype(np.float32),
        np.linspace(0, 2, len(y)).tolist(),
    ):
        original = np.array(sample_weight, copy=True)
        quick(net, class_weight="balanced").fit(X, y, sample_weight=sample_weight)
        assert_array_equal(np.asarray(sample_weight), original)
    assert net.criterion is torch.nn.CrossEntropyLoss
    assert "iterator_train__sample_weight" not in net.get_params()


def test_the_fitted_net_keeps_no_weights_and_its_clone_refits(data):
    X, y = data
    clf = quick(class_weight="balanced").fit(X, y, sample_weight=np.arange(200) % 4)
    assert "iterator_train__sample_weight" not in clf.estimator_.get_params()
    assert isinstance(clf.estimator_.criterion_, WeightedLoss)
    # The wrapped criterion stays visible: logits, decision_function, compress.
    Xs = X[:20]
    assert_array_equal(clf.compress().predict(Xs), clf.predict(Xs))
    assert clf.decision_function(Xs).shape == (20, 3)
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(Xs), clf.predict_proba(Xs))
    # A refit without weights is the plain fit: nothing stays behind.
    clf.set_params(class_weight=None).fit(X, y)
    assert clf.estimator_.criterion is torch.nn.CrossEntropyLoss
    assert_same_model(clf, quick().fit(X, y))


def test_user_net_with_its_own_criterion_instance_optimizer_and_callbacks(data):
    X, y = data
    user_loss = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    net = NeuralNetClassifier(
        MLPModule,
        module__hidden_layer_sizes=(16,),
        criterion=user_loss,
        optimizer=torch.optim.SGD,
        optimizer__momentum=0.9,
        lr=0.05,
        max_epochs=3,
        batch_size=32,
        iterator_train__shuffle=True,
        train_split=ValidSplit(4, stratified=True),
        callbacks=[EpochScoring("accuracy", name="valid_acc")],
        verbose=0,
    )
    weights = np.ones(len(y))
    weights[::6] = 0
    weights[y == "spam"] = 3
    kept = weights > 0
    weighted = quick(net).fit(X, y, sample_weight=weights)
    assert user_loss.reduction == "mean"
    assert isinstance(weighted.estimator_.criterion_.loss_, torch.nn.CrossEntropyLoss)
    assert weighted.estimator_.criterion_.loss_.label_smoothing == 0.05
    assert "valid_acc" in weighted.estimator_.history[-1]
    # Without a validation split (which holds zero-weight samples out too), a
    # zero weight is removal for this net as well.
    net.set_params(train_split=None, callbacks=[])
    weighted = quick(net).fit(X, y, sample_weight=weights)
    removed = quick(net).fit(X[kept], y[kept], sample_weight=weights[kept])
    assert_same_model(weighted, removed)


class ProbabilityModule(torch.nn.Module):
    def __init__(self, n_features=1, n_classes=2):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, 16)
        self.output = torch.nn.Linear(16, n_classes)

    def forward(self, x):
        return torch.softmax(self.output(torch.relu(self.hidden(x))), dim=-1)


def test_nll_loss_on_a_probability_module_is_weighted_on_log_probabilities():
    X, y = make_text_classification(
        600, 1000, n_classes=2, weights=[0.9, 0.1], random_state=2
    )
    net = NeuralNetClassifier(
        ProbabilityModule,
        optimizer=torch.optim.Adam,
        lr=0.01,
        max_epochs=6,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
    )
    fits = {
        cw: quick(net, class_weight=cw).fit(X[:400], y[:400])
        for cw in (None, "balanced")
    }
    weighted_net = fits["balanced"].estimator_
    assert isinstance(weighted_net.criterion_.loss_, torch.nn.NLLLoss)
    assert weighted_net.criterion_.nll_on_probabilities
    assert np.isfinite(weighted_net.history[-1, "train_loss"])
    recall = {
        cw: recall_score(y[400:], clf.predict(X[400:]), pos_label=1)
        for cw, clf in fits.items()
    }
    assert recall["balanced"] > recall[None] + 0.15
