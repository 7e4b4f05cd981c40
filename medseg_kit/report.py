"""Figures for comparing runs: the comparison matrix (:mod:`medseg_kit.comparison`, notebook 06),
the gaps and per-site scores of the non-IID runs (05), masks as outlines.

Pure functions: they take results (the dicts :func:`~medseg_kit.comparison.run_matrix`
returns, the rows of :func:`~medseg_kit.comparison.summarize_cells`, or the arrays of
:func:`~medseg_kit.comparison.load_worst_cases`) and return matplotlib figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D

from .viz import CLASS_COLORS, LINE_STYLES, draw_outlines

METRIC_TITLES = {"iou": "IoU", "dice": "Dice", "precision": "precision", "recall": "recall",
                 "hd95": "HD95 (px)"}


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def _grouped_bars(ax, groups: Sequence[str], series: Mapping[str, tuple[list, list]],
                  scale: float = 1.0) -> None:
    """Bars: one group per entry of ``groups``, one bar per series (values, errors)."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for j, (label, (vals, errs)) in enumerate(series.items()):
        ax.bar(x + (j - (len(series) - 1) / 2) * width, np.asarray(vals, float) * scale,
               width, yerr=np.asarray(errs, float) * scale, capsize=2, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def plot_comparison(summary: Sequence[Mapping], metric: str = "iou") -> plt.Figure:
    """One panel per dataset; for each model one bar per strategy: ``metric`` (mean over
    seeds, in %; HD95 in pixels) with the seed standard deviation as error bar."""
    datasets = _unique(r["dataset"] for r in summary)
    models = _unique(r["model"] for r in summary)
    strategies = _unique(r["strategy"] for r in summary)
    by = {(r["dataset"], r["model"], r["strategy"]): r for r in summary}
    scale = 1.0 if metric == "hd95" else 100.0
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(3.2, 1.1 * len(models) *
                             max(len(strategies), 2) / 2 + 1.2) * len(datasets), 3.2),
                             squeeze=False, sharey=metric != "hd95")
    for ax, ds in zip(axes[0], datasets):
        series = {}
        for s in strategies:
            rows = [by.get((ds, m, s), {}) for m in models]
            series[s] = ([r.get(metric, np.nan) for r in rows],
                         [r.get(f"{metric}_std", 0.0) for r in rows])
        _grouped_bars(ax, models, series, scale)
        ax.set_title(ds, fontsize=10)
    title = METRIC_TITLES.get(metric, metric)
    axes[0][0].set_ylabel(title if metric == "hd95" else f"test {title} (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_site_scores(results: Sequence[Mapping], dataset: str, model: str,
                     metric: str = "iou") -> plt.Figure:
    """For one (dataset, model): each site's test ``metric`` (%) per strategy, mean over
    seeds — does a strategy serve every hospital, or only some?"""
    rows = [r for r in results if r["dataset"] == dataset and r["model"] == model]
    if not rows:
        raise ValueError(f"no results for dataset {dataset!r} and model {model!r}")
    strategies = _unique(r["strategy"] for r in rows)
    n_sites = max(len(r["site_results"]) for r in rows)
    series = {}
    for s in strategies:
        per_site = [[r["site_results"][i][metric] for r in rows
                     if r["strategy"] == s and i < len(r["site_results"])]
                    for i in range(n_sites)]
        series[s] = ([np.mean(v) if v else np.nan for v in per_site],
                     [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in per_site])
    fig, ax = plt.subplots(figsize=(1.2 * n_sites * max(len(strategies), 2) / 2 + 1.5, 3.0))
    _grouped_bars(ax, [f"site {i}" for i in range(n_sites)], series, 100.0)
    ax.set_ylabel(f"test {METRIC_TITLES.get(metric, metric)} (%)")
    ax.set_title(f"{model} on {dataset}: per site", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_per_class(summary: Sequence[Mapping], dataset: str, metric: str = "dice"
                   ) -> plt.Figure:
    """For one dataset: ``metric/<class>`` (%) per foreground class, one bar per
    (model, strategy) — which structures are hard?"""
    rows = [r for r in summary if r["dataset"] == dataset]
    if not rows:
        raise ValueError(f"no results for dataset {dataset!r}")
    classes = [k.split("/", 1)[1] for k in rows[0]
               if k.startswith(f"{metric}/") and not k.endswith("_std")
               and k != f"{metric}/background"]
    series = {f"{r['model']} {r['strategy']}": (
        [r.get(f"{metric}/{c}", np.nan) for c in classes],
        [r.get(f"{metric}/{c}_std", 0.0) for c in classes]) for r in rows}
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(classes) * len(series) + 1.5), 3.0))
    _grouped_bars(ax, [c.replace("_", " ") for c in classes], series, 100.0)
    ax.set_ylabel(f"test {METRIC_TITLES.get(metric, metric)} (%)")
    ax.set_title(f"{dataset}: per class", fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def plot_worst_cases(cases: Mapping[str, np.ndarray], title: str | None = None,
                     max_rows: int = 6) -> plt.Figure:
    """The lowest-Dice test images of a cell: image | truth | prediction, one row each,
    as outlines (each class its own line style, readable without colour vision; in the
    prediction panel the truth is a thin white line beneath), labelled with the image id,
    its site and its Dice. An empty prediction is said in words. ``cases``: from
    :func:`~medseg_kit.comparison.load_worst_cases` or :func:`~medseg_kit.comparison.worst_cases`.
    """
    n = min(len(cases["images"]), max_rows)
    if n == 0:
        raise ValueError("no worst cases to show (the cell kept none)")
    names = [str(c) for c in cases.get("class_names", [])]
    classes = list(range(1, max(len(names), 2)))
    fig, axes = plt.subplots(n, 3, figsize=(6.3, 2.1 * n + 0.5 + (0.3 if title else 0)),
                             squeeze=False)
    for i in range(n):
        img = cases["images"][i]
        truth, pred = np.asarray(cases["truths"][i]), np.asarray(cases["preds"][i])
        for j, ax in enumerate(axes[i]):
            ax.imshow(img, interpolation="nearest")
            if j == 2:
                draw_outlines(ax, truth, classes, lw=0.8, color="white", style="-")
                draw_outlines(ax, pred, classes, lw=1.8)
                if not (pred > 0).any():
                    ax.text(0.5, 0.06, "empty prediction", transform=ax.transAxes,
                            ha="center", fontsize=7, color="white",
                            bbox=dict(fc="black", alpha=0.6, lw=0))
            elif j == 1:
                draw_outlines(ax, truth, classes, lw=1.8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-0.5, img.shape[1] - 0.5)
            ax.set_ylim(img.shape[0] - 0.5, -0.5)
            if i == 0:
                ax.set_title(("image", "truth", "prediction (truth in white)")[j], fontsize=8)
        axes[i][0].set_ylabel(f"{str(cases['ids'][i])[:14]}\nsite {int(cases['sites'][i])} · "
                              f"Dice {float(cases['dice'][i]):.2f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    _class_legend(fig, names, classes, 0.4 / (2.1 * n + 0.5))
    return fig


def plot_outline_grid(images: np.ndarray, truths: np.ndarray,
                      predictions: Mapping[str, np.ndarray],
                      class_names: Sequence[str] | None = None,
                      row_labels: Sequence[str] | None = None) -> plt.Figure:
    """A grid of outlines: one row per image; image | truth | one column per run's
    prediction (over a thin white truth), each run's per-image Dice in its panel.

    ``images``: N x H x W x 3; ``truths`` and each prediction: N x H x W class ids.
    """
    from .metrics import image_scores, overlap_counts

    names = [str(c) for c in class_names] if class_names is not None else ["bg", "fg"]
    classes = list(range(1, max(len(names), 2)))
    n, cols = len(images), 2 + len(predictions)
    fig, axes = plt.subplots(n, cols, figsize=(2.1 * cols, 2.1 * n + 0.5), squeeze=False)
    dice = {k: image_scores(overlap_counts(torch.as_tensor(np.asarray(p)).long(),
                                           torch.as_tensor(np.asarray(truths)).long(),
                                           len(names)).numpy())[0]
            for k, p in predictions.items()}
    for i in range(n):
        panels = [("image", None), ("truth", truths[i])]
        panels += [(k, np.asarray(p[i])) for k, p in predictions.items()]
        for j, (ax, (label, mask)) in enumerate(zip(axes[i], panels)):
            ax.imshow(images[i], interpolation="nearest")
            if j >= 2:
                draw_outlines(ax, np.asarray(truths[i]), classes, lw=0.8, color="white", style="-")
                ax.set_title(f"{label}: Dice {dice[label][i]:.2f}", fontsize=7)
            elif i == 0:
                ax.set_title(label, fontsize=8)
            if mask is not None:
                draw_outlines(ax, np.asarray(mask), classes, lw=1.8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-0.5, images[i].shape[1] - 0.5)
            ax.set_ylim(images[i].shape[0] - 0.5, -0.5)
        if row_labels is not None:
            axes[i][0].set_ylabel(row_labels[i], fontsize=8)
    _class_legend(fig, names, classes, 0.4 / (2.1 * n + 0.5))
    return fig


def _class_legend(fig, names: Sequence[str], classes: Sequence[int], bottom: float) -> None:
    handles = [Line2D([], [], ls=LINE_STYLES[(k - 1) % len(LINE_STYLES)], lw=1.8,
                      color=CLASS_COLORS[k % len(CLASS_COLORS)],
                      label=names[k] if k < len(names) else f"class {k}") for k in classes]
    handles.append(Line2D([], [], lw=0.8, color="gray", label="truth (under a prediction)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=7,
               frameon=False, handlelength=3)
    fig.tight_layout(rect=(0, bottom, 1, 1))


HATCHES = ("", "//", "..", "xx", "\\\\", "oo")


def plot_gaps(gaps: Sequence[Mapping], by: str = "partition",
              threshold: float | None = None) -> plt.Figure:
    """One bar per group: the mean paired gap (points, from
    :func:`~medseg_kit.comparison.paired_gaps`) with its seed standard deviation, each seed's
    gap as a dot, the value written on the bar, and an optional ``threshold`` line."""
    if not gaps:
        raise ValueError("no gaps to plot")
    labels = [str(g[by]) for g in gaps]
    x = np.arange(len(gaps))
    mean = np.array([g["gap_mean"] for g in gaps])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(gaps) + 1.5), 3.2))
    ax.bar(x, mean, 0.6, yerr=[g["gap_std"] for g in gaps], capsize=3, color="#3A6EA5",
           alpha=0.85)
    for xi, g in zip(x, gaps):
        vals = g["gap_values"]
        ax.plot(np.full(len(vals), xi) + np.linspace(-0.12, 0.12, len(vals)), vals, "ko",
                ms=3, fillstyle="none")
        ax.annotate(f"{g['gap_mean']:+.1f}", (xi + 0.3, max(g["gap_mean"], 0)), xytext=(2, 2),
                    textcoords="offset points", ha="left", fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    if threshold is not None:
        ax.axhline(threshold, color="crimson", ls="--", lw=1,
                   label=f"target: {threshold:+g} points")
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    g0 = gaps[0]
    ax.set_ylabel(f"{g0['hi']} − {g0['lo']} (Dice points)")
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def plot_site_bars(rows: Sequence[Mapping], panel: str = "partition",
                   series: str = "strategy", metric: str = "dice") -> plt.Figure:
    """One panel per value of ``panel``; in each, one group of bars per site (its training
    images under the name) and one bar per ``series`` value (hatched differently, so it
    reads without colour), ``metric`` in % with the seed standard deviation.
    ``rows``: from :func:`~medseg_kit.comparison.site_rows`."""
    panels = _unique(r[panel] for r in rows)
    names = _unique(r[series] for r in rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False,
                             sharey=True)
    for ax, p in zip(axes[0], panels):
        mine = [r for r in rows if r[panel] == p]
        sites = sorted({r["site"] for r in mine})
        width = 0.8 / max(len(names), 1)
        for j, name in enumerate(names):
            by_site = {r["site"]: r for r in mine if r[series] == name}
            vals = [100 * by_site[s][f"{metric}_mean"] if s in by_site else np.nan
                    for s in sites]
            errs = [100 * by_site[s][f"{metric}_std"] if s in by_site else 0 for s in sites]
            ax.bar(np.arange(len(sites)) + (j - (len(names) - 1) / 2) * width, vals, width,
                   yerr=errs, capsize=2, label=name, hatch=HATCHES[j % len(HATCHES)],
                   edgecolor="black", lw=0.5)
        n_train = {r["site"]: r["n_train"] for r in mine}
        ax.set_xticks(np.arange(len(sites)))
        ax.set_xticklabels([f"site {s}\n{n_train[s]:.0f} train" for s in sites], fontsize=7)
        ax.set_title(str(p), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"test {METRIC_TITLES.get(metric, metric)} per site (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig
