"""The Pruning callback: granularities, scopes, schedules, rewinding, history."""

import inspect

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import small_net
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from skprune import MLPModule, PrunedClassifier
from skprune._params import check_rewind_epoch
from skprune.callbacks import Pruning, default_retrain_epochs
from skprune.schedules import PruningStep


def fit(X, y, net=None, **params):
    params = {"retrain_epochs": 1, "random_state": 0, **params}
    return PrunedClassifier(net or small_net(max_epochs=2), **params).fit(X, y)


def weights(clf, name):
    return dict(clf.estimator_.module_.named_parameters())[name].detach().numpy()


def two_hidden_layers():
    return small_net(max_epochs=2, module__hidden_layer_sizes=(16, 8))


@pytest.mark.parametrize("schedule", ["oneshot", "iterative", "gradual"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_every_schedule_and_scope_reaches_the_exact_ratio(text_data, schedule, scope):
    X, y = text_data
    clf = fit(
        X,
        y,
        two_hidden_layers(),
        prune_ratio=0.8,
        schedule=schedule,
        scope=scope,
        n_rounds=3,
    )
    pruned = {name: int((~mask).sum()) for name, mask in clf.masks_.items()}
    if scope == "global":
        assert sum(pruned.values()) == round(0.8 * clf.n_params_)
    else:
        for name, mask in clf.masks_.items():
            assert pruned[name] == round(0.8 * mask.size)
    assert clf.n_params_ - clf.n_nonzero_params_ == sum(pruned.values())
    assert clf.pruning_report_[-1]["sparsity"] == 0.0  # output layer left alone


def test_iterative_rounds_remove_the_same_fraction_of_what_is_left(text_data):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.875, schedule="iterative", n_rounds=3)
    achieved = [row["sparsity"] for row in clf.pruning_history_]
    np.testing.assert_allclose(achieved, [0.5, 0.75, 0.875], atol=1e-3)
    assert [row["epoch"] for row in clf.pruning_history_] == [2.0, 3.0, 4.0]
    assert len(clf.estimator_.history) == 5


def test_gradual_sparsity_rises_within_epochs_on_the_cubic_schedule(text_data):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.9, schedule="gradual", n_rounds=4, retrain_epochs=2)
    rows = clf.pruning_history_
    assert [row["epoch"] for row in rows] == [3.0, 4.0, 5.0, 6.0]
    expected = [0.9 * (1 - (1 - k / 4) ** 3) for k in range(1, 5)]
    np.testing.assert_allclose([r["sparsity"] for r in rows], expected, atol=1e-3)
    fractional = fit(
        X, y, prune_ratio=0.5, schedule="gradual", n_rounds=2, retrain_epochs=1
    )
    assert [row["epoch"] for row in fractional.pruning_history_] == [2.5, 3.0]
    assert fractional.sparsity_ == pytest.approx(0.5, abs=1e-3)


def plain_net(X, pruning, **params):
    """A plain skorch net over MLPModule that trains the callback's whole schedule."""
    params = {
        "module__n_features": X.shape[1],
        "module__n_classes": 3,
        "module__hidden_layer_sizes": (16,),
        "criterion": torch.nn.CrossEntropyLoss,
        "max_epochs": pruning.total_epochs,
        "callbacks": [("pruning", pruning)],
        "train_split": None,
        "verbose": 0,
        **params,
    }
    return NeuralNetClassifier(MLPModule, **params)


def test_pruned_weights_never_come_back_across_rounds(text_data):
    X, y = text_data
    masks = []

    class Watch(Pruning):
        def _prune(self, net):
            super()._prune(net)
            masks.append(self.masks_["layers.0.weight"].clone())

    pruning = Watch(
        0.9,
        schedule="iterative",
        n_rounds=3,
        train_epochs=2,
        retrain_epochs=1,
        importance="random",
    )
    torch.manual_seed(0)
    plain_net(X, pruning).fit(X.astype(np.float32), y)
    assert len(masks) == 3
    for before, after in zip(masks, masks[1:], strict=False):
        assert not (after & ~before).any()
        assert after.sum() < before.sum()


