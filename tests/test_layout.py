"""The package's public import paths, and the layers its folders stand for."""

import ast
import importlib
from pathlib import Path

import pytest

import skprune

PACKAGE = Path(skprune.__file__).parent

#: Every public module, with a name each must offer.
PUBLIC_PATHS = {
    "skprune": "PrunedClassifier",
    "skprune.callbacks": "Pruning",
    "skprune.compress": "compact_mlp",
    "skprune.masks": "select_masks",
    "skprune.importance": "magnitude",
    "skprune.granularity": "make_granularity",
    "skprune.schedules": "make_schedule",
    "skprune.report": "summarize",
    "skprune.modules": "MLPModule",
    "skprune.optim": "LazyAdam",
    "skprune.losses": "WeightedLoss",
    "skprune.data": "BatchLoader",
    "skprune.datasets": "make_text_classification",
    "skprune.progress": "PruningProgress",
    "skprune.plotting": "SparsityCurveDisplay",
    "skprune.persistence": "load",
    "skprune.exceptions": "ModelFileError",
    "skprune.onnx": "to_onnx",
    "skprune.__main__": "main",
}


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
def test_every_public_path_imports_and_offers_what_its_all_lists(path):
    module = importlib.import_module(path)
    assert hasattr(module, PUBLIC_PATHS[path])
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_the_names_users_import_from_old_paths_are_the_same_objects():
    from skprune.callbacks import Pruning, default_retrain_epochs
    from skprune.compress import CompactMLP, compact_mlp
    from skprune.persistence import ModelFileError, UntrustedTypeError

    assert Pruning is skprune.callbacks._pruning.Pruning
    assert default_retrain_epochs is skprune._params.default_retrain_epochs
    assert (CompactMLP, compact_mlp) == (
        skprune.compress._compact.CompactMLP,
        skprune.compress._compact.compact_mlp,
    )
    assert ModelFileError is skprune.exceptions.ModelFileError
    assert UntrustedTypeError is skprune.exceptions.UntrustedTypeError
    assert skprune.CompressedRegressor is skprune.compress.CompressedRegressor


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("folder", ["_core", "_nn"])
def test_the_torch_layers_import_neither_scikit_learn_nor_skorch(folder):
    for path in sorted((PACKAGE / folder).glob("*.py")):
        assert (
            imported_roots(path) & {"sklearn", "sklearn_compat", "skorch"} == set()
        ), path.name


@pytest.mark.parametrize("folder", ["_core", "_nn"])
def test_the_torch_layers_import_nothing_above_them(folder):
    allowed = {"_nn"} if folder == "_nn" else {"_nn", "_core"}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                top = (node.module or "").split(".")[0]
                assert top in allowed, (path.name, top)
