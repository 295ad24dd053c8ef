"""
================================================
Choosing the prune ratio with PrunedClassifierCV
================================================

:class:`skprune.PrunedClassifierCV` trains each fold's network once and walks
up the ratios along one pruning path, scoring each on the held-out part. It
selects the sparsest ratio within one standard error of the best mean score,
then refits along the same path on all the data. Here on skprune's text-like
sparse data.
"""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import train_test_split

from skprune import PrunedClassifierCV, default_classifier_net
from skprune.datasets import make_text_classification
from skprune.plotting import SparsityCurveDisplay

X, y = make_text_classification(500, 2000, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

net = default_classifier_net().set_params(max_epochs=4)
search = PrunedClassifierCV(
    net, prune_ratios=[0.5, 0.9, 0.98], cv=3, random_state=0
).fit(X_train, y_train)

print(f"selected ratio {search.prune_ratio_}, mean score {search.best_score_:.3f}")
print(f"test accuracy of the refit: {search.score(X_test, y_test):.3f}")
columns = ["param_prune_ratio", "mean_test_score", "std_test_score", "mean_fit_time"]
print(pd.DataFrame(search.cv_results_)[columns])

# %%
# The curve, with the selected ratio marked
# -----------------------------------------
SparsityCurveDisplay.from_cv_results(
    search.cv_results_, selected_ratio=search.prune_ratio_
)
plt.show()
