"""Compiled loops that torch and scipy lack: sparse products and a lazy Adam row step.

Five kinds of loop, each over the rows of its output (in parallel when the work
is large enough) and each adding up an output row in one fixed order, whatever
the number of rows or threads (BLAS does not: it picks other kernels for other
batch sizes, which changes the last bits of a float32 row):

- a CSR batch times a weight stored row by row, dense (every stored input value
  adds one weight row) or CSR (it adds only that row's surviving weights), into
  a dense output. Input columns that the weight no longer has are skipped
  through a column map, so the batch is never sliced or copied;
- a CSR batch times a block-CSR weight (:class:`CheckedBlockCSR`: runs of B
  consecutive outputs of one input row, one column-block index and B
  contiguous values per run), each run multiplied whole by a loop compiled
  with B fixed (for B in :data:`BLOCK_SIZES`), so that it vectorises;
- dense rows (hidden activations) times a CSR weight, skipping zero activations;
- dense rows times a dense weight, skipping zero activations;
- Adam's update of the rows a sparse gradient touches, in place and in one pass
  over each row of the weight, both moments and the gradient.

Besides, :func:`csr_times_rows_embedding` checks its arguments as the others do
and hands a dense float32 first layer to torch's ``embedding_bag``.

The loops do not check their indices: an index outside an array reads or writes
outside it. So they are reached only through the public functions here, which
check every array on its way in, in O(size) vectorised numpy: dtypes, shapes that
agree, the structure of each CSR matrix (:class:`CheckedCSR`) and every index
against the array it indexes, raising ``ValueError`` that names the argument.
An array the loop only reads is made C-contiguous if it is not (a copy); one it
writes must already be. :class:`CheckedCSR` is a CSR matrix checked once, for a
weight that many calls multiply by, and :class:`CheckedColumnMap` a column map
checked once: a prediction then checks only its input. Index arrays are used as
stored, int32 or int64 (others become int64), so a weight is never widened per
call.

A weight may be int8 with one float32 scale per row (``scales``): each input
value is multiplied by its row's scale once, then by the int8 weights as they
are stored. The products that read a weight row per input value fetch the row
of a value a few values ahead (a prefetch), so that the random rows of a wide
weight arrive from memory while the current one is added. A product whose work
(multiply-adds) is below :data:`PARALLEL_WORK` runs serially: a single row
never waits for a second thread.

They are compiled with numba on first use (``cache=True``: later processes load
the machine code from disk). Without numba, :data:`HAVE_NUMBA` is False and the
callers use their torch and scipy paths. :func:`kept_entries` is the one column
filter for CSR input in torch (the module's), :func:`kept_entries_array` the
same filter in numpy (the compressed model's, cheaper on a row), and
:func:`check_compressed_structure` the one check of a compressed sparse
matrix's index arrays, shared with :func:`skprune.data.as_canonical_csr`.

No scikit-learn here.
"""

from __future__ import annotations

import os
import types
import warnings

import numpy as np
import scipy.sparse as sp
import torch

try:  # numba is optional: every caller has a torch or scipy path without it.
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

from ._threads import set_this_threads_count

__all__ = [
    "HAVE_NUMBA",
    "PARALLEL_WORK",
    "BLOCK_SIZES",
    "CheckedBlockCSR",
    "CheckedCSR",
    "CheckedColumnMap",
    "adam_rows_",
    "block_padding",
    "check_compressed_structure",
    "check_index_range",
    "csr_times_blocks",
    "csr_times_csr",
    "csr_times_rows",
    "csr_times_rows_embedding",
    "dense_times_csr",
    "dense_times_rows",
    "kept_entries",
    "kept_entries_array",
]

#: Whether the compiled kernels are available. ``SKPRUNE_DISABLE_NUMBA=1`` turns
#: them off (to compare against, or where compilation is unwanted).
HAVE_NUMBA = numba is not None and os.environ.get("SKPRUNE_DISABLE_NUMBA") != "1"

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_INT8 = np.dtype(np.int8)
#: The dtypes a block-CSR weight's column-block indices may have.
_BLOCK_INDEX_DTYPES = (np.dtype(np.int16), *_INDEX_DTYPES)
#: Block widths whose loop is compiled with the width fixed (fully unrolled,
#: vectorised); other widths run a loop of run-time length.
BLOCK_SIZES = (4, 8, 16)

#: Multiply-adds below which a product runs on one thread: waking a second
#: thread costs tens of microseconds, what about this much work costs.
PARALLEL_WORK = 200_000
#: How many stored input values ahead a product prefetches the weight row of.
_AHEAD = 16


