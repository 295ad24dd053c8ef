"""PrunedClassifier end to end: fit, predict, masks, sparse input, bad input."""

import copy
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import small_net
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import EpochScoring

import skprune
from skprune import MLPModule, PrunedClassifier
from skprune._budget import default_max_epochs
from skprune.datasets import make_text_classification


def fitted(X, y, **params):
    params = {
        "estimator": small_net(),
        "retrain_epochs": 2,
        "random_state": 0,
        **params,
    }
    return PrunedClassifier(**params).fit(X, y)


def test_default_classifier_prunes_to_the_ratio_and_learns(text_data):
    X, y = text_data
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    clf = PrunedClassifier(prune_ratio=0.9, random_state=0).fit(X_train, y_train)
    assert clf.sparsity_ == pytest.approx(0.9, abs=1e-6)
    # On held-out rows (3 balanced classes, chance 1/3; 0.88 where written).
    assert clf.score(X_test, y_test) > 0.8
    assert clf.n_nonzero_params_ == round(0.1 * clf.n_params_)


def test_default_net_is_the_public_default_classifier_net(text_data):
    X, y = text_data
    assert "default_classifier_net" in skprune.__all__
    implicit = PrunedClassifier(prune_ratio=0.9, random_state=0).fit(X, y)
    # Given explicitly, the net keeps its max_epochs: give it the default budget.
    epochs = default_max_epochs(X.shape[0], batch_size=64)
    net = skprune.default_classifier_net().set_params(max_epochs=epochs)
    explicit = PrunedClassifier(net, prune_ratio=0.9, random_state=0).fit(X, y)
    np.testing.assert_array_equal(explicit.predict_proba(X), implicit.predict_proba(X))


def test_fitted_attributes_describe_the_data_and_the_pruning(text_data):
    X, y = text_data
    clf = fitted(X, y, prune_ratio=0.8)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.n_features_in_ == X.shape[1]
    assert isinstance(clf.estimator_, NeuralNetClassifier)
    assert set(clf.masks_) == {"layers.0.weight"}
    mask = clf.masks_["layers.0.weight"]
    assert mask.dtype == bool and mask.shape == (X.shape[1], 32)
    assert clf.support_.shape == (X.shape[1],)
    assert clf.flops_["pruned"] < clf.flops_["dense"]
    assert [row["layer"] for row in clf.pruning_report_] == ["layers.0", "layers.1"]
    assert len(clf.pruning_history_) == 1
    assert clf.pruning_history_[0]["sparsity"] == pytest.approx(0.8)


def test_pruned_weights_are_exactly_zero_after_fit(text_data):
    X, y = text_data
    clf = fitted(X, y, prune_ratio=0.7)
    weight = clf.estimator_.module_.layers[0].weight.detach().numpy()
    mask = clf.masks_["layers.0.weight"]
    assert np.all(weight[~mask] == 0.0)
    assert np.all(weight[mask] != 0.0)


def test_pruned_weights_stay_zero_through_every_retraining_step(text_data):
    X, y = text_data
    seen = []

    class CheckZero(EpochScoring):
        def on_batch_end(self, net, training=False, **kwargs):
            pruning = dict(net.callbacks_)["pruning"]
            if training and pruning.masks_:
                mask = pruning.masks_["layers.0.weight"]
                weight = net.module_.layers[0].weight.detach()
                seen.append(int((weight[~mask] != 0).sum()))

    net = small_net(callbacks=[("check", CheckZero("accuracy"))])
    for optimizer in (torch.optim.SGD, None):
        params = (
            {}
            if optimizer is None
            else {
                "optimizer": optimizer,
                "optimizer__momentum": 0.9,
                "optimizer__weight_decay": 1e-3,
                "module__sparse_grad": False,
            }
        )
        seen.clear()
        fitted(X, y, estimator=clone(net).set_params(**params), prune_ratio=0.9)
        assert len(seen) > 5
        assert max(seen) == 0


def test_unpruned_control_trains_as_many_epochs_as_the_pruned_model(text_data):
    X, y = text_data
    pruned = fitted(X, y, prune_ratio=0.9)
    control = fitted(X, y, prune_ratio=0.0)
    assert len(pruned.estimator_.history) == len(control.estimator_.history) == 5
    assert control.sparsity_ == 0.0


