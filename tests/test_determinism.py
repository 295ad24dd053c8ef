"""Results do not depend on how fits are run: in threads, processes, on Dask.

Each fit draws from generators of its own (skprune._nn._random), so fits that run at
once, with the same intra-op thread count, equal the same fits run one after
another, bit for bit. The fits here record the count they trained with, to pin
that it was the same: one thread (the conftest sets it; joblib's process workers
and the Dask workers are given one), and in one test a fit limited to one thread
beside one on two, each keeping its own count.
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import distributed
import numpy as np
import pytest
import torch
from conftest import environment_kept, small_net
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from threadpoolctl import threadpool_limits
from torch import nn

import skprune
from skprune import (
    MLPModule,
    PrunedClassifier,
    PrunedClassifierCV,
    PrunedRegressor,
    default_regressor_net,
    fit_generator,
)
from skprune._nn._random import fit_random_state
from skprune.data import BatchLoader, SparseDataset
from skprune.datasets import make_text_classification

WORKTREE = str(Path(skprune.__file__).resolve().parents[1])


class RecordsThreads(Callback):
    """Writes torch's intra-op thread count during training into the history."""

    def on_epoch_end(self, net, **kwargs):
        net.history.record("torch_threads", torch.get_num_threads())


@pytest.fixture(scope="module")
def data():
    """A 300 x 400 CSR matrix, 3 classes, and a numeric target made from it."""
    X, y = make_text_classification(
        300, 400, n_classes=3, n_topic_words=40, random_state=0
    )
    coef = np.random.default_rng(0).normal(size=X.shape[1])
    return X, y, np.asarray(X @ coef).ravel()


def classifier(seed, **params):
    """The default net made small, dropout 0.5 and shuffling kept on."""
    net = small_net(max_epochs=2, callbacks=[("threads", RecordsThreads())])
    return PrunedClassifier(
        net, prune_ratio=0.8, retrain_epochs=1, random_state=seed, **params
    )


def regressor(seed):
    net = default_regressor_net().set_params(
        max_epochs=2,
        module__hidden_layer_sizes=(32,),
        callbacks=[("threads", RecordsThreads())],
    )
    assert net.module__dropout > 0  # dropout draws are part of what is pinned
    return PrunedRegressor(net, prune_ratio=0.8, retrain_epochs=1, random_state=seed)


def fit(estimator, X, y):
    return clone(estimator).fit(X, y)


def in_threads_at_once(jobs):
    """Run the ``(function, args)`` jobs in threads that start together."""
    results = [None] * len(jobs)
    errors = []
    barrier = threading.Barrier(len(jobs))

    def run(k, function, args):
        try:
            barrier.wait()
            results[k] = function(*args)
        except BaseException as error:  # re-raised in the calling thread
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(k, function, args))
        for k, (function, args) in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def assert_same_fit(first, second, X, threads=1):
    """Weights, masks, thread counts and predictions equal bit for bit."""
    a = first.estimator_.module_.state_dict()
    b = second.estimator_.module_.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert first.masks_.keys() == second.masks_.keys()
    for name in first.masks_:
        assert np.array_equal(first.masks_[name], second.masks_[name]), name
    counts = first.estimator_.history[:, "torch_threads"]
    assert counts == second.estimator_.history[:, "torch_threads"]
    assert set(counts) == {threads}
    method = "predict_proba" if hasattr(first, "predict_proba") else "predict"
    assert np.array_equal(getattr(first, method)(X), getattr(second, method)(X))


def assert_different_fits(first, second):
    a = first.estimator_.module_.state_dict()
    b = second.estimator_.module_.state_dict()
    assert any(not torch.equal(a[name], b[name]) for name in a)


# In threads -------------------------------------------------------------------


def test_classifier_fits_at_once_in_threads_equal_the_same_fits_in_sequence(data):
    X, y, _ = data
    X = X.tocsc()  # another sparse format, converted inside each fit
    estimators = [classifier(0), classifier(1)]
    sequential = [fit(estimator, X, y) for estimator in estimators]
    threaded = in_threads_at_once([(fit, (e, X, y)) for e in estimators])
    assert_different_fits(*sequential)
    for alone, together in zip(sequential, threaded, strict=True):
        assert_same_fit(alone, together, X)


