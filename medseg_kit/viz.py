"""Pictures: pure functions that take results and return matplotlib figures.

Nothing here trains or reads files; widgets and notebooks call these, so they are tested
without a browser. Bytes are labelled in binary units (:mod:`medseg_kit.units`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .split import Split, stage_owners
from .units import MIB, format_bytes

#: Colours of who runs a stage; position (site row / server row) and hatching say it too.
SIDE_COLORS = {"site": "#4C9F70", "front": "#4C9F70", "server": "#3A6EA5", "back": "#2E6B4A"}
CLASS_COLORS = np.array([[0, 0, 0], [255, 64, 64], [64, 200, 255], [255, 210, 0],
                         [170, 90, 255], [80, 255, 120]], dtype=float) / 255
#: One line style and marker per run (curves) or per class (outlines), so that lines are
#: told apart without colour.
LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (8, 2)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``image`` (H x W x 3, uint8 or [0, 1]) with class ids of ``mask`` tinted on top."""
    img = _float_image(image)
    m = np.asarray(mask).astype(int)
    colors = CLASS_COLORS[np.clip(m, 0, len(CLASS_COLORS) - 1)]
    a = (m > 0)[..., None] * alpha
    return np.clip(img * (1 - a) + colors * a, 0, 1)


def _float_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=float)
    if img.size and img.max() > 1.0:
        img = img / 255.0
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return img


