"""Figures for the comparison matrix (:mod:`medseg_kit.compare`, notebook 06).

Pure functions: they take results (the dicts :func:`~medseg_kit.compare.run_matrix`
returns, the rows of :func:`~medseg_kit.compare.summarize_cells`, or the arrays of
:func:`~medseg_kit.compare.load_worst_cases`) and return matplotlib figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .viz import overlay

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
    labelled with the image id, its site and its Dice (``cases``: from
    :func:`~medseg_kit.compare.load_worst_cases`)."""
    n = min(len(cases["images"]), max_rows)
    if n == 0:
        raise ValueError("no worst cases to show (the cell kept none)")
    fig, axes = plt.subplots(n, 3, figsize=(6.3, 2.1 * n + (0.3 if title else 0)),
                             squeeze=False)
    for i in range(n):
        img = cases["images"][i]
        panels = [("image", img), ("truth", overlay(img, cases["truths"][i])),
                  ("prediction", overlay(img, cases["preds"][i]))]
        for ax, (name, im) in zip(axes[i], panels):
            ax.imshow(im)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
        axes[i][0].set_ylabel(f"{str(cases['ids'][i])[:14]}\nsite {int(cases['sites'][i])} · "
                              f"Dice {float(cases['dice'][i]):.2f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
