"""What is timed: one training pass of the plain loop or of the kit's run loop.

One pass is one round of one local epoch over the same training images: every contender
of a benchmark sees the same images in total, in batches of the same size, on the same
device. The plain loop is the yardstick for the kit's centralized training; the kit's
centralized training is the yardstick for every federated strategy.

Variants (``fp32``, ``bf16-cl``, ``compile`` ...) set :class:`RunConfig` fields. The kit
gained ``precision``, ``channels_last`` and ``compile`` later than this module, so a
variant whose fields the installed :class:`RunConfig` lacks is reported as skipped
(:func:`missing_fields`) instead of failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..data import SegData
from ..federated import RunConfig
from ..federated.run import Run
from ..federated.strategies import make_strategy
from ..losses import make_loss
from ..models import create_model

#: variant name -> the RunConfig fields it sets (``fp32`` sets none: the kit's default)
VARIANTS: dict[str, dict] = {
    "fp32": {},
    "bf16-cl": {"precision": "bf16", "channels_last": True},
    "fp16-cl": {"precision": "fp16", "channels_last": True},
    "compile": {"compile": True},
    "bf16-cl-compile": {"precision": "bf16", "channels_last": True, "compile": True},
}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def missing_fields(variant: str) -> list[str]:
    """The fields ``variant`` sets that this kit's :class:`RunConfig` does not have."""
    have = {f.name for f in dataclasses.fields(RunConfig)}
    return [k for k in VARIANTS[variant] if k not in have]


@dataclass
class Contender:
    """One thing timed: ``step(k)`` trains one pass (``k``: the repeat, which sets the
    batch order); ``images`` it trains on per pass."""

    key: str
    label: str
    model: str
    variant: str
    strategy: str
    sites: int
    images: int
    step: Callable[[int], None]


def run_label(strategy: str, sites: int) -> str:
    if strategy in ("plain", "centralized"):
        return strategy
    return f"{strategy}, {sites} site{'s' if sites != 1 else ''}"


def run_key(strategy: str, sites: int) -> str:
    return strategy if strategy in ("plain", "centralized") else f"{strategy}@{sites}"


class PlainLoop:
    """The kit's own network, whole, one ``torch.optim.Adam`` with its defaults, the
    kit's loss; no wire, no guard, no calibration, no split — what a user would write.

    Batches come from :meth:`SegData.batch` (the kit's uint8-to-float conversion), in an
    order drawn per pass; a final batch of one image is dropped, as the kit does. With a
    variant: autocast to ``precision`` (a ``GradScaler`` for fp16; the loss in fp32),
    ``channels_last`` weights and batches, ``torch.compile`` of the network.
    """

    def __init__(self, config: RunConfig, train: SegData, in_channels: int,
                 model_classes: int, device: torch.device, variant: dict):
        torch.manual_seed(config.seed)
        self.train, self.device, self.bs = train, device, config.batch_size
        self.net = create_model(config.model, in_channels=in_channels,
                                num_classes=model_classes, width=config.width).to(device)
        self.channels_last = bool(variant.get("channels_last"))
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.net) if variant.get("compile") else self.net
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.loss_fn = make_loss(config.loss, config.dice_weight)
        self.dtype = _DTYPES.get(variant.get("precision", "fp32"))
        self.scaler = (torch.amp.GradScaler(device.type) if self.dtype is torch.float16
                       else None)

    def __call__(self, k: int) -> None:
        self.net.train()
        g = torch.Generator().manual_seed(k)
        order = torch.randperm(len(self.train), generator=g).numpy()
        loss = None
        for s in range(0, len(order), self.bs):
            chunk = order[s:s + self.bs]
            if len(chunk) < 2:
                break
            x, y = self.train.batch(chunk, self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.opt.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                enabled=self.dtype is not None):
                logits = self.forward(x)
            loss = self.loss_fn(logits.float(), y)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                loss.backward()
                self.opt.step()
        if loss is not None:
            loss.item()  # one host sync per pass, as the kit's loss report makes


class KitPass:
    """One round of ``config``'s strategy with every site active: exactly what the run
    loop times as training (:meth:`Strategy.train_round`: batches, the protocol, the
    wire, the guard, FedAvg), without the BatchNorm calibration and the evaluation the
    run loop adds after it."""

    def __init__(self, config: RunConfig, data: SegData):
        self.run = Run(config, data=data, progress=False)
        self.strategy = make_strategy(config.strategy, self.run)
        self.active = [s.id for s in self.run.sites]

    def __call__(self, k: int) -> None:
        self.strategy.train_round(k, self.active)


def training_subset(run: Run) -> SegData:
    """The training images of ``run`` (all sites pooled), in their stored order."""
    idx = np.sort(np.concatenate([s.train_idx for s in run.sites]))
    return run.train.subset(idx)
