"""Hostile sparse input: every public predict and fit entry point refuses it.

scipy checks a sparse matrix's index arrays only when the matrix is built from
them, not after they are changed in place; the compiled loops behind prediction
do not check them at all. So a matrix whose indices point outside its shape must
be refused with a ``ValueError`` naming the problem, by every entry point, before
anything reads through those indices: not crash (SIGSEGV), not predict silently
(a column index of -1 read the last column), not modify the caller's matrix.

The cases run in a child process, so that a crash fails the cases it hits
instead of killing the test run: the child reports each case before and after
trying it, and is started again after the case that crashed it.
"""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import small_net
from sklearn.base import clone

from skprune import PrunedClassifier, PrunedClassifierCV, PrunedRegressor
from skprune._regressor import default_regressor_net

N_ROWS, N_FEATURES = 8, 40
FORMATS = ["csr_matrix", "csr_array", "csc_matrix", "csc_array", "coo_matrix"]
FORMATS += ["coo_array"]
DTYPES = ["float64", "float32"]

#: Entry point name: (model, method, whether it takes y).
ENTRY_POINTS = {
    "PrunedClassifier.predict": ("classifier", "predict", False),
    "PrunedClassifier.predict_proba": ("classifier", "predict_proba", False),
    "PrunedClassifier.decision_function": ("classifier", "decision_function", False),
    "PrunedClassifier.score": ("classifier", "score", True),
    "PrunedClassifier.fit": ("classifier", "fit", True),
    "PrunedRegressor.predict": ("regressor", "predict", False),
    "PrunedRegressor.score": ("regressor", "score", True),
    "PrunedRegressor.fit": ("regressor", "fit", True),
    "PrunedClassifierCV.predict": ("search", "predict", False),
    "PrunedClassifierCV.predict_proba": ("search", "predict_proba", False),
    "PrunedClassifierCV.decision_function": ("search", "decision_function", False),
    "PrunedClassifierCV.score": ("search", "score", True),
    "PrunedClassifierCV.fit": ("search", "fit", True),
    "CompressedClassifier.predict": ("compressed_classifier", "predict", False),
    "CompressedClassifier.predict_proba": (
        "compressed_classifier",
        "predict_proba",
        False,
    ),
    "CompressedClassifier.decision_function": (
        "compressed_classifier",
        "decision_function",
        False,
    ),
    "CompressedClassifier.score": ("compressed_classifier", "score", True),
    "CompressedRegressor.predict": ("compressed_regressor", "predict", False),
    "CompressedRegressor.score": ("compressed_regressor", "score", True),
}


def _malformations(sparse_format: str) -> dict:
    """Name: (what to change, the message's expected part) for one format."""
    if sparse_format.startswith("coo"):
        return {
            f"{axis} {label}": (("coords", axis, value), f"{axis} index {value}")
            for axis, bound in (("column", N_FEATURES), ("row", N_ROWS))
            for label, value in (("-1", -1), ("= n", bound), ("2**40", 2**40))
        }
    indexed, bound = (
        ("column", N_FEATURES) if "csr" in sparse_format else ("row", N_ROWS)
    )
    pointers = "row pointers" if "csr" in sparse_format else "column pointers"
    cases = {
        f"{indexed} {label}": (("indices", value), f"{indexed} index {value}")
        for label, value in (("-1", -1), ("= n", bound), ("2**40", 2**40))
    }
    cases["indptr decreasing"] = (("indptr decreasing",), pointers)
    cases["indptr ends past the indices"] = (("indptr past",), pointers)
    cases["indices shorter than indptr says"] = (("indices short",), pointers)
    return cases


CASES = {
    f"{sparse_format} {dtype} {name}": (sparse_format, dtype, change, expected)
    for sparse_format in FORMATS
    for dtype in DTYPES
    for name, (change, expected) in _malformations(sparse_format).items()
}


def valid_input(dtype: str = "float64") -> sp.csr_matrix:
    """Rows of three or more stored values each, so every pointer moves."""
    rng = np.random.default_rng(7)
    dense = rng.random((N_ROWS, N_FEATURES)) * (rng.random((N_ROWS, N_FEATURES)) < 0.3)
    dense[:, :3] = 1.0 + rng.random((N_ROWS, 3))
    return sp.csr_matrix(dense.astype(dtype))


def hostile_input(case: str):
    """The valid input in the case's format, its index arrays then corrupted."""
    sparse_format, dtype, change, _ = CASES[case]
    X = getattr(sp, sparse_format)(valid_input(dtype))
    if sparse_format.startswith("coo"):
        _, axis, value = change
        row, col = (np.array(c, dtype=np.int64) for c in X.coords)
        (col if axis == "column" else row)[1] = value
        X.coords = (row, col)
        return X
    X.indptr = X.indptr.astype(np.int64)
    X.indices = X.indices.astype(np.int64)
    if change[0] == "indices":
        X.indices[1] = change[1]
    elif change[0] == "indptr decreasing":
        X.indptr[2] = X.indptr[3] + 1  # above its successor, still within the values
    elif change[0] == "indptr past":
        X.indptr[-1] = len(X.indices) + 7
    else:
        X.indices = X.indices[:-3].copy()  # the data and the pointers say more
    return X


