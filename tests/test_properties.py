"""Properties of a pruned fit, over random small nets, settings and sparse inputs.

hypothesis draws the architecture (1-2 hidden layers of 2-16 units), the prune
ratio, granularity, scope and schedule, and a random CSR matrix with some empty
rows and columns. Whatever it draws:

- the number of weights (units, features) pruned follows ``select_masks``'s rule,
  ``n - round(ratio * n)`` kept of ``n``, per layer or across layers, or the fit
  refuses an unreachable ratio before training;
- pruned weights are exactly zero after every optimizer step and every epoch;
- the caller's X, y and estimator are left as they were;
- the same ``random_state`` gives the same masks and predictions;
- ``predict`` is the class of ``argmax(predict_proba)`` and ``compress()``
  predicts the same.

And whatever batches the rows are predicted in (random splits, one row at a
time), each row's probabilities, decision values and regression outputs equal
the whole batch's to float64 rounding (1e-12), for sparse and dense input.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_methods_subset_invariance
from skorch.callbacks import Callback

from skprune import PrunedClassifier, PrunedRegressor
from skprune._classifier import default_classifier_net
from skprune._regressor import default_regressor_net
from skprune.modules import MLPModule, SparseLinear, float64_prediction

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


class ZeroRecorder(Callback):
    """Counts the pruned weights found non-zero after each optimizer step and epoch.

    Masks no longer apply once structured pruning has cut the module down.
    """

    def initialize(self):
        self.checks_ = 0
        self.violations_ = []
        return self

    def _check(self, net, when):
        pruning = dict(net.callbacks_)["pruning"]
        if pruning.shrunk_:
            return
        params = dict(net.module_.named_parameters())
        for name, mask in pruning.masks_.items():
            self.checks_ += 1
            moved = int((params[name].detach()[~mask] != 0).sum())
            if moved:
                self.violations_.append((when, len(net.history), name, moved))

    def on_batch_end(self, net, training=True, **kwargs):
        if training:
            self._check(net, "batch")

    def on_epoch_end(self, net, **kwargs):
        self._check(net, "epoch")


@dataclass
class Case:
    X: sp.csr_matrix
    y: np.ndarray
    hidden: tuple[int, ...]
    ratio: float
    granularity: str
    scope: str
    schedule: str
    n_rounds: int

    def estimator(self, **params):
        net = default_classifier_net().set_params(
            module__hidden_layer_sizes=self.hidden,
            max_epochs=1,
            batch_size=8,
            lr=0.02,
            callbacks=[ZeroRecorder()],
        )
        return PrunedClassifier(
            net,
            prune_ratio=self.ratio,
            granularity=self.granularity,
            scope=self.scope,
            schedule=self.schedule,
            n_rounds=self.n_rounds,
            retrain_epochs=1,
            random_state=0,
            **params,
        )


@st.composite
def cases(draw):
    n_samples = draw(st.integers(12, 40))
    n_features = draw(st.integers(3, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.05, 0.2, 0.5]))
    X = sp.random_array(
        (n_samples, n_features), density=density, format="lil", rng=rng
    ).astype(np.float32)
    # Some empty rows (the last one included, sometimes) and empty columns.
    X[rng.random(n_samples) < 0.15] = 0
    if draw(st.booleans()):
        X[n_samples - 1] = 0
    X[:, rng.random(n_features) < 0.15] = 0
    n_classes = draw(st.integers(2, 4))
    y = rng.integers(0, n_classes, n_samples)
    y[:2] = [0, 1]  # at least two classes
    if draw(st.booleans()):
        y = np.array(["alpha", "beta", "gamma", "delta"], dtype=object)[y]
    schedule = draw(st.sampled_from(["oneshot", "iterative", "gradual"]))
    return Case(
        X=sp.csr_matrix(X),
        y=y,
        hidden=tuple(draw(st.lists(st.integers(2, 16), min_size=1, max_size=2))),
        ratio=draw(st.floats(0.0, 0.9)),
        granularity=draw(st.sampled_from(["weight", "neuron", "feature", "block"])),
        scope=draw(st.sampled_from(["global", "layer"])),
        schedule=schedule,
        n_rounds=1 if schedule == "oneshot" else draw(st.integers(1, 3)),
    )


# the rounding rule, worked out independently of skprune's code -------------------


def ranked_sizes(case) -> dict[str, int]:
    """Entries ranked in each prunable tensor: weights, blocks, units or features."""
    n_features, hidden = case.X.shape[1], case.hidden
    if case.granularity == "block":  # default block_size=8, a ragged last block
        widths = [n_features, *hidden]
        return {
            f"layers.{i}.weight": widths[i] * -(-widths[i + 1] // 8)
            for i in range(len(hidden))
        }
    if case.granularity == "feature":
        return {"layers.0.weight": n_features}
    if case.granularity == "neuron":
        return {f"layers.{i}.weight": h for i, h in enumerate(hidden)}
    widths = [n_features, *hidden]
    return {f"layers.{i}.weight": widths[i] * widths[i + 1] for i in range(len(hidden))}


def expected_kept(case) -> dict[str, int] | None:
    """Entries kept per tensor (or in all, under "total"); None if unreachable.

    ``select_masks`` keeps ``n - round(ratio * n)`` of ``n`` entries, per tensor
    (scope "layer") or across tensors (scope "global"), with a floor of
    ``min_keep=1`` entry per tensor; a ratio above what the floors allow is
    refused.
    """
    sizes = ranked_sizes(case)
    if case.scope == "layer" or len(sizes) == 1:
        if any(case.ratio > 1 - 1 / n + 1e-12 for n in sizes.values()):
            return None
        return {name: n - round(case.ratio * n) for name, n in sizes.items()}
    total = sum(sizes.values())
    if case.ratio > 1 - len(sizes) / total + 1e-12:
        return None
    return {"total": total - round(case.ratio * total)}


def measured_kept(clf, case) -> dict[str, int]:
    """Entries kept per tensor, read from the fitted masks."""
    kept = {}
    for name in ranked_sizes(case):
        mask = clf.masks_[name]
        if case.granularity == "weight":
            kept[name] = int(mask.sum())
        elif case.granularity == "block":
            # Outputs last: (in, out) for the first layer, (out, in) for Linear.
            runs = mask if name == "layers.0.weight" else mask.T
            blocks = [
                runs[:, start : start + 8] for start in range(0, runs.shape[1], 8)
            ]
            assert all((b.all(axis=1) == b.any(axis=1)).all() for b in blocks)
            kept[name] = sum(int(b.all(axis=1).sum()) for b in blocks)
        elif case.granularity == "feature":
            kept[name] = int(mask.any(axis=1).sum())  # SparseLinear: (in, out)
        else:
            # Units along the output axis: (in, out) for the first layer,
            # (out, in) for torch.nn.Linear.
            axis = 0 if name == "layers.0.weight" else 1
            kept[name] = int(mask.any(axis=axis).sum())
    if case.scope == "global" and len(kept) > 1:
        return {"total": sum(kept.values())}
    return kept


# the properties ---------------------------------------------------------------------


@settings(max_examples=40, **SETTINGS)
@given(case=cases())
def test_pruned_counts_follow_the_rounding_rule_and_pruned_weights_stay_zero(case):
    expected = expected_kept(case)
    event(f"{case.granularity} {case.scope} {case.schedule}")
    event("unreachable" if expected is None else "fitted")
    clf = case.estimator()
    if expected is None:
        with pytest.raises(ValueError, match="cannot be reached"):
            clf.fit(case.X, case.y)
        return
    clf.fit(case.X, case.y)
    assert measured_kept(clf, case) == expected
    if case.granularity == "weight":
        n_pruned = clf.n_params_ - expected.get("total", sum(expected.values()))
        assert clf.n_params_ - clf.n_nonzero_params_ == n_pruned
    if case.granularity == "feature":
        assert clf.support_.sum() == expected["layers.0.weight"]
    recorder = dict(clf.estimator_.callbacks_)["ZeroRecorder"]
    assert recorder.violations_ == []
    if case.granularity == "weight" and case.ratio > 0:
        assert recorder.checks_ > 0


@settings(max_examples=10, **SETTINGS)
@given(case=cases())
def test_fit_leaves_the_callers_x_y_and_estimator_unchanged(case):
    clf = case.estimator()
    X, y = case.X.copy(), case.y.copy()
    params, net = clf.get_params(deep=False), clf.estimator
    net_params, callbacks = net.get_params(deep=False), list(net.callbacks)
    try:
        clf.fit(case.X, case.y)
    except ValueError as error:  # an unreachable ratio; nothing may change either
        assert "cannot be reached" in str(error)
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(case.X, name), getattr(X, name))
    assert case.X.dtype == X.dtype and case.X.format == "csr"
    np.testing.assert_array_equal(case.y, y)
    assert_same_params(clf.get_params(deep=False), params)
    assert_same_params(net.get_params(deep=False), net_params)
    assert clf.estimator is net and net.callbacks == callbacks
    assert not net.initialized_ and not hasattr(net, "module_")
    assert not hasattr(callbacks[0], "checks_")  # the user's callback is untouched


def assert_same_params(after, before):
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value or after[key] == value, key


@settings(max_examples=8, **SETTINGS)
@given(case=cases())
def test_same_random_state_gives_identical_masks_and_predictions(case):
    if expected_kept(case) is None:
        return
    first = case.estimator().fit(case.X, case.y)
    second = clone(first).fit(case.X, case.y)
    assert first.masks_.keys() == second.masks_.keys()
    for name, mask in first.masks_.items():
        np.testing.assert_array_equal(mask, second.masks_[name])
    np.testing.assert_array_equal(
        first.predict_proba(case.X), second.predict_proba(case.X)
    )


@settings(max_examples=12, **SETTINGS)
@given(case=cases())
def test_predict_is_argmax_of_predict_proba_and_matches_compressed(case):
    if expected_kept(case) is None:
        return
    clf = case.estimator().fit(case.X, case.y)
    proba = clf.predict_proba(case.X)
    predicted = clf.predict(case.X)
    np.testing.assert_array_equal(predicted, clf.classes_[np.argmax(proba, axis=1)])
    compressed = clf.compress()
    np.testing.assert_allclose(compressed.predict_proba(case.X), proba, atol=1e-5)
    # Labels agree wherever the top two classes are not tied to float precision.
    top_two = np.sort(proba, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-5
    np.testing.assert_array_equal(compressed.predict(case.X)[clear], predicted[clear])


# predictions do not depend on the batch -----------------------------------------

#: name: (estimator, input format, granularity, net settings). Dense input takes
#: the first layer's sparse path with the default sparse gradient, and a float64
#: dense product without it; two hidden layers put a product between them.
BATCH_MODELS = {
    "classifier-csr-weight": ("classifier", "csr", "weight", {}),
    "classifier-csr-neuron-2layers": (
        "classifier",
        "csr",
        "neuron",
        {"module__hidden_layer_sizes": (32, 16)},
    ),
    "classifier-dense-feature": ("classifier", "dense", "feature", {}),
    "classifier-dense-neuron-dense-product": (
        "classifier",
        "dense",
        "neuron",
        {"module__sparse_grad": False, "optimizer": torch.optim.Adam},
    ),
    "regressor-csr-feature": ("regressor", "csr", "feature", {}),
    "regressor-dense-weight-dense-product-2layers": (
        "regressor",
        "dense",
        "weight",
        {
            "module__sparse_grad": False,
            "optimizer": torch.optim.Adam,
            "module__hidden_layer_sizes": (32, 16),
        },
    ),
}


@functools.cache
def batch_model(name):
    """A fitted model of BATCH_MODELS, its input and its prediction methods."""
    kind, layout, granularity, net_params = BATCH_MODELS[name]
    rng = np.random.default_rng(0)
    X = sp.random_array((120, 400), density=0.05, format="csr", rng=rng)
    X = sp.csr_matrix(X.astype(np.float32))
    target = X @ rng.normal(size=400)
    default_net = (
        default_classifier_net if kind == "classifier" else default_regressor_net
    )
    net = default_net().set_params(
        max_epochs=2, lr=0.01, module__hidden_layer_sizes=(32,)
    )
    net.set_params(**net_params)
    if kind == "classifier":
        estimator = PrunedClassifier(net, prune_ratio=0.7, granularity=granularity)
        y, methods = (
            np.digitize(target, np.quantile(target, [0.3, 0.6])),
            (
                "predict_proba",
                "decision_function",
            ),
        )
    else:
        estimator = PrunedRegressor(net, prune_ratio=0.7, granularity=granularity)
        y, methods = np.column_stack([target, -target]), ("predict",)
    estimator.set_params(retrain_epochs=1, random_state=0)
    X = X if layout == "csr" else X.toarray()
    return estimator.fit(X, y), X, methods


def assert_batch_invariant(model, X, rows_in_batches):
    """Each method's outputs for ``rows_in_batches`` (lists of row indices)
    equal its outputs for the whole of ``X``."""
    for method in model[1]:
        predict = getattr(model[0], method)
        whole = predict(X)
        by_batch = np.empty_like(whole)
        for rows in rows_in_batches:
            by_batch[rows] = predict(X[rows])
        np.testing.assert_allclose(by_batch, whole, rtol=0, atol=1e-12)


@settings(max_examples=5, **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), n_batches=st.integers(2, 12))
@pytest.mark.parametrize("name", BATCH_MODELS)
def test_predictions_do_not_depend_on_the_batch_a_row_is_in(name, seed, n_batches):
    model, X, methods = batch_model(name)
    # Random rows (not contiguous runs) in batches of random sizes, some of one row.
    rng = np.random.default_rng(seed)
    order = rng.permutation(X.shape[0])
    cuts = np.sort(rng.choice(np.arange(1, X.shape[0]), n_batches - 1, replace=False))
    assert_batch_invariant((model, methods), X, np.split(order, cuts))


@pytest.mark.parametrize("name", BATCH_MODELS)
def test_predictions_one_row_at_a_time_equal_the_whole_batchs(name):
    model, X, methods = batch_model(name)
    rows = [[i] for i in range(X.shape[0])]
    assert_batch_invariant((model, methods), X, rows)


@pytest.mark.parametrize(
    "estimator",
    [
        PrunedClassifier(random_state=0),
        PrunedRegressor(random_state=0, granularity="neuron"),
    ],
    ids=["PrunedClassifier", "PrunedRegressor"],
)
def test_scikit_learns_subset_invariance_check_passes(estimator):
    check_methods_subset_invariance(type(estimator).__name__, estimator)


def test_float64_prediction_holds_in_its_own_thread_and_only_for_mlp_module():
    """The switch is a context variable: a thread predicting at the same time,
    and training outside it, keep float32; a user's module built on
    SparseLinear is left as it is."""
    module = MLPModule(n_features=6, n_classes=3, hidden_layer_sizes=(4,)).eval()
    layer = SparseLinear(6, 3)
    x = torch.rand(5, 6)
    inside, outside = threading.Event(), threading.Event()
    dtypes = {}

    def predict_outside():
        inside.wait()
        dtypes["other thread"] = module(x).dtype
        outside.set()

    thread = threading.Thread(target=predict_outside)
    thread.start()
    with float64_prediction():
        inside.set()
        outside.wait()
        dtypes["inside"] = module(x).dtype
        dtypes["sparse layer"] = layer(x).dtype
    thread.join()
    dtypes["after"] = module.train()(x).dtype
    assert dtypes == {
        "other thread": torch.float32,
        "inside": torch.float64,
        "sparse layer": torch.float32,
        "after": torch.float32,
    }
