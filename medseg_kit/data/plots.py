"""Pictures of datasets and sites: pure functions that return matplotlib figures.

Nothing here touches the screen or the disk; a notebook shows the figure, a test checks
it, a script saves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .base import SegData
from .partition import Partition

# Mask colours by class id (background first, left transparent in overlays).
CLASS_COLOURS = ("#000000", "#ffd400", "#00c8ff", "#ff3b8d", "#7cff4f", "#b967ff",
                 "#ff8c1a", "#ffffff")


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.3,
            colours: Sequence[str] = CLASS_COLOURS) -> np.ndarray:
    """An RGB float image (H, W, 3) in [0, 1]: ``image`` with each foreground class of
    ``mask`` tinted in its colour and outlined."""
    img = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(float)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    out = img.copy()
    for k in np.unique(mask):
        if k == 0:
            continue
        m = mask == k
        col = np.array(to_rgb(colours[int(k) % len(colours)]))
        out[m] = (1 - alpha) * out[m] + alpha * col
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        out[edge] = col
    return np.clip(out, 0, 1)


def _legend(fig: Figure, class_names: Sequence[str],
            colours: Sequence[str] = CLASS_COLOURS) -> None:
    handles = [Patch(color=colours[k % len(colours)], label=n)
               for k, n in enumerate(class_names) if k > 0]
    height = fig.get_size_inches()[1]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.32 / height),
               ncol=min(5, len(handles)), fontsize=8, frameon=False)


def plot_samples(data: SegData, indices: Sequence[int] | None = None, n: int = 8,
                 cols: int = 4, show_mask: bool = True, label_key: str | None = None,
                 title: str | None = None) -> Figure:
    """A grid of images with their masks overlaid.

    Args:
        data: the dataset.
        indices: which samples (default: the first ``n``).
        n: how many when ``indices`` is None.
        cols: images per row.
        show_mask: overlay the mask (else the plain image).
        label_key: a metadata field to print under each image (e.g. ``dx``).
        title: figure title (default: dataset name, and whether it is synthetic).
    """
    idx = list(range(min(n, len(data)))) if indices is None else list(indices)
    cols = max(1, min(cols, len(idx)))
    rows = max(1, int(np.ceil(len(idx) / cols)))
    label_h = 0.25 if label_key else 0.0
    height = (2.2 + label_h) * rows + 0.75
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, height), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), idx):
        img = data.images[i]
        shown = overlay(img, data.masks[i]) if show_mask else (
            img.squeeze() if img.shape[-1] == 1 else img)
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        if label_key:
            ax.set_title(str(data.meta[i].get(label_key, "")), fontsize=8)
    if show_mask:
        _legend(fig, data.class_names)
    kind = "synthetic" if data.synthetic else "real"
    fig.suptitle(title or f"{data.name} ({kind}, {len(data)} images, {data.size} px)",
                 fontsize=10, y=1 - 0.12 / height)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.72 / height,
                        wspace=0.04, hspace=0.04 + 0.12 * bool(label_key))
    return fig


def plot_class_balance(data: SegData, meta_key: str | None = None) -> Figure:
    """Pixel share and image share of each class, plus a metadata histogram if asked."""
    k = data.num_classes
    flat = data.masks.reshape(len(data), -1)
    pix = data.class_pixel_fractions()
    present = np.array([(flat == c).any(axis=1).mean() for c in range(k)])
    panels = 3 if meta_key else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.2))
    colours = [CLASS_COLOURS[c % len(CLASS_COLOURS)] if c else "#888888" for c in range(k)]
    names = list(data.class_names)
    axes[0].bar(range(k), pix, color=colours, edgecolor="k")
    axes[0].set(title="share of pixels", xticks=range(k), ylim=(0, 1))
    axes[0].set_xticklabels(names, fontsize=7, rotation=30, ha="right")
    axes[1].bar(range(k), present, color=colours, edgecolor="k")
    axes[1].set(title="share of images containing the class", xticks=range(k), ylim=(0, 1.05))
    axes[1].set_xticklabels(names, fontsize=7, rotation=30, ha="right")
    if meta_key:
        vals = [str(m.get(meta_key, "unknown")) for m in data.meta]
        uniq, counts = np.unique(vals, return_counts=True)
        order = np.argsort(-counts)
        axes[2].bar(range(len(uniq)), counts[order], color="#4c72b0")
        axes[2].set(title=f"images per {meta_key}", xticks=range(len(uniq)))
        axes[2].set_xticklabels(uniq[order], rotation=45, ha="right", fontsize=8)
    fig.suptitle(f"{data.name}: class balance", fontsize=10)
    fig.tight_layout()
    return fig


def plot_partition(partition: Partition, ax=None, title: str | None = None,
                   legend: bool | str = True):
    """Stacked bars: one bar per site, split by label (the partition's summary).

    ``legend``: True (right of the axes), ``"below"``, or False."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
    summ = partition.summary
    sites = np.arange(len(partition))
    if "histogram" in summ:
        hist = np.asarray(summ["histogram"])
        cmap = plt.get_cmap("tab20" if hist.shape[1] > 10 else "tab10")
        bottom = np.zeros(len(sites))
        for j, name in enumerate(summ["label_names"]):
            ax.bar(sites, hist[:, j], bottom=bottom, color=cmap(j % cmap.N), label=name)
            bottom += hist[:, j]
        if legend == "below":
            ax.legend(fontsize=7, title=summ.get("by"), title_fontsize=7, ncol=2,
                      loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
        elif legend:
            ax.legend(fontsize=7, title=summ.get("by"), title_fontsize=7, ncol=1,
                      loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    else:
        ax.bar(sites, summ["counts"], color="#4c72b0")
    ax.set_xticks(sites)
    ax.set_xticklabels([f"site {s}" for s in sites], fontsize=8)
    ax.set_ylabel("images")
    params = {k: v for k, v in partition.params.items() if k not in ("by", "min_size")}
    ax.set_title(title or f"{partition.scheme} {params}", fontsize=9)
    return ax.figure if own else ax


def plot_partitions(partitions: Mapping[str, Partition], normalize: bool = False) -> Figure:
    """Several partitions side by side (one panel each), sharing the label legend.

    With ``normalize`` every bar shows label shares instead of counts."""
    labels = {tuple(p.summary.get("label_names", ())) for p in partitions.values()}
    shared = len(labels) == 1
    height = 3.4 if shared else 3.4 + 0.16 * max(len(x) for x in labels) / 2 + 0.4
    fig, axes = plt.subplots(1, len(partitions),
                             figsize=(3.4 * len(partitions) + 1.6 * shared, height),
                             squeeze=False)
    for j, (name, part) in enumerate(partitions.items()):
        shown = part
        if normalize and "histogram" in part.summary:
            shown = _normalized(part)
        legend = (j == len(partitions) - 1) if shared else "below"
        plot_partition(shown, ax=axes[0, j], title=name, legend=legend)
        if normalize:
            axes[0, j].set_ylabel("share of site")
    fig.tight_layout()
    return fig


def _normalized(part: Partition) -> Partition:
    hist = np.asarray(part.summary["histogram"], float)
    copy = Partition(list(part), part.scheme, part.params)
    copy.summary = {**part.summary,
                    "histogram": (hist / np.maximum(1, hist.sum(1, keepdims=True))).tolist()}
    return copy


def plot_site_images(data: SegData, partition: Partition, per_site: int = 4) -> Figure:
    """The first ``per_site`` images of every site, one row per site (e.g. after
    :func:`~medseg_kit.data.partition.apply_site_shift`, to see each scanner's look)."""
    rows = len(partition)
    fig, axes = plt.subplots(rows, per_site, figsize=(1.9 * per_site, 1.9 * rows),
                             squeeze=False)
    for s, idx in enumerate(partition):
        for j in range(per_site):
            ax = axes[s, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(idx):
                img = data.images[idx[j]]
                ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None)
            elif j > 0:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(f"site {s}", fontsize=9)
    fig.suptitle(f"{data.name}: images as each site records them", fontsize=10)
    fig.tight_layout()
    return fig
