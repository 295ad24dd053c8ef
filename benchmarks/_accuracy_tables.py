"""The tables of ``accuracy_vs_sparsity.py``: its markdown report and the README's.

Everything here reads the CSV of fits (``_accuracy_runner``), nothing fits.
:func:`readme_table` is the accuracy table of the README, written there by
``benchmarks/readme_figures.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from _accuracy_runner import (
    BARS,
    COMPARE,
    GRADUAL,
    HIGH,
    ITERATIVE,
    LR_REFERENCE,
    MAGNITUDE,
    METHODS,
    NO_RETRAIN,
    QUICK_EPOCHS,
    QUICK_ROWS,
)

# The README table's rows: (method label, its name there).
TABLE_METHODS = (MAGNITUDE, ITERATIVE, GRADUAL, "random", NO_RETRAIN)
TABLE_NAMES = {
    MAGNITUDE: "**default**: magnitude, global, one-shot",
    ITERATIVE: "magnitude, iterative x3",
    GRADUAL: "magnitude, gradual x8",
    "random": "random (the control method)",
    NO_RETRAIN: "magnitude, no retraining",
}
DATASET_NAMES = {
    "20newsgroups": "20 Newsgroups",
    "reuters_r8": "Reuters R8",
    "mnist5k": "MNIST-5k, 300-100 net",
}


def readme_table(df: pd.DataFrame, datasets) -> str:
    """The README's accuracy table: per dataset and method, control and 90-98%.

    Cells are mean test accuracy in % over the seeds, ± half their range, with
    the number of seeds where it differs from the table's most common count.
    """
    header = [
        "data (prunable weights)",
        "method (epochs)",
        "control",
        "90% pruned",
        "95%",
        "98%",
    ]
    rows = []
    counts = df[df.kind == "pruned"].groupby(["dataset", "method", "target"]).size()
    usual = int(counts.mode().iloc[0]) if len(counts) else 0

    def cell_n(values):
        text = cell(values)
        n = len(values.dropna())
        return text if not text or n == usual else f"{text} (n={n})"

    for dataset in datasets:
        d = df[df.dataset == dataset]
        first = True
        for method in TABLE_METHODS:
            m = d[(d.method == method) & (d.kind == "pruned")]
            if m.empty:
                continue
            name = DATASET_NAMES.get(dataset, dataset)
            label = ""
            if first:
                label = (
                    f"{name} ({m.n_params.iloc[0] / 1e6:.1f}M)"
                    if m.n_params.iloc[0] >= 1e6
                    else f"{name} ({m.n_params.iloc[0] / 1e3:.0f}K)"
                )
            first = False
            row = [label, f"{TABLE_NAMES[method]} ({_epochs(d, method)})"]
            row.append(cell_n(control_of(d, method).test_acc))
            row += [cell_n(m[np.isclose(m.target, t)].test_acc) for t in HIGH]
            rows.append(row)
    lines = [header, ["---", "---"] + ["---:"] * 4, *rows]
    text = "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)
    seeds = f"{usual} seed" + ("s" if usual != 1 else "")
    return text + (
        f"\n\nTest accuracy in %, mean over {seeds} a cell (n= where a cell has "
        "another count), ± half the range over the seeds; epochs in brackets."
    )


def readme_baselines(df: pd.DataFrame, datasets) -> str:
    """The logistic-regression sentence under the README's table."""
    parts = []
    for dataset in datasets:
        d = df[df.dataset == dataset]
        lr = [d[d.method == f"LogisticRegression(C={c})"].test_acc for c in (1, 10)]
        if all(len(x) for x in lr):
            parts.append(
                f"{DATASET_NAMES.get(dataset, dataset)} {pct(lr[0].mean())} / "
                f"{pct(lr[1].mean())}"
            )
    if not parts:
        return ""
    return (
        "`LogisticRegression(max_iter=1000)` on the same features, C=1 / C=10: "
        + ", ".join(parts)
        + "."
    )


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
    d = df[df.dataset == dataset]
    seeds = sorted(set(d[d.kind == "pruned"].seed))
    out = [f"## {dataset}", ""]
    pruned = d[d.kind == "pruned"]
    if pruned.empty:
        return [*out, "(no pruned fits yet)", ""]
    first = pruned.iloc[0]
    out.append(
        f"{int(first.n_params):,} prunable weights (every layer but the output "
        f"layer). Test accuracy in %, mean over the seeds that ran ({seeds}), "
        "± half their range; the 0 column is the unpruned control trained for "
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
    return "Wall time of the run(s) that wrote the CSV: " + ", ".join(runs) + "."


def provenance_lines(runs: list[dict]) -> list[str]:
    """One line per recorded run (``<stem>.json``): commit, tree, machine, load."""
    import _provenance

    if not runs:
        return ["No run's provenance is recorded (no `.json` beside the CSV)."]
    return [
        f"- run {i}: {_provenance.summary(rec)}; `{rec['command']}`, "
        f"{rec.get('wall_min', '?')} min, {rec.get('fits_left', '?')} fits left"
        for i, rec in enumerate(runs, 1)
    ]


def write_report(df: pd.DataFrame, path: Path, meta: dict, datasets) -> list[str]:
    out = [
        "# Accuracy vs sparsity",
        "",
        f"Written by `{meta['command']}`. Every fit on one torch and BLAS "
        f"thread; skprune at {git_text(df)}. Sum of fit times "
        f"{df.fit_s.sum() / 60:.1f} min over {len(df)} fits. " + timing_text(df, meta),
        "",
        "Runs that wrote the CSV:",
        "",
        *provenance_lines(meta["runs"]),
        "",
        setup_paragraph(df, meta["quick"]),
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


def setup_paragraph(df: pd.DataFrame, quick: bool) -> str:
    epochs = "; ".join(
        f"{dataset}: " + ", ".join(f"{m} {_epochs(d, m)}" for m in TABLE_METHODS)
        for dataset, d in df.groupby("dataset")
    )
    text = (
        "Text: `PrunedClassifier()`'s default net (TF-IDF -> 256 ReLU units, "
        "dropout 0.5 -> classes; LazyAdam lr 1e-3, batch 64; one prunable "
        "layer; dense epochs from its training budget). MNIST-5k: the same with "
        "hidden layers (300, 100) (two prunable layers, 6 dense epochs). Epochs "
        f"of a fit, pruned or its control: {epochs}. Gradual x8 retrains 1 epoch "
        "per step. `random_state` = seed; with the same seed every fit shares "
        "its dense phase."
    )
    if quick:
        text += (
            f" **Quick smoke run: {QUICK_EPOCHS} dense epochs on "
            f"{QUICK_ROWS[0]} training rows, not a benchmark.**"
        )
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
        "the honest measure. Means over the seeds.",
        "",
    ]
    rows = []
    for dataset in datasets:
        d = df[df.dataset == dataset]
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
