"""What one network costs: parameters, FLOPs (whole and per stage), counts as text.

These need only the model itself. The tables over the whole zoo and the traffic of its
cuts, which also need the split, are in :mod:`medseg_kit.zoo`.

Example:
    >>> from medseg_kit.models import create_model
    >>> net = create_model("unet", width=4)
    >>> format_count(count_params(net))
    '122.1k'
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .staged import INPUT, StagedNet, run_stages


def count_params(net: StagedNet) -> int:
    """All parameters of ``net`` (BatchNorm's affine ones included, buffers not)."""
    return sum(p.numel() for p in net.parameters())


def count_flops(net: StagedNet, size: int) -> int:
    """Forward FLOPs for one image of ``size x size`` (a multiply-add counts as 2)."""
    p = next(net.parameters())
    x = torch.zeros(1, net.in_channels, size, size, device=p.device, dtype=p.dtype)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
    finally:
        net.train(was_training)
    return counter.get_total_flops()


def stage_flops(net: StagedNet, size: int | tuple[int, int]) -> list[int]:
    """Forward FLOPs of each stage for one image of ``size`` (a multiply-add counts as 2).

    One forward pass, stage by stage, each under its own counter; the list has one entry
    per stage, in table order, and sums to :func:`count_flops` for a square ``size``.
    Parameter-free stages that only pool or concatenate count 0 (no multiply-adds).

    Example:
        >>> from medseg_kit.models import create_model
        >>> net = create_model("unet", width=4)
        >>> sum(stage_flops(net, 32)) == count_flops(net, 32)
        True
    """
    h, w = (size, size) if isinstance(size, int) else size
    p = next(net.parameters())
    x = torch.zeros(1, net.in_channels, h, w, device=p.device, dtype=p.dtype)
    net.check_input(x)
    was_training = net.training
    net.eval()
    out = []
    try:
        with torch.no_grad():
            env = {INPUT: x}
            for i in range(len(net)):
                with FlopCounterMode(display=False) as counter:
                    run_stages(net.specs, net.stages, env, i, i + 1)
                out.append(int(counter.get_total_flops()))
    finally:
        net.train(was_training)
    return out


def format_count(n: int) -> str:
    """``31038209 -> '31.04M'``, ``98000 -> '98.0k'``."""
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"
