"""Losses for binary (one logit) and multi-class (one logit per class) segmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0
                   ) -> torch.Tensor:
    """1 - soft Dice, averaged over images and foreground classes.

    ``logits``: N x C x H x W (C = 1: sigmoid; C > 1: softmax, background excluded).
    ``target``: N x H x W class ids.
    """
    if logits.shape[1] == 1:
        prob = torch.sigmoid(logits[:, 0]).flatten(1)
        tgt = target.flatten(1).to(prob.dtype)
        inter = (prob * tgt).sum(1)
        return (1 - (2 * inter + eps) / (prob.sum(1) + tgt.sum(1) + eps)).mean()
    prob = torch.softmax(logits, dim=1)[:, 1:].flatten(2)
    tgt = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].flatten(2)
    tgt = tgt.to(prob.dtype)
    inter = (prob * tgt).sum(2)
    return (1 - (2 * inter + eps) / (prob.sum(2) + tgt.sum(2) + eps)).mean()


def pixel_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (one logit) or cross-entropy (several)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], target.to(logits.dtype))
    return F.cross_entropy(logits, target)


#: the loss names a run may ask for (the one list the CLI and the config read)
LOSSES = ("dice_ce", "ce", "dice")


def make_loss(name: str = "dice_ce", dice_weight: float = 0.5):
    """``"ce"`` (BCE/CE), ``"dice"`` or ``"dice_ce"`` (``(1-w)*CE + w*Dice``)."""
    if name == "ce":
        return pixel_loss
    if name == "dice":
        return soft_dice_loss
    if name == "dice_ce":
        def dice_ce(logits, target):
            return ((1 - dice_weight) * pixel_loss(logits, target)
                    + dice_weight * soft_dice_loss(logits, target))
        return dice_ce
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def distance_correlation(x: torch.Tensor, z: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Sample distance correlation (Székely et al., 2007) of two batches, in [0, 1].

    Rows are samples: ``x`` and ``z`` are flattened to ``N x D`` and ``N x E``. 0 when the
    batches are independent (in the large-sample limit), 1 when one is a scaled, rotated
    and shifted copy of the other. Differentiable: NoPeek (Vepakomma et al., 2020) adds it,
    weighted, to the site's loss between the images and what the site sends, so that the
    smashed data says less about the images.
    """
    def centred(a: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(a, a)
        return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()

    a, b = centred(x.flatten(1).float()), centred(z.flatten(1).float())
    dcov_xz = (a * b).mean().clamp_min(0)
    dvar_x, dvar_z = (a * a).mean(), (b * b).mean()
    return torch.sqrt(dcov_xz / (torch.sqrt(dvar_x * dvar_z) + eps) + eps)
