"""The compiled loops of skprune._kernels against numpy, scipy and torch.

numba is a declared dependency: without it these tests fail (the import below),
they are not skipped, so a broken install cannot pass unnoticed. The kernels are
called directly, so they are tested also under ``SKPRUNE_DISABLE_NUMBA=1``.
"""

import numba  # noqa: F401 - a missing numba must fail this module, not skip it
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skprune import _kernels
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
