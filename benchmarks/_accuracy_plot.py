"""The plot of ``accuracy_vs_sparsity.py``: accuracy against the fraction kept."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from _accuracy_runner import (
    BLOCK8,
    BLOCK16,
    GRADUAL,
    ITERATIVE,
    MAGNITUDE,
    METHODS,
    NO_RETRAIN,
)
from _accuracy_tables import _epochs, control_of


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
        ITERATIVE: ("C2", "^", "-"),
        GRADUAL: ("C5", "P", "-"),
        BLOCK8: ("C6", "<", "-"),
        BLOCK16: ("C8", ">", "-"),
    }
    seeds = sorted(set(df.seed))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        d = df[df.dataset == dataset]
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
        ax.set_title(f"{dataset} (mean of seeds {seeds})")
        ax.grid(True, alpha=0.3)
    handles, labels = {}, {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    labels = list(handles)
    fig.legend(
        [handles[k] for k in labels],
        labels,
        loc="lower center",
        ncol=5,
        fontsize=8,
        bbox_to_anchor=(0.5, 0.03),
    )
    fig.suptitle(
        "skprune: test accuracy vs sparsity "
        "(points below an axis: their accuracy printed at its bottom)"
    )
    # The plot names what produced it, as every results file does.
    sources = "; ".join(sorted(str(v) for v in df["skprune_git"].dropna().unique()))
    fig.text(0.5, 0.005, f"skprune: {sources}", ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
