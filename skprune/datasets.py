"""Synthetic sparse, high-dimensional datasets for pruning experiments.

This module generates text-like classification data without needing a real
corpus: a bag-of-words matrix whose columns follow a Zipf law, whose classes
are separated by class-specific topic words, and which is optionally weighted
the way :class:`sklearn.feature_extraction.text.TfidfVectorizer` does it with
``sublinear_tf=True``. The data are meant to be learnable but not trivially so,
so that pruned and unpruned models can be told apart.

Only numpy, scipy and scikit-learn are used; nothing is ever densified, so
matrices with hundreds of thousands of columns are generated in about a second.
"""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize
from sklearn.utils import check_random_state

__all__ = ["make_text_classification"]

# Spread of the log-normal document lengths (standard deviation of the log).
_LENGTH_SIGMA = 0.6
# Concentration of the per-document Beta distribution around ``topic_strength``;
# smaller values give more documents that barely mention their class topic.
_TOPIC_CONCENTRATION = 2.5
# Topic words are drawn from the background ranks in
# ``[_TOPIC_BAND[0] * n_features, _TOPIC_BAND[1] * n_features)``: neither the
# most frequent "stop words" nor the rarest words.
_TOPIC_BAND = (0.01, 0.5)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return int(value)


def _check_real(value, name, low, high=np.inf, *, low_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    too_low = value < low if low_inclusive else value <= low
    if not np.isfinite(value) or too_low or value > high:
        left = "[" if low_inclusive else "("
        right = "]" if np.isfinite(high) else ")"
        raise ValueError(
            f"{name} must be in {left}{low}, {high}{right}, got {value!r}."
        )
    return value


def _check_weights(weights, n_classes):
    if weights is None:
        return np.full(n_classes, 1.0 / n_classes)
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weights must be a sequence of numbers: {exc}") from exc
    if w.ndim != 1 or len(w) not in (n_classes - 1, n_classes):
        raise ValueError(
            f"weights must have length n_classes={n_classes} (or n_classes - 1, "
            f"the last weight then being inferred), got shape {w.shape}."
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be finite and non-negative, got {weights!r}.")
    if len(w) == n_classes - 1:
        if w.sum() > 1 + 1e-8:
            raise ValueError(
                f"weights of length n_classes - 1 must sum to at most 1, "
                f"got sum {w.sum():.6g}."
            )
        w = np.append(w, max(0.0, 1.0 - w.sum()))
    if not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6):
        raise ValueError(f"weights must sum to 1, got sum {w.sum():.6g}.")
    return w / w.sum()


def _class_sizes(n_samples, weights):
    """Split ``n_samples`` into integer class sizes proportional to ``weights``."""
    exact = n_samples * weights
    sizes = np.floor(exact).astype(np.int64)
    remainder = n_samples - sizes.sum()
    # Largest fractional parts get the left-over samples (stable for ties).
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[:remainder]] += 1
    return sizes


