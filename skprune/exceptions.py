"""Warnings and errors specific to skprune, as :mod:`sklearn.exceptions` has its own.

Every error class of the package lives here; the older paths
(``skprune.persistence.ModelFileError``) import them from this module.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "DenseGradientWarning",
    "ModelFileError",
    "UntrustedTypeError",
]


class DenseGradientWarning(UserWarning):
    """The first layer of a net trained on sparse input gets a dense gradient.

    Every optimizer step then updates all of the layer's weights, although a sparse
    batch touches only the rows of the features it contains: on wide sparse input
    (hundreds of thousands of features) training runs many times slower than it
    could. :class:`skprune.PrunedClassifier` warns once per ``fit`` when that layer
    holds at least a million weights. The fast path is a row-sparse gradient:
    ``module__sparse_grad=True`` on :class:`skprune.MLPModule`, with an optimizer
    that accepts sparse gradients (:class:`skprune.optim.LazyAdam`,
    ``torch.optim.SGD`` or ``torch.optim.Adagrad``).
    """


class ModelFileError(ValueError):
    """The file is not a skprune model, or is truncated, corrupted or malformed.

    The message names the part of the file (and the field) at fault.
    """


class UntrustedTypeError(TypeError):
    """The file names classes or functions that are not trusted.

    Attributes
    ----------
    names : list of str
        The names to pass in ``trusted=`` to load the file anyway.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        shown = [
            name if len(name) <= 200 else name[:200] + "..." for name in names[:20]
        ]
        more = f" and {len(names) - 20} more (see .names)" if len(names) > 20 else ""
        super().__init__(
            f"The file names classes or functions that are not trusted by default: "
            f"{shown}{more}. Nothing was imported. If you trust them, load it with "
            f"trusted={shown if not more else '.names'}; a trusted class is called "
            "with keyword arguments chosen by the file."
        )


class DataError(Exception):
    """A data file that ``python -m skprune`` cannot use; reported without a
    traceback."""
