"""PrunedClassifier among scikit-learn's tools: estimator checks, pipelines, search."""

import numpy as np
import pytest
from conftest import SAMPLE_WEIGHT_EQUIVALENCE, parametrize_with_checks, small_net
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_validate,
    validation_curve,
)
from sklearn.pipeline import make_pipeline

from skprune import PrunedClassifier

# The checks fit on tiny dense toy sets (a few hundred samples, a handful of
# features); the net is made small and quick, with a learning rate for so few steps.
CHECKED = [
    PrunedClassifier(
        small_net(max_epochs=10, lr=0.01), retrain_epochs=4, random_state=0
    ),
]


@parametrize_with_checks(
    CHECKED, expected_failed_checks=lambda estimator: SAMPLE_WEIGHT_EQUIVALENCE
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_default_classifier_passes_every_estimator_check():
    """The net as it ships, with no expected failure, the toy accuracy bar of
    check_classifiers_train included."""
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(
        PrunedClassifier(random_state=0),
        on_fail=None,
        expected_failed_checks=SAMPLE_WEIGHT_EQUIVALENCE,
    )
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == []
    # The expected failures really fail (check_estimator does not say so itself).
    expected = [r for r in results if r["expected_to_fail"]]
    assert sorted(r["check_name"] for r in expected) == sorted(
        SAMPLE_WEIGHT_EQUIVALENCE
    )
    assert {r["status"] for r in expected} == {"xfail"}
    train_checks = [r for r in results if r["check_name"] == "check_classifiers_train"]
    assert [r["status"] for r in train_checks] == ["passed"] * len(train_checks) != []


def _texts(n=120):
    rng = np.random.default_rng(0)
    topics = {
        "sport": "goal match team score league player coach",
        "money": "bank stock market price trade loan rate",
        "space": "orbit rocket planet launch star moon nasa",
    }
    vocab = ["the", "a", "of", "and", "to", "in", "is", "it", "for", "on", "with", "as"]
    labels = rng.choice(list(topics), size=n)
    texts = [
        " ".join(rng.choice(topics[label].split() + vocab, size=rng.integers(5, 15)))
        for label in labels
    ]
    return texts, labels


def quick(**params):
    return PrunedClassifier(
        small_net(max_epochs=4, batch_size=16),
        retrain_epochs=2,
        random_state=0,
        **params,
    )


def test_pipeline_after_tfidf_learns_from_raw_text():
    texts, labels = _texts(240)
    pipe = make_pipeline(TfidfVectorizer(), quick(prune_ratio=0.9))
    pipe.fit(texts[:160], labels[:160])
    # On held-out texts (3 topics, chance 1/3; 0.975 where written).
    assert pipe.score(texts[160:], labels[160:]) > 0.85
    assert pipe[-1].sparsity_ == pytest.approx(0.9, abs=1 / pipe[-1].n_params_)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_prune_ratio(n_jobs):
    texts, labels = _texts()
    pipe = make_pipeline(TfidfVectorizer(), quick())
    search = GridSearchCV(
        pipe, {"prunedclassifier__prune_ratio": [0.0, 0.5, 0.9]}, cv=3, n_jobs=n_jobs
    ).fit(texts, labels)
    assert len(search.cv_results_["mean_test_score"]) == 3
    best = search.best_estimator_[-1]
    assert best.sparsity_ == pytest.approx(
        search.best_params_["prunedclassifier__prune_ratio"], abs=1 / best.n_params_
    )


def test_cross_validate_compares_pruned_with_unpruned_on_the_same_folds():
    texts, labels = _texts()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    results = {
        ratio: cross_validate(
            make_pipeline(TfidfVectorizer(), quick(prune_ratio=ratio)),
            texts,
            labels,
            cv=cv,
            return_estimator=True,
            return_indices=True,
        )
        for ratio in (0.0, 0.9)
    }
    dense, pruned = results[0.0], results[0.9]
    for split in ("train", "test"):
        for a, b in zip(dense["indices"][split], pruned["indices"][split], strict=True):
            np.testing.assert_array_equal(a, b)
    for ratio, result in results.items():
        for est in result["estimator"]:
            assert est[-1].sparsity_ == pytest.approx(ratio, abs=1 / est[-1].n_params_)
    # Held-out accuracy (chance 1/3): both learn, and keeping a tenth of the
    # weights costs at most 0.1 on average (0.93 and 0.90 where written).
    assert dense["test_score"].mean() > 0.85
    assert pruned["test_score"].mean() > 0.8
    assert pruned["test_score"].mean() > dense["test_score"].mean() - 0.1


def test_validation_curve_over_prune_ratio():
    texts, labels = _texts()
    train, test = validation_curve(
        make_pipeline(TfidfVectorizer(), quick()),
        texts,
        labels,
        param_name="prunedclassifier__prune_ratio",
        param_range=[0.0, 0.8],
        cv=2,
    )
    assert train.shape == test.shape == (2, 2)
    # Held-out folds of 60 texts, chance 1/3: both ratios learn.
    assert test.min() > 0.7


def test_nested_parameters_reach_the_net_and_its_module():
    clf = PrunedClassifier(small_net())
    params = clf.get_params()
    assert params["estimator__max_epochs"] == 3
    assert params["estimator__module__hidden_layer_sizes"] == (32,)
    clf.set_params(estimator__max_epochs=1, estimator__module__hidden_layer_sizes=(8,))
    texts, labels = _texts(60)
    X = TfidfVectorizer().fit_transform(texts)
    clf.set_params(retrain_epochs=1).fit(X, labels)
    assert len(clf.estimator_.history) == 2
    assert clf.estimator_.module_.layers[0].weight.shape[1] == 8