def make_text_classification(
    n_samples=2000,
    n_features=20000,
    *,
    n_classes=4,
    n_topic_words=200,
    mean_length=80.0,
    topic_strength=0.3,
    zipf_exponent=1.1,
    weights=None,
    label_noise=0.02,
    tfidf=True,
    random_state=None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Generate a random text-like sparse classification problem.

    Each sample is a bag-of-words "document" over a vocabulary of
    ``n_features`` words. Word frequencies follow a Zipf law, which gives
    the heavy-tailed column statistics of real text: a few columns are
    non-zero in most rows, most columns in almost none. Each class owns a
    topic, a set of ``n_topic_words`` mid-frequency words (disjoint between
    classes) whose probability is boosted in documents of that class.

    The generative process is:

    1. Background word probabilities are proportional to
       ``1 / rank ** zipf_exponent``, with ranks assigned to the columns in a
       random order.
    2. Topic words of each class are a random subset of the words whose
       background rank lies between 1 % and 50 % of ``n_features``.
    3. Class sizes follow ``weights``; samples are shuffled.
    4. Document lengths are log-normal with mean ``mean_length`` (at least one
       token).
    5. Each document draws its own topic share from a Beta distribution with
       mean ``topic_strength`` (and ``alpha + beta = 2.5``), so some
       documents say little about their class. Each token comes from the
       document's class topic (uniformly over the topic words) with that
       probability, and from the Zipf background otherwise.
    6. Token counts are assembled into a sparse matrix and, if ``tfidf``,
       weighted with sublinear term frequency ``1 + log(tf)``, smoothed
       inverse document frequency ``log((1 + n) / (1 + df)) + 1`` and
       l2-normalised rows, like
       ``TfidfVectorizer(sublinear_tf=True)``.
    7. A fraction ``label_noise`` of the labels is replaced by a class drawn
       uniformly at random (which may be the original class).

    No dense ``n_samples x n_features`` array is ever built, so very wide
    matrices are cheap: time and memory grow with the number of tokens,
    ``n_samples * mean_length``, plus a few vectors of length ``n_features``.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of documents (rows). Must be at least 1.
    n_features : int, default=20000
        Vocabulary size (columns). Must be large enough for the topics: the
        band of mid-frequency ranks, ``n_features // 2 - n_features // 100``
        words, must hold ``n_classes * n_topic_words`` distinct words.
    n_classes : int, default=4
        Number of classes. Must be at least 2.
    n_topic_words : int, default=200
        Number of topic words per class, that is, the size of each class's
        specific vocabulary. Must be at least 1.
    mean_length : float, default=80.0
        Mean document length in tokens. Lengths are log-normal with this mean
        and a log standard deviation of 0.6, rounded, and at least 1. Must be
        positive.
    topic_strength : float, default=0.3
        Mean fraction of a document's tokens drawn from its class topic; the
        rest come from the Zipf background. Must be in [0, 1]; 0 makes the
        classes indistinguishable.
    zipf_exponent : float, default=1.1
        Exponent of the Zipf law of background word frequencies. Larger
        values concentrate the tokens on fewer words; 0 gives uniform
        frequencies. Must be non-negative.
    weights : array-like of shape (n_classes,) or (n_classes - 1,), default=None
        Proportions of samples assigned to each class, as in
        :func:`sklearn.datasets.make_classification`. If of length
        ``n_classes - 1``, the last weight is ``1 - sum(weights)``. Must be
        non-negative and sum to 1. ``None`` gives balanced classes. Sizes are
        exact up to rounding, before label noise.
    label_noise : float, default=0.02
        Fraction of samples whose label is replaced by a uniformly random
        class. Must be in [0, 1].
    tfidf : bool, default=True
        If True, return TF-IDF weighted, l2-normalised rows. If False, return
        raw token counts (as float32).
    random_state : int, RandomState instance or None, default=None
        Seed or random number generator, see
        :func:`sklearn.utils.check_random_state`. Pass an int for
        reproducible output.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features), dtype float32
        Document-term matrix in canonical form: sorted indices, no duplicate
        entries and no explicit zeros. Every row has at least one non-zero.
    y : ndarray of shape (n_samples,), dtype int64
        Class labels in ``0, ..., n_classes - 1``.

    Raises
    ------
    ValueError
        If an argument is out of range; the message names the argument.

    See Also
    --------
    sklearn.datasets.make_classification : Dense Gaussian classification data.
    sklearn.feature_extraction.text.TfidfVectorizer : The weighting imitated here.

    Notes
    -----
    With the defaults, :class:`~sklearn.linear_model.LogisticRegression`
    reaches roughly 85-92 % accuracy on a held-out quarter of the data (chance
    is 25 %, and ``label_noise`` alone caps it near 98.5 %). The errors come
    mostly from short documents and from documents with a small topic share,
    which leaves room for differences between pruned models. Raise
    ``topic_strength`` or ``mean_length`` for an easier problem, lower them
    for a harder one.

    Examples
    --------
    >>> from skprune.datasets import make_text_classification
    >>> X, y = make_text_classification(n_samples=100, n_features=5000,
    ...                                 random_state=0)
    >>> X.shape
    (100, 5000)
    >>> X.dtype
    dtype('float32')
    >>> X.format
    'csr'
    >>> y.dtype
    dtype('int64')
    >>> sorted(set(y.tolist()))
    [0, 1, 2, 3]
    >>> bool(X.nnz < 0.02 * X.shape[0] * X.shape[1])
    True

    Imbalanced classes and raw counts:

    >>> X, y = make_text_classification(n_samples=1000, n_features=5000,
    ...                                 n_classes=2, weights=[0.9, 0.1],
    ...                                 label_noise=0.0, tfidf=False,
    ...                                 random_state=0)
    >>> import numpy as np
    >>> np.bincount(y).tolist()
    [900, 100]
    >>> bool(np.all(X.data == np.round(X.data)))
    True
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    n_features = _check_int(n_features, "n_features", 1)
    n_classes = _check_int(n_classes, "n_classes", 2)
    n_topic_words = _check_int(n_topic_words, "n_topic_words", 1)
    mean_length = _check_real(mean_length, "mean_length", 0.0, low_inclusive=False)
    topic_strength = _check_real(topic_strength, "topic_strength", 0.0, 1.0)
    zipf_exponent = _check_real(zipf_exponent, "zipf_exponent", 0.0)
    label_noise = _check_real(label_noise, "label_noise", 0.0, 1.0)
    if not isinstance(tfidf, (bool, np.bool_)):
        raise ValueError(f"tfidf must be a bool, got {tfidf!r}.")
    band_lo, band_hi, n_needed = _topic_band(n_features, n_classes, n_topic_words)
    class_weights = _check_weights(weights, n_classes)
    rng = check_random_state(random_state)

    # 1. Zipf background over randomly ordered columns: word_of_rank[r] is the
    # column of the r-th most frequent word.
    word_of_rank = rng.permutation(n_features)
    background = np.arange(1, n_features + 1, dtype=np.float64) ** -zipf_exponent
    background_cdf = np.cumsum(background)
    background_cdf /= background_cdf[-1]

    # 2. Disjoint class topics from the mid-frequency band of ranks.
    topic_ranks = band_lo + rng.choice(band_hi - band_lo, n_needed, replace=False)
    topics = word_of_rank[topic_ranks].reshape(n_classes, n_topic_words)

    # 3. Class labels with exact (rounded) proportions, shuffled.
    y_true = np.repeat(
        np.arange(n_classes, dtype=np.int64), _class_sizes(n_samples, class_weights)
    )
    rng.shuffle(y_true)

    doc, words = _draw_tokens(
        rng,
        y_true,
        topics,
        background_cdf,
        word_of_rank,
        mean_length=mean_length,
        topic_strength=topic_strength,
    )

    X = _document_matrix(doc, words, (n_samples, n_features), tfidf)

    # 7. Label noise.
    y = y_true.copy()
    noisy = rng.random_sample(n_samples) < label_noise
    y[noisy] = rng.randint(0, n_classes, int(noisy.sum()))
    return X, y