def test_regressor_fits_at_once_in_threads_equal_the_same_fits_in_sequence(data):
    X, _, target = data
    estimators = [regressor(0), regressor(1)]
    sequential = [fit(estimator, X, target) for estimator in estimators]
    threaded = in_threads_at_once([(fit, (e, X, target)) for e in estimators])
    assert_different_fits(*sequential)
    for alone, together in zip(sequential, threaded, strict=True):
        assert_same_fit(alone, together, X)


def test_random_importance_fits_at_once_in_threads_equal_the_same_fits_in_sequence(
    data,
):
    X, y, _ = data
    estimators = [
        classifier(0, importance="random"),
        classifier(1, importance="random"),
    ]
    sequential = [fit(estimator, X, y) for estimator in estimators]
    threaded = in_threads_at_once([(fit, (e, X, y)) for e in estimators])
    assert not np.array_equal(
        sequential[0].masks_["layers.0.weight"], sequential[1].masks_["layers.0.weight"]
    )
    for alone, together in zip(sequential, threaded, strict=True):
        assert_same_fit(alone, together, X)


def test_a_thread_drawing_from_torchs_global_generator_does_not_change_a_fit(data):
    X, y, _ = data
    alone = fit(classifier(0), X, y)
    done = threading.Event()

    def draw_until_done():
        while not done.is_set():
            torch.rand(64)
            torch.randperm(300)
        return True

    def fit_then_stop():
        try:
            return fit(classifier(0), X, y)
        finally:
            done.set()

    disturbed, _ = in_threads_at_once([(fit_then_stop, ()), (draw_until_done, ())])
    assert_same_fit(alone, disturbed, X)


#: Set when the fit holding one thread is training, and when the other one is.
ONE_THREAD_TRAINING, TWO_THREADS_TRAINING = threading.Event(), threading.Event()


class Signals(Callback):
    """Sets ``ready`` at the first epoch, then waits (up to a minute) for ``other``."""

    def __init__(self, ready="", other=""):
        self.ready, self.other = ready, other

    def on_epoch_begin(self, net, **kwargs):
        globals()[self.ready].set()
        if self.other:
            globals()[self.other].wait(timeout=60)


def test_a_fit_limited_to_one_thread_does_not_limit_a_fit_starting_meanwhile(
    data, two_torch_threads
):
    X, y, _ = data
    ONE_THREAD_TRAINING.clear()
    TWO_THREADS_TRAINING.clear()

    def limited(signals=()):
        estimator = classifier(0)
        estimator.estimator.callbacks.extend(signals)
        with threadpool_limits(1, user_api="openmp"):
            return fit(estimator, X, y)

    def unlimited(signals=(), wait=False):
        if wait:  # first touch torch once the limited fit trains
            ONE_THREAD_TRAINING.wait(timeout=60)
        estimator = classifier(1)
        estimator.estimator.callbacks.extend(signals)
        return fit(estimator, X, y)

    alone = [in_threads_at_once([(job, ())])[0] for job in (limited, unlimited)]
    together = in_threads_at_once(
        [
            (
                limited,
                ([("signal", Signals("ONE_THREAD_TRAINING", "TWO_THREADS_TRAINING"))],),
            ),
            (unlimited, ([("signal", Signals("TWO_THREADS_TRAINING"))], True)),
        ]
    )
    assert_same_fit(alone[0], together[0], X, threads=1)
    assert_same_fit(alone[1], together[1], X, threads=2)


