"""Execute every notebook in ``notebooks/``; any cell error fails the test.

Each notebook is executed from a copy in a temporary folder, which is also the
kernel's working directory: the committed file is never rewritten. The kernel
imports ``skprune`` from this checkout (its root leads ``PYTHONPATH``), whichever
copy is installed. The kernel is the ``python3`` one; jupyter_client runs it with
the interpreter running the tests. nbformat and nbclient are in the ``test``
extra: without them these tests fail, they are not skipped.
"""

import os
import re
import shutil
from pathlib import Path

import nbclient
import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_notebooks_exist():
    names = {path.name for path in NOTEBOOKS}
    assert {
        "quickstart.ipynb",
        "ratio_search.ipynb",
        "pruned_vs_unpruned.ipynb",
        "what_pruning_removed.ipynb",
    } <= names, names


def test_notebooks_import_only_public_names():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
        private = re.findall(r"skprune(?:\.\w+)*\._(?!_)\w*", source)
        assert not private, f"{path.name} uses private names: {private}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_saved_executed(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name} is not saved executed top to bottom in one run: execution "
        f"counts {counts}"
    )
    errors = [
        output
        for cell in code
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{path.name} is saved with errors"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    # One torch thread in the kernel: the notebooks' nets are small, and on a
    # shared machine torch's spinning threads slow them many times over.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pythonpath = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), pythonpath]))
    )
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # Raises CellExecutionError, with the cell and its traceback, on any error.
    client.execute()