def _topic_band(n_features: int, n_classes: int, n_topic_words: int):
    """The mid-frequency band of ranks topic words come from, and how many it
    must hold; refuses a band too narrow."""
    band_lo = int(_TOPIC_BAND[0] * n_features)
    band_hi = int(_TOPIC_BAND[1] * n_features)
    n_needed = n_classes * n_topic_words
    if band_hi - band_lo < n_needed:
        raise ValueError(
            f"n_features={n_features} is too small for n_classes={n_classes} "
            f"topics of n_topic_words={n_topic_words} words: topic words come "
            f"from the mid-frequency band of n_features // 2 - n_features // 100 "
            f"= {band_hi - band_lo} words, which must hold "
            f"n_classes * n_topic_words = {n_needed}; increase n_features or "
            f"decrease n_topic_words."
        )
    return band_lo, band_hi, n_needed


def _draw_tokens(
    rng, y_true, topics, background_cdf, word_of_rank, *, mean_length, topic_strength
):
    """Every token of every document: its document and its word (column)."""
    n_samples, n_features = len(y_true), len(word_of_rank)
    n_topic_words = topics.shape[1]
    # 4. Log-normal document lengths with the requested mean.
    mu = np.log(mean_length) - _LENGTH_SIGMA**2 / 2
    lengths = np.rint(rng.lognormal(mu, _LENGTH_SIGMA, n_samples)).astype(np.int64)
    np.maximum(lengths, 1, out=lengths)

    # 5. Per-document topic share, then all tokens at once.
    if 0.0 < topic_strength < 1.0:
        share = rng.beta(
            topic_strength * _TOPIC_CONCENTRATION,
            (1.0 - topic_strength) * _TOPIC_CONCENTRATION,
            n_samples,
        )
    else:
        share = np.full(n_samples, topic_strength)
    doc = np.repeat(np.arange(n_samples, dtype=np.int64), lengths)
    from_topic = rng.random_sample(doc.size) < share[doc]
    words = np.empty(doc.size, dtype=np.int64)
    n_from_topic = int(from_topic.sum())
    topic_slot = rng.randint(0, n_topic_words, n_from_topic)
    words[from_topic] = topics[y_true[doc[from_topic]], topic_slot]
    u = rng.random_sample(doc.size - n_from_topic)
    ranks = np.searchsorted(background_cdf, u, side="right")
    np.minimum(ranks, n_features - 1, out=ranks)  # guard against rounding
    words[~from_topic] = word_of_rank[ranks]
    return doc, words


def _document_matrix(doc, words, shape, tfidf: bool) -> sp.csr_matrix:
    """The float32 CSR matrix of token counts, or of their TF-IDF."""
    n_samples, n_features = shape
    # 6. Count matrix (tocsr sums duplicate (doc, word) pairs), then TF-IDF.
    counts = sp.coo_matrix(
        (np.ones(doc.size, dtype=np.float64), (doc, words)),
        shape=(n_samples, n_features),
    ).tocsr()
    counts.sum_duplicates()  # also sorts the indices
    if tfidf:
        df = np.bincount(counts.indices, minlength=n_features)
        idf = np.log((1.0 + n_samples) / (1.0 + df)) + 1.0
        counts.data = (1.0 + np.log(counts.data)) * idf[counts.indices]
        counts = normalize(counts, norm="l2", copy=False)
    X = sp.csr_matrix(counts, dtype=np.float32)
    X.sort_indices()
    return X
