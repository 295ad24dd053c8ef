"""Hashing-scale input: a fit on 2^20 features, its fixed costs and its peak memory.

Run from the repository root::

    python benchmarks/hashing_scale.py             # the full run (a few minutes)
    python benchmarks/hashing_scale.py --quick     # a smoke run (seconds)
    python benchmarks/hashing_scale.py --profile   # also cProfile each fit

5,000 rows x 2^20 columns (``HashingVectorizer``'s default width), 40 stored
values a row, the default net (256 hidden units: a 268M-weight first layer) with
``max_epochs=2``: 2 dense epochs, pruning, 1 retraining epoch. Each prune ratio
runs in a fresh subprocess, so that its peak memory (max RSS) is its own.

Reported per ratio, as ratios because the machine is shared and noisy:

- time outside the epochs (the whole ``fit`` minus skorch's per-epoch ``dur``)
  in epochs' worth (divided by the mean epoch time); target: under 2;
- peak RSS of the process over the first layer's weight bytes; target: at most 4
  (the weights and Adam's two moments are 3);
- ``compress()`` time in epochs' worth; target: under 2;
- peak RSS once ``compress()`` has run, over the first layer's weight bytes;
  target: under 4;
- ``compress()`` time (float32, then ``dtype="int8"``) over the time of one
  copy of the first layer's weights (``weight.clone()``, timed in the same
  process after the compressions); target: under 5. Each is the median of
  ``REPEATS`` runs; the peak after int8 is cumulative (it includes float's).

Writes ``benchmarks/results/hashing_scale.md`` (and ``.json``) with
``_provenance``'s record (commit, machine, load); a tree with uncommitted
changes is refused unless ``--allow-dirty``, and then the results are marked.
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

RESULTS = _provenance.RESULTS
REPO = _provenance.ROOT
FULL = {"n_samples": 5_000, "n_features": 2**20, "per_row": 40, "hidden": 256}
QUICK = {"n_samples": 500, "n_features": 2**16, "per_row": 40, "hidden": 64}
RATIOS = (0.0, 0.9)
REPEATS = 3
N_CLASSES = 4


def make_data(n_samples, n_features, per_row, seed=0):
    """Hashed-text-like CSR float32: ``per_row`` uniform columns a row, 4 classes."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, n_features, size=n_samples * per_row)
    values = rng.random(n_samples * per_row, dtype=np.float32)
    indptr = np.arange(0, n_samples * per_row + 1, per_row)
    X = sp.csr_matrix((values, cols, indptr), shape=(n_samples, n_features))
    X.sum_duplicates()
    # Labels from a sparse random projection: learnable, and cheap to make.
    direction = rng.standard_normal((n_features, N_CLASSES)).astype(np.float32)
    y = np.asarray(np.argmax(X @ direction, axis=1)).ravel()
    return X, y


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(ratio: float, config: dict, profile: str | None) -> dict:
    """One fit and one ``compress()`` at ``ratio``, in this (fresh) process."""
    import torch

    from skprune import PrunedClassifier

    try:
        from skprune import default_classifier_net
    except ImportError:  # before it was made public
        from skprune._classifier import default_classifier_net

    X, y = make_data(config["n_samples"], config["n_features"], config["per_row"])
    net = default_classifier_net().set_params(
        max_epochs=2, module__hidden_layer_sizes=(config["hidden"],)
    )
    # Python imports and torch's first-call setup happen once per process, not
    # once per fit: a tiny fit pays them before the measured one.
    small = make_data(64, 256, 8)
    PrunedClassifier(net, prune_ratio=ratio, random_state=0).fit(*small)
    clf = PrunedClassifier(net, prune_ratio=ratio, random_state=0)
    rss_before = peak_rss_bytes()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    clf.fit(X, y)
    fit_s = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    peak_fit = peak_rss_bytes()
    compress_s = _median_seconds(clf.compress)
    peak_compress = peak_rss_bytes()
    int8_s = _median_seconds(lambda: clf.compress(dtype="int8"))
    peak_int8 = peak_rss_bytes()
    # Last: a copy of the weight while the fit's state lives would raise the peak.
    copy_s = _median_seconds(clf.estimator_.module_.layers[0].weight.detach().clone)
    epochs = [float(d) for d in clf.estimator_.history[:, "dur"]]
    weight_bytes = config["n_features"] * config["hidden"] * 4
    return {
        "ratio": ratio,
        "sparsity": float(clf.sparsity_),
        "fit_s": fit_s,
        "epochs_s": epochs,
        # The median: one epoch slowed by a neighbour's job must not shrink
        # the ratios measured against it.
        "epoch_s": float(np.median(epochs)),
        "outside_s": fit_s - sum(epochs),
        "compress_s": compress_s,
        "compress_int8_s": int8_s,
        "copy_s": copy_s,
        "peak_rss_compress": peak_compress,
        "peak_rss_int8": peak_int8,
        "weight_bytes": weight_bytes,
        "rss_before_fit": rss_before,
        "peak_rss_fit": peak_fit,
        "peak_rss": peak_int8,  # before the reference copy raised it
        "torch_threads": torch.get_num_threads(),
    }


