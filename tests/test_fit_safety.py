"""What fit refuses, warns about and leaves alone, with the default net and users' own.

Each behaviour is tried with a user's own skorch net: their module (sizes given by
their own parameter names, not ``n_features``/``n_classes``), criterion, optimizer
and callbacks.
"""

import warnings

import numpy as np
import pytest
import torch
from conftest import small_net
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EarlyStopping, EpochScoring

import skprune
from skprune import PrunedClassifier
from skprune.datasets import make_text_classification
from skprune.exceptions import DenseGradientWarning
from skprune.optim import LazyAdam

N_FEATURES = 1000
EPOCHS_SEEN = []  # 1-based epochs the Recorder callbacks saw begin, across clones


@pytest.fixture(scope="module")
def data():
    """Train and held-out splits of a 3-class text-like CSR matrix."""
    X, y = make_text_classification(
        300, N_FEATURES, n_classes=3, n_topic_words=80, random_state=0
    )
    return X[:200], y[:200], X[200:], y[200:]


@pytest.fixture(autouse=True)
def no_epochs_seen():
    EPOCHS_SEEN.clear()


class Recorder(Callback):
    """A user's callback: notes every epoch that begins."""

    def on_epoch_begin(self, net, **kwargs):
        EPOCHS_SEEN.append(len(net.history))


class InterruptAt(Callback):
    """Presses Ctrl-C at the end of the given (1-based) epoch."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


class Logits(torch.nn.Module):
    """A user's module: its own size parameters, a dense first layer, logits out."""

    def __init__(self, width=N_FEATURES, hidden=16, outputs=3):
        super().__init__()
        self.hidden = torch.nn.Linear(width, hidden)
        self.out = torch.nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


class Probabilities(Logits):
    """The same module ending in a softmax, for skorch's default NLLLoss."""

    def forward(self, x):
        return torch.softmax(super().forward(x), dim=1)


class SmoothedCrossEntropy(torch.nn.CrossEntropyLoss):
    """A user's own criterion on logits."""

    def __init__(self):
        super().__init__(label_smoothing=0.1)


def user_net(module=Logits, **params):
    """A user's skorch net: own module, criterion, optimizer and callbacks."""
    defaults = {
        "criterion": SmoothedCrossEntropy,
        "optimizer": torch.optim.SGD,
        "optimizer__momentum": 0.9,
        "lr": 0.5,
        "max_epochs": 3,
        "batch_size": 32,
        "iterator_train__shuffle": True,
        "callbacks": [Recorder(), EpochScoring("accuracy", on_train=True)],
        "train_split": None,
        "verbose": 0,
    }
    return NeuralNetClassifier(module, **{**defaults, **params})


def pruned(estimator, **params):
    return PrunedClassifier(
        estimator, **{"retrain_epochs": 2, "random_state": 0, **params}
    )


def assert_unfitted(clf):
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)


# C1: a criterion that does not suit the module's outputs -------------------------


def new_users_first_net(**params):
    """skorch's default criterion (NLLLoss) around MLPModule, which returns logits:
    the net a new user writes first, which would train on NaN losses."""
    return NeuralNetClassifier(
        skprune.MLPModule,
        max_epochs=4,
        train_split=None,
        callbacks=[Recorder()],
        verbose=0,
        **params,
    )


@pytest.mark.parametrize(
    "net",
    [
        new_users_first_net,
        lambda: new_users_first_net(criterion=torch.nn.NLLLoss),
        lambda: new_users_first_net(criterion=torch.nn.NLLLoss()),
        lambda: user_net(criterion=torch.nn.NLLLoss),
    ],
    ids=["skorch default", "class", "instance", "user module"],
)
def test_logits_under_nll_loss_are_refused_before_training(data, net):
    X, y, _, _ = data
    clf = PrunedClassifier(net())
    with pytest.raises(ValueError, match="criterion=torch.nn.CrossEntropyLoss"):
        clf.fit(X, y)
    assert EPOCHS_SEEN == []
    assert_unfitted(clf)


# 5 dense epochs: after 3, the held-out score straddles 0.8 from seed to seed.
def test_users_probability_module_under_nll_loss_trains_and_generalises(data):
    X, y, X_test, y_test = data
    net = user_net(Probabilities, criterion=torch.nn.NLLLoss, max_epochs=5)
    clf = pruned(net, prune_ratio=0.8).fit(X, y)
    assert EPOCHS_SEEN == [1, 2, 3, 4, 5, 6, 7]
    assert clf.sparsity_ == pytest.approx(0.8, abs=1 / clf.n_params_)
    assert clf.score(X_test, y_test) > 0.8


