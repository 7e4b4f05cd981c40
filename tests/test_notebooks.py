"""Every notebook runs top to bottom with small parameters (papermill), then nbval
re-executes the result and compares the cells marked ``# NBVAL_CHECK_OUTPUT``.

Parameters that shrink each notebook live in SMALL; a notebook without an entry runs with
its own defaults (which must then be small).
"""

import subprocess
import sys
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SMALL = {
    "00_quickstart": {"ROUNDS": 2, "SIZE": 32, "N_IMAGES": 24, "WIDTH": 4},
    "01_data_and_sites": {"N_IMAGES": 12},
    "02_model_zoo": {"SIZE": 64},
    "04_training_strategies": {"ROUNDS": 1, "SIZE": 32, "N_IMAGES": 24, "WIDTH": 4},
    "06_evaluation_and_comparison": {"MODELS": ["unet"], "DATASETS": ["kvasir"], "ROUNDS": 1,
                                     "SIZE": 32, "N_IMAGES": 16, "SITES": 2, "WIDTH": 4,
                                     "WORST": 2},
}


def test_there_are_notebooks():
    assert any(p.stem == "00_quickstart" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_checked_outputs_match(path, tmp_path):
    out = tmp_path / path.name
    pm.execute_notebook(str(path), str(out), parameters=SMALL.get(path.stem, {}),
                        cwd=str(path.parent), kernel_name="python3", progress_bar=False)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax",
                          "-p", "no:cacheprovider", str(out)],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
