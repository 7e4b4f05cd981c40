"""Write a file so that readers see either the old version or the whole new one.

Every file the kit writes that a later run depends on — checkpoints, histories, the data
cache, comparison results — goes through :func:`atomic_write`: the content is written to
a temporary file in the same folder, flushed to disk, then renamed over the target. A
crash or an error midway leaves the previous file as it was and no temporary behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | Path, write: Callable[[IO], None] | str | bytes) -> Path:
    """Replace ``path`` atomically.

    Args:
        path: the file to (re)write; its folder is created if missing.
        write: the content (``str`` or ``bytes``), or a function that writes it to the
            binary file object it is given (e.g. ``lambda f: torch.save(obj, f)``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, str):
                f.write(write.encode())
            elif isinstance(write, bytes):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files that an :func:`atomic_write` of ``names`` in ``folder``
    killed mid-write (``kill -9``, power loss) left behind; return them. Call it only where
    no other process is writing those files."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for name in names for p in folder.glob(f".{name}.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
