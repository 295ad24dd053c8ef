"""Shared fixtures: small data and a small, quick net."""

import os
from contextlib import contextmanager

import pytest
import torch
from sklearn.utils import estimator_checks

from skprune._classifier import default_classifier_net
from skprune.datasets import make_text_classification

# One intra-op thread: the tests' tensors are tiny, and on a shared 2-core machine
# torch's spinning worker threads slow every step many times over.
torch.set_num_threads(1)


# A sample of integer weight k is one row in one minibatch, weighted k; k repeated
# rows are k rows spread over the shuffled batches, so the number of batches, each
# batch's mean loss and the order of the optimizer steps all differ: a stochastic
# minibatch learner does not give the same net. (Weight 0 is exactly removal:
# tests/test_weights.py.)
SAMPLE_WEIGHT_EQUIVALENCE = {
    check: "integer sample weights are not repeated rows for minibatch SGD"
    for check in (
        "check_sample_weight_equivalence_on_dense_data",
        "check_sample_weight_equivalence_on_sparse_data",
    )
}


def parametrize_with_checks(estimators, **params):
    """scikit-learn's ``parametrize_with_checks``, with test IDs that name the
    estimator's class instead of its repr: a skorch net's repr shows a set, whose
    order changes from run to run, so a failing check could not be rerun by ID."""
    mark = estimator_checks.parametrize_with_checks(estimators, **params)
    return pytest.mark.parametrize(*mark.args, ids=_check_id)


def _check_id(obj):
    if hasattr(obj, "get_params"):
        return type(obj).__name__
    return estimator_checks._get_check_estimator_ids(obj)  # the check's name


def small_net(**params):
    """The default net made small: 32 hidden units, 3 dense epochs."""
    defaults = {"max_epochs": 3, "module__hidden_layer_sizes": (32,), "lr": 0.01}
    return default_classifier_net().set_params(**{**defaults, **params})


@pytest.fixture(scope="session")
def text_data():
    """A 300 x 2,000 text-like CSR matrix with 3 classes."""
    return make_text_classification(300, 2000, n_classes=3, random_state=0)


@pytest.fixture
def two_torch_threads(monkeypatch):
    """torch on two intra-op threads and no ``OMP_NUM_THREADS``; both put back."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@contextmanager
def environment_kept():
    """Put ``os.environ`` back as it was once the block is done.

    Dask's nanny sets its ``pre-spawn-environ`` (``OMP_NUM_THREADS=1`` among them)
    in the process that starts it, for good: every later fit there would take it
    as its limit.
    """
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        os.environ.update(before)
