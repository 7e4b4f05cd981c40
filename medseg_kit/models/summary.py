"""Tables comparing the zoo: parameters, FLOPs, stages, default cut, bytes at each cut.

:func:`model_table` works on PyTorch's ``meta`` device (shapes only, no memory, no
arithmetic), so even the paper-width networks are summarised in a fraction of a second.
:func:`crossing_bytes` and :func:`cut_matrix` give the traffic of every valid cut from
a single forward pass.

Example:
    >>> rows = model_table(size=64, names=["unet"])
    >>> rows[0]["name"], rows[0]["stages"], rows[0]["default_cut"]
    ('unet', 10, (1, 8))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import create_model, list_models, model_info
from .staged import StagedNet


def count_params(net: StagedNet) -> int:
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
    from .staged import INPUT, run_stages

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


def _meta_model(name: str, width: int | str, in_channels: int, num_classes: int) -> StagedNet:
    with torch.device("meta"):
        return create_model(name, in_channels=in_channels, num_classes=num_classes,
                            width=width)


def model_table(size: int = 128, names: Sequence[str] | None = None, in_channels: int = 3,
                num_classes: int = 1) -> list[dict]:
    """One row per model: what it costs at the teaching and the paper width.

    Args:
        size: image side for the FLOP counts (must be accepted by every listed model).
        names: models to list (default: all registered, in registration order).
        in_channels, num_classes: the task the networks are built for.

    Returns:
        A list of dicts with keys ``name``, ``teaching_width``, ``paper_width``,
        ``params_teaching``, ``params_paper``, ``published_params``,
        ``gflops_teaching``, ``gflops_paper`` (forward, batch 1, ``size`` x ``size``),
        ``stages``, ``default_cut`` and ``reference``.

    Raises:
        ValueError: for an unknown name or a size a model does not accept.
    """
    rows = []
    for name in names or list_models():
        info = model_info(name)
        teach = _meta_model(name, "teaching", in_channels, num_classes)
        paper = _meta_model(name, "paper", in_channels, num_classes)
        rows.append({
            "name": name,
            "teaching_width": info.teaching_width,
            "paper_width": info.paper_width,
            "params_teaching": count_params(teach),
            "params_paper": count_params(paper),
            "published_params": info.published_params or "n/r",
            "gflops_teaching": count_flops(teach, size) / 1e9,
            "gflops_paper": count_flops(paper, size) / 1e9,
            "stages": len(teach),
            "default_cut": teach.default_cut,
            "reference": info.reference,
        })
    return rows


def format_count(n: int) -> str:
    """``31038209 -> '31.04M'``, ``98000 -> '98.0k'``."""
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def markdown_table(rows: list[dict], extra: dict[str, dict[str, str]] | None = None) -> str:
    """The rows of :func:`model_table` as a markdown table.

    Args:
        rows: from :func:`model_table`.
        extra: optional additional columns, ``{column: {model name: text}}``.
    """
    extra = extra or {}
    head = ["model", "params (teaching w)", "params (paper w)", "published",
            "GFLOPs teaching", "GFLOPs paper", "stages", "default cut", *extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], f"{format_count(r['params_teaching'])} (w={r['teaching_width']})",
                 f"{format_count(r['params_paper'])} (w={r['paper_width']})",
                 r["published_params"], f"{r['gflops_teaching']:.3f}",
                 f"{r['gflops_paper']:.2f}", str(r["stages"]), str(r["default_cut"]),
                 *(col.get(r["name"], "") for col in extra.values())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def crossing_bytes(net: StagedNet, size: int, *, allow_raw: bool = False,
                   include_vanilla: bool = False) -> dict[tuple[int, int], dict[str, int]]:
    """Bytes per image and training step crossing at every valid cut.

    The same figures as ``Split(net, front, back).bytes_per_image(size)`` (activations
    one way, their gradients back, integer tensors without gradient, the label at one
    byte a pixel for a vanilla cut), for all cuts at the cost of one forward pass (the net
    remembers its tensor shapes per size).

    Returns:
        ``{(front, back): {"up": ..., "down": ..., "total": ...}}``.
    """
    from ..split import Split, valid_cuts  # the split module imports the models package

    out = {}
    for cut in valid_cuts(net, allow_raw=allow_raw, include_vanilla=include_vanilla):
        b = Split(net, *cut, allow_raw=True).bytes_per_image(size)
        out[cut] = {"up": b["up"], "down": b["down"], "total": b["up"] + b["down"]}
    return out


def cut_matrix(net: StagedNet, size: int, *, allow_raw: bool = False) -> str:
    """KiB (1024 bytes) per image and step (up + down) for every U-shaped cut, as text.

    Rows are ``front`` (the last site stage before the server), columns ``back``; ``·``
    marks a cut that is invalid or (unless ``allow_raw``) sends raw image data, ``*``
    the model's default cut.
    """
    table = crossing_bytes(net, size, allow_raw=allow_raw)
    n = len(net)
    names = net.stage_names
    lines = [f"KiB per image and step at {size}x{size} (rows: front, columns: back)",
             " " * 18 + "".join(f"{b:>8}" for b in range(2, n))]
    for f in range(1, n - 1):
        cells = []
        for b in range(2, n):
            if (f, b) in table:
                mark = "*" if (f, b) == tuple(net.default_cut) else " "
                cells.append(f"{table[(f, b)]['total'] / 1024:>7.0f}{mark}")
            else:
                cells.append(f"{'·':>7} ")
        lines.append(f"{f:>2} {names[f - 1][:14]:<15}" + "".join(cells))
    return "\n".join(lines)


def family_report(net: StagedNet, size: int) -> str:
    """A model's stage table, its size and cost, and the traffic of every cut, as text."""
    name = getattr(net, "model_name", type(net).__name__)
    front, back = net.default_cut
    return "\n".join([
        net.describe(), "",
        f"{name} at width {getattr(net, 'width', '?')}: {count_params(net):,} parameters, "
        f"{count_flops(net, size) / 1e9:.3f} GFLOPs per {size}x{size} image (forward); "
        f"{len(net)} stages, default cut ({front}, {back})", "",
        cut_matrix(net, size),
    ])