def test_users_own_criterion_on_logits_trains_and_generalises(data):
    X, y, X_test, y_test = data
    clf = pruned(user_net(max_epochs=5), prune_ratio=0.8).fit(X, y)
    assert isinstance(clf.estimator_.criterion_, SmoothedCrossEntropy)
    assert clf.score(X_test, y_test) > 0.8


# C3: EarlyStopping would end training before the schedule -----------------------


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named"])
def test_early_stopping_is_refused_before_training(data, named):
    X, y, _, _ = data
    stopping = EarlyStopping(monitor="train_loss", patience=1)
    callbacks = [Recorder(), ("stop", stopping) if named else stopping]
    for net in (small_net(callbacks=callbacks), user_net(callbacks=callbacks)):
        clf = pruned(net)
        with pytest.raises(ValueError, match="EarlyStopping"):
            clf.fit(X, y)
        assert EPOCHS_SEEN == []
        assert_unfitted(clf)


# C4: Ctrl-C propagates; nothing half-done looks fitted ---------------------------


@pytest.mark.parametrize("epoch", [1, 4], ids=["dense training", "retraining"])
def test_keyboard_interrupt_propagates_and_leaves_the_estimator_unfitted(data, epoch):
    X, y, _, _ = data
    for net in (small_net(), user_net()):
        callbacks = [*(net.callbacks or []), InterruptAt(epoch)]
        clf = pruned(net.set_params(callbacks=callbacks))
        with pytest.raises(KeyboardInterrupt):
            clf.fit(X, y)
        assert_unfitted(clf)
        assert not hasattr(clf, "classes_")
        assert not hasattr(clf, "n_features_in_")


def test_interrupted_refit_keeps_the_previous_fit_whole(data):
    X, y, X_test, _ = data
    clf = pruned(user_net(), prune_ratio=0.5).fit(X, y)
    before = clf.predict_proba(X_test)
    fitted = {k: v for k, v in vars(clf).items() if k.endswith("_")}
    # A refit on other labels and fewer features, interrupted while retraining.
    clf.set_params(
        prune_ratio=0.9,
        estimator__module__width=N_FEATURES - 100,
        estimator__callbacks=[InterruptAt(4)],
    )
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X[:, :-100], np.where(y == 0, "a", "b"))
    assert [k for k in vars(clf) if k.endswith("_")] == list(fitted)
    assert all(getattr(clf, k) is v for k, v in fitted.items())
    assert clf.get_params()["prune_ratio"] == 0.9
    np.testing.assert_array_equal(clf.predict_proba(X_test), before)


# C5: the module's own error comes first --------------------------------------------


class ForwardError(Exception):
    pass


class Broken(torch.nn.Module):
    """No prunable layer, and a forward that raises: its error must come first."""

    def __init__(self, width=N_FEATURES):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(width, 3))

    def forward(self, x):
        raise ForwardError(f"cannot handle a batch of shape {tuple(x.shape)}")


def test_module_error_propagates_unchanged_before_any_pruning_check(data):
    X, y, _, _ = data
    clf = pruned(user_net(Broken))
    with pytest.raises(ForwardError) as raised:
        clf.fit(X, y)
    assert raised.type is ForwardError
    assert str(raised.value) == f"cannot handle a batch of shape (8, {N_FEATURES})"
    assert EPOCHS_SEEN == []
    assert_unfitted(clf)


# C6: the slow path warns once; sparse gradients need an optimizer that takes them -


def wide_data(n_features=4_000):
    """Sparse rows wide enough for a 256-unit first layer of >= 1,000,000 weights."""
    return make_text_classification(64, n_features, n_classes=2, random_state=1)


