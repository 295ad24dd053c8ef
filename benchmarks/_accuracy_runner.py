"""The fits of ``accuracy_vs_sparsity.py``: its grids, one fit, the resumable run.

Every fit is one row of a CSV, appended as soon as the fit ends, so a run that
stops (killed, out of time, ``--budget-min`` reached) loses nothing and a later
run with ``--resume`` does only the fits not there yet. With ``--jobs 2`` two
worker processes fit at once, each on one torch and BLAS thread; the fit
seconds then measure a shared machine and are not quoted anywhere (accuracy
does not depend on the load).
"""

from __future__ import annotations

import csv
import datetime
import math
import multiprocessing
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ALL_DATASETS = ("20newsgroups", "reuters_r8", "mnist5k")
SWEEP = (0.5, 0.8, 0.9, 0.95, 0.98)
HIGH = (0.9, 0.95, 0.98)
COMPARE = 0.95  # the sparsity of the acceptance bars
QUICK_EPOCHS = 2  # dense epochs of a --quick smoke run
QUICK_ROWS = (600, 300)  # training and test rows of a --quick smoke run
LR_REFERENCE = {"20newsgroups": 0.844, "reuters_r8": 0.971}  # measured with C=10
# Acceptance bars at COMPARE (issue 16): best method within this many points of
# its control, on the mean of three seeds.
BARS = {"20newsgroups": 1.0, "mnist5k": 1.0}
BASELINES = ("LogisticRegression(C=1)", "LogisticRegression(C=10)")


@dataclass(frozen=True)
class Method:
    """One pruning configuration of :class:`skprune.PrunedClassifier`."""

    label: str
    importance: str = "magnitude"
    scope: str = "global"
    schedule: str = "oneshot"
    n_rounds: int = 1
    retrain_epochs: int | None = None  # None: the default, 2/3 of max_epochs
    granularity: str = "weight"
    block_size: int = 8  # PrunedClassifier's default; used by "block" only

    @property
    def control_key(self) -> str:
        """Name of the unpruned control trained for as many epochs.

        ``prune_ratio=0`` with the same schedule and retraining trains exactly
        the epochs of the pruned fits, whatever the dense budget on the data.
        """
        rounds = "" if self.schedule == "oneshot" else f" x{self.n_rounds}"
        retrain = "default" if self.retrain_epochs is None else self.retrain_epochs
        return f"control {self.schedule}{rounds}, retrain {retrain}"


MAGNITUDE = "magnitude"
NO_RETRAIN = "magnitude, no retraining"
ITERATIVE = "magnitude, iterative x3"
GRADUAL = "magnitude, gradual x8"
BLOCK8 = "magnitude, blocks 1x8"
BLOCK16 = "magnitude, blocks 1x16"
METHODS = (
    Method(MAGNITUDE),
    Method(ITERATIVE, schedule="iterative", n_rounds=3),
    Method(GRADUAL, schedule="gradual", n_rounds=8, retrain_epochs=1),
    Method("random", importance="random"),
    Method(NO_RETRAIN, retrain_epochs=0),
    Method("taylor", importance="taylor"),
    Method("magnitude, layer scope", scope="layer"),
    Method(BLOCK8, granularity="block", block_size=8),
    Method(BLOCK16, granularity="block", block_size=16),
)
BY_LABEL = {m.label: m for m in METHODS}

# Grid name -> (method label -> prune ratios), per dataset where it differs.
# "table": the README's table, every seed. "explore": the wider grid of the
# first round (more ratios, taylor importance, layer scope). "block": blocks of
# 1x8 and 1x16 against unstructured weights, one-shot, sharing their control
# (issue 15); run it on 20newsgroups and reuters_r8.
GRIDS = {
    "table": {
        label: HIGH for label in (MAGNITUDE, ITERATIVE, GRADUAL, "random", NO_RETRAIN)
    },
    "explore": {
        MAGNITUDE: SWEEP,
        "random": SWEEP,
        NO_RETRAIN: HIGH,
        "taylor": HIGH,
        ITERATIVE: HIGH,
        GRADUAL: HIGH,
        # One prunable layer makes layer scope the global ranking: MNIST only.
        "magnitude, layer scope": HIGH,
    },
    "quick": {MAGNITUDE: (0.9, 0.98), "random": (0.9,), NO_RETRAIN: (COMPARE,)},
    "block": {MAGNITUDE: HIGH, BLOCK8: HIGH, BLOCK16: HIGH},
}
LAYER_SCOPE_DATASETS = ("mnist5k",)

