"""int8 compressed models: per-row scales, kernels reading int8, files keeping it."""

import dataclasses
import pickle
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import small_net

import skprune
from skprune import PrunedClassifier, PrunedRegressor
from skprune._nn import _kernels
from skprune._regressor import default_regressor_net
from skprune.compress import CompactMLP
from skprune.compress._compact import quantize_rows
from skprune.persistence import ModelFileError


@pytest.fixture(scope="module")
def fitted(text_data):
    X, y = text_data
    net = small_net(max_epochs=3, module__hidden_layer_sizes=(48, 16))
    return PrunedClassifier(net, prune_ratio=0.5, retrain_epochs=1, random_state=0).fit(
        X, y
    )


def test_int8_predictions_agree_with_float_ones(fitted, text_data):
    X, _ = text_data
    float32, int8 = fitted.compress(), fitted.compress(dtype="int8")
    assert int8.network.dtype == "int8" and float32.network.dtype == "float32"
    agreement = np.mean(int8.predict(X) == float32.predict(X))
    assert agreement >= 0.98
    assert all(w.dtype == np.int8 for w in int8.network.weights)
    assert all(s.dtype == np.float32 for s in int8.network.scales)


def test_quantized_rows_differ_by_at_most_half_their_scale():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((50, 30)).astype(np.float32) * rng.random((50, 1))
    weight[3] = 0.0  # an all-zero row still gets a positive scale
    weight[7] = 0.0
    weight[7, 2] = 1e-30  # a row of one tiny value is not lost
    weight[9] = 0.0
    weight[9, 0] = 1e-44  # nor one whose scale would underflow to 0
    values, scales = quantize_rows(weight)
    assert values.dtype == np.int8 and (np.abs(values) <= 127).all()
    assert (scales > 0).all() and scales[3] == 1.0
    error = np.abs(values * scales[:, None].astype(np.float64) - weight)
    assert (error <= scales[:, None] / 2 * (1 + 1e-6)).all()
    assert (values[weight == 0] == 0).all()  # sparsity kept exactly
    assert values[7, 2] == 127
    assert scales[9] == np.finfo(np.float32).tiny


@pytest.mark.parametrize("layout", ["csr", "row-sparse"])
@pytest.mark.parametrize("sparse_input", [True, False])
def test_int8_logits_stay_within_the_bound_their_scales_give(layout, sparse_input):
    # One layer: out = x @ W + b exactly, so |int8 - float| <= sum_j |x_j| s_j / 2,
    # plus float32 rounding of both sums (bounded by n eps sum_j |x_j w_j|).
    rng = np.random.default_rng(1)
    n_in, n_out = 300, 24
    weight = rng.standard_normal((n_in, n_out)).astype(np.float32)
    weight *= rng.random((n_in, n_out)) < 0.3
    values, scales = quantize_rows(weight)
    fields = {"n_features": n_in, "input_index": np.arange(n_in),
              "biases": [rng.standard_normal(n_out)], "layouts": [layout]}  # fmt: skip
    exact = CompactMLP(weights=[weight], **fields)
    quantized = CompactMLP(weights=[values], scales=[scales], **fields)
    X = sp.random(40, n_in, density=0.1, format="csr", random_state=2, dtype=np.float32)
    X = X if sparse_input else X.toarray()
    error = np.abs(
        quantized.decision_function(X).astype(np.float64)
        - exact.decision_function(X).astype(np.float64)
    )
    dense = np.abs(np.asarray(X.todense() if sparse_input else X, dtype=np.float64))
    quantization = dense @ (scales.astype(np.float64) / 2)
    terms = dense @ np.abs(weight).max(axis=1).astype(np.float64)
    rounding = (
        4
        * (n_in + 2)
        * np.finfo(np.float32).eps
        * (terms + np.abs(fields["biases"][0]).max())
    )
    assert (error <= (quantization + rounding)[:, None]).all()
    assert error.max() > 0  # the comparison compares something


def test_int8_model_holds_at_most_a_third_of_the_float_models_bytes(fitted):
    dense_module = PrunedClassifier(
        small_net(max_epochs=1, module__hidden_layer_sizes=(64,)),
        prune_ratio=0.0,
        retrain_epochs=1,
        random_state=0,
    )
    X, y = skprune.datasets.make_text_classification(
        200, 500, n_classes=2, n_topic_words=50, random_state=0
    )
    dense_module.fit(X, y)
    float32, int8 = dense_module.compress(), dense_module.compress(dtype="int8")
    assert int8.network.nbytes * 3 <= float32.network.nbytes
    # and the kernels read the int8 arrays as stored: no float copy is made
    int8.predict(X)
    held = [a for a in _every_array(int8.network) if a.dtype == np.float32]
    assert sum(a.nbytes for a in held) < int8.network.weights[0].size


def _every_array(network):
    for value in vars(network).values():
        for item in value if isinstance(value, tuple) else [value]:
            if isinstance(item, np.ndarray):
                yield item
            elif sp.issparse(item):
                yield from (item.data, item.indices, item.indptr)


@pytest.mark.parametrize("dtype", ["float16", "int4", "INT8", np.int8, None, 8])
def test_compress_refuses_an_unknown_dtype_by_name(fitted, dtype):
    with pytest.raises(ValueError, match="dtype must be one of"):
        fitted.compress(dtype=dtype)


def test_compress_refuses_to_quantize_weights_that_are_not_finite(fitted):
    broken = pickle.loads(pickle.dumps(fitted))
    with torch.no_grad():
        broken.estimator_.module_.layers[1].weight[0, 0] = float("nan")
    for dtype in ("int8", "float32"):
        with pytest.raises(ValueError, match="layers.1.weight holds NaN"):
            broken.compress(dtype=dtype)