def kept_entries(
    column_map: torch.Tensor,
    columns: torch.Tensor,
    offsets: torch.Tensor,
    values: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop the stored values of CSR rows whose column maps to -1; renumber the rest.

    Rows may be empty anywhere, the last ones included.

    Parameters
    ----------
    column_map : torch.Tensor of int64, shape (n_columns,)
        New position of each input column, or -1 for a column that is dropped.
    columns, offsets, values : torch.Tensor
        Column indices, row offsets (``n_rows + 1`` of them) and values of a CSR
        matrix.

    Returns
    -------
    columns, offsets, values : torch.Tensor
        The filtered CSR matrix, columns renumbered, offsets as int64.
    """
    offsets = offsets.to(torch.int64)
    n_rows = len(offsets) - 1
    mapped = column_map[columns.to(torch.int64)]
    kept = mapped >= 0
    rows = torch.repeat_interleave(
        torch.arange(n_rows, device=offsets.device), offsets.diff()
    )
    counts = torch.bincount(rows[kept], minlength=n_rows)
    new_offsets = torch.zeros_like(offsets)
    torch.cumsum(counts, 0, out=new_offsets[1:])
    return mapped[kept], new_offsets, values[kept]


def kept_entries_array(
    column_map: np.ndarray, columns: np.ndarray, offsets: np.ndarray, values
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`kept_entries` for checked numpy arrays: the same entries, in order.

    For prediction, where a few numpy operations cost less than torch's per-op
    dispatch on a row. Columns and offsets come back in the offsets' dtype,
    which holds any count of stored values.
    """
    mapped = column_map[columns]
    kept = mapped >= 0
    # kept values before each stored position; a row's offsets read it at its ends
    before = np.zeros(len(kept) + 1, dtype=offsets.dtype)
    np.cumsum(kept, out=before[1:])
    return mapped[kept].astype(offsets.dtype), before[offsets], values[kept]


# --- the checks every array passes on its way to a loop ---------------------------


def check_index_range(
    indices: np.ndarray, bound: int, *, name: str = "X", what: str = "column"
) -> None:
    """Raise ``ValueError`` unless every value of ``indices`` is in ``[0, bound)``.

    Parameters
    ----------
    indices : ndarray of integers
    bound : int
        The number of positions that ``indices`` may point to.
    name : str, default="X"
        What holds the indices, for the message.
    what : str, default="column"
        What the indices count (``"row"``, ``"column"``), for the message.
    """
    if not len(indices):
        return
    low, high = indices.min(), indices.max()
    if low < 0 or high >= bound:
        bad = int(low) if low < 0 else int(high)
        allowed = f"in [0, {bound - 1}]" if bound else "impossible: there are none"
        raise ValueError(
            f"{name} has {what} index {bad}, outside the matrix's {bound} {what}s: "
            f"{what} indices must be {allowed}."
        )


def check_compressed_structure(
    indptr: np.ndarray,
    indices: np.ndarray,
    *,
    n_pointed: int,
    n_indexed: int,
    n_stored: int,
    name: str = "X",
    sparse_format: str = "CSR",
    pointed: str = "row",
    indexed: str = "column",
) -> None:
    """Raise ``ValueError`` unless CSR (or CSC, BSR) index arrays fit their shape.

    The pointers must be ``n_pointed + 1`` integers, from 0, non-decreasing, to
    at most ``n_stored`` (scipy's rule: the index and value arrays may be
    longer than used); the indices they cover must be integers in
    ``[0, n_indexed)``. O(nnz), no copy.

    Parameters
    ----------
    indptr, indices : ndarray
        The index pointers and the indices of a compressed sparse matrix.
    n_pointed : int
        Rows of a CSR matrix (columns of a CSC one, block rows of a BSR one).
    n_indexed : int
        Columns of a CSR matrix (rows of a CSC one, block columns of a BSR one).
    n_stored : int
        The length of the shorter of the index and value arrays.
    name, sparse_format, pointed, indexed : str
        For the messages: what holds the arrays, its format, and what the
        pointers and the indices count.
    """
    for array, label in ((indptr, "indptr"), (indices, "indices")):
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise ValueError(
                f"{name}.{label} must be a 1-d array of integers, got "
                f"{array.ndim}-d {array.dtype}."
            )
    if (
        len(indptr) != n_pointed + 1
        or indptr[0] != 0
        or indptr[-1] > n_stored
        or np.any(indptr[1:] < indptr[:-1])
    ):
        raise ValueError(
            f"{name} has inconsistent {pointed} pointers (indptr): a {sparse_format} "
            f"matrix with {n_pointed} {pointed}s and {n_stored} stored values "
            f"needs {n_pointed + 1} non-decreasing pointers from 0 to at most "
            f"{n_stored}."
        )
    check_index_range(indices[: indptr[-1]], n_indexed, name=name, what=indexed)


class CheckedCSR:
    """A CSR matrix whose arrays were checked for the compiled loops.

    The index arrays are int32 or int64 (as stored; other integers become
    int64) and C-contiguous, the pointers consistent and every column index in
    ``[0, shape[1])``; the values are C-contiguous floats, or int8 where
    ``dtype`` asks for it. Made once for a weight that many products use; the
    products also take a plain scipy CSR matrix, which they check at each call.

    Parameters
    ----------
    matrix : scipy.sparse CSR matrix or array, 2-d
    name : str, default="X"
        The argument's name in error messages.
    dtype : numpy dtype, default=None
        The dtype the values must have; None accepts float32 and float64, and
        only an explicit ``np.int8`` accepts int8 values.
    own : bool, default=False
        Keep read-only copies of the arrays, so that nothing can change them
        after the check; otherwise the arrays are shared with ``matrix``
        wherever they already have the right dtype and order.

    Attributes
    ----------
    indptr, indices : ndarray of int32 or int64
    data : ndarray of float32, float64 or int8
    shape : tuple of int
    """

    __slots__ = ("data", "indices", "indptr", "shape")

    def __init__(self, matrix, *, name: str = "X", dtype=None, own: bool = False):
        if not sp.issparse(matrix) or matrix.format != "csr":
            raise TypeError(
                f"{name} must be a scipy.sparse CSR matrix, got "
                f"{type(matrix).__name__}"
                + (f" in format {matrix.format!r}." if sp.issparse(matrix) else ".")
            )
        if len(matrix.shape) != 2:
            raise ValueError(f"{name} must be 2-d, got shape {matrix.shape}.")
        data = np.asarray(matrix.data)
        allowed = (
            (_INT8,) if dtype is not None and np.dtype(dtype) == _INT8 else _FLOATS
        )
        if data.ndim != 1 or data.dtype not in allowed:
            kinds = " or ".join(str(d) for d in allowed)
            raise ValueError(
                f"{name}.data must be a 1-d array of {kinds}, got "
                f"{data.ndim}-d {data.dtype}."
            )
        if dtype is not None and data.dtype != dtype:
            raise ValueError(f"{name} must hold {np.dtype(dtype)}, got {data.dtype}.")
        indptr, indices = np.asarray(matrix.indptr), np.asarray(matrix.indices)
        n_rows, n_columns = matrix.shape
        check_compressed_structure(
            indptr,
            indices,
            n_pointed=n_rows,
            n_indexed=n_columns,
            n_stored=min(len(indices), len(data)),
            name=name,
        )
        stored = int(indptr[-1])
        arrays = [_index(indptr), _index(indices[:stored])]
        arrays.append(np.ascontiguousarray(data[:stored]))
        if own:
            arrays = [_read_only(np.array(a, copy=True)) for a in arrays]
        self.indptr, self.indices, self.data = arrays
        self.shape = (int(n_rows), int(n_columns))

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nnz(self) -> int:
        return len(self.data)


class CheckedColumnMap:
    """A column map checked once: each input column's weight row, or -1.

    Parameters
    ----------
    column_map : ndarray of integers, shape (n_columns,)
        Entries in ``[-1, n_weight_rows)``.
    n_weight_rows : int
        Rows of the weight the map points into.

    Attributes
    ----------
    array : ndarray of int32 (int64 for more than 2**31 - 1 weight rows)
        A read-only copy.
    n_weight_rows : int
    """

    __slots__ = ("array", "identity", "n_weight_rows")

    def __init__(self, column_map, n_weight_rows: int):
        checked = _checked_column_map(column_map, len(column_map), n_weight_rows)
        narrow = np.int32 if n_weight_rows < 2**31 else np.int64
        self.array = _read_only(checked.astype(narrow))
        self.n_weight_rows = int(n_weight_rows)
        #: Whether column j is weight row j for every column (nothing dropped).
        self.identity = bool(
            len(checked) == n_weight_rows
            and np.array_equal(checked, np.arange(len(checked)))
        )

    @property
    def nbytes(self) -> int:
        return self.array.nbytes


class CheckedBlockCSR:
    """A weight stored as runs of ``block_size`` consecutive columns, checked.

    Row ``j`` keeps the blocks ``indptr[j]:indptr[j + 1]``; block ``b`` holds
    the weights of columns ``columns[b] * block_size`` onwards,
    ``values[b]``, all ``block_size`` of them contiguous, so that a product
    multiplies a block whole. The last column block may be ragged (when
    ``shape[1] % block_size != 0``): its values beyond ``shape[1]`` are never
    read. Checked once, for a weight many products use: pointers from 0,
    non-decreasing, to the number of blocks; every block index in
    ``[0, n_column_blocks)``; ``values`` of shape (n_blocks, block_size).

    Parameters
    ----------
    indptr : ndarray of int32 or int64, shape (n_rows + 1,)
    columns : ndarray of int16, int32 or int64, shape (n_blocks,)
        The column block of each stored block (other integers become int64).
    values : ndarray of float32, float64 or int8, shape (n_blocks, block_size)
    n_columns : int
        Columns of the weight (``shape[1]``).
    name : str, default="weight"
        The argument's name in error messages.
    dtype : numpy dtype, default=None
        The dtype the values must have; None accepts float32 and float64, and
        only an explicit ``np.int8`` accepts int8 values.

    Attributes
    ----------
    indptr, columns, values : ndarray
        As given where already of an accepted dtype and C-contiguous, else
        converted copies.
    shape : tuple of int
    block_size : int
    """

    __slots__ = ("columns", "indptr", "shape", "values")

    def __init__(
        self, indptr, columns, values, n_columns: int, *, name="weight", dtype=None
    ):
        values = np.asarray(values)
        allowed = (
            (_INT8,) if dtype is not None and np.dtype(dtype) == _INT8 else _FLOATS
        )
        if values.ndim != 2 or values.dtype not in allowed or values.shape[1] < 1:
            kinds = " or ".join(str(d) for d in allowed)
            raise ValueError(
                f"{name}.values must be a 2-d array (one row of block_size values "
                f"per block) of {kinds}, got {values.ndim}-d {values.dtype} of "
                f"shape {values.shape}."
            )
        if dtype is not None and values.dtype != dtype:
            raise ValueError(f"{name} must hold {np.dtype(dtype)}, got {values.dtype}.")
        indptr, columns = np.asarray(indptr), np.asarray(columns)
        if int(n_columns) < 1:
            raise ValueError(f"{name} needs at least one column, got {n_columns}.")
        block_size = values.shape[1]
        n_column_blocks = -(-int(n_columns) // block_size)
        if len(columns) != len(values):
            raise ValueError(
                f"{name} has {len(columns)} block indices but {len(values)} blocks "
                "of values: one index per block."
            )
        check_compressed_structure(
            indptr,
            columns,
            n_pointed=max(0, len(indptr) - 1) if indptr.ndim == 1 else 0,
            n_indexed=n_column_blocks,
            n_stored=len(values),
            name=name,
            sparse_format="block-CSR",
            indexed="column block",
        )
        if indptr[-1] != len(values):
            raise ValueError(
                f"{name}'s pointers end at {int(indptr[-1])}, but it holds "
                f"{len(values)} blocks: they must cover every block."
            )
        self.indptr = _index(indptr)
        kind = columns.dtype if columns.dtype in _BLOCK_INDEX_DTYPES else np.int64
        self.columns = np.ascontiguousarray(columns, dtype=kind)
        self.values = np.ascontiguousarray(values)
        self.shape = (len(indptr) - 1, int(n_columns))

    @classmethod
    def from_csr(cls, matrix, block_size: int, *, name: str = "weight"):
        """The blocks of a CSR matrix: every aligned run of ``block_size``
        columns of a row that keeps an entry, zeros where the run lacks one.

        Block indices are int16 where they fit, else int32 or int64. When
        every run kept is whole (:func:`block_padding` is 0) and the width is
        a multiple of ``block_size``, ``values`` is a view of the matrix's own
        values (of a sorted, summed copy where they are not): nothing is copied.
        """
        checked = _checked_csr(matrix, name, _INT8 if matrix.dtype == _INT8 else None)
        matrix = _canonical(checked)
        rows, blocks, n_column_blocks = _entry_blocks(matrix, block_size)
        n_rows, n_columns = matrix.shape
        keys = rows * n_column_blocks + blocks
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        block_of_entry = np.cumsum(first) - 1
        n_blocks = int(first.sum())
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[first], minlength=n_rows), out=indptr[1:])
        narrow = np.int16 if n_column_blocks <= 2**15 else np.int32
        narrow = narrow if n_column_blocks <= 2**31 else np.int64
        columns = blocks[first].astype(narrow)
        if n_blocks * block_size == matrix.nnz and n_columns % block_size == 0:
            values = matrix.data.reshape(n_blocks, block_size)
        else:
            values = np.zeros((n_blocks, block_size), dtype=matrix.dtype)
            values[block_of_entry, matrix.indices % block_size] = matrix.data
        narrow_pointers = np.int32 if n_blocks < 2**31 else np.int64
        return cls(indptr.astype(narrow_pointers), columns, values, n_columns,
                   name=name, dtype=matrix.dtype)  # fmt: skip

    @property
    def block_size(self) -> int:
        return self.values.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def nbytes(self) -> int:
        return self.indptr.nbytes + self.columns.nbytes + self.values.nbytes


