"""Many tensors at once: a model's state copied, checked and restored in a few operations.

A site's turn must not cost one operation per tensor of its model (on a GPU each one is a
kernel launch and the GPU idles between them). These helpers take the tensors of a
module's state (:func:`state_tensors`) as a list and work on it with PyTorch's
multi-tensor (``torch._foreach_*``) operations, one per group of tensors that share a
device and a dtype: a copy of everything is one flat buffer per group filled by one
``_foreach_copy_``, a restore is one ``_foreach_copy_``, and a NaN/Inf check is one
``_foreach_norm`` (the largest magnitude of each tensor, which is finite exactly when the
tensor is) and one reduction. Every value is copied bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn


def state_tensors(module: nn.Module) -> list[torch.Tensor]:
    """The tensors of ``module.state_dict()`` (parameters and persistent buffers) in its
    order, as the module holds them: no copy, no detach."""
    return list(module.state_dict(keep_vars=True).values())


def groups(tensors: Sequence[torch.Tensor], *others: Sequence[torch.Tensor]
           ) -> list[list[int]]:
    """Indices of ``tensors`` grouped by device and dtype (of the tensor at that index in
    ``tensors`` and in every list of ``others``), in order of first appearance."""
    out: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        key = (t.device, t.dtype, *((o[i].device, o[i].dtype) for o in others))
        out.setdefault(key, []).append(i)
    return list(out.values())


def _dense(t: torch.Tensor) -> bool:
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(
        memory_format=torch.channels_last))


@torch.no_grad()
def clone(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of ``tensors`` (same values, shapes and strides, no autograd history): one
    buffer and one ``_foreach_copy_`` per device and dtype."""
    out: list[torch.Tensor | None] = [None] * len(tensors)
    for idx in groups(tensors):
        ts = [tensors[i] for i in idx]
        flat = torch.empty(sum(t.numel() for t in ts), dtype=ts[0].dtype, device=ts[0].device)
        views, offset = [], 0
        for t in ts:  # a view of the buffer with the tensor's own strides (same layout)
            stride = t.stride() if _dense(t) else _contiguous_strides(t.shape)
            views.append(flat.as_strided(t.shape, stride, offset))
            offset += t.numel()
        torch._foreach_copy_(views, ts)
        for i, v in zip(idx, views):
            out[i] = v
    return out


def _contiguous_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= max(d, 1)
    return tuple(reversed(strides))


@torch.no_grad()
def copy_(targets: Sequence[torch.Tensor], sources: Sequence[torch.Tensor]) -> None:
    """``targets[i].copy_(sources[i])`` for every ``i``: one ``_foreach_copy_`` per group
    of the same devices and dtypes."""
    if len(targets) != len(sources):
        raise ValueError(f"{len(targets)} targets but {len(sources)} sources")
    for idx in groups(targets, sources):
        torch._foreach_copy_([targets[i] for i in idx], [sources[i] for i in idx])


@torch.no_grad()
def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """No NaN or Inf in any floating-point tensor of ``tensors`` (one host sync)."""
    ts = [t for t in tensors if t.is_floating_point() and t.numel() > 0]
    if not ts:
        return True
    # the largest magnitude of a tensor is finite exactly when all its entries are
    peaks = [m for idx in groups(ts)
             for m in torch._foreach_norm([ts[i] for i in idx], ord=math.inf)]
    return bool(torch.isfinite(torch.stack(peaks)).all())


def load_into(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``module.load_state_dict(state)`` as one multi-tensor copy per dtype, for a state of
    the module's own keys and shapes (anything else goes through ``load_state_dict``,
    which names the mismatch)."""
    own = module.state_dict(keep_vars=True)
    if own.keys() != state.keys() or any(
            t.shape != state[k].shape for k, t in own.items()):
        module.load_state_dict(state)
        return
    copy_(list(own.values()), [state[k] for k in own])
