"""Run every example notebook top to bottom with nbclient and fail on any cell error.

Each notebook runs in a fresh python3 kernel whose working directory is a
temporary folder, so a notebook that writes a file by mistake writes it
there. The timeout is per cell; the notebooks are sized to run in about a
minute each on a 2-core laptop CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_FOLDER.glob("*.ipynb"))
# Seconds one cell may run. The slowest cell takes tens of seconds alone;
# the margin covers a CI machine shared with other jobs.
CELL_TIMEOUT = 600


def test_notebooks_found():
    assert len(NOTEBOOKS) == 4


def test_notebooks_stripped():
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(cell.outputs == [] for cell in code_cells), f"{path.name} has outputs"
        assert all(cell.execution_count is None for cell in code_cells), f"{path.name} has execution counts"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []
    assert list(tmp_path.iterdir()) == []