def test_same_random_state_gives_identical_predictions(text_data):
    X, y = text_data
    a = fitted(X, y, random_state=3).predict_proba(X)
    b = fitted(X, y, random_state=3).predict_proba(X)
    c = fitted(X, y, random_state=4).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_leaves_the_global_torch_random_state_alone(text_data):
    X, y = text_data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fitted(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_decision_function_gives_logits_that_rank_like_probabilities(text_data):
    X, y = text_data
    clf = fitted(X, y)
    scores = clf.decision_function(X)
    assert scores.shape == (X.shape[0], 3)
    np.testing.assert_allclose(
        np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True),
        clf.predict_proba(X),
        atol=1e-5,
    )
    np.testing.assert_allclose(clf.compress().decision_function(X), scores, atol=1e-4)
    binary = fitted(X, y == 0)
    margin = binary.decision_function(X)
    assert margin.shape == (X.shape[0],)
    np.testing.assert_array_equal(margin > 0, binary.predict(X))
    nll = PrunedClassifier(small_net(criterion=torch.nn.NLLLoss))
    assert not hasattr(nll, "decision_function")


def test_string_labels_are_encoded_and_predicted_back(text_data):
    X, y = text_data
    names = np.array(["eggs", "ham", "spam"])  # sorted: they encode as y itself
    clf = fitted(X, names[y])
    np.testing.assert_array_equal(clf.classes_, names)
    # The same training as on the integer labels, predicted back as strings.
    integer = fitted(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), integer.predict_proba(X))
    np.testing.assert_array_equal(clf.predict(X), names[integer.predict(X)])


@pytest.mark.parametrize(
    "convert",
    [
        sp.csr_matrix,
        sp.csc_matrix,
        sp.coo_matrix,
        sp.csr_array,
        sp.csc_array,
        sp.coo_array,
        lambda X: X.astype(np.float64),
        lambda X: X.toarray(),
    ],
    ids=[
        "csr",
        "csc",
        "coo",
        "csr_array",
        "csc_array",
        "coo_array",
        "float64",
        "dense",
    ],
)
def test_every_sparse_format_gives_the_same_model(text_data, convert):
    X, y = text_data
    reference = fitted(X, y).predict_proba(X)
    clf = fitted(convert(X), y)
    np.testing.assert_allclose(clf.predict_proba(convert(X)), reference, atol=1e-5)


def test_integer_and_boolean_sparse_input_train_like_their_float_form():
    X, y = make_text_classification(200, 2000, tfidf=False, random_state=1)
    counts = X.astype(np.int32)
    reference = fitted(X, y).predict_proba(X)
    np.testing.assert_allclose(
        fitted(counts, y).predict_proba(counts), reference, atol=1e-5
    )
    present = X.astype(bool)
    np.testing.assert_allclose(
        fitted(present, y).predict_proba(present),
        fitted(present.astype(np.float32), y).predict_proba(present),
        atol=1e-5,
    )


def test_messy_sparse_input_trains_like_its_canonical_form(text_data):
    X, y = text_data
    X = X.tolil()
    X[:5] = 0  # five empty rows
    X = X.tocsr()
    X.eliminate_zeros()
    coo = X.tocoo()
    # A raw CSR matrix: every entry split in two halves (duplicates), an explicit
    # zero in every row, and the entries of each row in shuffled order.
    rng = np.random.default_rng(0)
    rows = np.concatenate([coo.row, coo.row, np.arange(X.shape[0])])
    cols = np.concatenate([coo.col, coo.col, np.full(X.shape[0], 7)])
    vals = np.concatenate([coo.data / 2, coo.data / 2, np.zeros(X.shape[0])])
    order = np.lexsort((rng.random(rows.size), rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=X.shape[0]))])
    messy = sp.csr_matrix(
        (vals[order].astype(np.float32), cols[order], indptr), shape=X.shape
    )
    assert not messy.has_canonical_format
    data_before = messy.data.copy()
    np.testing.assert_allclose(
        fitted(messy, y).predict_proba(messy), fitted(X, y).predict_proba(X), atol=1e-5
    )
    np.testing.assert_array_equal(messy.data, data_before)  # the caller's X as is


def test_fit_does_not_modify_the_callers_data_or_estimator(text_data):
    X, y = text_data
    X = X.astype(np.float64)
    X_before, y_before = X.copy(), y.copy()
    net = small_net()
    params_before = {k: v for k, v in net.get_params(deep=False).items()}
    fitted(X, y, estimator=net)
    assert (X_before != X).nnz == 0 and X.dtype == np.float64
    np.testing.assert_array_equal(y, y_before)
    assert not hasattr(net, "module_")
    assert net.get_params(deep=False).keys() == params_before.keys()
    assert net.callbacks == params_before["callbacks"]


