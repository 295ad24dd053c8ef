"""Prediction-only estimators made by ``compress()`` from a fitted pruned one."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_array

from .compress import CompactMLP
from .data import as_canonical_csr

__all__ = ["CompressedClassifier", "decision_from_logits"]


def decision_from_logits(logits: np.ndarray) -> np.ndarray:
    """scikit-learn's ``decision_function`` from a network's logits.

    For two classes, the second class's logit minus the first's, of shape
    (n_samples,), as scikit-learn's binary classifiers return; otherwise the
    logits unchanged.
    """
    if logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    return logits


class CompressedClassifier(ClassifierMixin, BaseEstimator):
    """A pruned classifier reduced to what it computes, for fast, small predictions.

    Made by :meth:`skprune.PrunedClassifier.compress`: dead hidden units and
    unused input features are physically removed, weights are stored sparse where
    that is smaller, and prediction runs in numpy and scipy. It predicts what the
    fitted estimator predicts (to float tolerance) and cannot be trained.

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
    """

    def __init__(self, network: CompactMLP, classes) -> None:
        self.network = network
        self.classes = classes

    def __sklearn_is_fitted__(self) -> bool:
        return True

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    @property
    def n_features_in_(self) -> int:
        return self.network.n_features

    def _logits(self, X) -> np.ndarray:
        X = check_array(X, accept_sparse=("csr", "csc", "coo"), dtype=np.float32)
        if sp.issparse(X):  # indices outside the shape would be read out of bounds
            X = as_canonical_csr(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but CompressedClassifier is "
                f"expecting {self.n_features_in_} features as input."
            )
        return self.network.decision_function(X)

    def decision_function(self, X) -> np.ndarray:
        """Unnormalised class scores (logits), of shape (n_samples, n_classes).

        For two classes, of shape (n_samples,): the second class's score minus
        the first's, as in :meth:`PrunedClassifier.decision_function`.
        """
        return decision_from_logits(self._logits(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, of shape (n_samples, n_classes)."""
        return softmax(self._logits(X).astype(np.float64), axis=1)

    def predict(self, X) -> np.ndarray:
        """Predicted class labels, of shape (n_samples,)."""
        return self.classes_[np.argmax(self._logits(X), axis=1)]
