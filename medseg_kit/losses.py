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
