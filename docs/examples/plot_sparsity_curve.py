"""
=====================================
Accuracy against the prune ratio
=====================================

:meth:`skprune.plotting.SparsityCurveDisplay.from_estimator` cross-validates an
estimator along one pruning path per fold and draws the held-out score at each
ratio, the unpruned control (ratio 0) included, with one standard error.
"""

import matplotlib.pyplot as plt

from skprune import PrunedClassifier, default_classifier_net
from skprune.datasets import make_text_classification
from skprune.plotting import SparsityCurveDisplay

X, y = make_text_classification(500, 2000, random_state=0)
clf = PrunedClassifier(
    default_classifier_net().set_params(max_epochs=4), random_state=0
)
display = SparsityCurveDisplay.from_estimator(
    clf, X, y, prune_ratios=[0.5, 0.9, 0.98], cv=3
)
display.ax_.set_title("magnitude pruning, one-shot, on text-like data")
plt.show()
