"""Segmentation metrics: Dice, IoU, precision, recall and HD95, per image and per class.

Conventions (stated once, used everywhere):

* a prediction is a class-id map; :func:`predict` turns logits into one (one logit:
  ``logit > 0``, i.e. probability > 0.5; several: arg-max);
* everything is computed from per-image, per-class counts (:func:`overlap_counts`:
  intersection, predicted pixels, target pixels), so every number is an exact function of
  the predictions;
* for a binary task the reported Dice/IoU are those of the foreground class (1); the
  headline figures (``dice``, ``iou``, ``precision``, ``recall``, ``hd95``) are means over
  the foreground classes; ``dice_with_bg``/``iou_with_bg`` include the background;
* when a class is absent from both the prediction and the target of an image, its Dice,
  IoU, precision and recall for that image are **1.0** (perfect agreement on "nothing
  there"); when it is absent from one only, they are 0.0 (precision and recall likewise:
  a zero denominator scores 1.0 only when both sets are empty). So an empty prediction of a
  non-empty target scores 0 (a missed object), a non-empty prediction of an empty target
  scores 0 (a false alarm), and every image counts in the mean. MONAI's ``DiceMetric``
  differs by default (``ignore_empty=True``): an image whose *target* is empty gets NaN and
  is left out of the mean, whatever was predicted, so neither a correct "nothing there"
  nor a false alarm on such an image moves its figure. On a set with empty targets the two
  means differ; MONAI's is the kit's per-image Dice averaged over the images whose target
  holds the class (``counts[:, k, 2] > 0`` in :func:`overlap_counts`' terms);
* ``mean`` aggregation (``dice``, ``iou``, ``precision``, ``recall``, and every
  ``<metric>/<class>``) averages the per-image scores (the paper-style figure);
  ``pooled`` (``dice_pooled``, ``iou_pooled``) sums intersections and sizes over all
  images first (no per-image averaging: large objects weigh more);
* HD95 (:func:`hd95_per_image`), in pixels: the 95th percentile (linear interpolation,
  ``numpy.percentile``) of the symmetric surface distances, i.e. of the distances from
  every boundary pixel of the prediction to the nearest boundary pixel of the target
  *and* from every target boundary pixel to the nearest predicted one, pooled in one set
  (the MedPy ``hd95`` definition: ``variant="medpy"``, the default). MONAI's
  ``compute_hausdorff_distance(..., percentile=95)`` takes the 95th percentile of each
  direction separately and reports the larger (``variant="monai"``). The two agree when
  both directions look alike (a shifted copy of the target) and can be many pixels apart
  otherwise: stray predicted pixels far from the target, more than 5 % of the predicted
  boundary but less than 5 % of both boundaries together, set MONAI's figure to their
  distance while MedPy's stays near the typical one (a case of 20 px against 3 px is worked
  out in ``tests/test_metrics_extended.py``). Say which one a number is. A boundary pixel
  is a mask pixel with a 4-neighbour outside the mask (the mask minus its erosion by a 3x3
  cross; outside the image counts as outside the mask); distances are Euclidean, from
  ``scipy.ndimage``'s exact distance transform. When both sets are empty the HD95 of that
  image and class is **NaN** and left out of the means; when only one is empty it is the
  **image diagonal** ``sqrt(H**2 + W**2)`` (the largest distance possible: a missed or
  hallucinated object is penalised, not ignored). Both variants use these conventions
  (MONAI itself warns and returns NaN or inf there). HD95 costs a distance transform per
  image and class, so it is opt-in (``hd95=True``) and meant for the final evaluation only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage


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


def precision_recall_from_counts(counts: np.ndarray | torch.Tensor
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """Precision (intersection / predicted) and recall (intersection / target) from
    ``(..., 3)`` counts; a zero denominator gives 1.0 when both sets are empty, else 0.0."""
    c = np.asarray(counts, dtype=np.float64)
    inter, ps, ts = c[..., 0], c[..., 1], c[..., 2]
    both_empty = np.where((ps == 0) & (ts == 0), 1.0, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(ps > 0, inter / ps, both_empty)
        recall = np.where(ts > 0, inter / ts, both_empty)
    return precision, recall


def class_keys(num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """The names used in per-class keys (``dice/<name>``): ``class_names`` with spaces
    turned into underscores (``zona_pellucida``), or the class ids as strings."""
    if class_names is None:
        return [str(k) for k in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names {list(class_names)} for "
                         f"{num_classes} classes; expected one name per class, background first")
    return [str(n).strip().replace(" ", "_") for n in class_names]


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if a.size else float("nan")


def summarize(counts: np.ndarray, foreground_only: bool = True,
              class_names: Sequence[str] | None = None, per_class: bool = True
              ) -> dict[str, float]:
    """Aggregate N x C x 3 counts (:func:`overlap_counts`) into a flat dict.

    Keys (all from the same counts, no second pass over the pixels):

    * ``dice``, ``iou``: mean over images and foreground classes of the per-image scores
      (over all classes with ``foreground_only=False``);
    * ``dice_pooled``, ``iou_pooled``: the same classes, counts summed over images first;
    * ``precision``, ``recall``: mean over images and the same classes;
    * ``dice_with_bg``, ``iou_with_bg``: mean over images and all classes, background
      included;
    * with ``per_class``: ``dice/<name>``, ``iou/<name>``, ``precision/<name>``,
      ``recall/<name>`` for every class (background included), the mean over images; names
      from :func:`class_keys`.

    Example:
        >>> c = overlap_counts(torch.tensor([[[1, 1, 0, 0]]]), torch.tensor([[[0, 1, 1, 0]]]), 2)
        >>> s = summarize(c.numpy(), class_names=("background", "polyp"))
        >>> s["dice"], s["dice/polyp"], round(s["iou"], 4), s["precision"]
        (0.5, 0.5, 0.3333, 0.5)
    """
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[-1] != 3:
        raise ValueError(f"counts must be N x C x 3 (from overlap_counts); got {counts.shape}")
    num_classes = counts.shape[1]
    cls = slice(1, None) if foreground_only and num_classes > 1 else slice(None)
    dice, iou = scores_from_counts(counts)
    precision, recall = precision_recall_from_counts(counts)
    pdice, piou = scores_from_counts(counts[:, cls].sum(0))
    out = {"dice": _mean(dice[:, cls]), "iou": _mean(iou[:, cls]),
           "dice_pooled": _mean(pdice), "iou_pooled": _mean(piou),
           "precision": _mean(precision[:, cls]), "recall": _mean(recall[:, cls]),
           "dice_with_bg": _mean(dice), "iou_with_bg": _mean(iou)}
    if per_class:
        for k, name in enumerate(class_keys(num_classes, class_names)):
            out[f"dice/{name}"] = _mean(dice[:, k])
            out[f"iou/{name}"] = _mean(iou[:, k])
            out[f"precision/{name}"] = _mean(precision[:, k])
            out[f"recall/{name}"] = _mean(recall[:, k])
    return out


def image_scores(counts: np.ndarray, foreground_only: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and IoU (length N), each the mean over the foreground classes (all
    classes with ``foreground_only=False``): the numbers to rank test images by."""
    counts = np.asarray(counts)
    cls = slice(1, None) if foreground_only and counts.shape[1] > 1 else slice(None)
    dice, iou = scores_from_counts(counts[:, cls])
    return dice.mean(1), iou.mean(1)


