"""The default net's training budget (skprune._budget)."""

import numpy as np
import pytest
from conftest import small_net

from skprune import PrunedClassifier, _budget
from skprune._budget import MAX_EPOCHS, MIN_STEPS, default_max_epochs


def test_many_batches_per_epoch_keep_the_default_epochs():
    # 20 Newsgroups-sized data: far more than MIN_STEPS steps in six epochs.
    assert default_max_epochs(11_000, 64) == 6


def test_few_batches_per_epoch_get_epochs_up_to_the_minimum_steps():
    batches = int(np.ceil(1_257 / 64))
    epochs = default_max_epochs(1_257, 64)
    assert epochs == int(np.ceil(MIN_STEPS / batches))
    assert epochs * batches >= MIN_STEPS > (epochs - 1) * batches


def test_tiny_data_are_capped_and_whole_batch_counts_as_one_step():
    assert default_max_epochs(10, 64) == MAX_EPOCHS
    assert default_max_epochs(1_000, -1) == MAX_EPOCHS
    assert default_max_epochs(5, 64, min_steps=3, max_epochs=50) == 6


@pytest.mark.parametrize("prune_ratio", [0.0, 0.9])
def test_default_net_gets_the_budget_and_the_control_as_many_epochs(
    prune_ratio, monkeypatch
):
    # A low cap keeps the test quick; the policy's own constants are chosen by
    # benchmarks/small_dense.py.
    monkeypatch.setattr(_budget, "MAX_EPOCHS", 9)
    rng = np.random.default_rng(0)
    X = rng.random((40, 5)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    clf = PrunedClassifier(prune_ratio=prune_ratio, random_state=0)
    clf.fit(X, y)
    dense = 9
    assert clf.estimator_.max_epochs == dense
    assert len(clf.estimator_.history) == dense + max(1, (2 * dense) // 3)


def test_a_users_net_keeps_its_own_max_epochs():
    rng = np.random.default_rng(0)
    X = rng.random((40, 5)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    clf = PrunedClassifier(small_net(max_epochs=2), retrain_epochs=1, random_state=0)
    clf.fit(X, y)
    assert clf.estimator_.max_epochs == 2
    assert len(clf.estimator_.history) == 3
