"""Segmentation metrics: Dice and IoU, per image and per class, aggregated two ways.

Conventions (stated once, used everywhere):

* a prediction is a class-id map; :func:`predict` turns logits into one (one logit:
  ``logit > 0``, i.e. probability > 0.5; several: arg-max);
* for a binary task the reported Dice/IoU are those of the foreground class (1);
* when a class is absent from both the prediction and the target of an image, its Dice
  and IoU for that image are **1.0** (perfect agreement on "nothing there"); when it is
  absent from one only, they are 0.0;
* ``mean`` aggregation averages the per-image scores (the paper-style figure);
  ``pooled`` sums intersections and sizes over all images first (no per-image
  averaging: large objects weigh more).
"""

from __future__ import annotations

import numpy as np
import torch


def predict(logits: torch.Tensor) -> torch.Tensor:
    """Class ids (N x H x W, long) from logits (N x C x H x W)."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def overlap_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int
                   ) -> torch.Tensor:
    """Per image and class: (intersection, predicted pixels, target pixels).

    Args:
        pred, target: class-id maps (N x H x W).
        num_classes: number of classes including background (2 for binary).

    Returns:
        Tensor N x num_classes x 3 (int64).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                         "must have the same shape")
    n = pred.shape[0]
    p = torch.nn.functional.one_hot(pred.reshape(n, -1).long(), num_classes)
    t = torch.nn.functional.one_hot(target.reshape(n, -1).long(), num_classes)
    inter = (p & t).sum(1)
    return torch.stack([inter, p.sum(1), t.sum(1)], dim=-1)


def scores_from_counts(counts: np.ndarray | torch.Tensor, empty: float = 1.0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU from ``(..., 3)`` counts; ``empty`` where both sets are empty."""
    c = np.asarray(counts, dtype=np.float64)
    inter, ps, ts = c[..., 0], c[..., 1], c[..., 2]
    denom = ps + ts
    union = denom - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom > 0, 2 * inter / denom, empty)
        iou = np.where(union > 0, inter / union, empty)
    return dice, iou


def dice_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int = 2
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per-image, per-class Dice and IoU (arrays N x num_classes)."""
    return scores_from_counts(overlap_counts(pred, target, num_classes).cpu())


def summarize(counts: np.ndarray, foreground_only: bool = True) -> dict[str, float]:
    """Aggregate N x C x 3 counts into ``dice``/``iou`` (mean of per-image scores over the
    foreground classes) and ``dice_pooled``/``iou_pooled``."""
    counts = np.asarray(counts)
    cls = slice(1, None) if foreground_only and counts.shape[1] > 1 else slice(None)
    dice, iou = scores_from_counts(counts[:, cls])
    pdice, piou = scores_from_counts(counts[:, cls].sum(0))
    return {"dice": float(dice.mean()), "iou": float(iou.mean()),
            "dice_pooled": float(pdice.mean()), "iou_pooled": float(piou.mean())}
