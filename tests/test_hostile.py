"""Hostile inputs and users' own nets, one table row each, with the exact outcome.

Each row builds a :class:`PrunedClassifier` the way a user plausibly would (their
own skorch callbacks, optimizer, module, input format, labels) and states what
must happen: either the fit works, prunes exactly as asked, keeps every pruned
weight at exactly 0.0 after every optimizer step and every epoch, and beats
chance on held-out data by ``MARGIN``; or a specific exception with a message
fragment, at ``fit`` (leaving the estimator unfitted) or at ``predict``.

Rows marked with a contract (``C1``...``C12``, see the project's contracts) pin
behaviour promised by other modules.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    GradientNormClipping,
    LRScheduler,
    ProgressBar,
)
from skorch.dataset import ValidSplit
from torch import nn

from skprune import MLPModule, PrunedClassifier
from skprune._classifier import default_classifier_net
from skprune.data import as_canonical_csr
from skprune.datasets import make_text_classification
from skprune.optim import LazyAdam

# Held-out accuracy of every working row must beat the majority class's share
# of the test set by this much. Measured: 0.35 for the lowest row (a fifth of the
# columns and a seventh of the rows emptied), 0.39 to 0.46 for the others, 0.68
# for six classes.
MARGIN = 0.25
PRUNE_RATIO = 0.5
N_TRAIN = 120


# data ---------------------------------------------------------------------------


def _text(n_classes=3, n_samples=200, n_features=300, tfidf=True, seed=0):
    X, y = make_text_classification(
        n_samples,
        n_features,
        n_classes=n_classes,
        n_topic_words=20,
        mean_length=40,
        topic_strength=0.4,
        tfidf=tfidf,
        random_state=seed,
    )
    return X, y


_TFIDF, _Y3 = _text()
_COUNTS, _ = _text(tfidf=False)  # same documents as _TFIDF, raw token counts


@dataclass
class Data:
    X_train: object
    y_train: np.ndarray
    X_test: object
    y_test: np.ndarray


def split(X, y, convert=lambda X: X) -> Data:
    """Training and test rows, each converted (format, dtype) after the split."""
    return Data(convert(X[:N_TRAIN]), y[:N_TRAIN], convert(X[N_TRAIN:]), y[N_TRAIN:])


def tfidf(convert=lambda X: X, labels=lambda y: y):
    """The 3-class TF-IDF data, converted (format, dtype) and relabelled."""
    return lambda: split(_TFIDF, labels(_Y3), convert)


def counts(convert):
    return lambda: split(_COUNTS, _Y3, convert)


def relabel(*names):
    names = np.asarray(names, dtype=object if isinstance(names[0], str) else None)
    return lambda y: names[y]


# nets -----------------------------------------------------------------------------


def small_net(**params):
    """The default net, made small: 16 hidden units, 2 dense epochs."""
    defaults = {
        "max_epochs": 2,
        "module__hidden_layer_sizes": (16,),
        "lr": 0.02,
        "batch_size": 16,
    }
    return default_classifier_net().set_params(**{**defaults, **params})


def user_net(module=MLPModule, **params):
    """A net as a user writes it: Adam, cross-entropy, skorch's defaults otherwise."""
    defaults = {
        "criterion": nn.CrossEntropyLoss,
        "optimizer": torch.optim.Adam,
        "max_epochs": 2,
        "lr": 0.02,
        "batch_size": 16,
        "iterator_train__shuffle": True,
        "train_split": None,
        "verbose": 0,
    }
    if module is MLPModule:
        defaults["module__hidden_layer_sizes"] = (16,)
    return NeuralNetClassifier(module, **{**defaults, **params})


class DenseMLP(nn.Module):
    """A user's module: takes n_features and n_classes, dense input only."""

    def __init__(self, n_features, n_classes, hidden=16):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )

    def forward(self, X):
        return self.layers(X)


class FixedWidthMLP(nn.Sequential):
    """A user's module whose sizes come under its own names, set by the user."""

    def __init__(self, input_dim=300, output_dim=3, hidden=16):
        super().__init__(
            nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, output_dim)
        )


