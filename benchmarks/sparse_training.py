"""Training and prediction speed on sparse data: skprune against its peers.

Run from the repository root::

    python benchmarks/sparse_training.py            # the full run (about 10 minutes)
    python benchmarks/sparse_training.py --quick    # a smoke run (under a minute)

Each measurement runs in a fresh subprocess, so that its peak memory (max RSS) is
its own. One epoch each, same architecture (one hidden layer of 256 ReLU units),
batch size 256 and optimizer family (Adam):

- ``skprune``: ``PrunedClassifier``'s net: CSR batches as torch sparse tensors,
  an ``embedding_bag`` first layer with row-sparse gradients, ``LazyAdam``;
- ``skprune_masked``: the same while retraining with 90% of the weights masked,
  to measure what enforcing masks costs;
- ``mlpclassifier``: ``sklearn.neural_network.MLPClassifier(solver="adam")``;
- ``skorch``: a plain skorch ``NeuralNetClassifier`` over ``nn.Linear`` on the
  CSR matrix, its default data path (each row densified) and ``torch.optim.Adam``.

Data: uniform random CSR matrices (the shape of the reference measurement in
the design notes) at three sizes, to show how the cost grows with the stored
values and with the number of features. Then, at 90% sparsity: predict time and
pickled size of the compressed model against the dense (unpruned) one.

Prints ratios and writes ``benchmarks/results/sparse_training.md``. Absolute
seconds drift on a shared machine; the ratios, measured side by side, hold.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {
    # name: (n_samples, n_features, density)
    "main": (20_000, 100_000, 0.001),
    "half_nnz": (20_000, 100_000, 0.0005),
    "wide": (20_000, 1_000_000, 0.0001),
}
QUICK_SIZES = {
    "main": (2_000, 10_000, 0.001),
    "half_nnz": (2_000, 10_000, 0.0005),
    "wide": (2_000, 100_000, 0.0001),
}
HIDDEN, BATCH, N_CLASSES = 256, 256, 4


def make_data(n_samples, n_features, density, seed=0):
    """Uniform random CSR float32 data with labels that depend on it."""
    rng = np.random.default_rng(seed)
    X = sp.random(
        n_samples,
        n_features,
        density=density,
        format="csr",
        dtype=np.float32,
        random_state=rng,
    )
    direction = rng.standard_normal((n_features, N_CLASSES)).astype(np.float32)
    y = np.asarray(np.argmax(X @ direction, axis=1)).ravel()
    return X, y


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# one measurement, in a subprocess -------------------------------------------------


def measure(path: str, size: tuple) -> dict:
    X, y = make_data(*size)
    data_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
    before = peak_rss_mb()
    if path in ("skprune", "skprune_masked"):
        epoch = _skprune_epoch(X, y, masked=path == "skprune_masked")
    elif path == "mlpclassifier":
        epoch = _mlpclassifier_epoch(X, y)
    elif path == "skorch":
        epoch = _skorch_epoch(X, y)
    else:
        raise ValueError(path)
    return {
        "path": path,
        "epoch_s": epoch,
        "nnz": int(X.nnz),
        "data_mb": data_mb,
        "model_mb": X.shape[1] * HIDDEN * 4 / 2**20,
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def _skprune_epoch(X, y, masked: bool) -> float:
    from skprune import PrunedClassifier
    from skprune._classifier import default_classifier_net

    net = default_classifier_net().set_params(
        max_epochs=1, batch_size=BATCH, module__hidden_layer_sizes=(HIDDEN,)
    )
    # Two epochs: the first allocates the optimizer state; pruning (90% or the
    # 0% control, which changes nothing) happens between them. The second epoch
    # is the one measured.
    clf = PrunedClassifier(
        net, prune_ratio=0.9 if masked else 0.0, retrain_epochs=1, random_state=0
    ).fit(X, y)
    return float(clf.estimator_.history[-1, "dur"])


def _mlpclassifier_epoch(X, y) -> float:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        (HIDDEN,), solver="adam", batch_size=BATCH, max_iter=1, random_state=0
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return time.perf_counter() - start


def _skorch_epoch(X, y) -> float:
    import torch
    from skorch import NeuralNetClassifier

    module = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, N_CLASSES),
    )
    net = NeuralNetClassifier(
        module,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=BATCH,
        max_epochs=1,
        train_split=None,
        verbose=0,
        iterator_train__shuffle=True,
    )
    net.fit(X, y)
    return float(net.history[-1, "dur"])


def measure_prediction(size: tuple) -> dict:
    """Predict time and pickled size: compressed at 90% against the dense model."""
    from skprune import PrunedClassifier
    from skprune._classifier import default_classifier_net

    X, y = make_data(*size)
    X_test, _ = make_data(size[0] // 4, size[1], size[2], seed=1)
    net = default_classifier_net().set_params(max_epochs=1, batch_size=BATCH)
    dense = PrunedClassifier(net, prune_ratio=0.0, retrain_epochs=1, random_state=0)
    dense.fit(X, y)

    def best_of(model, repeats=3):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict_proba(X_test)
            times.append(time.perf_counter() - start)
        return min(times)

    result = {
        "predict_dense_s": best_of(dense),
        "file_dense_mb": len(pickle.dumps(dense)) / 2**20,
        "dense_weights_mb": sum(
            p.numel() * 4 for p in dense.estimator_.module_.parameters()
        )
        / 2**20,
        "n_test": X_test.shape[0],
        "granularities": {},
    }
    for granularity in ("weight", "neuron", "feature"):
        pruned = PrunedClassifier(
            net,
            prune_ratio=0.9,
            granularity=granularity,
            retrain_epochs=1,
            random_state=0,
        ).fit(X, y)
        compressed = pruned.compress()
        result["granularities"][granularity] = {
            "sparsity": pruned.sparsity_,
            "predict_pruned_s": best_of(pruned),
            "predict_compressed_s": best_of(compressed),
            "file_pruned_mb": len(pickle.dumps(pruned)) / 2**20,
            "file_compressed_mb": len(pickle.dumps(compressed)) / 2**20,
            "agreement": float(
                np.mean(compressed.predict(X_test) == pruned.predict(X_test))
            ),
        }
    return result


# the driver -----------------------------------------------------------------------


def run_child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--child", nargs=2, metavar=("PATH", "SIZE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--child-predict", metavar="SIZE", help=argparse.SUPPRESS)
    parser.add_argument(
        "--rerun",
        default="",
        help="comma-separated SIZE:PATH pairs to measure again, keeping the other "
        "rows of the last run's JSON; 'prediction' re-measures prediction only",
    )
    parser.add_argument(
        "--skip-skorch-on",
        default="wide",
        help="comma-separated sizes where the slow skorch path is skipped",
    )
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.child:
        path, name = args.child
        print(json.dumps(measure(path, sizes[name])))
        return 0
    if args.child_predict:
        print(json.dumps(measure_prediction(sizes[args.child_predict])))
        return 0

    quick = ["--quick"] if args.quick else []
    skip = set(filter(None, args.skip_skorch_on.split(",")))
    suffix = "_quick" if args.quick else ""
    rerun = set(filter(None, args.rerun.split(",")))
    previous = {}
    if rerun:
        old = json.loads((RESULTS / f"sparse_training{suffix}.json").read_text())
        previous = {(r["size"], r["path"]): r for r in old["epochs"]}
        previous["prediction"] = old["prediction"]
    rows = []
    for name in sizes:
        for path in ("skprune", "skprune_masked", "mlpclassifier", "skorch"):
            if path == "skorch" and name in skip:
                continue
            if rerun and f"{name}:{path}" not in rerun:
                rows.append(previous[(name, path)])
                continue
            print(f"{name:9s} {path:15s}", end=" ", flush=True)
            row = run_child([*quick, "--child", path, name])
            row["size"] = name
            rows.append(row)
            print(f"{row['epoch_s']:7.2f} s/epoch  peak {row['peak_rss_mb']:7.0f} MB")
    if rerun and "prediction" not in rerun:
        prediction = previous["prediction"]
    else:
        print("prediction at 90% sparsity on 'main'...", flush=True)
        prediction = run_child([*quick, "--child-predict", "main"])
    report = format_report(rows, prediction, sizes)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"sparse_training{suffix}.md").write_text(report)
    (RESULTS / f"sparse_training{suffix}.json").write_text(
        json.dumps({"epochs": rows, "prediction": prediction}, indent=2)
    )
    return 0


def format_report(rows, prediction, sizes) -> str:
    import torch

    by = {(r["size"], r["path"]): r for r in rows}
    lines = [
        "# Sparse training benchmark",
        "",
        f"Machine: {platform.machine()} {platform.processor() or ''}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, torch threads {torch.get_num_threads()}. "
        "Command: `python benchmarks/sparse_training.py`.",
        "",
        f"One epoch, one hidden layer of {HIDDEN} units, batch {BATCH}, Adam family. "
        "Peak memory is the measuring process's max RSS (Python, torch and the data "
        "included).",
        "",
        "| data | nnz | path | s / epoch | vs skprune | peak RSS MB | CSR data MB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (n, d, density) in sizes.items():
        base = by[(name, "skprune")]["epoch_s"]
        for path in ("skprune", "skprune_masked", "mlpclassifier", "skorch"):
            row = by.get((name, path))
            if row is None:
                continue
            lines.append(
                f"| {n:,} x {d:,} @ {density:.2%} | {row['nnz']:,} | {path} | "
                f"{row['epoch_s']:.2f} | {row['epoch_s'] / base:.1f}x | "
                f"{row['peak_rss_mb']:.0f} | {row['data_mb']:.0f} |"
            )
    main_rows = {
        p: by[("main", p)]["epoch_s"]
        for p in ("skprune", "skprune_masked", "mlpclassifier", "skorch")
        if ("main", p) in by
    }
    lines += ["", "Ratios on the main matrix:", ""]
    base = main_rows["skprune"]
    if "mlpclassifier" in main_rows:
        lines.append(
            f"- MLPClassifier / skprune: {main_rows['mlpclassifier'] / base:.1f}x"
        )
    if "skorch" in main_rows:
        lines.append(f"- skorch default / skprune: {main_rows['skorch'] / base:.1f}x")
    lines.append(
        f"- mask enforcement at 90% sparsity: masked epoch / dense epoch = "
        f"{main_rows['skprune_masked'] / base:.2f}"
    )
    scaling = by[("half_nnz", "skprune")]["epoch_s"] / base
    wide = by[("wide", "skprune")]["epoch_s"] / base
    lines.append(
        f"- half the stored values: {scaling:.2f}x the time; ten times the features "
        f"at the same stored values: {wide:.2f}x the time"
    )
    p = prediction
    lines += [
        "",
        f"Prediction on {p['n_test']:,} test rows of the main matrix, best of 3, "
        "against the dense (unpruned) model; `prune_ratio=0.9` of the weights, units "
        "or features:",
        "",
        "| model | sparsity | predict s | speed-up | file MB | smaller |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| dense | 0 | {p['predict_dense_s']:.3f} | 1.0x | {p['file_dense_mb']:.1f} "
        "| 1.0x |",
    ]
    for granularity, g in p["granularities"].items():
        for kind in ("pruned", "compressed"):
            seconds, size = g[f"predict_{kind}_s"], g[f"file_{kind}_mb"]
            lines.append(
                f"| {granularity}, {kind} | {g['sparsity']:.3f} | {seconds:.3f} | "
                f"{p['predict_dense_s'] / seconds:.1f}x | {size:.1f} | "
                f"{p['file_dense_mb'] / size:.1f}x |"
            )
    lines += [
        "",
        f"The dense weights alone take {p['dense_weights_mb']:.0f} MB (the estimator's "
        "pickle adds the optimizer state). Compressed and uncompressed predictions "
        "agree on "
        + ", ".join(
            f"{g['agreement']:.2%} ({name})" for name, g in p["granularities"].items()
        )
        + " of rows.",
        "",
    ]
    return "\n".join(lines)


# the 2^20-feature row (issue 11) ----------------------------------------------------


def hashing_scale_row(argv=None) -> int:
    """Fit on 2^20 features: time outside the epochs, peak memory, compress().

    Runs ``benchmarks/hashing_scale.py`` (each prune ratio in its own process),
    which writes ``benchmarks/results/hashing_scale.md``. Command:
    ``python benchmarks/sparse_training.py --hashing-scale [--quick]``.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import hashing_scale

    return hashing_scale.main(argv)


if __name__ == "__main__":
    if "--hashing-scale" in sys.argv[1:]:
        raise SystemExit(
            hashing_scale_row([a for a in sys.argv[1:] if a != "--hashing-scale"])
        )
    raise SystemExit(main())
