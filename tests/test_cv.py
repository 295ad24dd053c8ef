"""PrunedClassifierCV: one pruning path per fold, selection, refit, bad input."""

import re
import time

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from conftest import SAMPLE_WEIGHT_EQUIVALENCE, parametrize_with_checks, small_net
from sklearn.base import clone
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, cross_validate
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback

from skprune import PrunedClassifier, PrunedClassifierCV
from skprune._cv import _path_pruning, _select
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
def fitted_and_seconds(text_data):
    X, y = text_data
    start = time.perf_counter()
    clf = quick_cv().fit(X, y)
    return clf, time.perf_counter() - start


@pytest.fixture(scope="module")
def fitted(fitted_and_seconds):
    return fitted_and_seconds[0]


def one_standard_error_choice(cv_results):
    """The row the one-standard-error rule picks, computed from the split scores
    alone: the sparsest whose mean is at least the best mean minus the best's
    standard error (its standard deviation over the folds / sqrt(folds))."""
    n_splits = sum(
        re.fullmatch(r"split\d+_test_score", key) is not None for key in cv_results
    )
    splits = np.array([cv_results[f"split{k}_test_score"] for k in range(n_splits)])
    means = splits.mean(axis=0)
    best = int(np.argmax(means))
    threshold = means[best] - splits[:, best].std() / np.sqrt(n_splits)
    return max(i for i, mean in enumerate(means) if mean >= threshold)


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


def test_cv_results_have_one_row_per_ratio_after_the_control(fitted_and_seconds):
    fitted, seconds = fitted_and_seconds
    results = pd.DataFrame(fitted.cv_results_)
    assert list(results["param_prune_ratio"]) == [0.0, 0.75, 0.9375]
    assert list(results["params"]) == [{"prune_ratio": r} for r in (0.0, 0.75, 0.9375)]
    splits = results[[f"split{k}_test_score" for k in range(3)]].to_numpy()
    np.testing.assert_allclose(results["mean_test_score"], splits.mean(axis=1))
    np.testing.assert_allclose(results["std_test_score"], splits.std(axis=1))
    # Fit times are cumulative along each fold's path, and the folds ran one
    # after another inside fit: their last times add up to less than the fit.
    assert np.all(np.diff(results["mean_fit_time"]) > 0)
    assert 3 * results["mean_fit_time"].iloc[-1] < seconds
    assert fitted.n_splits_ == 3
    np.testing.assert_array_equal(fitted.prune_ratios_, [0.75, 0.9375])


def test_selected_ratio_is_refitted_on_all_the_data(fitted, text_data):
    X, _ = text_data
    results = fitted.cv_results_
    chosen = one_standard_error_choice(results)
    assert fitted.best_index_ == chosen
    assert fitted.prune_ratio_ == (0.0, 0.75, 0.9375)[chosen]
    splits = [results[f"split{k}_test_score"][chosen] for k in range(3)]
    assert fitted.best_score_ == pytest.approx(np.mean(splits), abs=1e-12)
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
        # The folds' rows are not evaluated on the training data: no loss.
        assert not any("loss" in line for line in rounds)
        dense = [line for line in lines if line.startswith(f"{fold}  epoch")]
        assert [line.split()[3] for line in dense] == ["1/3", "2/3", "3/3"]
    refit = [line for line in lines if line.startswith("refit  round")]
    assert len(refit) == len(clf.pruning_history_)
    assert sum(line.startswith("refit  epoch") for line in lines) == 3
    assert all(" loss " in line and " score " in line for line in refit)


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
    fitted_path = _path_pruning(fitted.estimator_)
    assert path.get_params()["ratios"] == fitted_path.ratios
    assert "prune_ratio" not in path.get_params()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net.initialize()
        net.partial_fit(X, y, epochs=path.total_epochs)
    assert [step.ratio for step in path.steps_] == [
        float(r) for r in fitted_path.ratios
    ]
    assert path.history_[-1]["sparsity"] == pytest.approx(fitted.prune_ratio_, abs=1e-6)


# Selection, checked on fitted cv_results_ ---------------------------------------

