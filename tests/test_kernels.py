"""The compiled loops of skprune._nn._kernels against numpy, scipy and torch.

numba is a declared dependency: without it these tests fail (the import below),
they are not skipped, so a broken install cannot pass unnoticed. The kernels are
called directly, so they are tested also under ``SKPRUNE_DISABLE_NUMBA=1``.
"""

import ast
import re
from pathlib import Path

import numba  # a missing numba must fail this module, not skip it
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skprune._nn import _kernels
from skprune.optim import LazyAdam


def messy_csr(n_rows=9, n_cols=50, seed=0):
    """CSR with unsorted and duplicate column indices and empty last rows."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n_rows)
    counts[-2:] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = rng.integers(0, n_cols, indptr[-1]).astype(np.int32)
    indices[1] = indices[0]  # a duplicate, summed as scipy sums it
    data = rng.standard_normal(indptr[-1]).astype(np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))


def column_map_keeping(columns, n_cols):
    column_map = np.full(n_cols, -1, dtype=np.int64)
    column_map[columns] = np.arange(len(columns))
    return column_map


def test_kept_entries_handles_empty_rows_anywhere_and_renumbers_columns():
    X = messy_csr()
    X[0] = 0.0
    X.eliminate_zeros()
    keep = np.array([3, 7, 11, 20, 42])
    column_map = column_map_keeping(keep, X.shape[1])
    columns, offsets, values = _kernels.kept_entries(
        torch.from_numpy(column_map),
        torch.from_numpy(X.indices),
        torch.from_numpy(X.indptr),
        torch.from_numpy(X.data),
    )
    kept = sp.csr_matrix(
        (values.numpy(), columns.numpy(), offsets.numpy()), shape=(X.shape[0], 5)
    )
    np.testing.assert_array_equal(kept.toarray(), X[:, keep].toarray())


@pytest.fixture
def kernels():
    return _kernels


@pytest.mark.parametrize("weight_format", ["rows", "csr"])
def test_csr_batch_times_weight_matches_scipy(kernels, weight_format):
    X = messy_csr()
    keep = np.array([0, 2, 5, 9, 13, 30, 49])
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((len(keep), 6)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.6] = 0.0
    expected = X[:, keep] @ weight
    column_map = column_map_keeping(keep, X.shape[1])
    if weight_format == "rows":
        out = kernels.csr_times_rows(X, column_map, weight)
    else:
        out = kernels.csr_times_csr(X, column_map, sp.csr_matrix(weight))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_dense_rows_times_csr_weight_matches_numpy(kernels):
    rng = np.random.default_rng(2)
    h = np.maximum(rng.standard_normal((7, 12)), 0).astype(np.float32)
    weight = rng.standard_normal((12, 5)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.7] = 0.0
    out = kernels.dense_times_csr(h, sp.csr_matrix(weight))
    np.testing.assert_allclose(out, h @ weight, atol=1e-5)


def test_adam_rows_steps_only_the_given_rows_like_sparse_adam(kernels):
    generator = torch.Generator().manual_seed(0)
    param = torch.randn(10, 4, generator=generator)
    reference = torch.nn.Parameter(param.clone())
    exp_avg, exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
    rows = torch.tensor([1, 4, 8])
    grad = torch.randn(3, 4, generator=generator)
    beta1, beta2, lr, eps = 0.9, 0.999, 0.01, 1e-8
    step_size = lr * (1 - beta2) ** 0.5 / (1 - beta1)
    kernels.adam_rows_(
        param, exp_avg, exp_avg_sq, rows, grad,
        beta1=beta1, beta2=beta2, step_size=step_size, eps=eps, weight_decay=0.0,
    )  # fmt: skip
    sparse_adam = torch.optim.SparseAdam([reference], lr=lr, eps=eps)
    reference.grad = torch.sparse_coo_tensor(rows[None], grad, (10, 4))
    sparse_adam.step()
    torch.testing.assert_close(param, reference.detach(), atol=1e-6, rtol=0)
    untouched = [0, 2, 3, 5, 6, 7, 9]
    assert (exp_avg[untouched] == 0).all() and (exp_avg_sq[untouched] == 0).all()


def test_a_compiled_step_leaves_torchs_thread_count_as_it_was(monkeypatch):
    # numba's OpenMP layer sets the process-wide OpenMP thread count, which torch
    # reads: without care, one LazyAdam step turned 1 torch thread into 2.
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", True)  # the compiled path
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        weight = torch.nn.Parameter(torch.zeros(1000, 8))
        optimizer = LazyAdam([weight])
        for _ in range(2):
            weight.grad = torch.sparse_coo_tensor(
                torch.tensor([[1, 5, 7]]), torch.ones(3, 8), (1000, 8)
            )
            optimizer.step()
        assert torch.get_num_threads() == 1
        assert weight[1].abs().sum() > 0
    finally:
        torch.set_num_threads(before)


def test_dense_rows_times_dense_weight_matches_numpy_and_ignores_the_batch(kernels):
    rng = np.random.default_rng(3)
    h = np.maximum(rng.standard_normal((40, 33)), 0).astype(np.float32)
    weight = rng.standard_normal((33, 7)).astype(np.float32)
    out = kernels.dense_times_rows(h, weight)
    np.testing.assert_allclose(out, h @ weight, rtol=1e-5, atol=1e-5)
    # Each row adds its terms in one order whatever the batch: the same bits.
    for row in (0, 17, 39):
        one = kernels.dense_times_rows(h[row : row + 1], weight)
        np.testing.assert_array_equal(one[0], out[row])


# every argument is checked on its way in ------------------------------------------


def _valid(n_rows=4, n_cols=6, n_out=3, dtype=np.float32):
    """A CSR batch, a column map keeping every other column, both weights, h."""
    X = sp.random(n_rows, n_cols, density=0.6, format="csr", random_state=4)
    X = X.astype(dtype)
    keep = np.arange(0, n_cols, 2)
    column_map = column_map_keeping(keep, n_cols)
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((len(keep), n_out)).astype(dtype)
    weight[0, 1] = 0.0
    h = rng.standard_normal((n_rows, len(keep))).astype(dtype)
    return X, column_map, weight, sp.csr_matrix(weight), h


def _with_array(matrix, name, value):
    matrix = matrix.copy()
    setattr(matrix, name, value)
    return matrix


def _bad_indices(matrix, value):
    matrix = matrix.copy()
    matrix.indices = matrix.indices.astype(np.int64)
    matrix.indices[0] = value
    return matrix


def _decreasing_indptr(matrix):
    matrix = matrix.copy()
    matrix.indptr[1] = matrix.indptr[2] + 1
    return matrix


def _bad_argument_cases():
    """(kernel, arguments, the message's expected part), one bad argument each."""
    X, column_map, weight, weight_csr, h = _valid()
    n_weight_rows, n_out = weight.shape
    csr_products = ("csr_times_rows", weight), ("csr_times_csr", weight_csr)
    for kernel, w in csr_products:
        yield kernel, (X.toarray(), column_map, w), "X must be a scipy.sparse CSR"
        yield kernel, (X.tocsc(), column_map, w), "X must be a scipy.sparse CSR"
        yield kernel, (_bad_indices(X, -1), column_map, w), "X has column index -1"
        yield kernel, (_bad_indices(X, 6), column_map, w), "X has column index 6"
        yield kernel, (_bad_indices(X, 2**40), column_map, w), "column index 1099511"
        yield kernel, (_decreasing_indptr(X), column_map, w), "X has inconsistent row"
        past = _with_array(X, "indptr", X.indptr.copy())
        past.indptr[-1] = X.nnz + 1
        yield kernel, (past, column_map, w), "X has inconsistent row pointers"
        short = _with_array(X, "indices", X.indices[:-2].copy())
        yield kernel, (short, column_map, w), "X has inconsistent row pointers"
        long_ptr = _with_array(X, "indptr", np.append(X.indptr, X.nnz))
        yield kernel, (long_ptr, column_map, w), "X has inconsistent row pointers"
        yield kernel, (X.astype(np.float64), column_map, w), "weight must hold float64"
        yield kernel, (X, column_map[:-1], w), "column_map has 5 entries"
        yield kernel, (X, column_map.astype(float), w), "column_map must be a 1-d"
        low = column_map.copy()
        low[1] = -2
        yield kernel, (X, low, w), "column_map has entry -2"
        high = column_map.copy()
        high[1] = n_weight_rows
        yield kernel, (X, high, w), f"column_map has entry {n_weight_rows}"
    yield "csr_times_rows", (X, column_map, weight[None]), "weight must be a 2-d"
    yield "csr_times_rows", (X, column_map, weight.astype(int)), "weight must be a 2-d"
    yield "csr_times_rows", (X, column_map, weight_csr), "weight must be a numpy"
    for value in (-1, n_out, 2**40):
        bad = _bad_indices(weight_csr, value)
        yield "csr_times_csr", (X, column_map, bad), f"weight has column index {value}"
        yield "dense_times_csr", (h, bad), f"weight has column index {value}"
    yield "csr_times_csr", (X, column_map, weight), "weight must be a scipy.sparse CSR"
    yield "dense_times_csr", (h[:, :-1], weight_csr), "h has 2 columns"
    yield "dense_times_csr", (h.astype(np.float64), weight_csr), "must hold float64"
    yield "dense_times_csr", (h[0], weight_csr), "h must be a 2-d array"
    yield "dense_times_rows", (h[:, :-1], weight), "h has 2 columns"
    yield "dense_times_rows", (h, weight.astype(np.float64)), "must hold float32"
    yield "dense_times_rows", (h.tolist(), weight), "h must be a numpy array"
    yield from _embedding_cases(X, column_map, weight)
    yield from _int8_cases(X, column_map, weight, h)


def _embedding_cases(X, column_map, weight):
    kernel, tensor = "csr_times_rows_embedding", torch.from_numpy(weight)
    yield kernel, (X.toarray(), column_map, tensor), "X must be a scipy.sparse CSR"
    yield kernel, (_bad_indices(X, 6), column_map, tensor), "X has column index 6"
    yield kernel, (_bad_indices(X, -1), column_map, tensor), "X has column index -1"
    yield kernel, (X.astype(np.float64), column_map, tensor), "weight must hold float64"
    yield kernel, (X, column_map, weight), "weight must be a 2-d C-contiguous float32"
    yield kernel, (X, column_map, tensor.double()), "weight must be a 2-d C-contig"
    wide = torch.from_numpy(np.ascontiguousarray(weight.T)).T
    yield kernel, (X, column_map, wide), "weight must be a 2-d C-contiguous"
    yield kernel, (X, column_map, tensor[None]), "weight must be a 2-d C-contiguous"
    high = column_map.copy()
    high[1] = len(weight)
    yield kernel, (X, high, tensor), f"column_map has entry {len(weight)}"
    yield kernel, (X, column_map[:-1], tensor), "column_map has 5 entries"
    checked = _kernels.CheckedColumnMap(column_map, len(weight) + 1)
    yield kernel, (X, checked, tensor), "column_map points into 4 weight rows"


def _int8_cases(X, column_map, weight, h):
    values = np.clip(np.rint(weight * 40), -127, 127).astype(np.int8)
    scales = np.full(len(values), 0.025, dtype=np.float32)
    csr = sp.csr_matrix(values)
    products = {
        "csr_times_rows": (X, column_map, values),
        "csr_times_csr": (X, column_map, csr),
        "dense_times_rows": (h, values),
        "dense_times_csr": (h, csr),
    }
    for kernel, arguments in products.items():
        yield kernel, arguments, "An int8 weight needs scales"
        yield kernel, (*arguments, scales[:-1]), "scales must be a 1-d float32 array of"
        yield kernel, (*arguments, scales.astype(np.float64)), "scales must be a 1-d"
        yield kernel, (*arguments, scales[None]), "scales must be a 1-d float32"
        yield kernel, (*arguments, -scales), "scales must be finite and positive"
        yield kernel, (*arguments, scales * 0), "scales must be finite and positive"
        yield kernel, (*arguments, scales * np.nan), "scales must be finite and pos"
        as_float = (arguments[0].astype(np.float64), *arguments[1:], scales)
        yield kernel, as_float, "must hold float32 to multiply an int8 weight"
        float_weight = (*arguments[:-1], _float_like(arguments[-1]), scales)
        yield kernel, float_weight, "scales are only for an int8 weight"
    yield "csr_times_rows", (X, column_map, values.astype(np.int16), scales), "2-d"
    bad = _bad_indices(csr, 3)
    yield "csr_times_csr", (X, column_map, bad, scales), "weight has column index 3"
    yield "dense_times_csr", (h, bad, scales), "weight has column index 3"


def _float_like(weight):
    return weight.astype(np.float32)


BAD_ARGUMENTS = list(_bad_argument_cases())


@pytest.mark.parametrize(
    "kernel, arguments, match",
    BAD_ARGUMENTS,
    ids=[f"{kernel}-{match}" for kernel, _, match in BAD_ARGUMENTS],
)
def test_products_refuse_each_bad_argument_by_name(kernels, kernel, arguments, match):
    before = [a.indices.copy() for a in arguments if sp.issparse(a)]
    with pytest.raises((ValueError, TypeError), match=re.escape(match)):
        getattr(kernels, kernel)(*arguments)
    after = [a.indices for a in arguments if sp.issparse(a)]
    assert all(np.array_equal(b, a) for b, a in zip(before, after, strict=True))


def test_products_accept_what_the_checks_let_through(kernels):
    # The control of the refusals above: the same arguments, intact.
    X, column_map, weight, weight_csr, h = _valid()
    expected = X[:, ::2].toarray() @ weight
    np.testing.assert_allclose(
        kernels.csr_times_rows(X, column_map, weight), expected, atol=1e-6
    )
    np.testing.assert_allclose(
        kernels.csr_times_csr(X, column_map, weight_csr), expected, atol=1e-6
    )
    # scipy's index arrays may be longer than used, and int64 or int32.
    roomy = sp.csr_matrix(
        (np.append(X.data, 9.0).astype(np.float32), np.append(X.indices, 99),
         X.indptr), shape=X.shape,
    )  # fmt: skip
    np.testing.assert_allclose(
        kernels.csr_times_rows(roomy, column_map, weight), expected, atol=1e-6
    )
    np.testing.assert_allclose(
        kernels.dense_times_csr(h, weight_csr), h @ weight, atol=1e-6
    )
    np.testing.assert_allclose(
        kernels.dense_times_rows(h, weight), h @ weight, atol=1e-6
    )
    # A read-only input is read, not refused: a non-contiguous one is copied.
    np.testing.assert_allclose(
        kernels.dense_times_rows(np.asfortranarray(h), weight), h @ weight, atol=1e-6
    )


def test_int8_products_match_the_scaled_float_product(kernels):
    X, column_map, weight, _, h = _valid(n_rows=7, n_cols=10, n_out=5)
    values = np.clip(np.rint(weight * 40), -127, 127).astype(np.int8)
    scales = np.linspace(0.01, 0.05, len(values)).astype(np.float32)
    exact = values * scales[:, None].astype(np.float64)  # what the int8 stands for
    expected = X[:, ::2].toarray().astype(np.float64) @ exact
    csr = sp.csr_matrix(values)
    got = [
        kernels.csr_times_rows(X, column_map, values, scales),
        kernels.csr_times_csr(X, column_map, csr, scales),
        # a non-contiguous int8 weight is read through a contiguous copy
        kernels.csr_times_rows(X, column_map, np.asfortranarray(values), scales),
    ]
    for out in got:
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    hidden = h.astype(np.float64) @ exact
    for out in (kernels.dense_times_rows(h, values, scales),
                kernels.dense_times_csr(h, csr, scales)):  # fmt: skip
        np.testing.assert_allclose(out, hidden, rtol=1e-5, atol=1e-6)


def test_the_embedding_product_matches_the_compiled_one_to_the_bit_per_row(kernels):
    X, column_map, weight, _, _ = _valid(n_rows=9, n_cols=12, n_out=6)
    X = sp.vstack([X, sp.csr_matrix((2, 12), dtype=np.float32)]).tocsr()
    tensor = torch.from_numpy(weight)
    checked = kernels.CheckedColumnMap(column_map, len(weight))
    whole = kernels.csr_times_rows_embedding(X, checked, tensor)
    np.testing.assert_allclose(whole, X[:, ::2].toarray() @ weight, atol=1e-6)
    assert not whole[-2:].any()  # empty last rows
    rows = [kernels.csr_times_rows_embedding(X[i : i + 1], column_map, tensor)
            for i in range(X.shape[0])]  # fmt: skip
    assert np.array_equal(np.concatenate(rows), whole)
    identity = kernels.CheckedColumnMap(np.arange(12), 12)
    full = torch.from_numpy(np.random.default_rng(0).random((12, 6), np.float32))
    np.testing.assert_allclose(
        kernels.csr_times_rows_embedding(X, identity, full),
        X.toarray() @ full.numpy(), atol=1e-6,
    )  # fmt: skip


def test_a_checked_column_map_is_checked_once_and_read_only(kernels):
    with pytest.raises(ValueError, match="column_map has entry 3"):
        kernels.CheckedColumnMap(np.array([0, 3, -1]), 3)
    with pytest.raises(ValueError, match="column_map has entry -2"):
        kernels.CheckedColumnMap(np.array([0, -2]), 3)
    checked = kernels.CheckedColumnMap(np.array([2, -1, 0]), 3)
    assert checked.array.dtype == np.int32 and not checked.array.flags.writeable
    assert not checked.identity
    assert kernels.CheckedColumnMap(np.arange(4), 4).identity


def test_small_products_run_serially_and_large_ones_set_threads_once(
    kernels, monkeypatch, two_torch_threads
):

    calls = []
    real = numba.set_num_threads
    monkeypatch.setattr(numba, "set_num_threads", lambda n: calls.append(n) or real(n))
    X, column_map, weight, weight_csr, h = _valid()
    serial = kernels.csr_times_csr(X, column_map, weight_csr)  # a few multiply-adds
    kernels.dense_times_rows(h[:1], weight)
    assert calls == []  # no parallel region, no thread setting
    monkeypatch.setattr(kernels, "PARALLEL_WORK", 0)
    parallel = [kernels.csr_times_csr(X, column_map, weight_csr) for _ in range(3)]
    assert len(calls) <= 1  # set when it differed, not around every call
    assert all(np.array_equal(serial, out) for out in parallel)  # the same bits
    assert torch.get_num_threads() == 2


def test_a_checked_csr_weight_keeps_read_only_copies(kernels):
    _, _, _, weight_csr, h = _valid()
    checked = kernels.CheckedCSR(weight_csr, name="weight", own=True)
    weight_csr.indices[0] = 10**6  # changing the source afterwards changes nothing
    for array in (checked.indptr, checked.indices, checked.data):
        assert not array.flags.writeable
        assert array.dtype in (np.int32, np.int64, np.float32)
    weight_csr.indices[0] = 0
    np.testing.assert_allclose(
        kernels.dense_times_csr(h, checked), h @ weight_csr.toarray(), atol=1e-6
    )


def _adam_arguments(n_rows=6, n_cols=3):
    param = torch.zeros(n_rows, n_cols)
    rows = torch.tensor([0, 2, 5])
    return [param, torch.zeros_like(param), torch.zeros_like(param), rows,
            torch.ones(3, n_cols)]  # fmt: skip


def _adam_bad_argument_cases():
    def changed(position, value):
        arguments = _adam_arguments()
        arguments[position] = value
        return arguments

    yield changed(3, torch.tensor([0, 2, 6])), "rows has row index 6"
    yield changed(3, torch.tensor([0, -1, 5])), "rows has row index -1"
    yield changed(3, torch.tensor([0.0, 2.0, 5.0])), "rows must be a 1-d tensor of int"
    yield changed(3, torch.tensor([[0, 2, 5]])), "rows must be a 1-d tensor"
    yield changed(4, torch.ones(2, 3)), "grad must be of shape (3, 3)"
    yield changed(4, torch.ones(3, 4)), "grad must be of shape (3, 3)"
    yield changed(4, torch.ones(3, 3, dtype=torch.float64)), "dtype torch.float32"
    yield changed(1, torch.zeros(5, 3)), "exp_avg has shape (5, 3)"
    yield changed(2, torch.zeros(6, 3, dtype=torch.float64)), "exp_avg_sq has shape"
    yield changed(0, torch.zeros(3, 6).T), "param must be C-contiguous"
    yield changed(1, torch.zeros(3, 6).T), "exp_avg must be C-contiguous"
    yield changed(0, torch.zeros(6, 3, dtype=torch.int64)), "param must be a 2-d"
    yield changed(0, torch.zeros(18)), "param must be a 2-d"


ADAM_BAD_ARGUMENTS = list(_adam_bad_argument_cases())


@pytest.mark.parametrize(
    "arguments, match", ADAM_BAD_ARGUMENTS, ids=[m for _, m in ADAM_BAD_ARGUMENTS]
)
@pytest.mark.parametrize("coalesced", [True, False])
def test_adam_rows_refuses_each_bad_argument_by_name(
    kernels, arguments, match, coalesced
):
    hyper = {"beta1": 0.9, "beta2": 0.99, "step_size": 0.1, "eps": 1e-8}
    with pytest.raises(ValueError, match=re.escape(match)):
        kernels.adam_rows_(*arguments, **hyper, weight_decay=0.0, coalesced=coalesced)
    assert (arguments[0] == 0).all()  # nothing was stepped before the refusal


def test_the_compiled_loops_are_reached_only_through_checking_functions():
    # Nothing outside the checking entry points of _kernels compiles or calls a
    # loop: every array reaches one through a check, whoever calls.
    root = Path(_kernels.__file__).parent
    for path in root.rglob("*.py"):
        if path.name != "_kernels.py":
            text = path.read_text()
            assert not re.search(r"_compiled\(|_SOURCES|_COMPILED", text), path
    tree = ast.parse((root / "_kernels.py").read_text())
    calling = {
        function.name
        for function in tree.body
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_compiled"
    }
    assert calling == {
        "csr_times_rows",
        "csr_times_csr",
        "csr_times_blocks",
        "dense_times_csr",
        "dense_times_rows",
        "adam_rows_",
    }
