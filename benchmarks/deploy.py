"""What a deployed text classifier costs: skprune against the usual choices.

Run from the repository root (the text data: see ``benchmarks/requirements.txt``)::

    python benchmarks/deploy.py                 # the default grid (~10-15 min, 2 cores)
    python benchmarks/deploy.py --quick --allow-dirty   # a smoke run (~1-2 min)

On Reuters R8 and 20 Newsgroups (official splits, ``_datasets.py``; TF-IDF
fitted on train), one table per dataset with a row per model:

- ``LogisticRegression(C=10)``, ``SGDClassifier()``,
  ``MLPClassifier((256,), max_iter=10)`` on the TF-IDF features;
- fastText when it imports (``fasttext-wheel``, the ``benchmarks`` extra),
  from raw text: bigrams, 25 epochs, its other defaults (so 2,000,000 hash
  buckets of 100 floats: an 800 MB float model), float and quantized
  (``quantize`` with retraining, ``qnorm``, the 100,000 most useful words and
  bigrams);
- skprune: ``PrunedClassifier(prune_ratio=r, granularity=g)`` (its default
  net and training budget) compressed, for each dtype ``compress`` takes, and
  uncompressed (torch) at the first ratio of each granularity. The default
  grid, chosen to fit the budget (fits of the default net take about 8 s on
  R8 and 17 s on 20 Newsgroups, from ``accuracy_vs_sparsity.md``): on R8 every
  granularity at 0.9, 0.95 and 0.98; on 20 Newsgroups every granularity at 0.95
  and weight pruning at 0.9 and 0.98 as well. ``--granularities`` and
  ``--dtypes`` default to what the installed skprune declares
  (``_serving.model_specs``).

Columns, measured the same way for every model, everything on one thread
(torch, BLAS through threadpoolctl, skprune's compiled kernels, which follow
torch's count, and fastText's ``thread=1``):

- accuracy on the test set;
- resident bytes: the distinct array buffers reachable from the model after it
  has predicted the test set (``_serving.resident_bytes``: caches made at the
  first prediction included, an uncompressed estimator's optimizer state
  too); fastText's model lives in C++, where nothing can be walked: its row
  gives the size of its file, which holds the same matrices (marked ``file``);
- bytes on disk: ``skprune.save`` for skprune's models, ``joblib.dump`` for
  scikit-learn's, ``save_model`` for fastText;
- whole-fit time (one fit; fastText's quantized row adds the quantization);
- batch: the whole test set in one ``predict`` call, median and range over
  ``--repeats`` calls after an untimed one;
- one row: median and quartiles over ``--rows`` test rows, each its own
  ``predict`` call on a 1-row CSR matrix, so every scikit-learn-style model
  validates its input alike; fastText takes the row's raw text (it tokenizes,
  and validates nothing), through ``model.f.predict``, the call its
  ``predict`` wraps (that wrapper fails under numpy 2).

Writes ``benchmarks/results/deploy[_quick].{json,md}`` with provenance. Do not
quote a ``--quick`` or ``--allow-dirty`` run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import _provenance
import _serving
import joblib
import numpy as np
import torch
from _datasets import load_dataset
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

import skprune
from skprune import PrunedClassifier, default_classifier_net

try:
    import fasttext
except ImportError:
    fasttext = None

DATASETS = ("reuters_r8", "20newsgroups")
# (granularity or None for all, ratios) per dataset: the default grid.
GRID = {
    "reuters_r8": [(None, (0.9, 0.95, 0.98))],
    "20newsgroups": [(None, (0.95,)), ("weight", (0.9, 0.98))],
}
QUICK_ROWS = (800, 300)  # train, test rows of a --quick run


@dataclass(frozen=True)
class Budget:
    """How much each model is timed, and how long a quick run trains."""

    repeats: int = 5
    rows: int = 500
    quick: bool = False


def baselines(quick: bool) -> dict:
    """The scikit-learn models of the table, unfitted."""
    return {
        "LogisticRegression(C=10)": LogisticRegression(C=10, max_iter=1000),
        "SGDClassifier()": SGDClassifier(random_state=0),
        "MLPClassifier((256,), max_iter=10)": MLPClassifier(
            hidden_layer_sizes=(256,), max_iter=2 if quick else 10, random_state=0
        ),
    }


def timed_fit(model, X, y):
    """``model.fit(X, y)`` and its seconds; a ConvergenceWarning is recorded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, seconds, converged


