"""
======================================
Saving and loading a model, with trust
======================================

:func:`skprune.save` writes a model to a file that :func:`skprune.load` reads
without pickle and without running any code the file names. A class outside
skprune's registry, here torch's own ``torch.nn.Linear`` as the whole network,
is refused until you say you trust it.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier

import skprune
from skprune import PrunedClassifier
from skprune.exceptions import UntrustedTypeError

# %%
# A pruned linear model on scikit-learn's digits
# ----------------------------------------------
X, y = load_digits(return_X_y=True)
X = (X / 16).astype(np.float32)
net = NeuralNetClassifier(
    torch.nn.Linear,
    module__in_features=64,
    module__out_features=10,
    criterion=torch.nn.CrossEntropyLoss,
    optimizer=torch.optim.SGD,
    lr=0.1,
    max_epochs=5,
    train_split=None,
    verbose=0,
)
clf = PrunedClassifier(net, prune_ratio=0.7, prune_output=True, random_state=0)
clf.fit(X, y)
print(f"training accuracy {clf.score(X, y):.3f}, sparsity {clf.sparsity_:.2f}")

# %%
# Save, and load without trusting the module: refused, nothing imported
# ---------------------------------------------------------------------
path = os.path.join(tempfile.mkdtemp(), "digits.skprune")
skprune.save(clf, path)
print(f"{os.path.getsize(path):,} bytes")
try:
    skprune.load(path)
except UntrustedTypeError as error:
    print(error)

# %%
# Load with the name the message gives
# ------------------------------------
# A trusted class is called with keyword arguments chosen by the file: trust
# only classes that are safe to call with any.
again = skprune.load(path, trusted=["torch.nn.modules.linear.Linear"])
same = np.array_equal(again.predict_proba(X), clf.predict_proba(X))
print("same probabilities, bit for bit:", same)

# %%
# The weights that survived, one image per class
# ----------------------------------------------
weights = again.estimator_.module_.weight.detach().numpy()
fig, axes = plt.subplots(1, 10, figsize=(10, 1.6))
for digit, ax in enumerate(axes):
    ax.imshow(weights[digit].reshape(8, 8), cmap="RdBu", vmin=-1, vmax=1)
    ax.set_title(str(digit))
    ax.set_axis_off()
fig.suptitle("kept weights of the loaded model (white: pruned)")
plt.show()
