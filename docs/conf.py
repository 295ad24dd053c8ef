"""Sphinx configuration of skprune's documentation site.

Build offline, warnings as errors (what ``.ci/run`` does)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing here reaches the network: no intersphinx, no remote assets; the
gallery's data come from skprune's generator or scikit-learn's bundled sets.
"""

import os
import sys
from pathlib import Path

# The worktree's skprune, not an installed one, whatever the working directory.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Gallery scripts run in this process: draw without a display.
os.environ.setdefault("MPLBACKEND", "agg")

import skprune  # noqa: E402

project = "skprune"
author = "skprune developers"
copyright = "skprune developers, BSD-3-Clause"
release = skprune.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build"]
root_doc = "index"

# --------------------------------------------------------------- API reference
autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
# The ``Attributes`` and ``Methods`` tables come from numpydoc; autodoc's member
# listing comes from the class template: one listing, no duplicate objects.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# ----------------------------------------------------------------- the gallery
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",  # every plot_*.py script runs at build time
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "plot_gallery": "True",
    "abort_on_example_error": True,
    "min_reported_time": 1,
    # No links to other projects' documentation: that would need the network.
    "reference_url": {},
    "matplotlib_animations": False,
}

# ---------------------------------------------------------------------- theme
html_theme = "pydata_sphinx_theme"
html_title = f"skprune {release}"
html_static_path = []
html_theme_options = {
    # Offline: no icon links, no version switcher fetched from a server.
    "icon_links": [],
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "show_prev_next": True,
    "navigation_with_keys": False,
}
html_show_sourcelink = False
html_copy_source = False
