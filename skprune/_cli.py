"""The command line behind ``python -m skprune``: cross-validate pruned against
unpruned networks.

Trains :class:`~skprune.PrunedClassifier` with its default network at a few
prune ratios (0.0 is the unpruned control, trained for exactly as many epochs)
and prints, for each ratio, the prunable weights kept, the mean and standard
deviation of the test accuracy over stratified folds and the mean fit time::

    python -m skprune                          # built-in text-like data
    python -m skprune --ratios 0,0.9,0.99 --cv 5
    python -m skprune --data train.svm         # an svmlight / libsvm file
    python -m skprune --plot curve.png         # and draw the sparsity curve
    python -m skprune --path                   # also PrunedClassifierCV's path

With ``--path`` the same ratios and folds are also scored along one pruning path
per fold by :class:`~skprune.PrunedClassifierCV` (one dense training, then one
retraining per ratio), and the costs of both are printed.

The folds are shuffled with ``--random-state``, which also seeds the data
generator and every network, so the output is reproducible (fit times aside).
Every ratio sees the same folds and the same weight initialisation. The table
goes to stdout, one progress line per ratio to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
from sklearn.datasets import load_svmlight_file
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.utils.multiclass import type_of_target

from ._classifier import PrunedClassifier, default_classifier_net
from ._cv import PrunedClassifierCV
from ._params import default_retrain_epochs
from .datasets import make_text_classification
from .exceptions import DataError

__all__ = ["main"]

DEFAULT_RATIOS = (0.0, 0.5, 0.8, 0.9, 0.95)
DEFAULT_N_SAMPLES = 1500
DEFAULT_N_FEATURES = 10000
DEFAULT_CV = 3
DEFAULT_RANDOM_STATE = 0


# argument parsing ---------------------------------------------------------------


def parse_ratios(text: str) -> tuple[float, ...]:
    """Parse ``--ratios``: comma-separated prune ratios, each in [0, 1).

    Parameters
    ----------
    text : str
        For example ``"0,0.5,0.9"``.

    Returns
    -------
    ratios : tuple of float

    Raises
    ------
    argparse.ArgumentTypeError
        If an item is not a number or lies outside [0, 1).

    Examples
    --------
    >>> from skprune.__main__ import parse_ratios
    >>> parse_ratios("0, 0.5,0.9")
    (0.0, 0.5, 0.9)
    >>> parse_ratios("0.5,1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: prune ratio 1 is outside [0, 1): 1 would prune \
every weight
    """
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers in [0, 1), got {text!r}"
        )
    ratios = []
    for item in items:
        try:
            ratio = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"prune ratio {item!r} is not a number"
            ) from None
        if not 0.0 <= ratio < 1.0:  # also rejects nan
            raise argparse.ArgumentTypeError(
                f"prune ratio {item} is outside [0, 1): 1 would prune every weight"
                if ratio == 1.0
                else f"prune ratio {item} is outside [0, 1)"
            )
        ratios.append(ratio)
    return tuple(ratios)


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m skprune``.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="python -m skprune",
        description=(
            "Cross-validate skprune.PrunedClassifier (default network: an MLP with "
            "256 hidden units) at several prune ratios against the unpruned "
            "control (ratio 0) and print kept weights, test accuracy and fit time."
        ),
        epilog=(
            "Without --data, text-like TF-IDF data come from "
            "skprune.datasets.make_text_classification. The defaults take about a "
            "minute or two on 2 CPU cores."
        ),
    )
    _add_data_options(parser)
    _add_experiment_options(parser)
    _add_run_options(parser)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """Where the data come from: a file instead of the built-in data."""
    parser.add_argument(
        "--data",
        metavar="FILE",
        help="svmlight / libsvm file to use instead of the built-in data "
        "(read with sklearn.datasets.load_svmlight_file)",
    )
    parser.add_argument(
        "--zero-based",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the --data file's feature indices start at 0 (default: auto, "
        "as scikit-learn: one-based unless some row has index 0)",
    )


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    """What is cross-validated: the ratios, the folds, the built-in data's size,
    the training and the seed."""
    parser.add_argument(
        "--ratios",
        type=parse_ratios,
        default=DEFAULT_RATIOS,
        metavar="R1,R2,...",
        help="comma-separated prune ratios in [0, 1); 0 is the unpruned control "
        f"(default: {','.join(f'{r:g}' for r in DEFAULT_RATIOS)})",
    )
    parser.add_argument(
        "--cv",
        type=_int_at_least(2),
        default=DEFAULT_CV,
        metavar="N",
        help="number of stratified folds (default: %(default)s)",
    )
    parser.add_argument(
        "--n-samples",
        type=_int_at_least(2),
        metavar="N",
        help=f"samples of the built-in data (default: {DEFAULT_N_SAMPLES})",
    )
    parser.add_argument(
        "--n-features",
        type=_int_at_least(1),
        metavar="N",
        help=f"features of the built-in data (default: {DEFAULT_N_FEATURES})",
    )
    parser.add_argument(
        "--epochs",
        type=_int_at_least(1),
        metavar="N",
        help="dense training epochs (the network's max_epochs; default: that of "
        "the default network, 6); retraining takes two thirds as many",
    )
    parser.add_argument(
        "--random-state",
        type=int,
        default=DEFAULT_RANDOM_STATE,
        metavar="SEED",
        help="seed of the built-in data, the folds and the networks "
        "(default: %(default)s)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """What is written besides the table, and how many folds run at once."""
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="write the sparsity curve (skprune.plotting.SparsityCurveDisplay) "
        "to this image file, for example curve.png; needs matplotlib",
    )
    parser.add_argument(
        "--path",
        action="store_true",
        help="also cross-validate along one pruning path per fold with "
        "skprune.PrunedClassifierCV, on the same folds, and print both costs",
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        metavar="N",
        help="folds fitted in parallel, as in scikit-learn; -1 uses all cores "
        "(default: 1)",
    )


# data ---------------------------------------------------------------------------


def load_data(path: str, *, zero_based: bool | str = "auto") -> tuple:
    """Read an svmlight / libsvm classification file.

    Parameters
    ----------
    path : str
    zero_based : bool or "auto", default="auto"
        Whether the file's feature indices start at 0, as
        :func:`sklearn.datasets.load_svmlight_file` takes it ("auto": one-based
        unless some row has index 0).

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features), float32
    y : ndarray of shape (n_samples,)
        Integer labels when every label is a whole number.

    Raises
    ------
    DataError
        If the file cannot be read, is not svmlight, is empty or its labels are
        not class labels.
    """
    try:
        X, y = load_svmlight_file(path, dtype=np.float32, zero_based=zero_based)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        reason = str(exc)
        if len(reason) > 120:
            reason = reason[:117] + "..."
        raise DataError(
            f"cannot read {path} as an svmlight/libsvm file: {reason}"
        ) from None
    if X.shape[0] < 2 or X.shape[1] == 0:
        raise DataError(
            f"{path} holds no usable data: {X.shape[0]} samples x {X.shape[1]} features"
        )
    if type_of_target(y) not in ("binary", "multiclass"):
        raise DataError(
            f"the labels in {path} are not class labels "
            f"(type {type_of_target(y)!r}); skprune's command line classifies"
        )
    if np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return X, y


def describe_data(source: str, X, y) -> str:
    """A few lines naming the data: source, shape, density and classes.

    Parameters
    ----------
    source : str
    X : sparse matrix of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)

    Returns
    -------
    text : str
    """
    n_samples, n_features = X.shape
    density = X.nnz / (n_samples * n_features)
    classes, counts = np.unique(y, return_counts=True)
    shown = ", ".join(
        f"{c}: {n}" for c, n in zip(classes[:10], counts[:10], strict=True)
    )
    if len(classes) > 10:
        shown += ", ..."
    return (
        f"Data:  {source}\n"
        f"       {n_samples:,} samples x {n_features:,} features, "
        f"density {density:.3%} ({X.nnz / n_samples:.1f} non-zeros per sample)\n"
        f"       {len(classes)} classes (samples per class: {shown})"
    )


# the experiment -----------------------------------------------------------------


def make_classifier(prune_ratio: float, *, epochs=None, random_state=None):
    """:class:`~skprune.PrunedClassifier` with the default net and its defaults.

    Parameters
    ----------
    prune_ratio : float
    epochs : int, default=None
        Dense training epochs; None keeps those of the default net.
    random_state : int, default=None

    Returns
    -------
    clf : skprune.PrunedClassifier
    """
    net = default_classifier_net()
    if epochs is not None:
        net.set_params(max_epochs=epochs)
    return PrunedClassifier(net, prune_ratio=prune_ratio, random_state=random_state)


def evaluate(X, y, ratios, *, cv=3, epochs=None, random_state=0, n_jobs=None):
    """Cross-validate one classifier per prune ratio on the same folds.

    Parameters
    ----------
    X : sparse matrix of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    ratios : sequence of float
    cv : int, default=3
        Number of shuffled stratified folds.
    epochs : int, default=None
        Dense training epochs; None keeps those of the default net.
    random_state : int, default=0
        Seeds the folds and the networks.
    n_jobs : int, default=None
        Passed to :func:`sklearn.model_selection.cross_validate`.

    Returns
    -------
    rows : list of dict
        One per ratio: ``ratio``, ``n_params``, ``n_nonzero`` (mean over the
        folds), ``kept`` (fraction), ``accuracy_mean``, ``accuracy_std``,
        ``fit_time``, ``scores`` (the fold by fold accuracies) and ``seconds``
        (wall time of the ratio's cross-validation).
    """
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    # One untimed fit on a few samples first: torch's one-off start-up costs
    # would otherwise be charged to the first ratio's fit time.
    few = np.concatenate([np.flatnonzero(y == label)[:2] for label in np.unique(y)])
    make_classifier(0.5, epochs=1, random_state=random_state).fit(X[few], y[few])
    rows = []
    for i, ratio in enumerate(ratios, 1):
        start = time.perf_counter()
        result = cross_validate(
            make_classifier(ratio, epochs=epochs, random_state=random_state),
            X,
            y,
            cv=folds,
            n_jobs=n_jobs,
            return_estimator=True,
            error_score="raise",
        )
        n_params = result["estimator"][0].n_params_
        n_nonzero = np.mean([est.n_nonzero_params_ for est in result["estimator"]])
        scores = result["test_score"]
        rows.append(
            {
                "ratio": ratio,
                "n_params": int(n_params),
                "n_nonzero": float(n_nonzero),
                "kept": float(n_nonzero / n_params),
                "accuracy_mean": float(np.mean(scores)),
                "accuracy_std": float(np.std(scores)),
                "fit_time": float(np.mean(result["fit_time"])),
                "scores": [float(score) for score in scores],
                "seconds": time.perf_counter() - start,
            }
        )
        print(
            f"[{i}/{len(ratios)}] prune_ratio={ratio:g}: accuracy "
            f"{np.mean(scores):.3f} ({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return rows


def evaluate_path(X, y, ratios, *, cv=3, epochs=None, random_state=0, n_jobs=None):
    """Cross-validate along one pruning path per fold with PrunedClassifierCV.

    Same folds and networks as :func:`evaluate`; 0.0 is the dense control.

    Parameters
    ----------
    X, y, ratios, cv, epochs, random_state, n_jobs
        As in :func:`evaluate`.

    Returns
    -------
    search : skprune.PrunedClassifierCV
        Fitted.
    seconds : float
        Wall time of its fit: the folds and the refit on all the data.
    """
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    base = make_classifier(0.0, epochs=epochs, random_state=random_state)
    search = PrunedClassifierCV(
        base.estimator,
        prune_ratios=ratios,
        cv=folds,
        n_jobs=n_jobs,
        random_state=random_state,
    )
    start = time.perf_counter()
    search.fit(X, y)
    seconds = time.perf_counter() - start
    print(
        f"[path] selected prune_ratio={search.prune_ratio_:g} ({seconds:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return search, seconds


# output -------------------------------------------------------------------------

TABLE_HEADER = ("ratio", "kept weights", "kept %", "acc mean", "acc std", "fit s")


def _format_ratio(ratio: float) -> str:
    """Two decimals, or as many as the ratio needs (0.995)."""
    return f"{ratio:.2f}" if ratio == round(ratio, 2) else f"{ratio:g}"


def format_table(rows: Sequence[dict]) -> str:
    """The results as plain text with right-aligned columns.

    Parameters
    ----------
    rows : sequence of dict
        As returned by :func:`evaluate`.

    Returns
    -------
    table : str
        A header line, a rule and one line per row.
    """
    cells = [
        (
            _format_ratio(row["ratio"]),
            f"{round(row['n_nonzero']):,} / {row['n_params']:,}",
            f"{100 * row['kept']:.1f}%",
            f"{row['accuracy_mean']:.3f}",
            f"{row['accuracy_std']:.3f}",
            f"{row['fit_time']:.1f}",
        )
        for row in rows
    ]
    columns = zip(TABLE_HEADER, *cells, strict=True)
    widths = [max(len(cell) for cell in column) for column in columns]

    def line(texts):
        return "  ".join(t.rjust(w) for t, w in zip(texts, widths, strict=True))

    rule = ["-" * w for w in widths]
    return "\n".join([line(TABLE_HEADER), line(rule), *map(line, cells)])


PATH_HEADER = ("ratio", "acc mean", "acc std", "path s")


def format_path_table(cv_results: dict) -> str:
    """PrunedClassifierCV's ``cv_results_`` as plain text, like :func:`format_table`.

    Parameters
    ----------
    cv_results : dict

    Returns
    -------
    table : str
        ``path s``: mean seconds along a fold's path until the ratio is scored.
    """
    cells = [
        (_format_ratio(float(r)), f"{m:.3f}", f"{s:.3f}", f"{t:.1f}")
        for r, m, s, t in zip(
            cv_results["param_prune_ratio"],
            cv_results["mean_test_score"],
            cv_results["std_test_score"],
            cv_results["mean_fit_time"],
            strict=True,
        )
    ]
    columns = zip(PATH_HEADER, *cells, strict=True)
    widths = [max(len(cell) for cell in column) for column in columns]

    def line(texts):
        return "  ".join(t.rjust(w) for t, w in zip(texts, widths, strict=True))

    rule = ["-" * w for w in widths]
    return "\n".join([line(PATH_HEADER), line(rule), *map(line, cells)])


def write_plot(path: str, rows: Sequence[dict], search=None) -> None:
    """Draw the sparsity curve of the per-ratio rows (or of the path) to a file.

    Parameters
    ----------
    path : str
        Image file; its extension picks the format (``.png``, ``.svg``, ...).
    rows : sequence of dict
        As returned by :func:`evaluate`.
    search : PrunedClassifierCV, default=None
        When given, its path is drawn too, and its selected ratio marked.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import SparsityCurveDisplay

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    pruned = [row for row in rows if row["ratio"] > 0]
    control = [row["scores"] for row in rows if row["ratio"] == 0]
    if pruned:
        SparsityCurveDisplay(
            prune_ratios=[row["ratio"] for row in pruned],
            test_scores=[row["scores"] for row in pruned],
            control_scores=control[0] if control else None,
            score_name="Held-out accuracy",
        ).plot(
            ax=ax,
            errorbar_kw={"label": "One network per ratio and fold"},
            control_kw={"label": f"Unpruned control ({np.mean(control):.3f})"}
            if control
            else None,
        )
    if search is not None:
        SparsityCurveDisplay.from_cv_results(
            search.cv_results_,
            selected_ratio=search.prune_ratio_,
            ax=ax,
            score_name="Held-out accuracy",
            errorbar_kw={"label": "PrunedClassifierCV path", "color": "C1"},
            control_kw={
                "color": "C1",
                "label": "Its dense network, before pruning "
                f"({search.cv_results_['mean_test_score'][0]:.3f})",
            },
        )
    ax.set_title("Held-out accuracy against the weights kept")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _data_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """``X, y`` and a description of where they come from; usage errors exit."""
    if args.data is not None:
        if args.n_samples is not None or args.n_features is not None:
            parser.error("--n-samples and --n-features apply to the built-in data")
        try:
            X, y = load_data(args.data, zero_based=args.zero_based != "no")
        except DataError as exc:
            parser.error(str(exc))
        if args.zero_based == "auto" and X.shape[1] > 1 and X[:, 0].nnz == 0:
            # scikit-learn's "auto", said aloud: a file without index 0 is one-based
            note = (
                f"{args.data} (no feature has index 0, so indices are read as "
                "one-based; pass --zero-based yes if they start at 0)"
            )
            return X[:, 1:], y, note
        return X, y, args.data
    n_samples = DEFAULT_N_SAMPLES if args.n_samples is None else args.n_samples
    n_features = DEFAULT_N_FEATURES if args.n_features is None else args.n_features
    try:
        X, y = make_text_classification(
            n_samples, n_features, random_state=args.random_state
        )
    except ValueError as exc:
        parser.error(f"cannot make the built-in data: {exc}")
    source = (
        f"skprune.datasets.make_text_classification({n_samples}, {n_features}, "
        f"random_state={args.random_state})"
    )
    return X, y, source


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, default=None
        Arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 2 on a usage error or an unusable data file (the message
        goes to stderr, without a traceback).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        X, y, source = _data_from_args(args, parser)
        _check_args_suit_data(args, y, source, parser)
    except SystemExit as exc:  # argparse's usage errors and --help
        return exc.code if isinstance(exc.code, int) else 2

    _print_setup(args, source, X, y)
    options = {
        "cv": args.cv,
        "epochs": args.epochs,
        "random_state": args.random_state,
        "n_jobs": args.n_jobs,
    }
    rows = evaluate(X, y, args.ratios, **options)
    print(format_table(rows))
    search = None
    if args.path:
        search, path = evaluate_path(X, y, args.ratios, **options)
        seconds = sum(row["seconds"] for row in rows)
        _print_path(search, grid=seconds, path=path, control=0.0 in args.ratios)
    if args.plot is not None:
        write_plot(args.plot, rows, search)
        print(f"sparsity curve written to {args.plot}")
    return 0


def _check_args_suit_data(args, y, source: str, parser) -> None:
    """Usage errors that need the data: one class, too few samples for the folds,
    ``--path`` without a ratio, ``--plot`` without matplotlib."""
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2:
        parser.error(f"the data hold a single class; {source} cannot be used")
    if args.path and not any(ratio > 0 for ratio in args.ratios):
        parser.error("--path needs at least one prune ratio above 0")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'skprune[plot]'")
    smallest = counts.min()
    if smallest < args.cv:
        parser.error(
            f"--cv {args.cv} needs at least {args.cv} samples of every class; "
            f"the smallest class has {smallest}"
        )


def _print_setup(args, source: str, X, y) -> None:
    """The lines above the table: data, model and cross-validation."""
    net = make_classifier(0.0, epochs=args.epochs).estimator
    epochs = net.max_epochs
    retrain = default_retrain_epochs(epochs)
    print(describe_data(source, X, y))
    print(
        "Model: PrunedClassifier, default net (MLP with 256 hidden units),\n"
        f"       {epochs} dense + {retrain} retraining epochs, one-shot global "
        "magnitude pruning"
    )
    print(
        f"CV:    {args.cv}-fold stratified, shuffled, random_state={args.random_state}"
    )
    print("kept: non-zero prunable weights (mean over folds); fit s: mean fit time")
    print(flush=True)


def _print_path(search, *, grid: float, path: float, control: bool = False) -> None:
    """The search's table, its selection and the cost against one net per ratio;
    ``control``: the per-ratio table above has a ratio 0 row, scored otherwise."""
    print()
    print("PrunedClassifierCV: one pruning path per fold (same folds)")
    print(format_path_table(search.cv_results_))
    print(
        f"selected prune ratio (1 SE rule): {search.prune_ratio_:g}, "
        f"mean accuracy {search.best_score_:.3f}"
    )
    print(
        f"cost: one network per ratio and fold {grid:.1f} s (folds only); "
        f"PrunedClassifierCV {path:.1f} s (folds and the refit on all data), "
        f"{grid / path:.1f}x less"
    )
    if control:
        print(
            "ratio 0.00 differs from the table above: here it is each path's dense "
            "network before pruning\n(dense epochs only, the seed of the folds' "
            "paths); above, the unpruned control,\ntrained for as many epochs as "
            "the pruned networks."
        )
