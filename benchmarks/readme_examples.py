"""The README's example figures: saved-file sizes and the regression example's R^2.

Run from the repository root (nothing here is timed, so the machine's load does
not matter; the fits take a minute or two on one core)::

    python benchmarks/readme_examples.py
    python benchmarks/readme_examples.py --quick --allow-dirty   # smoke run

- **Saved-file sizes** ("Saving and loading without pickle"): a 90%-pruned
  default ``PrunedClassifier`` on ``make_text_classification(2000, 20000,
  random_state=0)``, saved with ``skprune.save`` (without and with the
  optimizer's state) and pickled, in bytes.
- **Regression** ("Regression"): the README's ``PrunedRegressor`` example,
  verbatim, its held-out R^2 and ``sparsity_``.

Writes ``benchmarks/results/readme_examples.json`` (``_quick`` with
``--quick``) with ``_provenance``'s record; ``benchmarks/readme_figures.py``
writes the README's figures from it. A dirty tree is refused unless
``--allow-dirty``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _provenance  # noqa: E402  first: puts this checkout's skprune on sys.path


def file_sizes(n_samples: int, n_features: int) -> dict:
    """Bytes of a 90%-pruned default model: skprune.save, with optimizer, pickle."""
    import skprune
    from skprune import PrunedClassifier
    from skprune.datasets import make_text_classification

    X, y = make_text_classification(n_samples, n_features, random_state=0)
    clf = PrunedClassifier(prune_ratio=0.9, random_state=0).fit(X, y)
    with tempfile.TemporaryDirectory() as tmp:
        plain, full = Path(tmp, "plain.skprune"), Path(tmp, "full.skprune")
        skprune.save(clf, plain)
        skprune.save(clf, full, include_optimizer=True)
        sizes = {
            "skprune_save": plain.stat().st_size,
            "skprune_save_with_optimizer": full.stat().st_size,
        }
    sizes["pickle"] = len(pickle.dumps(clf))
    return {
        "data": f"make_text_classification({n_samples}, {n_features}, random_state=0)",
        "prune_ratio": 0.9,
        "n_params": int(clf.n_params_),
        "bytes": sizes,
    }


def regression(n_samples: int, n_features: int, max_epochs: int) -> dict:
    """The README's regression example, with its data size as parameters."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.datasets import make_regression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from skprune import PrunedRegressor, default_regressor_net

    X, y = make_regression(
        n_samples, n_features, n_informative=20, noise=10, random_state=0
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    net = default_regressor_net().set_params(max_epochs=max_epochs)
    model = TransformedTargetRegressor(
        PrunedRegressor(net, prune_ratio=0.9, random_state=0),
        transformer=StandardScaler(),
    ).fit(X_train, y_train)
    return {
        "data": f"make_regression({n_samples}, {n_features}, n_informative=20, "
        "noise=10, random_state=0)",
        "max_epochs": max_epochs,
        "r2": float(model.score(X_test, y_test)),
        "sparsity": float(model.regressor_.sparsity_),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    _provenance.check_tree(args.allow_dirty)
    command = _provenance.command_line("readme_examples.py", argv)
    import torch

    torch.set_num_threads(1)
    if args.quick:
        result = {
            "file_sizes": file_sizes(200, 2000),
            "regression": regression(200, 50, 2),
        }
    else:
        result = {
            "file_sizes": file_sizes(2000, 20000),
            "regression": regression(2000, 500, 20),
        }
    result["provenance"] = _provenance.record(command)
    result["quick"] = args.quick
    name = "readme_examples_quick.json" if args.quick else "readme_examples.json"
    _provenance.RESULTS.mkdir(exist_ok=True)
    (_provenance.RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
