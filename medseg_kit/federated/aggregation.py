"""FedAvg: the sample-weighted mean of state dicts, buffers included."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .tensors import groups


@torch.no_grad()
def fedavg(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]
           ) -> dict[str, torch.Tensor]:
    """Weighted mean of ``states`` (same keys), weights normalised to sum to one.

    Floating-point entries (parameters, BatchNorm running statistics) are averaged in
    float64 and cast back. Integer entries (BatchNorm's ``num_batches_tracked``) are
    averaged the same way and rounded to the nearest integer. With a single state the
    result equals it exactly. The entries of the result may be views of one buffer.

    Raises:
        ValueError: on empty input, mismatched keys, or non-positive total weight.
    """
    if not states:
        raise ValueError("fedavg needs at least one state dict")
    if len(states) != len(weights):
        raise ValueError(f"{len(states)} state dicts but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0 with a positive sum; got {list(weights)}")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys:
            raise ValueError(f"state dict {i} has other keys than state dict 0: "
                             f"{sorted(set(s) ^ set(keys))[:5]}")
    if len(states) == 1:
        return {k: v.detach().clone() for k, v in states[0].items()}
    ws = [w / total for w in weights]
    ref = states[0]
    out = {}
    # the same float64 arithmetic, in the same order, as one flat buffer per group of
    # entries that share their devices and dtypes (one state's tensors each): a few
    # operations per state instead of a few per entry; the result is bit for bit the same
    for idx in groups(*([s[k] for k in keys] for s in states)):
        group = [keys[i] for i in idx]
        flat = [torch.cat([s[k].reshape(-1) for k in group]) for s in states]
        acc = sum(w * f.to(torch.float64) for w, f in zip(ws, flat))
        first = ref[group[0]]
        acc = acc.to(first.dtype) if first.is_floating_point() else acc.round().to(first.dtype)
        for k, piece in zip(group, acc.split([ref[k].numel() for k in group])):
            out[k] = piece.view(ref[k].shape)
    return {k: out[k] for k in keys}
