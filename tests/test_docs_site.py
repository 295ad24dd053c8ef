"""The documentation site's promises that hold without building it.

The user guide's ``>>>`` examples run here as doctests, with their checked
output; the gallery reads only data that ship with skprune or scikit-learn;
the ``docs`` extra names every package the build needs, so a missing one fails
the install instead of being skipped. The build itself (warnings as errors,
the gallery executed) is ``.ci/run``'s last step.
"""

from __future__ import annotations

import configparser
import doctest
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDE_PAGES = sorted(
    p.name for p in (DOCS / "user_guide").glob("*.rst") if ">>>" in p.read_text()
)


def test_the_user_guide_has_doctested_pages():
    assert len(GUIDE_PAGES) >= 6, GUIDE_PAGES


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_user_guide_examples_give_their_printed_output(page):
    result = doctest.testfile(
        str(DOCS / "user_guide" / page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        raise_on_error=False,
        report=True,
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} failed"


GALLERY = sorted((DOCS / "examples").glob("plot_*.py"))


def test_the_gallery_has_its_scripts():
    names = {p.stem for p in GALLERY}
    assert {
        "plot_sparsity_curve",
        "plot_pruning_report",
        "plot_text_pipeline",
        "plot_choose_ratio",
        "plot_granularity",
        "plot_save_load_trust",
    } <= names


@pytest.mark.parametrize("script", GALLERY, ids=lambda p: p.stem)
def test_gallery_scripts_download_nothing(script):
    code = script.read_text()
    assert not re.search(r"\bfetch_\w+|https?://|urlopen|requests\b", code)
    loads = re.findall(r"\b(make_text_classification|load_\w+)\(", code)
    assert loads, "every script reads skprune's generator or a bundled set"
    assert set(loads) <= {"make_text_classification", "load_digits", "load_iris"}


def test_the_site_is_configured_offline():
    conf = (DOCS / "conf.py").read_text()
    assert "sphinx.ext.intersphinx" not in conf
    assert not re.search(r"https?://", conf)


def test_docs_extra_names_every_package_the_build_imports():
    cfg = configparser.ConfigParser()
    cfg.read(DOCS.parent / "setup.cfg")
    extra = cfg["options.extras_require"]["docs"].split()
    names = {re.split(r"[<>=!\[]", req)[0] for req in extra}
    assert {
        "sphinx",
        "numpydoc",
        "sphinx-gallery",
        "pydata-sphinx-theme",
        "matplotlib",
    } <= names
    assert all(re.search(r">=", req) for req in extra), "ranges, not bare names"
