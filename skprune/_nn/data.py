"""Batches from scipy sparse matrices, a batch at a time, as torch tensors.

skorch's own data path indexes one row at a time and densifies it
(``X[i].toarray()``), then stacks the rows: on a 20,000 x 100,000 CSR matrix at 0.1%
density that costs 89 s an epoch. Here a batch is one fancy-indexing slice of the
CSR matrix (cost proportional to its stored values) handed to torch without copying,
as a ``torch.sparse_csr_tensor``. Dense arrays are batched the same way.

:class:`SparseDataset` and :class:`BatchLoader` plug into skorch as ``dataset`` and
``iterator_train``/``iterator_valid``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset, Subset

from ._kernels import check_compressed_structure, check_index_range
from ._random import fit_generator

__all__ = ["BatchLoader", "SparseDataset", "as_canonical_csr", "to_torch"]

# DataLoader options that only tune worker processes and memory pinning: accepted so
# that a net configured for DataLoader keeps working, and ignored because batching a
# CSR matrix in the main process is cheaper than shipping it to workers.
_IGNORED_LOADER_OPTIONS = frozenset(
    {"num_workers", "pin_memory", "persistent_workers", "prefetch_factor", "timeout"}
)


def as_canonical_csr(X: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Return ``X`` as a CSR matrix with sorted, unique indices and no stored zeros.

    The input is never modified: a copy is made whenever something must change.
    Any scipy sparse format (matrix or array) is accepted; the dtype is kept.

    Parameters
    ----------
    X : scipy sparse matrix or array of shape (n_samples, n_features)

    Returns
    -------
    X_csr : scipy.sparse.csr_matrix of shape (n_samples, n_features)

    Raises
    ------
    ValueError
        If an index of ``X`` lies outside its shape (a column index that is
        negative or at least ``n_features``, say), or its index pointers are
        inconsistent. scipy checks these only when a matrix is built from
        arrays, not after its arrays are changed in place, and converting or
        multiplying such a matrix reads memory outside it.

    Examples
    --------
    A duplicate entry is summed, an explicit zero dropped, the caller's matrix
    left as it was:

    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skprune.data import as_canonical_csr
    >>> data = np.array([1.0, 2.0, 0.0, 3.0], dtype=np.float32)
    >>> X = sp.csr_matrix((data, [2, 0, 1, 2], [0, 3, 4]), shape=(2, 3))
    >>> X_csr = as_canonical_csr(X)
    >>> X_csr.has_canonical_format, X_csr.nnz, X_csr.dtype, X.nnz
    (True, 3, dtype('float32'), 4)
    >>> X_csr.toarray().tolist()
    [[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]]

    An index changed in place to point outside the matrix is refused:

    >>> X = sp.csr_matrix(np.eye(2, dtype=np.float32))
    >>> X.indices[1] = 5
    >>> as_canonical_csr(X)
    Traceback (most recent call last):
    ...
    ValueError: X has column index 5, outside the matrix's 2 columns: column \
indices must be in [0, 1].
    """
    _check_sparse_structure(X)
    X_csr = sp.csr_matrix(X)
    if X_csr.has_canonical_format and np.all(X_csr.data != 0):
        return X_csr
    X_csr = X_csr.copy()  # the fixes below work in place; the caller's X stays as is
    X_csr.sum_duplicates()  # also sorts the indices
    X_csr.eliminate_zeros()
    return X_csr


