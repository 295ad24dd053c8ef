"""ONNX export against the compressed model: graph bytes, speed, int8 accuracy.

Run from the repository root (the text data: see ``benchmarks/requirements.txt``)::

    python benchmarks/onnx_export.py                       # Reuters R8, at 0.9
    python benchmarks/onnx_export.py --dataset 20newsgroups
    python benchmarks/onnx_export.py --quick --allow-dirty # a smoke run (~1 min)

For each granularity the installed skprune declares (``_serving.model_specs``),
one ``PrunedClassifier(prune_ratio=0.9)`` (its default net) is fitted on the
TF-IDF features, compressed and exported with :func:`skprune.onnx.to_onnx`; the
graph is then quantized with ``onnxruntime.quantization.quantize_dynamic``
(int8 weights, per tensor). Measured, each on one thread (torch, BLAS and
onnxruntime's intra- and inter-op pools):

- graph bytes (the serialized ``ModelProto``), float and int8, against the
  compressed model's ``network.nbytes`` and its resident bytes after predicting;
- batch prediction of the test set: the compressed model on the CSR matrix;
  onnxruntime on the same rows densified in chunks of 512 (densifying
  included: onnxruntime takes no sparse input); median and range of repeats;
- single-row latency: median and quartiles over 500 test rows, each row its
  own call (a 1-row CSR slice for the compressed model, a 1-row dense float32
  array for onnxruntime; the compressed model validates its input, onnxruntime
  checks only shape and type);
- accuracy of the compressed model, the float graph and the int8 graph (the
  bar: int8 within 0.3 point of the float graph), and the compressed model's
  own int8 when ``compress`` takes ``dtype`` (or ``--compressed-int8``), and
  the largest difference of probabilities between the float graph and the
  compressed model.

Writes ``benchmarks/results/onnx_export[_quick].{json,md}`` with provenance.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import _provenance
import _serving
import numpy as np
import onnxruntime as ort
import scipy.sparse as sp
import torch
from _datasets import load_dataset
from onnxruntime.quantization import QuantType, quantize_dynamic
from threadpoolctl import threadpool_limits

from skprune import PrunedClassifier, default_classifier_net
from skprune.onnx import to_onnx

CHUNK = 512
QUICK_ROWS = (1000, 400)  # train, test rows of a --quick run


def session(graph_bytes: bytes) -> ort.InferenceSession:
    """An onnxruntime session on one thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        graph_bytes, options, providers=["CPUExecutionProvider"]
    )


def onnx_proba(sess: ort.InferenceSession, X) -> np.ndarray:
    """Probabilities of CSR ``X``, densified ``CHUNK`` rows at a time."""
    parts = []
    for start in range(0, X.shape[0], CHUNK):
        dense = X[start : start + CHUNK].toarray().astype(np.float32, copy=False)
        parts.append(sess.run(["probabilities"], {"X": dense})[0])
    return np.concatenate(parts)


def quantized(graph_bytes: bytes) -> bytes:
    """The graph with int8 weights (``quantize_dynamic``, QInt8)."""
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp, "float.onnx"), Path(tmp, "int8.onnx")
        source.write_bytes(graph_bytes)
        # It logs advice on pre-processing for every graph: not this graph's case.
        logging.getLogger().setLevel(logging.ERROR)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


