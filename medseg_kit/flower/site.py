"""One hospital's side of the deployment: its data folder and the ClientApp's work.

A site knows two things from its SuperNode's node config: ``site`` (its id: it keys the
batch order, as in the simulation) and ``data`` (its folder). The folder is either

* a **site shard** written by :func:`prepare_sites` (``site.json``, ``train.npz``,
  ``test.npz``): the very images the simulation gives that site, so that a Flower run can
  be compared with the simulation image for image; or
* a dataset in its **real layout** (what a hospital has): it is loaded with the kit's
  loader and split into train and test images by the run's ``test_fraction`` and
  ``seed``.

Everything the site computes is the kit's own code: batches and evaluation are
:class:`~medseg_kit.federated.run.Run`'s methods bound to the site's data
(:class:`SiteRun`); the protocol is :class:`~medseg_kit.protocol.SiteHalf`; what it sends
goes through its own :class:`~medseg_kit.wire.Wire` (codecs and byte counts as in the
simulation).

Flower builds a fresh ClientApp process for every message and keeps the site's state in
``Context.state`` between messages (serialised each time). The autograd graph of a batch
cannot survive that, so a message that needs it rebuilds it by running the batch's
forward again on the same weights and data (:meth:`SiteWorker.replay`; the BatchNorm
statistics that the repeated forward would move are put back): each part is still
back-propagated exactly once per batch, and the weights are those of the simulation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import SegData, load_dataset, train_test_split
from ..data.base import read_cache, write_cache
from ..federated.batchnorm import batchnorms, calibrate, calibration_sample
from ..federated.config import RunConfig
from ..federated.run import Run, Site
from ..federated.strategies.base import site_batches, train_whole
from ..federated.tensors import load_into
from ..losses import make_loss
from ..models import create_model
from ..protocol import SiteHalf, send_activations, step_side
from ..split import Split, resolve_cut
from ..wire import Wire

SHARD_FILE, TRAIN_FILE, TEST_FILE = "site.json", "train.npz", "test.npz"


# ------------------------------------------------------------------ the data
def prepare_sites(config: RunConfig, out: str | Path, data: SegData | None = None,
                  progress: bool = False) -> list[Path]:
    """Write one folder per site under ``out`` (``site0``, ``site1`` ...) holding exactly
    the train and test images the simulation of ``config`` gives that site (after the
    partition and, for ``acquisition``, the site's scanner profile). Returns the folders.

    This is how the demo and the tests give each SuperNode its own data; a real site
    points its ``data`` node config at its own dataset instead.
    """
    run = Run(config, data=data, progress=progress)
    folders = []
    for site in run.sites:
        folder = Path(out) / f"site{site.id}"
        folder.mkdir(parents=True, exist_ok=True)
        write_cache(folder / TRAIN_FILE, run.train.subset(site.train_idx))
        write_cache(folder / TEST_FILE, run.test.subset(site.test_idx))
        (folder / SHARD_FILE).write_text(json.dumps({
            "site": site.id, "dataset": config.dataset, "size": config.size,
            "seed": config.seed, "train_idx": site.train_idx.tolist(),
            "test_idx": site.test_idx.tolist()}, indent=1))
        folders.append(folder)
    return folders


def load_site_data(folder: str | Path, config: RunConfig, site: int
                   ) -> tuple[SegData, SegData, np.ndarray]:
    """``(train, test, train ids)`` of a site folder (see the module docstring). The ids
    key the BatchNorm calibration sample, as the simulation's image indices do."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"site {site}: data folder {folder} does not exist (set the "
                                "SuperNode's node config data=\"/path/to/site/data\")")
    shard = folder / SHARD_FILE
    if shard.is_file():
        info = json.loads(shard.read_text())
        if (info["dataset"], info["size"], info["seed"]) != (config.dataset, config.size,
                                                              config.seed):
            raise ValueError(f"site {site}: {shard} holds {info['dataset']} at "
                             f"{info['size']} px for seed {info['seed']}; the run asks for "
                             f"{config.dataset} at {config.size} px, seed {config.seed}")
        train, test = read_cache(folder / TRAIN_FILE), read_cache(folder / TEST_FILE)
        if train is None or test is None:
            raise ValueError(f"site {site}: {folder} lacks a readable {TRAIN_FILE} or "
                             f"{TEST_FILE}")
        return train, test, np.asarray(info["train_idx"])
    data = load_dataset(config.dataset, folder, size=config.size, progress=False)
    tr, te = train_test_split(len(data), config.test_fraction, seed=config.seed,
                              groups=data.groups())
    return data.subset(tr), data.subset(te), tr