def _check_sparse_structure(X) -> None:
    """Raise ``ValueError`` if the index arrays of ``X`` point outside its shape.

    Any scipy sparse format: the compressed ones (CSR, CSC, BSR) through the
    kernels' own check (:func:`skprune._nn._kernels.check_compressed_structure`),
    COO by the range of its coordinates. O(nnz) with no copy: a minimum and a
    maximum over each index array, and a comparison over the index pointers.
    """
    if len(X.shape) != 2:
        raise ValueError(f"X must be 2-d, got a sparse array of shape {X.shape}.")
    n_rows, n_cols = X.shape
    if X.format in ("csr", "csc", "bsr"):
        block_rows, block_cols = X.blocksize if X.format == "bsr" else (1, 1)
        pointed, indexed = ("row", "column") if X.format != "csc" else ("column", "row")
        if X.format == "bsr":
            pointed, indexed = f"block {pointed}", f"block {indexed}"
        n_pointed, n_indexed = (
            (n_rows // block_rows, n_cols // block_cols)
            if X.format != "csc"
            else (n_cols, n_rows)
        )
        check_compressed_structure(
            np.asarray(X.indptr),
            np.asarray(X.indices),
            n_pointed=n_pointed,
            n_indexed=n_indexed,
            n_stored=min(len(X.indices), len(X.data)),
            sparse_format=X.format.upper(),
            pointed=pointed,
            indexed=indexed,
        )
    elif X.format == "coo":
        if not len(X.row) == len(X.col) == len(X.data):
            raise ValueError(
                f"X has {len(X.row)} row indices, {len(X.col)} column indices and "
                f"{len(X.data)} values: a COO matrix needs as many of each."
            )
        check_index_range(X.row, n_rows, what="row")
        check_index_range(X.col, n_cols, what="column")


@contextlib.contextmanager
def quiet_sparse_csr_beta() -> Iterator[None]:
    """Silence torch's "Sparse CSR tensor support is in beta" for skprune's own calls.

    skprune builds CSR tensors on purpose (sparse input, and dense batches on the
    row-sparse gradient path); the warning would otherwise reach every user.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Sparse CSR tensor support", category=UserWarning
        )
        yield


def to_torch(X: sp.csr_matrix | np.ndarray) -> torch.Tensor:
    """Convert a CSR matrix or a dense array to a torch tensor, sharing memory.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix or numpy.ndarray of shape (n_samples, n_features)

    Returns
    -------
    tensor : torch.Tensor
        A ``torch.sparse_csr`` tensor for sparse input, a strided tensor otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skprune.data import to_torch
    >>> X = sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]], np.float32))
    >>> tensor = to_torch(X)
    >>> tensor.layout, tensor.shape, tensor.dtype
    (torch.sparse_csr, torch.Size([2, 3]), torch.float32)
    >>> tensor.to_dense().tolist()
    [[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]]

    Dense arrays share their memory too:

    >>> array = np.zeros((2, 3), dtype=np.float32)
    >>> dense = to_torch(array)
    >>> array[0, 0] = 7.0
    >>> dense.layout, dense[0, 0].item()
    (torch.strided, 7.0)
    """
    if sp.issparse(X):
        indptr = torch.from_numpy(np.ascontiguousarray(X.indptr))
        indices = torch.from_numpy(np.ascontiguousarray(X.indices))
        if indptr.dtype != indices.dtype:
            indptr, indices = indptr.long(), indices.long()
        with quiet_sparse_csr_beta():
            return torch.sparse_csr_tensor(
                indptr,
                indices,
                torch.from_numpy(np.ascontiguousarray(X.data)),
                size=X.shape,
                check_invariants=False,
            )
    return torch.from_numpy(np.ascontiguousarray(X))


class SparseDataset(Dataset):
    """A dataset over a CSR matrix or a dense array, with optional targets.

    skorch reads ``X`` and ``y`` from it (``skorch.utils.data_from_dataset``), and
    its ``ValidSplit`` wraps it in a ``torch.utils.data.Subset``, which
    :class:`BatchLoader` unwraps. Indexing one row is supported for completeness;
    training never does it.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix or numpy.ndarray of shape (n_samples, n_features)
    y : numpy.ndarray of shape (n_samples,) or None, default=None

    Raises
    ------
    TypeError
        If ``X`` is sparse but not CSR.
    ValueError
        If ``y`` has not one entry per row of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skprune.data import SparseDataset
    >>> X = sp.random(10, 6, density=0.5, format="csr", random_state=0)
    >>> dataset = SparseDataset(X, np.arange(10))
    >>> len(dataset), dataset.X is X
    (10, True)
    >>> SparseDataset(X.tocsc())
    Traceback (most recent call last):
    ...
    TypeError: SparseDataset needs a CSR matrix, got 'csc'; convert it with \
