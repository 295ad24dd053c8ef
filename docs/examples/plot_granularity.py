"""
===========================================
Weights, hidden units or input features
===========================================

The same prune ratio removes single weights (``granularity="weight"``), whole
hidden units (``"neuron"``) or whole input columns (``"feature"``). Weight
pruning keeps the most accuracy; the structured ones make the compressed model
smaller dense layers, and feature pruning is a feature selection.
"""

import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split

from skprune import PrunedClassifier, default_classifier_net
from skprune.datasets import make_text_classification

X, y = make_text_classification(600, 3000, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
net = default_classifier_net().set_params(max_epochs=4)

results = {}
for granularity in ("weight", "neuron", "feature"):
    clf = PrunedClassifier(
        net, prune_ratio=0.9, granularity=granularity, random_state=0
    ).fit(X_train, y_train)
    small = clf.compress()
    results[granularity] = {
        "accuracy": clf.score(X_test, y_test),
        "features kept": int(clf.get_support().sum()),
        "network": repr(small.network),
    }
    print(
        f"{granularity:>8}: accuracy {results[granularity]['accuracy']:.3f}, "
        f"{results[granularity]['features kept']} of {X.shape[1]} features read"
    )
    print(f"          {small.network!r}")

# %%
# Accuracy and features read, side by side
# ----------------------------------------
names = list(results)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
left.bar(names, [results[n]["accuracy"] for n in names])
left.set_ylabel("test accuracy")
left.set_ylim(0, 1)
right.bar(names, [results[n]["features kept"] for n in names])
right.set_ylabel("input features the model reads")
fig.suptitle("prune_ratio=0.9")
fig.tight_layout()
plt.show()
