"""Write the measured figures of the README and the docs from the results files.

Every measured figure of ``README.md`` lies between a pair of markers::

    <!-- figures:NAME -->
    ... written by this script ...
    <!-- /figures:NAME -->

and every one of the documentation site's pages listed in ``PAGES`` between a
pair of reStructuredText comments, the same figure written as reStructuredText
(tables as grid tables)::

    .. figures:NAME

    ... written by this script ...

    .. /figures:NAME

and is written here from a file under ``benchmarks/results/``, with the command
that reproduces it and the provenance the file records (commit, tree, machine,
load) beside it. Run from anywhere::

    python benchmarks/readme_figures.py            # rewrite the regions
    python benchmarks/readme_figures.py --check    # exit 1 if a page differs

``--check`` compares each region exactly (``tests/test_readme_figures.py`` runs
it), so a results file rerun without regenerating the README, or a README figure
edited by hand, fails. A figure may appear on several pages; each page holds
it once. Nothing here runs a benchmark.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _provenance  # noqa: E402

RESULTS = _provenance.RESULTS
ROOT = _provenance.ROOT
DOCS = ROOT / "docs"
# The README keeps the headline figures; the site holds every one.
PAGES = (
    ROOT / "README.md",
    DOCS / "benchmarks.rst",
    DOCS / "user_guide" / "pruning.rst",
    DOCS / "user_guide" / "sparse.rst",
    DOCS / "user_guide" / "prune_ratio.rst",
    DOCS / "user_guide" / "persistence.rst",
    DOCS / "user_guide" / "compression.rst",
    DOCS / "user_guide" / "onnx.rst",
)
REGION = re.compile(
    r"(<!-- figures:(?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)"
    r"(<!-- /figures:(?P=name) -->)",
    re.S,
)
RST_REGION = re.compile(
    r"(^\.\. figures:(?P<name>[a-z0-9_-]+)\n\n)(?P<body>.*?)"
    r"(^\.\. /figures:(?P=name)$)",
    re.S | re.M,
)


# --------------------------------------------------------------------- reading


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _link(path: Path) -> str:
    return f"[`{_rel(path)}`]({_rel(path)})"


def md_tables(path: Path) -> list[str]:
    """The markdown tables of a results file, verbatim, in order."""
    tables, current = [], []
    for line in path.read_text().splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current))
            current = []
    return tables


def md_rows(table: str) -> list[dict]:
    """A markdown table's rows as dicts from its header (cells stripped)."""
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def md_provenance(path: Path) -> str:
    """What a markdown results file says of where its numbers come from.

    The lines ``_provenance.header`` writes (commit, machine, load), or an
    older file's own "Commit ..." / "Written by ..." sentence; and a plain
    statement where it records none.
    """
    keep = []
    for line in path.read_text().splitlines():
        if line.startswith(
            ("Commit ", "Machine:", "Written by", "**DIRTY", "**The checkout")
        ):
            keep.append(line.strip())
    if not keep:
        return f"{_link(path)} records no commit, tree state, machine or load."
    return f"From {_link(path)}: " + " ".join(keep)


def json_provenance(path: Path, data: dict) -> str:
    """A JSON results file's provenance record, in one line."""
    rec = data.get("provenance")
    if rec:
        return f"From {_link(path)}: {_provenance.summary(rec)}."
    parts = []
    if "commit" in data:
        parts.append(
            f"commit `{data['commit']}`, "
            + ("DIRTY tree" if data.get("dirty") else "clean tree")
        )
    return (
        f"From {_link(path)}: "
        + (", ".join(parts) + "; " if parts else "")
        + "machine and load not recorded in the file."
    )


def _with(body: str, command: str, provenance: str) -> str:
    return f"{body}\n\nReproduce: `{command}`. {provenance}\n"


# --------------------------------------------------------------------- figures