def test_a_regressor_compresses_to_int8_too(text_data):
    X, y = text_data
    net = default_regressor_net().set_params(
        max_epochs=2, module__hidden_layer_sizes=(16,)
    )
    target = np.column_stack([y, X[:, :20].sum(axis=1).A1])
    model = PrunedRegressor(net, prune_ratio=0.5, retrain_epochs=1, random_state=0)
    model.fit(X, target)
    float32, int8 = model.compress(), model.compress(dtype="int8")
    scale = np.abs(float32.predict(X)).max()
    assert np.abs(int8.predict(X) - float32.predict(X)).max() < 0.05 * scale


def test_int8_survives_save_and_load_as_int8(fitted, text_data, tmp_path):
    X, _ = text_data
    compressed = fitted.compress(dtype="int8")
    skprune.save(compressed, tmp_path / "int8.skprune")
    loaded = skprune.load(tmp_path / "int8.skprune")
    assert loaded.network.layouts == compressed.network.layouts
    assert [w.dtype for w in loaded.network.weights] == [np.int8] * 3
    assert loaded.network.nbytes == compressed.network.nbytes  # nothing expanded
    np.testing.assert_array_equal(
        loaded.decision_function(X), compressed.decision_function(X)
    )
    float_file = tmp_path / "float.skprune"
    skprune.save(fitted.compress(), float_file)
    assert (tmp_path / "int8.skprune").stat().st_size < float_file.stat().st_size
    again = pickle.loads(pickle.dumps(compressed))
    np.testing.assert_array_equal(
        again.decision_function(X), compressed.decision_function(X)
    )


def _tampered(network, **changes):
    """``network`` with fields changed behind the frozen dataclass's back."""
    network = dataclasses.replace(network)
    for name, value in changes.items():
        object.__setattr__(network, name, value)
    return network


def _bad_scale_cases(network):
    scales = list(network.scales)
    first = scales[0]
    yield {"scales": (-first, *scales[1:])}, "finite and positive"
    yield {"scales": (first * np.nan, *scales[1:])}, "NaN"
    yield {"scales": (first.astype(np.float64), *scales[1:])}, "float32"
    yield {"scales": (first[:-1], *scales[1:])}, "scales[0]"
    yield {"scales": tuple(scales[:-1])}, "scales"
    yield {"scales": None}, "all int8 with scales"


def test_a_file_whose_int8_record_is_inconsistent_is_refused(fitted, tmp_path):
    compressed = fitted.compress(dtype="int8")
    for changes, match in _bad_scale_cases(compressed.network):
        bad = type(compressed)(_tampered(compressed.network, **changes),
                               compressed.classes)  # fmt: skip
        path = tmp_path / "bad.skprune"
        skprune.save(bad, path, overwrite=True)
        with pytest.raises(ModelFileError, match=re.escape(match)):
            skprune.load(path)
    # float weights that claim scales
    float32 = fitted.compress()
    bad = type(float32)(
        _tampered(float32.network, scales=compressed.network.scales), float32.classes
    )
    skprune.save(bad, tmp_path / "float_with_scales.skprune")
    with pytest.raises(ModelFileError, match="absent for float weights"):
        skprune.load(tmp_path / "float_with_scales.skprune")


def test_compact_mlp_refuses_int8_weights_without_matching_scales():
    values, scales = quantize_rows(np.eye(4, 3, dtype=np.float32))
    fields = {"n_features": 4, "input_index": np.arange(4), "biases": [np.zeros(3)]}
    with pytest.raises(ValueError, match=r"weights\[0\] must be a 2-d array of int8"):
        CompactMLP(weights=[values.astype(np.float32)], scales=[scales], **fields)
    with pytest.raises(ValueError, match=r"weights\[0\] must be a 2-d array of floats"):
        CompactMLP(weights=[values], **fields)
    with pytest.raises(ValueError, match=r"scales\[0\] must be a 1-d float array"):
        CompactMLP(weights=[values], scales=[scales[:3]], **fields)
    with pytest.raises(ValueError, match=r"scales\[0\] must be finite and positive"):
        CompactMLP(weights=[values], scales=[scales * 0], **fields)
    with pytest.raises(ValueError, match="one array per weight"):
        CompactMLP(weights=[values], scales=[scales, scales], **fields)


def test_int8_products_read_the_stored_arrays_without_copies(fitted, monkeypatch):
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", True)  # numba is a dependency
    network = dataclasses.replace(
        fitted.compress(dtype="int8").network, layouts=["csr", "csr", "dense"]
    )
    csr = network.weights[0]
    operand = network._sparse_first.keywords["weight"]
    assert np.shares_memory(operand.data, csr.data)
    assert np.shares_memory(operand.indices, csr.indices)
    assert network._dense_products[2].keywords["weight"] is network.weights[2]


@pytest.mark.parametrize(
    "layouts", [("csr", "csr", "csr"), ("row-sparse", "dense", "dense")]
)
def test_int8_prediction_of_a_row_does_not_depend_on_its_batch(
    fitted, text_data, layouts, monkeypatch
):
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", True)  # numba is a dependency
    network = dataclasses.replace(fitted.compress(dtype="int8").network,
                                  layouts=layouts)  # fmt: skip
    X = text_data[0][:30]
    whole = network.decision_function(X)
    rows = np.concatenate([network.decision_function(X[i : i + 1]) for i in range(30)])
    assert np.array_equal(rows, whole)
    parts = [network.decision_function(X[a:b]) for a, b in ((0, 7), (7, 30))]
    assert np.array_equal(np.concatenate(parts), whole)
