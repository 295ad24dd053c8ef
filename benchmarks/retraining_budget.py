"""How retraining choices move accuracy at 95% sparsity on MNIST-5k.

Run from the repository root (needs the ``benchmarks`` extra, see the README)::

    python benchmarks/retraining_budget.py

For the LeNet-300-100-like net of ``accuracy_vs_sparsity.py``, at 95% of the
prunable weights removed, each row fits the pruned model and its unpruned control
(same schedule, same epochs) for seeds 0 and 1 and prints test accuracy:

- one-shot with ``retrain_lr_factor=1.0`` (the default) against 0.1 (the
  literature's choice for SGD with long retraining);
- longer schedules: iterative x5 with 4 retraining epochs per round, gradual x16.

Writes ``benchmarks/results/retraining_budget.md`` with ``_provenance``'s header
(commit, machine, load); a dirty tree is refused unless ``--allow-dirty``. About
5 minutes on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _provenance  # noqa: E402  first: puts this checkout's skprune on sys.path
from _datasets import load_mnist5k  # noqa: E402

from skprune import PrunedClassifier  # noqa: E402
from skprune._classifier import default_classifier_net  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = {
    "one-shot, retrain lr x1.0 (default)": {},
    "one-shot, retrain lr x0.1": {"retrain_lr_factor": 0.1},
    "iterative x5, 4 retrain epochs": {
        "schedule": "iterative",
        "n_rounds": 5,
        "retrain_epochs": 4,
    },
    "gradual x16, 2 retrain epochs": {
        "schedule": "gradual",
        "n_rounds": 16,
        "retrain_epochs": 2,
    },
}
SEEDS = (0, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    _provenance.check_tree(args.allow_dirty)
    torch.set_num_threads(1)
    X_train, y_train, X_test, y_test = load_mnist5k()
    lines = [
        "# Retraining choices at 95% sparsity, MNIST-5k",
        "",
        f"Test accuracy in %, mean of seeds {list(SEEDS)}.",
        "",
        "| schedule | epochs | control | pruned 95% | difference |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, params in CONFIGS.items():
        scores = {0.0: [], 0.95: []}
        epochs = None
        for seed in SEEDS:
            for ratio in scores:
                net = default_classifier_net().set_params(
                    module__hidden_layer_sizes=(300, 100)
                )
                start = time.perf_counter()
                clf = PrunedClassifier(
                    net, prune_ratio=ratio, random_state=seed, **params
                ).fit(X_train, y_train)
                epochs = len(clf.estimator_.history)
                scores[ratio].append(100 * clf.score(X_test, y_test))
                print(
                    f"{name:38s} seed {seed} ratio {ratio:.2f}: "
                    f"{scores[ratio][-1]:.2f} ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
        control = sum(scores[0.0]) / len(SEEDS)
        pruned = sum(scores[0.95]) / len(SEEDS)
        lines.append(
            f"| {name} | {epochs} | {control:.2f} | {pruned:.2f} | "
            f"{pruned - control:+.2f} |"
        )
    command = _provenance.command_line("retraining_budget.py", argv)
    header = [
        "# Retraining choices at 95% sparsity, MNIST-5k",
        "",
        _provenance.header(command),
    ]
    report = "\n".join(header + lines[2:]) + "\n"
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retraining_budget.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
