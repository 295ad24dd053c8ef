"""Write the committed model files that tests/test_persistence.py loads.

``pruned_classifier.skprune`` (a fitted, 90%-pruned PrunedClassifier) and
``compressed_classifier.skprune`` (its compressed copy), saved by the format
that wrote them, with ``persistence_fixture.json``: the input rows and the
labels and logits both models give on them. The weights are set to multiples of
1/8 (on the trained zero pattern) and the inputs are small integers, so that
every logit is computed exactly in float32 whatever the summation order: the
recorded values hold bit for bit on any CPU.

Run from the repository root, only when the format changes on purpose:
``python tests/data/make_persistence_fixture.py``.
"""

import json
import os

import numpy as np
import scipy.sparse as sp
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    import skprune
    from skprune import PrunedClassifier, default_classifier_net

    rng = np.random.default_rng(14)
    X = sp.csr_matrix(
        (rng.random((60, 30)) < 0.3) * rng.integers(1, 4, (60, 30)), dtype=np.float32
    )
    y = rng.choice(["eggs", "ham", "spam"], 60)
    net = default_classifier_net().set_params(
        max_epochs=2, module__hidden_layer_sizes=(8,), lr=0.01
    )
    clf = PrunedClassifier(net, prune_ratio=0.9, random_state=0).fit(X, y)
    with torch.no_grad():
        for param in clf.estimator_.module_.parameters():
            eighths = torch.from_numpy(rng.integers(1, 9, tuple(param.shape)))
            signs = torch.from_numpy(rng.choice([-1, 1], tuple(param.shape)))
            param.copy_((param != 0) * signs * eighths / 8.0)
    compressed = clf.compress()
    rows = X[:12]
    record = {"X": rows.toarray().astype(int).tolist()}
    for name, model in (("pruned", clf), ("compressed", compressed)):
        logits = model.decision_function(rows)
        assert (np.sort(logits, axis=1)[:, -1] > np.sort(logits, axis=1)[:, -2]).all()
        record[name] = {
            "labels": model.predict(rows).tolist(),
            "logits": logits.tolist(),
        }
        path = os.path.join(HERE, f"{name}_classifier.skprune")
        skprune.save(model, path, overwrite=True)
    with open(os.path.join(HERE, "persistence_fixture.json"), "w") as file:
        json.dump(record, file)
        file.write("\n")


if __name__ == "__main__":
    main()
