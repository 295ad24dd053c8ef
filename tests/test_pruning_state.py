"""A saved Pruning callback's state comes back into its pure-torch pieces (the
schedule cursor, the rewind snapshot, the gradient sums, the round log), from a
file committed before they existed, and a loaded estimator refits as a fresh one;
a progress printer saved before its ``pruning`` parameter loads."""

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from conftest import small_net
from sklearn.base import clone
from test_persistence_attacks import forge, net_params

import skprune
from skprune._core.rounds import is_retraining
from skprune.callbacks import Pruning
from skprune.datasets import make_text_classification
from skprune.persistence._nets import _pruning_state

DATA = Path(__file__).parent / "data"


def pruning_of(clf) -> Pruning:
    return dict(clf.estimator_.callbacks_)["pruning"]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, dict) and any(
            isinstance(v, torch.Tensor) for v in value.values()
        ):
            assert value.keys() == b[key].keys(), key
            for name, tensor in value.items():
                assert torch.equal(tensor, b[key][name]), (key, name)
        else:
            assert value == b[key], key


def test_a_committed_file_restores_the_cursor_at_the_end_of_its_schedule():
    loaded = skprune.load(DATA / "pruned_classifier.skprune")
    pruning = pruning_of(loaded)
    cursor = pruning._cursor
    assert cursor.steps is pruning.steps_ and cursor.pending is None
    assert cursor.taken == len(pruning.steps_) == 1
    assert pruning.epochs_done_ == pruning.total_epochs
    assert cursor.batches_per_epoch >= 1
    assert pruning._rewind.values is None  # rewind=False: nothing was taken
    assert not any(is_retraining(row) for row in pruning.history_)
    assert pruning.round_log.rows is pruning.history_


def test_a_loaded_callback_saves_the_fields_it_was_loaded_from(tmp_path):
    loaded = skprune.load(DATA / "pruned_classifier.skprune")
    skprune.save(loaded, tmp_path / "again.skprune")
    again = skprune.load(tmp_path / "again.skprune")
    assert_same_state(
        _pruning_state(pruning_of(loaded)), _pruning_state(pruning_of(again))
    )


def test_a_loaded_estimator_refits_to_what_a_fresh_clone_fits():
    record = json.loads((DATA / "persistence_fixture.json").read_text())
    X = sp.csr_matrix(np.array(record["X"] * 4, dtype=np.float32))
    y = np.random.default_rng(0).choice(["eggs", "ham", "spam"], X.shape[0])
    loaded = skprune.load(DATA / "pruned_classifier.skprune")
    fresh = clone(loaded).fit(X, y)
    refit = loaded.fit(X, y)
    assert fresh.masks_.keys() == refit.masks_.keys()
    for name, mask in fresh.masks_.items():
        assert np.array_equal(mask, refit.masks_[name]), name
    np.testing.assert_array_equal(
        fresh.decision_function(X), refit.decision_function(X)
    )
    assert fresh.pruning_history_ == refit.pruning_history_


def test_a_printer_saved_before_it_had_a_pruning_parameter_loads_with_none(tmp_path):
    X, y = make_text_classification(
        60, 30, n_classes=3, n_topic_words=3, random_state=0
    )
    net = small_net(max_epochs=1)
    clf = skprune.PrunedClassifier(net, verbose=1, retrain_epochs=1, random_state=0)
    clf.fit(X, y)
    path = tmp_path / "m.skprune"
    skprune.save(clf, path)

    def as_before(document):
        (progress,) = [
            entry["__tuple__"][1]
            for entry in net_params(document)["callbacks"]
            if entry["__tuple__"][0] == "pruning_progress"
        ]
        del progress["fields"]["pruning"]
        return document

    forge(path, as_before)
    loaded = skprune.load(path)
    progress = dict(loaded.estimator_.callbacks_)["pruning_progress"]
    assert progress.pruning is None
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