# ------------------------------------------------------------------ curves
def plot_curves(histories: Mapping[str, object], metrics: Sequence[str] = ("train_loss", "dice")
                ) -> plt.Figure:
    """Learning curves, one line per run (``{label: History}``), one panel per metric.

    Each run has its own line style and hollow marker, drawn from the thickest line and
    largest marker to the thinnest and smallest: where two runs coincide both stay
    visible (a small marker inside a larger one, a thin line inside a thick one).
    ``histories`` values may be :class:`~medseg_kit.federated.run.History` objects or
    lists of pooled rows (dicts with ``round`` and the metrics).
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    n = max(len(histories), 1)
    for ax, m in zip(axes[0], metrics):
        for k, (label, h) in enumerate(histories.items()):
            rows = h.rows() if hasattr(h, "rows") else list(h)
            ax.plot([r["round"] + 1 for r in rows], [r[m] for r in rows],
                    ls=LINE_STYLES[k % len(LINE_STYLES)], marker=MARKERS[k % len(MARKERS)],
                    lw=1.0 + 1.6 * (n - 1 - k) / max(n - 1, 1),
                    ms=4.0 + 6.0 * (n - 1 - k) / max(n - 1, 1), fillstyle="none",
                    mew=1.3, label=label, zorder=2 + k)
        ax.set_xlabel("round")
        ax.set_title({"train_loss": "train loss", "dice": "test Dice",
                      "iou": "test IoU"}.get(m, m))
        ax.grid(alpha=0.3)
    if histories:
        axes[0][-1].legend(fontsize=8, handlelength=3.2)
    fig.tight_layout()
    return fig


def plot_bytes(results: Sequence[Mapping], key: str = "strategy") -> plt.Figure:
    """Bar chart of MiB sent per site per round (``bytes_per_site_round``) for each row,
    each bar labelled with its value; long names are slanted so they never overlap."""
    labels = [str(r[key]) for r in results]
    values = [r["bytes_per_site_round"] for r in results]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.75 * len(labels) + 1.5), 3.3))
    x = np.arange(len(labels))
    ax.bar(x, [v / MIB for v in values], color="#3A6EA5")
    for xi, v in zip(x, values):
        ax.text(xi, v / MIB, format_bytes(v), ha="center", va="bottom", fontsize=7)
    slant = max((len(s) for s in labels), default=0) > 6 or len(labels) > 5
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if slant else 0, ha="right" if slant else "center",
                       fontsize=8)
    ax.set_ylabel("MiB per site per round")
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------- the cut
def plot_cut(net, front: int, back: int, size: int, ax=None, *, title: str | None = None
             ) -> plt.Figure:
    """The U-shaped cut as a picture.

    Stages are boxes coloured by who runs them: the site front (green, site row), the
    server (blue, upper row) and the site back (dark green, hatched, site row). Arrows show
    the tensors that cross (bytes per image for activations at ``size`` x ``size``; red for
    raw image data); dotted arcs show the skips that stay on the site. A cut that sends raw
    data is drawn anyway (the caller decides whether it is allowed).

    Args:
        net: a :class:`~medseg_kit.models.staged.StagedNet`.
        front, back: the cut.
        size: the image side the byte counts are for (it is in the title).
        ax: draw into this axes (default: a new figure).
        title: replaces the default title.
    """
    split = Split(net, front, back, allow_raw=True)
    n = len(net)
    owners = stage_owners(n, front, back)
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(max(7.0, 0.85 * n + 1.5), 3.4))
    xs = np.arange(n) * 0.85
    for i, spec in enumerate(net.specs):
        y = 1.2 if owners[i] == "server" else 0.0
        ax.add_patch(FancyBboxPatch((xs[i] - 0.36, y - 0.25), 0.72, 0.5,
                                    boxstyle="round,pad=0.02", fc=SIDE_COLORS[owners[i]],
                                    ec="white", alpha=0.9,
                                    hatch="//" if owners[i] == "back" else None))
        ax.text(xs[i], y, spec.name, ha="center", va="center", color="white", fontsize=7,
                rotation=90 if len(spec.name) > 6 else 0,
                path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
    prod = net.producer()
    for c in split.crossings(size):
        if c.name == "label":
            continue
        x0 = xs[max(prod[c.name], 0)]
        up = c.direction == "up"
        dx = 0.2 if up else -0.2
        ax.add_patch(FancyArrowPatch((x0 + dx, 0.3 if up else 0.9), (x0 + dx, 0.9 if up else 0.3),
                                     arrowstyle="-|>", mutation_scale=12,
                                     color="crimson" if c.raw else "black"))
        ax.text(x0 + (0.25 if up else -0.25), 0.6,
                f"{c.name}{' (raw)' if c.raw else ''}\n{format_bytes(c.bytes)}", fontsize=6,
                ha="left" if up else "right", va="center",
                color="crimson" if c.raw else "black")
    for t in split.kept:
        i = prod[t]
        for j in (j for j, s in enumerate(net.specs) if t in s.inputs and j >= back):
            rad = 0.3 / max(xs[j] - xs[i], 0.85)  # a shallow arc below the site row
            ax.annotate("", (xs[j], -0.27), (xs[i], -0.27), arrowprops=dict(
                arrowstyle="->", ls=":", color="gray", connectionstyle=f"arc3,rad={rad:.3f}"))
            ax.text((xs[i] + xs[j]) / 2, -0.62, f"{t} stays on the site", ha="center",
                    fontsize=7, color="gray")
    ax.text(xs[0] - 0.5, 0.0, "site", ha="right", va="center", color=SIDE_COLORS["site"])
    ax.text(xs[0] - 0.5, 1.2, "server", ha="right", va="center", color=SIDE_COLORS["server"])
    if title is None:
        b = split.bytes_per_image(size)
        title = (f"{getattr(net, 'model_name', 'model')} cut ({front}, {back}), one "
                 f"{size}x{size} image: {format_bytes(b['up'])} up, "
                 f"{format_bytes(b['down'])} down per training step")
        if split.labels_to_server:
            title += " (labels go to the server)"
    ax.set_title(title, fontsize=9)
    ax.set_xlim(xs[0] - 1.3, xs[-1] + 0.6)
    ax.set_ylim(-0.8, 1.7)
    ax.axis("off")
    if own:  # fixed margins: tight_layout would lay out every label twice (slow redraws)
        ax.figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.9)
    return ax.figure


def plot_split(split: Split, size: int = 128) -> plt.Figure:
    """The U-shaped split as a picture (:func:`plot_cut` of ``split``'s cut); the title
    names the image size its byte counts are for: bytes grow with the pixels."""
    return plot_cut(split.net, split.front, split.back, size)


def channel_mosaic(tensor, max_channels: int = 16, cols: int | None = None,
                   pad: int = 1) -> np.ndarray:
    """Tile the first ``max_channels`` channels of a C x H x W tensor into one 2-D array,
    each channel scaled to [0, 1] on its own (padding is NaN, drawn blank).

    Example:
        >>> channel_mosaic(np.ones((4, 2, 2)), pad=0).shape
        (4, 4)
    """
    a = np.asarray(tensor, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected a C x H x W tensor; got shape {a.shape}")
    a = a[:max_channels]
    c, h, w = a.shape
    cols = cols or int(np.ceil(np.sqrt(c)))
    rows = int(np.ceil(c / cols))
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan, np.float32)
    lo = a.reshape(c, -1).min(1)[:, None, None]
    hi = a.reshape(c, -1).max(1)[:, None, None]
    a = (a - lo) / np.where(hi > lo, hi - lo, 1.0)
    for k in range(c):
        r, q = divmod(k, cols)
        out[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = a[k]
    return out


def plot_smashed(acts: Mapping[str, object], names: Sequence[str], *, raw: Sequence[str] = (),
                 max_channels: int = 16, title: str | None = None) -> plt.Figure:
    """What the server sees: one mosaic of channels per tensor in ``names``.

    Args:
        acts: named tensors of one image (:func:`medseg_kit.split.activations`).
        names: the tensors sent up (e.g. ``cut_report(...)["up"]`` names).
        raw: those that are raw image data: a 3-channel one is drawn as the colour image
            it is, with a red frame.
        max_channels: channels shown per tensor.
        title: figure title.
    """
    names = [t for t in names if t in acts]
    fig, axes = plt.subplots(1, max(len(names), 1),
                             figsize=(max(2.6 * len(names), 5.6), 2.9), squeeze=False)
    for ax, t in zip(axes[0], names):
        a = np.asarray(acts[t], dtype=np.float32)
        if t in raw and a.ndim == 3 and a.shape[0] == 3:
            lo, hi = a.min(), a.max()
            ax.imshow(np.transpose((a - lo) / (hi - lo if hi > lo else 1.0), (1, 2, 0)))
            for s in ax.spines.values():
                s.set_color("crimson")
                s.set_linewidth(3)
            shown = 3
        else:
            ax.imshow(channel_mosaic(a, max_channels), cmap="gray", interpolation="nearest")
            shown = min(a.shape[0], max_channels) if a.ndim == 3 else 1
        shape = "x".join(str(d) for d in a.shape)
        ax.set_title(f"{t}{' (RAW)' if t in raw else ''}: {shape}\n"
                     f"{shown} of {a.shape[0] if a.ndim == 3 else 1} channels", fontsize=8,
                     color="crimson" if t in raw else "black")
        ax.set_xticks([])
        ax.set_yticks([])
    if not names:
        axes[0][0].axis("off")
        axes[0][0].text(0.5, 0.5, "nothing crosses", ha="center", va="center")
    fig.suptitle(title or "what the server sees (one image, each channel scaled on its own)",
                 fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.78, wspace=0.1)
    return fig


# -------------------------------------------------------------- masks
def mask_outlines(mask: np.ndarray, cls: int) -> list[np.ndarray]:
    """Contours (lists of (row, col) points) around the pixels of class ``cls``,
    closed at the image border (:func:`skimage.measure.find_contours` at level 0.5)."""
    from skimage import measure

    m = np.pad((np.asarray(mask) == cls).astype(np.float32), 1)
    return [c - 1 for c in measure.find_contours(m, 0.5)]


def draw_outlines(ax, mask: np.ndarray, classes: Sequence[int], *, lw: float, color=None,
                  alpha: float = 1.0, style=None) -> None:
    """Outlines of ``classes`` in ``mask`` on ``ax``: a line style and colour per class
    (readable without colour vision) over a dark halo; ``color``/``style`` override them."""
    halo = [patheffects.withStroke(linewidth=lw + 1.6, foreground="black")]
    for k in classes:
        ls = style or LINE_STYLES[(k - 1) % len(LINE_STYLES)]
        col = color or CLASS_COLORS[k % len(CLASS_COLORS)]
        for c in mask_outlines(mask, k):
            ax.plot(c[:, 1], c[:, 0], ls=ls, lw=lw, color=col, alpha=alpha,
                    path_effects=halo)


def plot_mask_row(image: np.ndarray, truth: np.ndarray, predictions: Mapping[str, np.ndarray],
                  dice: Mapping[str, float] | None = None,
                  class_names: Sequence[str] | None = None, title: str | None = None
                  ) -> plt.Figure:
    """One test image: the image, the truth and each run's mask as outlines.

    Outlines are readable without colour vision: every class has its own line style
    (solid, dashed, dotted...) with a black halo; in each run's panel the truth is a thin
    white line beneath the run's outline. Each run's title carries its Dice for this image.

    Args:
        image: H x W x 3 (uint8 or [0, 1]).
        truth: H x W class ids.
        predictions: ``{run label: H x W class ids}``.
        dice: ``{run label: Dice of this image}`` for the titles.
        class_names: names for the legend (background first).
        title: figure title.
    """
    img = _float_image(image)
    truth = np.asarray(truth)
    k = max([int(truth.max())] + [int(np.asarray(p).max()) for p in predictions.values()]
            + [len(class_names) - 1 if class_names else 1])
    classes = list(range(1, k + 1))
    cols = 2 + len(predictions)
    fig, axes = plt.subplots(1, cols, figsize=(2.4 * cols, 2.9), squeeze=False)
    panels = [("image", None), ("truth", truth)] + list(predictions.items())
    for ax, (label, mask) in zip(axes[0], panels):
        ax.imshow(img, interpolation="nearest")
        if label != "image" and label != "truth":
            draw_outlines(ax, truth, classes, lw=0.8, color="white", alpha=0.9, style="-")
        if mask is not None:
            draw_outlines(ax, np.asarray(mask), classes, lw=1.8)
        name = label
        if dice is not None and label in dice:
            name = f"{label}\nDice {dice[label]:.3f}"
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(-0.5, img.shape[1] - 0.5)
        ax.set_ylim(img.shape[0] - 0.5, -0.5)
    names = list(class_names) if class_names else [f"class {c}" for c in range(k + 1)]
    handles = [Line2D([], [], ls=LINE_STYLES[(c - 1) % len(LINE_STYLES)], lw=1.8,
                      color=CLASS_COLORS[c % len(CLASS_COLORS)], label=names[c])
               for c in classes if c < len(names)]
    if predictions:
        handles.append(Line2D([], [], lw=0.8, color="0.6",
                              label="truth (thin line under each run)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=7,
               frameon=False, handlelength=3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.12, top=0.8 if title else 0.86,
                        wspace=0.05)
    return fig


def plot_predictions(images: np.ndarray, truths: np.ndarray,
                     predictions: Mapping[str, np.ndarray], max_rows: int = 4) -> plt.Figure:
    """A grid: image | ground truth | one column per model's prediction.

    ``images``: N x H x W x 3; ``truths`` and each prediction: N x H x W class ids.
    """
    n = min(len(images), max_rows)
    cols = 2 + len(predictions)
    fig, axes = plt.subplots(n, cols, figsize=(2.1 * cols, 2.1 * n), squeeze=False)
    for i in range(n):
        panels = [("image", images[i]), ("truth", overlay(images[i], truths[i]))]
        panels += [(k, overlay(images[i], p[i])) for k, p in predictions.items()]
        for ax, (title, im) in zip(axes[i], panels):
            ax.imshow(im)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
