"""Label inference: what the server learns of the site's masks from the gradients it gets.

In the U-shaped split the label never crosses, but the site's back stages send the server
the gradients of what it sent down (step 3 of the protocol, ``g_down`` in
:func:`medseg_kit.protocol.split_train_step`). Those gradients are computed from the loss
against the mask, and where the prediction is wrong they are large. The attack here is
deliberately simple: per pixel, the gradient's magnitude over the channels, upsampled to
the image size, thresholded per image (Otsu's threshold, or the ``top`` share of pixels)
gives an inferred foreground mask, scored with Dice against the true masks.

In the vanilla split (``back == n``) the mask itself crosses (the server computes the
loss): the inferred mask is the label, Dice 1 by construction.

Example:
    >>> import torch
    >>> from medseg_kit.models import create_model
    >>> net = create_model("unet", width=4)
    >>> x, y = torch.rand(4, 3, 32, 32), (torch.rand(4, 32, 32) > 0.7).long()
    >>> res = label_inference(net, (1, len(net)), x, y)
    >>> res.dice
    1.0
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .. import metrics
from ..losses import make_loss
from ..models.staged import StagedNet
from ..protocol import split_train_step
from ..split import Split
from ..wire import Wire

#: how the gradient map becomes a mask
THRESHOLDS = ("otsu", "top")


class RecordingWire(Wire):
    """A :class:`~medseg_kit.wire.Wire` that also keeps what the server receives: every
    message sent up (activations, the gradients ``g_down``, the label in the vanilla
    split), by kind and tensor name (detached copies, as received)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received: dict[tuple[str, str], torch.Tensor] = {}

    def send(self, tensors, direction, kind, requires_grad=None):
        out = super().send(tensors, direction, kind, requires_grad)
        if direction == "up":
            for name, t in out.items():
                self.received[(kind, name)] = t.detach().clone()
        return out

    def of_kind(self, kind: str) -> dict[str, torch.Tensor]:
        return {n: t for (k, n), t in self.received.items() if k == kind}