def accuracy() -> str:
    """The headline accuracy table, from the accuracy CSV and its runs."""
    from _accuracy_runner import ALL_DATASETS
    from _accuracy_tables import readme_baselines, readme_table

    csv_path = RESULTS / "accuracy_vs_sparsity.csv"
    df = pd.read_csv(csv_path)
    datasets = [d for d in ALL_DATASETS if (df.dataset == d).any()]
    body = readme_table(df, datasets) + "\n\n" + readme_baselines(df, datasets)
    meta = RESULTS / "accuracy_vs_sparsity.json"
    if meta.exists():
        runs = json.loads(meta.read_text())["runs"]
        provenance = f"From {_link(csv_path)}, runs: " + "; ".join(
            _provenance.summary(r) for r in runs
        )
        if runs and runs[-1].get("fits_left"):
            provenance += (
                f". **Incomplete: {runs[-1]['fits_left']} fits of the grid not run "
                "yet** (`--resume` goes on)"
            )
        provenance += "."
    else:
        counts = df.skprune_git.fillna("state not recorded").value_counts()
        provenance = (
            f"From {_link(csv_path)}, **not reproducible from a commit**: "
            + "; ".join(f"{state} ({n} fits)" for state, n in counts.items())
            + "; no record of the machine or its load. These are the first round's "
            "fits: they predate the default net's training budget and the faster "
            "mask selection, and most cells are one seed."
        )
    return _with(body, "python benchmarks/accuracy_vs_sparsity.py --jobs 2", provenance)


def accuracy_gaps() -> str:
    """Best method at 95% and 98% against its own control, per dataset."""
    from _accuracy_runner import ALL_DATASETS
    from _accuracy_tables import best_at, pct

    csv_path = RESULTS / "accuracy_vs_sparsity.csv"
    df = pd.read_csv(csv_path)
    rows = ["| data | sparsity | best method | accuracy | its control | gap | seeds |"]
    rows.append("| --- | ---: | --- | ---: | ---: | ---: | --- |")
    for dataset in ALL_DATASETS:
        for target in (0.95, 0.98):
            best = best_at(df, dataset, target)
            if best is None:
                continue
            method, acc, ctrl, seeds = best
            rows.append(
                f"| {dataset} | {target:g} | {method} | {pct(acc)} | {pct(ctrl)} | "
                f"{100 * (ctrl - acc):+.2f} | {','.join(map(str, seeds))} |"
            )
    body = "\n".join(rows) + (
        "\n\nBest = highest test accuracy on the first seed (pruning without "
        "retraining left out); accuracies and gap (control - method, points) are "
        "means over the seeds listed."
    )
    return _with(
        body,
        "python benchmarks/accuracy_vs_sparsity.py --report-only",
        f"From {_link(csv_path)}, as the table above.",
    )


def retraining() -> str:
    path = RESULTS / "retraining_budget.md"
    return _with(
        md_tables(path)[0],
        "python benchmarks/retraining_budget.py",
        md_provenance(path),
    )


def digits() -> str:
    """The default net on scikit-learn's digits, test split."""
    path = RESULTS / "small_dense.md"
    test = {r["model (test split)"]: r for r in md_rows(md_tables(path)[1])}

    def acc(name):
        return f"{100 * float(test[name]['accuracy']):.2f}%"

    body = (
        f"On the digits' test split the default reaches "
        f"{acc('PrunedClassifier(), unpruned')} unpruned and "
        f"{acc('PrunedClassifier(prune_ratio=0.9)')} at `prune_ratio=0.9`, against "
        f"{acc('MLPClassifier((256,))')} for `MLPClassifier((256,))` and "
        f"{acc('LogisticRegression')} for `LogisticRegression`."
    )
    return _with(body, "python benchmarks/small_dense.py", md_provenance(path))


