"""Test accuracy against sparsity for skprune's pruning methods on real data.

Run from the repository root, on ONE core (the script limits torch and BLAS to
one thread itself; setting ``OMP_NUM_THREADS=1`` as well does no harm)::

    PYTHONPATH=. python benchmarks/accuracy_vs_sparsity.py            # ~40 min
    PYTHONPATH=. python benchmarks/accuracy_vs_sparsity.py --quick    # ~2 min
    PYTHONPATH=. python benchmarks/accuracy_vs_sparsity.py --datasets reuters_r8
    PYTHONPATH=. python benchmarks/accuracy_vs_sparsity.py --seeds 0
    PYTHONPATH=. python benchmarks/accuracy_vs_sparsity.py --resume   # go on
    PYTHONPATH=. python benchmarks/accuracy_vs_sparsity.py --report-only

Datasets (``benchmarks/_datasets.py``): 20 Newsgroups and Reuters R8 with their
official train/test splits as TF-IDF, and MNIST-5k (pixels in [0, 1], CSR).
Text uses the default :class:`skprune.PrunedClassifier` net (one hidden layer of
256 units, 6 dense epochs); MNIST a LeNet-300-100-like net
(``module__hidden_layer_sizes=(300, 100)``, otherwise the same).

The grid, for the first seed:

* magnitude and random importance (global scope, one-shot pruning, 4 retraining
  epochs) at every sparsity in 0.5, 0.8, 0.9, 0.95, 0.98;
* at 0.9, 0.95 and 0.98: taylor importance; layer scope (run only where the net
  has more than one prunable layer, MNIST: with one, as for the text nets, it is
  the same ranking as global; one fit on R8 shows it); iterative pruning in 3
  rounds of 4 retraining epochs; gradual pruning in 8 steps (Zhu & Gupta cubic
  schedule, ``retrain_epochs=1``: 4 epochs of pruning and 4 of fine-tuning);
  and one-shot pruning *without* retraining (``retrain_epochs=0``);
* for every schedule an unpruned control (``prune_ratio=0``) trained for the
  same total number of epochs;
* ``LogisticRegression(max_iter=1000)`` with C=1 and C=10 on the same features.

The first seed's grid takes about 38 minutes on one core of a 2-core AMD EPYC
(20 Newsgroups about 26 of them, a 10-epoch fit about 50 s; R8 7, MNIST-5k 5).
Further seeds (``--seeds 0 1``, the default) repeat only the 95% comparison
(controls and methods at 0.95, MNIST-5k and 20 Newsgroups first), and only the
fits expected to end within ``--budget-min`` minutes (default 40) of the start;
with ``--resume --budget-min 12`` a later run adds the rest. Every fit is
appended to a CSV as soon as it is done, so a partial run is not lost
(``--resume`` skips the fits already there). At the end, and with
``--report-only`` from the CSV alone, it writes:

* ``benchmarks/results/accuracy_vs_sparsity.csv``: one row per fit;
* ``benchmarks/results/accuracy_vs_sparsity.md``: per dataset a table (rows =
  method, columns = sparsity, cells = test accuracy in %), the achieved
  sparsity, fit times, pruning without retraining, the default classifier
  against logistic regression, the acceptance bars and the machine;
* ``benchmarks/results/accuracy_vs_sparsity.png``: accuracy against the
  fraction of weights kept (log scale), one panel per dataset.

``--quick`` runs a tiny grid (2 dense epochs, R8 and MNIST-5k) into
``accuracy_vs_sparsity_quick.*`` files instead, as a smoke test.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import skorch
import torch
from _datasets import load_dataset
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from skprune import PrunedClassifier
from skprune._classifier import default_classifier_net

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ALL_DATASETS = ("reuters_r8", "mnist5k", "20newsgroups")
SWEEP = (0.5, 0.8, 0.9, 0.95, 0.98)
HIGH = (0.9, 0.95, 0.98)
COMPARE = 0.95  # the sparsity of the acceptance bars and of the extra seeds
DENSE_EPOCHS = 6  # max_epochs of the default net
LR_REFERENCE = {"20newsgroups": 0.844, "reuters_r8": 0.971}  # measured with C=10
# Acceptance bars at COMPARE: best method within this many points of the control.
BARS = {"20newsgroups": 1.0, "mnist5k": 0.5}


@dataclass(frozen=True)
class Method:
    """One pruning configuration of :class:`PrunedClassifier`."""

    label: str
    importance: str = "magnitude"
    scope: str = "global"
    schedule: str = "oneshot"
    n_rounds: int = 1
    retrain_epochs: int | None = None  # None: the default, 2/3 of max_epochs
    ratios: tuple[float, ...] = HIGH

    def resolved_retrain(self, dense_epochs: int) -> int:
        """Retraining epochs per round, as PrunedClassifier resolves None."""
        if self.retrain_epochs is not None:
            return self.retrain_epochs
        return max(1, (2 * dense_epochs) // 3)

    def total_epochs(self, dense_epochs: int) -> int:
        """Epochs one fit takes, pruned or not (and so its control)."""
        rounds = 1 if self.schedule == "oneshot" else self.n_rounds
        return dense_epochs + rounds * self.resolved_retrain(dense_epochs)

    def control_key(self, dense_epochs: int) -> str:
        """Name of the unpruned control trained for as many epochs."""
        retrain = self.resolved_retrain(dense_epochs)
        rounds = "" if self.schedule == "oneshot" else f" x{self.n_rounds}"
        return (
            f"control {self.schedule}{rounds}, {retrain} retrain "
            f"({self.total_epochs(dense_epochs)} ep)"
        )


MAGNITUDE = "magnitude"
NO_RETRAIN = "magnitude, no retraining"
METHODS = (
    Method(MAGNITUDE, ratios=SWEEP),
    Method("random", importance="random", ratios=SWEEP),
    Method(NO_RETRAIN, retrain_epochs=0),
    Method("taylor", importance="taylor"),
    Method("magnitude, layer scope", scope="layer"),
    Method("magnitude, iterative x3", schedule="iterative", n_rounds=3),
    Method("magnitude, gradual x8", schedule="gradual", n_rounds=8, retrain_epochs=1),
)
LAYER_SCOPE_RATIOS = {"mnist5k": HIGH, "reuters_r8": (COMPARE,), "20newsgroups": ()}
# Methods repeated with further seeds, at COMPARE only.
EXTRA_SEED_METHODS = (
    MAGNITUDE,
    "taylor",
    "magnitude, layer scope",
    "magnitude, iterative x3",
    "magnitude, gradual x8",
)

FIELDS = [
    "dataset",
    "seed",
    "method",
    "kind",
    "importance",
    "scope",
    "schedule",
    "n_rounds",
    "retrain_epochs",
    "total_epochs",
    "target",
    "sparsity",
    "n_params",
    "n_nonzero",
    "test_acc",
    "train_acc_before_prune",
    "train_acc_after_prune",
    "train_acc_end",
    "flops_dense",
    "flops_pruned",
    "fit_s",
    "finished",
    "skprune_git",  # the library's state when the run started
]


@dataclass(frozen=True)
class Job:
    """One fit to run: a method (or control, or baseline) at one ratio and seed."""

    dataset: str
    seed: int
    method: str
    kind: str  # "pruned", "control" or "baseline"
    config: Method | None
    target: float

    @property
    def key(self) -> tuple:
        return (self.dataset, self.seed, self.method, round(self.target, 6))


# --------------------------------------------------------------------------- grid


def dense_epochs(quick: bool) -> int:
    return 2 if quick else DENSE_EPOCHS


def make_net(dataset: str, quick: bool):
    """The skorch net to prune, or None for PrunedClassifier's default net."""
    if dataset == "mnist5k":
        net = default_classifier_net().set_params(module__hidden_layer_sizes=(300, 100))
    elif quick:
        net = default_classifier_net()
    else:
        return None  # literally PrunedClassifier()'s net
    if quick:
        net.set_params(max_epochs=dense_epochs(quick))
    return net