def _canonical(matrix):
    """A CSR matrix (or CheckedCSR) as scipy CSR with sorted, summed entries:
    itself (its arrays shared) where it is so already, else a canonical copy."""
    if isinstance(matrix, CheckedCSR):
        matrix = sp.csr_matrix(
            (matrix.data, matrix.indices, matrix.indptr), shape=matrix.shape
        )
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return matrix


def _check_block_size(block_size) -> None:
    if (
        not isinstance(block_size, int | np.integer)
        or isinstance(block_size, bool)
        or block_size < 1
    ):
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}.")


def _entry_blocks(matrix, block_size: int, rows: slice = slice(None)):
    """Row (from the slice's start), column block and the number of column blocks
    of each stored entry of the rows ``rows`` (all of them by default)."""
    _check_block_size(block_size)
    n_rows, n_columns = matrix.shape
    start, stop, _ = rows.indices(n_rows)
    lo, hi = matrix.indptr[start], matrix.indptr[stop]
    counts = np.diff(matrix.indptr[start : stop + 1])
    row_of_entry = np.repeat(np.arange(stop - start, dtype=np.int64), counts)
    blocks = matrix.indices[lo:hi].astype(np.int64) // block_size
    return row_of_entry, blocks, -(-n_columns // block_size)


#: Entries per pass of :func:`block_padding`: its temporaries (a few int64 arrays
#: of this length) stay small however large the weight (a first layer at hashing
#: width keeps tens of millions of entries).
_PADDING_CHUNK = 1 << 18


def block_padding(matrix, block_size: int) -> int:
    """Zeros a block-CSR copy of the CSR ``matrix`` would store.

    0 when every aligned run of ``block_size`` columns (the last one of a row
    as wide as the columns left) is kept whole or not at all.

    Parameters
    ----------
    matrix : scipy.sparse CSR matrix or CheckedCSR
        Stored zeros count as kept.
    block_size : int

    Returns
    -------
    int
    """
    matrix = _canonical(
        _checked_csr(matrix, "matrix", _INT8 if matrix.dtype == _INT8 else None)
    )
    _check_block_size(block_size)
    n_rows, n_columns = matrix.shape
    indptr, stored, start = matrix.indptr, 0, 0
    while start < n_rows:
        # Whole rows (a block never spans two), about _PADDING_CHUNK entries.
        stop = int(np.searchsorted(indptr, indptr[start] + _PADDING_CHUNK, "right"))
        stop = min(max(stop - 1, start + 1), n_rows)
        rows, blocks, n_column_blocks = _entry_blocks(
            matrix, block_size, slice(start, stop)
        )
        keys = rows * n_column_blocks + blocks
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        widths = np.minimum(block_size, n_columns - blocks[first] * block_size)
        stored += int(widths.sum())
        start = stop
    return stored - matrix.nnz


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _index(array) -> np.ndarray:
    """Indices as stored when int32 or int64 (contiguous), else as int64."""
    array = np.asarray(array)
    dtype = array.dtype if array.dtype in _INDEX_DTYPES else np.int64
    return np.ascontiguousarray(array, dtype=dtype)


def _checked_csr(matrix, name: str, dtype=None) -> CheckedCSR:
    if isinstance(matrix, CheckedCSR):
        if dtype is not None and matrix.dtype != dtype:
            raise ValueError(f"{name} must hold {np.dtype(dtype)}, got {matrix.dtype}.")
        return matrix
    return CheckedCSR(matrix, name=name, dtype=dtype)


def _checked_dense(array, name: str, dtype=None) -> np.ndarray:
    """A 2-d float (or, when ``dtype`` says so, int8) ndarray, C-contiguous."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}.")
    allowed = (_INT8,) if dtype is not None and np.dtype(dtype) == _INT8 else _FLOATS
    if array.ndim != 2 or array.dtype not in allowed:
        kinds = " or ".join(str(d) for d in allowed)
        raise ValueError(
            f"{name} must be a 2-d array of {kinds}, got {array.ndim}-d {array.dtype}."
        )
    if dtype is not None and array.dtype != dtype:
        raise ValueError(f"{name} must hold {np.dtype(dtype)}, got {array.dtype}.")
    return np.ascontiguousarray(array)


def _checked_column_map(column_map, n_columns: int, n_weight_rows: int) -> np.ndarray:
    """``column_map`` as int32 or int64: an entry in [-1, n_weight_rows) per column."""
    if isinstance(column_map, CheckedColumnMap):
        if len(column_map.array) != n_columns:
            raise ValueError(
                f"column_map has {len(column_map.array)} entries, but X has "
                f"{n_columns} columns: it needs one per column."
            )
        if column_map.n_weight_rows != n_weight_rows:
            raise ValueError(
                f"column_map points into {column_map.n_weight_rows} weight rows, "
                f"but the weight has {n_weight_rows}."
            )
        return column_map.array
    column_map = np.asarray(column_map)
    if column_map.ndim != 1 or column_map.dtype.kind not in "iu":
        raise ValueError(
            f"column_map must be a 1-d array of integers, got {column_map.ndim}-d "
            f"{column_map.dtype}."
        )
    if len(column_map) != n_columns:
        raise ValueError(
            f"column_map has {len(column_map)} entries, but X has {n_columns} "
            "columns: it needs one per column."
        )
    column_map = _index(column_map)
    if len(column_map) and (column_map.min() < -1 or column_map.max() >= n_weight_rows):
        bad = column_map.min() if column_map.min() < -1 else column_map.max()
        raise ValueError(
            f"column_map has entry {int(bad)}, but the weight has {n_weight_rows} "
            f"rows: entries must be in [-1, {n_weight_rows - 1}] (-1 skips a column)."
        )
    return column_map


def _check_inner_sizes(h_columns: int, weight_rows: int, name: str = "h") -> None:
    if h_columns != weight_rows:
        raise ValueError(
            f"{name} has {h_columns} columns, but the weight has {weight_rows} rows: "
            "they must agree."
        )


def _checked_scales(scales, weight_dtype: np.dtype, n_rows: int):
    """None for a float weight; for an int8 one, n_rows finite positive float32."""
    if weight_dtype != _INT8:
        if scales is not None:
            raise ValueError("scales are only for an int8 weight; this one is float.")
        return None
    if scales is None:
        raise ValueError("An int8 weight needs scales: one float32 per weight row.")
    scales = np.asarray(scales)
    if scales.dtype != np.float32 or scales.shape != (n_rows,):
        raise ValueError(
            f"scales must be a 1-d float32 array of {n_rows} entries (one per weight "
            f"row), got {scales.ndim}-d {scales.dtype} of shape {scales.shape}."
        )
    if not (np.isfinite(scales).all() and (scales > 0).all()):
        raise ValueError("scales must be finite and positive.")
    return np.ascontiguousarray(scales)


# --- the loops, compiled lazily ---------------------------------------------------

if numba is not None:
    from llvmlite import binding as _llvm
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils
    from numba.extending import intrinsic as _intrinsic

    # LLVM names the intrinsic by its pointer type: opaque pointers from LLVM 15.
    _PREFETCH = (
        "llvm.prefetch.p0" if _llvm.llvm_version_info >= (15,) else "llvm.prefetch.p0i8"
    )

    @_intrinsic
    def _prefetch(typingctx, array, index):
        """Ask the CPU to fetch ``array.flat[index]``'s cache line (a hint only)."""

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            data = context.make_array(array_type)(context, builder, args[0]).data
            address = builder.bitcast(
                builder.gep(data, [args[1]]), _ir.IntType(8).as_pointer()
            )
            int32 = _ir.IntType(32)
            function = _cgutils.get_or_insert_function(
                builder.module,
                _ir.FunctionType(_ir.VoidType(), [address.type, int32, int32, int32]),
                _PREFETCH,
            )
            # read, keep in every cache level, data (not instructions)
            builder.call(
                function, [address, *(_ir.Constant(int32, v) for v in (0, 3, 1))]
            )
            return context.get_dummy_value()

        return numba.types.void(array, index), codegen


def _csr_times_rows(indptr, indices, data, column_map, weight, scales, out):
    n_stored = indptr[out.shape[0]]
    n_out = weight.shape[1]
    for i in numba.prange(out.shape[0]):
        acc = out[i]
        for k in range(indptr[i], indptr[i + 1]):
            if k + _AHEAD < n_stored:
                ahead = column_map[indices[k + _AHEAD]]
                if ahead >= 0:
                    for t in range(0, n_out, 16):
                        _prefetch(weight, ahead * n_out + t)
            j = column_map[indices[k]]
            if j < 0:
                continue
            x = data[k]
            if scales is not None:
                x = x * scales[j]
            row = weight[j]
            for c in range(n_out):
                acc[c] += x * row[c]


#: The block width a build of :func:`_csr_times_blocks` is compiled for; 0 (this
#: module's own value) reads it from the values at run time.
_BLOCK = 0


def _csr_times_blocks(
    indptr, indices, data, column_map, b_indptr, b_columns, b_values, scales, out
):
    n_stored = indptr[out.shape[0]]
    n_out = out.shape[1]
    width = _BLOCK if _BLOCK > 0 else b_values.shape[1]
    step = max(1, 16 // width)  # blocks per 64-byte line of float32
    for i in numba.prange(out.shape[0]):
        acc = out[i]
        for k in range(indptr[i], indptr[i + 1]):
            # Two stages: the pointers of a value far ahead, then the blocks of
            # a nearer one, whose pointers have arrived by then.
            if k + 2 * _AHEAD < n_stored:
                far = column_map[indices[k + 2 * _AHEAD]]
                if far >= 0:
                    _prefetch(b_indptr, far)
            if k + _AHEAD < n_stored:
                ahead = column_map[indices[k + _AHEAD]]
                if ahead >= 0:
                    _prefetch(b_columns, b_indptr[ahead])
                    for b in range(b_indptr[ahead], b_indptr[ahead + 1], step):
                        _prefetch(b_values, b * width)
            j = column_map[indices[k]]
            if j < 0:
                continue
            x = data[k]
            if scales is not None:
                x = x * scales[j]
            for b in range(b_indptr[j], b_indptr[j + 1]):
                start = np.int64(b_columns[b]) * width
                block = b_values[b]
                if start + width <= n_out:  # a whole block: a fixed-length loop
                    for t in range(width):
                        acc[start + t] += x * block[t]
                else:  # the ragged last block of a row
                    for t in range(n_out - start):
                        acc[start + t] += x * block[t]


def _csr_times_csr(
    indptr, indices, data, column_map, w_indptr, w_indices, w_data, scales, out
):
    n_stored = indptr[out.shape[0]]
    for i in numba.prange(out.shape[0]):
        acc = out[i]
        for k in range(indptr[i], indptr[i + 1]):
            if k + _AHEAD < n_stored:
                ahead = column_map[indices[k + _AHEAD]]
                if ahead >= 0:
                    for t in range(w_indptr[ahead], w_indptr[ahead + 1], 16):
                        _prefetch(w_data, t)
                        _prefetch(w_indices, t)
            j = column_map[indices[k]]
            if j < 0:
                continue
            x = data[k]
            if scales is not None:
                x = x * scales[j]
            for m in range(w_indptr[j], w_indptr[j + 1]):
                acc[w_indices[m]] += x * w_data[m]


def _dense_times_csr(h, w_indptr, w_indices, w_data, scales, out):
    for i in numba.prange(out.shape[0]):
        acc = out[i]
        for j in range(h.shape[1]):
            x = h[i, j]
            if x == 0:
                continue
            if scales is not None:
                x = x * scales[j]
            for m in range(w_indptr[j], w_indptr[j + 1]):
                acc[w_indices[m]] += x * w_data[m]


def _dense_times_rows(h, weight, scales, out):
    for i in numba.prange(out.shape[0]):
        acc = out[i]
        for j in range(h.shape[1]):
            x = h[i, j]
            if x == 0:
                continue
            if scales is not None:
                x = x * scales[j]
            row = weight[j]
            for c in range(weight.shape[1]):
                acc[c] += x * row[c]


def _adam_segments(
    param, exp_avg, exp_avg_sq, rows, starts, order, values, beta1, beta2,
    step_size, eps, decay,
):  # fmt: skip
    # Row rows[r]'s gradient sums values[order[k]] for k in starts[r]:starts[r + 1]:
    # an uncoalesced gradient's duplicates are summed here, not in a coalesced
    # copy; a coalesced gradient has one value per row.
    one = param.dtype.type(1.0)
    for r in numba.prange(rows.shape[0]):
        row = rows[r]
        for c in range(param.shape[1]):
            g = values[order[starts[r]], c]
            for k in range(starts[r] + 1, starts[r + 1]):
                g += values[order[k], c]
            p = param[row, c]
            g = g + decay * p
            m = exp_avg[row, c]
            v = exp_avg_sq[row, c]
            m = m + (one - beta1) * (g - m)
            v = v + (one - beta2) * (g * g - v)
            exp_avg[row, c] = m
            exp_avg_sq[row, c] = v
            param[row, c] = p - step_size * (m / (np.sqrt(v) + eps))


_SOURCES = {
    "csr_times_rows": _csr_times_rows,
    "csr_times_csr": _csr_times_csr,
    "csr_times_blocks": _csr_times_blocks,
    "dense_times_csr": _dense_times_csr,
    "dense_times_rows": _dense_times_rows,
    "adam_segments": _adam_segments,
}
_COMPILED: dict = {}


def _renamed_copy(function, suffix: str, block: int = 0):
    """``function`` under another name: numba's disk cache keys on the name, not
    on ``parallel`` nor on the globals, so each build needs a name of its own.
    A ``block`` width becomes the copy's ``_BLOCK``, a compile-time constant."""
    namespace = function.__globals__
    if block:
        namespace = {**namespace, "_BLOCK": block}
    copy = types.FunctionType(function.__code__, namespace, function.__name__ + suffix)
    copy.__qualname__ = function.__qualname__ + suffix
    return copy


def _compiled(name: str, work: int, block: int = 0):
    """The numba-compiled version of loop ``name`` for ``work`` multiply-adds.

    Below :data:`PARALLEL_WORK` (or on one thread) the serial build runs, with
    no parallel region and no thread setting. Otherwise the parallel one runs
    on as many threads as torch uses (``torch.set_num_threads``), at most
    numba's own limit, so that one setting governs the whole fit; numba's count
    is set only when it differs. A ``block`` width in :data:`BLOCK_SIZES` gets a
    build of its own with the width fixed. Each build compiles at its first call.
    """
    n_threads = torch.get_num_threads()
    parallel = work >= PARALLEL_WORK and n_threads > 1
    block = block if block in BLOCK_SIZES else 0
    key = (name, parallel, block)
    if key not in _COMPILED:
        suffix = ("" if parallel else "_serial") + (f"_block{block}" if block else "")
        source = _SOURCES[name]
        source = _renamed_copy(source, suffix, block) if suffix else source
        _COMPILED[key] = numba.njit(parallel=parallel, cache=True, nogil=True)(source)
    kernel = _COMPILED[key]
    if not parallel:
        return kernel

    def run(*args):
        wanted = max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS))
        if numba.get_num_threads() != wanted:
            numba.set_num_threads(wanted)
        try:
            return kernel(*args)
        finally:
            # numba's OpenMP layer, started by the first parallel call, sets the
            # starting thread's count in torch's OpenMP runtime (numba's binds to
            # it) to NUMBA_NUM_THREADS: put this thread's back, leaving others'.
            if torch.get_num_threads() != n_threads:
                set_this_threads_count(n_threads)

    return run


