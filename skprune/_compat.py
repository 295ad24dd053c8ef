"""Every private scikit-learn name skprune uses, imported in this one place.

scikit-learn may move or change its private helpers between releases; when it
does, this module is the only one to change (``sklearn_compat`` already bridges
the versions it knows).
"""

from sklearn.utils._optional_dependencies import check_matplotlib_support
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import (
    _check_n_features,
    _check_sample_weight,
    _ensure_no_complex_data,
    _ensure_sparse_format,
)
from sklearn_compat.base import _fit_context
from sklearn_compat.utils.validation import validate_data

__all__ = [
    "HasMethods",
    "Interval",
    "StrOptions",
    "_check_n_features",
    "_check_sample_weight",
    "_ensure_no_complex_data",
    "_ensure_sparse_format",
    "_fit_context",
    "check_matplotlib_support",
    "validate_data",
    "validate_parameter_constraints",
]