def test_neuron_pruning_removes_whole_hidden_units(text_data):
    X, y = text_data
    clf = fit(X, y, two_hidden_layers(), prune_ratio=0.5, granularity="neuron")
    masks = clf.masks_
    # Logical masks (original shapes): a unit goes with its row, bias and the
    # next layer's column. SparseLinear is (inputs, units), Linear (units, inputs).
    dead0 = ~masks["layers.0.weight"].any(axis=0)
    dead1 = ~masks["layers.1.weight"].any(axis=1)
    assert dead0.sum() + dead1.sum() == 12  # half of 16 + 8 units
    assert not masks["layers.0.bias"][dead0].any()
    assert not masks["layers.1.weight"][:, dead0].any()
    assert not masks["layers.2.weight"][:, dead1].any()
    assert masks["layers.0.weight"][:, ~dead0].all()
    # Physically: the module lost those units.
    module = clf.estimator_.module_
    assert module.layers[0].weight.shape == (X.shape[1], 16 - dead0.sum())
    assert module.layers[1].weight.shape == (8 - dead1.sum(), 16 - dead0.sum())
    assert module.layers[2].weight.shape == (3, 8 - dead1.sum())
    assert [row["outputs_kept"] for row in clf.pruning_report_[:2]] == [
        16 - dead0.sum(),
        8 - dead1.sum(),
    ]


def test_feature_pruning_selects_input_features_like_a_selector(text_data):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.9, granularity="feature")
    support = clf.get_support()
    assert support.dtype == bool and support.shape == (X.shape[1],)
    assert support.sum() == X.shape[1] - round(0.9 * X.shape[1])
    np.testing.assert_array_equal(
        clf.get_support(indices=True), np.flatnonzero(support)
    )
    mask = clf.masks_["layers.0.weight"]
    np.testing.assert_array_equal(mask.any(axis=1), support)
    assert mask[support].all()
    assert clf.estimator_.module_.layers[0].weight.shape[0] == support.sum()
    # Features that never occur carry no signal: they go first.
    absent = np.asarray(X.sum(axis=0)).ravel() == 0
    assert not support[absent].any()


def test_min_keep_floor_holds_in_every_layer(text_data):
    X, y = text_data
    clf = fit(
        X,
        y,
        two_hidden_layers(),
        prune_ratio=0.75,
        min_keep=0.2,
        scope="global",
        prune_output=True,
    )
    for row in clf.pruning_report_:
        assert row["kept"] >= 0.2 * row["n_weights"] - 1


def test_unreachable_ratio_is_refused_before_training_with_the_reachable_one(
    text_data,
):
    X, y = text_data
    with pytest.raises(ValueError, match=r"highest reachable ratio is 0\.5000"):
        fit(X, y, prune_ratio=0.9, min_keep=0.5, scope="layer")


def test_prune_output_and_prune_bias_and_layer_patterns_choose_the_prunable(
    text_data,
):
    X, y = text_data
    clf = fit(
        X, y, two_hidden_layers(), prune_ratio=0.5, prune_output=True, prune_bias=True
    )
    assert set(clf.masks_) == {
        f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")
    }
    only_second = fit(
        X, y, two_hidden_layers(), prune_ratio=0.5, layers=["layers.1.weight"]
    )
    assert set(only_second.masks_) == {"layers.1.weight"}
    assert only_second.pruning_report_[0]["sparsity"] == 0.0
    with pytest.raises(ValueError, match="Nothing to prune"):
        fit(X, y, prune_ratio=0.5, layers=["nothing*"])


@pytest.mark.parametrize("importance", ["magnitude", "taylor", "random"])
def test_each_importance_prunes_the_lowest_scores(text_data, importance):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.5, importance=importance)
    assert clf.sparsity_ == pytest.approx(0.5)
    first = weights(clf, "layers.0.weight")
    # Taylor scores of features absent from the data are zero: they go first.
    absent = np.asarray(X.sum(axis=0)).ravel() == 0
    if importance == "taylor":
        assert np.all(first[absent] == 0)


def test_random_importance_differs_from_magnitude_and_repeats_by_seed(text_data):
    X, y = text_data
    rand_a = fit(X, y, prune_ratio=0.5, importance="random").masks_
    rand_b = fit(X, y, prune_ratio=0.5, importance="random").masks_
    magnitude = fit(X, y, prune_ratio=0.5).masks_
    name = "layers.0.weight"
    np.testing.assert_array_equal(rand_a[name], rand_b[name])
    agreement = (rand_a[name] == magnitude[name]).mean()
    assert 0.4 < agreement < 0.6


