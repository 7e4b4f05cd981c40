"""Checkpoints written atomically: a crash mid-write never corrupts the last good one."""

from __future__ import annotations

from pathlib import Path

import torch

from .._atomic import atomic_write


def save_checkpoint(path: str | Path, obj: dict) -> None:
    """``torch.save`` through :func:`~medseg_kit._atomic.atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path, map_location=None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume "
                                "(run without --resume first)")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise ValueError(f"checkpoint {path} cannot be read ({e}); it is not a medseg_kit "
                         "checkpoint or is damaged") from e
