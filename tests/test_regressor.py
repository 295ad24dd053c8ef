"""PrunedRegressor: the pruning machinery of PrunedClassifier, for numeric targets."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import parametrize_with_checks
from sklearn.base import clone
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from skorch import NeuralNetRegressor
from skorch.callbacks import Callback

from skprune import (
    CompressedRegressor,
    MLPModule,
    PrunedRegressor,
    default_regressor_net,
)
from skprune.optim import LazyAdam


def small_regressor_net(**params):
    """The default regressor net made small: 32 hidden units, no dropout."""
    defaults = {
        "max_epochs": 20,
        "module__hidden_layer_sizes": (32,),
        "module__dropout": 0.0,
        "lr": 0.01,
    }
    return default_regressor_net().set_params(**{**defaults, **params})


@pytest.fixture(scope="module")
def sparse_regression():
    """A 600 x 200 CSR matrix whose target depends on 10 of its columns."""
    rng = np.random.default_rng(0)
    noise = sp.random(600, 190, density=0.05, random_state=0, dtype=np.float32)
    X = sp.hstack([rng.random((600, 10), dtype=np.float32), noise], format="csr")
    coef = np.zeros(200)
    coef[:10] = rng.normal(size=10)
    y = np.asarray(X @ coef).ravel() + 0.05 * rng.normal(size=600)
    return train_test_split(X, y, random_state=0)


# The checks fit tiny dense toy sets; the net is small, with enough steps to
# reach their R^2 bar.
CHECKED = [PrunedRegressor(small_regressor_net(max_epochs=40), random_state=0)]


@parametrize_with_checks(CHECKED)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_pruned_regressor_learns_sparse_input_and_holds_out_its_score(
    sparse_regression,
):
    X_train, X_test, y_train, y_test = sparse_regression
    reg = PrunedRegressor(
        small_regressor_net(max_epochs=20), prune_ratio=0.9, random_state=0
    ).fit(X_train, y_train)
    assert reg.sparsity_ == pytest.approx(0.9, abs=1e-3)
    assert reg.n_outputs_ == 1
    assert reg.predict(X_test).shape == (X_test.shape[0],)
    assert reg.score(X_test, y_test) > 0.9
    for name, mask in reg.masks_.items():
        weight = dict(reg.estimator_.module_.named_parameters())[name]
        assert not weight.detach().numpy()[~mask].any()


def test_multi_output_y_gives_one_output_per_target(sparse_regression):
    X_train, X_test, y_train, y_test = sparse_regression
    Y_train = np.c_[y_train, -2 * y_train, y_train + 1]
    reg = PrunedRegressor(small_regressor_net(max_epochs=20), random_state=0)
    reg.fit(X_train, Y_train)
    assert reg.n_outputs_ == 3
    assert reg.estimator_.module_.layers[-1].out_features == 3
    predicted = reg.predict(X_test)
    assert predicted.shape == (X_test.shape[0], 3)
    Y_test = np.c_[y_test, -2 * y_test, y_test + 1]
    assert r2_score(Y_test, predicted) > 0.9


def test_same_random_state_gives_identical_predictions(sparse_regression):
    X_train, X_test, y_train, _ = sparse_regression
    reg = PrunedRegressor(small_regressor_net(max_epochs=3), random_state=3)
    first = clone(reg).fit(X_train, y_train).predict(X_test)
    second = clone(reg).fit(X_train, y_train).predict(X_test)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("granularity", ["weight", "neuron", "feature"])
def test_compress_predicts_what_the_regressor_predicts(sparse_regression, granularity):
    X_train, X_test, y_train, _ = sparse_regression
    Y_train = np.c_[y_train, y_train**2]
    reg = PrunedRegressor(
        small_regressor_net(max_epochs=4),
        prune_ratio=0.7,
        granularity=granularity,
        random_state=0,
    ).fit(X_train, Y_train)
    compressed = reg.compress()
    assert isinstance(compressed, CompressedRegressor)
    assert compressed.n_outputs_ == 2
    np.testing.assert_allclose(
        compressed.predict(X_test), reg.predict(X_test), rtol=1e-4, atol=1e-5
    )
    single = clone(reg).fit(X_train, y_train)
    assert single.compress().predict(X_test).shape == (X_test.shape[0],)


class RecordsMaxWeight(Callback):
    def on_epoch_end(self, net, **kwargs):
        weights = [p.abs().max().item() for p in net.module_.parameters()]
        net.history.record("max_weight", max(weights))


class TwoLayerRegressionModule(torch.nn.Module):
    """A user's own module with ``n_outputs``, plain torch layers."""

    def __init__(self, n_features, n_outputs, hidden=16):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, hidden)
        self.out = torch.nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def test_users_own_net_with_criterion_optimizer_and_callback(sparse_regression):
    X_train, X_test, y_train, y_test = sparse_regression
    net = NeuralNetRegressor(
        TwoLayerRegressionModule,
        module__hidden=24,
        criterion=torch.nn.HuberLoss,
        optimizer=torch.optim.Adam,
        lr=0.01,
        max_epochs=15,
        batch_size=32,
        train_split=None,
        callbacks=[("max_weight", RecordsMaxWeight())],
        verbose=0,
    )
    reg = PrunedRegressor(net, prune_ratio=0.5, random_state=0).fit(X_train, y_train)
    module = reg.estimator_.module_
    assert module.out.out_features == 1
    assert module.hidden.in_features == X_train.shape[1]
    assert reg.sparsity_ == pytest.approx(0.5, abs=1e-3)
    assert len(reg.estimator_.history[:, "max_weight"]) == 15 + 10
    assert reg.score(X_test, y_test) > 0.5
    assert net.callbacks[0][1] is not reg.estimator_.callbacks_[1][1]  # cloned


def test_module_taking_n_classes_gets_the_output_count():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5))
    Y = X[:, :2] @ rng.normal(size=(2, 4))
    net = NeuralNetRegressor(
        MLPModule,
        module__hidden_layer_sizes=(8,),
        criterion=torch.nn.MSELoss,
        optimizer=LazyAdam,
        max_epochs=1,
        train_split=None,
    )
    reg = PrunedRegressor(net, random_state=0).fit(X, Y)
    assert reg.estimator_.module_.n_classes == 4


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array(["a", "b"] * 10), "dtype='numeric' is not compatible"),
        (np.r_[np.nan, np.ones(19)], "Input y contains NaN"),
        (np.r_[np.inf, np.ones(19)], "Input y contains infinity"),
        (np.r_[1e300, np.ones(19)], "Input y contains infinity"),
    ],
)
def test_non_numeric_or_non_finite_y_gives_scikit_learns_error(y, message):
    X = np.random.default_rng(0).normal(size=(20, 3))
    reg = PrunedRegressor(small_regressor_net(max_epochs=1))
    with pytest.raises(ValueError, match=message):
        reg.fit(X, y)
    assert not hasattr(reg, "estimator_")


def test_a_classifier_net_is_refused():
    from skorch import NeuralNetClassifier

    reg = PrunedRegressor(NeuralNetClassifier(MLPModule))
    with pytest.raises(TypeError, match="NeuralNetRegressor"):
        reg.fit(np.ones((4, 2)), np.arange(4.0))