#: A fresh process: torch on two threads, a first fit under OMP_NUM_THREADS=1 (it
#: loads numba's OpenMP layer, whose own OpenMP runtime takes that 1 as its count
#: for every thread from then on), then a fit in a new thread once the 1 is gone.
FIRST_FIT_UNDER_A_PASSING_LIMIT = """
import json, os, threading
import torch
from threadpoolctl import threadpool_info
from test_determinism import classifier, fit
from skprune._nn._kernels import HAVE_NUMBA
from skprune.datasets import make_text_classification

X, y = make_text_classification(
    300, 400, n_classes=3, n_topic_words=40, random_state=0
)
torch.set_num_threads(2)
os.environ["OMP_NUM_THREADS"] = "1"
limited = fit(classifier(0), X, y).estimator_.history[:, "torch_threads"]
del os.environ["OMP_NUM_THREADS"]
report = {"limited": limited, "caller": torch.get_num_threads()}
if HAVE_NUMBA:
    import numba
    try:
        report["numba_layer"] = numba.threading_layer()
    except ValueError:  # one thread: the kernels ran serially, no layer started
        report["numba_layer"] = None

def later():
    report["new_thread_defaults"] = [
        i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"
    ]
    report["later"] = fit(classifier(1), X, y).estimator_.history[:, "torch_threads"]

thread = threading.Thread(target=later)
thread.start()
thread.join()
print(json.dumps(report))
"""


