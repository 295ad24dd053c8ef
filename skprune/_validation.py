"""scikit-learn's ``validate_data``, preceded by the index checks scipy skips."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._compat import (
    _check_n_features,
    _ensure_no_complex_data,
    _ensure_sparse_format,
)
from ._compat import validate_data as _validate_data
from ._nn.data import _check_sparse_structure

__all__ = ["ACCEPTED_SPARSE", "validate_data", "validate_prediction_data"]

#: The scipy sparse formats every estimator accepts as ``X``.
ACCEPTED_SPARSE = ("csr", "csc", "coo")


def validate_data(estimator, X="no_validation", y="no_validation", **check_params):
    """:func:`sklearn.utils.validation.validate_data` for every skprune estimator.

    A sparse ``X`` whose index arrays point outside its shape is refused first:
    scipy checks them only when a matrix is built from arrays, and the
    conversions inside scikit-learn's checks (``astype`` sums duplicates in
    scipy's compiled code) would read outside them before anything else looked.

    Parameters
    ----------
    estimator : estimator instance
    X, y : array-like, sparse matrix or "no_validation"
    **check_params
        Passed on to scikit-learn's ``validate_data``.

    Returns
    -------
    The validated ``X``, ``y`` or both, as scikit-learn returns them.

    Raises
    ------
    ValueError
        For a sparse ``X`` with an index outside its shape or inconsistent
        index pointers, and whatever scikit-learn raises.
    """
    if sp.issparse(X):
        _check_sparse_structure(X)
    return _validate_data(estimator, X, y, **check_params)


def validate_prediction_data(estimator, X):
    """``X`` checked for prediction by a fitted estimator: the formats a fit
    accepts, float32, and the features (count and names) it was fitted on.

    A 2-d scipy sparse ``X`` with at least one row and one column, given to an
    estimator fitted without feature names, takes the checks scikit-learn's
    ``validate_data`` makes of it (complex values, format, dtype, finite
    values, index dtype, number of features) without its dataframe detection,
    which is most of the cost of a one-row prediction and cannot match a
    scipy matrix. Everything else, and every input whose error scikit-learn
    words (no rows, 1-d sparse arrays), goes through ``validate_data``.
    """
    if not (
        sp.issparse(X)
        and len(X.shape) == 2
        and min(X.shape) > 0
        and getattr(estimator, "feature_names_in_", None) is None
    ):
        return validate_data(
            estimator, X, accept_sparse=ACCEPTED_SPARSE, dtype=np.float32, reset=False
        )
    _check_sparse_structure(X)
    _ensure_no_complex_data(X)
    X = _ensure_sparse_format(
        X,
        accept_sparse=ACCEPTED_SPARSE,
        dtype=np.float32,
        copy=False,
        ensure_all_finite=True,
        accept_large_sparse=True,
        estimator_name=type(estimator).__name__,
        input_name="X",
    )
    _check_n_features(estimator, X, reset=False)
    return X