def method_ratios(method: Method, dataset: str, quick: bool) -> tuple[float, ...]:
    if quick:
        if method.label in (MAGNITUDE, "random"):
            return (0.9, 0.98)
        if method.label in (NO_RETRAIN, "taylor", "magnitude, iterative x3"):
            return (COMPARE,)
        return ()
    if method.scope == "layer":
        return LAYER_SCOPE_RATIOS.get(dataset, HIGH)
    return method.ratios


def plan(datasets, seeds, quick: bool) -> list[Job]:
    """All fits, most important first; jobs of seeds after the first come last.

    Each method's control comes right before the method's first fit. The extra
    seeds visit the datasets with an acceptance bar first.
    """
    epochs = dense_epochs(quick)
    jobs = []
    for i, seed in enumerate(seeds):
        order = datasets
        if i > 0:
            order = sorted(datasets, key=lambda d: d not in BARS)
        for dataset in order:
            if i == 0:
                for name in ("LogisticRegression(C=1)", "LogisticRegression(C=10)"):
                    jobs.append(Job(dataset, seed, name, "baseline", None, math.nan))
            controls = set()
            for method in METHODS:
                ratios = method_ratios(method, dataset, quick)
                if i > 0:
                    if method.label not in EXTRA_SEED_METHODS or quick:
                        continue
                    ratios = tuple(r for r in ratios if r == COMPARE)
                if not ratios:
                    continue
                control = method.control_key(epochs)
                if control not in controls:
                    controls.add(control)
                    jobs.append(Job(dataset, seed, control, "control", method, 0.0))
                jobs += [
                    Job(dataset, seed, method.label, "pruned", method, r)
                    for r in ratios
                ]
    return jobs


# --------------------------------------------------------------------------- runs


