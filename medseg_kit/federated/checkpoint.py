"""Checkpoints: written atomically, read without running code.

A crash mid-write never corrupts the last good checkpoint (:func:`save_checkpoint` goes
through :func:`~medseg_kit._atomic.atomic_write`), and reading one never executes
anything it holds: :func:`load_checkpoint` unpickles with ``weights_only=True``, which
accepts tensors and plain containers (dicts, lists, tuples, numbers, strings) and refuses
every other object. A kit checkpoint holds only those: the weights and optimizer states,
the config as a dict, the history as a JSON string and the random generators' states as
byte tensors. A crafted ``checkpoint.pt`` that would run code when unpickled is refused
with an error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .._atomic import atomic_write

#: the keys every kit checkpoint holds
KEYS = ("config", "round", "strategy", "history", "rng")


def save_checkpoint(path: str | Path, obj: dict) -> None:
    """``torch.save`` through :func:`~medseg_kit._atomic.atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path, map_location=None, keys: tuple[str, ...] = ()) -> dict:
    """Read a checkpoint safely (``weights_only=True``); every fault is one ``ValueError``
    (or ``FileNotFoundError``) naming ``path``. ``keys``: the keys it must hold (a file
    without them is not a kit checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume "
                                "(run without --resume first)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise ValueError(f"checkpoint {path} was refused: it holds Python objects other "
                             "than tensors and plain containers, which could run code when "
                             "loaded; a medseg_kit checkpoint never does") from None
        raise ValueError(f"checkpoint {path} cannot be read ({first}); it is not a "
                         "medseg_kit checkpoint or is damaged") from None
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise ValueError(f"{path} is not a medseg_kit checkpoint: it lacks "
                         f"{', '.join(map(repr, missing))} (a run's checkpoint holds "
                         f"{', '.join(keys)})")
    return obj
