"""FedAvg: the sample-weighted mean of state dicts, buffers included."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def fedavg(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]
           ) -> dict[str, torch.Tensor]:
    """Weighted mean of ``states`` (same keys), weights normalised to sum to one.

    Floating-point entries (parameters, BatchNorm running statistics) are averaged in
    float64 and cast back. Integer entries (BatchNorm's ``num_batches_tracked``) are
    averaged the same way and rounded to the nearest integer. With a single state the
    result equals it exactly.

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
    out = {}
    for k in keys:
        acc = sum(w * s[k].detach().to(torch.float64) for w, s in zip(ws, states))
        ref = states[0][k]
        out[k] = acc.round().to(ref.dtype) if not ref.is_floating_point() else acc.to(ref.dtype)
    return out