def run_job(job: Job, data, quick: bool) -> dict:
    """Fit one job and return its CSV row."""
    X_train, y_train, X_test, y_test = data
    row = {f: "" for f in FIELDS}
    row.update(dataset=job.dataset, seed=job.seed, method=job.method, kind=job.kind)
    if job.kind == "baseline":
        C = 10.0 if "C=10" in job.method else 1.0
        model = LogisticRegression(C=C, max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            model.fit(X_train, y_train)
            row["fit_s"] = time.perf_counter() - t0
        row["test_acc"] = float(np.mean(model.predict(X_test) == y_test))
        row["finished"] = _now()
        return row

    method = job.config
    clf = PrunedClassifier(
        make_net(job.dataset, quick),
        prune_ratio=job.target,
        importance=method.importance,
        scope=method.scope,
        schedule=method.schedule,
        n_rounds=method.n_rounds,
        retrain_epochs=method.retrain_epochs,
        random_state=job.seed,
    )
    t0 = time.perf_counter()
    clf.fit(X_train, y_train)
    row["fit_s"] = time.perf_counter() - t0
    epochs = dense_epochs(quick)
    last = clf.pruning_history_[-1] if clf.pruning_history_ else {}
    row.update(
        importance=method.importance,
        scope=method.scope,
        schedule=method.schedule,
        n_rounds=method.n_rounds,
        retrain_epochs=method.resolved_retrain(epochs),
        total_epochs=method.total_epochs(epochs),
        target=job.target,
        sparsity=clf.sparsity_,
        n_params=clf.n_params_,
        n_nonzero=clf.n_nonzero_params_,
        test_acc=float(clf.score(X_test, y_test)),
        train_acc_before_prune=last.get("score_before", ""),
        train_acc_after_prune=last.get("score_after", ""),
        train_acc_end=last.get("score_retrained", ""),
        flops_dense=clf.flops_["dense"],
        flops_pruned=clf.flops_["pruned"],
        finished=_now(),
    )
    return row


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def read_rows(path: Path) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=FIELDS)
    return pd.read_csv(path)


def append_row(path: Path, row: dict) -> None:
    new = not path.exists() or path.stat().st_size == 0
    fields = FIELDS
    if not new:  # keep the columns of an existing file (an older version's)
        with path.open(newline="") as f:
            fields = next(csv.reader(f))
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def run_all(jobs, csv_path: Path, quick: bool, budget_s: float, seeds) -> None:
    """Run the jobs not yet in the CSV, appending a row after each fit.

    Jobs of the first seed always run. Those of further seeds run only if they
    are expected to end within ``budget_s`` of the start: a control counts with
    the fit it is paired with, and a pruned fit whose control is missing is
    skipped (it could not be compared).
    """
    rows = read_rows(csv_path)
    done = {_row_key(r.dataset, r.seed, r.method, r.target) for r in rows.itertuples()}
    sec_per_epoch = _seconds_per_epoch(rows)
    git = git_state()
    t_start = time.perf_counter()
    data_cache = {}
    n = len(jobs)
    for i, job in enumerate(jobs, 1):
        if _row_key(*job.key) in done:
            continue
        elapsed = time.perf_counter() - t_start
        if job.seed != seeds[0]:
            epochs = job.config.total_epochs(dense_epochs(quick))
            cost = sec_per_epoch.get(job.dataset, 0.0) * epochs
            cost *= 2 if job.kind == "control" else 1
            control = job.config.control_key(dense_epochs(quick))
            unpaired = job.kind == "pruned" and (
                _row_key(job.dataset, job.seed, control, 0.0) not in done
            )
            if unpaired or elapsed + cost > budget_s:
                why = "its control was not run" if unpaired else "over budget"
                print(
                    f"[{i}/{n}] skip {job.dataset} seed {job.seed} {job.method}: {why}"
                )
                continue
        if job.dataset not in data_cache:
            data_cache.clear()  # one dataset in memory at a time
            data_cache[job.dataset] = load_dataset(job.dataset)
        row = run_job(job, data_cache[job.dataset], quick)
        row["skprune_git"] = git
        append_row(csv_path, row)
        done.add(_row_key(*job.key))
        if job.kind != "baseline":
            spe = row["fit_s"] / row["total_epochs"]
            sec_per_epoch.setdefault(job.dataset, spe)
        print(
            f"[{i}/{n}] {elapsed + row['fit_s']:7.0f}s {job.dataset} seed {job.seed} "
            f"{job.method} @ {job.target:.2f}: acc={row['test_acc']:.4f} "
            f"sparsity={_fmt(row['sparsity'], '.4f')} fit={row['fit_s']:.1f}s",
            flush=True,
        )


def _row_key(dataset, seed, method, target) -> tuple:
    target = "" if pd.isna(target) else f"{float(target):.6g}"
    return (dataset, int(seed), method, target)


