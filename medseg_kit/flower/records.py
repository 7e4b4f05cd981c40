"""Named tensors in and out of Flower messages, and the optional message log.

A message between the ServerApp and a ClientApp carries a :class:`flwr.app.RecordDict`
with (at most) two records: ``"tensors"``, an :class:`~flwr.app.ArrayRecord` of named
tensors (what the protocol's halves exchange: activations, gradients, weights,
statistics), and ``"meta"``, a :class:`~flwr.app.ConfigRecord` of plain values (round,
batch, loss, bytes counted by the sender's wire). Tensors cross as float32 / int64 / uint8
NumPy arrays, exactly as the sender's :class:`~medseg_kit.wire.Wire` delivered them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

TENSORS, META = "tensors", "meta"


def pack(tensors: dict[str, torch.Tensor] | None = None, **meta) -> RecordDict:
    """A message's content: ``tensors`` (detached, on the CPU) and plain ``meta`` values
    (``None`` values are left out; dicts and lists travel as JSON strings)."""
    content = RecordDict()
    if tensors:
        content[TENSORS] = ArrayRecord({k: Array(v.detach().cpu().contiguous().numpy())
                                        for k, v in tensors.items()})
    values = {k: (json.dumps(v) if isinstance(v, dict | list | tuple) else v)
              for k, v in meta.items() if v is not None}
    if values:
        content[META] = ConfigRecord(values)
    return content


def tensors_of(content: RecordDict) -> dict[str, torch.Tensor]:
    """The named tensors of a message's content (fresh CPU tensors, no graph)."""
    if TENSORS not in content:
        return {}
    return {k: torch.from_numpy(np.array(a.numpy(), copy=True))
            for k, a in content[TENSORS].items()}


def meta_of(content: RecordDict) -> dict:
    """The plain values of a message's content."""
    return dict(content[META]) if META in content else {}


def state_to_bytes(obj) -> bytes:
    """An optimizer state (tensors and plain containers) as bytes for ``Context.state``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def state_from_bytes(data: bytes):
    """The inverse of :func:`state_to_bytes` (``weights_only``: no code runs)."""
    return torch.load(io.BytesIO(data), weights_only=True)


class MessageLog:
    """Every message the ServerApp sends and every reply it receives, written as one
    ``.npz`` of its arrays per message (``<n>-<type>-<site>-{out,in}.npz``), so a test can
    check what crossed (e.g. that no image or mask ever did). Off unless a folder is
    given."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None
        self.n = 0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, message: Message, kind: str, site: int, direction: str) -> None:
        if self.folder is None or message.has_error():
            return
        content = message.content
        arrays = ({k: a.numpy() for k, a in content[TENSORS].items()}
                  if TENSORS in content else {})
        self.n += 1
        np.savez(self.folder / f"{self.n:05d}-{kind}-site{site}-{direction}.npz", **arrays)