def _out(n_rows: int, n_out: int, weight_dtype: np.dtype) -> np.ndarray:
    """The zeroed output: float32 for an int8 weight, else the weight's dtype."""
    dtype = np.float32 if weight_dtype == _INT8 else weight_dtype
    return np.zeros((n_rows, n_out), dtype=dtype)


def _value_dtype(weight_dtype: np.dtype, input_dtype: np.dtype) -> np.dtype:
    """The dtype a weight must have to multiply an input of ``input_dtype``."""
    return weight_dtype if weight_dtype == _INT8 else input_dtype


def _weight_dtype(weight, input_dtype: np.dtype, input_name: str) -> np.dtype:
    """The dtype ``weight`` must hold: the input's, or int8 for float32 input."""
    sparse = sp.issparse(weight) or isinstance(weight, CheckedCSR)
    data = weight.data if sparse else weight
    if isinstance(data, np.ndarray) and data.dtype == _INT8:
        if input_dtype != np.float32:
            raise ValueError(
                f"{input_name} must hold float32 to multiply an int8 weight, got "
                f"{input_dtype}."
            )
        return _INT8
    return input_dtype


def csr_times_rows(
    X, column_map, weight: np.ndarray, scales: np.ndarray | None = None
) -> np.ndarray:
    """``X[:, kept] @ weight`` for a CSR ``X``; ``column_map`` gives ``kept``.

    Each output row adds ``X``'s stored values of that row, in their stored
    order, times weight rows: the same bits whatever the other rows.

    Parameters
    ----------
    X : scipy.sparse CSR matrix or CheckedCSR, of float32 or float64
    column_map : ndarray of integers, shape (X.shape[1],), or CheckedColumnMap
        Row of ``weight`` for each column of ``X``, -1 for columns it skips.
    weight : ndarray of shape (n_kept, n_out), of ``X``'s dtype or int8
    scales : ndarray of float32, shape (n_kept,), default=None
        For an int8 ``weight`` (and only then): row ``j`` stands for
        ``scales[j] * weight[j]``. ``X`` must then be float32.

    Returns
    -------
    ndarray of shape (X.shape[0], n_out), of ``X``'s dtype

    Raises
    ------
    ValueError
        If an argument has the wrong dtype or shape, ``X``'s structure is
        inconsistent, or an index points outside the array it indexes.
    """
    X = _checked_csr(X, "X")
    weight = _checked_dense(weight, "weight", _weight_dtype(weight, X.dtype, "X"))
    column_map = _checked_column_map(column_map, X.shape[1], weight.shape[0])
    scales = _checked_scales(scales, weight.dtype, weight.shape[0])
    out = _out(X.shape[0], weight.shape[1], weight.dtype)
    kernel = _compiled("csr_times_rows", X.nnz * weight.shape[1])
    kernel(X.indptr, X.indices, X.data, column_map, weight, scales, out)
    return out