skprune.data.as_canonical_csr.
    """

    def __init__(self, X, y=None) -> None:
        if sp.issparse(X) and X.format != "csr":
            raise TypeError(
                f"SparseDataset needs a CSR matrix, got {X.format!r}; convert it with "
                "skprune.data.as_canonical_csr."
            )
        if y is not None and len(y) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(y)} entries.")
        self.X = X
        self.y = y

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, index):
        rows = np.atleast_1d(index)
        return to_torch(self.X[rows]), None if self.y is None else self.y[index]


class BatchLoader:
    """Iterate over a :class:`SparseDataset` in batches of contiguous tensors.

    Usable as skorch's ``iterator_train`` and ``iterator_valid``; it takes the
    keyword arguments skorch passes to a ``DataLoader`` for these roles.

    Parameters
    ----------
    dataset : SparseDataset or torch.utils.data.Subset of one
    batch_size : int, default=128
    shuffle : bool, default=False
        Draw a new permutation of the rows each epoch, from the running fit's
        generator (:func:`skprune.fit_generator`, seeded by the estimator's
        ``random_state``); outside a fit, from torch's global generator.
    drop_last : bool, default=False
        Drop the last batch when it is smaller than ``batch_size``.
    densify : bool, default=False
        Hand sparse batches over as dense tensors, for modules that cannot take
        sparse input. Only one batch is ever dense at a time.
    sample_weight : numpy.ndarray of shape (n_samples,), default=None
        Non-negative weights of the underlying dataset's rows (indexed like its
        rows, also when ``dataset`` is a ``Subset``). When given, each batch's
        target is the pair ``(y, weights)``, which
        :class:`skprune.losses.WeightedLoss` takes apart, and rows of weight 0
        are left out of the batches: batched exactly as if they had been
        removed, they cannot move a lazy optimizer (which steps every
        first-layer row a batch touches) either. For training batches only.
    **options
        ``DataLoader`` worker and pinning options, accepted and ignored.

    Raises
    ------
    TypeError
        For a dataset that is not a :class:`SparseDataset` (or a ``Subset`` of
        one), or a ``DataLoader`` option other than those ignored.
    ValueError
        If ``batch_size`` is below 1, or ``sample_weight`` does not match the
        dataset's rows.

    Examples
    --------
    Ten rows in batches of four, each batch a sparse tensor:

    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skprune.data import BatchLoader, SparseDataset
    >>> X = sp.random(10, 6, density=0.5, format="csr", random_state=0)
    >>> loader = BatchLoader(SparseDataset(X, np.arange(10)), batch_size=4)
    >>> len(loader)
    3
    >>> for X_batch, y_batch in loader:
    ...     print(X_batch.layout, tuple(X_batch.shape), y_batch.tolist())
    torch.sparse_csr (4, 6) [0, 1, 2, 3]
    torch.sparse_csr (4, 6) [4, 5, 6, 7]
    torch.sparse_csr (2, 6) [8, 9]

    Rows of weight 0 are left out, and targets come with their weights:

    >>> weights = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 2.0])
    >>> loader = BatchLoader(loader.dataset, batch_size=4, sample_weight=weights)
    >>> [(y.tolist(), w.tolist()) for _, (y, w) in loader]
    [([0, 2, 3, 4], [1.0, 1.0, 1.0, 1.0]), ([5, 7, 8, 9], [1.0, 1.0, 1.0, 2.0])]
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        densify: bool = False,
        sample_weight: np.ndarray | None = None,
        **options,
    ) -> None:
        unknown = set(options) - _IGNORED_LOADER_OPTIONS
        if unknown:
            raise TypeError(
                f"BatchLoader got unsupported DataLoader options {sorted(unknown)}; "
                "use skorch's own DataLoader (estimator__iterator_train=DataLoader) "
                "if you need them."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.densify = densify
        self.sample_weight = sample_weight
        self._base, self._rows = _unwrap_subsets(dataset)
        if sample_weight is not None:
            self._rows = _weighted_rows(self._base, self._rows, sample_weight)

    def __len__(self) -> int:
        n = len(self._rows) if self._rows is not None else len(self._base)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __iter__(self):
        n = len(self._rows) if self._rows is not None else len(self._base)
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=fit_generator()).numpy()
        X, y = self._base.X, self._base.y
        for batch in range(len(self)):
            start, stop = batch * self.batch_size, min((batch + 1) * self.batch_size, n)
            if order is None and self._rows is None:
                rows = slice(start, stop)
            else:
                positions = (
                    order[start:stop] if order is not None else slice(start, stop)
                )
                rows = positions if self._rows is None else self._rows[positions]
            Xb = X[rows]
            if self.densify and sp.issparse(Xb):
                Xb = Xb.toarray()
            yb = None if y is None else torch.as_tensor(y[rows])
            if self.sample_weight is not None:
                yb = (yb, torch.as_tensor(self.sample_weight[rows]))
            yield to_torch(Xb), yb


def _weighted_rows(dataset, rows, sample_weight):
    """The selected rows of ``dataset`` (None: all) whose weight is not zero."""
    if dataset.y is None:
        raise ValueError("sample_weight needs a dataset with targets y.")
    if np.ndim(sample_weight) != 1 or len(sample_weight) != len(dataset):
        raise ValueError(
            f"sample_weight has shape {np.shape(sample_weight)}, but the dataset "
            f"has {len(dataset)} rows."
        )
    weighted = np.asarray(sample_weight) != 0
    if rows is None:
        return None if weighted.all() else np.flatnonzero(weighted)
    return rows[weighted[rows]]


def _unwrap_subsets(dataset):
    """Return the underlying :class:`SparseDataset` and the row indices selected."""
    rows = None
    while isinstance(dataset, Subset):
        indices = np.asarray(dataset.indices)
        rows = indices if rows is None else indices[rows]
        dataset = dataset.dataset
    if not isinstance(dataset, SparseDataset):
        raise TypeError(
            "BatchLoader iterates over a skprune.data.SparseDataset (or a Subset of "
            f"one), got {type(dataset).__name__}."
        )
    return dataset, rows
