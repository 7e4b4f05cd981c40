"""The zoo at a glance: tables and reports over every registered model and its cuts.

This module sits above :mod:`medseg_kit.models` and :mod:`medseg_kit.split`: it puts a
model's size and cost (from :mod:`medseg_kit.models.summary`) beside the traffic of its
cuts (from :mod:`medseg_kit.split`). ``medseg-kit models`` prints :func:`models_report`.

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

import textwrap
from collections.abc import Sequence

import torch

from .models import check_input_size, create_model, list_models, model_info
from .models.staged import StagedNet
from .models.summary import count_flops, count_params, format_count
from .split import Split, valid_cuts

#: marks a published count that is not of the network the kit builds at paper width
NOT_LIKE_FOR_LIKE = "*"


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
        ``params_teaching``, ``params_paper``, ``published_params`` (``"n/r"`` when none is
        registered), ``published_source`` (what that count is of), ``published_comparable``
        (whether it counts the network built at paper width), ``gflops_teaching``,
        ``gflops_paper`` (forward, batch 1, ``size`` x ``size``), ``stages``,
        ``default_cut``, ``size_multiple`` and ``min_size`` (the accepted input sides) and
        ``reference``.

    Raises:
        ValueError: for an unknown name or a size a model does not accept (one line,
            before any work).
    """
    names = list(names or list_models())
    for name in names:
        check_input_size(name, size)
    rows = []
    for name in names:
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
            "published_source": info.published_source,
            "published_comparable": info.published_comparable,
            "gflops_teaching": count_flops(teach, size) / 1e9,
            "gflops_paper": count_flops(paper, size) / 1e9,
            "stages": len(teach),
            "default_cut": teach.default_cut,
            "size_multiple": teach.size_multiple,
            "min_size": teach.min_size,
            "reference": info.reference,
        })
    return rows


def published_cell(row: dict) -> str:
    """The published count as shown in a table: ``'31.0M'``, ``'6.4M*'`` or ``'n/r'``.

    ``*`` (:data:`NOT_LIKE_FOR_LIKE`) marks a count of another configuration than the
    network the kit builds at paper width; :func:`published_notes` says which.
    """
    mark = "" if row["published_comparable"] or row["published_params"] == "n/r" \
        else NOT_LIKE_FOR_LIKE
    return row["published_params"] + mark


def sizes_cell(row: dict) -> str:
    """The accepted input sides in a few characters: ``'16k'`` (any multiple of 16) or
    ``'16k >=32'`` (multiples of 16 from 32 on)."""
    m, lo = row["size_multiple"], row["min_size"]
    return f"{m}k" if lo <= m else f"{m}k >={lo}"


def published_notes(rows: list[dict]) -> list[str]:
    """One line per row: what its published count counts and whether it is like for like."""
    out = []
    for r in rows:
        kit = f"the kit's paper width ({format_count(r['params_paper'])})"
        if r["published_params"] == "n/r":
            verdict = "nothing to compare"
        elif r["published_comparable"]:
            verdict = f"like for like with {kit}"
        else:
            verdict = f"NOT like for like with {kit}"
        out.append(f"{r['name']}: {published_cell(r)}: {r['published_source']}; {verdict}.")
    return out


def markdown_table(rows: list[dict], extra: dict[str, dict[str, str]] | None = None) -> str:
    """The rows of :func:`model_table` as a markdown table.

    Args:
        rows: from :func:`model_table`.
        extra: optional additional columns, ``{column: {model name: text}}``.
    """
    extra = extra or {}
    head = ["model", "params (teaching w)", "params (paper w)", "published",
            "GFLOPs teaching", "GFLOPs paper", "stages", "default cut", "sizes", *extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], f"{format_count(r['params_teaching'])} (w={r['teaching_width']})",
                 f"{format_count(r['params_paper'])} (w={r['paper_width']})",
                 published_cell(r), f"{r['gflops_teaching']:.3f}",
                 f"{r['gflops_paper']:.2f}", str(r["stages"]), str(r["default_cut"]),
                 sizes_cell(r), *(col.get(r["name"], "") for col in extra.values())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def models_report(size: int = 128) -> str:
    """What ``medseg-kit models`` prints: the zoo table and what its columns mean.

    Args:
        size: image side for the FLOP counts (every model must accept it).

    Raises:
        ValueError: if a model does not accept ``size`` (one line naming the rule).
    """
    rows = model_table(size=size)
    lines = [f"{'model':<15}{'params (teaching)':>20}{'params (paper)':>18}{'published':>11}"
             f"{'GFLOPs teaching':>17}{'GFLOPs paper':>14}{'stages':>8}  "
             f"{'default cut':<13}sizes"]
    for r in rows:
        teach = f"{format_count(r['params_teaching'])} (w={r['teaching_width']})"
        paper = f"{format_count(r['params_paper'])} (w={r['paper_width']})"
        lines.append(f"{r['name']:<15}{teach:>20}{paper:>18}{published_cell(r):>11}"
                     f"{r['gflops_teaching']:>17.3f}{r['gflops_paper']:>14.2f}{r['stages']:>8}"
                     f"  {str(tuple(r['default_cut'])):<13}{sizes_cell(r)}")
    notes = [
        "params: at the teaching width (trains on a CPU) and at the paper width (the width "
        "of the cited paper's network).",
        f"GFLOPs: forward pass of one {size}x{size} image (PyTorch's FLOP counter; a "
        "multiply-add counts 2).",
        "sizes: the square input sides a model accepts (16k: any multiple of 16; '>=S' adds "
        "a minimum).",
        f"published: a parameter count from the literature (n/r: none registered); "
        f"{NOT_LIKE_FOR_LIKE} marks a count of another configuration than the paper-width "
        "column. What each count is:",
    ]
    lines.append("")
    for note in notes:
        lines += textwrap.wrap(note, width=100, subsequent_indent="  ")
    for note in published_notes(rows):
        lines += textwrap.wrap(note, width=100, initial_indent="  ", subsequent_indent="    ")
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
