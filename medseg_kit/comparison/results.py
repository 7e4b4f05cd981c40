"""The comparison on disk: the matrix folder's layout, and writing and reading its files.

What ends up in a matrix folder ``out``:

* ``<dataset>-<model>-<strategy>-seed<k>/`` (:func:`cell_name`): one folder per cell: the
  run's ``history.json`` and ``checkpoint.pt`` (written every round by the run loop),
  ``worst_cases.npz`` (the lowest-Dice test images with truth and prediction) and, written
  last and atomically (temporary file + ``os.replace``), ``result.json``. A cell is
  *finished* when its ``result.json`` exists; running the matrix again skips finished
  cells and resumes interrupted ones from their last checkpoint, so a matrix can also be
  grown (more models, datasets or seeds: only the new cells train). A finished cell whose
  configuration differs from the one asked for (other than the device) is an error.
* ``results.csv`` (one row per cell), ``results.json`` (cells, the mean ± std summary and
  the ordering checks) and ``results.md`` (the paper-style tables), rewritten after every
  cell (:func:`write_results`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._atomic import atomic_write
from .stats import _unique, flat_row, ordering_checks, summarize_cells
from .tables import results_markdown

if TYPE_CHECKING:
    from ..federated import RunConfig

RESULT = "result.json"
WORST = "worst_cases.npz"


def cell_name(dataset: str, model: str, strategy: str, seed: int) -> str:
    """The folder (and the ``cell`` field) of one cell: ``kvasir-unet-sflv2-seed0``."""
    return f"{dataset}-{model}-{strategy}-seed{seed}"


def write_results(out: str | Path, results: Sequence[Mapping], base: RunConfig | None = None,
                  seeds: Sequence[int] | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``results.json`` and ``results.md`` (each atomically)."""
    out = Path(out)
    rows = [flat_row(r) for r in results]
    summary = summarize_cells(results)
    fields = _unique(k for r in rows for k in r)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = {"csv": out / "results.csv", "json": out / "results.json",
             "md": out / "results.md"}
    atomic_write(paths["csv"], buf.getvalue())
    atomic_write(paths["json"], json.dumps(
        {"settings": base.to_dict() if base is not None else None,
         "seeds": list(seeds) if seeds is not None else None,
         "cells": rows, "summary": summary, "ordering": ordering_checks(summary),
         "sites": [{"cell": r["cell"], "sites": r["site_results"]} for r in results]},
        indent=1, default=json_default))
    atomic_write(paths["md"], results_markdown(results, base, seeds))
    return paths


def load_worst_cases(folder: str | Path) -> dict[str, np.ndarray]:
    """A cell's ``worst_cases.npz`` as a dict of arrays (images, truths, preds, dice, iou,
    sites, ids, class_names)."""
    path = Path(folder) / WORST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the cell is not finished or was run "
                                "with worst=0")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def savez_atomic(path: Path, **arrays) -> None:
    """``np.savez_compressed`` to ``path``, atomically (temporary file + rename)."""
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def json_default(o):
    """``json.dumps(..., default=json_default)``: NumPy scalars and arrays, paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")
