"""The measurements benchmarks/deploy.py and onnx_export.py report for every model."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skprune import PrunedClassifier
from skprune.compress import CompactMLP
from skprune.granularity import GRANULARITIES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def serving():
    spec = importlib.util.spec_from_file_location(
        "_serving", ROOT / "benchmarks" / "_serving.py"
    )
    module = importlib.util.module_from_spec(spec)
    before = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = before
    return module


BIG_GLOBAL = np.ones(10_000)


class Holder:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def test_a_buffer_seen_twice_or_through_views_counts_once(serving):
    array = np.ones((100, 10))
    model = Holder(a=array, again=array, view=array[:50], listed=[array.T])
    assert serving.resident_bytes(model) == array.nbytes


def test_arrays_held_by_closures_and_partials_count(serving):
    hidden = np.ones(1000)
    other = np.ones(500)

    def predict(x):
        return x @ hidden

    model = Holder(predict=predict, product=functools.partial(np.dot, other))
    assert serving.resident_bytes(model) == hidden.nbytes + other.nbytes


def test_a_functions_globals_are_not_the_models_memory(serving):
    def predict(x):
        return x + BIG_GLOBAL

    assert serving.resident_bytes(Holder(predict=predict)) == 0


def test_torch_views_share_their_storage(serving):
    weight = torch.ones(100, 10)
    model = Holder(weight=weight, row=weight[0], module=torch.nn.Linear(10, 3))
    expected = weight.untyped_storage().nbytes() + (30 + 3) * 4
    assert serving.resident_bytes(model) == expected


def test_a_compact_network_counts_its_multiplication_operands(serving):
    # A CSR weight multiplied as a dense operand (half its weights kept: the
    # row-sparse layout, or dense without numba) holds both; nbytes counts one.
    weight = sp.random(40, 8, density=0.5, format="csr", random_state=0)
    network = CompactMLP(40, np.arange(40), [weight], [np.zeros(8)])
    assert network.layouts[0] in ("row-sparse", "dense")
    dense_operand = 40 * 8 * 4
    assert serving.resident_bytes(network) >= network.nbytes + dense_operand


def test_model_specs_follow_the_installed_skprune(serving):
    granularities, dtypes = serving.model_specs()
    assert sorted(granularities) == sorted(GRANULARITIES)
    takes_dtype = "dtype" in inspect.signature(PrunedClassifier.compress).parameters
    assert dtypes == (["float32", "int8"] if takes_dtype else ["float32"])
