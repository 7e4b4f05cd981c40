"""Pictures: pure functions that take results and return matplotlib figures.

Nothing here trains or reads files; widgets and notebooks call these, so they are tested
without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .split import Split

SIDE_COLORS = {"site": "#4C9F70", "server": "#3A6EA5"}
CLASS_COLORS = np.array([[0, 0, 0], [255, 64, 64], [64, 200, 255], [255, 210, 0],
                         [170, 90, 255], [80, 255, 120]], dtype=float) / 255


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``image`` (H x W x 3, uint8 or [0, 1]) with class ids of ``mask`` tinted on top."""
    img = np.asarray(image, dtype=float)
    if img.max() > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    m = np.asarray(mask).astype(int)
    colors = CLASS_COLORS[np.clip(m, 0, len(CLASS_COLORS) - 1)]
    a = (m > 0)[..., None] * alpha
    return np.clip(img * (1 - a) + colors * a, 0, 1)


def plot_curves(histories: Mapping[str, object], metrics: Sequence[str] = ("train_loss", "dice")
                ) -> plt.Figure:
    """Learning curves, one line per run (``{label: History}``), one panel per metric."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for label, h in histories.items():
            rows = h.rows()
            ax.plot([r["round"] + 1 for r in rows], [r[m] for r in rows], marker="o", ms=3,
                    label=label)
        ax.set_xlabel("round")
        ax.set_title({"train_loss": "train loss", "dice": "test Dice",
                      "iou": "test IoU"}.get(m, m))
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
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


def plot_split(split: Split, size: int = 128) -> plt.Figure:
    """The U-shaped split as a picture: stages coloured by where they run, arrows for what
    crosses the wire (with bytes per image), dotted arcs for the skips that stay home."""
    net = split.net
    n = len(net)
    cross = {c.name: c for c in split.crossings(size)}
    fig, ax = plt.subplots(figsize=(max(7.0, 0.85 * n + 1.5), 3.4))
    xs = np.arange(n) * 0.85
    for i, spec in enumerate(net.specs):
        side = "server" if split.front <= i < split.back else "site"
        y = 1.2 if side == "server" else 0.0
        ax.add_patch(FancyBboxPatch((xs[i] - 0.36, y - 0.25), 0.72, 0.5,
                                    boxstyle="round,pad=0.02", fc=SIDE_COLORS[side],
                                    ec="white", alpha=0.9))
        ax.text(xs[i], y, spec.name, ha="center", va="center", color="white", fontsize=7,
                rotation=90 if len(spec.name) > 6 else 0)
    for t, c in cross.items():
        if t == "label":
            continue
        i = net.producer()[t] if t != "x" else 0
        x0 = xs[max(i, 0)]
        up = c.direction == "up"
        arrow = FancyArrowPatch((x0 + (0.2 if up else -0.2), 0.3 if up else 0.9),
                                (x0 + (0.2 if up else -0.2), 0.9 if up else 0.3),
                                arrowstyle="-|>", mutation_scale=12,
                                color="crimson" if c.raw else "black")
        ax.add_patch(arrow)
        ax.text(x0 + (0.25 if up else -0.25), 0.6, f"{t}\n{c.bytes / 1024:.0f} KiB",
                fontsize=6, ha="left" if up else "right", va="center")
    for t in split.kept:
        i = net.producer()[t]
        readers = [j for j, s in enumerate(net.specs) if t in s.inputs and j >= split.back]
        for j in readers:  # a shallow arc below the site row (sagitta ~0.3)
            rad = 0.3 / max(xs[j] - xs[i], 0.85)
            ax.annotate("", (xs[j], -0.27), (xs[i], -0.27), arrowprops=dict(
                arrowstyle="->", ls=":", color="gray", connectionstyle=f"arc3,rad={rad:.3f}"))
            ax.text((xs[i] + xs[j]) / 2, -0.62, f"{t} stays on the site", ha="center",
                    fontsize=7, color="gray")
    ax.text(xs[0] - 0.5, 0.0, "site", ha="right", va="center", color=SIDE_COLORS["site"])
    ax.text(xs[0] - 0.5, 1.2, "server", ha="right", va="center", color=SIDE_COLORS["server"])
    b = split.bytes_per_image(size)
    ax.set_title(f"{getattr(net, 'model_name', 'model')} cut at ({split.front}, {split.back}): "
                 f"{b['up'] / 1024:.0f} KiB up, {b['down'] / 1024:.0f} KiB down per image "
                 f"per step at {size}x{size}", fontsize=9)
    ax.set_xlim(xs[0] - 1.3, xs[-1] + 0.6)
    ax.set_ylim(-0.8, 1.7)
    ax.axis("off")
    fig.tight_layout()
    return fig


def plot_bytes(results: Sequence[Mapping], key: str = "strategy") -> plt.Figure:
    """Bar chart of MB sent per site per round for each result row."""
    fig, ax = plt.subplots(figsize=(4.5, 3))
    labels = [r[key] for r in results]
    ax.bar(labels, [r["bytes_per_site_round"] / 1e6 for r in results], color="#3A6EA5")
    ax.set_ylabel("MB per site per round")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