def gradient_map(grads: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Per pixel, the L2 norm over channels of each received gradient, upsampled
    (bilinear) to ``size`` and summed over the tensors, each scaled to a unit maximum per
    image: N x size x size."""
    total = None
    for g in grads.values():
        m = g.float().pow(2).sum(1, keepdim=True).sqrt()
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        m = m / m.flatten(1).amax(1).clamp_min(1e-30)[:, None, None]
        total = m if total is None else total + m
    if total is None:
        raise ValueError("no gradient reached the server (the vanilla split sends the label "
                         "instead; a cut whose down tensors carry no gradient sends none)")
    return total


def threshold_masks(maps: torch.Tensor, method: str = "otsu", top: float = 0.2
                    ) -> np.ndarray:
    """Binary masks (N x H x W, ``uint8``) from score maps: per image, the pixels above
    Otsu's threshold (``otsu``) or the ``top`` share of highest-scoring pixels (``top``)."""
    if method not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {', '.join(THRESHOLDS)}; got {method!r}")
    if not 0 < top < 1:
        raise ValueError(f"top must be a share in (0, 1); got {top!r}")
    from skimage.filters import threshold_otsu

    out = []
    for m in maps.double().numpy():
        if method == "otsu":
            t = threshold_otsu(m) if m.max() > m.min() else m.max()
        else:
            t = np.quantile(m, 1 - top)
        out.append(m > t)
    return np.stack(out).astype(np.uint8)


def mask_dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image foreground Dice of binary masks (both N x H x W; an image where both are
    empty scores 1, as everywhere in the kit)."""
    counts = metrics.overlap_counts(torch.as_tensor(np.asarray(pred)).long(),
                                    torch.as_tensor(np.asarray(truth) > 0).long(), 2)
    return metrics.scores_from_counts(counts)[0][:, 1]


@dataclass
class LabelResult:
    """One label-inference attack.

    Attributes:
        model, front, back: the network and the cut.
        vanilla: True when the label itself crossed (``back == n``).
        received: what the attack read (``label``, or the gradient tensors' names).
        dice: mean Dice of the inferred masks against the true ones.
        baseline_dice: mean Dice of the trivial guess "everything is foreground".
        dice_per_image: one value per image.
        inferred, truths: the masks (N x H x W, ``uint8``) and the score maps the
            inferred ones came from (``maps``, N x H x W floats; the label itself in the
            vanilla split).
    """

    model: str
    front: int
    back: int
    vanilla: bool
    received: list[str]
    dice: float
    baseline_dice: float
    dice_per_image: np.ndarray = field(repr=False)
    inferred: np.ndarray = field(repr=False)
    truths: np.ndarray = field(repr=False)
    maps: np.ndarray = field(repr=False)

    def row(self) -> dict:
        return {"model": self.model, "front": self.front, "back": self.back,
                "split": "vanilla" if self.vanilla else "ushaped",
                "received": "+".join(self.received), "dice": self.dice,
                "baseline_dice": self.baseline_dice}


def label_inference(net: StagedNet, cut: tuple[int, int], x: torch.Tensor, y: torch.Tensor,
                    *, loss: str = "dice_ce", method: str = "otsu", top: float = 0.2,
                    noise_std: float = 0.0, noise: str = "gaussian", seed: int = 0,
                    batch_size: int = 8, allow_raw: bool = False, codec: str = "none"
                    ) -> LabelResult:
    """Run training steps of the protocol on the site's batches (on a copy of ``net``: no
    weight changes) and infer each image's mask from what reaches the server.

    Args:
        net: the network (the copy is trained on nothing; only gradients are computed).
        cut: ``(front, back)``; ``back == len(net)`` is the vanilla split.
        x, y: the site's images (N x C x H x W in [0, 1]) and masks (N x H x W class ids;
            foreground is any class > 0).
        loss: the site's training loss (:func:`medseg_kit.losses.make_loss`).
        method, top: how the gradient map becomes a mask (:func:`threshold_masks`).
        noise_std, noise, seed, codec: the wire's noise on activations (a defense) and
            its codec.
        batch_size: images per protocol step (BatchNorm runs in training mode, as it
            does when the server records these gradients).
        allow_raw: accept a cut that sends raw image data.
    """
    split = Split(net, *cut, allow_raw=allow_raw)
    device = next(net.parameters()).device
    x, y = x.to(device), y.to(device)
    twin = copy.deepcopy(net)
    twin.train()
    loss_fn = make_loss(loss)
    size = x.shape[-1]
    maps, inferred, received = [], [], []
    wire = RecordingWire(codec=codec, noise_std=noise_std, noise=noise, seed=seed)
    for s in range(0, len(x), batch_size):
        xb, yb = x[s:s + batch_size], y[s:s + batch_size]
        wire.received.clear()
        split_train_step(split, split.client_part(twin), split.server_part(twin), xb, yb,
                         loss_fn, wire)
        twin.zero_grad(set_to_none=True)
        if split.labels_to_server:
            label = wire.of_kind("label")["label"].long().cpu()
            maps.append(label.float())
            inferred.append((label > 0).numpy().astype(np.uint8))
            received = ["label"]
        else:
            grads = wire.of_kind("gradient")
            m = gradient_map(grads, size).cpu()
            maps.append(m)
            inferred.append(threshold_masks(m, method, top))
            received = sorted(grads)
    inferred_all = np.concatenate(inferred)
    truths = (y > 0).cpu().numpy().astype(np.uint8)
    dice = mask_dice(inferred_all, truths)
    baseline = mask_dice(np.ones_like(truths), truths)
    return LabelResult(getattr(net, "model_name", type(net).__name__), split.front,
                       split.back, split.labels_to_server, received, float(dice.mean()),
                       float(baseline.mean()), dice, inferred_all, truths,
                       torch.cat(maps).numpy())