def csr_times_csr(
    X, column_map, weight, scales: np.ndarray | None = None
) -> np.ndarray:
    """As :func:`csr_times_rows` for a ``weight`` stored as a CSR matrix.

    ``weight`` is a scipy CSR matrix or a :class:`CheckedCSR` (checked once, at
    its making), of ``X``'s dtype or int8 with ``scales``, with column indices
    in ``[0, n_out)``. Each stored value of ``X`` costs only the surviving
    weights of its row.
    """
    X = _checked_csr(X, "X")
    weight = _checked_csr(weight, "weight", _weight_dtype(weight, X.dtype, "X"))
    column_map = _checked_column_map(column_map, X.shape[1], weight.shape[0])
    scales = _checked_scales(scales, weight.dtype, weight.shape[0])
    out = _out(X.shape[0], weight.shape[1], weight.dtype)
    work = X.nnz * max(1, weight.nnz // max(1, weight.shape[0]))
    _compiled("csr_times_csr", work)(
        X.indptr,
        X.indices,
        X.data,
        column_map,
        weight.indptr,
        weight.indices,
        weight.data,
        scales,
        out,
    )
    return out


def csr_times_blocks(
    X, column_map, weight: CheckedBlockCSR, scales: np.ndarray | None = None
) -> np.ndarray:
    """As :func:`csr_times_rows` for a weight stored in blocks (block-CSR).

    Each stored value of ``X`` adds its row's kept blocks, each whole: a
    fixed-length loop (unrolled and vectorised for the widths of
    :data:`BLOCK_SIZES`), and only the columns that exist for a ragged last
    block. Each output row adds ``X``'s values in stored order, and each value's
    blocks in stored order: the same bits whatever the other rows.

    Parameters
    ----------
    X : scipy.sparse CSR matrix or CheckedCSR, of float32 or float64
    column_map : ndarray of integers, shape (X.shape[1],), or CheckedColumnMap
    weight : CheckedBlockCSR of shape (n_kept, n_out)
        Of ``X``'s dtype, or int8 with ``scales`` (``X`` then float32).
    scales : ndarray of float32, shape (n_kept,), default=None

    Returns
    -------
    ndarray of shape (X.shape[0], n_out), of ``X``'s dtype
    """
    X = _checked_csr(X, "X")
    if not isinstance(weight, CheckedBlockCSR):
        raise TypeError(
            f"weight must be a CheckedBlockCSR, got {type(weight).__name__}."
        )
    if weight.dtype == _INT8 and X.dtype != np.float32:
        raise ValueError(
            f"X must hold float32 to multiply an int8 weight, got {X.dtype}."
        )
    if weight.dtype != _INT8 and weight.dtype != X.dtype:
        raise ValueError(f"weight must hold {X.dtype}, got {weight.dtype}.")
    column_map = _checked_column_map(column_map, X.shape[1], weight.shape[0])
    scales = _checked_scales(scales, weight.dtype, weight.shape[0])
    out = _out(X.shape[0], weight.shape[1], weight.dtype)
    per_row = len(weight.values) * weight.block_size // max(1, weight.shape[0])
    kernel = _compiled("csr_times_blocks", X.nnz * max(1, per_row), weight.block_size)
    kernel(X.indptr, X.indices, X.data, column_map, weight.indptr, weight.columns,
           weight.values, scales, out)  # fmt: skip
    return out


def csr_times_rows_embedding(X, column_map, weight: torch.Tensor) -> np.ndarray:
    """As :func:`csr_times_rows` for a float32 weight held as a torch tensor.

    The product is torch's ``embedding_bag`` (the uncompressed model's own, with
    its prefetching kernels), over ``X``'s stored values whose column the map
    keeps; it sums each row in stored order whatever the batch.

    Parameters
    ----------
    X : scipy.sparse CSR matrix or CheckedCSR, of float32
    column_map : ndarray of integers, shape (X.shape[1],), or CheckedColumnMap
    weight : torch.Tensor of float32, shape (n_kept, n_out)
        A C-contiguous CPU tensor.

    Returns
    -------
    ndarray of float32, shape (X.shape[0], n_out)
    """
    X = _checked_csr(X, "X")
    if (
        not isinstance(weight, torch.Tensor)
        or weight.device.type != "cpu"
        or weight.dim() != 2
        or weight.dtype != torch.float32
        or not weight.is_contiguous()
    ):
        raise ValueError("weight must be a 2-d C-contiguous float32 CPU tensor.")
    if X.dtype != np.float32:
        raise ValueError(f"weight must hold {X.dtype}, got float32.")
    identity = isinstance(column_map, CheckedColumnMap) and column_map.identity
    column_map = _checked_column_map(column_map, X.shape[1], weight.shape[0])
    arrays = X.indices, X.indptr, X.data
    if not identity:
        arrays = kept_entries_array(column_map, *arrays)
    with warnings.catch_warnings():  # a read-only X is only read
        warnings.simplefilter("ignore", UserWarning)
        columns, offsets, values = (torch.from_numpy(a) for a in arrays)
    if columns.dtype != offsets.dtype:  # embedding_bag needs them alike
        columns, offsets = columns.to(torch.int64), offsets.to(torch.int64)
    with torch.no_grad():
        out = torch.nn.functional.embedding_bag(
            columns,
            weight,
            offsets,
            mode="sum",
            per_sample_weights=values,
            include_last_offset=True,
        )
    return out.numpy()


def dense_times_csr(
    h: np.ndarray, weight, scales: np.ndarray | None = None
) -> np.ndarray:
    """``h @ weight`` for dense rows ``h`` and a CSR ``weight``, skipping zeros.

    Parameters
    ----------
    h : ndarray of shape (n_rows, n_in)
    weight : scipy.sparse CSR matrix or CheckedCSR of shape (n_in, n_out), of
        ``h``'s dtype, or int8 with ``scales``
    scales : ndarray of float32, shape (n_in,), default=None
        For an int8 ``weight`` only, as in :func:`csr_times_rows`.

    Returns
    -------
    ndarray of shape (n_rows, n_out)
    """
    h = _checked_dense(h, "h")
    weight = _checked_csr(weight, "weight", _weight_dtype(weight, h.dtype, "h"))
    _check_inner_sizes(h.shape[1], weight.shape[0])
    scales = _checked_scales(scales, weight.dtype, weight.shape[0])
    out = _out(h.shape[0], weight.shape[1], weight.dtype)
    _compiled("dense_times_csr", h.shape[0] * weight.nnz)(
        h, weight.indptr, weight.indices, weight.data, scales, out
    )
    return out


def dense_times_rows(
    h: np.ndarray, weight: np.ndarray, scales: np.ndarray | None = None
) -> np.ndarray:
    """``h @ weight`` for dense ``h`` and ``weight``, in a fixed order per row.

    Each output row adds ``h[i, j] * weight[j]`` for ``j`` in increasing order,
    skipping zero activations: the same bits whatever the number of rows, which
    BLAS's product does not promise.

    Parameters
    ----------
    h : ndarray of shape (n_rows, n_in)
    weight : ndarray of shape (n_in, n_out), of ``h``'s dtype, or int8
    scales : ndarray of float32, shape (n_in,), default=None
        For an int8 ``weight`` only, as in :func:`csr_times_rows`.

    Returns
    -------
    ndarray of shape (n_rows, n_out)
    """
    h = _checked_dense(h, "h")
    weight = _checked_dense(weight, "weight", _weight_dtype(weight, h.dtype, "h"))
    _check_inner_sizes(h.shape[1], weight.shape[0])
    scales = _checked_scales(scales, weight.dtype, weight.shape[0])
    out = _out(h.shape[0], weight.shape[1], weight.dtype)
    _compiled("dense_times_rows", h.size * weight.shape[1])(h, weight, scales, out)
    return out


def adam_rows_(
    param: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    rows: torch.Tensor,
    grad: torch.Tensor,
    *,
    beta1: float,
    beta2: float,
    step_size: float,
    eps: float,
    weight_decay: float,
    coalesced: bool = True,
) -> None:
    """SparseAdam's step of the given rows of a 2-d CPU parameter, in place.

    Per touched entry: ``g = grad + weight_decay * param``, the moments move
    towards ``g`` and ``g * g`` by ``1 - beta``, and ``param -= step_size * m /
    (sqrt(v) + eps)``. Rows listed more than once have their gradients summed
    first, as a coalesced gradient's would be.

    Parameters
    ----------
    param, exp_avg, exp_avg_sq : torch.Tensor of shape (n_rows, n_cols)
        C-contiguous CPU tensors of one dtype, float32 or float64, updated in
        place.
    rows : torch.Tensor of integers, shape (n_touched,)
        Each in ``[0, n_rows)``.
    grad : torch.Tensor of shape (n_touched, n_cols), of ``param``'s dtype
        The gradient of each touched row.
    beta1, beta2, step_size, eps, weight_decay : float
    coalesced : bool, default=True
        Whether ``rows`` are known to be distinct; if False they are sorted
        and duplicates summed inside the loop.

    Raises
    ------
    ValueError
        If a tensor is not on the CPU, has another shape or dtype than
        ``param``, a written tensor is not C-contiguous, or a row is out of
        range.
    """
    tensors = _checked_adam_state(param, exp_avg, exp_avg_sq)
    n_rows, n_columns = tensors[0].shape
    rows = _checked_rows(rows, n_rows)
    if not isinstance(grad, torch.Tensor) or grad.device.type != "cpu":
        raise ValueError("grad must be a CPU tensor.")
    if tuple(grad.shape) != (len(rows), n_columns) or grad.dtype != param.dtype:
        raise ValueError(
            f"grad must be of shape ({len(rows)}, {n_columns}) (one row per entry of "
            f"rows) and dtype {param.dtype}, got {tuple(grad.shape)} {grad.dtype}."
        )
    grad = grad.detach().contiguous().numpy()
    scalar = tensors[0].dtype.type
    hyper = [scalar(x) for x in (beta1, beta2, step_size, eps, weight_decay)]
    if coalesced:  # one gradient row per row: segments of one
        order = np.arange(len(rows), dtype=np.int64)
        unique, starts = rows, np.arange(len(rows) + 1, dtype=np.int64)
    else:  # duplicate rows: summed in the loop rather than in a coalesced copy
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        firsts = np.flatnonzero(np.diff(sorted_rows, prepend=-1))
        unique = sorted_rows[firsts]
        starts = np.append(firsts, len(rows)).astype(np.int64)
    _compiled("adam_segments", len(rows) * n_columns)(
        *tensors, unique, starts, order, grad, *hyper
    )


def _checked_adam_state(*tensors: torch.Tensor) -> list[np.ndarray]:
    """``param``, ``exp_avg``, ``exp_avg_sq`` as numpy views, checked to agree."""
    names = ("param", "exp_avg", "exp_avg_sq")
    param = tensors[0]
    for name, tensor in zip(names, tensors, strict=True):
        if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
            raise ValueError(f"{name} must be a CPU tensor.")
        if tensor.dim() != 2 or tensor.dtype not in (torch.float32, torch.float64):
            raise ValueError(
                f"{name} must be a 2-d tensor of float32 or float64, got "
                f"{tensor.dim()}-d {tensor.dtype}."
            )
        if tensor.shape != param.shape or tensor.dtype != param.dtype:
            raise ValueError(
                f"{name} has shape {tuple(tensor.shape)} and dtype {tensor.dtype}, "
                f"param {tuple(param.shape)} and {param.dtype}: they must agree."
            )
        if not tensor.is_contiguous():
            raise ValueError(f"{name} must be C-contiguous: it is updated in place.")
    return [tensor.detach().numpy() for tensor in tensors]


def _checked_rows(rows: torch.Tensor, n_rows: int) -> np.ndarray:
    if not isinstance(rows, torch.Tensor) or rows.device.type != "cpu":
        raise ValueError("rows must be a CPU tensor.")
    if rows.dim() != 1 or rows.dtype.is_floating_point or rows.dtype == torch.bool:
        raise ValueError(
            f"rows must be a 1-d tensor of integers, got {rows.dim()}-d {rows.dtype}."
        )
    rows = _index(rows.numpy())
    check_index_range(rows, n_rows, name="rows", what="row")
    return rows
