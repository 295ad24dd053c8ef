"""Where a default fit's time goes outside its epochs, on 100,000 features.

Run from the repository root::

    python benchmarks/fit_overhead.py            # 5,000 x 100,000 at 0.1%
    python benchmarks/fit_overhead.py --quick    # 1,000 x 20,000

Fits the default ``PrunedClassifier`` (``max_epochs`` 3, retraining 2, batch
256, as in issue 10's table) at ``prune_ratio`` 0.0 and 0.9 under cProfile,
subtracts the epochs' own time (skorch's ``history[:, "dur"]``) from the whole
``fit``, and lists the functions with the largest own time. Writes
``benchmarks/results/fit_overhead.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time

import _provenance
import numpy as np
import scipy.sparse as sp


def make_data(n_samples, n_features, density=0.001, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(
        n_samples, n_features, density=density, format="csr", dtype=np.float32,
        random_state=rng,
    )  # fmt: skip
    direction = rng.standard_normal((n_features, n_classes)).astype(np.float32)
    return X, np.asarray(np.argmax(X @ direction, axis=1)).ravel()


def profile_fit(X, y, prune_ratio: float, top: int) -> tuple[dict, str]:
    from skprune import PrunedClassifier

    try:
        from skprune import default_classifier_net
    except ImportError:  # until the public export (contract C13) is merged
        from skprune._classifier import default_classifier_net

    net = default_classifier_net().set_params(max_epochs=3, batch_size=256)
    clf = PrunedClassifier(net, prune_ratio=prune_ratio, random_state=0)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    clf.fit(X, y)
    profiler.disable()
    total = time.perf_counter() - start
    epochs = float(sum(clf.estimator_.history[:, "dur"]))
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).sort_stats("tottime")
    stats.print_stats(top)
    n_epochs = len(clf.estimator_.history)
    row = {
        "prune_ratio": prune_ratio,
        "fit_s": total,
        "epochs_s": epochs,
        "outside_s": total - epochs,
        "epoch_s": epochs / n_epochs,
        "n_epochs": n_epochs,
    }
    return row, stream.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default); on a loaded machine, 1 keeps "
        "spinning thread pools out of the profile",
    )
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    _provenance.check_tree(args.allow_dirty)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    shape = (1_000, 20_000) if args.quick else (5_000, 100_000)
    X, y = make_data(*shape)
    # Compile numba's loops (or load them from its cache) outside the profile.
    profile_fit(*make_data(50, 100), 0.5, 1)
    command = "python benchmarks/fit_overhead.py" + (" --quick" if args.quick else "")
    if args.threads:
        command += f" --threads {args.threads}"
    rows, profiles = [], []
    for ratio in (0.0, 0.9):
        row, text = profile_fit(X, y, ratio, args.top)
        rows.append(row)
        profiles.append((ratio, text))
        print(row, flush=True)
    lines = [
        f"# Time of a default fit outside its epochs, {shape[0]:,} x {shape[1]:,}",
        "",
        _provenance.header(command),
        "| prune_ratio | fit s | epochs s | outside epochs s | one epoch s | "
        "outside / epoch |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['prune_ratio']} | {r['fit_s']:.2f} | {r['epochs_s']:.2f} | "
            f"{r['outside_s']:.2f} | {r['epoch_s']:.2f} | "
            f"{r['outside_s'] / r['epoch_s']:.2f} |"
        )
    for ratio, text in profiles:
        lines += [
            "",
            f"## cProfile of the fit at prune_ratio={ratio} (own time)",
            "",
            "```",
            text.strip(),
            "```",
        ]
    report = "\n".join(lines) + "\n"
    print(report)
    suffix = "_quick" if args.quick else ""
    _provenance.RESULTS.mkdir(exist_ok=True)
    (_provenance.RESULTS / f"fit_overhead{suffix}.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
