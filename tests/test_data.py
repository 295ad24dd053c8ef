"""Tests for skprune.data: canonical CSR, torch conversion, datasets and batches."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.utils.data import Subset, TensorDataset

from skprune.data import BatchLoader, SparseDataset, as_canonical_csr, to_torch

pytestmark = pytest.mark.filterwarnings(
    "ignore:Sparse CSR tensor support is in beta:UserWarning"
)

DTYPES = [np.float64, np.float32, np.int64, np.int32, np.bool_]


# as_canonical_csr ---------------------------------------------------------------------


def messy_csr_parts(dtype):
    """CSR arrays with a duplicate, unsorted indices, an explicit zero, an empty row."""
    data = np.array([1, 0, 2, 3, 1, 4, 5], dtype=dtype)
    indices = np.array([3, 1, 0, 3, 2, 2, 0], dtype=np.int32)
    # row 0: cols 3, 1 (explicit zero), 0, 3 (duplicate) -- unsorted
    # row 1: empty; row 2: cols 2, 2 (duplicate), 0 -- unsorted
    indptr = np.array([0, 4, 4, 7], dtype=np.int32)
    return data, indices, indptr


def make_messy(kind, dtype):
    data, indices, indptr = messy_csr_parts(dtype)
    if kind == "csr_matrix":
        return sp.csr_matrix((data, indices, indptr), shape=(3, 5))
    if kind == "csr_array":
        return sp.csr_array((data, indices, indptr), shape=(3, 5))
    if kind == "csc_matrix":  # the same arrays read column-major: shape (5, 3)
        return sp.csc_matrix((data, indices, indptr), shape=(5, 3))
    if kind in ("coo_matrix", "coo_array"):
        rows = np.repeat(np.arange(3), np.diff(indptr))
        cls = sp.coo_matrix if kind == "coo_matrix" else sp.coo_array
        return cls((data, (rows, indices)), shape=(3, 5))
    raise AssertionError(kind)


def _arrays(X):
    if X.format == "coo":
        return {"data": X.data, "row": X.row, "col": X.col}
    return {"data": X.data, "indices": X.indices, "indptr": X.indptr}


def _flags(X):
    flags = {"has_canonical_format": X.has_canonical_format}
    if X.format in ("csr", "csc"):
        flags["has_sorted_indices"] = X.has_sorted_indices
    return flags


KINDS = ["csr_matrix", "csr_array", "csc_matrix", "coo_matrix", "coo_array"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_as_canonical_csr_never_modifies_its_input(kind, dtype):
    X = make_messy(kind, dtype)
    arrays = _arrays(X)
    copies = {name: array.copy() for name, array in arrays.items()}
    flags = _flags(X)
    dense = X.toarray()

    as_canonical_csr(X)

    for name, array in _arrays(X).items():
        assert array is arrays[name]  # not replaced
        np.testing.assert_array_equal(array, copies[name])  # not changed in place
        assert array.dtype == copies[name].dtype
    assert _flags(X) == flags
    assert not flags["has_canonical_format"]
    np.testing.assert_array_equal(X.toarray(), dense)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_as_canonical_csr_is_canonical_and_equal_to_the_dense_form(kind, dtype):
    X = make_messy(kind, dtype)
    result = as_canonical_csr(X)
    assert isinstance(result, sp.csr_matrix)
    assert result.dtype == np.dtype(dtype)
    assert result.shape == X.shape
    np.testing.assert_array_equal(result.toarray(), X.toarray())
    assert np.all(result.data != 0)  # no stored zeros
    for row in range(result.shape[0]):
        cols = result.indices[result.indptr[row] : result.indptr[row + 1]]
        assert np.all(np.diff(cols) > 0)  # sorted and unique
    assert result.has_canonical_format


def test_as_canonical_csr_result_does_not_share_fixed_arrays_with_input():
    X = make_messy("csr_matrix", np.float64)
    before = X.toarray()
    result = as_canonical_csr(X)
    result.data[:] = 99.0
    result.indices[:] = 0
    np.testing.assert_array_equal(X.toarray(), before)


def test_as_canonical_csr_of_canonical_input_keeps_values():
    X = sp.random(20, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    X.data += 1.0  # no zeros
    copies = {name: a.copy() for name, a in _arrays(X).items()}
    result = as_canonical_csr(X)
    np.testing.assert_array_equal(result.toarray(), X.toarray())
    assert result.dtype == np.float32
    for name, array in _arrays(X).items():
        np.testing.assert_array_equal(array, copies[name])


def test_as_canonical_csr_of_all_zero_stored_values_is_empty():
    X = sp.csr_matrix(
        (np.zeros(3), np.array([0, 1, 2]), np.array([0, 3])), shape=(1, 3)
    )
    result = as_canonical_csr(X)
    assert result.nnz == 0
    assert X.nnz == 3


# to_torch -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_torch_of_csr_is_a_sparse_csr_tensor_equal_to_the_dense_array(dtype):
    X = as_canonical_csr(make_messy("csr_matrix", dtype))
    tensor = to_torch(X)
    assert tensor.layout == torch.sparse_csr
    assert tuple(tensor.shape) == X.shape
    assert tensor.dtype == torch.from_numpy(np.zeros(1, dtype=dtype)).dtype
    np.testing.assert_array_equal(tensor.to_dense().numpy(), X.toarray())


def test_to_torch_of_csr_shares_memory():
    X = sp.random(6, 8, density=0.3, format="csr", random_state=1, dtype=np.float32)
    tensor = to_torch(X)
    assert np.shares_memory(tensor.values().numpy(), X.data)


@pytest.mark.parametrize(
    ("indptr_dtype", "indices_dtype"),
    [(np.int64, np.int64), (np.int64, np.int32), (np.int32, np.int64)],
)
def test_to_torch_of_int64_indexed_csr(indptr_dtype, indices_dtype):
    X = sp.random(7, 9, density=0.3, format="csr", random_state=2, dtype=np.float32)
    X.indptr = X.indptr.astype(indptr_dtype)
    X.indices = X.indices.astype(indices_dtype)
    tensor = to_torch(X)
    assert tensor.layout == torch.sparse_csr
    assert tensor.crow_indices().dtype == torch.int64
    assert tensor.col_indices().dtype == torch.int64
    np.testing.assert_array_equal(tensor.to_dense().numpy(), X.toarray())


def test_to_torch_of_csr_with_empty_rows():
    X = sp.csr_matrix(np.array([[0, 0, 0], [1.5, 0, 2], [0, 0, 0]]))
    tensor = to_torch(X)
    np.testing.assert_array_equal(tensor.to_dense().numpy(), X.toarray())


def test_to_torch_of_dense_array():
    X = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    tensor = to_torch(X)
    assert tensor.layout == torch.strided
    assert tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.numpy(), X)


# SparseDataset ------------------------------------------------------------------------


def test_sparse_dataset_length_x_and_y():
    X = sp.random(9, 4, density=0.5, format="csr", random_state=0)
    y = np.arange(9)
    dataset = SparseDataset(X, y)
    assert len(dataset) == 9
    assert dataset.X is X
    assert dataset.y is y
    assert SparseDataset(X).y is None
    assert len(SparseDataset(X.toarray())) == 9


def test_sparse_dataset_getitem_returns_a_row_and_its_target():
    X = sp.csr_matrix(np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]]))
    Xi, yi = SparseDataset(X, np.array([10, 11, 12]))[1]
    assert Xi.layout == torch.sparse_csr
    assert Xi.to_dense().tolist() == [[2.0, 0.0]]
    assert yi == 11


def test_sparse_dataset_rejects_other_sparse_formats_and_wrong_y():
    X = sp.random(5, 3, density=0.5, format="csr", random_state=0)
    with pytest.raises(TypeError, match="CSR"):
        SparseDataset(X.tocsc())
    with pytest.raises(ValueError, match="5 rows but y has 4"):
        SparseDataset(X, np.arange(4))


# BatchLoader --------------------------------------------------------------------------

N_ROWS = 10


def identified_dataset(sparse, n=N_ROWS, n_features=4):
    """Row i holds the value i + 1 once (column i % n_features) and y[i] == i."""
    dense = np.zeros((n, n_features), dtype=np.float32)
    dense[np.arange(n), np.arange(n) % n_features] = np.arange(1, n + 1)
    X = sp.csr_matrix(dense) if sparse else dense
    return SparseDataset(X, np.arange(n))


def rows_of(batch):
    """Row ids of a batch, checking that X and y agree."""
    Xb, yb = batch
    dense = Xb.to_dense() if Xb.layout != torch.strided else Xb
    ids = (dense.sum(dim=1) - 1).long()
    assert torch.equal(ids, yb)
    return ids.tolist()


def collect(loader):
    return [rows_of(batch) for batch in loader]


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_every_row_exactly_once(sparse, shuffle):
    torch.manual_seed(0)
    loader = BatchLoader(identified_dataset(sparse), batch_size=4, shuffle=shuffle)
    batches = collect(loader)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert len(loader) == 3
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(N_ROWS))
    if not shuffle:
        assert flat == list(range(N_ROWS))


@pytest.mark.parametrize("sparse", [True, False])
def test_sparse_batches_are_sparse_csr_tensors(sparse):
    Xb, yb = next(iter(BatchLoader(identified_dataset(sparse), batch_size=3)))
    assert Xb.layout == (torch.sparse_csr if sparse else torch.strided)
    assert tuple(Xb.shape) == (3, 4)
    assert yb.dtype == torch.int64


@pytest.mark.parametrize("shuffle", [False, True])
def test_drop_last_drops_the_short_batch(shuffle):
    torch.manual_seed(1)
    loader = BatchLoader(
        identified_dataset(True), batch_size=4, shuffle=shuffle, drop_last=True
    )
    batches = collect(loader)
    assert len(loader) == 2
    assert [len(b) for b in batches] == [4, 4]
    assert len({i for b in batches for i in b}) == 8


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last", "expected"),
    [
        (10, 4, False, 3),
        (10, 4, True, 2),
        (8, 4, False, 2),
        (8, 4, True, 2),
        (3, 4, False, 1),
        (3, 4, True, 0),
        (10, 1, False, 10),
    ],
)
def test_len_matches_the_number_of_batches(n, batch_size, drop_last, expected):
    loader = BatchLoader(
        identified_dataset(True, n=n), batch_size=batch_size, drop_last=drop_last
    )
    assert len(loader) == expected
    assert len(list(loader)) == expected


@pytest.mark.parametrize("wrap", [list, np.array, torch.tensor])
def test_subset_rows_are_taken_in_subset_order(wrap):
    subset = Subset(identified_dataset(True), wrap([7, 2, 5, 0, 9]))
    loader = BatchLoader(subset, batch_size=2)
    assert len(loader) == 3
    assert collect(loader) == [[7, 2], [5, 0], [9]]


def test_nested_subset_rows_are_composed():
    inner = Subset(identified_dataset(False), [7, 2, 5, 0, 9])
    outer = Subset(inner, [4, 1, 3])
    loader = BatchLoader(outer, batch_size=2)
    assert len(loader) == 2
    assert collect(loader) == [[9, 2], [0]]


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_subset_covers_only_its_rows(drop_last):
    torch.manual_seed(2)
    subset = Subset(Subset(identified_dataset(True), [1, 3, 5, 7, 9, 8]), [0, 2, 4, 5])
    loader = BatchLoader(subset, batch_size=3, shuffle=True, drop_last=drop_last)
    flat = [i for b in collect(loader) for i in b]
    if drop_last:
        assert len(flat) == 3
        assert set(flat) <= {1, 5, 9, 8}
    else:
        assert sorted(flat) == [1, 5, 8, 9]


def test_densify_gives_dense_tensors_with_the_same_values():
    dataset = identified_dataset(True)
    sparse = list(BatchLoader(dataset, batch_size=4))
    dense = list(BatchLoader(dataset, batch_size=4, densify=True))
    assert len(sparse) == len(dense)
    for (Xs, ys), (Xd, yd) in zip(sparse, dense, strict=True):
        assert Xd.layout == torch.strided
        assert torch.equal(Xd, Xs.to_dense())
        assert torch.equal(yd, ys)


def test_densify_with_dense_data_is_harmless():
    Xb, _ = next(
        iter(BatchLoader(identified_dataset(False), batch_size=5, densify=True))
    )
    assert Xb.layout == torch.strided
    assert tuple(Xb.shape) == (5, 4)


def test_without_targets_batches_have_none():
    X = sp.random(5, 3, density=0.5, format="csr", random_state=0)
    batches = list(BatchLoader(SparseDataset(X), batch_size=2))
    assert len(batches) == 3
    assert all(yb is None for _, yb in batches)


@pytest.mark.parametrize("option", ["collate_fn", "sampler", "batch_sampler", "foo"])
def test_unknown_dataloader_options_raise_type_error(option):
    with pytest.raises(TypeError, match=option):
        BatchLoader(identified_dataset(True), **{option: None})


def test_worker_and_pinning_options_are_accepted():
    loader = BatchLoader(
        identified_dataset(True),
        batch_size=4,
        num_workers=2,
        pin_memory=True,
        persistent_workers=True,
        prefetch_factor=2,
        timeout=5,
    )
    assert [len(b) for b in collect(loader)] == [4, 4, 2]


def test_bad_batch_size_and_dataset_raise():
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(identified_dataset(True), batch_size=0)
    with pytest.raises(TypeError, match="SparseDataset"):
        BatchLoader(TensorDataset(torch.zeros(3, 2)), batch_size=2)


def test_shuffle_is_reproducible_under_torch_manual_seed():
    loader = BatchLoader(identified_dataset(True, n=20), batch_size=6, shuffle=True)
    torch.manual_seed(42)
    first_epoch, second_epoch = collect(loader), collect(loader)
    torch.manual_seed(42)
    assert collect(loader) == first_epoch
    assert collect(loader) == second_epoch
    assert first_epoch != second_epoch  # a new permutation each epoch
    torch.manual_seed(43)
    assert collect(loader) != first_epoch