def test_a_matrix_too_large_to_densify_trains_and_predicts():
    rng = np.random.default_rng(0)
    n_rows, n_cols, per_row = 1_000, 5_000_000, 50  # dense: 20 GB in float32
    cols = rng.integers(0, n_cols, size=n_rows * per_row)
    indptr = np.arange(0, n_rows * per_row + 1, per_row)
    X = sp.csr_matrix(
        (rng.random(n_rows * per_row, dtype=np.float32), cols, indptr),
        shape=(n_rows, n_cols),
    )
    y = rng.integers(0, 2, size=n_rows)
    net = small_net(max_epochs=1, module__hidden_layer_sizes=(4,))
    clf = fitted(X, y, estimator=net, retrain_epochs=1, prune_ratio=0.5)
    assert clf.predict(X[:10]).shape == (10,)
    assert clf.sparsity_ == pytest.approx(0.5)


def test_int64_indexed_csr_trains_like_int32(text_data):
    """scipy switches to int64 indices past 2**31 stored values; that path works."""
    X, y = text_data
    wide = X.copy()
    wide.indices = wide.indices.astype(np.int64)
    wide.indptr = wide.indptr.astype(np.int64)
    np.testing.assert_allclose(
        fitted(wide, y).predict_proba(wide), fitted(X, y).predict_proba(X), atol=1e-5
    )


def test_dataframe_input_sets_feature_names(text_data):
    X, y = text_data
    frame = pd.DataFrame(X[:, :20].toarray(), columns=[f"w{i}" for i in range(20)])
    clf = fitted(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)


def test_user_module_gets_its_sizes_and_dense_batches(text_data):
    X, y = text_data

    class Dense(torch.nn.Module):
        def __init__(self, n_features, n_classes):
            super().__init__()
            self.hidden = torch.nn.Linear(n_features, 16)
            self.out = torch.nn.Linear(16, n_classes)

        def forward(self, x):
            assert x.layout == torch.strided
            return self.out(torch.relu(self.hidden(x)))

    net = NeuralNetClassifier(
        Dense,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=2,
        train_split=None,
        verbose=0,
    )
    clf = fitted(X, y, estimator=net, prune_ratio=0.5)
    assert clf.masks_["hidden.weight"].shape == (16, X.shape[1])
    assert clf.sparsity_ == pytest.approx(0.5)


def test_wrapped_net_with_validation_split_records_validation_scores(text_data):
    X, y = text_data
    from skorch.dataset import ValidSplit

    net = small_net(train_split=ValidSplit(4, stratified=True))
    clf = fitted(X, y, estimator=net)
    assert "valid_acc" in clf.estimator_.history[-1]
    assert clf.pruning_history_[0]["evaluated_on"] == "validation"


