"""PrunedClassifierCV: one pruning path per fold, selection, refit, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SAMPLE_WEIGHT_EQUIVALENCE, small_net
from sklearn.base import clone
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils.estimator_checks import parametrize_with_checks
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback

from skprune import PrunedClassifier, PrunedClassifierCV
from skprune._cv import _select
from skprune.callbacks import Pruning


def quick_cv(**params):
    defaults = {
        "estimator": small_net(max_epochs=3),
        # 0.75 then 0.9375 is the path of schedule="iterative", n_rounds=2.
        "prune_ratios": (0.75, 0.9375),
        "cv": 3,
        "retrain_epochs": 1,
        "random_state": 0,
    }
    return PrunedClassifierCV(**{**defaults, **params})


def fold_seed(random_state):
    """The seed every fold and the refit train with."""
    return int(check_random_state(random_state).randint(2**31 - 1))


@pytest.fixture(scope="module")
def fitted(text_data):
    X, y = text_data
    return quick_cv().fit(X, y)


CHECKED = [
    PrunedClassifierCV(
        small_net(max_epochs=10, lr=0.01),
        prune_ratios=(0.5,),
        cv=2,
        retrain_epochs=3,
        random_state=0,
    )
]


@parametrize_with_checks(
    CHECKED, expected_failed_checks=lambda estimator: SAMPLE_WEIGHT_EQUIVALENCE
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_cv_results_have_one_row_per_ratio_after_the_control(fitted):
    results = pd.DataFrame(fitted.cv_results_)
    assert list(results["param_prune_ratio"]) == [0.0, 0.75, 0.9375]
    assert list(results["params"]) == [{"prune_ratio": r} for r in (0.0, 0.75, 0.9375)]
    splits = results[[f"split{k}_test_score" for k in range(3)]].to_numpy()
    np.testing.assert_allclose(results["mean_test_score"], splits.mean(axis=1))
    np.testing.assert_allclose(results["std_test_score"], splits.std(axis=1))
    # Along the path, reaching a sparser ratio takes longer.
    assert np.all(np.diff(results["mean_fit_time"]) > 0)
    assert fitted.n_splits_ == 3
    np.testing.assert_array_equal(fitted.prune_ratios_, [0.75, 0.9375])


def test_selected_ratio_is_refitted_on_all_the_data(fitted, text_data):
    X, _ = text_data
    results = fitted.cv_results_
    assert fitted.prune_ratio_ == results["param_prune_ratio"][fitted.best_index_]
    assert fitted.best_score_ == results["mean_test_score"][fitted.best_index_]
    assert fitted.sparsity_ == pytest.approx(fitted.prune_ratio_, abs=1e-3)
    assert [row["target_ratio"] for row in fitted.pruning_history_] == [
        r for r in (0.75, 0.9375) if r <= fitted.prune_ratio_
    ]
    assert fitted.predict(X[:5]).shape == (5,)
    assert fitted.compress().predict(X[:5]).tolist() == fitted.predict(X[:5]).tolist()


# PrunedClassifier settings that train exactly as the path does up to each ratio.
EQUIVALENT = {
    0.0: {"prune_ratio": 0.0, "retrain_epochs": 0},
    0.75: {"prune_ratio": 0.75, "retrain_epochs": 1},
    0.9375: {
        "prune_ratio": 0.9375,
        "retrain_epochs": 1,
        "schedule": "iterative",
        "n_rounds": 2,
    },
}


def equivalent(ratio, seed):
    return PrunedClassifier(
        small_net(max_epochs=3), random_state=seed, **EQUIVALENT[ratio]
    )


def test_each_fold_scores_what_a_prunedclassifier_with_its_seed_scores(
    fitted, text_data
):
    """Fold by fold, the control is the dense net, the first ratio a one-shot
    PrunedClassifier, the second an iterative one: the path shares their work."""
    X, y = text_data
    seed = fold_seed(0)
    for k, (train, test) in enumerate(StratifiedKFold(3).split(X, y)):
        scores = fitted.cv_results_[f"split{k}_test_score"]
        for ratio, score in zip((0.0, 0.75, 0.9375), scores, strict=True):
            single = equivalent(ratio, seed).fit(X[train], y[train])
            assert score == single.score(X[test], y[test]), (k, ratio)


def test_refit_is_a_prunedclassifier_at_the_selected_ratio(fitted, text_data):
    X, y = text_data
    single = equivalent(fitted.prune_ratio_, 0).fit(X, y)
    np.testing.assert_array_equal(fitted.predict_proba(X), single.predict_proba(X))


def test_results_do_not_depend_on_n_jobs(fitted, text_data):
    X, y = text_data
    parallel = quick_cv(n_jobs=2).fit(X, y)
    for key, value in fitted.cv_results_.items():
        if "time" not in key:
            np.testing.assert_array_equal(parallel.cv_results_[key], value)
    np.testing.assert_array_equal(parallel.predict_proba(X), fitted.predict_proba(X))


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        # The best is 0.5 (index 1); one SE is 0.04 / sqrt(4) = 0.02.
        ("best", 1),
        ("1se", 2),  # 0.85 >= 0.86 - 0.02, 0.80 is not
    ],
)
def test_select_rule(select, expected):
    means = np.array([0.84, 0.86, 0.85, 0.80])
    stds = np.array([0.01, 0.04, 0.01, 0.01])
    assert _select(means, stds, 4, select) == expected


def test_select_best_prefers_the_sparsest_of_ties():
    assert _select(np.array([0.9, 0.9, 0.8]), np.zeros(3), 3, "best") == 1


def test_default_retraining_is_a_third_of_the_dense_epochs_per_ratio(text_data):
    X, y = text_data
    clf = quick_cv(
        estimator=small_net(max_epochs=6), retrain_epochs=None, select="best", cv=2
    ).fit(X, y)
    n_steps = len(clf.pruning_history_)
    assert len(clf.estimator_.history) == 6 + 2 * n_steps
    assert [row["epoch"] for row in clf.pruning_history_] == [6.0, 8.0][:n_steps]


def test_unsorted_duplicated_ratios_and_zero_are_normalised(text_data):
    X, y = text_data
    clf = quick_cv(prune_ratios=[0.9, 0.5, 0.9, 0.0], cv=2).fit(X, y)
    assert list(clf.cv_results_["param_prune_ratio"]) == [0.0, 0.5, 0.9]
    assert clf.prune_ratios_.tolist() == [0.5, 0.9]


@pytest.mark.parametrize("ratios", [[0.5, 1.0], [-0.1, 0.5], [], [[0.5]]])
def test_ratios_outside_zero_one_are_rejected(text_data, ratios):
    X, y = text_data
    with pytest.raises(ValueError, match="prune_ratios"):
        quick_cv(prune_ratios=ratios).fit(X, y)


def test_unknown_select_is_rejected(text_data):
    X, y = text_data
    with pytest.raises(ValueError, match="'select' parameter"):
        quick_cv(select="smallest").fit(X, y)


def test_cv_larger_than_the_smallest_class_is_rejected(text_data):
    X, y = text_data
    y = y.copy()
    keep = np.r_[np.flatnonzero(y != 0), np.flatnonzero(y == 0)[:2]]
    with pytest.raises(ValueError, match=r"cv=3 makes 3 stratified folds.*class 0"):
        quick_cv().fit(X[keep], y[keep])


def test_cv_splitter_of_the_users_own_is_used(text_data):
    X, y = text_data
    clf = quick_cv(cv=KFold(2, shuffle=True, random_state=1)).fit(X, y)
    assert clf.n_splits_ == 2
    assert "split1_test_score" in clf.cv_results_


class Recorder(Callback):
    def initialize(self):
        self.epochs_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1


class SoftmaxMLP(torch.nn.Module):
    def __init__(self, n_features=10, n_classes=2):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, 16)
        self.out = torch.nn.Linear(16, n_classes)

    def forward(self, X):
        return torch.softmax(self.out(torch.relu(self.hidden(X))), dim=-1)


def test_users_own_net_criterion_optimizer_callbacks_and_scorer(text_data):
    X, y = text_data
    X = X[:, :300].toarray()
    net = NeuralNetClassifier(
        SoftmaxMLP,
        criterion=torch.nn.NLLLoss,
        optimizer=torch.optim.SGD,
        lr=0.5,
        max_epochs=3,
        batch_size=32,
        train_split=None,
        callbacks=[("recorder", Recorder())],
        verbose=0,
    )
    clf = PrunedClassifierCV(
        net,
        prune_ratios=(0.5, 0.8),
        cv=2,
        scoring="neg_log_loss",
        retrain_epochs=1,
        random_state=0,
    ).fit(X, y)
    scores = clf.cv_results_["split0_test_score"]
    assert np.all(scores < 0)  # negated log-losses
    assert dict(clf.estimator_.callbacks_)["recorder"].epochs_ == len(
        clf.estimator_.history
    )
    # The refit's loss on all data is what the scorer measures.
    assert clf.scorer_(clf, X, y) == pytest.approx(
        -log_loss(y, clf.predict_proba(X), labels=clf.classes_)
    )
    assert net.callbacks[0][1].__dict__ == {}  # the caller's callback untouched


def test_verbose_prints_one_line_per_fold_and_ratio(text_data, capsys):
    X, y = text_data
    clf = quick_cv(cv=2, verbose=1).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    for fold in ("fold 1/2", "fold 2/2"):
        rounds = [line for line in lines if line.startswith(f"{fold}  round")]
        assert [line.split()[3] for line in rounds] == ["1/2", "2/2"]
        assert all("held-out" in line for line in rounds)
    refit = [line for line in lines if line.startswith("refit  round")]
    assert len(refit) == len(clf.pruning_history_)


def test_verbose_zero_is_silent(text_data, capsys):
    X, y = text_data
    quick_cv(cv=2).fit(X, y)
    assert capsys.readouterr().out == ""


def test_the_fitted_net_clones_and_its_clone_refits_along_the_same_path(
    fitted, text_data
):
    X, y = text_data
    net = clone(fitted.estimator_)
    (path,) = [cb for _, cb in net.callbacks if isinstance(cb, Pruning)]
    assert path.get_params()["ratios"] == fitted._path_pruning.ratios
    assert "prune_ratio" not in path.get_params()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net.initialize()
        net.partial_fit(X, y, epochs=path.total_epochs)
    assert [step.ratio for step in path.steps_] == [
        float(r) for r in fitted._path_pruning.ratios
    ]
    assert path.history_[-1]["sparsity"] == pytest.approx(fitted.prune_ratio_, abs=1e-6)