def test_callable_importance_is_used_and_checked_before_training(text_data):
    X, y = text_data
    calls = []

    def by_position(name, weight, grad):
        calls.append(name)
        return torch.arange(weight.numel(), dtype=torch.float32).reshape(weight.shape)

    clf = fit(X, y, prune_ratio=0.25, importance=by_position)
    kept = clf.masks_["layers.0.weight"].ravel()
    assert not kept[: kept.size // 4].any() and kept[kept.size // 4 :].all()
    assert calls

    epochs = []

    class CountEpochs(Callback):
        def on_epoch_end(self, net, **kwargs):
            epochs.append(len(net.history))

    for bad in (
        lambda n, w, g: torch.ones(3),
        lambda n, w, g: torch.full(w.shape, float("nan")),
    ):
        net = small_net(max_epochs=2, callbacks=[CountEpochs()])
        with pytest.raises(ValueError, match="importance"):
            fit(X, y, net, importance=bad)
        assert epochs == []  # refused before the first epoch


def test_rewind_restores_surviving_weights_to_their_initial_values(text_data):
    X, y = text_data
    initial = {}

    class Remember(Pruning):
        def on_train_begin(self, net, **kwargs):
            super().on_train_begin(net, **kwargs)
            initial["w"] = net.module_.layers[0].weight.detach().clone()

    # No retraining after the rewind: the survivors must be the initial values.
    pruning = Remember(0.8, train_epochs=2, retrain_epochs=0, rewind=True)
    torch.manual_seed(0)
    net = plain_net(X, pruning).fit(X.astype(np.float32), y)
    weight = net.module_.layers[0].weight.detach()
    mask = pruning.masks_["layers.0.weight"]
    assert torch.equal(weight[mask], initial["w"][mask])
    assert torch.all(weight[~mask] == 0)
    assert not torch.equal(initial["w"], weight)


def test_rewind_to_an_early_epoch_restores_that_epochs_values(text_data):
    X, y = text_data
    after_first = {}

    class Remember(Pruning):
        def on_epoch_end(self, net, **kwargs):
            if self.epochs_done_ == 0:
                after_first["w"] = net.module_.layers[0].weight.detach().clone()
            super().on_epoch_end(net, **kwargs)

    pruning = Remember(
        0.5, train_epochs=2, retrain_epochs=0, rewind=True, rewind_epoch=1
    )
    torch.manual_seed(0)
    net = plain_net(X, pruning).fit(X.astype(np.float32), y)
    weight = net.module_.layers[0].weight.detach()
    mask = pruning.masks_["layers.0.weight"]
    assert torch.equal(weight[mask], after_first["w"][mask])


def test_retrain_lr_factor_lowers_the_learning_rate_after_pruning(text_data):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.5, retrain_lr_factor=0.1)
    assert clf.estimator_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.001)


def test_history_records_scores_before_after_and_after_retraining(text_data):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.95, schedule="iterative", n_rounds=2)
    rows = clf.pruning_history_
    assert len(rows) == 2
    for row in rows:
        for key in (
            "loss_before",
            "score_before",
            "loss_after",
            "score_after",
            "loss_retrained",
            "score_retrained",
        ):
            assert row[key] is not None
        assert row["evaluated_on"] == "training"
    # After the last round, the net is the fitted one: its score on the
    # training data, computed independently, is the recorded one.
    assert rows[-1]["score_retrained"] == clf.score(X, y)
    logits = clf.estimator_.forward(X)
    loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y))
    assert rows[-1]["loss_retrained"] == pytest.approx(float(loss), rel=1e-5)
    assert list(pd.DataFrame(clf.pruning_report_).columns)[:2] == ["layer", "shape"]
    assert len(pd.DataFrame(rows)) == 2


def test_pruning_callback_works_on_a_plain_skorch_net(text_data):
    X, y = text_data
    pruning = Pruning(0.9, train_epochs=2, retrain_epochs=1)
    assert pruning.total_epochs == 3
    net = plain_net(X, pruning).fit(X.astype(np.float32), y)
    assert len(net.history) == 3
    weight = net.module_.layers[0].weight.detach()
    assert float((weight == 0).float().mean()) == pytest.approx(0.9)
    mask = dict(net.callbacks_)["pruning"].masks_["layers.0.weight"]
    assert torch.equal(weight != 0, mask)


def held_out_evaluation(net, X, y):
    """Cross-entropy and accuracy of the net's module on (X, y), computed here."""
    logits = net.forward(X, training=False)
    loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y))
    return float(loss), float((logits.argmax(1).numpy() == y).mean())