def _seconds_per_epoch(rows: pd.DataFrame) -> dict:
    """Mean fit seconds per training epoch of each dataset, from earlier fits."""
    fits = rows[rows.kind != "baseline"]
    if fits.empty:
        return {}
    spe = fits.fit_s.astype(float) / fits.total_epochs.astype(float)
    return spe.groupby(fits.dataset).mean().to_dict()


def _fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- report


def pct(x: float) -> str:
    return "" if x is None or pd.isna(x) else f"{100 * x:.2f}"


def cell(values: pd.Series) -> str:
    """Mean test accuracy in %; with several seeds, ± half their spread."""
    values = values.dropna()
    if values.empty:
        return ""
    text = pct(values.mean())
    if len(values) > 1:
        text += f" ±{50 * (values.max() - values.min()):.2f}"
    return text


def markdown_table(header, rows) -> str:
    align = [":--"] + ["--:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)


def control_of(df: pd.DataFrame, method: str) -> pd.DataFrame:
    """Rows of the control that matches a method's rows (same total epochs)."""
    rows = df[(df.method == method) & (df.kind == "pruned")]
    if rows.empty:
        return rows
    first = rows.iloc[0]
    return df[
        (df.kind == "control")
        & (df.schedule == first.schedule)
        & (df.n_rounds == first.n_rounds)
        & (df.retrain_epochs == first.retrain_epochs)
    ]


def paired(df: pd.DataFrame, method: str, target: float):
    """Mean accuracy of a method at target and of its control, same seeds."""
    rows = df[
        (df.method == method) & (df.kind == "pruned") & np.isclose(df.target, target)
    ]
    ctrl = control_of(df, method)
    seeds = sorted(set(rows.seed) & set(ctrl.seed))
    if not seeds:
        return None, None, []
    return (
        rows[rows.seed.isin(seeds)].test_acc.mean(),
        ctrl[ctrl.seed.isin(seeds)].test_acc.mean(),
        seeds,
    )


def dataset_section(df: pd.DataFrame, dataset: str) -> list[str]:
    seed = df.seed.min()
    d = df[(df.dataset == dataset) & (df.seed == seed)]
    out = [f"## {dataset}", ""]
    pruned = d[d.kind == "pruned"]
    if pruned.empty:
        return [*out, "(no pruned fits yet)", ""]
    first = pruned.iloc[0]
    out.append(
        f"{int(first.n_params):,} prunable weights (every layer but the output "
        f"layer). Test accuracy in %, seed {seed} (other seeds: see the "
        f"{COMPARE:g} section); the 0 column is the unpruned control trained for "
        "the same total epochs as the row."
    )
    out.append("")
    targets = sorted(set(pruned.target))
    header = ["method", "epochs", "0 (control)", *[f"{t:g}" for t in targets]]
    header.append("s / fit")
    rows = []
    for method in [m.label for m in METHODS]:
        m = pruned[pruned.method == method]
        if m.empty:
            continue
        ctrl = control_of(d, method)
        row = [method, int(m.total_epochs.iloc[0]), cell(ctrl.test_acc)]
        row += [cell(m[np.isclose(m.target, t)].test_acc) for t in targets]
        row.append(f"{m.fit_s.mean():.1f}")
        rows.append(row)
    out += [markdown_table(header, rows), ""]

    dev = (pruned.sparsity - pruned.target).abs()
    at98 = pruned[np.isclose(pruned.target, 0.98)]
    out.append(
        f"Achieved sparsity (`sparsity_`) vs target over {len(pruned)} pruned fits: "
        f"max |difference| = {dev.max():.2e}"
        + (
            f"; at 0.98, {int(at98.n_nonzero.iloc[0]):,} weights are left "
            f"(`n_nonzero_params_`)."
            if not at98.empty
            else "."
        )
    )
    controls = d[d.kind == "control"]
    if not controls.empty:
        out.append(
            f"Controls: sparsity_ at most {controls.sparsity.max():.2e} "
            "(prune_ratio=0 prunes nothing)."
        )
    out.append("")
    return out


def best_at(df: pd.DataFrame, dataset: str, target: float):
    """The best method at target: highest test accuracy on the first seed.

    Every method ran with the first seed; further seeds ran for some. Returns
    ``(method, accuracy, control accuracy, seeds)``, the accuracies being means
    over the seeds that both the method and its control (same total epochs)
    ran, or None.
    """
    d = df[(df.dataset == dataset) & (df.kind == "pruned")]
    d = d[np.isclose(d.target, target) & (d.method != NO_RETRAIN)]
    first = d[d.seed == df.seed.min()]
    if first.empty:
        return None
    method = first.loc[first.test_acc.idxmax(), "method"]
    acc, ctrl, seeds = paired(df[df.dataset == dataset], method, target)
    return None if acc is None else (method, acc, ctrl, seeds)


def git_text(df: pd.DataFrame) -> str:
    """The library states the CSV's fits ran with, with their counts."""
    if "skprune_git" not in df:
        return "an unrecorded state"
    counts = df.skprune_git.fillna("unrecorded").value_counts()
    return "; ".join(f"{state} ({n} fits)" for state, n in counts.items())


def timing_text(df: pd.DataFrame, meta: dict) -> str:
    """Wall time of the runs that wrote the CSV's rows.

    Rows are split into runs where a fit started more than a minute after the
    previous one ended (a later ``--resume``); data loading is counted.
    """
    if df.empty:
        return ""
    d = df.assign(end=pd.to_datetime(df.finished)).sort_values("end")
    start = d.end - pd.to_timedelta(d.fit_s.astype(float), unit="s")
    new_run = (start - d.end.shift()).dt.total_seconds().fillna(math.inf) > 60
    runs = []
    for _, run in d.groupby(new_run.cumsum()):
        first_start = run.end.iloc[0] - pd.Timedelta(seconds=run.fit_s.iloc[0])
        minutes = (run.end.iloc[-1] - first_start).total_seconds() / 60
        runs.append(f"{minutes:.1f} min ({len(run)} fits)")
    text = "Wall time of the run(s) that wrote the CSV: " + ", ".join(runs) + "."
    if meta.get("wall_min"):
        text += f" This invocation: {meta['wall_min']:.1f} min."
    return text


def write_report(df: pd.DataFrame, path: Path, meta: dict, datasets) -> list[str]:
    out = [
        "# Accuracy vs sparsity",
        "",
        f"Written by `benchmarks/accuracy_vs_sparsity.py` on {meta['date']}; "
        f"command: `{meta['command']}`.",
        "",
        f"Machine: processor `{meta['processor']}` ({meta['machine']}), "
        f"{meta['cores']} cores, run on **1 thread**; Python {meta['python']}, "
        f"torch {meta['torch']}, skorch {meta['skorch']}, scikit-learn "
        f"{meta['sklearn']}; skprune at {git_text(df)}. Sum of fit times "
        f"{df.fit_s.sum() / 60:.1f} min over {len(df)} fits. " + timing_text(df, meta),
        "",
        setup_paragraph(meta["quick"]),
        "",
    ]
    for dataset in datasets:
        out += dataset_section(df, dataset)

    out += ["## Best method at high sparsity", ""]
    rows = []
    for dataset in datasets:
        for target in (COMPARE, 0.98):
            best = best_at(df, dataset, target)
            if best is None:
                continue
            method, acc, ctrl, seeds = best
            rows.append(
                [
                    dataset,
                    f"{target:g}",
                    method,
                    pct(acc),
                    pct(ctrl),
                    f"{100 * (acc - ctrl):+.2f}",
                    ",".join(map(str, seeds)),
                ]
            )
    out += [
        markdown_table(
            [
                "dataset",
                "sparsity",
                "best method",
                "acc %",
                "its control %",
                "method - control (points)",
                "seeds",
            ],
            rows,
        ),
        "",
        "Best = highest test accuracy with the first seed (every method ran it; "
        "no-retraining excluded); accuracies are means over the seeds listed, "
        "for the method and its control (the same total epochs) alike.",
        "",
    ]

    out += no_retrain_section(df, datasets)
    out += default_vs_logreg_section(df, datasets)
    out += gap_section(df, datasets)
    out += bars_section(df, datasets)
    path.write_text("\n".join(out) + "\n")
    return out


def setup_paragraph(quick: bool) -> str:
    e = dense_epochs(quick)
    by_label = {m.label: m for m in METHODS}
    retrain = by_label[MAGNITUDE].resolved_retrain(e)
    text = (
        "Text: `PrunedClassifier()`'s default net (TF-IDF -> 256 ReLU units, "
        "dropout 0.5 -> classes; LazyAdam lr 1e-3, batch 64; one prunable "
        "layer). MNIST-5k: the same with hidden layers (300, 100) (two prunable "
        f"layers). Pruned fits: {e} dense epochs, then pruning and {retrain} "
        "retraining epochs per round: one-shot "
        f"{by_label[MAGNITUDE].total_epochs(e)} epochs in all, iterative x3 "
        f"{by_label['magnitude, iterative x3'].total_epochs(e)}, gradual x8 "
        "(1 retraining epoch per step: pruning over 4 epochs, 4 of fine-tuning) "
        f"{by_label['magnitude, gradual x8'].total_epochs(e)}, no retraining "
        f"{by_label[NO_RETRAIN].total_epochs(e)}. `random_state` = seed; with "
        "the same seed every fit shares its dense phase. `scope='layer'` equals "
        "`'global'` on a net with one prunable layer, so it runs on MNIST (and "
        "once on R8, as a check)."
    )
    if quick:
        text += " **Quick smoke run: 2 dense epochs, not a benchmark.**"
    return text


def no_retrain_section(df, datasets) -> list[str]:
    nr_epochs = _epochs(df, NO_RETRAIN)
    rt_epochs = _epochs(df, MAGNITUDE)
    out = [
        "## Pruning without retraining",
        "",
        "Magnitude, global, one-shot. *No retraining* is `retrain_epochs=0`: the "
        f"dense net trained {nr_epochs} epochs and pruned at the end (its control: "
        f"the dense net after {nr_epochs} epochs). *Retrained*: pruned there too, "
        f"then retrained to {rt_epochs} epochs in all (control: {rt_epochs} "
        "epochs). The train columns come from `pruning_history_` of the "
        "retrained fit (training accuracy right before pruning, right after it, "
        "and after retraining); they are on training data, the test columns are "
        "the honest measure. Seed 0.",
        "",
    ]
    rows = []
    for dataset in datasets:
        d = df[(df.dataset == dataset) & (df.seed == df.seed.min())]
        c0 = control_of(d, NO_RETRAIN).test_acc
        c1 = control_of(d, MAGNITUDE).test_acc
        for target in HIGH:
            nr = d[(d.method == NO_RETRAIN) & np.isclose(d.target, target)]
            rt = d[(d.method == MAGNITUDE) & np.isclose(d.target, target)]
            if nr.empty and rt.empty:
                continue
            rows.append(
                [
                    dataset,
                    f"{target:g}",
                    pct(c0.mean()) if len(c0) else "",
                    pct(nr.test_acc.mean()) if len(nr) else "",
                    pct(c1.mean()) if len(c1) else "",
                    pct(rt.test_acc.mean()) if len(rt) else "",
                    pct(rt.train_acc_before_prune.mean()) if len(rt) else "",
                    pct(rt.train_acc_after_prune.mean()) if len(rt) else "",
                    pct(rt.train_acc_end.mean()) if len(rt) else "",
                ]
            )
    header = [
        "dataset",
        "sparsity",
        f"test: dense {nr_epochs} ep",
        "test: no retraining",
        f"test: control {rt_epochs} ep",
        "test: retrained",
        "train: before prune",
        "train: right after",
        "train: retrained",
    ]
    return [*out, markdown_table(header, rows), ""]


def _epochs(df, method: str) -> str:
    rows = df[(df.method == method) & (df.kind == "pruned")]
    return "?" if rows.empty else str(int(rows.total_epochs.iloc[0]))


def default_vs_logreg_section(df, datasets) -> list[str]:
    out = [
        "## Default PrunedClassifier vs logistic regression",
        "",
        "`PrunedClassifier(prune_ratio=r, random_state=seed)` with every other "
        "parameter at its default (the `magnitude` rows at r = 0.9 and its "
        "control at r = 0) against `LogisticRegression(max_iter=1000)` on the same "
        "TF-IDF features. Test accuracy in %, first seed.",
        "",
    ]
    rows = []
    for dataset in datasets:
        if dataset == "mnist5k":
            continue
        d = df[(df.dataset == dataset) & (df.seed == df.seed.min())]
        ctrl = control_of(d, MAGNITUDE)
        p9 = d[(d.method == MAGNITUDE) & np.isclose(d.target, 0.9)]
        lr1 = d[d.method == "LogisticRegression(C=1)"]
        lr10 = d[d.method == "LogisticRegression(C=10)"]
        ref = LR_REFERENCE.get(dataset)
        rows.append(
            [
                dataset,
                cell(ctrl.test_acc),
                cell(p9.test_acc),
                cell(lr1.test_acc),
                cell(lr10.test_acc),
                "" if ref is None else pct(ref),
                f"{lr1.fit_s.mean():.0f} / {lr10.fit_s.mean():.0f}"
                if len(lr1) and len(lr10)
                else "",
            ]
        )
    header = [
        "dataset",
        "PrunedClassifier r=0",
        "r=0.9",
        "LogReg C=1",
        "LogReg C=10",
        "reference (C=10)",
        "LogReg fit s (C=1 / C=10)",
    ]
    return [*out, markdown_table(header, rows), ""]


def gap_section(df, datasets, target: float = COMPARE) -> list[str]:
    """Every method at target against its own control, per seed and on average."""
    out = [
        f"## Every method at {target:g} against its own control",
        "",
        "Control = the unpruned net trained for the same total epochs. Gap = "
        "control - method, in points (negative: the pruned net is better). "
        "Means over the seeds that both ran.",
        "",
    ]
    rows = []
    for dataset in datasets:
        d = df[df.dataset == dataset]
        first = d.seed.min()
        for method in [m.label for m in METHODS]:
            acc, ctrl, seeds = paired(d, method, target)
            if acc is None:
                continue
            acc0, ctrl0, _ = paired(d[d.seed == first], method, target)
            rows.append(
                [
                    dataset,
                    method,
                    _epochs(d, method),
                    pct(acc0),
                    pct(ctrl0),
                    f"{100 * (ctrl0 - acc0):+.2f}",
                    ",".join(map(str, seeds)),
                    pct(acc),
                    pct(ctrl),
                    f"{100 * (ctrl - acc):+.2f}",
                ]
            )
    header = [
        "dataset",
        "method",
        "epochs",
        "acc, first seed",
        "control",
        "gap",
        "seeds",
        "mean acc",
        "mean control",
        "mean gap",
    ]
    return [*out, markdown_table(header, rows), ""]


def bars_section(df, datasets) -> list[str]:
    out = ["## Acceptance bars", ""]
    lines = []

    def verdict(ok):
        return "**met**" if ok else "**NOT met**"

    for dataset, points in BARS.items():
        if dataset not in datasets:
            continue
        best = best_at(df, dataset, COMPARE)
        if best is None:
            continue
        method, acc, ctrl, seeds = best
        diff = 100 * (ctrl - acc)
        lines.append(
            f"- {dataset}, {COMPARE:g} sparsity, best method within {points} point "
            f"of the control: {method} {pct(acc)} vs control {pct(ctrl)} "
            f"(control - method = {diff:+.2f} points; mean over seeds {seeds}) -> "
            f"{verdict(diff <= points)}"
        )
        closest = min(
            (
                (100 * (c - a), m)
                for m in {x.label for x in METHODS} - {NO_RETRAIN}
                for a, c, _ in [paired(df[df.dataset == dataset], m, COMPARE)]
                if a is not None
            ),
            default=None,
        )
        if closest is not None and closest[1] != method:
            lines.append(
                f"  - the method closest to its own control is {closest[1]} "
                f"(gap {closest[0]:+.2f} points, mean over its seeds)"
            )
        for seed in seeds:
            acc_s, ctrl_s, _ = paired(
                df[(df.seed == seed) & (df.dataset == dataset)], method, COMPARE
            )
            lines.append(
                f"  - seed {seed}: {pct(acc_s)} vs {pct(ctrl_s)} "
                f"({100 * (ctrl_s - acc_s):+.2f})"
            )
    for dataset in datasets:
        d = df[(df.dataset == dataset) & (df.seed == df.seed.min())]
        beats = []
        for target in HIGH:
            mag = d[(d.method == MAGNITUDE) & np.isclose(d.target, target)].test_acc
            rnd = d[(d.method == "random") & np.isclose(d.target, target)].test_acc
            nr = d[(d.method == NO_RETRAIN) & np.isclose(d.target, target)].test_acc
            if mag.empty or rnd.empty or nr.empty:
                continue
            ok = mag.iloc[0] > rnd.iloc[0] and mag.iloc[0] > nr.iloc[0]
            beats.append(
                (
                    ok,
                    f"{target:g}: {pct(mag.iloc[0])} vs random {pct(rnd.iloc[0])}, "
                    f"no retraining {pct(nr.iloc[0])}",
                )
            )
        if beats:
            lines.append(
                f"- {dataset}, magnitude + retraining beats random and no "
                f"retraining at 0.9, 0.95, 0.98 (seed {d.seed.min()}): "
                + "; ".join(text for _, text in beats)
                + f" -> {verdict(all(ok for ok, _ in beats))}"
            )
    for dataset in datasets:
        if dataset == "mnist5k":
            continue
        d = df[(df.dataset == dataset) & (df.seed == df.seed.min())]
        ctrl = control_of(d, MAGNITUDE).test_acc
        p9 = d[(d.method == MAGNITUDE) & np.isclose(d.target, 0.9)].test_acc
        for name in ("LogisticRegression(C=1)", "LogisticRegression(C=10)"):
            lr = d[d.method == name].test_acc
            if ctrl.empty or lr.empty:
                continue
            diff = 100 * (lr.iloc[0] - ctrl.iloc[0])
            lines.append(
                f"- {dataset}, default PrunedClassifier (r=0) within 1 point of "
                f"{name}: {pct(ctrl.iloc[0])} vs {pct(lr.iloc[0])} "
                f"({diff:+.2f} points, reference - ours) -> {verdict(diff <= 1.0)}"
            )
        if not ctrl.empty and not p9.empty:
            diff = 100 * (ctrl.iloc[0] - p9.iloc[0])
            lines.append(
                f"- {dataset}, default PrunedClassifier at r=0.9 within 1 point of "
                f"its unpruned score: {pct(p9.iloc[0])} vs {pct(ctrl.iloc[0])} "
                f"({diff:+.2f} points, unpruned - pruned) -> {verdict(diff <= 1.0)}"
            )
    return [*out, *lines, ""]


# --------------------------------------------------------------------------- plot


def write_plot(df: pd.DataFrame, path: Path, datasets) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in datasets if (df.dataset == d).any()]
    if not datasets:
        return
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(5.2 * len(datasets), 4.6), squeeze=False
    )
    styles = {
        MAGNITUDE: ("C0", "o", "-"),
        "random": ("C3", "x", "-"),
        NO_RETRAIN: ("C7", "v", "--"),
        "taylor": ("C1", "s", "-"),
        "magnitude, layer scope": ("C4", "D", "-"),
        "magnitude, iterative x3": ("C2", "^", "-"),
        "magnitude, gradual x8": ("C5", "P", "-"),
    }
    seed = df.seed.min()
    for ax, dataset in zip(axes[0], datasets, strict=True):
        d = df[(df.dataset == dataset) & (df.seed == seed)]
        ctrl = control_of(d, MAGNITUDE).test_acc.mean()
        lows = [ctrl] if not pd.isna(ctrl) else []
        points = []
        for method in [m.label for m in METHODS]:
            m = d[(d.method == method) & (d.kind == "pruned")]
            if m.empty:
                continue
            g = m.groupby("target").test_acc.mean()
            color, marker, ls = styles[method]
            ax.plot(
                1 - g.index,
                100 * g.values,
                color=color,
                marker=marker,
                linestyle=ls,
                label=method,
                alpha=0.9,
            )
            if method not in ("random", NO_RETRAIN):
                lows.append(g.min())
            points.append((g, color))
        if not pd.isna(ctrl):
            ax.axhline(
                100 * ctrl,
                color="k",
                lw=1.2,
                label=f"unpruned control ({_epochs(d, MAGNITUDE)} ep)",
            )
        lr = d[d.method == "LogisticRegression(C=10)"].test_acc
        if len(lr):
            ax.axhline(
                100 * lr.mean(),
                color="k",
                lw=1,
                ls=":",
                label="LogisticRegression(C=10)",
            )
        ax.set_xscale("log")
        ax.invert_xaxis()
        ticks = [0.5, 0.2, 0.1, 0.05, 0.02]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}\n({1 - t:g})" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("fraction of prunable weights kept (sparsity)")
        ax.set_ylabel("test accuracy (%)")
        # Random importance can collapse: keep the other methods readable.
        if lows:
            bottom = 100 * min(lows) - 2
            ax.set_ylim(bottom=bottom, top=100 * max(d.test_acc) + 1)
            # Points below the axis: their value in small print at the bottom,
            # stacked where several share a sparsity.
            stacked = {}
            for g, color in points:
                for target, acc in g.items():
                    if 100 * acc < bottom:
                        level = stacked[target] = stacked.get(target, -1) + 1
                        ax.annotate(
                            f"{100 * acc:.1f}",
                            (1 - target, bottom),
                            xytext=(-5, 3 + 9 * level),
                            textcoords="offset points",
                            ha="right",
                            fontsize=7,
                            color=color,
                        )
        ax.set_title(f"{dataset} (seed {seed})")
        ax.grid(True, alpha=0.3)
    handles, labels = {}, {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    labels = list(handles)
    fig.legend(
        [handles[k] for k in labels], labels, loc="lower center", ncol=5, fontsize=8
    )
    fig.suptitle(
        "skprune: test accuracy vs sparsity "
        "(points below an axis: their accuracy printed at its bottom)"
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def cpu_name() -> str:
    """``platform.processor()``, or the model name Linux reports where it is empty."""
    name = platform.processor()
    if name:
        return name
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + " (/proc/cpuinfo)"
    except OSError:
        pass
    return "unknown"


def git_state() -> str:
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "skprune")
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=ALL_DATASETS,
        default=None,
        help="default: all three (--quick: reuters_r8 mnist5k)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1],
        help="first seed: the whole grid; others: the 0.95 comparison only",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument(
        "--budget-min",
        type=float,
        default=40.0,
        help="extra seeds: only fits expected to end within this many minutes",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the CSV, skip fits done"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only rebuild the markdown and the plot from the CSV",
    )
    args = parser.parse_args(argv)
    datasets = args.datasets or (
        ["reuters_r8", "mnist5k"] if args.quick else list(ALL_DATASETS)
    )
    stem = "accuracy_vs_sparsity" + ("_quick" if args.quick else "")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    csv_path = RESULTS_DIR / f"{stem}.csv"

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if not args.report_only:
        if not args.resume and csv_path.exists():
            csv_path.unlink()
        jobs = plan(datasets, args.seeds, args.quick)
        print(f"{len(jobs)} fits planned -> {csv_path}", flush=True)
        with threadpool_limits(limits=1):
            run_all(jobs, csv_path, args.quick, 60 * args.budget_min, args.seeds)
    df = read_rows(csv_path)
    df = df[df.dataset.isin(datasets)]
    meta = {
        "date": _now(),
        "command": "python "
        + " ".join(["benchmarks/accuracy_vs_sparsity.py", *sys.argv[1:]]),
        "processor": cpu_name(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "skorch": skorch.__version__,
        "sklearn": sklearn.__version__,
        "quick": args.quick,
        "wall_min": None if args.report_only else (time.perf_counter() - t0) / 60,
    }
    lines = write_report(df, RESULTS_DIR / f"{stem}.md", meta, datasets)
    write_plot(df, RESULTS_DIR / f"{stem}.png", datasets)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
