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

    Examples
    --------
    The default net with its row-sparse gradient turned off, on 4,000 sparse
    features (a first layer of 4,000 x 256 weights):

    >>> import warnings
    >>> import torch
    >>> from skprune import PrunedClassifier, default_classifier_net
    >>> from skprune.datasets import make_text_classification
    >>> from skprune.exceptions import DenseGradientWarning
    >>> X, y = make_text_classification(
    ...     64, 4000, n_classes=2, n_topic_words=20, random_state=0
    ... )
    >>> net = default_classifier_net().set_params(
    ...     max_epochs=1, module__sparse_grad=False, optimizer=torch.optim.Adam
    ... )
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = PrunedClassifier(net, retrain_epochs=1, random_state=0).fit(X, y)
    >>> [
    ...     str(w.message).split(" and ")[0]
    ...     for w in caught
    ...     if w.category is DenseGradientWarning
    ... ]
    ["The first layer ('layers.0') has 1,024,000 weights"]
    """


class ModelFileError(ValueError):
    """The file is not a skprune model, or is truncated, corrupted or malformed.

    The message names the part of the file (and the field) at fault. A
    ``ValueError``, as scikit-learn raises for unusable input.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from skprune import load
    >>> from skprune.exceptions import ModelFileError
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.skprune")
    ...     with open(path, "wb") as file:
    ...         _ = file.write(b"not a model")
    ...     load(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skprune.exceptions.ModelFileError: '...model.skprune' is not a skprune model \
file, or it is truncated or corrupted: ...
    >>> issubclass(ModelFileError, ValueError)
    True
    """


class UntrustedTypeError(TypeError):
    """The file names classes or functions that are not trusted.

    Attributes
    ----------
    names : list of str
        The names to pass in ``trusted=`` to load the file anyway.

    Examples
    --------
    A model pruned with an importance function of the user's own names it;
    :func:`skprune.load` refuses it until it is trusted:

    >>> import os
    >>> import tempfile
    >>> from skprune import PrunedClassifier, default_classifier_net, load, save
    >>> from skprune.datasets import make_text_classification
    >>> from skprune.exceptions import UntrustedTypeError
    >>> def squared_weight(name, weight, grad):
    ...     return weight**2
    >>> X, y = make_text_classification(
    ...     100, 500, n_classes=2, n_topic_words=20, random_state=0
    ... )
    >>> net = default_classifier_net().set_params(
    ...     max_epochs=1, module__hidden_layer_sizes=(8,)
    ... )
    >>> clf = PrunedClassifier(net, importance=squared_weight, random_state=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.skprune")
    ...     save(clf.fit(X, y), path)
    ...     try:
    ...         load(path)
    ...     except UntrustedTypeError as error:
    ...         print([name.rsplit(".", 1)[-1] for name in error.names])
    ...     loaded = load(path, trusted=[squared_weight])
    ['squared_weight']
    >>> loaded.importance is squared_weight
    True
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
    traceback.

    Examples
    --------
    The command line prints its message as a usage error and exits with 2:

    >>> import contextlib
    >>> import io
    >>> from skprune.__main__ import main
    >>> stderr = io.StringIO()
    >>> with contextlib.redirect_stderr(stderr):
    ...     status = main(["--data", "no-such-file.svm"])
    >>> status, stderr.getvalue().splitlines()[-1]
    (2, 'python -m skprune: error: data file not found: no-such-file.svm')
    """