def speed() -> str:
    """Seconds per epoch and per fit on the sparse matrices, as measured."""
    path = RESULTS / "sparse_training.json"
    data = json.loads(path.read_text())
    if "fits" in data:  # the like-for-like run: whole fits, equal epochs
        return _with(
            _whole_fit_table(data),
            "python benchmarks/sparse_training.py",
            json_provenance(path, data),
        )
    by = {(e["size"], e["path"]): e for e in data["epochs"]}
    sizes = [s for s in ("main", "half_nnz", "wide") if (s, "skprune") in by]
    rows = [
        "| matrix (stored values) | skprune epoch | skprune epoch, 90% masked | "
        "MLPClassifier, whole 1-epoch fit | skorch default epoch |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for size in sizes:

        def sec(path_name, size=size):
            e = by.get((size, path_name))
            return f"{e['epoch_s']:.2f} s" if e else "not run"

        rows.append(
            f"| {size} ({by[size, 'skprune']['nnz'] / 1e6:.1f}M) | {sec('skprune')} | "
            f"{sec('skprune_masked')} | {sec('mlpclassifier')} | {sec('skorch')} |"
        )
    body = "\n".join(rows) + (
        "\n\nThese are the last run's raw figures, not a comparison: "
        "MLPClassifier's column is a whole one-epoch fit, the others a bare "
        "epoch. `main` is 20,000 x 100,000 at 0.1%, `half_nnz` the same at "
        "0.05%, `wide` 20,000 x 1,000,000 at 0.01%. The like-for-like "
        "comparison (whole fits, equal epochs) is what the command below now "
        "measures; it has not been run yet."
    )
    return _with(
        body,
        "python benchmarks/sparse_training.py",
        md_provenance(RESULTS / "sparse_training.md"),
    )


def _whole_fit_table(data: dict) -> str:
    """Whole fits of equal epochs, and each contestant's over skprune's."""
    rows = [
        f"| matrix | skprune fit | MLPClassifier(max_iter={data['fit_epochs']}) "
        f"| skorch, {data['fit_epochs']} epochs |",
        "| --- | ---: | ---: | ---: |",
    ]
    for size, fits in data["fits"].items():
        n, d, density = data["sizes"][size]
        base = fits["skprune_fit"]

        def cell(name, fits=fits, base=base):
            if name not in fits:
                return "not run"
            return f"{fits[name]:.1f} s ({fits[name] / base:.1f}x)"

        rows.append(
            f"| {n:,} x {d:,} at {density:.2%} | {base:.1f} s | "
            f"{cell('mlpclassifier_fit')} | {cell('skorch_fit')} |"
        )
    masked = {
        r["size"]: r["seconds"] for r in data["rows"] if r["path"] == "skprune_masked"
    }
    dense = {r["size"]: r["seconds"] for r in data["rows"] if r["path"] == "skprune"}
    text = "\n".join(rows) + (
        f"\n\nWhole fits of {data['fit_epochs']} epochs each, timed from the call "
        "to `fit` to its return (skprune: 3 dense + 2 retraining epochs at "
        "`prune_ratio=0.9`); in brackets, the time over skprune's."
    )
    if "main" in masked and "main" in dense:
        text += (
            " Retraining with 90% of the weights masked took "
            f"{masked['main'] / dense['main']:.2f}x the unmasked epoch on the "
            "20,000 x 100,000 matrix."
        )
    return text


def prediction() -> str:
    path = RESULTS / "sparse_training_prediction.md"
    return _with(
        md_tables(path)[0],
        "python benchmarks/sparse_training.py --prediction-only",
        md_provenance(path),
    )


def hashing() -> str:
    """Fixed costs and peak memory on 2^20 features: the last run and the one before."""
    now_path, before_path = (
        RESULTS / "hashing_scale.md",
        RESULTS / "hashing_scale_before.md",
    )
    rows = [
        "| prune_ratio | run | fit s | epoch s | outside epochs s | outside / epoch "
        "| peak / weights |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, path in (("before", before_path), ("now", now_path)):
        for r in md_rows(md_tables(path)[0]):
            epoch = r.get("median epoch s", r.get("epoch s"))
            rows.append(
                f"| {r['prune_ratio']} | {label} | {r['fit s']} | {epoch} | "
                f"{r['outside epochs s']} | {r['outside / epoch']} | "
                f"{r['peak / weights']} |"
            )
    body = "\n".join(rows)
    provenance = f"{md_provenance(before_path)} {md_provenance(now_path)}"
    return _with(body, "python benchmarks/hashing_scale.py", provenance)


def ratio_search() -> str:
    path = RESULTS / "ratio_search.md"
    text = path.read_text()
    cost = next(line for line in text.splitlines() if line.startswith("**Cost ratio"))
    body = md_tables(path)[0] + "\n\n" + cost
    return _with(body, "python benchmarks/ratio_search.py", md_provenance(path))


def _deploy_sections(path: Path) -> list[tuple[str, str, str]]:
    """(dataset, table, verdict line) of each dataset section of deploy.md."""
    sections = []
    for part in path.read_text().split("\n## ")[1:]:
        name = part.splitlines()[0].strip()
        table = "\n".join(line for line in part.splitlines() if line.startswith("|"))
        verdict = next(
            line
            for line in part.splitlines()
            if line.startswith(("Smallest compressed", "No compressed"))
        )
        sections.append((name, table, verdict))
    return sections


#: The README's rows of the deployment table: the usual choices, the pruned
#: estimator, and its compressed forms at the ratios the bars name.
DEPLOY_HEADLINE = (
    "LogisticRegression(C=10)",
    "SGDClassifier()",
    "MLPClassifier((256,), max_iter=10)",
    "PrunedClassifier('weight', 0.9)",
    "PrunedClassifier('weight', 0.9).compress()",
    "PrunedClassifier('weight', 0.9).compress(dtype='int8')",
    "PrunedClassifier('weight', 0.95).compress(dtype='int8')",
    "PrunedClassifier('block', 0.95).compress(dtype='int8')",
    "PrunedClassifier('neuron', 0.9).compress()",
    "PrunedClassifier('feature', 0.95).compress(dtype='int8')",
)


def _deploy(headline: bool) -> str:
    path = RESULTS / "deploy.md"
    parts = []
    for name, table, verdict in _deploy_sections(path):
        lines = table.splitlines()
        if headline:
            keep = [
                line
                for line in lines[2:]
                if line.split("|")[1].strip() in DEPLOY_HEADLINE
            ]
            lines = lines[:2] + keep
        parts.append(f"**{name}**\n\n" + "\n".join(lines) + f"\n\n{verdict}")
    body = "\n\n".join(parts)
    return _with(body, "python benchmarks/deploy.py", md_provenance(path))


def deploy() -> str:
    """The deployment table, headline rows (the documentation has every row)."""
    return _deploy(headline=True)


def deploy_all() -> str:
    """The deployment table, every row."""
    return _deploy(headline=False)


def onnx_export() -> str:
    path = RESULTS / "onnx_export.md"
    text = path.read_text()
    intro = next(line for line in text.splitlines() if "TF-IDF features" in line)
    body = intro + "\n\n" + md_tables(path)[0]
    return _with(body, "python benchmarks/onnx_export.py", md_provenance(path))


def _examples() -> tuple[Path, dict | None]:
    path = RESULTS / "readme_examples.json"
    return path, json.loads(path.read_text()) if path.exists() else None


def file_sizes() -> str:
    """Saved-file sizes of a 90%-pruned default model, or that none is measured."""
    path, data = _examples()
    command = "python benchmarks/readme_examples.py"
    if data is None:
        return f"No results file measures the saved-file sizes yet: `{command}` does.\n"
    sizes = data["file_sizes"]
    mib = {k: v / 2**20 for k, v in sizes["bytes"].items()}
    body = (
        f"A 90%-pruned default model on `{sizes['data']}` "
        f"({sizes['n_params']:,} prunable weights) saves to "
        f"{mib['skprune_save']:.2f} MiB ({mib['skprune_save_with_optimizer']:.2f} "
        f"MiB with the optimizer state), against {mib['pickle']:.2f} MiB pickled."
    )
    return _with(body, command, json_provenance(path, data))


def regression_r2() -> str:
    """The regression example's held-out R^2, or that none is measured."""
    path, data = _examples()
    command = "python benchmarks/readme_examples.py"
    if data is None:
        return f"No results file records the example's R^2 yet: `{command}` does.\n"
    r = data["regression"]
    body = (
        f"The example's held-out R^2: {r['r2']:.3f}, at `sparsity_` "
        f"{r['sparsity']:.2f}."
    )
    return _with(body, command, json_provenance(path, data))


FIGURES: dict[str, Callable[[], str]] = {
    "file-sizes": file_sizes,
    "regression": regression_r2,
    "accuracy": accuracy,
    "accuracy-gaps": accuracy_gaps,
    "retraining": retraining,
    "digits": digits,
    "speed": speed,
    "prediction": prediction,
    "hashing": hashing,
    "ratio-search": ratio_search,
    "deploy": deploy,
    "deploy-all": deploy_all,
    "onnx-export": onnx_export,
}


# ------------------------------------------------------------ reStructuredText

MD_LINK = re.compile(r"\[`([^`]+)`\]\([^)]+\)")
MD_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")


def rst_inline(text: str) -> str:
    """Markdown's inline code and links to files, as reStructuredText literals.

    A link to a results file becomes its path as a literal: the site does not
    serve ``benchmarks/``.
    """
    return MD_CODE.sub(r"``\1``", MD_LINK.sub(r"`\1`", text))


def rst_table(lines: list[str]) -> str:
    """A markdown table (header, alignment row, rows) as a grid table."""
    rows = [
        [rst_inline(c.strip()) for c in line.strip().strip("|").split("|")]
        for i, line in enumerate(lines)
        if i != 1
    ]
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]

    def rule(char: str) -> str:
        return "+" + "+".join(char * (w + 2) for w in widths) + "+"

    def line(row: list[str]) -> str:
        return (
            "|"
            + "|".join(f" {c.ljust(w)} " for c, w in zip(row, widths, strict=True))
            + "|"
        )

    out = [rule("-"), line(rows[0]), rule("=")]
    for row in rows[1:]:
        out += [line(row), rule("-")]
    return "\n".join(out)


def to_rst(markdown: str) -> str:
    """A figure's markdown (paragraphs and pipe tables) as reStructuredText."""
    out, table = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            out.append(rst_table(table))
            table = []
        out.append(rst_inline(line))
    return "\n".join(out).rstrip("\n") + "\n\n"


# --------------------------------------------------------------------- regions


def regions(page: Path, text: str):
    """The figure regions of a page, in the page's own markup."""
    return (RST_REGION if page.suffix == ".rst" else REGION).finditer(text)


def render(text: str, page: Path = ROOT / "README.md") -> str:
    """``text`` with every region's body replaced by what its figure writes."""
    rst = page.suffix == ".rst"
    names = [m["name"] for m in regions(page, text)]
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise SystemExit(f"unknown figure regions: {', '.join(unknown)}")

    def body(match: re.Match) -> str:
        figure = FIGURES[match["name"]]()
        return match[1] + (to_rst(figure) if rst else figure) + match[4]

    return (RST_REGION if rst else REGION).sub(body, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a page differs; write nothing"
    )
    args = parser.parse_args(argv)
    status = 0
    for page in PAGES:
        old = page.read_text()
        new = render(old, page)
        if new == old:
            continue
        if args.check:
            status = 1
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), str(page), "generated"
                )
            )
        else:
            page.write_text(new)
            print(f"rewrote the figures of {page}")
    if args.check and status:
        print(
            "\nFigures differ from the results: run python benchmarks/readme_figures.py"
        )
    return status


if __name__ == "__main__":
    raise SystemExit(main())
