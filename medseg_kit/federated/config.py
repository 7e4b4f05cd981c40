"""One config object describes a run.

Every list of names a config field may take is read from the one place that defines it
(the strategy registry, the loss table, the wire's codecs, the partition schemes, the
model registry), so the CLI, this validation and the tests can never disagree.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..data.partition import PARTITIONS
from ..losses import LOSSES
from ..models import check_input_size
from ..split import SPLIT_KINDS as SPLITS
from ..wire import NOISES, check_codec
from .compute import PRECISIONS
from .strategies import STRATEGY_CLASSES

STRATEGIES = tuple(STRATEGY_CLASSES)
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine")
#: the choices of every config field that takes a name from a fixed list
CHOICES = {"strategy": STRATEGIES, "optimizer": OPTIMIZERS, "split": SPLITS,
           "partition": PARTITIONS, "schedule": SCHEDULES, "loss": LOSSES, "noise": NOISES,
           "precision": PRECISIONS}


@dataclass
class RunConfig:
    """Everything that sets what a run computes.

    Attributes:
        model: a name from ``medseg_kit.models.list_models()``.
        width: model width (``None``: the model's teaching width).
        cut: ``(front, back)``; ``None``: the model's default cut.
        split: ``ushaped`` (labels stay at the site; the default) or ``vanilla`` (the
            server runs to the logits: ``back`` = last stage and the labels are sent to
            it). With ``vanilla`` the ``back`` of ``cut`` is ignored.
        allow_raw: accept a cut that sends raw image data to the server.
        strategy: ``centralized``, ``local`` (each site alone), ``fl`` (FedAvg of the
            whole model), ``sl`` (sequential split learning), ``sflv1`` (a server copy
            per site, all averaged) or ``sflv2`` (one shared server part, sites in turn).
        dataset: ``kvasir`` (more with the data issue).
        data_root: folder with the dataset in its real layout; ``None``: synthetic data
            written (once) under ``MEDSEG_DATA_DIR/synthetic``.
        n_images: number of synthetic images to generate (ignored for real data).
        size: square input size the images are resized to.
        sites: number of simulated hospital sites.
        partition: how the images are dealt out to the sites: ``iid``, ``quantity``
            (Dirichlet-skewed shard sizes), ``label`` (Dirichlet label/attribute skew) or
            ``acquisition`` (IID shards, each seen through its own scanner profile:
            colour, contrast, blur, noise). Each site's test shard is drawn the same way.
        concentration: Dirichlet concentration for ``quantity`` and ``label`` (smaller:
            more skewed).
        partition_by: the label to skew by (``dx``, ``localization``, ``lesion_size``,
            ``dominant_class`` ...); ``None``: the dataset's natural one.
        augment: flips, 90-degree rotations, small affine and colour jitter on training
            batches (deterministic per round, site and epoch).
        rounds: communication rounds (centralized: epochs are counted as rounds).
        local_epochs: passes over its shard a site makes per round.
        batch_size, lr, weight_decay: optimisation.
        optimizer: ``adam`` (default), ``adamw`` or ``sgd`` (momentum 0.9).
        schedule: ``none`` or ``cosine`` (learning rate annealed over the rounds).
        clip_grad: clip the gradient norm of each part (site and server separately) to
            this value; ``None``: no clipping.
        loss: ``dice_ce`` (default), ``ce`` or ``dice``; ``dice_weight`` is the Dice share.
        bn_calibration: training images per site whose forward pass, after each round and
            with that round's final weights, sets the BatchNorm statistics of every model
            that is evaluated (default 16; see :mod:`medseg_kit.federated.batchnorm`).
            ``0`` keeps PyTorch's running averages (momentum 0.1), which a federated site,
            with a few batches a round, never brings close to its activations: the model
            is then evaluated as "all background" for rounds and its Dice swings.
        site_dropout: probability that a site fails to report in a round.
        dropout_schedule: explicit failures, ``{round: [site, ...]}`` (overrides the
            probability for the rounds it names).
        loss_up, loss_down: fraction of rows of each crossing tensor lost on the wire.
        noise_std: standard deviation of the noise added to every activation on the wire.
        noise: its distribution, ``gaussian`` or ``laplace``.
        nopeek: weight of NoPeek's distance correlation between each batch of images and
            what the site sends up, added to the site's loss (0: off; splitting strategies
            only).
        test_fraction: share of images held out for testing (split IID across sites).
        seed: seeds the model, the split, the partition and the batch order.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        codec: what the wire does to what it carries: a name from
            ``medseg_kit.wire.CODECS`` (activations and gradients, both directions), or
            rules per direction and kind such as ``"activation=fp16,gradient=topk:0.05,
            model=int8"`` (see :func:`medseg_kit.wire.parse_codec`).
        precision: ``fp32`` (default), ``bf16`` or ``fp16``: the forward passes of
            training run under autocast in that dtype (the loss in float32; ``fp16``
            scales it); evaluation stays in float32 (see
            :mod:`medseg_kit.federated.compute`).
        channels_last: weights and training batches in ``torch.channels_last`` memory
            format (faster convolutions on GPUs; same numbers up to rounding).
        compile: ``torch.compile`` every stage for training (on first use).
    """

    model: str = "unet"
    width: int | None = None
    cut: tuple[int, int] | None = None
    split: str = "ushaped"
    allow_raw: bool = False
    strategy: str = "sflv2"
    dataset: str = "kvasir"
    data_root: str | None = None
    n_images: int = 200
    size: int = 128
    sites: int = 3
    partition: str = "iid"
    concentration: float = 0.5
    partition_by: str | None = None
    augment: bool = False
    rounds: int = 5
    local_epochs: int = 1
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "none"
    clip_grad: float | None = None
    loss: str = "dice_ce"
    dice_weight: float = 0.5
    bn_calibration: int = 16
    test_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    codec: str = "none"
    site_dropout: float = 0.0
    dropout_schedule: dict[int, list[int]] | None = None
    loss_up: float = 0.0
    loss_down: float = 0.0
    noise_std: float = 0.0
    noise: str = "gaussian"
    nopeek: float = 0.0
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of "
                                 f"{', '.join(allowed)}")
        for name in ("sites", "rounds", "local_epochs", "size", "n_images"):
            _check_int(name, getattr(self, name), 1)
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        _check_int("batch_size", self.batch_size, 2, "BatchNorm cannot train on a batch "
                   "of one image")
        if self.width is not None and self.width != "paper":
            _check_int("width", self.width, 1, "or None: the teaching width, or 'paper'")
        _check_int("bn_calibration", self.bn_calibration, 0)
        if self.bn_calibration == 1:
            raise ValueError("bn_calibration must be 0 (off) or >= 2 images per site; got 1")
        _check_int("seed", self.seed, 0)
        for name, lo, hi in (("lr", 0.0, None), ("concentration", 0.0, None),
                             ("test_fraction", 0.0, 1.0), ("clip_grad", 0.0, None)):
            v = getattr(self, name)
            if v is not None and not (_finite(v) and v > lo and (hi is None or v < hi)):
                bound = f"in ({lo:g}, {hi:g})" if hi is not None else f"> {lo:g}"
                raise ValueError(f"{name} must be a number {bound}; got {v!r}")
        self.codec = check_codec(self.codec)
        for name, hi in (("weight_decay", None), ("noise_std", None), ("nopeek", None),
                         ("dice_weight", 1.0),
                         ("site_dropout", 1.0), ("loss_up", 1.0), ("loss_down", 1.0)):
            v = getattr(self, name)
            if not (_finite(v) and v >= 0 and (hi is None or v <= hi)):
                bound = f"in [0, {hi:g}]" if hi is not None else ">= 0"
                raise ValueError(f"{name} must be a number {bound}; got {v!r}")
        if self.dropout_schedule is not None:  # JSON turns the round keys into strings
            try:
                self.dropout_schedule = {int(k): [int(s) for s in v]
                                         for k, v in dict(self.dropout_schedule).items()}
            except (TypeError, ValueError):
                raise ValueError("dropout_schedule must map rounds to lists of site ids, "
                                 f"e.g. {{2: [0, 1]}}; got {self.dropout_schedule!r}") from None
        if self.cut is not None:
            try:
                self.cut = tuple(int(c) for c in self.cut)
            except (TypeError, ValueError):
                raise ValueError(f"cut must be two stage indices (front, back); got "
                                 f"{self.cut!r}") from None
            if len(self.cut) != 2:
                raise ValueError(f"cut must be two stage indices (front, back); got "
                                 f"{self.cut!r}")
        if not isinstance(self.device, str) or (
                self.device not in ("auto", "cpu", "cuda")
                and not self.device.startswith("cuda:")):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {self.device!r}")
        check_input_size(self.model, self.size)  # unknown model or size: one line, now

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
        """Read a config written by :meth:`to_dict` as JSON; any fault names the file."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{path} is not a readable config ({e}); expected the JSON "
                             "a run writes") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path} is not a config: expected a JSON object of settings, "
                             f"got {type(d).__name__}")
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _check_int(name: str, v, lo: int, why: str = "") -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}" + (f" ({why})" if why else "")
                         + f"; got {v!r}")
