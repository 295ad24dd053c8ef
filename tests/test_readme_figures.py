"""The measured figures of the README and the docs are exactly what the results say.

``benchmarks/readme_figures.py`` writes every measured figure of README.md and of
the documentation pages it lists from ``benchmarks/results/`` into marked
regions; these tests fail when a page and the results disagree (a results file
rerun without regenerating, a figure edited by hand), comparing whole regions,
never substrings. No benchmark runs.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def figures():
    # The generator imports its sibling modules (_provenance, _accuracy_tables)
    # by name, as the benchmark scripts do; the path goes when the module's done.
    before = list(sys.path)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "readme_figures", ROOT / "benchmarks" / "readme_figures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path[:] = before


def test_readme_regions_equal_what_the_results_files_give(figures, capsys):
    assert figures.main(["--check"]) == 0, capsys.readouterr().out


def test_every_figure_is_on_some_page_and_on_each_page_once(figures):
    used = []
    for page in figures.PAGES:
        names = [m["name"] for m in figures.regions(page, page.read_text())]
        assert len(names) == len(set(names)), page
        used += names
    assert sorted(set(used)) == sorted(figures.FIGURES)


def test_the_readme_keeps_the_headline_figures_and_the_docs_hold_them_all(
    figures,
):
    readme = [m["name"] for m in figures.REGION.finditer(README.read_text())]
    assert readme == ["accuracy", "speed", "deploy"]
    docs = [p for p in figures.PAGES if p.suffix == ".rst"]
    assert all(p.is_relative_to(ROOT / "docs") for p in docs)
    on_docs = {m["name"] for p in docs for m in figures.regions(p, p.read_text())}
    # The README's deployment rows are a subset of the docs' "deploy-all".
    assert on_docs | {"deploy"} == set(figures.FIGURES)
    assert "deploy-all" in on_docs


def test_every_table_of_the_readme_outside_the_regions_is_the_module_table(
    figures,
):
    """A measured figure can only enter the README through a written region."""
    outside = figures.REGION.sub("", README.read_text())
    headers = [
        line
        for line, after in itertools.pairwise(outside.splitlines())
        if line.startswith("|") and after.startswith("| ---")
    ]
    assert headers == ["| module | concept |"]


def test_rst_regions_are_written_as_grid_tables_and_literals(figures):
    markdown = (
        "| data | `ratio` | time |\n| --- | ---: | ---: |\n| a | 0.9 | |\n\n"
        "From [`benchmarks/results/x.md`](benchmarks/results/x.md): `cmd`.\n"
    )
    assert figures.to_rst(markdown) == (
        "+------+-----------+------+\n"
        "| data | ``ratio`` | time |\n"
        "+======+===========+======+\n"
        "| a    | 0.9       |      |\n"
        "+------+-----------+------+\n"
        "\n"
        "From ``benchmarks/results/x.md``: ``cmd``.\n\n"
    )


def test_a_figure_changed_by_one_digit_in_a_docs_page_fails_the_check(
    figures, tmp_path, monkeypatch
):
    source = next(p for p in figures.PAGES if p.suffix == ".rst")
    text = source.read_text()
    region = next(figures.regions(source, text))
    body = region["body"]
    digit = next(i for i, c in enumerate(body) if c.isdigit())
    changed = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1 :]
    page = tmp_path / source.name
    monkeypatch.setattr(figures, "PAGES", (page,))
    page.write_text(text)
    assert figures.main(["--check"]) == 0  # the copy itself passes
    page.write_text(text[: region.start("body")] + changed + text[region.end("body") :])
    assert figures.main(["--check"]) == 1


def test_a_figure_changed_by_one_digit_inside_a_region_fails_the_check(
    figures, tmp_path, monkeypatch
):
    text = (ROOT / "README.md").read_text()
    region = next(figures.REGION.finditer(text))
    body = region["body"]
    digit = next(i for i, c in enumerate(body) if c.isdigit())
    changed = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1 :]
    page = tmp_path / "README.md"
    monkeypatch.setattr(figures, "PAGES", (page,))
    page.write_text(text)
    assert figures.main(["--check"]) == 0  # the copy itself passes
    edited = text[: region.start("body")] + changed + text[region.end("body") :]
    page.write_text(edited)
    assert figures.main(["--check"]) == 1
    assert page.read_text() == edited  # --check writes nothing


def test_a_region_with_extra_text_after_the_generated_part_fails_the_check(
    figures, tmp_path, monkeypatch
):
    """Exact comparison: the generated text plus anything else is not the same."""
    text = (ROOT / "README.md").read_text()
    end = next(figures.REGION.finditer(text)).end("body")
    page = tmp_path / "README.md"
    page.write_text(text[:end] + "Also 99.9% everywhere.\n" + text[end:])
    monkeypatch.setattr(figures, "PAGES", (page,))
    assert figures.main(["--check"]) == 1


def test_an_unknown_region_name_is_refused(figures):
    with pytest.raises(SystemExit, match="unknown figure regions: nosuch"):
        figures.render("<!-- figures:nosuch -->\nx\n<!-- /figures:nosuch -->\n")


def test_speed_table_sets_whole_fits_of_equal_epochs_against_skprunes(figures):
    data = {
        "fit_epochs": 5,
        "sizes": {"main": [20000, 100000, 0.001]},
        "fits": {"main": {"skprune_fit": 4.0, "mlpclassifier_fit": 40.0}},
        "rows": [
            {"size": "main", "path": "skprune", "seconds": 0.5},
            {"size": "main", "path": "skprune_masked", "seconds": 0.75},
        ],
    }
    table = figures._whole_fit_table(data)
    assert (
        "| 20,000 x 100,000 at 0.10% | 4.0 s | 40.0 s (10.0x) | not run |"
        in table.splitlines()
    )
    assert "MLPClassifier(max_iter=5)" in table.splitlines()[0]
    assert "took 1.50x the unmasked epoch" in table


def test_example_figures_come_from_the_examples_file_once_it_exists(
    figures, tmp_path, monkeypatch
):
    rec = {
        "command": "python benchmarks/readme_examples.py",
        "commit": "abc",
        "dirty": False,
        "cpu": "CPU",
        "cores": 2,
        "torch": "2.x",
        "torch_threads": 1,
        "load_before": [0.5, 0.5, 0.5],
        "load_after": [1.0, 1.0, 1.0],
        "date": "2026-12-01T00:00:00+00:00",
    }
    data = {
        "file_sizes": {
            "data": "make_text_classification(2000, 20000, random_state=0)",
            "n_params": 5_120_000,
            "bytes": {
                "skprune_save": 3 * 2**20,
                "skprune_save_with_optimizer": 9 * 2**20,
                "pickle": 72 * 2**20,
            },
        },
        "regression": {"r2": 0.9634, "sparsity": 0.9},
        "provenance": rec,
    }
    (tmp_path / "readme_examples.json").write_text(json.dumps(data))
    monkeypatch.setattr(figures, "RESULTS", tmp_path)
    monkeypatch.setattr(figures, "_link", lambda path: path.name)
    sizes = figures.file_sizes()
    assert (
        "saves to 3.00 MiB (9.00 MiB with the optimizer state), against 72.00" in sizes
    )
    assert "commit `abc`, clean tree" in sizes
    assert "load average 0.5, 0.5, 0.5 before, 1.0, 1.0, 1.0 after" in sizes
    assert "held-out R^2: 0.963, at `sparsity_` 0.90." in figures.regression_r2()