class SoftmaxMLP(DenseMLP):
    """Outputs probabilities, as skorch's default NLLLoss criterion expects."""

    def forward(self, X):
        return torch.softmax(self.layers(X), dim=-1)


class BrokenForward(DenseMLP):
    def forward(self, X):
        raise RuntimeError("user bug in forward: shapes do not line up")


class BrokenForwardNoLinear(nn.Module):
    """Raises in forward and has no layer skprune can prune."""

    def __init__(self, n_features, n_classes):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(n_features, n_classes))

    def forward(self, X):
        raise KeyError("user bug in forward: missing feature map")


class ZeroRecorder(Callback):
    """Records, after every optimizer step and epoch, whether pruned weights are 0.

    Added last among the net's callbacks, it sees the weights as the user's
    own callbacks and the next batch do. ``violations_`` lists the
    ``(epoch, batch, parameter, largest pruned |w|)`` of every miss.
    """

    def initialize(self):
        self.violations_ = []
        self.checks_ = 0
        self.batch_ = 0
        return self

    def _check(self, net):
        pruning = dict(net.callbacks_)["pruning"]
        params = dict(net.module_.named_parameters())
        for name, mask in pruning.masks_.items():
            if pruning.shrunk_:
                continue
            pruned = params[name].detach()[~mask.to(params[name].device)]
            self.checks_ += 1
            if pruned.numel() and bool((pruned != 0).any()):
                worst = float(pruned.abs().max())
                self.violations_.append((len(net.history), self.batch_, name, worst))

    def on_batch_end(self, net, training=True, **kwargs):
        if training:
            self.batch_ += 1
            self._check(net)

    def on_epoch_end(self, net, **kwargs):
        self._check(net)


def recorded(net):
    """The net with a ZeroRecorder appended to its callbacks."""
    return net.set_params(callbacks=[*(net.callbacks or []), ZeroRecorder()])


# expectations -------------------------------------------------------------------


@dataclass(frozen=True)
class Works:
    """The fit works, prunes as asked, keeps pruned weights at 0, beats chance."""

    check: Callable | None = None  # extra assertions on (clf, data)


@dataclass(frozen=True)
class FitRaises:
    error: type
    match: str


@dataclass(frozen=True)
class PredictRaises:
    """Fit on clean data works; predicting on ``data().X_test`` raises."""

    error: type
    match: str


@dataclass(frozen=True)
class Row:
    id: str
    net: Callable
    expect: object
    data: Callable = tfidf()
    params: dict | None = None
    contract: str = ""


def _feature_names(clf, data):
    assert list(clf.feature_names_in_) == list(data.X_train.columns)


def _classes(*expected):
    def check(clf, data):
        assert list(clf.classes_) == list(expected)
        assert set(clf.predict(data.X_test)) <= set(expected)

    return check


def _evaluated_on_validation(clf, data):
    assert [row["evaluated_on"] for row in clf.pruning_history_] == ["validation"]


def _bad_index(value, at="column"):
    """The test rows as CSR with one stored index replaced by ``value``."""

    def make():
        data = split(_TFIDF, _Y3)
        X = data.X_test.copy()
        X.indices[X.indptr[1]] = value  # the second row's first stored value
        return Data(data.X_train, data.y_train, X, data.y_test)

    return make


def _bad_fit_index(value):
    def make():
        data = split(_TFIDF, _Y3)
        X = data.X_train.copy()
        X.indices[X.indptr[1]] = value
        return Data(X, data.y_train, data.X_test, data.y_test)

    return make


def _sparse(kind, dtype=np.float32):
    return tfidf(lambda X: getattr(sp, kind)(X.astype(dtype)))


def _with(X_train=None, y_train=None, X_test=None):
    """The 3-class data with some parts replaced."""

    def make():
        data = split(_TFIDF, _Y3)
        return Data(
            data.X_train if X_train is None else X_train(data.X_train),
            data.y_train if y_train is None else y_train(data.y_train),
            data.X_test if X_test is None else X_test(data.X_test),
            data.y_test,
        )

    return make


