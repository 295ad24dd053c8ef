"""Memory of a wide fit: the first layer's weights, Adam's moments, little more."""

import subprocess
import sys
import textwrap

# Fits 1,000 x 5,000,000 (dense: 20 GB in float32) in a fresh process, so that
# its peak RSS is its own, and prints how far the fit raises it above the resident
# memory before it, in bytes (Linux: reads /proc/self/status).
WIDE_FIT = textwrap.dedent(
    """
    import resource, sys, numpy as np, scipy.sparse as sp, torch
    from skprune import PrunedClassifier
    from skprune._classifier import default_classifier_net
    torch.set_num_threads(1)
    ratio, hidden = float(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    n_rows, n_cols, per_row = 1_000, 5_000_000, 50
    X = sp.csr_matrix(
        (rng.random(n_rows * per_row, dtype=np.float32),
         rng.integers(0, n_cols, size=n_rows * per_row),
         np.arange(0, n_rows * per_row + 1, per_row)),
        shape=(n_rows, n_cols))
    y = rng.integers(0, 2, size=n_rows)
    net = default_classifier_net().set_params(
        max_epochs=1, module__hidden_layer_sizes=(hidden,))
    clf = PrunedClassifier(net, prune_ratio=ratio, retrain_epochs=1, random_state=0)
    # Imports and first-call allocations happen on a narrow matrix, unmeasured.
    clf.fit(X[:, :1000], y)
    del clf
    # Resident now (not the peak so far) against the peak after the fit.
    status = open("/proc/self/status").read().split("VmRSS:")[1]
    before = int(status.split()[0])
    PrunedClassifier(net, prune_ratio=ratio, retrain_epochs=1, random_state=0).fit(X, y)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024)
    """
)


def test_wide_fit_peaks_at_four_times_the_first_layers_weights():
    """The weights and Adam's two moments are three copies of the first layer;
    pruning (scores, selection, masks, zeroing the optimizer state) and the
    report add less than one more. Before blockwise selection and counting, the
    same fit peaked at about 9 copies."""
    hidden = 16
    out = subprocess.run(
        [sys.executable, "-c", WIDE_FIT, "0.9", str(hidden)],
        capture_output=True,
        text=True,
        check=True,
    )
    growth = int(out.stdout.split()[-1])
    weight_bytes = 5_000_000 * hidden * 4  # float32 weights of the first layer
    assert growth <= 4 * weight_bytes