def _median_seconds(function) -> float:
    """Median wall time of ``REPEATS`` calls; each result is dropped at once."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def top_of_profile(path: str, n: int = 15) -> str:
    import io
    import pstats

    out = io.StringIO()
    pstats.Stats(path, stream=out).sort_stats("tottime").print_stats(n)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start : start + n + 1])


def run_child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_report(rows, config, header: str, profiles) -> str:
    gb = 2**30
    weights = rows[0]["weight_bytes"]
    lines = [
        "# Hashing-scale benchmark (2^20 features)"
        if config is FULL
        else "# Hashing-scale benchmark (quick smoke run, 2^16 features)",
        "",
        header,
        f"The measuring subprocesses ran {rows[0]['torch_threads']} torch threads.",
        "",
        f"{config['n_samples']:,} rows x {config['n_features']:,} columns, "
        f"{config['per_row']} stored values a row; default net with "
        f"{config['hidden']} hidden units, `max_epochs=2` (2 + 1 epochs); first "
        f"layer {weights / gb:.2f} GiB of float32 weights. Peak is the fitting "
        "process's max RSS (Python, torch and the data included). A tiny fit first "
        "pays the process's one-time imports; an epoch is the median of the three.",
        "",
        "| prune_ratio | sparsity | fit s | median epoch s | outside epochs s | "
        "outside / epoch | peak RSS GiB | peak / weights | compress s | "
        "compress / epoch |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['ratio']} | {r['sparsity']:.3f} | {r['fit_s']:.1f} | "
            f"{r['epoch_s']:.2f} | {r['outside_s']:.1f} | "
            f"{r['outside_s'] / r['epoch_s']:.2f} | {r['peak_rss_fit'] / gb:.2f} | "
            f"{r['peak_rss_fit'] / weights:.2f} | {r['compress_s']:.2f} | "
            f"{r['compress_s'] / r['epoch_s']:.2f} |"
        )
    lines += [
        "",
        "Targets: outside / epoch < 2, peak / weights <= 4, compress / epoch < 2.",
        "",
        f"`compress()` against one copy of the first layer (`weight.clone()`), "
        f"medians of {REPEATS} runs each, in the same process; peaks are max RSS "
        "after the float32 compressions, then after the int8 ones (cumulative).",
        "",
        "| prune_ratio | peak after compress / weights | peak after int8 / weights "
        "| one copy s | compress s | compress / copy | int8 compress s | "
        "int8 / copy |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['ratio']} | {r['peak_rss_compress'] / weights:.2f} | "
            f"{r['peak_rss_int8'] / weights:.2f} | {r['copy_s']:.2f} | "
            f"{r['compress_s']:.2f} | {r['compress_s'] / r['copy_s']:.1f} | "
            f"{r['compress_int8_s']:.2f} | {r['compress_int8_s'] / r['copy_s']:.1f} |"
        )
    lines += [
        "",
        "Targets: peak after compress / weights < 4, compress / copy < 5.",
    ]
    for ratio, text in profiles.items():
        lines += [
            "",
            f"Profile of the fit at prune_ratio={ratio} (cProfile, by own time):",
            "",
            "```",
            text,
            "```",
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--profile", action="store_true", help="cProfile each fit")
    parser.add_argument(
        "--ratios", default=",".join(map(str, RATIOS)), help="comma-separated"
    )
    _provenance.add_arguments(parser)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.child is not None:
        # Measure the checkout this script lives in, not an installed skprune.
        sys.path.insert(0, str(REPO))
        print(json.dumps(measure(args.child, config, args.child_profile)))
        return 0

    _provenance.check_tree(args.allow_dirty)
    command = _provenance.command_line("hashing_scale.py", argv)
    suffix = "_quick" if args.quick else ""
    rows, profiles = [], {}
    for ratio in (float(r) for r in args.ratios.split(",")):
        child = ["--quick"] if args.quick else []
        child += ["--child", str(ratio)]
        profile = None
        if args.profile:
            profile = str(RESULTS / f"hashing_scale{suffix}_{ratio}.prof")
            child += ["--child-profile", profile]
        print(f"prune_ratio={ratio} ...", end=" ", flush=True)
        row = run_child(child)
        rows.append(row)
        print(
            f"fit {row['fit_s']:.1f} s, outside epochs {row['outside_s']:.1f} s = "
            f"{row['outside_s'] / row['epoch_s']:.2f} epochs, peak "
            f"{row['peak_rss_fit'] / row['weight_bytes']:.2f}x weights, compress "
            f"{row['compress_s']:.2f} s = {row['compress_s'] / row['copy_s']:.1f} "
            f"copies, peak after it "
            f"{row['peak_rss_compress'] / row['weight_bytes']:.2f}x weights",
            flush=True,
        )
        if profile:
            profiles[ratio] = top_of_profile(profile)
            Path(profile).unlink()
    report = format_report(rows, config, _provenance.header(command), profiles)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"hashing_scale{suffix}.md").write_text(report)
    (RESULTS / f"hashing_scale{suffix}.json").write_text(
        json.dumps(
            {"provenance": _provenance.record(command), "config": config, "rows": rows},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
