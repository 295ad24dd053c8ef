"""Execute every notebook in ``notebooks/``; any cell error fails the test.

Each notebook is executed from a copy in a temporary folder, which is also the
kernel's working directory: the committed file is never rewritten, and the
notebook must import ``skprune`` as an installed package (``pip install -e .``),
not from a path. The kernel is the ``python3`` one; jupyter_client runs it with
the interpreter running the tests.
"""

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


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
def test_notebook_runs(path, tmp_path):
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
