"""Compiled loops that torch and scipy lack: sparse products and a lazy Adam row step.

Three kinds of loop, each parallel over the rows of its output:

- a CSR batch times a weight stored row by row, dense (every stored input value
  adds one weight row) or CSR (it adds only that row's surviving weights), into
  a dense output. Input columns that the weight no longer has are skipped
  through a column map, so the batch is never sliced or copied;
- dense rows (hidden activations) times a CSR weight, skipping zero activations;
- Adam's update of the rows a sparse gradient touches, in place and in one pass
  over each row of the weight, both moments and the gradient.

They are compiled with numba on first use (``cache=True``: later processes load
the machine code from disk). Without numba, :data:`HAVE_NUMBA` is False and the
callers use their torch and scipy paths. :func:`kept_entries` is the one column
filter for CSR input, shared by the torch module and the compressed model.

No scikit-learn here.
"""

from __future__ import annotations

import os

import numpy as np
import torch

try:  # numba is optional: every caller has a torch or scipy path without it.
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

from ._threads import set_this_threads_count

__all__ = [
    "HAVE_NUMBA",
    "adam_rows_",
    "csr_times_csr",
    "csr_times_rows",
    "dense_times_csr",
    "kept_entries",
]

#: Whether the compiled kernels are available. ``SKPRUNE_DISABLE_NUMBA=1`` turns
#: them off (to compare against, or where compilation is unwanted).
HAVE_NUMBA = numba is not None and os.environ.get("SKPRUNE_DISABLE_NUMBA") != "1"


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


# --- the loops, compiled lazily ---------------------------------------------------


def _csr_times_rows(indptr, indices, data, column_map, weight, out):
    for i in numba.prange(out.shape[0]):
        for k in range(indptr[i], indptr[i + 1]):
            j = column_map[indices[k]]
            if j < 0:
                continue
            x = data[k]
            for c in range(weight.shape[1]):
                out[i, c] += x * weight[j, c]


def _csr_times_csr(indptr, indices, data, column_map, w_indptr, w_indices, w_data, out):
    for i in numba.prange(out.shape[0]):
        for k in range(indptr[i], indptr[i + 1]):
            j = column_map[indices[k]]
            if j < 0:
                continue
            x = data[k]
            for m in range(w_indptr[j], w_indptr[j + 1]):
                out[i, w_indices[m]] += x * w_data[m]


def _dense_times_csr(h, w_indptr, w_indices, w_data, out):
    for i in numba.prange(out.shape[0]):
        for j in range(h.shape[1]):
            x = h[i, j]
            if x == 0:
                continue
            for m in range(w_indptr[j], w_indptr[j + 1]):
                out[i, w_indices[m]] += x * w_data[m]


def _adam_rows(
    param, exp_avg, exp_avg_sq, rows, grad, beta1, beta2, step_size, eps, decay
):
    one = param.dtype.type(1.0)
    for r in numba.prange(rows.shape[0]):
        row = rows[r]
        for c in range(param.shape[1]):
            p = param[row, c]
            g = grad[r, c] + decay * p
            m = exp_avg[row, c]
            v = exp_avg_sq[row, c]
            m = m + (one - beta1) * (g - m)
            v = v + (one - beta2) * (g * g - v)
            exp_avg[row, c] = m
            exp_avg_sq[row, c] = v
            param[row, c] = p - step_size * (m / (np.sqrt(v) + eps))


def _adam_segments(
    param, exp_avg, exp_avg_sq, rows, starts, order, values, beta1, beta2,
    step_size, eps, decay,
):  # fmt: skip
    # Rows of an uncoalesced gradient: row rows[r] sums values[order[k]] for k in
    # starts[r]:starts[r + 1], summed here instead of in a coalesced copy.
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
    "dense_times_csr": _dense_times_csr,
    "adam_rows": _adam_rows,
    "adam_segments": _adam_segments,
}
_COMPILED: dict = {}


def _compiled(name: str):
    """The numba-compiled version of loop ``name``, compiled at its first call.

    The loops run on as many threads as torch uses (``torch.set_num_threads``),
    at most numba's own limit, so that one setting governs the whole fit.
    """
    if name not in _COMPILED:
        _COMPILED[name] = numba.njit(parallel=True, cache=True, nogil=True)(
            _SOURCES[name]
        )
    kernel = _COMPILED[name]
    n_threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))

    def run(*args):
        # numba's OpenMP layer sets the process's OpenMP thread count, which
        # torch shares: put torch's own setting back after every call (for this
        # thread only: fits in other threads keep theirs).
        try:
            return kernel(*args)
        finally:
            if torch.get_num_threads() != n_threads:
                set_this_threads_count(n_threads)

    return run


def _index(array) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.int64)


def csr_times_rows(X, column_map: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``X[:, kept] @ weight`` for a CSR ``X``; ``column_map`` gives ``kept``.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of float32
    column_map : ndarray of int64, shape (X.shape[1],)
        Row of ``weight`` for each column of ``X``, -1 for columns it skips.
    weight : ndarray of float32, shape (n_kept, n_out), C-contiguous

    Returns
    -------
    ndarray of float32, shape (X.shape[0], n_out)
    """
    out = np.zeros((X.shape[0], weight.shape[1]), dtype=weight.dtype)
    _compiled("csr_times_rows")(
        _index(X.indptr), _index(X.indices), X.data, column_map, weight, out
    )
    return out


def csr_times_csr(X, column_map: np.ndarray, weight) -> np.ndarray:
    """As :func:`csr_times_rows` for a ``weight`` stored as a CSR matrix."""
    out = np.zeros((X.shape[0], weight.shape[1]), dtype=weight.dtype)
    _compiled("csr_times_csr")(
        _index(X.indptr),
        _index(X.indices),
        X.data,
        column_map,
        _index(weight.indptr),
        _index(weight.indices),
        weight.data,
        out,
    )
    return out


def dense_times_csr(h: np.ndarray, weight) -> np.ndarray:
    """``h @ weight`` for dense rows ``h`` and a CSR ``weight``, skipping zeros."""
    out = np.zeros((h.shape[0], weight.shape[1]), dtype=weight.dtype)
    _compiled("dense_times_csr")(
        np.ascontiguousarray(h, dtype=weight.dtype),
        _index(weight.indptr),
        _index(weight.indices),
        weight.data,
        out,
    )
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
        C-contiguous CPU tensors of one floating dtype, updated in place.
    rows : torch.Tensor of int64, shape (n_touched,)
    grad : torch.Tensor of shape (n_touched, n_cols)
        The gradient of each touched row.
    beta1, beta2, step_size, eps, weight_decay : float
    coalesced : bool, default=True
        Whether ``rows`` are known to be distinct; if False they are sorted
        and duplicates summed inside the loop.
    """
    scalar = np.dtype(str(param.dtype).removeprefix("torch.")).type
    hyper = [scalar(x) for x in (beta1, beta2, step_size, eps, weight_decay)]
    tensors = [param.detach().numpy(), exp_avg.numpy(), exp_avg_sq.numpy()]
    grad = grad.to(param.dtype).contiguous().numpy()
    if coalesced:
        _compiled("adam_rows")(*tensors, rows.numpy(), grad, *hyper)
        return
    # Duplicate rows: sum them in the loop rather than in a coalesced copy.
    sorted_rows, order = torch.sort(rows.to(torch.int64), stable=True)
    unique, counts = torch.unique_consecutive(sorted_rows, return_counts=True)
    starts = torch.zeros(len(unique) + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=starts[1:])
    _compiled("adam_segments")(
        *tensors, unique.numpy(), starts.numpy(), order.numpy(), grad, *hyper
    )
