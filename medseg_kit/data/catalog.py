"""Open a dataset the easy way: the real one when it is installed, else a synthetic one.

``open_dataset("ham10000", size=96)`` looks for the real data where
``data_scripts/download.py`` puts it (``<MEDSEG_DATA_DIR>/HAM10000``, ``Kvasir-SEG``,
``Blastocyst``), and otherwise writes (once) and loads the synthetic stand-in in
``<MEDSEG_DATA_DIR>/synthetic/<name>-n<N>-seed<S>`` — the folder the training loop uses
too. ``data.synthetic`` and :func:`describe` say which one you got.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import SCANNERS, DataError, SegData, data_dir, ensure_synthetic, load_dataset
from .download import SOURCES


def find_real(name: str, root: str | Path | None = None) -> Path | None:
    """The installed real dataset folder, or None (also when it has layout problems)."""
    folder = (Path(root) if root is not None else data_dir()) / SOURCES[name].folder
    if not folder.is_dir():
        return None
    try:
        scan = SCANNERS[name](folder)
    except DataError:
        return None
    return folder if scan.items and not scan.problems else None


def open_dataset(name: str, size: int = 128, n_synthetic: int = 200, seed: int = 0,
                 limit: int | None = None, prefer_real: bool = True,
                 progress: bool = False) -> SegData:
    """The real dataset if installed (at most ``limit`` images), else ``n_synthetic``
    synthetic ones made from ``seed``; decoded once, then read from the cache."""
    real = find_real(name) if prefer_real else None
    if real is not None:
        return load_dataset(name, real, size=size, limit=limit, progress=progress)
    root = ensure_synthetic(name, n_synthetic, seed, progress)
    return load_dataset(name, root, size=size, progress=progress)


def describe(data: SegData) -> str:
    """One line: which dataset, real or synthetic, how many images, where from."""
    paths = [m["path"] for m in data.meta if "path" in m]
    where = os.path.commonpath(paths) if paths else "?"
    kind = "SYNTHETIC stand-in" if data.synthetic else "REAL data"
    return (f"{data.name}: {kind}, {len(data)} images at {data.size} px, "
            f"{data.num_classes} classes {list(data.class_names)} (from {where})")