class SiteRun:
    """The part of a :class:`~medseg_kit.federated.run.Run` a site needs, bound to the
    site's own data: the same batch order (``batches``), batch loading and evaluation
    (the methods are ``Run``'s own)."""

    batches = Run.batches
    load_batch = Run.load_batch
    predict = Run.predict
    evaluate = Run.evaluate

    def __init__(self, config: RunConfig, train: SegData, test: SegData):
        self.config, self.train, self.test = config, train, test
        self.local_epochs = config.local_epochs
        self.device = torch.device("cpu")
        self.num_classes = test.num_classes


# --------------------------------------------------------------- the worker
@dataclass
class Cursor:
    """Where the site is in its turn: round, batch, number of batches."""

    round: int = -1
    batch: int = 0
    batches: int = 0


class SiteWorker:
    """What one ClientApp process does for one message, from the site's state.

    Args:
        site: the site id (node config ``site``).
        folder: the site's data folder (node config ``data``).
        config: the run's config (sent by the server when the run starts).
    """

    def __init__(self, site: int, folder: str | Path, config: RunConfig):
        self.site, self.config = site, config
        c = config
        train, test, self.train_ids = load_site_data(folder, c, site)
        self.run = SiteRun(c, train, test)
        self.net = create_model(c.model, in_channels=train.in_channels,
                                num_classes=train.model_classes, width=c.width)
        if c.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.loss_fn = make_loss(c.loss, c.dice_weight)
        self.split = self.half = None
        self.client = self.net  # fl: the site trains the whole model
        if c.strategy != "fl":
            front, back = resolve_cut(self.net, c.cut, c.split)
            self.split = Split(self.net, front, back, allow_raw=c.allow_raw)
            self.client = self.split.client_part(self.net)
            self.half = SiteHalf(self.split, self.client, self.loss_fn, _front_penalty(c))
        self.opt = Run.make_optimizer(self, self.client.parameters())
        self.wire = Wire(codec=c.codec, noise_std=c.noise_std, noise=c.noise,
                         loss_up=c.loss_up, loss_down=c.loss_down, seed=c.seed + 1 + site)
        self._batches = None
        self._round = None

    # ---------------------------------------------------------------- facts
    def describe(self) -> dict:
        """What the server needs to know of the site (counts and classes, no data)."""
        tr, te = self.run.train, self.run.test
        return {"site": self.site, "n_train": len(tr), "n_test": len(te),
                "in_channels": tr.in_channels, "model_classes": tr.model_classes,
                "num_classes": te.num_classes, "class_names": list(te.class_names),
                "dataset": self.config.dataset}

    # ---------------------------------------------------------------- state
    def load_state(self, client: dict | None, optimizer: dict | None) -> None:
        if client:
            load_into(self.client, client)
        if optimizer:
            self.opt.load_state_dict(optimizer)

    def batches_of(self, r: int) -> list:
        """All batches of round ``r`` (the simulation's order: seed, round, site, epoch)."""
        if self._round != r:
            site = Site(self.site, np.arange(len(self.run.train)), np.arange(0))
            self._batches, self._round = list(site_batches(self.run, site, r)), r
        return self._batches

    def reseed(self, *key: int) -> None:
        """Seed the site wire's generator (noise, row loss) from the run's seed, the site
        and ``key`` (round, batch, step). The ClientApp is rebuilt for every message: with
        one fixed seed, every message would draw the same noise."""
        seq = np.random.SeedSequence([self.config.seed, self.site, *key])
        self.wire.generator.manual_seed(int(seq.generate_state(1)[0]))

    def set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    # ------------------------------------------------------------- protocol
    def front(self, r: int, b: int) -> tuple[dict, int]:
        """Step 1 of batch ``b``: the front's activations as the wire delivers them, and
        the number of images."""
        x, y = self.batches_of(r)[b]
        self.opt.zero_grad(set_to_none=True)
        up = self.half.front(x, y)
        return self._send(up, "up"), len(x)

    def replay(self, r: int, b: int, down: dict | None = None) -> None:
        """Rebuild batch ``b``'s graph as :meth:`front` (and :meth:`back`, given what the
        server sent) left it, without moving the BatchNorm statistics a second time: the
        forward runs on copies of the buffers, and the originals are put back (not
        written into: the graph holds the copies)."""
        modules = [m for m in self.client.modules() if m._buffers]
        saved = [dict(m._buffers) for m in modules]
        for m in modules:
            for k, t in m._buffers.items():
                if t is not None:
                    m._buffers[k] = t.clone()
        try:
            x, y = self.batches_of(r)[b]
            self.half.front(x, y)
            if down is not None:
                self.half.back(down)
        finally:
            for m, bufs in zip(modules, saved):
                m._buffers.update(bufs)

    def back(self, down: dict) -> tuple[dict, float]:
        """Step 3: the gradients of what the server sent, as the wire delivers them, and
        the batch's loss."""
        g_down = self.half.back(down)
        return self.wire.send(g_down, "up", "gradient"), float(self.half.loss)

    def finish(self, g_up: dict) -> None:
        """Step 5 and the site's optimizer step."""
        self.half.finish(g_up)
        step_side(self.opt, list(self.client.parameters()), self.config.clip_grad)

    def train_whole(self, r: int) -> dict:
        """``fl``: train the whole model on the round's batches (the simulation's
        :func:`~medseg_kit.federated.strategies.base.train_whole`)."""
        return train_whole(self.net, self.opt, self.batches_of(r), self.loss_fn,
                           self.config.clip_grad)

    def upload(self) -> dict:
        """The client part's weights as the wire delivers them to the server."""
        return self.wire.send(self.client.state_dict(keep_vars=True), "up", "model")

    def finite(self) -> bool:
        return all(bool(torch.isfinite(t).all()) for t in self.client.state_dict().values()
                   if t.is_floating_point())

    def _send(self, up: dict, direction: str) -> dict:
        return send_activations(self.wire, self.split, up, direction)

    # ----------------------------------------------------------- evaluation
    def bn_statistics(self, weights: dict, r: int) -> dict[str, torch.Tensor]:
        """The site's share of the BatchNorm calibration of the model ``weights``: per
        layer (in :func:`~medseg_kit.federated.batchnorm.batchnorms` order) the number of
        values ``k``, their mean and unbiased variance over the site's calibration sample
        (the sample the simulation draws for this site and round). Statistics, no image."""
        load_into(self.net, weights)
        c = self.config
        ids = calibration_sample(self.train_ids, c.bn_calibration, c.seed, r, self.site)
        pos = np.searchsorted(np.sort(self.train_ids), ids)
        local = np.argsort(self.train_ids)[pos]
        layers = batchnorms(self.net)
        counts = {}
        hooks = [m.register_forward_hook(
            lambda m, i, o, j=j: counts.__setitem__(j, i[0].numel() // i[0].shape[1]))
            for j, m in enumerate(layers)]
        try:
            calibrate(self.net, [self.run.load_batch(self.run.train, local)[0]])
        finally:
            for h in hooks:
                h.remove()
        out = {}
        for j, m in enumerate(layers):
            out[f"{j}.k"] = torch.tensor([counts.get(j, 0)], dtype=torch.int64)
            out[f"{j}.mean"], out[f"{j}.var"] = m.running_mean.clone(), m.running_var.clone()
        return out

    def evaluate(self, weights: dict) -> np.ndarray:
        """Per-image overlap counts (N x C x 3) of the model ``weights`` on the site's
        test images: numbers, no image."""
        load_into(self.net, weights)
        return self.run.evaluate(self.net)


def combine_bn_statistics(net: torch.nn.Module, stats: list[dict[str, torch.Tensor]]) -> None:
    """Set every BatchNorm's running statistics of ``net`` to those of all the sites'
    calibration images together, from each site's :meth:`SiteWorker.bn_statistics`
    (sums of values and of squares add up across sites, as in
    :func:`~medseg_kit.federated.batchnorm.calibrate`)."""
    if not stats:
        return
    for j, m in enumerate(batchnorms(net)):
        k = [float(s[f"{j}.k"][0]) for s in stats]
        total = sum(k)
        if total == 0:
            continue
        s1 = sum(kk * s[f"{j}.mean"].double() for kk, s in zip(k, stats))
        s2 = sum(kk * (s[f"{j}.var"].double() * ((kk - 1) / kk) + s[f"{j}.mean"].double()
                       .square()) for kk, s in zip(k, stats) if kk > 0)
        mean = s1 / total
        var = (s2 / total - mean.square()).clamp_min(0) * (total / max(total - 1, 1))
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))


def _front_penalty(c: RunConfig):
    """NoPeek's term, as the simulation builds it (None when off)."""
    if c.nopeek <= 0:
        return None
    import functools

    from ..federated.run import nopeek

    return functools.partial(nopeek, c.nopeek)


def check_supported(c: RunConfig) -> None:
    """Refuse what the deployment does not carry (yet), naming the setting."""
    if c.precision != "fp32" or c.compile:
        raise ValueError(f"the Flower deployment trains in fp32, eagerly; got precision="
                         f"{c.precision!r}, compile={c.compile}")
    if not math.isfinite(c.lr):
        raise ValueError(f"lr must be finite; got {c.lr}")
