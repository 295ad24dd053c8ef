"""skprune: neural-network pruning as a scikit-learn estimator, built for sparse data.

- :class:`PrunedClassifier`: train, prune and retrain a skorch classifier in ``fit``;
  :func:`default_classifier_net` is the skorch net it wraps by default, to start
  your own from.
- :class:`PrunedRegressor`: the same for regression, one target or several
  (:func:`default_regressor_net`).
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
- :func:`fit_generator`: the running fit's own torch generator, for modules of
  your own that should draw from it.
- :func:`save` and :func:`load`: files that load without pickle, running no code
  (:mod:`skprune.persistence`).
"""

from ._classifier import PrunedClassifier, default_classifier_net
from ._cv import PrunedClassifierCV
from ._nn._random import fit_generator
from ._nn.modules import MLPModule
from ._regressor import PrunedRegressor, default_regressor_net
from .compress._estimators import CompressedClassifier, CompressedRegressor
from .persistence import load, save

__all__ = [
    "CompressedClassifier",
    "CompressedRegressor",
    "MLPModule",
    "PrunedClassifier",
    "PrunedClassifierCV",
    "PrunedRegressor",
    "default_classifier_net",
    "default_regressor_net",
    "fit_generator",
    "load",
    "save",
]
__version__ = "0.1.0"
