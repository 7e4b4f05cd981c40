"""Notebook 01 follows the notebook rules (its execution is checked by papermill in CI)."""

from pathlib import Path

import nbformat
import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks" / "01_data_and_sites.ipynb"


@pytest.fixture(scope="module")
def nb():
    return nbformat.read(NB, as_version=4)


def test_no_outputs_and_kernel(nb):
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


def test_parameters_cell_first_and_cells_short(nb):
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    for knob in ("N_IMAGES", "SIZE", "NUM_SITES", "SEED"):
        assert f"{knob} =" in code[0].source
    for c in code:
        lines = [ln for ln in c.source.splitlines() if ln.strip() and not ln.strip()
                 .startswith("#")]
        assert len(lines) <= 15, c.source[:80]
