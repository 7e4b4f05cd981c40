"""Scoring a trained model or a cached teaching run once, on the whole test set.

Evaluation (one pass, after the last round): every test image is predicted once, by the
model that serves the site holding it (:meth:`Strategy.model_for`), and scored with
:func:`medseg_kit.metrics.evaluate_predictions`: Dice, IoU, precision and recall are means
over test images of per-image scores (foreground classes; see :mod:`medseg_kit.metrics`
for the conventions), HD95 (opt-in) in pixels. For ``local`` this is the image-weighted
mean over the sites' own models.

A teaching run is passed in (:func:`evaluate_run`, :func:`worst_cases`), never loaded
here: this package does not depend on :mod:`medseg_kit.teaching`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .. import metrics
from .results import cell_name


def score_predictions(pred: np.ndarray, target: np.ndarray, site_of: np.ndarray,
                      class_names: Sequence[str], hd95: bool = False) -> dict:
    """Score class-id predictions (N x H x W) against targets, pooled and per site.

    Returns a dict with ``metrics`` (:func:`~medseg_kit.metrics.evaluate_predictions`'s
    keys), ``sites`` (the same per site, plus ``site``, in site order) and per image
    ``dice`` and ``iou`` (arrays, the mean over the foreground classes).
    """
    pred, target = np.asarray(pred), np.asarray(target)
    site_of = np.asarray(site_of)
    num_classes = len(class_names)
    counts = metrics.overlap_counts(torch.from_numpy(pred.astype(np.int64)),
                                    torch.from_numpy(target.astype(np.int64)),
                                    num_classes).numpy()
    hd = metrics.hd95_per_image(pred, target, num_classes) if hd95 else None

    def score(sel) -> dict:
        out = metrics.summarize(counts[sel], class_names=class_names)
        out["n_images"] = int(sel.sum())
        if hd is not None:
            out.update(metrics.summarize_hd95(hd[sel], class_names))
        return out

    dice, iou = metrics.image_scores(counts)
    return {"metrics": score(np.ones(len(pred), bool)),
            "sites": [{"site": int(s), **score(site_of == s)} for s in np.unique(site_of)],
            "dice": dice, "iou": iou}


def evaluate_strategy(strategy, hd95: bool = False) -> dict:
    """Score the trained ``strategy`` on every test image (each by its site's model).

    Returns :func:`score_predictions`'s dict plus, per test image, ``index`` (into
    ``run.test``), ``site`` and the class-id ``pred`` maps (arrays).
    """
    run = strategy.run
    index, site_of, pred = run.predict_sites(strategy)
    target = run.test.masks[index]
    scored = score_predictions(pred, target, site_of, run.test.class_names, hd95)
    return {**scored, "index": index, "site": site_of, "pred": pred}


def evaluate_run(run, hd95: bool = False) -> dict:
    """The result of a cached teaching run (:class:`medseg_kit.teaching.TeachingRun`) in
    the form :func:`~medseg_kit.comparison.run_cell` writes, so
    :func:`~medseg_kit.comparison.summarize_cells`, the tables and the ordering checks work
    on it. Nothing is trained: the run's stored predictions are scored (each test image by
    the model its site uses).

    Example:
        >>> results = [evaluate_run(r, hd95=True) for r in teaching.run_many(configs)]
        >>> print(metric_table(summarize_cells(results), "dice"))  # doctest: +SKIP
    """
    c = run.config
    names = list(run.class_names)
    scored = score_predictions(run.predictions, run.truths, run.sites, names, hd95)
    final = run.history.final()
    return {"cell": cell_name(c.dataset, c.model, c.strategy, c.seed), "dataset": c.dataset,
            "model": c.model, "strategy": c.strategy, "seed": c.seed, **scored["metrics"],
            "train_loss": final.get("train_loss", float("nan")),
            "bytes_per_site_round": final.get("bytes_per_site_round", 0.0),
            "train_seconds": final.get("total_seconds", float("nan")),
            "rounds": c.rounds, "sites": c.sites, "size": c.size,
            "synthetic": c.data_root is None, "class_names": names,
            "site_results": scored["sites"],
            "images": [{"id": str(i), "site": int(s), "dice": float(d), "iou": float(u)}
                       for i, (s, d, u) in enumerate(zip(run.sites, scored["dice"],
                                                         scored["iou"]))],
            "config": c.to_dict(), "complete": True}


def worst_cases(run, n: int = 4, result: Mapping | None = None) -> dict[str, np.ndarray]:
    """The ``n`` lowest-Dice test images of a teaching run, worst first, in the form of
    :func:`~medseg_kit.comparison.load_worst_cases` (images, truths, preds, dice, iou,
    sites, ids, class_names). ``result``: the run's :func:`evaluate_run` dict (computed
    when not given)."""
    result = result if result is not None else evaluate_run(run)
    dice = np.array([im["dice"] for im in result["images"]])
    iou = np.array([im["iou"] for im in result["images"]])
    order = np.argsort(dice, kind="stable")[:n]
    return {"images": run.images[order], "truths": run.truths[order],
            "preds": run.predictions[order], "dice": dice[order], "iou": iou[order],
            "sites": np.asarray(run.sites)[order], "ids": order.astype(str),
            "class_names": np.array(run.class_names)}
