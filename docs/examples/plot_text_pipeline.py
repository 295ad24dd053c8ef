"""
=============================================================
A text pipeline: TfidfVectorizer, PrunedClassifier, compress
=============================================================

A ``Pipeline`` from raw text to a pruned network, then the same pipeline with
the network replaced by its compressed model: physically smaller, predicting on
raw text with numpy, scipy and compiled loops. The documents are words drawn
from skprune's text-like generator (counts, not TF-IDF), written out as text.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skprune import PrunedClassifier, default_classifier_net
from skprune.datasets import make_text_classification

counts, labels = make_text_classification(800, 3000, tfidf=False, random_state=0)
vocabulary = np.array([f"w{j}" for j in range(counts.shape[1])])
texts = [
    " ".join(np.repeat(vocabulary[row.indices], row.data.astype(int))) for row in counts
]
print(texts[0][:70], "...")
train_texts, test_texts, y_train, y_test = train_test_split(
    texts, labels, random_state=0
)

net = default_classifier_net().set_params(max_epochs=4)
model = make_pipeline(
    TfidfVectorizer(), PrunedClassifier(net, prune_ratio=0.9, random_state=0)
)
model.fit(train_texts, y_train)
small = make_pipeline(model[0], model[-1].compress())
print(f"pruned:     {model.score(test_texts, y_test):.3f}")
print(f"compressed: {small.score(test_texts, y_test):.3f}")
print(
    "same predictions:",
    bool((small.predict(test_texts) == model.predict(test_texts)).all()),
)
print(small[-1].network)

# %%
# Weights stored, and seconds to predict the test texts
# -----------------------------------------------------
# The timings are of this build's machine, one run each: an illustration,
# not a measurement.
pruned = model[-1]
stored = {"trained": pruned.n_params_, "left by pruning": pruned.n_nonzero_params_}
seconds = {}
for name, pipeline in (("pruned", model), ("compressed", small)):
    start = time.perf_counter()
    pipeline.predict_proba(test_texts)
    seconds[name] = time.perf_counter() - start

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
left.bar(list(stored), list(stored.values()))
left.set_ylabel("prunable weights")
right.bar(list(seconds), list(seconds.values()))
right.set_ylabel("seconds for predict_proba")
fig.tight_layout()
plt.show()