def dense_gradient_warnings(clf, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    return [w for w in caught if issubclass(w.category, DenseGradientWarning)]


def quick(**params):
    defaults = {"max_epochs": 1, "module__hidden_layer_sizes": (256,)}
    return PrunedClassifier(small_net(**{**defaults, **params}), retrain_epochs=1)


@pytest.mark.parametrize(
    "params",
    [
        {"module__sparse_grad": False},
        {"module__sparse_grad": False, "optimizer": torch.optim.Adam},
    ],
    ids=["LazyAdam", "Adam"],
)
def test_dense_gradient_of_a_wide_first_layer_warns_once_per_fit(params):
    X, y = wide_data()
    clf = quick(**params)
    for _ in range(2):
        caught = dense_gradient_warnings(clf, X, y)
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "module__sparse_grad=True" in message
        assert "LazyAdam" in message
        assert "1,024,000 weights" in message


def test_users_dense_module_on_wide_sparse_input_warns_once():
    X, y = wide_data()
    net = user_net(
        module__width=X.shape[1], module__hidden=256, module__outputs=2, max_epochs=1
    )
    caught = dense_gradient_warnings(pruned(net, retrain_epochs=1), X, y)
    assert len(caught) == 1
    assert "'hidden'" in str(caught[0].message)


@pytest.mark.parametrize(
    "case",
    ["sparse gradient", "dense input", "below a million weights"],
)
def test_no_dense_gradient_warning_where_the_fast_path_is_taken_or_moot(case):
    X, y = wide_data()
    if case == "sparse gradient":
        clf = quick()  # the default net's settings: sparse_grad=True, LazyAdam
    elif case == "dense input":
        X, clf = X.toarray(), quick(module__sparse_grad=False)
    else:
        X, y = wide_data(3_900)  # 3,900 x 256 = 998,400 weights
        clf = quick(module__sparse_grad=False)
    assert dense_gradient_warnings(clf, X, y) == []


@pytest.mark.parametrize(
    "optimizer",
    [
        torch.optim.Adam,
        torch.optim.AdamW,
        torch.optim.RMSprop,
        torch.optim.Adamax,
        torch.optim.NAdam,
        torch.optim.SparseAdam,
    ],
    ids=lambda cls: cls.__name__,
)
def test_sparse_gradients_with_an_optimizer_that_rejects_them_are_refused(
    data, optimizer
):
    X, y, _, _ = data
    clf = pruned(small_net(optimizer=optimizer, callbacks=[Recorder()]))
    with pytest.raises(ValueError, match=rf"torch\.optim\.{optimizer.__name__} "):
        clf.fit(X, y)
    assert EPOCHS_SEEN == []
    assert_unfitted(clf)


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adagrad])
def test_weight_decay_with_sparse_gradients_is_refused_for_sgd_and_adagrad(
    data, optimizer
):
    X, y, _, _ = data
    clf = pruned(small_net(optimizer=optimizer, optimizer__weight_decay=1e-4))
    with pytest.raises(ValueError, match="optimizer__weight_decay"):
        clf.fit(X, y)


# Adagrad builds its sparse update without torch's optional invariant checks.
@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")
@pytest.mark.parametrize(
    "params",
    [
        {"optimizer": LazyAdam, "optimizer__weight_decay": 1e-4},
        {"optimizer": torch.optim.SGD, "lr": 0.5, "batch_size": 8},
        {"optimizer": torch.optim.Adagrad, "lr": 1.0},
    ],
    ids=["LazyAdam", "SGD", "Adagrad"],
)
def test_optimizers_that_take_sparse_gradients_train_the_fast_path(data, params):
    X, y, X_test, y_test = data
    clf = pruned(small_net(**params), prune_ratio=0.8).fit(X, y)
    assert clf.estimator_.module_.layers[0].weight.grad.is_sparse
    assert clf.score(X_test, y_test) > 0.8


class DensifyingAdam(torch.optim.Adam):
    """A user's optimizer, not torch's: skprune lets it decide what it accepts."""

    def step(self, closure=None):
        loss = None
        if closure is not None:  # skorch computes the gradients in the closure
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None and param.grad.is_sparse:
                    param.grad = param.grad.to_dense()
        super().step()
        return loss


def test_users_own_optimizer_is_let_through_with_sparse_gradients(data):
    X, y, X_test, y_test = data
    clf = pruned(small_net(optimizer=DensifyingAdam), prune_ratio=0.8).fit(X, y)
    assert isinstance(clf.estimator_.optimizer_, DensifyingAdam)
    assert clf.score(X_test, y_test) > 0.8


# C7: the caller's random state ------------------------------------------------------


@pytest.mark.parametrize("net", [small_net, user_net], ids=["default", "user"])
def test_fit_leaves_the_callers_cpu_random_state_unchanged(data, net):
    X, y, _, _ = data
    state = torch.get_rng_state()
    pruned(net()).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)


def test_cpu_fit_never_seeds_cuda(data, monkeypatch):
    # torch.manual_seed reseeds every CUDA device (lazily, even before CUDA
    # starts), which no fork of the CPU state undoes.
    seeded = []
    for name in ("manual_seed", "manual_seed_all", "seed", "seed_all"):
        monkeypatch.setattr(torch.cuda, name, lambda *a, name=name: seeded.append(name))
    X, y, _, _ = data
    pruned(small_net()).fit(X, y)
    assert seeded == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_fit_leaves_the_callers_cuda_random_state_unchanged(data, device):
    X, y, _, _ = data
    torch.cuda.init()
    cpu, cuda = torch.get_rng_state(), torch.cuda.get_rng_state()
    pruned(small_net(device=device)).fit(X, y)
    assert torch.equal(torch.get_rng_state(), cpu)
    assert torch.equal(torch.cuda.get_rng_state(), cuda)
