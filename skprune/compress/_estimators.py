"""Prediction-only estimators made by ``compress()`` from a fitted pruned one."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from .._validation import validate_prediction_data
from ._compact import CompactMLP

__all__ = [
    "CompressedClassifier",
    "CompressedModel",
    "CompressedRegressor",
    "decision_from_logits",
]


def decision_from_logits(logits: np.ndarray) -> np.ndarray:
    """scikit-learn's ``decision_function`` from a network's logits.

    For two classes, the second class's logit minus the first's, of shape
    (n_samples,), as scikit-learn's binary classifiers return; otherwise the
    logits unchanged.
    """
    if logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    return logits


class CompressedModel(BaseEstimator):
    """What the compressed estimators share: a network and the checks of its input.

    Every prediction checks ``X`` as the fitted estimator did, through
    scikit-learn's ``validate_data``: the number of features, the feature
    names of a DataFrame (``feature_names_in_``, copied by ``compress()`` from
    the estimator), finite values and, for sparse input, indices within the
    shape, before the network sees it. With numba, a row's prediction does not
    depend on the batch it comes in, to the bit (see
    :class:`~skprune.compress.CompactMLP`; without numba, BLAS's products may
    round it differently for other batch sizes).
    """

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X, y=None, **fit_params):
        """Refuse to train: a compressed model is prediction-only.

        It exists so that scikit-learn takes the model as a fitted estimator
        (the last step of a :class:`~sklearn.pipeline.Pipeline`,
        :class:`~sklearn.frozen.FrozenEstimator`, ``check_is_fitted``), which
        all require a ``fit`` method. To predict through a pipeline, put the
        model after the already fitted steps and call ``predict`` without
        fitting; to pass the pipeline to code that calls ``fit``, wrap it in
        ``FrozenEstimator``.

        Raises
        ------
        TypeError
            Always.
        """
        name = type(self).__name__
        raise TypeError(
            f"{name} cannot be trained: it is the prediction-only model made by "
            "compress(). Fit the pruned estimator and compress it again, or wrap "
            "the fitted pipeline in sklearn.frozen.FrozenEstimator to pass it to "
            "code that calls fit."
        )

    @property
    def n_features_in_(self) -> int:
        return self.network.n_features

    def _network_outputs(self, X) -> np.ndarray:
        """The network's outputs for ``X``, of shape (n_samples, n_outputs)."""
        X = validate_prediction_data(self, X)
        return self.network.decision_function(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def copy_feature_names(compressed: CompressedModel, estimator) -> CompressedModel:
    """Give ``compressed`` the fitted ``estimator``'s ``feature_names_in_``, if any."""
    if hasattr(estimator, "feature_names_in_"):
        compressed.feature_names_in_ = estimator.feature_names_in_.copy()
    return compressed


class CompressedClassifier(ClassifierMixin, CompressedModel):
    """A pruned classifier reduced to what it computes, for fast, small predictions.

    Made by :meth:`skprune.PrunedClassifier.compress`: dead hidden units and
    unused input features are physically removed, each weight is held in the
    layout predicted fastest (CSR, or dense rows) as float32 or int8 with
    per-row scales, and prediction runs in compiled loops. It predicts what the
    fitted estimator predicts (to float tolerance; to the int8 rounding for
    ``compress(dtype="int8")``) and cannot be trained. ``network.nbytes`` is
    what it holds in memory, also after predicting.

    Parameters
    ----------
    network : skprune.compress.CompactMLP
        The compact network.
    classes : ndarray of shape (n_classes,)
        Class labels, in the order of the network's outputs.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        The fitted estimator's, defined only when it has them; ``X`` given
        as a DataFrame must then have these columns, in this order.

    See Also
    --------
    skprune.PrunedClassifier.compress : What makes it.

    Examples
    --------
    Pruning 90% of the 16 hidden units leaves 2, and only they remain:

    >>> import numpy as np
    >>> from skprune import PrunedClassifier, default_classifier_net
    >>> from skprune.datasets import make_text_classification
    >>> X, y = make_text_classification(
    ...     200, 1000, n_classes=3, n_topic_words=50, random_state=0
    ... )
    >>> net = default_classifier_net().set_params(
    ...     max_epochs=2, module__hidden_layer_sizes=(16,)
    ... )
    >>> clf = PrunedClassifier(
    ...     net, prune_ratio=0.9, granularity="neuron", random_state=0
    ... )
    >>> small = clf.fit(X, y).compress()
    >>> small.network
    CompactMLP(n_features=1000, layers=[1000x2 row-sparse (100.0% kept), 2x3 dense \
(100.0% kept)], activation='relu')
    >>> small.classes_.tolist(), small.predict(X[:4]).shape
    ([0, 1, 2], (4,))
    >>> bool(np.allclose(small.predict_proba(X), clf.predict_proba(X), atol=1e-5))
    True
    >>> small.fit(X, y)
    Traceback (most recent call last):
    ...
    TypeError: CompressedClassifier cannot be trained: it is the prediction-only \
model made by compress(). Fit the pruned estimator and compress it again, or wrap \
the fitted pipeline in sklearn.frozen.FrozenEstimator to pass it to code that \
calls fit.
    """

    def __init__(self, network: CompactMLP, classes) -> None:
        self.network = network
        self.classes = classes

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def decision_function(self, X) -> np.ndarray:
        """Unnormalised class scores (logits), of shape (n_samples, n_classes).

        For two classes, of shape (n_samples,): the second class's score minus
        the first's, as in :meth:`PrunedClassifier.decision_function`.
        """
        return decision_from_logits(self._network_outputs(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, of shape (n_samples, n_classes)."""
        return _softmax(self._network_outputs(X).astype(np.float64))

    def predict(self, X) -> np.ndarray:
        """Predicted class labels, of shape (n_samples,)."""
        return self.classes_[np.argmax(self._network_outputs(X), axis=1)]


class CompressedRegressor(RegressorMixin, CompressedModel):
    """A pruned regressor reduced to what it computes, for fast, small predictions.

    Made by :meth:`skprune.PrunedRegressor.compress`. It predicts what the fitted
    estimator predicts (to float tolerance) and cannot be trained. Its input is
    checked as :class:`~skprune.CompressedClassifier`'s is.

    Parameters
    ----------
    network : skprune.compress.CompactMLP
        The compact network; one output per target.

    Attributes
    ----------
    n_outputs_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        The fitted estimator's, defined only when it has them.

    See Also
    --------
    skprune.PrunedRegressor.compress : What makes it.

    Examples
    --------
    Two targets, and 90% of the 16 hidden units pruned:

    >>> import numpy as np
    >>> from skprune import PrunedRegressor, default_regressor_net
    >>> from skprune.datasets import make_text_classification
    >>> X, labels = make_text_classification(
    ...     200, 1000, n_classes=3, n_topic_words=50, random_state=0
    ... )
    >>> y = np.c_[labels, -labels].astype(float)
    >>> net = default_regressor_net().set_params(
    ...     max_epochs=2, module__hidden_layer_sizes=(16,)
    ... )
    >>> reg = PrunedRegressor(
    ...     net, prune_ratio=0.9, granularity="neuron", random_state=0
    ... ).fit(X, y)
    >>> small = reg.compress()
    >>> small.network
    CompactMLP(n_features=1000, layers=[1000x2 row-sparse (100.0% kept), 2x2 dense \
(100.0% kept)], activation='relu')
    >>> small.n_outputs_, small.predict(X[:4]).shape
    (2, (4, 2))
    >>> bool(np.allclose(small.predict(X), reg.predict(X), atol=1e-4))
    True
    """

    def __init__(self, network: CompactMLP) -> None:
        self.network = network

    @property
    def n_outputs_(self) -> int:
        return len(self.network.biases[-1])

    def predict(self, X) -> np.ndarray:
        """Predicted targets, of shape (n_samples,) or (n_samples, n_outputs)."""
        return _as_targets(self._network_outputs(X).astype(np.float64))


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over each row, as ``scipy.special.softmax(logits, axis=1)`` computes
    it, op for op (the same bits), without its array-namespace dispatch."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _as_targets(outputs: np.ndarray) -> np.ndarray:
    """A single output as a 1-D array, as scikit-learn's regressors return it."""
    return outputs[:, 0] if outputs.shape[1] == 1 else outputs