def test_a_limit_in_force_when_an_openmp_runtime_loaded_does_not_limit_later_fits():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join([WORKTREE, str(Path(__file__).parent)])
    result = subprocess.run(
        [sys.executable, "-c", FIRST_FIT_UNDER_A_PASSING_LIMIT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert set(report["limited"]) == {1}
    assert report["caller"] == 2
    if report.get("numba_layer") == "omp":  # the trap is set: a runtime says 1
        assert 1 in report["new_thread_defaults"]
    assert set(report["later"]) == {2}


def test_cv_with_two_threads_equals_one_job(data):
    X, y, _ = data
    search = PrunedClassifierCV(
        small_net(max_epochs=2), prune_ratios=[0.5, 0.9], cv=3, random_state=0
    )
    one = clone(search).set_params(n_jobs=1).fit(X, y)
    with parallel_config(backend="threading"):
        two = clone(search).set_params(n_jobs=2).fit(X, y)
    for key in ("split0_test_score", "split1_test_score", "split2_test_score"):
        assert np.array_equal(one.cv_results_[key], two.cv_results_[key]), key
    assert np.array_equal(
        one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"]
    )
    assert one.prune_ratio_ == two.prune_ratio_
    assert np.array_equal(one.predict_proba(X), two.predict_proba(X))


# In processes -------------------------------------------------------------------


def fit_remotely(estimator, X, y):
    """A fit in a worker process, with the skprune and process it ran in."""
    return skprune.__file__, os.getpid(), fit(estimator, X, y)


def test_fits_in_loky_processes_equal_the_same_fits_in_sequence(data, monkeypatch):
    X, y, _ = data
    monkeypatch.setenv("PYTHONPATH", WORKTREE)  # the workers import this skprune
    estimators = [classifier(0), classifier(1)]
    sequential = [fit(estimator, X, y) for estimator in estimators]
    with parallel_config(backend="loky", inner_max_num_threads=1):
        remote = Parallel(n_jobs=2)(delayed(fit_remotely)(e, X, y) for e in estimators)
    for alone, (path, pid, together) in zip(sequential, remote, strict=True):
        assert (path, pid != os.getpid()) == (skprune.__file__, True)
        assert_same_fit(alone, together, X)


@pytest.fixture(scope="module")
def dask_client():
    with environment_kept():
        os.environ["PYTHONPATH"] = WORKTREE  # the workers import this skprune
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
        )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_fits_on_dask_workers_equal_the_same_fits_in_sequence(data, dask_client):
    X, y, _ = data
    estimators = [classifier(0), classifier(1)]
    sequential = [fit(estimator, X, y) for estimator in estimators]
    futures = [
        dask_client.submit(fit_remotely, e, X, y, pure=False) for e in estimators
    ]
    remote = dask_client.gather(futures)
    for alone, (path, pid, together) in zip(sequential, remote, strict=True):
        assert (path, pid != os.getpid()) == (skprune.__file__, True)
        assert_same_fit(alone, together, X)


# Seeds ------------------------------------------------------------------------


def test_random_state_none_gives_a_different_fit_each_time(data):
    X, y, _ = data
    first, second = fit(classifier(None), X, y), fit(classifier(None), X, y)
    assert_different_fits(first, second)


def test_the_same_int_random_state_gives_the_same_fit(data):
    X, y, _ = data
    assert_same_fit(fit(classifier(3), X, y), fit(classifier(3), X, y), X)


def test_a_fit_leaves_torchs_global_random_state_as_it_was(data):
    X, y, _ = data
    state = torch.get_rng_state()
    fit(classifier(0), X, y)
    assert torch.equal(torch.get_rng_state(), state)


def test_fits_at_once_in_threads_leave_torchs_global_random_state_as_it_was(data):
    X, y, _ = data
    state = torch.get_rng_state()
    in_threads_at_once([(fit, (classifier(k), X, y)) for k in range(3)])
    assert torch.equal(torch.get_rng_state(), state)


class GlobalDrawingModule(nn.Module):
    """A user module drawing from the global generator (nn.Linear, nn.Dropout)."""

    def __init__(self, n_features=400, n_classes=3):
        super().__init__()
        self.hidden = nn.Linear(n_features, 16)
        self.dropout = nn.Dropout(0.5)
        self.output = nn.Linear(16, n_classes)

    def forward(self, x):
        return self.output(self.dropout(torch.relu(self.hidden(x))))


def user_net(module):
    """A user's skorch net around their own module."""
    return NeuralNetClassifier(
        module,
        criterion=nn.CrossEntropyLoss,
        max_epochs=2,
        lr=0.05,
        iterator_train__shuffle=True,
        train_split=None,
        verbose=0,
        callbacks=[("threads", RecordsThreads())],
    )


def test_a_module_drawing_from_the_global_generator_is_reproducible_in_sequence(data):
    X, y, _ = data
    net = user_net(GlobalDrawingModule)
    estimator = PrunedClassifier(net, prune_ratio=0.5, retrain_epochs=1, random_state=0)
    state = torch.get_rng_state()
    assert_same_fit(fit(estimator, X, y), fit(estimator, X, y), X)
    assert torch.equal(torch.get_rng_state(), state)


class FitGeneratorModule(GlobalDrawingModule):
    """A user module that draws only from skprune.fit_generator()."""

    def __init__(self, n_features=400, n_classes=3):
        super().__init__(n_features, n_classes)
        for layer in (self.hidden, self.output):  # all that nn.Linear drew
            nn.init.normal_(layer.weight, std=0.1, generator=fit_generator())
            nn.init.normal_(layer.bias, std=0.1, generator=fit_generator())

    def forward(self, x):
        hidden = torch.relu(self.hidden(x))
        if self.training:  # its own dropout, from the fit's generator
            keep = torch.full_like(hidden, 0.5)
            hidden = hidden * torch.bernoulli(keep, generator=fit_generator()) * 2
        return self.output(hidden)


def test_a_module_drawing_from_fit_generator_fits_at_once_in_threads_as_in_sequence(
    data,
):
    X, y, _ = data
    estimators = [
        PrunedClassifier(
            user_net(FitGeneratorModule),
            prune_ratio=0.5,
            retrain_epochs=1,
            random_state=seed,
        )
        for seed in (0, 1)
    ]
    sequential = [fit(estimator, X, y) for estimator in estimators]
    threaded = in_threads_at_once([(fit, (e, X, y)) for e in estimators])
    assert_different_fits(*sequential)
    for alone, together in zip(sequential, threaded, strict=True):
        assert_same_fit(alone, together, X)


# What the fit's generators feed ---------------------------------------------------


def weights_of(module):
    return [p.detach().clone() for p in module.parameters()]


def test_mlp_built_in_a_fit_draws_only_from_the_fits_generator():
    with fit_random_state(7):
        state = torch.get_rng_state()
        first = weights_of(MLPModule(50, 3, hidden_layer_sizes=(8, 4)))
        assert torch.equal(torch.get_rng_state(), state)  # nothing global drawn
    with fit_random_state(7):
        torch.rand(10)  # a draw from the global generator changes nothing
        second = weights_of(MLPModule(50, 3, hidden_layer_sizes=(8, 4)))
    with fit_random_state(8):
        other = weights_of(MLPModule(50, 3, hidden_layer_sizes=(8, 4)))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_mlp_built_outside_a_fit_draws_from_torchs_global_generator_like_torch():
    assert fit_generator() is None
    torch.manual_seed(5)
    module = MLPModule(50, 3, hidden_layer_sizes=(8,))
    after = torch.rand(3)
    torch.manual_seed(5)
    first = nn.Linear(50, 8)  # SparseLinear draws the same: uniform(+-1/sqrt(50))
    second = nn.Linear(8, 3)
    expected_after = torch.rand(3)
    assert torch.equal(after, expected_after)  # as many draws as torch's layers
    assert module.layers[0].weight.numel() == first.weight.numel()
    assert torch.equal(module.layers[1].weight, second.weight)
    assert torch.equal(module.layers[1].bias, second.bias)


def test_mlp_dropout_is_a_torch_dropout_whose_p_users_read():
    module = MLPModule(10, 2, hidden_layer_sizes=(4,), dropout=0.25)
    assert isinstance(module.dropout, nn.Dropout)
    assert module.dropout.p == 0.25


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_fit_dropout_keeps_1_minus_p_of_the_values_scaled_by_1_over_1_minus_p(p):
    dropout = MLPModule(10, 2, hidden_layer_sizes=(4,), dropout=p).dropout.train()
    x = torch.full((1000, 1000), 3.0, requires_grad=True)
    with fit_random_state(0):
        out = dropout(x)
    kept = out != 0
    (scaled,) = out[kept].unique()  # every kept value scaled by one factor
    assert scaled.item() == pytest.approx(3.0 / (1 - p), rel=1e-6)
    # 10^6 Bernoulli draws: the kept fraction lies within 6 standard deviations.
    sd = np.sqrt(p * (1 - p) / kept.numel())
    assert abs(kept.double().mean().item() - (1 - p)) < 6 * sd
    out.sum().backward()
    assert torch.equal(x.grad * 3.0, torch.where(kept, scaled, 0.0))


def test_fit_dropout_draws_its_mask_from_the_fits_generator_and_only_in_training():
    dropout = MLPModule(10, 2, hidden_layer_sizes=(4,), dropout=0.5).dropout
    x = torch.ones(64, 32)
    with fit_random_state(1):
        first = dropout.train()(x)
        assert torch.equal(dropout.eval()(x), x)
    with fit_random_state(1):
        torch.rand(100)  # the global generator is not where the mask comes from
        second = dropout.train()(x)
    with fit_random_state(2):
        other = dropout.train()(x)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert not torch.equal(first, x)


def test_fit_dropout_outside_a_fit_is_torchs_dropout():
    dropout = MLPModule(10, 2, hidden_layer_sizes=(4,), dropout=0.3).dropout.train()
    x = torch.randn(50, 20)
    torch.manual_seed(4)
    expected = nn.functional.dropout(x, 0.3, training=True)
    torch.manual_seed(4)
    assert torch.equal(dropout(x), expected)
    assert torch.equal(dropout.eval()(x), x)


def test_batch_loader_shuffles_with_the_fits_generator(data):
    X, y, _ = data
    loader = BatchLoader(SparseDataset(X, y), batch_size=300, shuffle=True)

    def order(seed, global_draws=0):
        with fit_random_state(seed):
            torch.rand(global_draws)  # the global generator plays no part
            ((_, yb),) = list(loader)
        return yb.numpy()

    assert np.array_equal(order(0), order(0, global_draws=10))
    assert not np.array_equal(order(0), order(1))
    assert sorted(order(0).tolist()) == sorted(y.tolist())


def test_fit_generator_is_none_in_a_thread_started_during_a_fit():
    seen = []
    with fit_random_state(0):
        assert isinstance(fit_generator(), torch.Generator)
        thread = threading.Thread(target=lambda: seen.append(fit_generator()))
        thread.start()
        thread.join()
    assert seen == [None]
    assert fit_generator() is None
