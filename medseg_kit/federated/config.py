"""One config object describes a run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

STRATEGIES = ("centralized", "local", "sflv2")


@dataclass
class RunConfig:
    """Everything that sets what a run computes.

    Attributes:
        model: a name from ``medseg_kit.models.list_models()``.
        width: model width (``None``: the model's teaching width).
        cut: ``(front, back)``; ``None``: the model's default cut.
        allow_raw: accept a cut that sends raw image data to the server.
        strategy: ``centralized``, ``local`` or ``sflv2``.
        dataset: ``kvasir`` (more with the data issue).
        data_root: folder with the dataset in its real layout; ``None``: synthetic data
            written (once) under ``MEDSEG_DATA_DIR/synthetic``.
        n_images: number of synthetic images to generate (ignored for real data).
        size: square input size the images are resized to.
        sites: number of simulated hospital sites.
        rounds: communication rounds (centralized: epochs are counted as rounds).
        local_epochs: passes over its shard a site makes per round.
        batch_size, lr, weight_decay: optimisation (Adam).
        loss: ``dice_ce`` (default), ``ce`` or ``dice``.
        test_fraction: share of images held out for testing (split IID across sites).
        seed: seeds the model, the split, the partition and the batch order.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        codec: wire codec (``none``, ``fp16``, ``int8``).
    """

    model: str = "unet"
    width: int | None = None
    cut: tuple[int, int] | None = None
    allow_raw: bool = False
    strategy: str = "sflv2"
    dataset: str = "kvasir"
    data_root: str | None = None
    n_images: int = 200
    size: int = 128
    sites: int = 3
    rounds: int = 5
    local_epochs: int = 1
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.0
    loss: str = "dice_ce"
    test_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    codec: str = "none"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of "
                             f"{', '.join(STRATEGIES)}")
        for name in ("sites", "rounds", "local_epochs", "batch_size", "size", "n_images"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if self.cut is not None:
            self.cut = tuple(int(c) for c in self.cut)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {self.device!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