def disk_bytes(save) -> int:
    """Size of the file ``save(path)`` writes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "model")
        save(path)
        return path.stat().st_size


def measure(name, predict, batch, rows, y_test, budget, *, extra) -> dict:
    """The columns of one row; ``predict`` labels ``batch`` or one of ``rows``."""
    accuracy = float(np.mean(np.asarray(predict(batch)) == y_test))
    times = _serving.batch_seconds(predict, batch, budget.repeats)
    result = {
        "model": name,
        "accuracy": accuracy,
        "batch_ms": _serving.spread(times),
        "row_us": _serving.quartiles(_serving.row_seconds(predict, rows)),
        **extra,
    }
    print(f"# {name}: accuracy {accuracy:.4f}", flush=True)
    return result


def sklearn_rows(data, budget: Budget) -> list[dict]:
    X_train, y_train, X_test, y_test = data
    rows = [X_test[i : i + 1] for i in range(min(budget.rows, X_test.shape[0]))]
    results = []
    for name, model in baselines(budget.quick).items():
        model, fit_s, converged = timed_fit(model, X_train, y_train)
        results.append(
            measure(
                name,
                model.predict,
                X_test,
                rows,
                y_test,
                budget,
                extra={
                    "fit_s": fit_s,
                    "converged": converged,
                    "resident_bytes": after_predicting(model, X_test),
                    "disk_bytes": disk_bytes(lambda p, m=model: joblib.dump(m, p)),
                },
            )
        )
    return results


def after_predicting(model, X) -> int:
    """Resident bytes once ``model`` has predicted ``X`` (its caches made)."""
    model.predict(X)
    return _serving.resident_bytes(model)


def skprune_rows(data, grid, dtypes, budget: Budget) -> list[dict]:
    X_train, y_train, X_test, y_test = data
    rows = [X_test[i : i + 1] for i in range(min(budget.rows, X_test.shape[0]))]
    results = []
    for granularity, ratios in grid:
        for index, ratio in enumerate(ratios):
            estimator = None
            if budget.quick:
                estimator = default_classifier_net().set_params(max_epochs=2, verbose=0)
            clf = PrunedClassifier(
                estimator,
                prune_ratio=ratio,
                granularity=granularity,
                retrain_epochs=1 if budget.quick else None,
                random_state=0,
            )
            clf, fit_s, _ = timed_fit(clf, X_train, y_train)
            label = f"PrunedClassifier({granularity!r}, {ratio})"
            models = [(label, clf, 0.0)] if index == 0 else []
            for dtype in dtypes:
                start = time.perf_counter()
                small = _serving.compressed(clf, dtype)
                compress_s = time.perf_counter() - start
                suffix = "" if dtype == "float32" else f"dtype={dtype!r}"
                models.append((f"{label}.compress({suffix})", small, compress_s))
            for name, model, compress_s in models:
                results.append(
                    measure(
                        name,
                        model.predict,
                        X_test,
                        rows,
                        y_test,
                        budget,
                        extra={
                            # CompactMLP.nbytes, for reference beside the walk
                            "nbytes": (
                                model.network.nbytes
                                if hasattr(model, "network")
                                else None
                            ),
                            "fit_s": fit_s + compress_s,
                            "resident_bytes": after_predicting(model, X_test),
                            "disk_bytes": skprune_disk_bytes(model),
                        },
                    )
                )
    return results


def skprune_disk_bytes(model):
    """``skprune.save``'s file size, or the reason it cannot save ``model``."""
    try:
        return disk_bytes(lambda p: skprune.save(model, p))
    except (TypeError, ValueError) as error:  # recorded, not hidden
        return f"not saved: {error}"


def fasttext_rows(texts, budget: Budget) -> list[dict]:
    """fastText from raw text, float and quantized (nothing if not importable)."""
    if fasttext is None:
        return []
    train, y_train, test, y_test = texts
    clean = [t.replace("\n", " ") for t in test]
    labels = {f"__label__{_token(c)}": c for c in np.unique(y_train)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "train.txt")
        path.write_text(
            "".join(
                f"__label__{_token(c)} {t.replace(chr(10), ' ')}\n"
                for t, c in zip(train, y_train, strict=True)
            )
        )
        epochs = 2 if budget.quick else 25
        name = f"fastText(bigrams, {epochs} epochs)"
        results = []
        for quantized in (False, True):
            start = time.perf_counter()
            model = fasttext.train_supervised(
                input=str(path), wordNgrams=2, epoch=epochs, thread=1, verbose=0
            )
            if quantized:  # retrained on the same file, as fastText's docs do
                model.quantize(
                    input=str(path),
                    retrain=not budget.quick,  # retraining takes a minute
                    qnorm=True,
                    cutoff=100_000,
                    thread=1,
                )
            fit_s = time.perf_counter() - start
            size = disk_bytes(lambda p, m=model: m.save_model(str(p)))

            def predict(batch, m=model):
                # model.predict's own wrapper fails under numpy 2.
                predicted = m.f.multilinePredict(batch, 1, 0.0, "strict")[0]
                return [labels[top[0]] for top in predicted]

            results.append(
                measure(
                    f"{name}, quantized" if quantized else name,
                    predict,
                    clean,
                    [[text] for text in clean[: budget.rows]],
                    y_test,
                    budget,
                    extra={
                        "fit_s": fit_s,
                        "resident_bytes": size,
                        "resident_is_file_size": True,
                        "disk_bytes": size,
                    },
                )
            )
    return results


def _token(label: str) -> str:
    return "_".join(str(label).split())