def test_history_scores_are_those_of_the_net_on_held_out_data_at_each_step(
    text_data,
):
    X, y = text_data
    X_train, y_train, X_valid, y_valid = X[:200], y[:200], X[200:], y[200:]
    before, after, zeros = [], [], []

    class Watch(Pruning):
        def _prune(self, net):
            before.append(held_out_evaluation(net, X_valid, y_valid))
            super()._prune(net)
            after.append(held_out_evaluation(net, X_valid, y_valid))
            weight = net.module_.layers[0].weight
            zeros.append(float((weight == 0).float().mean()))

    pruning = Watch(0.9, schedule="iterative", n_rounds=2, train_epochs=2)
    pruning.set_params(retrain_epochs=1)
    torch.manual_seed(0)
    net = plain_net(
        X,
        pruning,
        train_split=predefined_split(Dataset(X_valid, y_valid)),
        optimizer=torch.optim.Adam,
    )
    net.fit(X_train, y_train)
    rows = pruning.history_
    final = held_out_evaluation(net, X_valid, y_valid)
    retrained = [*before[1:], final]
    assert len(rows) == len(before) == 2
    for row, b, a, r, z in zip(rows, before, after, retrained, zeros, strict=True):
        assert row["evaluated_on"] == "validation"
        assert (row["score_before"], row["score_after"]) == (b[1], a[1])
        assert row["score_retrained"] == r[1]
        got = [row["loss_before"], row["loss_after"], row["loss_retrained"]]
        assert got == pytest.approx([b[0], a[0], r[0]], rel=1e-5)
        assert row["sparsity"] == pytest.approx(z)
    # Held out, not the training data the net fits better.
    assert rows[-1]["score_retrained"] < net.score(X_train, y_train)


def test_get_params_lists_the_constructor_parameters_at_every_stage(text_data):
    X, y = text_data
    expected = set(inspect.signature(Pruning).parameters)
    pruning = Pruning(0.5, train_epochs=1, retrain_epochs=1, layers=["layers.0.*"])
    fresh = pruning.get_params()
    assert set(fresh) == expected
    pruning.initialize()
    assert pruning.get_params() == fresh
    plain_net(X, pruning).fit(X, y)
    assert pruning.get_params() == fresh
    twin = clone(pruning)
    assert twin.get_params() == fresh
    assert not hasattr(twin, "masks_") and not hasattr(twin, "_cursor")


def test_a_cloned_plain_net_refits_to_the_same_masks(text_data):
    X, y = text_data
    pruning = Pruning(0.8, schedule="iterative", n_rounds=2, importance="taylor")
    pruning.set_params(train_epochs=1, retrain_epochs=1)
    torch.manual_seed(0)
    net = plain_net(X, pruning).fit(X, y)
    twin = clone(net)
    twin_pruning = dict(twin.callbacks)["pruning"]
    assert twin_pruning is not pruning
    torch.manual_seed(0)
    twin.fit(X, y)
    assert len(twin_pruning.history_) == 2
    assert twin_pruning.masks_.keys() == pruning.masks_.keys()
    for name, mask in pruning.masks_.items():
        assert torch.equal(twin_pruning.masks_[name], mask)


def test_a_fitted_estimators_net_clones_and_the_clone_refits(text_data):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.5, schedule="iterative", n_rounds=2)
    twin = clone(clf.estimator_)
    pruning = dict(twin.callbacks)["pruning"]
    assert pruning is not dict(clf.estimator_.callbacks_)["pruning"]
    assert not hasattr(pruning, "masks_")
    twin.initialize()
    twin.partial_fit(X, y, epochs=pruning.total_epochs)
    assert len(twin.history) == pruning.total_epochs == 4
    assert [row["target_ratio"] for row in pruning.history_] == pytest.approx(
        [1 - 0.5**0.5, 0.5]
    )
    kept = sum(int(mask.sum()) for mask in pruning.masks_.values())
    assert clf.n_params_ - kept == round(0.5 * clf.n_params_)
    # The fitted estimator is untouched by its clone's training.
    np.testing.assert_array_equal(
        clf.masks_["layers.0.weight"],
        weights(clf, "layers.0.weight") != 0,
    )