# Scores a scorer hands out by ratio and by held-out size (which tells the folds of
# SIZED_FOLDS apart). 0.75 has the best mean, 0.90, spread over the folds: its
# standard error is 0.0816 / sqrt(3) = 0.047. In WITHIN, 0.9375 is within one
# standard error of it (0.86 >= 0.853); in OUTSIDE it is not (0.84), although it
# is within one standard deviation (0.818), which the rule must not use.
WITHIN = {
    0.0: {90: 0.80, 100: 0.80, 110: 0.80},
    0.75: {90: 0.80, 100: 0.90, 110: 1.00},
    0.9375: {90: 0.86, 100: 0.86, 110: 0.86},
}
OUTSIDE = {**WITHIN, 0.9375: {90: 0.84, 100: 0.84, 110: 0.84}}
SIZED_FOLDS = [
    (np.setdiff1d(np.arange(300), test), test)
    for test in (np.arange(0, 90), np.arange(90, 190), np.arange(190, 300))
]


@pytest.mark.parametrize(
    ("table", "select", "expected"),
    [(WITHIN, "1se", 2), (WITHIN, "best", 1), (OUTSIDE, "1se", 1)],
    ids=["1se-sparser-than-best", "best", "1se-outside-one-error"],
)
def test_selection_rule_on_fitted_cv_results(text_data, table, select, expected):
    X, y = text_data

    def table_scorer(estimator, X, y):
        return table[estimator.prune_ratio][len(y)]

    clf = quick_cv(cv=SIZED_FOLDS, scoring=table_scorer, select=select).fit(X, y)
    splits = np.array([clf.cv_results_[f"split{k}_test_score"] for k in range(3)])
    np.testing.assert_array_equal(
        splits.T, [[table[r][len(t)] for _, t in SIZED_FOLDS] for r in table]
    )
    means = splits.mean(axis=0)
    assert int(np.argmax(means)) == 1
    if select == "1se":  # the rule recomputed from the split scores alone
        assert one_standard_error_choice(clf.cv_results_) == expected
    assert clf.best_index_ == expected
    assert clf.prune_ratio_ == (0.0, 0.75, 0.9375)[expected]
    assert clf.best_score_ == pytest.approx(means[expected], abs=1e-12)
    assert clf.sparsity_ == pytest.approx(clf.prune_ratio_, abs=1 / clf.n_params_)


# The scorer sees a fitted PrunedClassifier ----------------------------------------


def test_a_custom_scorer_sees_a_fitted_prunedclassifier_at_each_ratio(text_data):
    X, y = text_data
    seen = []

    def sparsity(estimator, X_test, y_test):
        check_is_fitted(estimator)
        weight = estimator.estimator_.module_.layers[0].weight.detach().numpy()
        mask = estimator.masks_["layers.0.weight"]
        seen.append(
            {
                "type": type(estimator),
                "ratio": estimator.prune_ratio,
                "steps": len(estimator.pruning_history_),
                "nonzero": (estimator.n_nonzero_params_, np.count_nonzero(weight)),
                "masked": (int(mask.sum()), np.count_nonzero(weight[mask])),
                "report": estimator.pruning_report_[0]["kept"],
                "accuracy": estimator.score(X_test, y_test),
            }
        )
        return estimator.sparsity_

    clf = quick_cv(scoring=sparsity).fit(X, y)
    n_params = clf.n_params_
    for k in range(3):
        np.testing.assert_allclose(
            clf.cv_results_[f"split{k}_test_score"],
            [0.0, 0.75, 0.9375],
            atol=1 / n_params,
        )
    assert len(seen) == 3 * 3  # folds x (control and two ratios)
    assert {row["type"] for row in seen} == {PrunedClassifier}
    assert [row["ratio"] for row in seen] == [0.0, 0.75, 0.9375] * 3
    assert [row["steps"] for row in seen] == [0, 1, 2] * 3
    for row in seen:
        assert row["nonzero"][0] == row["nonzero"][1] == row["report"]
        assert row["masked"][0] == row["masked"][1]
        assert row["accuracy"] > 0.5  # the net being trained, not a fresh one