def _with_nan(X):
    X = X.copy()
    X.data[0] = np.nan
    return X


def _with_inf(X):
    X = X.copy()
    X.data[0] = np.inf
    return X


def _messy_csr(X):
    """Unsorted, duplicated and explicitly zero entries, same matrix as X."""
    X = X.tocoo()
    extra = len(X.data) // 4
    rows = np.concatenate([X.row, X.row[:extra], X.row[:extra]])[::-1]
    cols = np.concatenate([X.col, X.col[:extra], X.col[:extra]])[::-1]
    vals = np.concatenate([X.data, X.data[:extra], -X.data[:extra]])[::-1]
    messy = sp.csr_matrix((vals, (rows, cols)), shape=X.shape)
    messy.has_canonical_format = False
    return messy


def _empty_rows_and_columns(X):
    X = X.tolil()
    X[::7] = 0
    X[:, ::5] = 0
    return X.tocsr()


# the table ------------------------------------------------------------------------

EARLY_STOPPING = EarlyStopping(monitor="train_loss", patience=1)

ROWS = [
    # skorch callbacks a user adds
    Row(
        "callback-EarlyStopping",
        lambda tmp: small_net(callbacks=[EARLY_STOPPING]),
        FitRaises(ValueError, "EarlyStopping"),
        contract="C3",
    ),
    Row(
        "callback-LRScheduler-StepLR",
        lambda tmp: small_net(
            callbacks=[
                LRScheduler(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.7)
            ]
        ),
        Works(),
    ),
    Row(
        "callback-Checkpoint",
        lambda tmp: small_net(
            callbacks=[Checkpoint(monitor="train_loss_best", dirname=str(tmp))]
        ),
        Works(),
    ),
    Row(
        "callback-GradientNormClipping",
        lambda tmp: small_net(callbacks=[GradientNormClipping(gradient_clip_value=1)]),
        # torch's clip_grad_norm_ cannot take the sparse first-layer gradient.
        FitRaises(ValueError, "GradientNormClipping' callback clips gradients"),
    ),
    Row(
        "callback-GradientNormClipping-dense-grad",
        lambda tmp: small_net(
            module__sparse_grad=False,
            callbacks=[GradientNormClipping(gradient_clip_value=1)],
        ),
        Works(),
    ),
    Row(
        "callback-EpochScoring-train-accuracy",
        lambda tmp: small_net(
            callbacks=[EpochScoring("accuracy", on_train=True, name="train_acc")]
        ),
        Works(),
    ),
    Row(
        "callback-ProgressBar",
        lambda tmp: small_net(callbacks=[ProgressBar()]),
        Works(),
    ),
    Row(
        "train_split-ValidSplit(5)",
        lambda tmp: small_net(train_split=ValidSplit(5)),
        Works(_evaluated_on_validation),
    ),
    # optimizers
    Row(
        "optimizer-SGD-nesterov-dense-grad",
        lambda tmp: user_net(
            optimizer=torch.optim.SGD,
            lr=0.2,
            optimizer__momentum=0.9,
            optimizer__nesterov=True,
        ),
        Works(),
    ),
    Row(
        "optimizer-SGD-nesterov-sparse-grad",
        lambda tmp: user_net(
            optimizer=torch.optim.SGD,
            lr=0.2,
            optimizer__momentum=0.9,
            optimizer__nesterov=True,
            module__sparse_grad=True,
        ),
        Works(),
    ),
    Row(
        "optimizer-AdamW-weight-decay-dense-grad",
        lambda tmp: user_net(optimizer=torch.optim.AdamW, optimizer__weight_decay=0.1),
        Works(),
    ),
    Row(
        "optimizer-AdamW-sparse-grad",
        lambda tmp: user_net(optimizer=torch.optim.AdamW, module__sparse_grad=True),
        FitRaises(ValueError, "AdamW"),
        contract="C6",
    ),
    Row(
        "optimizer-Adagrad-dense-grad",
        lambda tmp: user_net(optimizer=torch.optim.Adagrad, lr=0.1),
        Works(),
    ),
    Row(
        "optimizer-Adagrad-sparse-grad",
        lambda tmp: user_net(
            optimizer=torch.optim.Adagrad, lr=0.1, module__sparse_grad=True
        ),
        Works(),
    ),
    Row(
        "optimizer-SparseAdam-sparse-grad",
        lambda tmp: user_net(
            optimizer=torch.optim.SparseAdam, module__sparse_grad=True
        ),
        FitRaises(ValueError, "SparseAdam"),
        contract="C6",
    ),
    Row(
        "optimizer-Adam-sparse-grad",
        lambda tmp: user_net(optimizer=torch.optim.Adam, module__sparse_grad=True),
        FitRaises(ValueError, "Adam"),
        contract="C6",
    ),
    Row(
        "optimizer-Adam-dense-grad",
        lambda tmp: user_net(optimizer=torch.optim.Adam),
        Works(),
    ),
    Row(
        "optimizer-LazyAdam-sparse-grad",
        lambda tmp: user_net(optimizer=LazyAdam, module__sparse_grad=True),
        Works(),
    ),
    Row(
        "optimizer-LazyAdam-dense-grad",
        lambda tmp: user_net(optimizer=LazyAdam),
        Works(),
    ),
    Row(
        "optimizer-LazyAdam-eps=0",
        lambda tmp: small_net(optimizer__eps=0.0),
        FitRaises(ValueError, "eps"),
        contract="C12",
    ),
    # users' modules
    Row(
        "module-with-n_features-n_classes-dense-input",
        lambda tmp: user_net(DenseMLP),
        Works(),
    ),
    Row(
        "module-without-size-args",
        lambda tmp: user_net(
            FixedWidthMLP, module__input_dim=300, module__output_dim=3
        ),
        Works(),
    ),
    Row(
        "module-instance",
        lambda tmp: user_net(DenseMLP(300, 3)),
        Works(),
    ),
    Row(
        "module-softmax-output-default-NLLLoss",
        lambda tmp: user_net(SoftmaxMLP, criterion=nn.NLLLoss),
        Works(),
    ),
    Row(
        "module-logits-with-NLLLoss",
        lambda tmp: user_net(MLPModule, criterion=nn.NLLLoss),
        FitRaises(ValueError, "criterion=torch.nn.CrossEntropyLoss"),
        contract="C1",
    ),
    Row(
        "module-logits-with-skorch-default-criterion",
        lambda tmp: NeuralNetClassifier(
            MLPModule, module__hidden_layer_sizes=(16,), max_epochs=2, train_split=None
        ),
        FitRaises(ValueError, "criterion=torch.nn.CrossEntropyLoss"),
        contract="C1",
    ),
    Row(
        "module-forward-raises",
        lambda tmp: user_net(BrokenForward),
        FitRaises(RuntimeError, "user bug in forward: shapes do not line up"),
        contract="C5",
    ),
    Row(
        "module-forward-raises-no-prunable-layer",
        lambda tmp: user_net(BrokenForwardNoLinear),
        FitRaises(KeyError, "user bug in forward: missing feature map"),
        contract="C5",
    ),
    # every sparse format, dense, dtypes, pandas
    *[
        Row(f"X-{kind}", lambda tmp: small_net(), Works(), data=_sparse(kind))
        for kind in (
            "csr_matrix",
            "csc_matrix",
            "coo_matrix",
            "bsr_matrix",
            "dok_matrix",
            "lil_matrix",
            "csr_array",
            "csc_array",
            "coo_array",
        )
    ],
    Row(
        "X-csr-float64",
        lambda tmp: small_net(),
        Works(),
        data=_sparse("csr_matrix", np.float64),
    ),
    Row(
        "X-csr-int64-counts",
        lambda tmp: small_net(),
        Works(),
        data=counts(lambda X: sp.csr_matrix(X.astype(np.int64))),
    ),
    Row(
        "X-csr-bool",
        lambda tmp: small_net(),
        Works(),
        data=counts(lambda X: sp.csr_matrix(X > 0)),
    ),
    Row(
        "X-csr-int64-indices",
        lambda tmp: small_net(),
        Works(),
        data=tfidf(
            lambda X: sp.csr_matrix(
                (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                shape=X.shape,
            )
        ),
    ),
    Row(
        "X-csr-unsorted-duplicates-explicit-zeros",
        lambda tmp: small_net(),
        Works(),
        data=tfidf(_messy_csr),
    ),
    Row(
        "X-csr-empty-rows-and-columns",
        lambda tmp: small_net(),
        Works(),
        data=tfidf(_empty_rows_and_columns),
    ),
    Row(
        "X-dense-float64",
        lambda tmp: small_net(),
        Works(),
        data=tfidf(lambda X: X.toarray().astype(np.float64)),
    ),
    Row(
        "X-dense-float32-user-module",
        lambda tmp: user_net(DenseMLP),
        Works(),
        data=tfidf(lambda X: X.toarray()),
    ),
    Row(
        "X-dense-int",
        lambda tmp: small_net(),
        Works(),
        data=counts(lambda X: X.toarray().astype(np.int64)),
    ),
    Row(
        "X-dense-bool",
        lambda tmp: small_net(),
        Works(),
        data=counts(lambda X: X.toarray() > 0),
    ),
    Row(
        "X-pandas-dense",
        lambda tmp: small_net(),
        Works(),
        data=tfidf(lambda X: pd.DataFrame(X.toarray())),
    ),
    Row(
        "X-pandas-string-columns",
        lambda tmp: small_net(),
        Works(_feature_names),
        data=tfidf(
            lambda X: pd.DataFrame(
                X.toarray(), columns=[f"w{i}" for i in range(X.shape[1])]
            )
        ),
    ),
    Row(
        "X-pandas-sparse",
        lambda tmp: small_net(),
        Works(),
        data=tfidf(lambda X: pd.DataFrame.sparse.from_spmatrix(X)),
    ),
    # labels
    Row(
        "y-strings",
        lambda tmp: small_net(),
        Works(_classes("ham", "spam", "urgent")),
        data=tfidf(labels=relabel("ham", "spam", "urgent")),
    ),
    Row(
        "y-ints-not-from-0",
        lambda tmp: small_net(),
        Works(_classes(-7, 10, 30)),
        data=tfidf(labels=relabel(-7, 10, 30)),
    ),
    Row(
        "y-integral-floats",
        lambda tmp: small_net(),
        Works(_classes(1.0, 2.0, 3.0)),
        data=tfidf(labels=relabel(1.0, 2.0, 3.0)),
    ),
    Row(
        "y-bools-two-class",
        lambda tmp: small_net(),
        Works(_classes(False, True)),
        data=lambda: split(*_two_class(lambda y: y.astype(bool))),
    ),
    Row(
        "y-many-class",
        lambda tmp: small_net(lr=0.05),
        Works(_classes(*range(6))),
        data=lambda: split(*_text(n_classes=6, n_samples=200, seed=1)),
    ),
    Row(
        "y-continuous",
        lambda tmp: small_net(),
        FitRaises(ValueError, "Unknown label type"),
        data=tfidf(labels=lambda y: y + 0.5),
    ),
    Row(
        "y-one-class",
        lambda tmp: small_net(),
        FitRaises(ValueError, "at least 2 classes"),
        data=tfidf(labels=lambda y: np.zeros_like(y)),
    ),
    Row(
        "y-nan",
        lambda tmp: small_net(),
        FitRaises(ValueError, "NaN"),
        data=tfidf(labels=lambda y: np.where(y == 0, np.nan, y)),
    ),
    Row(
        "y-wrong-length",
        lambda tmp: small_net(),
        FitRaises(ValueError, "inconsistent numbers of samples"),
        data=_with(y_train=lambda y: y[:-1]),
    ),
    # hostile X
    Row(
        "X-nan",
        lambda tmp: small_net(),
        FitRaises(ValueError, "NaN"),
        data=_with(X_train=_with_nan),
    ),
    Row(
        "X-inf",
        lambda tmp: small_net(),
        FitRaises(ValueError, "infinity"),
        data=_with(X_train=_with_inf),
    ),
    Row(
        "X-one-sample",
        lambda tmp: small_net(),
        FitRaises(ValueError, "minimum of 2"),
        data=_with(X_train=lambda X: X[:1], y_train=lambda y: y[:1]),
    ),
    Row(
        "X-3d",
        lambda tmp: small_net(),
        FitRaises(ValueError, "dim 3"),
        data=_with(X_train=lambda X: X.toarray()[:, :, None]),
    ),
    Row(
        "X-negative-column-index-at-fit",
        lambda tmp: small_net(),
        FitRaises(ValueError, "column index -1"),
        data=_bad_fit_index(-1),
        contract="C11",
    ),
    Row(
        "X-too-large-column-index-at-fit",
        lambda tmp: small_net(),
        FitRaises(ValueError, "column index 300"),
        data=_bad_fit_index(300),
        contract="C11",
    ),
    Row(
        "X-negative-column-index-at-predict",
        lambda tmp: small_net(),
        PredictRaises(ValueError, "column index -1"),
        data=_bad_index(-1),
        contract="C11",
    ),
    Row(
        "X-too-large-column-index-at-predict",
        lambda tmp: small_net(),
        PredictRaises(ValueError, "column index 12345"),
        data=_bad_index(12345),
        contract="C11",
    ),
    Row(
        "X-other-width-at-predict",
        lambda tmp: small_net(),
        PredictRaises(ValueError, "300 features"),
        data=_with(X_test=lambda X: X[:, :200]),
    ),
    Row(
        "X-other-feature-names-at-predict",
        lambda tmp: small_net(),
        PredictRaises(ValueError, "feature names"),
        data=_with(
            X_train=lambda X: pd.DataFrame(
                X.toarray(), columns=[f"w{i}" for i in range(X.shape[1])]
            ),
            X_test=lambda X: pd.DataFrame(
                X.toarray(), columns=[f"v{i}" for i in range(X.shape[1])]
            ),
        ),
    ),
]


def _two_class(labels=lambda y: y):
    X, y = _text(n_classes=2, seed=2)
    return X, labels(y)


# running a row --------------------------------------------------------------------


def _copy(X):
    return X.copy() if hasattr(X, "copy") else copy.deepcopy(X)


def _assert_same(a, b):
    if sp.issparse(a):
        assert type(a) is type(b) and a.format == b.format and a.dtype == b.dtype
        for name in ("data", "indices", "indptr", "row", "col"):
            if hasattr(a, name) and not (a.format == "bsr" and name in ("row", "col")):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(a.toarray(), b.toarray())
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    else:
        np.testing.assert_array_equal(a, b)


def _assert_pruned_and_zero(clf):
    """Pruning happened as asked, and pruned weights are exactly 0.0 throughout."""
    assert clf.pruning_history_, "no pruning step ran"
    assert abs(clf.sparsity_ - PRUNE_RATIO) <= 1.0 / clf.n_params_
    params = dict(clf.estimator_.module_.named_parameters())
    for name, mask in clf.masks_.items():
        pruned = params[name].detach().cpu().numpy()[~mask]
        assert np.all(pruned == 0.0), f"{name}: pruned weights moved after fit"
    recorder = dict(clf.estimator_.callbacks_)["ZeroRecorder"]
    assert recorder.checks_ > 0
    assert recorder.violations_ == [], "pruned weights moved during training"


def _fit_row(row, tmp_path):
    data = row.data()
    net = recorded(row.net(tmp_path))
    clf = PrunedClassifier(
        net,
        prune_ratio=PRUNE_RATIO,
        retrain_epochs=1,
        random_state=0,
        **(row.params or {}),
    )
    return clf, data


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_hostile_row(row, tmp_path):
    clf, data = _fit_row(row, tmp_path)
    X_train, y_train = _copy(data.X_train), np.array(data.y_train, copy=True)
    expect = row.expect
    if isinstance(expect, FitRaises):
        with pytest.raises(expect.error, match=_escape(expect.match)):
            clf.fit(data.X_train, data.y_train)
        with pytest.raises(NotFittedError):
            check_is_fitted(clf)
    else:
        clf.fit(data.X_train, data.y_train)
        _assert_pruned_and_zero(clf)
        if isinstance(expect, PredictRaises):
            for method in (clf.predict, clf.predict_proba, clf.decision_function):
                with pytest.raises(expect.error, match=_escape(expect.match)):
                    method(data.X_test)
        else:
            accuracy = clf.score(data.X_test, data.y_test)
            assert accuracy >= _chance(data.y_test) + MARGIN, accuracy
            if expect.check is not None:
                expect.check(clf, data)
    _assert_same(data.X_train, X_train)
    np.testing.assert_array_equal(data.y_train, y_train)


def _escape(fragment):
    return re.escape(fragment)


def _chance(y):
    return np.max(np.unique(y, return_counts=True)[1]) / len(y)


# refits of one estimator object ----------------------------------------------------


def _narrower(data):
    return Data(data.X_train[:, :200], data.y_train, data.X_test[:, :200], data.y_test)


def _two_strings(data):
    X, y = _two_class()
    names = np.array(["neg", "pos"], dtype=object)
    return split(X, names[y])


@pytest.mark.parametrize(
    "change, n_features, classes",
    [(_narrower, 200, [0, 1, 2]), (_two_strings, 300, ["neg", "pos"])],
    ids=["another-width", "other-classes"],
)
def test_refit_of_the_same_estimator_forgets_the_first_fit(change, n_features, classes):
    first = split(_TFIDF, _Y3)
    clf = PrunedClassifier(
        recorded(small_net()), prune_ratio=PRUNE_RATIO, retrain_epochs=1, random_state=0
    ).fit(first.X_train, first.y_train)
    second = change(first)
    clf.fit(second.X_train, second.y_train)
    assert clf.n_features_in_ == n_features
    assert list(clf.classes_) == classes
    assert clf.masks_["layers.0.weight"].shape == (n_features, 16)
    assert clf.estimator_.module_.layers[-1].out_features == len(classes)
    _assert_pruned_and_zero(clf)
    assert clf.predict_proba(second.X_test).shape == (len(second.y_test), len(classes))
    accuracy = clf.score(second.X_test, second.y_test)
    assert accuracy >= _chance(second.y_test) + MARGIN
    if n_features != 300:
        with pytest.raises(ValueError, match="features"):
            clf.predict(first.X_test)


# compress() ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 300])
def test_compressed_predict_rejects_column_indices_outside_the_features(value):
    data = _bad_index(value)()
    clf = PrunedClassifier(small_net(), prune_ratio=PRUNE_RATIO, random_state=0)
    compressed = clf.fit(data.X_train, data.y_train).compress()
    with pytest.raises(ValueError, match=f"column index {value}"):
        compressed.predict(data.X_test)


# the index checks themselves (C11) -------------------------------------------------


def _corrupt(kind, array, value):
    def make():
        X = getattr(sp, kind)(_TFIDF[:20], copy=True)
        getattr(X, array)[1] = value
        return X

    return make


@pytest.mark.parametrize(
    "make, match",
    [
        (_corrupt("csr_matrix", "indices", -3), "column index -3"),
        (_corrupt("csr_array", "indices", 300), "column index 300"),
        (_corrupt("csc_matrix", "indices", -1), "row index -1"),
        (_corrupt("csc_array", "indices", 20), "row index 20"),
        (_corrupt("coo_matrix", "col", 301), "column index 301"),
        (_corrupt("coo_array", "col", -2), "column index -2"),
        (_corrupt("coo_matrix", "row", 20), "row index 20"),
        (_corrupt("csr_matrix", "indptr", 10**6), "row pointers"),
        (_corrupt("csc_matrix", "indptr", -5), "column pointers"),
    ],
    ids=lambda p: p if isinstance(p, str) else None,
)
def test_as_canonical_csr_rejects_indices_outside_the_shape(make, match):
    X = make()
    before = {
        name: getattr(X, name).copy()
        for name in ("data", "indices", "indptr")
        if hasattr(X, name)
    }
    with pytest.raises(ValueError, match=re.escape(match)):
        as_canonical_csr(X)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(X, name), value)