# --------------------------------------------------------------------- HD95
_CROSS = ndimage.generate_binary_structure(2, 1)


def boundary(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a 2-D boolean mask: pixels with a 4-neighbour outside it
    (the mask minus its erosion by a 3x3 cross; outside the image is outside the mask)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


#: how the two directions of surface distances make one HD95 (see the module notes)
HD95_VARIANTS = ("medpy", "monai")


def directed_surface_distances(pred: np.ndarray, target: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Surface distances (pixels) between two non-empty 2-D boolean masks, one array per
    direction: from each boundary pixel of ``pred`` to the nearest boundary pixel of
    ``target``, and from each boundary pixel of ``target`` to the nearest one of ``pred``."""
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    rows = np.flatnonzero((pred | target).any(1))
    cols = np.flatnonzero((pred | target).any(0))
    # every boundary pixel lies in the joint bounding box, so cropping to it is exact
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    bp, bt = boundary(pred[box]), boundary(target[box])
    to_target = ndimage.distance_transform_edt(~bt)[bp]
    to_pred = ndimage.distance_transform_edt(~bp)[bt]
    return to_target, to_pred


def surface_distances(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """All symmetric surface distances (pixels) between two non-empty 2-D boolean masks:
    both directions of :func:`directed_surface_distances` in one array (MedPy's pooled set)."""
    return np.concatenate(directed_surface_distances(pred, target))


def _check_variant(variant: str) -> None:
    if variant not in HD95_VARIANTS:
        raise ValueError(f"unknown HD95 variant {variant!r}; expected one of "
                         f"{', '.join(HD95_VARIANTS)}")


def hd95(pred: np.ndarray, target: np.ndarray, variant: str = "medpy") -> float:
    """HD95 in pixels of two 2-D masks (bool or 0/1): NaN when both are empty, the image
    diagonal when one is.

    Args:
        pred, target: the two masks, same shape.
        variant: ``"medpy"`` (default): the 95th percentile of the distances of both
            directions pooled in one set, as MedPy's ``hd95``. ``"monai"``: the larger of
            the two directed 95th percentiles, as MONAI's
            ``compute_hausdorff_distance(..., percentile=95)``. Both are symmetric in
            ``pred`` and ``target``; they agree on a shifted copy and can differ by many
            pixels when one direction has a few far outliers (see the module notes).

    Example:
        >>> a = np.zeros((20, 20), bool); a[5:15, 2:12] = True
        >>> hd95(a, np.roll(a, 3, axis=1))   # the same square, 3 pixels to the right
        3.0
    """
    _check_variant(variant)
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"hd95 needs two 2-D masks of the same shape; got {pred.shape} and "
                         f"{target.shape}")
    has_p, has_t = pred.any(), target.any()
    if not has_p and not has_t:
        return float("nan")
    if not (has_p and has_t):
        return math.hypot(*pred.shape)
    if variant == "medpy":
        return float(np.percentile(surface_distances(pred, target), 95))
    to_target, to_pred = directed_surface_distances(pred, target)
    return float(max(np.percentile(to_target, 95), np.percentile(to_pred, 95)))


def hd95_per_image(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                   num_classes: int, variant: str = "medpy") -> np.ndarray:
    """HD95 (pixels) per image and class, an N x C array; the background column is NaN
    (not computed), as are (image, class) pairs where the class is in neither mask.

    ``variant`` is ``"medpy"`` (both directions pooled, the default) or ``"monai"`` (the
    larger of the two directed 95th percentiles); see :func:`hd95` and the module notes.
    """
    _check_variant(variant)
    p, t = _as_numpy(pred), _as_numpy(target)
    if p.shape != t.shape or p.ndim != 3:
        raise ValueError(f"prediction {p.shape} and target {t.shape} must both be N x H x W")
    out = np.full((len(p), num_classes), np.nan)
    for i in range(len(p)):
        for k in range(1 if num_classes > 1 else 0, num_classes):
            out[i, k] = hd95(p[i] == k, t[i] == k, variant)
    return out


def summarize_hd95(hd: np.ndarray, class_names: Sequence[str] | None = None
                   ) -> dict[str, float]:
    """``hd95`` (mean over images and foreground classes, NaNs left out) and
    ``hd95/<name>`` per foreground class, from :func:`hd95_per_image`'s N x C array.
    A class with no finite value (absent everywhere) reports NaN."""
    hd = np.asarray(hd, dtype=np.float64)
    names = class_keys(hd.shape[1], class_names)
    first = 1 if hd.shape[1] > 1 else 0

    def nanmean(a):
        a = a[np.isfinite(a)]
        return float(a.mean()) if a.size else float("nan")

    out = {"hd95": nanmean(hd[:, first:])}
    for k in range(first, hd.shape[1]):
        out[f"hd95/{names[k]}"] = nanmean(hd[:, k])
    return out


def _as_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def evaluate_predictions(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                         num_classes: int, class_names: Sequence[str] | None = None,
                         hd95: bool = False, hd95_variant: str = "medpy") -> dict[str, float]:
    """Every headline and per-class number for class-id predictions against targets.

    Args:
        pred, target: class-id maps, N x H x W (numpy or torch).
        num_classes: classes including background (2 for a binary task).
        class_names: names for the per-class keys (default: the class ids).
        hd95: also compute ``hd95`` and ``hd95/<name>`` (costlier; see the module notes).
        hd95_variant: ``"medpy"`` (default) or ``"monai"``; see :func:`hd95`.

    Returns:
        :func:`summarize`'s keys (``dice``, ``iou``, ``dice_pooled``, ``iou_pooled``,
        ``precision``, ``recall``, ``dice_with_bg``, ``iou_with_bg``, ``dice/<name>``,
        ``iou/<name>``, ``precision/<name>``, ``recall/<name>``), ``n_images`` and, with
        ``hd95``, :func:`summarize_hd95`'s keys.

    Example:
        >>> t = np.zeros((1, 8, 8), np.uint8); t[0, 2:6, 2:6] = 1
        >>> r = evaluate_predictions(t, t, 2, ("background", "polyp"), hd95=True)
        >>> r["dice/polyp"], r["hd95"]
        (1.0, 0.0)
    """
    p = torch.as_tensor(_as_numpy(pred)).long()
    t = torch.as_tensor(_as_numpy(target)).long()
    counts = overlap_counts(p, t, num_classes).numpy()
    out = summarize(counts, class_names=class_names)
    out["n_images"] = len(counts)
    if hd95:
        out.update(summarize_hd95(hd95_per_image(p.numpy(), t.numpy(), num_classes,
                                                 hd95_variant), class_names))
    return out
