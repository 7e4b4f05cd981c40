"""Batch augmentations in torch: flips, 90-degree turns, a small affine warp, colour jitter.

They work on the tensors :meth:`SegData.batch <medseg_kit.data.base.SegData.batch>`
returns — ``x`` float N x C x H x W in [0, 1], ``y`` long N x H x W — on any device,
with every random number drawn from one :class:`torch.Generator`, so the same generator
state gives the same batch. Geometry is applied identically to image and mask (the mask
is resampled nearest-neighbour, so class ids stay class ids); colour only to the image.

Augmentation is off by default: nothing in the kit augments unless the training loop
asks. Either call :func:`augment_batch` on a batch, or keep an :class:`Augment` (which
owns its generator and does nothing unless ``enabled``)::

    aug = Augment(enabled=config.augment, seed=config.seed)
    for x, y in batches:
        x, y = aug(x, y)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """What :func:`augment_batch` does; set a probability or a range to 0 to switch a part
    off.

    Attributes:
        hflip, vflip: probability of a left-right / up-down flip.
        rot90: turn by a random multiple of 90 degrees (square images; otherwise only
            0 or 180 degrees).
        affine: probability of a small affine warp of ``degrees`` rotation, ``scale``
            zoom range and ``translate`` shift (fraction of the side), reflected borders.
        brightness: additive shift range (+-, on [0, 1] images).
        contrast: contrast factor range (1 +- contrast, around the image mean).
        saturation: saturation factor range (1 +- saturation; colour images only).
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rot90: bool = True
    affine: float = 0.5
    degrees: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.15
    saturation: float = 0.15


GEOMETRY_ONLY = AugmentConfig(brightness=0.0, contrast=0.0, saturation=0.0)


def augment_batch(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                  config: AugmentConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch; the same generator state always gives the same result.

    Args:
        x: images, float N x C x H x W in [0, 1].
        y: masks, long N x H x W.
        generator: the source of randomness (a CPU generator; fresh default if None).
        config: what to do (default :class:`AugmentConfig`).

    Returns:
        New ``(x, y)`` tensors (inputs are not modified).
    """
    cfg = config or AugmentConfig()
    if x.ndim != 4 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[1:]:
        raise ValueError(f"expected x N x C x H x W and y N x H x W; got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    n, _, h, w = x.shape
    # one fixed block of random numbers per sample: the order never depends on the config
    r = torch.rand(n, 12, generator=generator).to(x.device)
    x, y = x.clone(), y.clone()
    for col, p, dim in ((0, cfg.hflip, -1), (1, cfg.vflip, -2)):
        sel = r[:, col] < p
        if sel.any():
            x[sel] = x[sel].flip(dim)
            y[sel] = y[sel].flip(dim)
    if cfg.rot90:
        k = (r[:, 2] * 4).long().clamp(max=3)
        if h != w:
            k = (k // 2) * 2  # only half turns keep a non-square shape
        for turn in (1, 2, 3):
            sel = k == turn
            if sel.any():
                x[sel] = torch.rot90(x[sel], turn, dims=(-2, -1))
                y[sel] = torch.rot90(y[sel], turn, dims=(-2, -1))
    sel = r[:, 3] < cfg.affine
    if sel.any():
        x[sel], y[sel] = _affine(x[sel], y[sel], r[sel, 4:8], cfg)
    if cfg.brightness or cfg.contrast or cfg.saturation:
        x = _colour(x, r[:, 8:11], cfg)
    return x, y


def _affine(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor, cfg: AugmentConfig
            ) -> tuple[torch.Tensor, torch.Tensor]:
    angle = (2 * r[:, 0] - 1) * math.radians(cfg.degrees)
    s = cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * r[:, 1]
    tx, ty = ((2 * r[:, 2:4] - 1) * 2 * cfg.translate).unbind(1)  # grid units span 2
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    xw = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                       align_corners=False)
    yw = F.grid_sample(y[:, None].to(x.dtype), grid, mode="nearest",
                       padding_mode="reflection", align_corners=False)
    return xw.clamp(0, 1), yw[:, 0].round().to(y.dtype)


def _colour(x: torch.Tensor, r: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    b = ((2 * r[:, 0] - 1) * cfg.brightness).view(-1, 1, 1, 1)
    c = (1 + (2 * r[:, 1] - 1) * cfg.contrast).view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean + b
    if x.shape[1] == 3 and cfg.saturation:
        sat = (1 + (2 * r[:, 2] - 1) * cfg.saturation).view(-1, 1, 1, 1)
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * sat
    return x.clamp(0, 1)


class Augment:
    """Augmentation a training loop can keep: off unless ``enabled``, with its own
    generator (seeded by ``seed``) whose state can be saved and restored for resuming.

    Args:
        enabled: apply augmentation at all (default False).
        seed: seed of the generator.
        config: an :class:`AugmentConfig`; keyword overrides may follow
            (``Augment(True, degrees=5)``).
    """

    def __init__(self, enabled: bool = False, seed: int = 0,
                 config: AugmentConfig | None = None, **overrides):
        self.enabled = enabled
        self.config = replace(config or AugmentConfig(), **overrides)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.enabled:
            return x, y
        return augment_batch(x, y, self.generator, self.config)

    def state_dict(self) -> dict:
        return {"enabled": self.enabled, "config": asdict(self.config),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.enabled = state["enabled"]
        cfg = dict(state["config"])
        cfg["scale"] = tuple(cfg["scale"])
        self.config = AugmentConfig(**cfg)
        self.generator.set_state(state["generator"])
