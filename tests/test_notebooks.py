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
    "00_quickstart": {"ROUNDS": 1, "SEEDS": [0], "SIZE": 32, "N_IMAGES": 24, "WIDTH": 4,
                      "CHECK_CLAIMS": False},
    "01_data_and_sites": {"N_IMAGES": 12, "CHECK_CLAIMS": False},
    "02_model_zoo": {"SIZE": 32, "DIAGRAMS": False, "CHECK_CLAIMS": False},
    "03_the_cut": {"SIZE": 32, "N_IMAGES": 24, "CHECK_CLAIMS": False},
    "04_training_strategies": {"ROUNDS": 1, "SEEDS": [0], "SIZE": 32, "N_IMAGES": 24,
                               "WIDTH": 4, "MONITOR_ROUNDS": 1, "CHECK_CLAIMS": False},
    "05_non_iid_sites": {"PARTITIONS": ["iid", "quantity", "acquisition"], "SEEDS": [0],
                         "ROUNDS": 1, "SIZE": 32, "N_IMAGES": 40, "WIDTH": 4,
                         "CHECK_CLAIMS": False},
    "06_evaluation_and_comparison": {"DATASETS": ["kvasir", "blastocyst"], "ROUNDS": 1,
                                     "SIZE": 32, "N_IMAGES": 16, "SITES": 2, "WIDTH": 4,
                                     "WORST": 2, "CHECK_CLAIMS": False},
    "07_privacy": {"MODELS": ["unet"], "FRONTS": [1, 2], "ROUNDS": 1, "SIZE": 32,
                   "N_IMAGES": 24, "SITES": 2, "AUX_IMAGES": 8, "TARGETS": 4, "STEPS": 10,
                   "NOISE": [0.0, 1.0], "NOPEEK": [0.0, 1.0], "CHECK_CLAIMS": False},
    "08_communication": {"SIZE": 32, "N_IMAGES": 24, "WIDTH": 4, "ROUNDS": 1,
                         "CODECS": ["none", "fp16"], "SITE_COUNTS": [1, 2, 3],
                         "PAPER_MODELS": ["unet"], "PAPER_SIZE": 64, "CHECK_CLAIMS": False},
    # the recorded Flower run: a live one costs minutes on a busy machine, run twice here
    # (tests/test_deployment.py runs the live path once, on one site)
    "09_scale_out_with_flower": {"LIVE": False, "CHECK_CLAIMS": False},
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