def report(tables: dict, command: str) -> str:
    header = [
        "model",
        "accuracy",
        "resident",
        "on disk",
        "fit s",
        "batch ms",
        "one row us",
    ]
    lines = ["# Deployment: accuracy, size and speed", "", _provenance.header(command)]
    for dataset, (shape, rows) in tables.items():
        n_train, n_test, n_features = shape
        lines += [
            f"## {dataset}",
            "",
            f"{n_train:,} train / {n_test:,} test documents, {n_features:,} TF-IDF "
            "features. Resident: arrays reachable after predicting (fastText: its "
            "file). Batch: median (range) of repeats; one row: median "
            "(quartiles).",
            "",
            _serving.markdown_table(header, [_cells(r) for r in rows]),
            "",
            against_logistic_regression(rows),
            "",
        ]
    return "\n".join(lines)


def against_logistic_regression(rows: list[dict]) -> str:
    """Issue 15's bar: the smallest compressed model at least as accurate as
    LogisticRegression(C=10), its resident bytes and batch time against it."""
    (reference,) = [r for r in rows if r["model"] == "LogisticRegression(C=10)"]
    candidates = [
        r
        for r in rows
        if ".compress(" in r["model"] and r["accuracy"] >= reference["accuracy"]
    ]
    if not candidates:
        return (
            "No compressed model is as accurate as LogisticRegression(C=10) "
            f"({reference['accuracy']:.4f})."
        )
    best = min(candidates, key=lambda r: r["resident_bytes"])
    size = best["resident_bytes"] / reference["resident_bytes"]
    speed = best["batch_ms"]["median"] / reference["batch_ms"]["median"]
    return (
        f"Smallest compressed model at least as accurate as "
        f"LogisticRegression(C=10) ({reference['accuracy']:.4f}): {best['model']} "
        f"({best['accuracy']:.4f}), {size:.2f}x its resident bytes (bar: at most "
        f"1x) and {speed:.2f}x its batch time (bar: at most 2x)."
    )


def _cells(r: dict) -> list[str]:
    def mb(n):
        return n if isinstance(n, str) else f"{n / 1e6:.2f} MB"

    resident = mb(r["resident_bytes"]) + (
        " (file)" if r.get("resident_is_file_size") else ""
    )
    batch, row = r["batch_ms"], r["row_us"]
    fit = f"{r['fit_s']:.1f}" + ("" if r.get("converged", True) else " (not converged)")
    return [
        r["model"],
        f"{r['accuracy']:.4f}",
        resident,
        mb(r["disk_bytes"]),
        fit,
        f"{batch['median']:.1f} ({batch['min']:.1f}-{batch['max']:.1f})",
        f"{row['median']:.0f} ({row['q1']:.0f}-{row['q3']:.0f})",
    ]


def expand(grid, granularities):
    """The grid with None replaced by every granularity asked for."""
    out = []
    for granularity, ratios in grid:
        names = granularities if granularity is None else [granularity]
        out += [(g, ratios) for g in names if g in granularities]
    return out


def main(argv=None) -> None:
    granularities, dtypes = _serving.model_specs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=DATASETS)
    parser.add_argument("--granularities", nargs="+", default=granularities)
    parser.add_argument("--dtypes", nargs="+", default=dtypes)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="a smoke run on a subset")
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    _provenance.check_tree(args.allow_dirty)
    budget = Budget(args.repeats, args.rows, args.quick)
    if args.quick:
        budget = Budget(min(args.repeats, 2), min(args.rows, 50), quick=True)
    torch.set_num_threads(1)  # skprune's compiled kernels follow torch's count
    tables = {}
    with threadpool_limits(limits=1):
        for dataset in args.datasets:
            data = load_dataset(dataset)
            texts = load_dataset(dataset, vectorize=False)
            if args.quick:
                n, m = QUICK_ROWS
                data = (data[0][:n], data[1][:n], data[2][:m], data[3][:m])
                texts = (texts[0][:n], texts[1][:n], texts[2][:m], texts[3][:m])
            grid = expand(GRID[dataset], args.granularities)
            if args.quick:
                grid = [(g, ratios[:1]) for g, ratios in grid[:2]]
            rows = sklearn_rows(data, budget)
            rows += fasttext_rows(texts, budget)
            rows += skprune_rows(data, grid, args.dtypes, budget)
            shape = (data[0].shape[0], data[2].shape[0], data[0].shape[1])
            tables[dataset] = (shape, rows)
    command = _provenance.command_line("deploy.py", argv)
    suffix = "_quick" if args.quick else ""
    _provenance.RESULTS.mkdir(exist_ok=True)
    record = {
        "provenance": _provenance.record(command),
        "tables": {d: {"shape": s, "rows": r} for d, (s, r) in tables.items()},
    }
    (_provenance.RESULTS / f"deploy{suffix}.json").write_text(
        json.dumps(record, indent=1) + "\n"
    )
    text = report(tables, command)
    (_provenance.RESULTS / f"deploy{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
