"""skprune: neural-network pruning as a scikit-learn estimator, built for sparse data.

- :class:`PrunedClassifier`: train, prune and retrain a skorch classifier in ``fit``.
- :class:`PrunedClassifierCV`: the prune ratio chosen by cross-validation along
  one pruning path per fold.
- :class:`MLPModule`: a multi-layer perceptron whose first layer takes sparse input.
- :class:`CompressedClassifier`: what ``PrunedClassifier.compress()`` returns, a
  compact prediction-only model; :mod:`skprune.compress` does the removing.
- :mod:`skprune.callbacks`: the :class:`~skprune.callbacks.Pruning` skorch callback.
- :mod:`skprune.masks`, :mod:`skprune.importance`, :mod:`skprune.schedules`: which
  weights go, by what criterion, and when (pure torch).
- :mod:`skprune.data`: batching scipy sparse matrices as torch sparse tensors.
- :mod:`skprune.optim`: :class:`~skprune.optim.LazyAdam`, Adam with row-sparse steps.
- :mod:`skprune.datasets`: a generator of text-like sparse data.
"""

from ._classifier import PrunedClassifier
from ._compressed import CompressedClassifier
from ._cv import PrunedClassifierCV
from .modules import MLPModule

__all__ = [
    "CompressedClassifier",
    "MLPModule",
    "PrunedClassifier",
    "PrunedClassifierCV",
]
__version__ = "0.1.0"