# round trips -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "round_trip",
    [copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))],
    ids=["deepcopy", "pickle"],
)
def test_fitted_model_survives_round_trips_with_identical_predictions(
    text_data, round_trip
):
    X, y = text_data
    clf = fitted(X, y, prune_ratio=0.9)
    copied = round_trip(clf)
    np.testing.assert_array_equal(copied.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(
        copied.masks_["layers.0.weight"], clf.masks_["layers.0.weight"]
    )


def test_fitted_model_survives_joblib(text_data, tmp_path):
    X, y = text_data
    clf = fitted(X, y, prune_ratio=0.9)
    joblib.dump(clf, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_reloaded_model_keeps_masks_when_training_continues(text_data):
    X, y = text_data
    clf = pickle.loads(pickle.dumps(fitted(X, y, prune_ratio=0.9)))
    net = clf.estimator_
    net.partial_fit(net.get_dataset(X.tocsr().astype(np.float32), y), epochs=1)
    weight = net.module_.layers[0].weight.detach().numpy()
    assert np.all(weight[~clf.masks_["layers.0.weight"]] == 0.0)


def test_clone_of_a_fitted_model_is_unfitted_with_the_same_params(text_data):
    X, y = text_data
    clf = fitted(X, y, prune_ratio=0.9)
    twin = clone(clf)
    assert not hasattr(twin, "estimator_")
    assert twin.get_params()["prune_ratio"] == 0.9


# bad input ---------------------------------------------------------------------------


def test_nan_and_inf_in_X_are_refused_before_training(text_data):
    X, y = text_data
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb.data[0] = bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            PrunedClassifier().fit(Xb, y)


def test_wrong_number_of_features_at_predict_is_refused(text_data):
    X, y = text_data
    clf = fitted(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :-1])


def test_single_class_is_refused(text_data):
    X, _ = text_data
    with pytest.raises(ValueError, match="at least 2 classes"):
        PrunedClassifier().fit(X, np.zeros(X.shape[0]))


def test_continuous_target_is_refused(text_data):
    X, _ = text_data
    with pytest.raises(ValueError, match="Unknown label type"):
        PrunedClassifier().fit(X, np.linspace(0, 1, X.shape[0]))


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_prune_ratio_outside_zero_one_is_refused(text_data, ratio):
    X, y = text_data
    with pytest.raises(ValueError, match="prune_ratio"):
        PrunedClassifier(prune_ratio=ratio).fit(X, y)


@pytest.mark.parametrize(
    "estimator",
    [NeuralNetRegressor(MLPModule), "net", EpochScoring("accuracy")],
    ids=["regressor", "string", "callback"],
)
def test_estimator_that_is_not_a_skorch_classifier_is_refused(text_data, estimator):
    X, y = text_data
    with pytest.raises((TypeError, ValueError), match="estimator"):
        PrunedClassifier(estimator).fit(X, y)


def test_module_without_prunable_layer_is_refused_before_training(text_data):
    X, y = text_data

    class Bag(torch.nn.Module):
        def __init__(self, n_features, n_classes):
            super().__init__()
            self.table = torch.nn.Parameter(torch.zeros(n_features, n_classes))

        def forward(self, x):
            return x @ self.table

    net = NeuralNetClassifier(
        Bag, criterion=torch.nn.CrossEntropyLoss, train_split=None, verbose=0
    )
    with pytest.raises(ValueError, match="no prunable layer"):
        PrunedClassifier(net).fit(X, y)


@pytest.mark.parametrize("make", [PrunedClassifier, skprune.PrunedRegressor])
def test_repr_and_get_params_hide_skorch_internals_and_clone_keeps_set_params(make):
    net = (
        skprune.default_classifier_net()
        if make is PrunedClassifier
        else skprune.default_regressor_net()
    ).set_params(max_epochs=3, module__dropout=0.2)
    model = make(net, prune_ratio=0.3)
    assert "_params_to_validate" not in repr(model)
    assert "module__dropout=0.2" in repr(model)
    assert not [name for name in model.get_params() if "_params_to_validate" in name]
    assert model.get_params()["estimator__module__dropout"] == 0.2
    cloned = clone(model).estimator
    assert (cloned.max_epochs, cloned.module__dropout) == (3, 0.2)
    assert cloned._params_to_validate == net._params_to_validate
    assert "_params_to_validate" in vars(net)  # the caller's net is untouched
    model.set_params(estimator__module__dropout=0.4)
    assert net.module__dropout == 0.4 and "module__dropout=0.4" in repr(model)


def test_routed_sample_weight_needs_a_score_request_as_well_as_a_fit_request(
    text_data,
):
    from sklearn import config_context
    from sklearn.exceptions import UnsetMetadataPassedError
    from sklearn.model_selection import GridSearchCV

    X, y = text_data
    weights = np.where(y == 0, 2.0, 1.0)
    grid = {"prune_ratio": [0.5]}
    with config_context(enable_metadata_routing=True):
        net = small_net(max_epochs=1, module__hidden_layer_sizes=(8,))
        fit_only = PrunedClassifier(net, retrain_epochs=1, random_state=0)
        fit_only.set_fit_request(sample_weight=True)
        search = GridSearchCV(fit_only, grid, cv=2, refit=False)
        with pytest.raises(UnsetMetadataPassedError, match="set_score_request"):
            search.fit(X, y, sample_weight=weights)
        both = clone(fit_only).set_score_request(sample_weight=True)
        search = GridSearchCV(both, grid, cv=2, refit=False)
        search.fit(X, y, sample_weight=weights)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
        unweighted = clone(fit_only).set_score_request(sample_weight=False)
        search = GridSearchCV(unweighted, grid, cv=2, refit=False)
        search.fit(X, y, sample_weight=weights)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
