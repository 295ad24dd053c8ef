"""The one-row prediction path: the same checks, errors and bits as before."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.special import softmax

from skprune import CompressedClassifier, CompressedRegressor
from skprune._nn import _kernels
from skprune._validation import (
    ACCEPTED_SPARSE,
    validate_data,
    validate_prediction_data,
)
from skprune.compress import CompactMLP
from skprune.compress._compact import _ACTIVATIONS, quantize_rows
from skprune.data import as_canonical_csr

N_FEATURES, N_HIDDEN, N_CLASSES = 40, 16, 3


def _network(layout: str, dtype: str) -> CompactMLP:
    rng = np.random.default_rng(0)
    first = rng.standard_normal((30, N_HIDDEN)).astype(np.float32)
    first[:, 8:] *= rng.random((30, 1)) < 0.5  # whole runs of 8 survive
    first[rng.random((30, N_HIDDEN)) < 0.2] = 0.0  # and scattered weights
    last = rng.standard_normal((N_HIDDEN, N_CLASSES)).astype(np.float32)
    weights, scales = (first, last), None
    if dtype == "int8":
        (q1, s1), (q2, s2) = quantize_rows(first), quantize_rows(last)
        weights, scales = (q1, q2), (s1, s2)
    if layout in ("csr", "block-csr"):
        weights = (sp.csr_matrix(weights[0]), weights[1])
    return CompactMLP(
        n_features=N_FEATURES,
        input_index=np.arange(5, 35),  # 10 columns unused: a non-identity map
        weights=weights,
        biases=(rng.standard_normal(N_HIDDEN), rng.standard_normal(N_CLASSES)),
        layouts=(layout, "dense"),
        scales=scales,
    )


def _previous_logits(network: CompactMLP, X) -> np.ndarray:
    """The logits as the code before the one-row work computed them."""
    X = validate_data(
        CompressedRegressor(network),
        X,
        accept_sparse=ACCEPTED_SPARSE,
        dtype=np.float32,
        reset=False,
    )
    if sp.issparse(X):
        h = network._sparse_first(as_canonical_csr(X).astype(np.float32, copy=False))
    else:
        X = np.asarray(X, dtype=np.float32)
        h = network._dense_products[0](np.ascontiguousarray(X[:, network.input_index]))
    for i, bias in enumerate(network.biases):
        if i > 0:
            h = network._dense_products[i](h)
        h += bias
        if i < len(network.weights) - 1:
            h = _ACTIVATIONS[network.activation](h)
    return h


def _inputs():
    rng = np.random.default_rng(1)
    X = sp.random(
        7, N_FEATURES, density=0.3, format="csr", dtype=np.float64, random_state=2
    )
    X = sp.vstack([X, sp.csr_matrix((1, N_FEATURES))], format="csr")  # empty row
    yield "csr", X
    yield "one csr row", X[:1]
    yield "csc", X.tocsc()
    yield "coo", X.tocoo()
    yield "csr array", sp.csr_array(X)
    yield "float32 csr", X.astype(np.float32)
    yield "dense", rng.standard_normal((5, N_FEATURES))
    yield "one dense row", rng.standard_normal((1, N_FEATURES)).astype(np.float32)


LAYOUTS = ["csr", "block-csr", "row-sparse", "dense"]


@pytest.mark.skipif(not _kernels.HAVE_NUMBA, reason="the compiled layouts need numba")
@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_predictions_and_probabilities_are_the_bits_of_the_previous_path(layout, dtype):
    if layout == "block-csr" and dtype == "int8":
        pytest.skip("int8 weights are never held as blocks")
    network = _network(layout, dtype)
    assert network.layouts[0] == layout
    classes = np.array(["a", "b", "c"])
    model = CompressedClassifier(network, classes)
    for name, X in _inputs():
        logits = _previous_logits(network, X)
        np.testing.assert_array_equal(network.decision_function(X), logits, name)
        np.testing.assert_array_equal(model.decision_function(X), logits, name)
        expected = softmax(logits.astype(np.float64), axis=1)
        np.testing.assert_array_equal(model.predict_proba(X), expected, name)
        assert model.predict_proba(X).dtype == np.float64
        np.testing.assert_array_equal(
            model.predict(X), classes[np.argmax(logits, axis=1)], name
        )


def _bad_sparse_inputs():
    X = sp.random(3, N_FEATURES, density=0.3, format="csr", random_state=0)
    yield "too few features", X[:, :-1]
    yield "no rows", X[:0]
    yield "no columns", sp.csr_matrix((3, 0))
    yield "1-d coo array", sp.coo_array(np.ones(N_FEATURES))
    nan = X.copy()
    nan.data[0] = np.nan
    yield "nan", nan
    yield "inf csc", (nan.tocsc() * 0 + X.tocsc()).multiply(np.inf).tocsc()
    yield "complex", X.astype(np.complex128)
    out_of_range = X.copy()
    out_of_range.indices[0] = N_FEATURES + 3
    yield "column index out of range", out_of_range
    for fmt in ("csc", "coo"):
        bad = X.asformat(fmt)
        if fmt == "csc":
            bad.indices[0] = 9
        else:
            bad.row[0] = -1
        yield f"{fmt} index out of range", bad
    yield "bsr (not accepted: converted)", X.tobsr()
    yield (
        "int64 indices",
        sp.csr_matrix(
            (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)), X.shape
        ),
    )
    yield "integers", sp.csr_matrix(X.toarray().round()).astype(np.int64)


def _outcome(function, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = function(X)
        except Exception as error:  # noqa: BLE001 - compared, not swallowed
            return type(error), str(error), [str(w.message) for w in caught]
    return result, [str(w.message) for w in caught]


@pytest.mark.parametrize("name,X", list(_bad_sparse_inputs()))
def test_sparse_input_meets_every_check_of_the_full_validation(name, X):
    model = CompressedClassifier(_network("csr", "float32"), np.arange(3))
    arrays = [a for a in ("data", "indices", "indptr", "row", "col") if hasattr(X, a)]
    before = {a: getattr(X, a).copy() for a in arrays}
    fast = _outcome(lambda X: validate_prediction_data(model, X), X)

    def full(X):
        return validate_data(
            model, X, accept_sparse=ACCEPTED_SPARSE, dtype=np.float32, reset=False
        )

    slow = _outcome(full, X)
    if isinstance(slow[0], type):
        assert fast == slow
    else:
        assert type(fast[0]) is type(slow[0]) and fast[0].format == slow[0].format
        assert fast[0].dtype == slow[0].dtype == np.float32
        assert (fast[0] != slow[0]).nnz == 0 and fast[1] == slow[1]
    for array in arrays:  # the caller's X is left as it was
        np.testing.assert_array_equal(getattr(X, array), before[array])


def test_sparse_input_without_names_warns_a_model_fitted_with_names():
    model = CompressedClassifier(_network("csr", "float32"), np.arange(3))
    model.feature_names_in_ = np.array([f"f{i}" for i in range(N_FEATURES)], object)
    X = sp.random(2, N_FEATURES, density=0.3, format="csr", random_state=0)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.predict(X)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("seed", range(5))
def test_numpy_column_filter_keeps_what_the_torch_one_keeps(index_dtype, seed):
    rng = np.random.default_rng(seed)
    n_rows, n_columns = 6, 30
    X = sp.random(n_rows, n_columns, density=0.3, format="csr", random_state=seed)
    X = X[rng.permutation(n_rows)]
    emptied = np.ones(n_rows)
    emptied[rng.integers(n_rows, size=2)] = 0  # empty rows, first or last sometimes
    X = (sp.diags(emptied) @ X).tocsr()
    X.eliminate_zeros()
    column_map = np.full(n_columns, -1, dtype=np.int32)
    kept = rng.random(n_columns) < 0.5
    column_map[kept] = np.arange(kept.sum())
    indices, indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    got = _kernels.kept_entries_array(column_map, indices, indptr, X.data)
    expected = _kernels.kept_entries(
        *(torch.from_numpy(a) for a in (column_map, indices, indptr, X.data))
    )
    for array, reference in zip(got, expected, strict=True):
        np.testing.assert_array_equal(array, reference.numpy())
    assert got[0].dtype == got[1].dtype == index_dtype  # as embedding_bag needs