def _arrays(X) -> dict:
    names = ("data", "indices", "indptr", "row", "col")
    return {name: getattr(X, name).copy() for name in names if hasattr(X, name)}


def run_cases(models_path: str, ids: list) -> None:
    """The child process: try each (entry point, case) id and report it as JSON."""
    with open(models_path, "rb") as file:
        models = pickle.load(file)
    for id_ in ids:
        entry, case = id_.split(" | ")
        print(json.dumps({"start": id_}), flush=True)
        model_name, method, takes_y = ENTRY_POINTS[entry]
        model = models[model_name]
        if method == "fit":
            model = clone(model)
        X = hostile_input(case)
        before = _arrays(X)
        args = (X, models["y_" + model_name.removeprefix("compressed_")])
        try:
            getattr(model, method)(*args[: 1 + takes_y])
            outcome = "returned without an error"
        except ValueError as error:
            outcome = "ValueError: " + str(error)
        except Exception as error:  # noqa: BLE001 - the outcome is the report
            outcome = f"{type(error).__name__}: {error}"
        after = _arrays(X)
        if any(not np.array_equal(before[k], after[k]) for k in before):
            outcome = "modified the caller's X; " + outcome
        print(json.dumps({"id": id_, "outcome": outcome}), flush=True)


def _fitted_models() -> dict:
    rng = np.random.default_rng(0)
    X = sp.random(60, N_FEATURES, density=0.3, random_state=1, format="csr")
    y = rng.integers(0, 3, 60)
    y[:3] = [0, 1, 2]
    y_reg = X @ rng.standard_normal(N_FEATURES)
    small = {"max_epochs": 1, "module__hidden_layer_sizes": (8,)}
    fast = {"retrain_epochs": 1, "random_state": 0}
    classifier = PrunedClassifier(small_net(**small), **fast).fit(X, y)
    regressor_net = default_regressor_net().set_params(**small)
    regressor = PrunedRegressor(regressor_net, **fast).fit(X, y_reg)
    search = PrunedClassifierCV(small_net(**small), prune_ratios=[0.5], cv=2, **fast)
    rows = np.arange(N_ROWS)
    return {
        "classifier": classifier,
        "regressor": regressor,
        "search": search.fit(X, y),
        "compressed_classifier": classifier.compress(),
        "compressed_regressor": regressor.compress(),
        "y_classifier": y[rows],
        "y_regressor": y_reg[rows],
        "y_search": y[rows],
    }


@pytest.fixture(scope="module")
def models() -> dict:
    return _fitted_models()


@pytest.fixture(scope="module")
def outcomes(models, tmp_path_factory) -> dict:
    """Each id's outcome in the child; a crash is the outcome of its case."""
    models_path = tmp_path_factory.mktemp("untrusted") / "models.pkl"
    models_path.write_bytes(pickle.dumps(models))
    root = Path(__file__).resolve().parents[1]
    paths = [str(root), str(root / "tests")]  # this checkout's skprune, not another
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    code = (
        "import sys, json, test_untrusted_input as t; "
        "t.run_cases(sys.argv[1], json.loads(sys.stdin.read()))"
    )
    remaining, results = list(IDS), {}
    while remaining:
        child = subprocess.run(
            [sys.executable, "-c", code, str(models_path)],
            input=json.dumps(remaining),
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=600,
        )
        started = None
        for line in child.stdout.splitlines():
            report = json.loads(line)
            started = report.get("start")
            if "id" in report:
                results[report["id"]] = report["outcome"]
        if child.returncode != 0:
            if started is None:  # it died outside any case: nothing to blame
                raise RuntimeError(f"the child process failed:\n{child.stderr}")
            results[started] = f"crashed the interpreter (exit {child.returncode})"
        remaining = [id_ for id_ in remaining if id_ not in results]
    return results


IDS = [f"{entry} | {case}" for entry in ENTRY_POINTS for case in CASES]


def test_every_entry_point_and_format_is_covered():
    formats = {case.split()[0] for case in CASES}
    assert formats == {f"{kind}_{box}" for kind in ("csr", "csc", "coo")
                       for box in ("matrix", "array")}  # fmt: skip
    estimators = {entry.split(".")[0] for entry in ENTRY_POINTS}
    assert estimators == {
        "PrunedClassifier",
        "PrunedRegressor",
        "PrunedClassifierCV",
        "CompressedClassifier",
        "CompressedRegressor",
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse_format", FORMATS)
def test_the_same_input_intact_is_accepted_by_every_predict_entry_point(
    models, sparse_format, dtype
):
    # The refusals below are of the corruption, not of the data or the format.
    X = getattr(sp, sparse_format)(valid_input(dtype))
    for entry, (model_name, method, takes_y) in ENTRY_POINTS.items():
        if method == "fit":
            continue
        y = models["y_" + model_name.removeprefix("compressed_")]
        result = getattr(models[model_name], method)(*(X, y)[: 1 + takes_y])
        assert np.all(np.isfinite(result)), entry
        assert np.ndim(result) == 0 or len(result) == N_ROWS, entry


@pytest.mark.parametrize("id_", IDS)
def test_hostile_sparse_input_is_refused_with_a_value_error(outcomes, id_):
    expected = CASES[id_.split(" | ")[1]][3]
    outcome = outcomes[id_]
    assert outcome.startswith("ValueError: "), outcome
    assert expected in outcome, outcome