FIELDS = [
    "dataset",
    "seed",
    "method",
    "kind",
    "importance",
    "scope",
    "granularity",
    "block_size",
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
    "skprune_git",  # the commit and tree state of the run that made the row
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
        return row_key(self.dataset, self.seed, self.method, self.target)


def row_key(dataset, seed, method, target) -> tuple:
    """A fit's identity in the CSV: dataset, seed, method, target ratio."""
    target = "" if pd.isna(target) else f"{float(target):.6g}"
    return (dataset, int(seed), method, target)


# --------------------------------------------------------------------------- grid


def plan(datasets, seeds, grid: str) -> list[Job]:
    """All fits, a seed at a time, so that a partial run holds whole seeds.

    Each method's control comes right before the method's first fit; the
    logistic-regression baselines (deterministic) run with the first seed.
    """
    ratios_of = GRIDS[grid]
    jobs = []
    for i, seed in enumerate(seeds):
        for dataset in datasets:
            if i == 0 and grid != "quick":
                jobs += [
                    Job(dataset, seed, name, "baseline", None, math.nan)
                    for name in BASELINES
                ]
            controls = set()
            for method in METHODS:
                ratios = ratios_of.get(method.label, ())
                if method.scope == "layer" and dataset not in LAYER_SCOPE_DATASETS:
                    ratios = ()
                if not ratios:
                    continue
                if method.control_key not in controls:
                    controls.add(method.control_key)
                    jobs.append(
                        Job(dataset, seed, method.control_key, "control", method, 0.0)
                    )
                jobs += [
                    Job(dataset, seed, method.label, "pruned", method, r)
                    for r in ratios
                ]
    return jobs


# --------------------------------------------------------------------------- one fit


def make_net(dataset: str, quick: bool):
    """The skorch net to prune, or None for PrunedClassifier's default net."""
    from skprune import default_classifier_net

    if dataset == "mnist5k":
        net = default_classifier_net().set_params(module__hidden_layer_sizes=(300, 100))
    elif quick:
        net = default_classifier_net()
    else:
        return None  # literally PrunedClassifier()'s net, with its training budget
    if quick:
        net.set_params(max_epochs=QUICK_EPOCHS)
    return net


_DATA: dict = {}


def load(dataset: str, quick: bool):
    """The dataset's (X_train, y_train, X_test, y_test), one in memory at a time."""
    if (dataset, quick) not in _DATA:
        from _datasets import load_dataset

        _DATA.clear()
        X_train, y_train, X_test, y_test = load_dataset(dataset)
        if quick:  # a fixed subsample: the smoke run checks the code, not the model
            rng = np.random.default_rng(0)
            tr = rng.permutation(X_train.shape[0])[: QUICK_ROWS[0]]
            te = rng.permutation(X_test.shape[0])[: QUICK_ROWS[1]]
            X_train, y_train = X_train[tr], np.asarray(y_train)[tr]
            X_test, y_test = X_test[te], np.asarray(y_test)[te]
        _DATA[dataset, quick] = (X_train, y_train, X_test, y_test)
    return _DATA[dataset, quick]


def run_job(job: Job, quick: bool) -> dict:
    """Fit one job (on this process's single thread) and return its CSV row."""
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from skprune import PrunedClassifier

    torch.set_num_threads(1)
    X_train, y_train, X_test, y_test = load(job.dataset, quick)
    row = {f: "" for f in FIELDS}
    row.update(dataset=job.dataset, seed=job.seed, method=job.method, kind=job.kind)
    with threadpool_limits(limits=1):
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
            granularity=method.granularity,
            block_size=method.block_size,
            schedule=method.schedule,
            n_rounds=method.n_rounds,
            retrain_epochs=method.retrain_epochs,
            random_state=job.seed,
        )
        t0 = time.perf_counter()
        clf.fit(X_train, y_train)
        row["fit_s"] = time.perf_counter() - t0
        test_acc = float(clf.score(X_test, y_test))
    last = clf.pruning_history_[-1] if clf.pruning_history_ else {}
    total = len(clf.estimator_.history)
    dense = int(clf.estimator_.max_epochs)
    rounds = 1 if method.schedule == "oneshot" else method.n_rounds
    row.update(
        importance=method.importance,
        scope=method.scope,
        granularity=method.granularity,
        block_size=method.block_size if method.granularity == "block" else "",
        schedule=method.schedule,
        n_rounds=method.n_rounds,
        retrain_epochs=(total - dense) // rounds,
        total_epochs=total,
        target=job.target,
        sparsity=clf.sparsity_,
        n_params=clf.n_params_,
        n_nonzero=clf.n_nonzero_params_,
        test_acc=test_acc,
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


# --------------------------------------------------------------------------- CSV


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


# --------------------------------------------------------------------------- run


def run_all(
    jobs, csv_path: Path, *, quick: bool, budget_s: float, n_jobs: int, state: str
) -> int:
    """Run the jobs not yet in the CSV, appending a row after each fit.

    No new fit starts once ``budget_s`` seconds have passed; ``--resume`` goes
    on from there. ``state`` (the commit and tree) is written into every row.
    Returns the number of jobs still to do.
    """
    done = {
        row_key(r.dataset, r.seed, r.method, r.target)
        for r in read_rows(csv_path).itertuples()
    }
    todo = [job for job in jobs if job.key not in done]
    print(f"{len(jobs)} fits planned, {len(todo)} to run -> {csv_path}", flush=True)
    t_start = time.perf_counter()

    def record(job, row, n_done):
        row["skprune_git"] = state
        append_row(csv_path, row)
        elapsed = time.perf_counter() - t_start
        sparsity = row["sparsity"]
        print(
            f"[{n_done}/{len(todo)}] {elapsed:7.0f}s {job.dataset} seed {job.seed} "
            f"{job.method} @ {job.target:.2f}: acc={row['test_acc']:.4f} "
            f"sparsity={sparsity if sparsity == '' else format(sparsity, '.4f')} "
            f"fit={row['fit_s']:.1f}s",
            flush=True,
        )

    def over_budget():
        return time.perf_counter() - t_start > budget_s

    n_done = 0
    if n_jobs == 1:
        for job in todo:
            if over_budget():
                break
            n_done += 1
            record(job, run_job(job, quick), n_done)
        return len(todo) - n_done
    # Fresh interpreters, not forks: a fork of a process holding OpenMP state
    # can hang; sys.path (this checkout's skprune, benchmarks/) goes with them.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
        queue = list(todo)
        running = {}
        while queue or running:
            while queue and len(running) < n_jobs and not over_budget():
                job = queue.pop(0)
                running[pool.submit(run_job, job, quick)] = job
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                n_done += 1
                record(running.pop(future), future.result(), n_done)
    return len(todo) - n_done
