"""Warnings and errors specific to skprune, as :mod:`sklearn.exceptions` has its own."""

from __future__ import annotations

__all__ = ["DenseGradientWarning"]


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
