"""Tests for the command line, ``python -m skprune`` (:mod:`skprune.__main__`)."""

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import dump_svmlight_file, load_svmlight_file
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.utils import check_random_state

from skprune import PrunedClassifier
from skprune.__main__ import main, parse_ratios
from skprune._classifier import default_classifier_net
from skprune.datasets import make_text_classification

# Tiny runs: 2 folds of 100 samples, one dense and one retraining epoch.
TINY = ["--epochs", "1", "--cv", "2"]
TINY_BUILTIN = [*TINY, "--n-samples", "200", "--n-features", "2000"]
FOLDS = StratifiedKFold(2, shuffle=True, random_state=0)


def tiny_classifier(prune_ratio, random_state):
    """What the tiny runs train, built from the public API."""
    net = default_classifier_net().set_params(max_epochs=1)
    return PrunedClassifier(net, prune_ratio=prune_ratio, random_state=random_state)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The nets are tiny: a second intra-op thread only adds overhead, a lot of it
    # on a busy machine. Restored afterwards.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _table(out):
    """The rows of the printed table, as lists of cells."""
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"[- ]+", line))
    header = re.split(r"\s{2,}", lines[rule - 1].strip())
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[rule + 1 :] if line]
    assert all(len(row) == len(header) for row in rows), out
    return [dict(zip(header, row, strict=True)) for row in rows]


def _kept(row):
    kept, total = (int(n.replace(",", "")) for n in row["kept weights"].split("/"))
    return kept, total


def test_builtin_data_one_row_per_ratio(capsys):
    assert main([*TINY_BUILTIN, "--ratios", "0,0.9"]) == 0
    out = capsys.readouterr().out
    assert "200 samples x 2,000 features" in out
    assert "4 classes" in out

    rows = _table(out)
    assert [row["ratio"] for row in rows] == ["0.00", "0.90"]
    assert "ratio 0.00 differs" not in out  # no path, nothing to tell apart
    # 2,000 x 256 prunable weights in the first layer; the output layer is kept.
    assert _kept(rows[0]) == (2000 * 256, 2000 * 256)
    assert rows[0]["kept %"] == "100.0%"
    kept, total = _kept(rows[1])
    assert total == 2000 * 256
    assert kept == pytest.approx(0.1 * total, rel=0.01)
    assert rows[1]["kept %"] == "10.0%"
    # The printed accuracies are those of an independent run on the same folds.
    # (Fit times are not checked: a tiny fit can print as 0.0 on a quiet machine.)
    X, y = make_text_classification(200, 2000, random_state=0)
    for row, ratio in zip(rows, (0.0, 0.9), strict=True):
        scores = cross_val_score(tiny_classifier(ratio, random_state=0), X, y, cv=FOLDS)
        assert row["acc mean"] == f"{scores.mean():.3f}"
        assert row["acc std"] == f"{scores.std():.3f}"


