"""Communication, priced: what a site sends per round as the cut, the number of sites,
the images per site and the codec change — tables and figures for notebook 08.

Every byte here comes from :mod:`medseg_kit.traffic` (closed form, exact: a test holds it
equal to the wire's counts) and every second from :class:`medseg_kit.link.Link` (bandwidth
and latency only: a lower bound). Nothing is trained. Tables are lists of dicts (one per
row; :func:`to_markdown` prints them), figures are matplotlib figures.

How a site trains (``batch_size``, ``local_epochs``, ``bn_calibration``) is passed through
as keyword arguments with :mod:`~medseg_kit.traffic`'s defaults. Byte keys name the
strategy and the direction: ``sflv2_bytes_up``, ``sflv2_bytes_down``, ``sflv2_bytes`` (up
and down together), ``fl_bytes``; seconds keys end in ``_seconds``.

Example:
    >>> from medseg_kit.models import create_model
    >>> from medseg_kit.link import Link
    >>> net = create_model("unet", width=8)
    >>> rows = by_images(net, 64, [4, 32], Link(20, 100), batch_size=4, bn_calibration=8)
    >>> rows[1]["sflv2_bytes"] > rows[1]["fl_bytes"]   # 32 images: SplitFed sends more
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .federated.run import GLOBAL
from .link import Link
from .models import create_model
from .split import Split, resolve_cut, valid_cuts
from .traffic import (
    SPLITTING,
    break_even_images,
    messages_per_round,
    run_site_round_bytes,
    site_round_bytes,
    state_bytes,
)
from .units import MIB, format_bytes
from .viz import LINE_STYLES, MARKERS
from .wire import KINDS, Wire

#: the two strategies compared throughout: SplitFed (one shared server part) and FedAvg
COMPARED = ("sflv2", "fl")
#: their colours in every figure
COLORS = {"sflv2": "#3A6EA5", "fl": "#C9762B"}
_TRAIN = ("batch_size", "local_epochs", "bn_calibration")


# ------------------------------------------------------------------ one round
def _check_train(train: Mapping) -> None:
    bad = sorted(set(train) - set(_TRAIN))
    if bad:
        raise TypeError(f"unknown training setting(s) {bad}; expected some of {list(_TRAIN)}")


def round_cost(strategy: str, net: nn.Module, size: int, images_per_site: int,
               link: Link | None = None, *, split: Split | None = None,
               wire: Wire | None = None, **train) -> dict:
    """One site's round of ``strategy``: ``bytes_up``, ``bytes_down``, ``bytes`` (both),
    ``messages`` and, with a ``link``, ``seconds`` (bytes one after the other plus one
    latency per message).

    Args:
        strategy: a strategy name; ``split`` is required for a splitting one.
        net: the whole network; ``size``: the image side; ``images_per_site``: the
            site's training images.
        link: the site's link, or None (no seconds).
        wire: the wire whose codecs apply (default float32, no codec).
        **train: ``batch_size``, ``local_epochs``, ``bn_calibration``.
    """
    _check_train(train)
    b = site_round_bytes(strategy, net, size, images_per_site, split=split, wire=wire,
                         **train)
    msgs = messages_per_round(strategy, split if strategy in SPLITTING else None,
                              images_per_site, **train)
    row = {"bytes_up": b["up"], "bytes_down": b["down"], "bytes": b["up"] + b["down"],
           "messages": msgs}
    if link is not None:
        row["seconds"] = link.seconds(b["up"], b["down"], msgs)
    return row


def _compared(net, size, n, link, split, wire, train) -> dict:
    """``sflv2_*`` and ``fl_*`` keys of :func:`round_cost` for one site of ``n`` images."""
    row = {}
    for s in COMPARED:
        for k, v in round_cost(s, net, size, n, link, split=split, wire=wire,
                               **train).items():
            row[f"{s}_{k}"] = v
    return row


def _split(net, cut, split_kind="ushaped") -> Split:
    return Split(net, *resolve_cut(net, cut, split_kind), allow_raw=True)


# ------------------------------------------------------------------ tables
def by_kind(net: nn.Module, size: int, images_per_site: int, *, strategy: str = "sflv2",
            cut: tuple[int, int] | None = None, split_kind: str = "ushaped",
            wire: Wire | None = None, **train) -> list[dict]:
    """What one site sends (``bytes_up``) and receives (``bytes_down``) in one round, per
    kind of message (every kind of :data:`medseg_kit.wire.KINDS`, zeros included), and a
    last row ``total``.

    Args:
        strategy: whose round; ``cut``: the cut (None: the model's default);
        split_kind: ``ushaped`` or ``vanilla`` (labels sent).
    """
    _check_train(train)
    split = _split(net, cut, split_kind) if strategy in SPLITTING else None
    b = site_round_bytes(strategy, net, size, images_per_site, split=split, wire=wire,
                         **train)
    rows = []
    for kind in KINDS:
        up, down = b.get(f"up/{kind}", 0), b.get(f"down/{kind}", 0)
        rows.append({"kind": kind, "bytes_up": up, "bytes_down": down, "bytes": up + down})
    rows.append({"kind": "total", "bytes_up": b["up"], "bytes_down": b["down"],
                 "bytes": b["up"] + b["down"]})
    return rows


def by_cut(net: nn.Module, size: int, images_per_site: int, link: Link | None = None, *,
           cuts: Sequence[tuple[int, int]] | None = None, wire: Wire | None = None,
           **train) -> list[dict]:
    """One site's round of ``sflv2`` at each cut, beside ``fl`` (which has no cut).

    Returns one row per cut: ``cut``, ``sflv2_*`` and ``fl_*`` of :func:`round_cost`,
    ``client_part_bytes`` (the site's part of the model, one way) and ``break_even`` (the
    images per site up to which ``sflv2`` sends no more than ``fl``:
    :func:`medseg_kit.traffic.break_even_images`; None when it always sends more).

    Args:
        cuts: U-shaped cuts; None: every cut :func:`medseg_kit.split.valid_cuts` accepts.
    """
    _check_train(train)
    wire = wire or Wire()
    rows = []
    for cut in (valid_cuts(net) if cuts is None else cuts):
        split = _split(net, cut)
        rows.append({"cut": tuple(cut),
                     **_compared(net, size, images_per_site, link, split, wire, train),
                     "client_part_bytes": state_bytes(split.client_part(net), wire, "up"),
                     "break_even": break_even_images(net, size, cut=tuple(cut), wire=wire,
                                                     **train)})
    return rows


def deal(total_images: int, sites: int) -> list[int]:
    """``total_images`` dealt to ``sites`` as evenly as possible (the first sites get the
    remainder), as an IID partition deals them.

    Example:
        >>> deal(10, 3)
        [4, 3, 3]
    """
    if sites < 1 or total_images < sites:
        raise ValueError(f"cannot deal {total_images} images to {sites} sites: need "
                         "sites >= 1 and at least one image per site")
    q, r = divmod(total_images, sites)
    return [q + (k < r) for k in range(sites)]


def by_sites(net: nn.Module, size: int, sites: Sequence[int], link: Link | None = None, *,
             images_per_site: int | None = None, total_images: int | None = None,
             cut: tuple[int, int] | None = None, wire: Wire | None = None,
             **train) -> list[dict]:
    """One round summed over the sites, as the server's link sees it, for each number of
    sites in ``sites``.

    Give either ``images_per_site`` (every new site brings its own images) or
    ``total_images`` (the same images spread over more sites, :func:`deal`).

    Returns one row per number of sites: ``sites``, ``images_per_site`` (the list),
    ``sflv2_bytes`` and ``fl_bytes`` (everything the server sends and receives in the
    round), and with a ``link`` (each site on a link like it; the server's own link is not
    the bottleneck) ``sflv2_seconds`` — the sites' times *added*, since ``sflv2``'s sites
    take turns with the one server part — and ``fl_seconds`` — the *slowest* site's time,
    since FL's sites train at the same time.
    """
    _check_train(train)
    if (images_per_site is None) == (total_images is None):
        raise ValueError("give exactly one of images_per_site and total_images")
    split = _split(net, cut)
    site: dict[int, dict] = {}  # one site's round, per shard size

    def one(n: int) -> dict:
        if n not in site:
            site[n] = _compared(net, size, n, link, split, wire, train)
        return site[n]

    rows = []
    for k in sites:
        shards = [images_per_site] * k if images_per_site is not None else deal(total_images, k)
        row = {"sites": k, "images_per_site": shards}
        for s in COMPARED:
            row[f"{s}_bytes"] = sum(one(n)[f"{s}_bytes"] for n in shards)
        if link is not None:
            row["sflv2_seconds"] = sum(one(n)["sflv2_seconds"] for n in shards)
            row["fl_seconds"] = max(one(n)["fl_seconds"] for n in shards)
        rows.append(row)
    return rows


def sites_break_even(net: nn.Module, size: int, total_images: int, *,
                     cut: tuple[int, int] | None = None, wire: Wire | None = None,
                     **train) -> int | None:
    """The fewest sites over which ``total_images`` can be spread (:func:`deal`, at least
    two images a site) for FL's server traffic per round to exceed SplitFed's; None when
    it never does. FL sends a whole model per site, SplitFed about the same activations
    whatever the number of sites."""
    for k in range(1, total_images // 2 + 1):
        r = by_sites(net, size, [k], total_images=total_images, cut=cut, wire=wire,
                     **train)[0]
        if r["fl_bytes"] > r["sflv2_bytes"]:
            return k
    return None


def by_images(net: nn.Module, size: int, images: Sequence[int], link: Link | None = None, *,
              cut: tuple[int, int] | None = None, split_kind: str = "ushaped",
              wire: Wire | None = None, **train) -> list[dict]:
    """One site's round of ``sflv2`` and ``fl`` for each number of training images in
    ``images``: ``images_per_site`` and the ``sflv2_*`` and ``fl_*`` keys of
    :func:`round_cost`."""
    _check_train(train)
    split = _split(net, cut, split_kind)
    return [{"images_per_site": n, **_compared(net, size, n, link, split, wire, train)}
            for n in images]


def codec_bytes(net: nn.Module, size: int, images_per_site: int, codecs: Sequence[str],
                link: Link | None = None, *, cut: tuple[int, int] | None = None,
                **train) -> list[dict]:
    """One site's round under each codec spec, in closed form: ``codec`` (normalized),
    the ``sflv2_*`` and ``fl_*`` keys of :func:`round_cost` and ``ratio`` (``sflv2_bytes``
    over the same without a codec)."""
    _check_train(train)
    split = _split(net, cut)
    plain = round_cost("sflv2", net, size, images_per_site, split=split, **train)["bytes"]
    rows = []
    for spec in codecs:
        wire = Wire(codec=spec)
        row = {"codec": wire.codec,
               **_compared(net, size, images_per_site, link, split, wire, train)}
        row["ratio"] = row["sflv2_bytes"] / plain
        rows.append(row)
    return rows


def codec_rows(runs: Sequence, net: nn.Module) -> list[dict]:
    """Measured against closed form, for trained runs that differ in their codec (cached
    teaching runs: anything with ``config``, ``history`` and ``final()``).

    Returns one row per run: ``codec``, ``bytes_up`` and ``bytes_down`` (what the run's
    wire counted, per site and round, mean over the site rows), ``formula_up`` and
    ``formula_down`` (:func:`medseg_kit.traffic.site_round_bytes` for the same rows),
    ``exact`` (every site row equals its formula), ``ratio`` (bytes over the ``"none"``
    run's, when there is one), ``dice`` (final pooled test Dice) and ``dice_change`` (in
    points, x 100, against the ``"none"`` run).

    Args:
        runs: the runs; their configs must describe ``net`` (model, width, channels).
        net: the whole network of those runs (its state's shapes price the model traffic).
    """
    rows = []
    for r in runs:
        c = r.config
        split = (_split(net, c.cut, c.split) if c.strategy in SPLITTING else None)
        wire = Wire(codec=c.codec)
        measured, formula, exact = [], [], True
        for rec in r.history.records:
            if rec["site"] == GLOBAL:
                continue
            f = site_round_bytes(c.strategy, net, c.size, int(rec["n_train"]), split=split,
                                 wire=wire, batch_size=c.batch_size,
                                 local_epochs=c.local_epochs, bn_calibration=c.bn_calibration,
                                 accepted=rec.get("status", "ok") == "ok")
            measured.append((rec["bytes_up"], rec["bytes_down"]))
            formula.append((f["up"], f["down"]))
            exact = exact and (int(rec["bytes_up"]), int(rec["bytes_down"])) == (f["up"],
                                                                                f["down"])
        m, f = np.mean(measured, axis=0), np.mean(formula, axis=0)
        rows.append({"codec": c.codec, "bytes_up": float(m[0]), "bytes_down": float(m[1]),
                     "formula_up": float(f[0]), "formula_down": float(f[1]), "exact": exact,
                     "dice": float(r.final()["dice"])})
    base = next((row for row in rows if row["codec"] == "none"), None)
    for row in rows:
        if base is not None:
            row["ratio"] = ((row["bytes_up"] + row["bytes_down"])
                            / (base["bytes_up"] + base["bytes_down"]))
            row["dice_change"] = 100 * (row["dice"] - base["dice"])
        else:
            row["ratio"] = row["dice_change"] = float("nan")
    return rows


def measured_by_kind(history, run) -> list[dict]:
    """A finished run's wire counts by direction and kind beside the sum of
    :func:`medseg_kit.traffic.site_round_bytes` over its site rows.

    Args:
        history, run: what :func:`medseg_kit.federated.train` returns: the history, and
            the strategy's ``run`` (its wire holds the counts).

    Returns:
        One row per direction and kind that crossed: ``direction``, ``kind``,
        ``measured``, ``formula``.
    """
    formula: dict[str, int] = {}
    for rec in history.records:
        if rec["site"] == GLOBAL:
            continue
        f = run_site_round_bytes(run, int(rec["site"]), accepted=rec.get("status") == "ok")
        for k, v in f.items():
            if "/" in k:
                formula[k] = formula.get(k, 0) + v
    rows = []
    for d in ("up", "down"):
        for kind in KINDS:
            want, got = formula.get(f"{d}/{kind}", 0), run.wire.bytes(d, kind)
            if want or got:
                rows.append({"direction": d, "kind": kind, "measured": got, "formula": want})
    return rows


# ------------------------------------------------------------------ break-even
def break_even_case(net: nn.Module, size: int, *, cut: tuple[int, int] | None = None,
                    wire: Wire | None = None, images: Sequence[int] | None = None,
                    images_per_site: int | None = None, **train) -> dict:
    """Everything the break-even picture of one setting needs.

    Returns ``model`` and ``width`` (from ``net``), ``size``, ``cut``, ``break_even``
    (:func:`medseg_kit.traffic.break_even_images`), ``images_per_site`` (the setting's
    own, marked in the figure; may be None), ``ratio`` (``sflv2`` over ``fl`` bytes at
    ``images_per_site``) and ``rows`` (:func:`by_images` over ``images``; default: 2 up to
    about three times the break-even and past ``images_per_site``).
    """
    _check_train(train)
    cut = resolve_cut(net, cut)
    be = break_even_images(net, size, cut=cut, wire=wire, **train)
    if images is None:
        top = max(3 * (be or 2), 12, int(1.25 * (images_per_site or 0)))
        images = sorted({int(v) for v in np.linspace(2, top, 60)})
    rows = by_images(net, size, images, cut=cut, wire=wire, **train)
    ratio = None
    if images_per_site is not None:
        at = by_images(net, size, [images_per_site], cut=cut, wire=wire, **train)[0]
        ratio = at["sflv2_bytes"] / at["fl_bytes"]
    return {"model": getattr(net, "model_name", "net"), "width": getattr(net, "width", None),
            "size": size, "cut": cut, "break_even": be, "images_per_site": images_per_site,
            "ratio": ratio, "rows": rows}


def regime(case: Mapping) -> str:
    """One sentence: which side of the break-even a case's ``images_per_site`` is on."""
    n, be, ratio = case["images_per_site"], case["break_even"], case["ratio"]
    where = f"{case['model']} (width {case['width']}) at {case['size']} px, cut {case['cut']}"
    if be is None:
        return f"{where}: SplitFed sends more than FL at any number of images per site."
    text = f"{where}: SplitFed sends less than FL up to {be} images per site"
    if n is None:
        return text + "."
    side = ("model-heavy regime: SplitFed is cheaper" if n <= be
            else "data-heavy regime: FL is cheaper")
    return f"{text}; with {n} images per site it sends {ratio:.2f}× FL's bytes ({side})."


def meta_model(name: str, width: int | str | None = "paper", in_channels: int = 3,
               num_classes: int = 1) -> nn.Module:
    """``name`` built on PyTorch's ``meta`` device: the shapes of every weight and tensor,
    no memory and no arithmetic — enough to price any cut of a network of any width."""
    with torch.device("meta"):
        return create_model(name, in_channels=in_channels, num_classes=num_classes,
                            width=width)


def break_even_table(models: Sequence[str], size: int, *, width: int | str | None = "paper",
                     **train) -> list[dict]:
    """Per model (built with :func:`meta_model`, default cut): ``model``, ``width``,
    ``cut``, ``model_bytes`` (the whole state, what FL sends each way),
    ``client_part_bytes`` (the site's part), ``bytes_per_image`` (what one training image
    sends across the cut, up and down together) and ``break_even``."""
    _check_train(train)
    rows = []
    for name in models:
        net = meta_model(name, width)
        split = _split(net, None)
        q = split.bytes_per_image(size)
        rows.append({"model": name, "width": net.width, "cut": tuple(net.default_cut),
                     "model_bytes": state_bytes(net, Wire(), "up"),
                     "client_part_bytes": state_bytes(split.client_part(net), Wire(), "up"),
                     "bytes_per_image": q["up"] + q["down"],
                     "break_even": break_even_images(net, size, **train)})
    return rows


# ------------------------------------------------------------------ Markdown
def _cell(key: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if "bytes" in key or key.startswith("formula_"):
        return format_bytes(v)
    if "seconds" in key:
        return f"{v:.2f}"
    if key == "ratio":
        return f"{v:.3f}"
    if key == "dice_change":
        return f"{v:+.1f}"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list | tuple) and key != "cut":
        return ", ".join(map(str, v)) if len(set(v)) > 1 else str(v[0])
    return str(v)


def to_markdown(rows: Sequence[Mapping], columns: Mapping[str, str]) -> str:
    """``rows`` as a Markdown table of ``columns`` (``{key: title}``): values of keys
    naming bytes in binary units, other integers exact (``12,740``), seconds to 0.01,
    ratios and other floats to 0.001, Dice changes in signed points, None as a dash."""
    keys = list(columns)
    lines = ["| " + " | ".join(columns.values()) + " |",
             "|" + "|".join("---" if k in ("kind", "codec", "cut", "model", "direction")
                            else "---:" for k in keys) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(k, r.get(k)) for k in keys) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ figures
def _mib_axis(ax, label="MiB per site and round"):
    ax.set_ylabel(label)
    ax.grid(axis="y", alpha=0.3)


def plot_kinds(rows: Sequence[Mapping], title: str | None = None) -> plt.Figure:
    """:func:`by_kind`'s rows as bars: up and down per kind (the ``total`` row left out),
    each bar labelled in binary units."""
    rows = [r for r in rows if r["kind"] != "total"]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    x = np.arange(len(rows))
    for dx, d, hatch in ((-0.2, "up", ""), (0.2, "down", "//")):
        vals = [r[f"bytes_{d}"] for r in rows]
        ax.bar(x + dx, [v / MIB for v in vals], 0.4, label=d, color=COLORS["sflv2"],
               alpha=1.0 if d == "up" else 0.55, hatch=hatch, edgecolor="white")
        for xi, v in zip(x + dx, vals):
            ax.text(xi, v / MIB, format_bytes(v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([r["kind"] for r in rows])
    _mib_axis(ax)
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    ax.set_title(title or "one site's round, by kind of message", fontsize=9)
    fig.tight_layout()
    return fig


def plot_by_cut(rows: Sequence[Mapping]) -> plt.Figure:
    """:func:`by_cut`'s rows: ``sflv2``'s bytes per round at each cut (up and down
    stacked) against ``fl``'s (a dashed line: no cut), and the seconds when priced."""
    timed = all("sflv2_seconds" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(10 if timed else 5.5, 3.4),
                             squeeze=False)
    labels = [f"({f}, {b})" for f, b in (r["cut"] for r in rows)]
    x = np.arange(len(rows))
    ax = axes[0][0]
    up = np.array([r["sflv2_bytes_up"] for r in rows]) / MIB
    down = np.array([r["sflv2_bytes_down"] for r in rows]) / MIB
    ax.bar(x, up, color=COLORS["sflv2"], label="sflv2 up")
    ax.bar(x, down, bottom=up, color=COLORS["sflv2"], alpha=0.5, hatch="//",
           edgecolor="white", label="sflv2 down")
    ax.axhline(rows[0]["fl_bytes"] / MIB, color=COLORS["fl"], ls="--", lw=2,
               label=f"fl (no cut): {format_bytes(rows[0]['fl_bytes'])}")
    _mib_axis(ax)
    ax.set_title("bytes per round vs cut", fontsize=9)
    ax.legend(fontsize=7)
    panels = [ax]
    if timed:
        ax = axes[0][1]
        ax.bar(x, [r["sflv2_seconds"] for r in rows], color=COLORS["sflv2"], label="sflv2")
        ax.axhline(rows[0]["fl_seconds"], color=COLORS["fl"], ls="--", lw=2, label="fl")
        ax.set_ylabel("seconds per site and round")
        ax.grid(axis="y", alpha=0.3)
        ax.set_title("seconds on the link vs cut", fontsize=9)
        ax.legend(fontsize=7)
        panels.append(ax)
    for ax in panels:
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30 if len(rows) > 6 else 0, fontsize=8)
        ax.set_xlabel("cut (front, back)")
    fig.tight_layout()
    return fig


def _lines(ax, xs, rows, key, fmt=None):
    for k, s in enumerate(COMPARED):
        ax.plot(xs, [r[f"{s}_{key}"] / (MIB if fmt == "mib" else 1) for r in rows],
                color=COLORS[s], ls=LINE_STYLES[k], marker=MARKERS[k], ms=4,
                fillstyle="none", label=s)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_by_sites(rows: Sequence[Mapping]) -> plt.Figure:
    """:func:`by_sites`'s rows: the server's bytes per round against the number of sites,
    and the seconds per round when priced."""
    timed = all("sflv2_seconds" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(9 if timed else 4.8, 3.2),
                             squeeze=False)
    xs = [r["sites"] for r in rows]
    _lines(axes[0][0], xs, rows, "bytes", "mib")
    axes[0][0].set_ylabel("MiB per round (all sites)")
    axes[0][0].set_title("the server's bytes per round", fontsize=9)
    if timed:
        _lines(axes[0][1], xs, rows, "seconds")
        axes[0][1].set_ylabel("seconds per round")
        axes[0][1].set_title("sflv2: sites in turn; fl: sites at once", fontsize=9)
    for ax in axes[0]:
        ax.set_xlabel("sites")
        ax.set_xticks(xs)
    fig.tight_layout()
    return fig


def plot_by_images(rows: Sequence[Mapping], ax=None, *, break_even: int | None = None,
                   mark: int | None = None, title: str | None = None) -> plt.Figure:
    """:func:`by_images`'s rows: bytes per round of ``sflv2`` and ``fl`` against the images
    per site; a dotted line at ``break_even`` (SplitFed cheaper to its left, shaded) and a
    marker at ``mark`` (a setting's own images per site)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.3))
    xs = [r["images_per_site"] for r in rows]
    for k, s in enumerate(COMPARED):
        ax.plot(xs, [r[f"{s}_bytes"] / MIB for r in rows], color=COLORS[s],
                ls=LINE_STYLES[k], lw=2, label=s, drawstyle="steps-post" if s == "sflv2"
                else "default")
    if break_even is not None:
        ax.axvspan(min(xs), break_even, color=COLORS["sflv2"], alpha=0.08)
        ax.axvline(break_even, color="black", ls=":", lw=1.4,
                   label=f"break-even: {break_even} images")
    if mark is not None:
        at = min(rows, key=lambda r: abs(r["images_per_site"] - mark))
        ax.axvline(at["images_per_site"], color="grey", ls="--", lw=0.8,
                   label=f"{mark} images per site")
        for s in COMPARED:
            ax.plot([at["images_per_site"]], [at[f"{s}_bytes"] / MIB], "o", ms=7,
                    color=COLORS[s], mfc="white", mew=2, zorder=5)
    ax.set_xlabel("training images per site")
    ax.set_ylabel("MiB per site and round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_break_even(cases: Sequence[Mapping]) -> plt.Figure:
    """One panel per :func:`break_even_case`: where SplitFed's bytes per round cross
    FL's as the images per site grow."""
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.5), squeeze=False)
    for ax, c in zip(axes[0], cases):
        plot_by_images(c["rows"], ax, break_even=c["break_even"], mark=c["images_per_site"],
                       title=f"{c['model']} width {c['width']}, {c['size']} px, "
                             f"cut {tuple(c['cut'])}")
    fig.tight_layout()
    return fig


def plot_codecs(rows: Sequence[Mapping]) -> plt.Figure:
    """Codec rows (:func:`codec_rows` or :func:`codec_bytes`): bytes per site and round
    (up and down stacked), and the change of the final Dice when the rows have one."""
    has_dice = all("dice_change" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if has_dice else 1, figsize=(11 if has_dice else 6, 3.6),
                             squeeze=False)
    up_key = "bytes_up" if "bytes_up" in rows[0] else "sflv2_bytes_up"
    down_key = up_key.replace("_up", "_down")
    labels = [r["codec"].replace(",", ",\n") for r in rows]
    y = np.arange(len(rows))[::-1]
    ax = axes[0][0]
    up = np.array([r[up_key] for r in rows]) / MIB
    down = np.array([r[down_key] for r in rows]) / MIB
    ax.barh(y, up, color=COLORS["sflv2"])
    ax.barh(y, down, left=up, color=COLORS["sflv2"], alpha=0.5, hatch="//",
            edgecolor="white")
    for yi, r, total in zip(y, rows, up + down):
        ax.text(total, yi, f" {r['ratio']:.2f}×", va="center", fontsize=7)
    ax.set_xlabel("MiB per site and round")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.18)
    ax.set_title("bytes: up (solid) and down (hatched); ratio to no codec", fontsize=9)
    for ax in axes[0]:
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=7)
    if has_dice:
        ax = axes[0][1]
        ch = [r["dice_change"] for r in rows]
        ax.barh(y, ch, color=["#4C9F70" if v >= 0 else "#B04A4A" for v in ch])
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("final Dice change vs no codec (points)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_title("accuracy", fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["COLORS", "COMPARED", "break_even_case", "break_even_table", "by_cut", "by_images",
           "by_kind", "by_sites", "codec_bytes", "codec_rows", "deal", "measured_by_kind",
           "meta_model", "plot_break_even", "plot_by_cut", "plot_by_images", "plot_by_sites",
           "plot_codecs", "plot_kinds", "regime", "round_cost", "sites_break_even",
           "to_markdown"]
