"""Tests for :mod:`skprune.datasets`."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from skprune.datasets import make_text_classification

SMALL = dict(n_samples=300, n_features=3000)


def _assert_canonical_float32_csr(X):
    assert sp.issparse(X)
    assert X.format == "csr"
    assert X.dtype == np.float32
    assert X.has_sorted_indices
    assert X.has_canonical_format
    # Independent check of sorted, duplicate-free indices within every row.
    row_of = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    key = row_of.astype(np.int64) * X.shape[1] + X.indices
    assert np.all(np.diff(key) > 0)
    assert np.all(X.data != 0)
    assert np.all(np.isfinite(X.data))


def test_returns_matrix_and_labels_of_requested_shape():
    X, y = make_text_classification(
        n_samples=123, n_features=4567, n_classes=3, random_state=0
    )
    assert X.shape == (123, 4567)
    assert y.shape == (123,)
    assert y.dtype == np.int64
    assert set(np.unique(y)) <= {0, 1, 2}


def test_same_seed_gives_identical_data():
    X1, y1 = make_text_classification(**SMALL, random_state=42)
    X2, y2 = make_text_classification(**SMALL, random_state=42)
    assert (X1 != X2).nnz == 0
    np.testing.assert_array_equal(X1.indptr, X2.indptr)
    np.testing.assert_array_equal(X1.indices, X2.indices)
    np.testing.assert_array_equal(X1.data, X2.data)
    np.testing.assert_array_equal(y1, y2)


def test_random_state_instance_is_accepted_and_advanced():
    rng = np.random.RandomState(0)
    X1, _ = make_text_classification(**SMALL, random_state=rng)
    X2, _ = make_text_classification(**SMALL, random_state=rng)
    assert (X1 != X2).nnz > 0
    X3, _ = make_text_classification(**SMALL, random_state=np.random.RandomState(0))
    assert (X1 != X3).nnz == 0


def test_different_seeds_differ():
    X1, y1 = make_text_classification(**SMALL, random_state=0)
    X2, y2 = make_text_classification(**SMALL, random_state=1)
    assert (X1 != X2).nnz > 0
    assert not np.array_equal(y1, y2)


@pytest.mark.parametrize("tfidf", [True, False])
def test_output_is_float32_csr_without_duplicates_or_explicit_zeros(tfidf):
    X, _ = make_text_classification(**SMALL, tfidf=tfidf, random_state=0)
    _assert_canonical_float32_csr(X)
    # sum_duplicates/eliminate_zeros must be no-ops on the returned matrix.
    Y = X.copy()
    Y.sum_duplicates()
    Y.eliminate_zeros()
    assert Y.nnz == X.nnz


def test_every_row_is_nonempty_and_l2_normalised_with_tfidf():
    X, _ = make_text_classification(
        n_samples=500, n_features=3000, mean_length=3.0, random_state=0
    )
    assert np.all(np.diff(X.indptr) >= 1)
    assert np.all(X.data > 0)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_counts_are_integers_without_tfidf():
    X, _ = make_text_classification(**SMALL, tfidf=False, random_state=0)
    assert X.dtype == np.float32
    assert np.all(X.data >= 1)
    np.testing.assert_array_equal(X.data, np.round(X.data))
    assert X.data.max() > 1  # frequent words repeat within a document
    lengths = np.asarray(X.sum(axis=1)).ravel()
    assert lengths.min() >= 1


def test_document_lengths_have_requested_mean():
    X, _ = make_text_classification(
        n_samples=4000, n_features=3000, mean_length=50.0, tfidf=False, random_state=0
    )
    lengths = np.asarray(X.sum(axis=1)).ravel()
    assert lengths.mean() == pytest.approx(50.0, rel=0.05)
    assert lengths.std() > 10  # log-normal spread, not constant lengths


def test_tfidf_matches_sklearn_tfidf_transformer_on_counts():
    from sklearn.feature_extraction.text import TfidfTransformer

    kwargs = dict(**SMALL, random_state=3)
    X, _ = make_text_classification(**kwargs)
    counts, _ = make_text_classification(**kwargs, tfidf=False)
    expected = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    np.testing.assert_array_equal(X.indptr, expected.indptr)
    np.testing.assert_array_equal(X.indices, expected.indices)
    np.testing.assert_allclose(X.data, expected.data, rtol=1e-5)


def test_labels_cover_all_classes_when_balanced():
    _, y = make_text_classification(
        n_samples=1000, n_features=5000, n_classes=5, label_noise=0.0, random_state=0
    )
    np.testing.assert_array_equal(np.bincount(y), [200] * 5)


@pytest.mark.parametrize(
    "weights", [[0.7, 0.2, 0.1], [0.5, 0.3], [0.05, 0.05, 0.9]], ids=str
)
def test_classes_follow_weights(weights):
    n_samples = 2000
    _, y = make_text_classification(
        n_samples=n_samples,
        n_features=5000,
        n_classes=3,
        weights=weights,
        label_noise=0.0,
        random_state=0,
    )
    full = list(weights) + [1 - sum(weights)] * (len(weights) == 2)
    counts = np.bincount(y, minlength=3)
    assert counts.sum() == n_samples
    np.testing.assert_allclose(counts / n_samples, full, atol=1 / n_samples)


def test_label_noise_changes_about_the_requested_fraction():
    kwargs = dict(n_samples=4000, n_features=3000, random_state=0)
    X0, y0 = make_text_classification(**kwargs, label_noise=0.0)
    X1, y1 = make_text_classification(**kwargs, label_noise=0.4)
    # Same seed: the documents are identical, only the labels differ.
    assert (X0 != X1).nnz == 0
    changed = np.mean(y0 != y1)
    # A replaced label keeps its class with probability 1 / n_classes.
    assert changed == pytest.approx(0.4 * (1 - 1 / 4), abs=0.03)


def test_classes_are_learnable_but_not_trivial():
    X, y = make_text_classification(random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    clf = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    accuracy = clf.score(X_test, y_test)
    assert 0.75 < accuracy < 0.97


def test_zero_topic_strength_gives_chance_accuracy():
    X, y = make_text_classification(
        n_samples=2000, n_features=5000, topic_strength=0.0, random_state=0
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    accuracy = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    assert accuracy.score(X_test, y_test) < 0.4


def test_word_frequencies_are_heavy_tailed():
    X, _ = make_text_classification(
        n_samples=2000, n_features=20000, tfidf=False, random_state=0
    )
    token_counts = np.sort(np.asarray(X.sum(axis=0)).ravel())[::-1]
    top_1_percent = token_counts[: X.shape[1] // 100].sum() / token_counts.sum()
    assert top_1_percent > 0.4
    # Most of the vocabulary is rare: the median word appears at most a few times.
    assert np.median(token_counts) <= 5


def test_topic_words_are_enriched_in_their_class():
    X, y = make_text_classification(
        n_samples=2000,
        n_features=5000,
        n_classes=2,
        n_topic_words=50,
        label_noise=0.0,
        tfidf=False,
        random_state=0,
    )
    freq = [np.asarray(X[y == c].sum(axis=0)).ravel() for c in range(2)]
    # The 50 words most enriched in each class carry a clear share of its tokens.
    for c in range(2):
        ratio = (freq[c] + 1) / (freq[1 - c] + 1)
        top = np.argsort(ratio)[-50:]
        assert freq[c][top].sum() / freq[c].sum() > 0.15
        assert np.all(ratio[top] > 5)


def test_large_matrix_is_generated_without_densifying():
    X, y = make_text_classification(
        n_samples=5000, n_features=1_000_000, random_state=0
    )
    assert X.shape == (5000, 1_000_000)
    assert sp.issparse(X) and X.format == "csr"
    assert y.shape == (5000,)
    # A dense float32 copy would need 20 GB; the sparse one is a few MB.
    nbytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    assert nbytes < 20e6
    assert X.nnz < 5000 * 200


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=-5), "n_samples"),
        (dict(n_samples=10.5), "n_samples"),
        (dict(n_features=0), "n_features"),
        (dict(n_features=1000), "n_features"),
        (dict(n_features=5000, n_topic_words=2000), "n_features"),
        (dict(n_classes=1), "n_classes"),
        (dict(n_classes="4"), "n_classes"),
        (dict(n_topic_words=0), "n_topic_words"),
        (dict(mean_length=0.0), "mean_length"),
        (dict(mean_length=float("nan")), "mean_length"),
        (dict(topic_strength=-0.1), "topic_strength"),
        (dict(topic_strength=1.5), "topic_strength"),
        (dict(zipf_exponent=-1.0), "zipf_exponent"),
        (dict(zipf_exponent=float("inf")), "zipf_exponent"),
        (dict(weights=[0.5, 0.5]), "weights"),
        (dict(weights=[0.2, 0.2, 0.2, 0.2, 0.2]), "weights"),
        (dict(weights=[0.5, 0.5, 0.5, 0.5]), "weights"),
        (dict(weights=[0.6, 0.6, 0.1]), "weights"),
        (dict(weights=[1.5, -0.5, 0.0, 0.0]), "weights"),
        (dict(weights=[[0.25, 0.25], [0.25, 0.25]]), "weights"),
        (dict(weights=["a", "b", "c", "d"]), "weights"),
        (dict(label_noise=-0.01), "label_noise"),
        (dict(label_noise=1.01), "label_noise"),
        (dict(tfidf="yes"), "tfidf"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else None,
)
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, match):
    params = dict(n_samples=10, n_features=20000)
    params.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_text_classification(**params)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(topic_strength=1.0),
        dict(label_noise=1.0),
        dict(zipf_exponent=0.0),
        dict(n_samples=1),
        dict(weights=[1.0, 0.0, 0.0, 0.0], label_noise=0.0),
    ],
    ids=repr,
)
def test_edge_arguments_are_accepted(kwargs):
    params = dict(n_samples=50, n_features=2000)
    params.update(kwargs)
    X, y = make_text_classification(**params, random_state=0)
    _assert_canonical_float32_csr(X)
    assert X.shape == (params["n_samples"], 2000)
    assert np.all(np.diff(X.indptr) >= 1)
    assert y.min() >= 0 and y.max() < 4