class PoisonAtEpoch(Callback):
    """A user's callback that makes the module's outputs NaN from one epoch on."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch:  # skorch counts the new epoch already
            with torch.no_grad():
                net.module_.layers[-1].bias.fill_(float("nan"))


def test_a_non_finite_loss_in_dense_training_stops_fit_with_the_fix(text_data):
    X, y = text_data
    # MLPModule returns logits; skorch's default NLLLoss wants probabilities.
    pruning = Pruning(0.5, train_epochs=2, retrain_epochs=1)
    net = plain_net(X, pruning, criterion=torch.nn.NLLLoss)
    with pytest.raises(ValueError, match="not finite") as error:
        net.fit(X, y)
    assert "at epoch 1, during dense training" in str(error.value)
    assert "criterion=torch.nn.CrossEntropyLoss" in str(error.value)
    assert len(net.history) == 1 and not pruning.history_


def test_a_non_finite_loss_in_retraining_names_the_epoch_and_pruning_step(
    text_data,
):
    X, y = text_data
    pruning = Pruning(0.5, schedule="iterative", n_rounds=3)
    pruning.set_params(train_epochs=1, retrain_epochs=1)
    net = plain_net(
        X,
        pruning,
        callbacks=[("pruning", pruning), ("poison", PoisonAtEpoch(3))],
        optimizer=torch.optim.SGD,
    )
    with pytest.raises(ValueError, match="not finite") as error:
        net.fit(X, y)
    message = str(error.value)
    assert "at epoch 3, during retraining after pruning step 2 of 3" in message
    assert len(pruning.history_) == 2


def test_a_subclass_prunes_on_the_steps_it_makes(text_data):
    X, y = text_data

    class TwoSteps(Pruning):
        def _make_steps(self):
            return [PruningStep(1.0, 0.5), PruningStep(2.0, 0.75)]

    pruning = TwoSteps(train_epochs=1, retrain_epochs=2)
    plain_net(X, pruning).fit(X, y)
    rows = pruning.history_
    assert [(row["round"], row["epoch"]) for row in rows] == [(1, 1.0), (2, 2.0)]
    assert [row["sparsity"] for row in rows] == pytest.approx([0.5, 0.75])


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("prune_ratio", 1.0),
        ("granularity", "unit"),
        ("scope", "layers"),
        ("importance", "size"),
        ("min_keep", 1.5),
        ("retrain_lr_factor", 0.0),
        ("n_rounds", 0),
        ("layers", "layers.0.weight"),
    ],
)
def test_the_callback_and_the_estimator_refuse_a_bad_parameter_alike(
    text_data, name, bad
):
    X, y = text_data
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter") as own:
        Pruning(**{name: bad}).initialize()
    with pytest.raises(InvalidParameterError) as estimator:
        PrunedClassifier(**{name: bad}).fit(X, y)
    assert str(own.value) == str(estimator.value).replace("PrunedClassifier", "Pruning")


def test_the_callbacks_own_parameters_are_checked_once_at_initialize():
    for params in ({"train_epochs": 0}, {"random_state": -1}):
        with pytest.raises(InvalidParameterError, match=next(iter(params))):
            Pruning(**params).initialize()
    with pytest.raises(
        ValueError, match=r"rewind_epoch must be in \[0, train_epochs=3\]"
    ):
        Pruning(train_epochs=3, rewind=True, rewind_epoch=4).initialize()


def test_rewind_epoch_may_be_the_end_of_dense_training_but_not_past_it():
    check_rewind_epoch(0, 3)
    check_rewind_epoch(3, 3)
    with pytest.raises(ValueError, match=r"train_epochs=3\], got 4\."):
        check_rewind_epoch(4, 3)


def test_retrain_epochs_none_means_two_thirds_of_dense_training():
    assert [default_retrain_epochs(n) for n in (1, 2, 3, 6, 10)] == [1, 1, 2, 4, 6]
    pruning = Pruning(train_epochs=9, retrain_epochs=None, schedule="iterative")
    pruning.set_params(n_rounds=2)
    assert pruning.total_epochs == 9 + 2 * 6
    assert pruning.initialize().steps_[1].epoch == 15.0


def test_the_round_log_is_one_object_that_follows_each_runs_history():
    pruning = Pruning(schedule="iterative", n_rounds=3)
    log = pruning.round_log
    pruning.initialize()
    first = pruning.history_
    assert pruning.round_log is log and log.rows is first and log.n_rounds == 3
    pruning.initialize()  # a new run: a new list, the old one left as it was
    assert log.rows is pruning.history_ and log.rows is not first
    # A restored callback has its history set directly (skprune.persistence).
    restored = [{"round": 1, "loss_retrained": 0.5, "score_retrained": 0.9}]
    vars(pruning).update(history_=restored)
    assert pruning.round_log.rows is restored
    assert log.closed_since(0) == restored