def test_path_scores_the_same_folds_along_one_path_and_plots(tmp_path, capsys):
    plot = tmp_path / "curve.png"
    argv = [*TINY_BUILTIN, "--ratios", "0,0.9", "--path", "--plot", str(plot)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    path_out = out[out.index("PrunedClassifierCV: one pruning path") :]
    rows = _table(path_out.split("selected prune ratio")[0])
    assert [row["ratio"] for row in rows] == ["0.00", "0.90"]
    assert (
        "ratio 0.00 differs from the table above: here it is each path's dense" in out
    )
    # A fold's path to its first ratio is a one-shot PrunedClassifier trained
    # with the seed PrunedClassifierCV gives its folds.
    seed = int(check_random_state(0).randint(2**31 - 1))
    X, y = make_text_classification(200, 2000, random_state=0)
    scores = cross_val_score(tiny_classifier(0.9, random_state=seed), X, y, cv=FOLDS)
    assert rows[1]["acc mean"] == f"{scores.mean():.3f}"
    cost = re.search(
        r"cost: one network per ratio and fold ([\d.]+) s .* "
        r"PrunedClassifierCV ([\d.]+) s .*, ([\d.]+)x less",
        out,
    )
    assert cost, out
    grid, path, ratio = map(float, cost.groups())
    # All three are printed rounded to 0.1.
    assert (grid - 0.05) / (path + 0.05) - 0.05 <= ratio
    assert ratio <= (grid + 0.05) / (path - 0.05) + 0.05
    assert f"sparsity curve written to {plot}" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_path_draws_the_per_ratio_curve(tmp_path, capsys):
    plot = tmp_path / "curve.svg"
    assert main([*TINY_BUILTIN, "--ratios", "0.5", "--plot", str(plot)]) == 0
    svg = plot.read_text()
    assert "One network per ratio and fold" in svg
    assert "Unpruned control" not in svg  # no ratio 0, no control


def test_path_needs_a_ratio_above_zero(capsys):
    assert main([*TINY_BUILTIN, "--ratios", "0", "--path"]) == 2
    assert "--path needs at least one prune ratio above 0" in capsys.readouterr().err


def test_data_file(tmp_path, capsys):
    X, y = make_text_classification(120, 2000, n_classes=3, random_state=1)
    path = tmp_path / "train.svm"
    dump_svmlight_file(X, y + 1, str(path))  # labels 1, 2, 3

    assert main(["--data", str(path), *TINY, "--ratios", "0,0.5"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out
    n_features = load_svmlight_file(str(path))[0].shape[1]  # as the CLI reads it
    assert f"120 samples x {n_features:,} features" in out
    assert "3 classes (samples per class: 1: " in out
    rows = _table(out)
    assert [row["kept %"] for row in rows] == ["100.0%", "50.0%"]


def test_missing_data_file(tmp_path, capsys):
    path = tmp_path / "missing.svm"
    assert main(["--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err
    assert str(path) in err
    assert "Traceback" not in err


def test_malformed_data_file(tmp_path, capsys):
    path = tmp_path / "bad.svm"
    path.write_text("this is not an svmlight file\n")
    assert main(["--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot read {path}" in err
    assert "Traceback" not in err


def test_continuous_labels_are_rejected(tmp_path, capsys):
    X, _ = make_text_classification(20, 2000, random_state=0)
    path = tmp_path / "regression.svm"
    dump_svmlight_file(X, np.random.default_rng(0).random(20), str(path))
    assert main(["--data", str(path)]) == 2
    assert "not class labels" in capsys.readouterr().err


def test_single_class_is_rejected(tmp_path, capsys):
    X, _ = make_text_classification(20, 2000, random_state=0)
    path = tmp_path / "one_class.svm"
    dump_svmlight_file(X, np.ones(20), str(path))
    assert main(["--data", str(path)]) == 2
    assert "single class" in capsys.readouterr().err


@pytest.mark.parametrize(
    "ratios, problem",
    [
        ("0,1", "prune ratio 1 is outside [0, 1)"),
        ("0.5,-0.1", "prune ratio -0.1 is outside [0, 1)"),
        ("0,abc", "prune ratio 'abc' is not a number"),
        ("0,,0.9", "expected comma-separated numbers"),
        ("nan", "prune ratio nan is outside [0, 1)"),
    ],
)
def test_bad_ratios(ratios, problem, capsys):
    assert main(["--ratios", ratios]) == 2
    err = capsys.readouterr().err
    assert "argument --ratios" in err
    assert problem in err


def test_parse_ratios():
    assert parse_ratios("0, 0.5,0.95") == (0.0, 0.5, 0.95)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_ratios("")


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--cv", "1"], "argument --cv: must be at least 2"),
        (["--data", "x.svm", "--n-samples", "10"], "apply to the built-in data"),
        (["--n-features", "500"], "cannot make the built-in data: n_features=500"),
        (["--n-samples", "20", "--n-features", "2000", "--cv", "10"], "--cv 10"),
    ],
)
def test_usage_errors(argv, problem, capsys):
    assert main(argv) == 2
    assert problem in capsys.readouterr().err


def test_help_runs_as_module():
    # From the repository root, so that it works whether or not skprune is
    # installed.
    result = subprocess.run(
        [sys.executable, "-m", "skprune", "--help"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m skprune")
    for option in ("--data", "--ratios", "--cv", "--n-samples", "--n-features"):
        assert option in result.stdout
    for option in ("--epochs", "--random-state", "--n-jobs"):
        assert option in result.stdout


def test_a_zero_based_file_without_feature_zero_says_how_it_was_read(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.random((120, 50)) + 0.1
    X[:, 0] = 0.0  # digits' first pixel is blank in every image
    y = (X[:, 1] > 0.6).astype(int)
    path = tmp_path / "digits_like.svm"
    dump_svmlight_file(X, y, str(path))  # zero-based indices
    assert main(["--data", str(path), *TINY, "--ratios", "0"]) == 0
    out = capsys.readouterr().out
    assert "120 samples x 49 features" in out
    assert "read as one-based; pass --zero-based yes" in out
    assert (
        main(["--data", str(path), "--zero-based", "yes", *TINY, "--ratios", "0"]) == 0
    )
    out = capsys.readouterr().out
    assert "120 samples x 50 features" in out and "one-based" not in out
