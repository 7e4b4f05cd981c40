"""MaskComparer: scroll through test images with the truth and each run's mask outlined,
each run's Dice for that image in its title, optionally worst images first. Controls
only: the Dice comes from :mod:`medseg_kit.metrics`, the picture from
:func:`medseg_kit.viz.plot_mask_row`."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .. import metrics, viz
from ._base import WidgetBase, figure_png


def per_image_dice(predictions: Mapping[str, np.ndarray], truths: np.ndarray,
                   num_classes: int) -> dict[str, np.ndarray]:
    """``{run: Dice of each image}``: the mean over the foreground classes of each image,
    as :func:`medseg_kit.metrics.image_scores` computes it."""
    target = torch.as_tensor(np.asarray(truths)).long()
    out = {}
    for label, pred in predictions.items():
        pred = np.asarray(pred)
        if pred.shape != target.shape:
            raise ValueError(f"predictions of {label!r} have shape {pred.shape}; expected the "
                             f"truths' shape {tuple(target.shape)}")
        counts = metrics.overlap_counts(torch.as_tensor(pred).long(), target, num_classes)
        out[label] = metrics.image_scores(counts.numpy())[0]
    return out


def worst_first(dice: Mapping[str, np.ndarray]) -> np.ndarray:
    """Image indices ordered by their mean Dice over the runs, lowest first (stable)."""
    mean = np.mean(np.stack([np.asarray(d, dtype=float) for d in dice.values()]), axis=0)
    return np.argsort(mean, kind="stable")


class MaskComparer(WidgetBase):
    """Scroll through test images: image, truth and each run's mask as outlines, with
    each run's Dice for the image in its panel title.

    Args:
        images: N x H x W x 3 test images.
        truths: N x H x W class ids.
        predictions: ``{run label: N x H x W class ids}``.
        class_names: class names, background first (default: ``class 0``, ``class 1``...).

    Attributes:
        widget: the box to display.
        index: ``IntSlider``, the position in the current order (0 = first shown).
        sort_worst: ``Checkbox``; when ticked the order is worst first (lowest mean Dice
            over the runs).
        next_button, prev_button: step through the images (:meth:`next`, :meth:`prev`).
        readout: ``HTML`` naming the image shown and each run's Dice.
        picture: ``Image`` with the figure.
        dice: ``{run label: per-image Dice array}`` in the images' own order.
        order: image indices in the order shown.
    """

    def __init__(self, images, truths, predictions: dict[str, np.ndarray],
                 class_names: Sequence[str] | None = None):
        import ipywidgets as W

        self.images = np.asarray(images)
        self.truths = np.asarray(truths)
        if not predictions:
            raise ValueError("predictions is empty; pass {run label: N x H x W masks}")
        self.predictions = {k: np.asarray(v) for k, v in predictions.items()}
        n = len(self.images)
        if n == 0 or len(self.truths) != n:
            raise ValueError(f"{n} images and {len(self.truths)} truths; expected the same "
                             "number, at least one")
        k = max(int(self.truths.max()), *(int(p.max()) for p in self.predictions.values()), 1)
        self.class_names = (list(class_names) if class_names is not None
                            else [f"class {c}" for c in range(k + 1)])
        num_classes = max(len(self.class_names), k + 1)
        self.dice = per_image_dice(self.predictions, self.truths, num_classes)
        self.order = np.arange(n)
        self.index = W.IntSlider(value=0, min=0, max=n - 1, description="image",
                                 continuous_update=False)
        self.prev_button = W.Button(description="previous", icon="arrow-left",
                                    tooltip="previous image")
        self.next_button = W.Button(description="next", icon="arrow-right",
                                    tooltip="next image")
        self.prev_button.add_class("medseg-mask-prev")
        self.next_button.add_class("medseg-mask-next")
        self.sort_worst = W.Checkbox(value=False, description="sort by worst",
                                     style={"description_width": "initial"})
        self.sort_worst.add_class("medseg-mask-sort")
        self.readout = W.HTML()
        self.readout.add_class("medseg-mask-readout")
        self.picture = W.Image(format="png")
        self.picture.add_class("medseg-mask-picture")
        self.widget = W.VBox([W.HBox([self.prev_button, self.index, self.next_button,
                                      self.sort_worst]), self.readout, self.picture])
        self.widget.add_class("medseg-mask-comparer")
        self.prev_button.on_click(lambda _: self.prev())
        self.next_button.on_click(lambda _: self.next())
        self.index.observe(lambda _: self._redraw(), names="value")
        self.sort_worst.observe(self._on_sort, names="value")
        self._redraw()

    @classmethod
    def from_runs(cls, runs: Mapping[str, object]) -> MaskComparer:
        """From ``{label: TeachingRun}`` (anything with ``images``, ``truths``,
        ``predictions`` and ``class_names``); the runs must share their test images."""
        if not runs:
            raise ValueError("runs is empty; pass {label: TeachingRun}")
        first = next(iter(runs.values()))
        for label, run in runs.items():
            if np.shape(run.truths) != np.shape(first.truths) or not np.array_equal(
                    run.truths, first.truths):
                raise ValueError(f"run {label!r} was tested on other images than the first "
                                 "run; compare runs that share their test set")
        return cls(first.images, first.truths, {k: r.predictions for k, r in runs.items()},
                   class_names=first.class_names)

    # ------------------------------------------------------------ controls
    @property
    def shown(self) -> int:
        """The index (in ``images``) of the image shown."""
        return int(self.order[self.index.value])

    @property
    def current_dice(self) -> dict[str, float]:
        """Each run's Dice for the image shown."""
        return {k: float(d[self.shown]) for k, d in self.dice.items()}

    def next(self) -> None:
        """Show the next image (wraps around to the first)."""
        self.index.value = (self.index.value + 1) % len(self.order)

    def prev(self) -> None:
        """Show the previous image (wraps around to the last)."""
        self.index.value = (self.index.value - 1) % len(self.order)

    def _on_sort(self, change) -> None:
        self.order = worst_first(self.dice) if change["new"] else np.arange(len(self.images))
        if self.index.value == 0:
            self._redraw()
        else:
            self.index.value = 0  # redraws

    # -------------------------------------------------------------- drawing
    def _redraw(self) -> None:
        self._timed(self._draw)

    def _draw(self) -> None:
        i, pos = self.shown, self.index.value
        dice = self.current_dice
        order = "worst first" if self.sort_worst.value else "test-set order"
        runs = ", ".join(f"{html.escape(k)} <b>{v:.3f}</b>" for k, v in dice.items())
        self.readout.value = (f"image {pos + 1} of {len(self.order)} ({order}): test image "
                              f"#{i}; Dice {runs}")
        fig = viz.plot_mask_row(self.images[i], self.truths[i],
                                {k: p[i] for k, p in self.predictions.items()}, dice,
                                self.class_names, title=f"test image #{i}")
        self.picture.value = figure_png(fig)