# groups, directly and through metadata routing ------------------------------------


class FailsIfTrained(Callback):
    def on_train_begin(self, net, **kwargs):
        raise AssertionError("training started")


class RecordingGroupKFold(GroupKFold):
    """A GroupKFold that keeps the groups it was given and the folds it made."""

    def split(self, X, y=None, groups=None):
        self.groups_ = groups
        self.folds_ = list(super().split(X, y, groups))
        yield from self.folds_


def groups_of(y):
    return np.arange(len(y)) % 10  # ten groups of 30 rows


def test_groups_reach_the_splitter_and_no_fold_splits_a_group(text_data):
    X, y = text_data
    groups = groups_of(y)
    splitter = RecordingGroupKFold(3)
    held_out = []

    def accuracy(estimator, X_test, y_test):
        held_out.append(X_test.shape[0])
        return accuracy_score(y_test, estimator.predict(X_test))

    clf = quick_cv(cv=splitter, scoring=accuracy).fit(X, y, groups=groups)
    np.testing.assert_array_equal(splitter.groups_, groups)
    assert clf.n_splits_ == len(splitter.folds_) == 3
    for train, test in splitter.folds_:
        assert not set(groups[train]) & set(groups[test])
    # The folds scored are the group folds (sizes 120, 90, 90; stratified folds
    # would be 100 each), each at the control and the two ratios.
    assert held_out == [len(test) for _, test in splitter.folds_ for _ in range(3)]
    assert sorted(set(held_out)) == [90, 120]


@pytest.mark.parametrize(
    ("groups", "match"),
    [(None, "groups"), (np.arange(10), "inconsistent numbers of samples")],
    ids=["no-groups", "short-groups"],
)
def test_a_group_splitter_without_proper_groups_is_refused_before_training(
    text_data, groups, match
):
    X, y = text_data
    clf = quick_cv(
        estimator=small_net(callbacks=[("fails", FailsIfTrained())]), cv=GroupKFold(2)
    )
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y, groups=groups)


def test_routed_groups_reach_the_splitter(text_data):
    X, y = text_data
    groups = groups_of(y)
    splitter = RecordingGroupKFold(2)
    with sklearn.config_context(enable_metadata_routing=True):
        quick_cv(cv=splitter, prune_ratios=(0.75,)).fit(X, y, groups=groups)
    np.testing.assert_array_equal(splitter.groups_, groups)
    for train, test in splitter.folds_:
        assert not set(groups[train]) & set(groups[test])


def test_groups_are_routed_into_a_search_nested_in_cross_validate(text_data):
    """As for GridSearchCV: the outer routing finds the inner splitter's request
    and hands this fit the groups of its training part."""
    X, y = text_data
    groups = groups_of(y)
    search = quick_cv(cv=RecordingGroupKFold(2), prune_ratios=(0.75,))
    with sklearn.config_context(enable_metadata_routing=True):
        results = cross_validate(
            search,
            X,
            y,
            cv=GroupKFold(2),
            params={"groups": groups},
            return_estimator=True,
            return_indices=True,
        )
    for inner, train in zip(
        results["estimator"], results["indices"]["train"], strict=True
    ):
        np.testing.assert_array_equal(inner.cv.groups_, groups[train])


def test_routing_refuses_groups_that_no_splitter_requests(text_data):
    X, y = text_data
    routed = sklearn.config_context(enable_metadata_routing=True)
    with routed, pytest.raises(TypeError, match="groups"):
        quick_cv(cv=3).fit(X, y, groups=groups_of(y))


