"""Training and prediction speed on sparse data: skprune against its peers.

Run from the repository root::

    python benchmarks/sparse_training.py            # the full run (about 20 minutes)
    python benchmarks/sparse_training.py --quick    # a smoke run (under a minute)

Each measurement runs in a fresh subprocess, so that its peak memory (max RSS) is
its own. Same architecture (one hidden layer of 256 ReLU units), batch size 256
and optimizer family (Adam). The comparison is like for like: **whole fits of
the same number of epochs** (``FIT_EPOCHS``, 5), each timed from ``fit``'s call
to its return, so every contestant's fixed costs are in its figure:

- ``skprune_fit``: a whole default ``PrunedClassifier`` fit, 3 dense + 2
  retraining epochs at ``prune_ratio=0.9`` (validation, pruning, masks and the
  report included): CSR batches as torch sparse tensors, an ``embedding_bag``
  first layer with row-sparse gradients, ``LazyAdam``;
- ``mlpclassifier_fit``: ``sklearn.neural_network.MLPClassifier(solver="adam",
  max_iter=5)`` (its stopping rule needs 10 epochs without progress, so it
  trains all 5);
- ``skorch_fit``: a plain skorch ``NeuralNetClassifier`` over ``nn.Linear`` on
  the CSR matrix, 5 epochs: its default data path (each row densified) and
  ``torch.optim.Adam``.

Besides, one epoch inside skorch's loop: ``skprune`` (the dense epoch) and
``skprune_masked`` (retraining with 90% of the weights masked, what enforcing
masks costs). The report prints each contestant's whole fit over skprune's.

Data: uniform random CSR matrices (the shape of the reference measurement in
the design notes) at three sizes, to show how the cost grows with the stored
values and with the number of features. Then ``predict_proba`` on 2,000 rows:
the compressed model (weight pruning at 90% and 98%, neuron and feature pruning
at 90%) against the same pruned model uncompressed, taking turns, in each
layout; sizes against the dense model's float32 weights.
``--prediction-only`` measures the prediction part alone.

Every results file names its commit (``_provenance``); a dirty tree is refused
unless ``--allow-dirty``, which marks the file. One run produces every row.

Prints ratios and writes ``benchmarks/results/sparse_training.md``. Absolute
seconds drift on a shared machine; the ratios, measured side by side, hold.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import _provenance  # first: puts this checkout's skprune on sys.path
import numpy as np
import scipy.sparse as sp

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {
    # name: (n_samples, n_features, density)
    "5k": (5_000, 100_000, 0.001),
    "main": (20_000, 100_000, 0.001),
    "half_nnz": (20_000, 100_000, 0.0005),
    "wide": (20_000, 1_000_000, 0.0001),
}
QUICK_SIZES = {
    "5k": (500, 10_000, 0.001),
    "main": (2_000, 10_000, 0.001),
    "half_nnz": (2_000, 10_000, 0.0005),
    "wide": (2_000, 100_000, 0.0001),
}
HIDDEN, BATCH, N_CLASSES = 256, 256, 4
FIT_EPOCHS = 5  # every whole fit: skprune's 3 dense + 2 retraining epochs
FITS = ("skprune_fit", "mlpclassifier_fit", "skorch_fit")
EPOCHS = ("skprune", "skprune_masked")
PATHS = (*EPOCHS, *FITS)


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
    epochs = FIT_EPOCHS
    if path == "skprune_fit":
        seconds, epochs = _skprune_whole_fit(X, y)
    elif path in ("skprune", "skprune_masked"):
        seconds, epochs = _skprune_epoch(X, y, masked=path == "skprune_masked"), 1
    elif path == "mlpclassifier_fit":
        seconds, epochs = _mlpclassifier_fit(X, y)
    elif path == "skorch_fit":
        seconds = _skorch_fit(X, y)
    else:
        raise ValueError(path)
    return {
        "path": path,
        "seconds": seconds,
        "epochs": epochs,
        "nnz": int(X.nnz),
        "data_mb": data_mb,
        "model_mb": X.shape[1] * HIDDEN * 4 / 2**20,
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def _skprune_epoch(X, y, masked: bool) -> float:
    from skprune import PrunedClassifier

    net = _default_net().set_params(
        max_epochs=1, batch_size=BATCH, module__hidden_layer_sizes=(HIDDEN,)
    )
    # Two epochs: the first allocates the optimizer state; pruning (90% or the
    # 0% control, which changes nothing) happens between them. The second epoch
    # is the one measured.
    clf = PrunedClassifier(
        net, prune_ratio=0.9 if masked else 0.0, retrain_epochs=1, random_state=0
    ).fit(X, y)
    return float(clf.estimator_.history[-1, "dur"])


def _skprune_whole_fit(X, y) -> tuple[float, int]:
    """Seconds and epochs of a whole default ``fit`` (3 + 2 epochs, ratio 0.9).

    Validation, set-up, pruning, masks and the report are included, as the
    other contestants' whole fits include theirs.
    """
    from skprune import PrunedClassifier

    net = _default_net().set_params(
        max_epochs=3, batch_size=BATCH, module__hidden_layer_sizes=(HIDDEN,)
    )
    clf = PrunedClassifier(net, prune_ratio=0.9, random_state=0)
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start
    epochs = len(clf.estimator_.history)
    if epochs != FIT_EPOCHS:
        raise RuntimeError(f"skprune trained {epochs} epochs, not {FIT_EPOCHS}")
    return seconds, epochs


def _default_net():
    try:
        from skprune import default_classifier_net
    except ImportError:  # until the public export (contract C13) is merged
        from skprune._classifier import default_classifier_net
    return default_classifier_net()


def _mlpclassifier_fit(X, y) -> tuple[float, int]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        (HIDDEN,),
        solver="adam",
        batch_size=BATCH,
        max_iter=FIT_EPOCHS,
        random_state=0,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return time.perf_counter() - start, int(clf.n_iter_)


def _skorch_fit(X, y) -> float:
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
        max_epochs=FIT_EPOCHS,
        train_split=None,
        verbose=0,
        iterator_train__shuffle=True,
    )
    start = time.perf_counter()
    net.fit(X, y)
    return time.perf_counter() - start


PREDICTION_CASES = [
    # (granularity, prune_ratio)
    ("weight", 0.9),
    ("weight", 0.98),
    ("neuron", 0.9),
    ("feature", 0.9),
]
N_PREDICT = 2_000


def _best_of_interleaved(contestants: dict, X, repeats: int) -> dict:
    """Best time of each contestant's ``predict_proba(X)``, taking turns.

    Round-robin over the contestants, so that a burst of load on the shared
    machine hits them all alike.
    """
    times = {name: [] for name in contestants}
    for model in contestants.values():
        model.predict_proba(X[:10])  # compile or warm up once
    for _ in range(repeats):
        for name, model in contestants.items():
            start = time.perf_counter()
            model.predict_proba(X)
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def _with_layouts(compressed, layouts):
    """A copy of a compressed model that multiplies in the given layouts."""
    import dataclasses

    # A CompactMLP is frozen: its layouts and products are made once, at construction.
    network = dataclasses.replace(compressed.network, layouts=list(layouts))
    return type(compressed)(network, compressed.classes)


def measure_prediction(size: tuple, repeats: int = 5) -> dict:
    """``predict_proba`` on 2,000 rows: compressed against the uncompressed model.

    For each case (granularity, ratio) the pruned estimator, its compressed model
    in the layouts ``compress()`` chose, and the same model forced into each
    other layout take turns; sizes are compared against the dense model's
    weights (float32 parameters), not a pickle carrying the optimizer state.
    """
    from skprune import PrunedClassifier

    # Prediction speed depends on the weights' structure, not on how many rows
    # trained them: 5,000 rows are enough.
    X, y = make_data(min(size[0], 5_000), size[1], size[2])
    X_test, _ = make_data(N_PREDICT, size[1], size[2], seed=1)
    net = _default_net().set_params(max_epochs=1, batch_size=BATCH)
    dense = PrunedClassifier(net, prune_ratio=0.0, retrain_epochs=1, random_state=0)
    dense.fit(X, y)
    dense_weights_mb = (
        sum(p.numel() * 4 for p in dense.estimator_.module_.parameters()) / 2**20
    )
    result = {"n_test": N_PREDICT, "dense_weights_mb": dense_weights_mb, "cases": []}
    for granularity, ratio in PREDICTION_CASES:
        pruned = PrunedClassifier(
            net,
            prune_ratio=ratio,
            granularity=granularity,
            retrain_epochs=1,
            random_state=0,
        ).fit(X, y)
        compressed = pruned.compress()
        int8 = pruned.compress(dtype="int8")
        chosen = list(compressed.network.layouts)
        first_alternatives = {"csr", "row-sparse"} - {chosen[0]}
        contestants = {"uncompressed": pruned, "compressed": compressed}
        for layout in sorted(first_alternatives):
            contestants[f"first layer {layout}"] = _with_layouts(
                compressed, [layout, *chosen[1:]]
            )
        contestants["compressed int8"] = int8
        times = _best_of_interleaved(contestants, X_test, repeats)
        result["cases"].append(
            {
                "granularity": granularity,
                "prune_ratio": ratio,
                "sparsity": pruned.sparsity_,
                "layouts": chosen,
                "repr": repr(compressed.network),
                "seconds": times,
                "compressed_weights_mb": compressed.network.nbytes / 2**20,
                "int8_weights_mb": int8.network.nbytes / 2**20,
                "int8_layouts": list(int8.network.layouts),
                "agreement": float(
                    np.mean(compressed.predict(X_test) == pruned.predict(X_test))
                ),
            }
        )
        print(json.dumps(result["cases"][-1]), file=sys.stderr, flush=True)
    return result


# the driver -----------------------------------------------------------------------


def run_child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True
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
        "--skip-slow-on",
        default="wide",
        help="comma-separated sizes where the MLPClassifier and skorch fits are "
        "skipped (on 'wide' they take about 40 and 60 minutes; '' runs them)",
    )
    parser.add_argument(
        "--prediction-only",
        action="store_true",
        help="measure prediction only (writes sparse_training_prediction*.md)",
    )
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.child:
        path, name = args.child
        print(json.dumps(measure(path, sizes[name])))
        return 0
    if args.child_predict:
        print(json.dumps(measure_prediction(sizes[args.child_predict])))
        return 0

    _provenance.check_tree(args.allow_dirty)
    quick = ["--quick"] if args.quick else []
    command = _provenance.command_line("sparse_training.py", argv)
    if args.prediction_only:
        suffix = "_quick" if args.quick else ""
        prediction = run_child([*quick, "--child-predict", "main"])
        report = "\n".join(
            [
                "# Prediction benchmark",
                "",
                _provenance.header(command),
                *format_prediction(prediction),
            ]
        )
        print(report)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"sparse_training_prediction{suffix}.md").write_text(report + "\n")
        return 0
    skip = set(filter(None, args.skip_slow_on.split(",")))
    suffix = "_quick" if args.quick else ""
    rows = []
    for name in sizes:
        for path in PATHS:
            if path in ("mlpclassifier_fit", "skorch_fit") and name in skip:
                continue
            print(f"{name:9s} {path:18s}", end=" ", flush=True)
            row = run_child([*quick, "--child", path, name])
            row["size"] = name
            rows.append(row)
            print(
                f"{row['seconds']:8.2f} s for {row['epochs']} epoch(s)  "
                f"peak {row['peak_rss_mb']:7.0f} MB",
                flush=True,
            )
        fits = {r["path"]: r["seconds"] for r in rows if r["size"] == name}
        for other in ("mlpclassifier_fit", "skorch_fit"):
            if other in fits:
                print(
                    f"{name}: {other} / skprune_fit = "
                    f"{fits[other] / fits['skprune_fit']:.1f}x",
                    flush=True,
                )
    print("prediction on 'main'...", flush=True)
    prediction = run_child([*quick, "--child-predict", "main"])
    report = format_report(rows, prediction, sizes, command)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"sparse_training{suffix}.md").write_text(report)
    fits = {}
    for r in rows:
        fits.setdefault(r["size"], {})[r["path"]] = r["seconds"]
    (RESULTS / f"sparse_training{suffix}.json").write_text(
        json.dumps(
            {
                "provenance": _provenance.record(command),
                "fit_epochs": FIT_EPOCHS,
                "sizes": {k: list(v) for k, v in sizes.items()},
                "fits": fits,
                "rows": rows,
                "prediction": prediction,
            },
            indent=2,
        )
    )
    return 0


def format_report(rows, prediction, sizes, command: str) -> str:
    by = {(r["size"], r["path"]): r for r in rows}
    lines = [
        "# Sparse training benchmark",
        "",
        _provenance.header(command),
        f"Whole fits of {FIT_EPOCHS} epochs each (skprune: 3 dense + 2 retraining "
        f"at prune_ratio=0.9), one hidden layer of {HIDDEN} units, batch {BATCH}, "
        "Adam family; and one epoch of skprune inside skorch's loop, unmasked "
        "and with 90% of the weights masked. Peak memory is the measuring "
        "process's max RSS (Python, torch and the data included).",
        "",
        "| data | nnz | path | epochs | seconds | vs skprune_fit | peak RSS MB "
        "| CSR data MB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (n, d, density) in sizes.items():
        base = by[(name, "skprune_fit")]["seconds"]
        for path in PATHS:
            row = by.get((name, path))
            if row is None:
                continue
            versus = f"{row['seconds'] / base:.1f}x" if path in FITS else ""
            lines.append(
                f"| {n:,} x {d:,} @ {density:.2%} | {row['nnz']:,} | {path} | "
                f"{row['epochs']} | {row['seconds']:.2f} | {versus} | "
                f"{row['peak_rss_mb']:.0f} | {row['data_mb']:.0f} |"
            )
    lines += ["", f"Whole {FIT_EPOCHS}-epoch fits against skprune's:", ""]
    for name in sizes:
        base = by[(name, "skprune_fit")]["seconds"]
        for other in ("mlpclassifier_fit", "skorch_fit"):
            if (name, other) in by:
                lines.append(
                    f"- {name}: {other} / skprune_fit = "
                    f"{by[(name, other)]['seconds'] / base:.1f}x"
                )
    main = {p: by[("main", p)]["seconds"] for p in EPOCHS if ("main", p) in by}
    lines.append(
        f"- mask enforcement at 90% sparsity (main): masked epoch / dense epoch = "
        f"{main['skprune_masked'] / main['skprune']:.2f}"
    )
    lines += format_prediction(prediction)
    return "\n".join(lines) + "\n"


def format_prediction(p: dict) -> list[str]:
    lines = [
        "",
        f"`predict_proba` on {p['n_test']:,} test rows of the main matrix, best of "
        "5 taken in turns, against the same pruned model uncompressed (skorch). "
        "`compressed` uses the layouts `compress()` chose; the other rows force the "
        "first layer into the other layout; `compressed int8` is "
        "`compress(dtype='int8')` in its own chosen layouts. Size: every array the "
        "compressed model holds once it has predicted (`nbytes`) "
        f"against the dense model's {p['dense_weights_mb']:.0f} MB of float32 "
        "weights.",
        "",
        "| granularity | ratio | layouts chosen | contestant | predict s | speed-up "
        "| smaller | agreement |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for case in p["cases"]:
        base = case["seconds"]["uncompressed"]
        for name, seconds in case["seconds"].items():
            held = {"compressed": "compressed_weights_mb",
                    "compressed int8": "int8_weights_mb"}.get(name)  # fmt: skip
            smaller = (
                f"{p['dense_weights_mb'] / case[held]:.1f}x"
                if held and held in case
                else ""
            )
            lines.append(
                f"| {case['granularity']} | {case['prune_ratio']} | "
                f"{', '.join(case['layouts'])} | {name} | {seconds:.3f} | "
                f"{base / seconds:.2f}x | {smaller} | "
                f"{case['agreement']:.2%} |"
            )
    return lines


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
