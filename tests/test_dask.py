"""Searches on a Dask cluster, and fits that take the threads they are given.

Dask is a test dependency (setup.cfg's ``test`` extra): without it these tests
fail, they are not skipped.
"""

import os

import distributed
import numpy as np
import pytest
import torch
from conftest import environment_kept, small_net
from joblib import parallel_backend
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_validate
from skorch.callbacks import Callback
from threadpoolctl import threadpool_limits

import skprune
from skprune import PrunedClassifier
from skprune._nn._threads import allowed_threads, thread_budget


class RecordsThreads(Callback):
    """Writes torch's intra-op thread count during training into the history."""

    def on_epoch_end(self, net, **kwargs):
        net.history.record("torch_threads", torch.get_num_threads())


def recording_classifier():
    net = small_net(max_epochs=2, callbacks=[("threads", RecordsThreads())])
    return PrunedClassifier(net, prune_ratio=0.8, retrain_epochs=1, random_state=0)


def test_fit_uses_the_thread_count_in_omp_num_threads_and_restores_it(
    text_data, monkeypatch, two_torch_threads
):
    X, y = text_data
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    clf = recording_classifier().fit(X, y)
    assert set(clf.estimator_.history[:, "torch_threads"]) == {1}
    assert torch.get_num_threads() == 2


def test_fit_uses_an_openmp_limit_in_force(text_data, monkeypatch, two_torch_threads):
    X, y = text_data
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with threadpool_limits(1, user_api="openmp"):
        clf = recording_classifier().fit(X, y)
    assert set(clf.estimator_.history[:, "torch_threads"]) == {1}
    assert torch.get_num_threads() == 2


def test_fit_keeps_the_callers_thread_count_when_nothing_limits_it(
    text_data, monkeypatch, two_torch_threads
):
    X, y = text_data
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    expected = allowed_threads()  # 2, or fewer on a machine with one core
    clf = recording_classifier().fit(X, y)
    assert set(clf.estimator_.history[:, "torch_threads"]) == {expected}


def test_thread_budget_restores_the_count_when_the_block_raises(
    monkeypatch, two_torch_threads
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.raises(RuntimeError), thread_budget() as threads:
        assert threads == 1 == torch.get_num_threads()
        raise RuntimeError
    assert torch.get_num_threads() == 2


# On a two-process Dask cluster ------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    with environment_kept():
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


def test_workers_run_this_skprune(dask_client):
    paths = dask_client.run(lambda: __import__("skprune").__file__)
    assert set(paths.values()) == {skprune.__file__}


def test_cross_validate_on_dask_equals_the_single_process_run(dask_client, text_data):
    X, y = text_data
    estimator = recording_classifier()
    local = cross_validate(clone(estimator), X, y, cv=3)
    with parallel_backend("dask"):
        remote = cross_validate(clone(estimator), X, y, cv=3, return_estimator=True)
    np.testing.assert_array_equal(remote["test_score"], local["test_score"])
    assert local["test_score"].min() > 0.5
    # Each fit ran on its worker's single thread.
    for fitted in remote["estimator"]:
        assert set(fitted.estimator_.history[:, "torch_threads"]) == {1}


def test_grid_search_on_dask_equals_the_single_process_run(dask_client, text_data):
    X, y = text_data
    search = GridSearchCV(
        recording_classifier(), {"prune_ratio": [0.5, 0.9]}, cv=2, n_jobs=-1
    )
    local = clone(search).set_params(n_jobs=None).fit(X, y)
    with parallel_backend("dask"):
        remote = clone(search).fit(X, y)
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))


def test_dask_workers_are_given_one_thread_each(dask_client):
    budgets = dask_client.run(allowed_threads)
    assert set(budgets.values()) == {1}
    env = dask_client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert set(env.values()) == {"1"}


def test_pruned_classifier_cv_on_dask_equals_the_single_process_run(
    dask_client, text_data
):
    X, y = text_data
    search = skprune.PrunedClassifierCV(
        small_net(max_epochs=2), prune_ratios=[0.5, 0.9], cv=2, random_state=0
    )
    local = clone(search).fit(X, y)
    with parallel_backend("dask"):
        remote = clone(search).set_params(n_jobs=-1).fit(X, y)
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert remote.prune_ratio_ == local.prune_ratio_
    np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))