def test_fit_requests_sample_weight_and_its_group_splitter_requests_groups(text_data):
    X, y = text_data
    metadata = ["sample_weight", "groups"]
    with sklearn.config_context(enable_metadata_routing=True):
        assert quick_cv().get_metadata_routing().consumes("fit", metadata) == set()
        grouped = quick_cv(cv=GroupKFold(2))
        assert grouped.get_metadata_routing().consumes("fit", metadata) == {"groups"}
        grouped.set_fit_request(sample_weight=True)
        assert grouped.get_metadata_routing().consumes("fit", metadata) == set(metadata)
        # groups are the splitter's: set_fit_request offers sample_weight alone.
        with pytest.raises(TypeError, match="groups"):
            quick_cv().set_fit_request(groups=True)
        # Called directly, the search takes its own sample_weight.
        clf = quick_cv(cv=2, prune_ratios=(0.75,)).fit(X, y, sample_weight=np.ones(300))
    assert clf.n_splits_ == 2


# sample_weight is checked before any training -------------------------------------


@pytest.mark.parametrize(
    "sample_weight",
    [
        np.ones(299),
        np.ones(301),
        np.ones((300, 1)),
        np.r_[-1.0, np.ones(299)],
        np.r_[np.nan, np.ones(299)],
        np.r_[np.inf, np.ones(299)],
        np.full(300, 1e37),
        np.r_[1e-46, np.ones(299)],
    ],
    ids=[
        "short",
        "long",
        "2d",
        "negative",
        "nan",
        "inf",
        "float32-overflow",
        "float32-underflow",
    ],
)
def test_bad_sample_weight_is_refused_before_training(text_data, sample_weight):
    X, y = text_data
    clf = quick_cv(estimator=small_net(callbacks=[("fails", FailsIfTrained())]))
    with pytest.raises(ValueError, match=r"sample_weight"):
        clf.fit(X, y, sample_weight=sample_weight)


# The folds skip the history's evaluations (issue 16) -----------------------------


def _count_evaluated_rows(monkeypatch):
    """Rows the module is run on outside training, counted from now on."""
    from skprune._nn.modules import MLPModule

    counted = []
    forward = MLPModule.forward

    def counting(self, X, *args, **kwargs):
        if not self.training:
            counted.append(X.shape[0])
        return forward(self, X, *args, **kwargs)

    monkeypatch.setattr(MLPModule, "forward", counting)
    return counted


def _with_fold_evaluations(monkeypatch):
    """The search as it was: the folds' history rows evaluated too."""
    make_pruning = PrunedClassifierCV._make_pruning

    def evaluating(self, *args, **kwargs):
        pruning = make_pruning(self, *args, **kwargs)
        pruning.round_log.evaluations = True
        return pruning

    monkeypatch.setattr(PrunedClassifierCV, "_make_pruning", evaluating)


def test_the_folds_skip_the_history_evaluations_and_select_as_before(
    text_data, monkeypatch
):
    X, y = text_data
    seen = []

    def accuracy(view, X_test, y_test):
        seen.append([row["evaluated_on"] for row in view.pruning_history_])
        return accuracy_score(y_test, view.predict(X_test))

    with monkeypatch.context() as patch:
        counted = _count_evaluated_rows(patch)
        _with_fold_evaluations(patch)
        before = quick_cv(select="best", scoring=accuracy).fit(X, y)
        evaluated_before = sum(counted)
    counted = _count_evaluated_rows(monkeypatch)
    seen.clear()
    after = quick_cv(select="best", scoring=accuracy).fit(X, y)
    # The scorer's view of a fold: rows not evaluated on the training data.
    assert seen[-1] == [None, None] and {x for rows in seen for x in rows} == {None}
    for key in ("split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_array_equal(after.cv_results_[key], before.cv_results_[key])
    assert after.prune_ratio_ == before.prune_ratio_
    # Each fold skips 2 * n_ratios + 1 evaluations (before and after each step,
    # after the last retraining), each a loss pass and a score pass over its
    # training part; the three training parts hold each row twice. Every one
    # of those rows, and no other, is spared.
    n_ratios = len(after.prune_ratios_)
    assert evaluated_before - sum(counted) == (2 * n_ratios + 1) * 2 * 2 * len(y)
    # The refit's history keeps its evaluations, the same as before.
    assert after.pruning_history_ == before.pruning_history_
    for row in after.pruning_history_:
        assert row["evaluated_on"] == "training"
        assert None not in (row["score_before"], row["score_after"])
        assert row["score_retrained"] is not None
