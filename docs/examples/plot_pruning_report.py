"""
=========================
What pruning removed
=========================

:func:`skprune.plotting.plot_pruning_report` draws the share of each layer's
weights that a fit kept; ``pruning_report_`` holds the same numbers, one row
per layer. With ``granularity="neuron"`` whole hidden units go, which the
report counts as outputs kept.
"""

import matplotlib.pyplot as plt
import pandas as pd

from skprune import PrunedClassifier, default_classifier_net
from skprune.datasets import make_text_classification
from skprune.plotting import plot_pruning_report

X, y = make_text_classification(600, 3000, random_state=0)
net = default_classifier_net().set_params(
    max_epochs=4, module__hidden_layer_sizes=(128, 64)
)
clf = PrunedClassifier(net, prune_ratio=0.8, granularity="neuron", random_state=0).fit(
    X, y
)

report = pd.DataFrame(clf.pruning_report_)
print(report[["layer", "shape", "kept", "sparsity", "outputs", "outputs_kept"]])

# %%
# The display
# -----------
display = plot_pruning_report(clf)
display.ax_.set_title("granularity='neuron', prune_ratio=0.8")
plt.show()