def fit(granularity: str, ratio: float, X, y, quick: bool) -> tuple:
    """A fitted PrunedClassifier (default net; 2 + 1 epochs when quick), seconds."""
    estimator = None
    if quick:
        estimator = default_classifier_net().set_params(max_epochs=2, verbose=0)
    clf = PrunedClassifier(
        estimator,
        prune_ratio=ratio,
        granularity=granularity,
        retrain_epochs=1 if quick else None,
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(X, y)
    return clf, time.perf_counter() - start


def measure(granularity, ratio, data, args, dtypes) -> dict:
    """Every figure of one granularity (see the module's docstring)."""
    X_train, y_train, X_test, y_test = data
    clf, fit_s = fit(granularity, ratio, X_train, y_train, args.quick)
    small = clf.compress()
    classes = small.classes_
    graph = to_onnx(small, X_test[:1], options={"zipmap": False}).SerializeToString()
    graph_int8 = quantized(graph)
    float_session, int8_session = session(graph), session(graph_int8)
    proba_small = small.predict_proba(X_test)
    proba_float = onnx_proba(float_session, X_test)
    proba_int8 = onnx_proba(int8_session, X_test)

    def accuracy(proba):
        return float(np.mean(classes[np.argmax(proba, axis=1)] == y_test))

    rows = X_test[: args.rows]
    dense_rows = [r.toarray().astype(np.float32) for r in rows]
    csr_rows = [rows[i] for i in range(rows.shape[0])]
    result = {
        "granularity": granularity,
        "prune_ratio": ratio,
        "fit_s": fit_s,
        "network": repr(small.network),
        "compressed_nbytes": int(small.network.nbytes),
        "compressed_resident_bytes": _serving.resident_bytes(small),
        "graph_bytes": len(graph),
        "graph_int8_bytes": len(graph_int8),
        "accuracy": {
            "compressed": accuracy(proba_small),
            "onnx_float": accuracy(proba_float),
            "onnx_int8": accuracy(proba_int8),
        },
        "max_abs_proba_difference_float_graph": float(
            np.abs(proba_float - proba_small).max()
        ),
        "batch_ms": {
            "compressed": _serving.spread(
                _serving.batch_seconds(small.predict_proba, X_test, args.repeats)
            ),
            "onnx_float": _serving.spread(
                _serving.batch_seconds(
                    lambda X: onnx_proba(float_session, X), X_test, args.repeats
                )
            ),
            "onnx_int8": _serving.spread(
                _serving.batch_seconds(
                    lambda X: onnx_proba(int8_session, X), X_test, args.repeats
                )
            ),
        },
        "row_us": {
            "compressed": _serving.quartiles(
                _serving.row_seconds(small.predict_proba, csr_rows)
            ),
            "onnx_float": _serving.quartiles(
                _serving.row_seconds(
                    lambda r: float_session.run(["probabilities"], {"X": r}),
                    dense_rows,
                )
            ),
            "onnx_int8": _serving.quartiles(
                _serving.row_seconds(
                    lambda r: int8_session.run(["probabilities"], {"X": r}),
                    dense_rows,
                )
            ),
        },
    }
    if "int8" in dtypes:
        small_int8 = _serving.compressed(clf, "int8")
        result["accuracy"]["compressed_int8"] = float(
            np.mean(small_int8.predict(X_test) == y_test)
        )
        result["compressed_int8_resident_bytes"] = _serving.resident_bytes(small_int8)
    return result


def report(results: list[dict], command: str, dataset: str, shape) -> str:
    """The markdown results file."""
    has_int8 = any("compressed_int8" in r["accuracy"] for r in results)
    header = [
        "granularity",
        "compressed nbytes",
        "resident",
        "graph",
        "graph int8",
        "acc compressed",
        "acc graph",
        "acc graph int8",
        *(["acc compressed int8"] if has_int8 else []),
        "int8 - float points",
        "max diff p",
        "batch ms compressed",
        "batch ms graph",
        "batch ms int8",
        "row us compressed",
        "row us graph",
        "row us int8",
    ]

    def mb(n):
        return f"{n / 1e6:.2f} MB"

    def batch(r, key):
        t = r["batch_ms"][key]
        return f"{t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f})"

    def row(r, key):
        t = r["row_us"][key]
        return f"{t['median']:.0f} ({t['q1']:.0f}-{t['q3']:.0f})"

    rows = []
    for r in results:
        acc = r["accuracy"]
        rows.append(
            [
                f"{r['granularity']} {r['prune_ratio']}",
                mb(r["compressed_nbytes"]),
                mb(r["compressed_resident_bytes"]),
                mb(r["graph_bytes"]),
                mb(r["graph_int8_bytes"]),
                f"{acc['compressed']:.4f}",
                f"{acc['onnx_float']:.4f}",
                f"{acc['onnx_int8']:.4f}",
                *(
                    [f"{acc.get('compressed_int8', float('nan')):.4f}"]
                    if has_int8
                    else []
                ),
                f"{100 * (acc['onnx_int8'] - acc['onnx_float']):+.2f}",
                f"{r['max_abs_proba_difference_float_graph']:.1e}",
                batch(r, "compressed"),
                batch(r, "onnx_float"),
                batch(r, "onnx_int8"),
                row(r, "compressed"),
                row(r, "onnx_float"),
                row(r, "onnx_int8"),
            ]
        )
    n_train, n_test, n_features = shape
    return "\n".join(
        [
            "# ONNX export against the compressed model",
            "",
            _provenance.header(command),
            f"{dataset}: {n_train:,} train / {n_test:,} test rows, {n_features:,} "
            "TF-IDF features. Batch: the whole test set, median (range) of repeats; "
            "onnxruntime densifies it 512 rows at a time (included). Row: median "
            "(quartiles) over single-row calls. Everything on one thread. "
            "`int8 - float points`: the int8 graph's accuracy minus the float "
            "graph's, in points (bar: within 0.3). `max diff p`: largest "
            "difference of a probability between the float graph and the "
            "compressed model.",
            "",
            _serving.markdown_table(header, rows),
            "",
        ]
    )


def main(argv=None) -> None:
    granularities, dtypes = _serving.model_specs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", choices=["reuters_r8", "20newsgroups"], default="reuters_r8"
    )
    parser.add_argument("--granularities", nargs="+", default=granularities)
    parser.add_argument("--prune-ratio", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=500, help="single-row calls")
    parser.add_argument(
        "--compressed-int8",
        action=argparse.BooleanOptionalAction,
        default="int8" in dtypes,
        help="also compare with compress(dtype='int8') (default: if compress "
        "takes dtype)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run on a subset")
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    _provenance.check_tree(args.allow_dirty)
    if args.quick:
        args.repeats, args.rows = min(args.repeats, 2), min(args.rows, 50)
    torch.set_num_threads(1)
    X_train, y_train, X_test, y_test = load_dataset(args.dataset)
    if args.quick:
        X_train, y_train = X_train[: QUICK_ROWS[0]], y_train[: QUICK_ROWS[0]]
        X_test, y_test = X_test[: QUICK_ROWS[1]], y_test[: QUICK_ROWS[1]]
    data = (sp.csr_matrix(X_train), y_train, sp.csr_matrix(X_test), y_test)
    compare = ["float32", "int8"] if args.compressed_int8 else ["float32"]
    results = []
    with threadpool_limits(limits=1):
        for granularity in args.granularities:
            results.append(measure(granularity, args.prune_ratio, data, args, compare))
            print(json.dumps(results[-1]["accuracy"]), granularity, flush=True)
    command = _provenance.command_line("onnx_export.py", argv)
    suffix = "_quick" if args.quick else ""
    _provenance.RESULTS.mkdir(exist_ok=True)
    record = {
        "provenance": _provenance.record(command),
        "dataset": args.dataset,
        "results": results,
    }
    (_provenance.RESULTS / f"onnx_export{suffix}.json").write_text(
        json.dumps(record, indent=1) + "\n"
    )
    shape = (X_train.shape[0], X_test.shape[0], X_train.shape[1])
    text = report(results, command, args.dataset, shape)
    (_provenance.RESULTS / f"onnx_export{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
