"""The run loop: one config in, a history out; every strategy goes through here.

The loop owns what all strategies share — data, sites, batch order, the loss, the wire,
evaluation, the history and checkpoints — and asks the strategy only to train one round
(:meth:`Strategy.train_round`) and to say which model to evaluate for each site. A
strategy sees of the run only its :class:`~medseg_kit.federated.strategies.RoundContext`
(:meth:`Run.round_context`).

Batch order is a pure function of ``(seed, round, site, epoch)``, so a run can be resumed
from any round's checkpoint and ends with the same weights as an uninterrupted one, and
``sflv2`` with one site sees the very batches ``centralized`` sees.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import metrics
from .._atomic import atomic_write, remove_stale_temporaries
from ..data import SegData, load_dataset, make_sites, train_test_split
from ..data.augment import augment_batch
from ..data.base import ensure_synthetic
from ..data.partition import apply_site_shift
from ..losses import distance_correlation, make_loss
from ..models import create_model
from ..split import Split, resolve_cut
from ..wire import Wire
from .batchnorm import calibrate, calibration_sample
from .checkpoint import KEYS as CHECKPOINT_KEYS
from .checkpoint import load_checkpoint, save_checkpoint
from .compute import TrainingLoss
from .config import RunConfig
from .strategies import STRATEGY_CLASSES, RoundContext, make_strategy

GLOBAL = "all"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return torch.device(name)


@dataclass
class Site:
    """One simulated hospital: its shards of the train and test sets."""

    id: int
    train_idx: np.ndarray
    test_idx: np.ndarray

    @property
    def n_train(self) -> int:
        return len(self.train_idx)


@dataclass
class History:
    """Per round and per site: train loss, test Dice/IoU, bytes up/down, seconds.

    ``records`` holds one dict per (round, site) plus one per round with ``site == "all"``
    (the pooled test set; bytes and seconds summed over the round).
    """

    config: dict
    records: list[dict] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def rows(self, site=GLOBAL) -> list[dict]:
        return [r for r in self.records if r["site"] == site]

    def final(self) -> dict:
        """The last round's pooled row plus bytes per site per round (mean)."""
        if not self.records:
            return {}
        last = self.rows()[-1]
        site_rows = [r for r in self.records if r["site"] != GLOBAL]
        per_site_round = (np.mean([r["bytes_up"] + r["bytes_down"] for r in site_rows])
                          if site_rows else 0.0)
        total_s = sum(r["seconds"] for r in self.rows())
        return {**last, "bytes_per_site_round": float(per_site_round), "total_seconds": total_s,
                "strategy": self.config["strategy"], "model": self.config["model"]}

    def faults(self) -> dict[str, int]:
        """How many site turns ended ``ok``, ``rejected`` (NaN or Inf) or ``dropped``."""
        counts = {"ok": 0, "rejected": 0, "dropped": 0}
        for r in self.records:
            if r["site"] != GLOBAL and r.get("status") in counts:
                counts[r["status"]] += 1
        return counts

    def never_trained(self) -> bool:
        """True when updates were made and every one of them was rejected: the model is
        still its initialisation."""
        f = self.faults()
        return f["rejected"] > 0 and f["ok"] == 0

    def to_json(self) -> str:
        """Strict JSON: a NaN or infinite number (a round with no loss) is written null."""
        return json.dumps({"config": self.config, "records": jsonable(self.records),
                           "events": self.events}, indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> History:
        d = json.loads(text)
        records = [{k: float("nan") if v is None else v for k, v in r.items()}
                   for r in d["records"]]
        return cls(d["config"], records, d.get("events", []))


def jsonable(obj):
    """``obj`` with every NaN or infinite float replaced by ``None`` (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


class Run:
    """Shared state of a run: data, sites, model, split, wire, loss."""

    def __init__(self, config: RunConfig, data: SegData | None = None,
                 progress: bool = True):
        self.config = c = config
        self.device = pick_device(c.device)
        self.progress = progress
        torch.manual_seed(c.seed)
        data = data if data is not None else resolve_data(c, progress)
        tr, te = train_test_split(len(data), c.test_fraction, seed=c.seed,
                                  groups=data.groups())
        self.train, self.test = data.subset(tr), data.subset(te)
        if c.sites > len(self.train) or c.sites > len(self.test):
            raise ValueError(f"{c.sites} sites need at least {c.sites} train and test images; "
                             f"have {len(self.train)} and {len(self.test)}")
        tr_parts = make_sites(self.train, c.partition, c.sites, c.seed, c.concentration,
                              c.partition_by)
        te_parts = make_sites(self.test, c.partition, c.sites, c.seed + 1, c.concentration,
                              c.partition_by)
        if c.partition == "acquisition":  # each site sees its images through its scanner
            self.train = apply_site_shift(self.train, tr_parts, c.seed)
            self.test = apply_site_shift(self.test, te_parts, c.seed)
        self.partition = tr_parts
        self.sites = [Site(i, a, b) for i, (a, b) in enumerate(zip(tr_parts, te_parts))]
        empty = [s.id for s in self.sites if s.n_train < 2 or len(s.test_idx) == 0]
        if empty:
            raise ValueError(f"partition {c.partition!r} left site(s) {empty} with fewer than "
                             "2 training images or no test image; use more images, fewer "
                             "sites or a larger concentration")
        self.net = create_model(c.model, in_channels=data.in_channels,
                                num_classes=data.model_classes, width=c.width).to(self.device)
        if c.channels_last:  # before any strategy copies it: every copy keeps the format
            self.net = self.net.to(memory_format=torch.channels_last)
        self.num_classes = data.num_classes
        self.wire = Wire(codec=c.codec, noise_std=c.noise_std, noise=c.noise,
                         loss_up=c.loss_up, loss_down=c.loss_down, seed=c.seed)
        #: the loss training calls; with mixed precision or compilation a TrainingLoss,
        #: which also says how to compute (see :mod:`medseg_kit.federated.compute`)
        self.loss_fn = make_loss(c.loss, c.dice_weight)
        if c.precision != "fp32" or c.compile:
            self.loss_fn = TrainingLoss(self.loss_fn, c.precision, self.device, c.compile)
        #: the site's own loss term on what it sends (NoPeek), or None
        self.front_penalty = None
        self.notes = []
        #: the cut (``None`` for a strategy that does not split: centralized, local, fl)
        self.split: Split | None = None
        if STRATEGY_CLASSES[c.strategy].uses_split:
            front, back = resolve_cut(self.net, c.cut, c.split)
            self.split = Split(self.net, front, back, allow_raw=c.allow_raw)
            if self.split.labels_to_server:
                self.notes.append(f"vanilla split at ({front}, {back}): the server computes "
                                  "the loss, so every label is sent to it")
            if self.split.raw_up:
                self.notes.append("the cut sends raw image data to the server: "
                                  f"{self.split.raw_up}")
            if c.nopeek > 0:
                self.front_penalty = functools.partial(nopeek, c.nopeek)
        elif c.nopeek > 0:
            raise ValueError(f"nopeek={c.nopeek} needs a strategy that splits the network "
                             f"({', '.join(n for n, s in STRATEGY_CLASSES.items() if s.uses_split)}"
                             f"); {c.strategy} sends no activations")

    def round_context(self) -> RoundContext:
        """What a strategy may use of this run: the model, the sites, the wire, the loss,
        the batches, a way to make optimizers, and the few settings training reads."""
        c = self.config
        return RoundContext(net=self.net, sites=tuple(self.sites), wire=self.wire,
                            loss_fn=self.loss_fn, batches=self.batches,
                            make_optimizer=self.make_optimizer, local_epochs=c.local_epochs,
                            clip_grad=c.clip_grad, seed=c.seed, split=self.split,
                            front_penalty=self.front_penalty)

    # --------------------------------------------------------------- batches
    def batches(self, indices: np.ndarray, round_: int, site: int, epoch: int = 0
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches of ``self.train[indices]``; order fixed by (seed, round, site,
        epoch). A final batch of one image is dropped (BatchNorm cannot train on it)."""
        key = np.random.SeedSequence([self.config.seed, round_, site, epoch])
        g = torch.Generator().manual_seed(int(key.generate_state(1)[0]))
        order = indices[torch.randperm(len(indices), generator=g).numpy()]
        bs = self.config.batch_size
        for s in range(0, len(order), bs):
            chunk = order[s:s + bs]
            if len(chunk) < 2 and len(order) > 1:
                break
            x, y = self.load_batch(self.train, chunk)
            if self.config.augment:  # same generator stream: resumable and reproducible
                x, y = augment_batch(x, y, g)
            if self.config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

    def load_batch(self, data: SegData, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``data.batch(indices)`` on the run's device. To a GPU the uint8 images and masks
        travel from pinned memory without blocking (the same values as ``data.batch``);
        on the CPU this is ``data.batch`` itself."""
        if self.device.type != "cuda" or type(data).batch is not SegData.batch:
            return data.batch(indices, self.device)
        idx = np.asarray(indices, dtype=np.int64)
        x, y = (torch.from_numpy(a[idx]).pin_memory().to(self.device, non_blocking=True)
                for a in (data.images, data.masks))
        return (x.permute(0, 3, 1, 2).float() / 255.0).contiguous(), y.long()

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        c = self.config
        params = list(params)
        # foreach: one kernel per step for all tensors (PyTorch picks it only on CUDA)
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay,
                                   foreach=True)
        cls = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=c.lr, weight_decay=c.weight_decay, foreach=True)

    def lr_at(self, r: int) -> float:
        """The learning rate of round ``r`` (cosine: annealed from ``lr`` towards 0)."""
        c = self.config
        if c.schedule == "cosine":
            return c.lr * 0.5 * (1 + math.cos(math.pi * r / c.rounds))
        return c.lr

    def active_sites(self, r: int) -> list[int]:
        """The sites that report in round ``r`` (site dropout: schedule, then probability)."""
        c = self.config
        ids = [s.id for s in self.sites]
        if c.dropout_schedule and r in c.dropout_schedule:
            return [i for i in ids if i not in c.dropout_schedule[r]]
        if c.site_dropout > 0:
            rng = np.random.default_rng([c.seed, r, 13])
            return [i for i in ids if rng.random() >= c.site_dropout]
        return ids

    # ------------------------------------------------------------ evaluation
    def calibrate(self, strategy, r: int, sites: list[int]) -> dict[int, dict[str, int]]:
        """Set the BatchNorm statistics of every model ``strategy`` evaluates from its final
        weights and ``bn_calibration`` training images of each of ``sites`` that uses it
        (one batch per site; a model that none of ``sites`` uses is left as it is). See
        :mod:`medseg_kit.federated.batchnorm`.

        In a split run that forward pass crosses the cut, so its activations are counted
        on the wire (kind ``calibration``). Returns the bytes per site:
        ``{site: {"bytes_up": ..., "bytes_down": ...}}``.
        """
        c = self.config
        if c.bn_calibration == 0:
            return {}
        users: dict[int, tuple[object, list[int]]] = {}
        samples = {i: calibration_sample(self.sites[i].train_idx, c.bn_calibration, c.seed,
                                         r, i) for i in sites}
        for i in sites:
            net = strategy.model_for(i)
            users.setdefault(id(net), (net, []))[1].append(i)
        for net, ids in users.values():  # one batch per site: its sample
            calibrate(net, (self.load_batch(self.train, samples[i])[0] for i in ids))
        return count_calibration(self.wire, self.split, c.size,
                                 {i: len(samples[i]) for i in sites})

    @torch.no_grad()
    def predict(self, net, indices: np.ndarray | None = None) -> torch.Tensor:
        """Class-id predictions of ``net`` on the test set (or a subset), on the CPU."""
        idx = np.arange(len(self.test)) if indices is None else indices
        was = net.training
        net.eval()
        out = []
        for s in range(0, len(idx), 32):
            x, _ = self.load_batch(self.test, idx[s:s + 32])
            out.append(metrics.predict(net(x)).cpu())
        net.train(was)
        return torch.cat(out)

    def predict_sites(self, strategy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every test image predicted by the model its site uses (``strategy.model_for``),
        site after site: ``(index into self.test, site id, class-id maps)``."""
        index = np.concatenate([s.test_idx for s in self.sites])
        site_of = np.concatenate([np.full(len(s.test_idx), s.id) for s in self.sites])
        pred = np.concatenate([self.predict(strategy.model_for(s.id), s.test_idx).numpy()
                               for s in self.sites])
        return index, site_of, pred

    def evaluate(self, net, indices: np.ndarray | None = None) -> np.ndarray:
        """Per-image overlap counts (N x C x 3) of ``net`` on the test set."""
        idx = np.arange(len(self.test)) if indices is None else indices
        target = torch.from_numpy(self.test.masks[idx]).long()
        return metrics.overlap_counts(self.predict(net, idx), target, self.num_classes).numpy()


def count_calibration(wire: Wire, split: Split | None, size: int, images: dict[int, int]
                      ) -> dict[int, dict[str, int]]:
    """Count on ``wire`` what the BatchNorm calibration's forward pass sends across the
    cut of ``split`` (kind ``calibration``: the activations of ``images[site]`` images
    at ``size`` px, forward only: no gradient, no label), site after site in the order of
    ``images``. Returns the bytes per site, ``{site: {"bytes_up": ..., "bytes_down":
    ...}}`` (none without a split: the model stays whole at the site).

    :meth:`Run.calibrate` and the Flower server (which gets statistics, not activations,
    from its sites but counts what the simulation counts) both count with it.
    """
    if split is None:
        return {}
    crossings = [x for x in split.crossings(size) if x.name != "label"]
    sent = {}
    for i, n in images.items():
        up0, down0 = wire.bytes_up, wire.bytes_down
        for direction in ("up", "down"):
            wire.account({x.name: torch.empty((n, *x.shape), dtype=x.dtype, device="meta")
                          for x in crossings if x.direction == direction},
                         direction, "calibration")
        sent[i] = {"bytes_up": wire.bytes_up - up0, "bytes_down": wire.bytes_down - down0}
    return sent


def nopeek(weight: float, x: torch.Tensor, sent: dict[str, torch.Tensor]) -> torch.Tensor:
    """NoPeek's loss term: ``weight`` x the distance correlation between the images and
    everything floating-point the site sends up, flattened per image (the run's
    ``front_penalty`` is ``functools.partial(nopeek, config.nopeek)``)."""
    z = torch.cat([t.flatten(1) for t in sent.values() if t.is_floating_point()], 1)
    return weight * distance_correlation(x, z)


def resolve_data(c: RunConfig, progress: bool = True) -> SegData:
    """Load ``c.dataset`` from ``c.data_root``, or synthesize it once and load that."""
    root = c.data_root or ensure_synthetic(c.dataset, c.n_images, c.seed, progress)
    return load_dataset(c.dataset, root, size=c.size, progress=progress)


#: the files a run folder holds (written after every round, each atomically)
CHECKPOINT, HISTORY, CONFIG = "checkpoint.pt", "history.json", "config.json"


def train(config: RunConfig, out: str | Path | None = None, *, data: SegData | None = None,
          progress: bool = True, resume: bool = False,
          on_round: Callable[[History, int], bool | None] | None = None
          ) -> tuple[History, object]:
    """Run ``config``; return ``(history, strategy)``.

    With ``out``, writes ``config.json``, ``checkpoint.pt`` and ``history.json`` after
    every round (each atomically), and with ``resume`` continues from the last complete
    round there: bit for bit as if the run had not stopped (weights, optimizers and every
    random generator the run draws from are in the checkpoint). ``config`` must equal the
    saved one except in ``rounds`` (which may grow: the run is extended) and ``device``.

    Faults (sites that drop out, updates rejected as NaN or Inf) are recorded in
    ``history.events`` and, with ``progress``, printed as they happen.

    ``on_round(history, r)`` is called after round ``r`` is recorded and checkpointed (a
    live monitor draws from it); when it returns true the run stops there, at a round
    boundary, so the checkpoint stays valid and ``resume`` continues from it.
    """
    out = Path(out) if out is not None else None
    ck = open_run_folder(out, config, resume) if out is not None else None
    run = Run(config, data=data, progress=progress)
    strategy = make_strategy(config.strategy, run)
    history = History(config.to_dict())
    start = 0
    if ck is not None:
        history = restore(ck, run, strategy, out / CHECKPOINT)
        history.config = config.to_dict()  # the rounds may have grown
        start = int(ck["round"]) + 1

    def event(message: str) -> None:
        history.events.append(message)
        if progress:
            tqdm.write(message, file=sys.stderr)

    if start == 0:
        history.events.extend(run.notes)
        for note in run.notes:
            warnings.warn(note, stacklevel=2)
    bar = tqdm(range(start, config.rounds), desc=f"{config.strategy} rounds",
               disable=not progress, initial=start, total=config.rounds)
    for r in bar:
        t0 = time.perf_counter()
        set_lr(strategy, run.lr_at(r))
        active = run.active_sites(r)
        site_stats = strategy.train_round(r, active) if active else {}
        for message in fault_events(r, [s.id for s in run.sites], active, site_stats):
            event(message)
        add_bytes(site_stats, run.calibrate(strategy, r, active))
        seconds = time.perf_counter() - t0
        history.records.extend(round_records(run, strategy, r, active, site_stats, seconds))
        g = history.rows()[-1]
        bar.set_postfix(loss=f"{g['train_loss']:.3f}", dice=f"{g['dice']:.3f}")
        if out is not None:
            save_round(out, config, r, strategy, history, run, first=r == start)
        if on_round is not None and on_round(history, r) and r + 1 < config.rounds:
            event(f"stopped on request after round {r + 1} of {config.rounds}")
            if out is not None:
                atomic_write(out / HISTORY, history.to_json())
            break
    return history, strategy


# ------------------------------------------------- the loop's parts, shared
# (with the Flower deployment's round loop, medseg_kit.flower.server, which runs the same
# rounds with the sites in other processes)
def open_run_folder(out: Path, config: RunConfig, resume: bool) -> dict | None:
    """Make ready to write a run into ``out``: refuse a file there and remove what a write
    cut short left behind. With ``resume``, load the checkpoint in ``out`` and check that
    ``config`` may continue it (:func:`check_resumable`); return it (else ``None``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; a run's output must be a folder")
    remove_stale_temporaries(out, (CHECKPOINT, HISTORY, CONFIG))
    if not resume:
        return None
    ck = load_checkpoint(out / CHECKPOINT, map_location="cpu", keys=CHECKPOINT_KEYS)
    check_resumable(ck, config, out / CHECKPOINT)
    return ck


def set_lr(strategy, lr: float) -> None:
    """Set the learning rate of every optimizer of ``strategy`` (each round's
    :meth:`Run.lr_at`)."""
    for opt in strategy.optimizers().values():
        for group in opt.param_groups:
            group["lr"] = lr


def fault_events(r: int, sites: list[int], trained: list[int], site_stats: dict[int, dict]
                 ) -> list[str]:
    """The events of round ``r``'s faults: the ``sites`` that did not train (not in
    ``trained``) and the updates rejected as NaN or Inf (``status`` in ``site_stats``)."""
    events = []
    dropped = [i for i in sites if i not in trained]
    if not trained:
        events.append(f"round {r}: every site dropped out; the global model is kept as it "
                      "was")
    elif dropped:
        events.append(f"round {r}: site(s) {dropped} dropped out")
    rejected = [i for i, st in site_stats.items() if st.get("status") == "rejected"]
    if rejected:
        events.append(f"round {r}: update(s) of site(s) {rejected} rejected (NaN or Inf); "
                      "not averaged")
    return events


def add_bytes(site_stats: dict[int, dict], extra: dict[int, dict[str, int]]) -> None:
    """Add the bytes of ``extra`` (per site: ``bytes_up``, ``bytes_down``; the BatchNorm
    calibration's) to each site's stats."""
    for i, more in extra.items():
        st = site_stats.setdefault(i, {})
        for k, v in more.items():
            st[k] = st.get(k, 0) + v


def save_round(out: Path, config: RunConfig, r: int, strategy, history: History, run, *,
               first: bool) -> None:
    """After round ``r``: ``checkpoint.pt`` (weights, optimizers, history and every random
    generator: :func:`rng_state`) and ``history.json``, each atomically; with ``first``
    (the first round this call runs) ``config.json`` beside them."""
    if first:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / CONFIG, json.dumps(config.to_dict(), indent=1))
    save_checkpoint(out / CHECKPOINT, {
        "config": config.to_dict(), "round": r, "strategy": strategy.state_dict(),
        "history": history.to_json(), "rng": rng_state(run)})
    atomic_write(out / HISTORY, history.to_json())


def rng_state(run: Run) -> dict:
    """Every random generator the run draws from as it goes (the rest are keyed by seed,
    round and site): PyTorch's global ones (dropout) and the wire's (noise, losses)."""
    state = {"torch": torch.get_rng_state(), "wire": run.wire.state_dict()}
    if run.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def check_resumable(ck: dict, config: RunConfig, path: Path) -> None:
    """Refuse to resume the checkpoint ``ck`` (read from ``path``) with another config, or
    with fewer rounds than were run: one ``ValueError`` naming what differs."""
    try:
        saved = RunConfig.from_dict(dict(ck["config"]))
        done = int(ck["round"]) + 1
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} holds no valid config ({e})") from None
    if not 1 <= done <= saved.rounds:
        raise ValueError(f"checkpoint {path} is damaged: round {done - 1} is not one of the "
                         f"{saved.rounds} rounds of its config")
    a, b = saved.to_dict(), config.to_dict()
    diff = sorted(k for k in a if k not in ("rounds", "device") and a[k] != b[k])
    if diff:
        detail = ", ".join(f"{k}: {a[k]!r} saved, {b[k]!r} asked" for k in diff)
        raise ValueError(f"cannot resume {path.parent}: its config differs from this one "
                         f"({detail})")
    if config.rounds < done:
        raise ValueError(f"cannot resume {path.parent}: it has finished {done} rounds and "
                         f"rounds={config.rounds} would shrink it; ask for more than {done} "
                         "to extend it")


def restore(ck: dict, run: Run, strategy, path: Path) -> History:
    """Load the checkpoint ``ck`` (read from ``path``): weights and optimizers into
    ``strategy``, the generators into ``run`` (its wire) and PyTorch; return its history.
    A checkpoint that does not fit is one ``ValueError`` naming the file."""
    try:
        strategy.load_state_dict(ck["strategy"])
        history = History.from_json(ck["history"])
        rng = ck["rng"]
        run.wire.load_state_dict(rng["wire"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and run.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
    except Exception as e:  # whatever the file holds, a misfit is one error naming it
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"checkpoint {path} does not fit this run ({first}); it is damaged "
                         "or was written by another version of the kit") from None
    return history


def round_records(run: Run, strategy, r: int, active: list[int], site_stats: dict[int, dict],
                  seconds: float) -> list[dict]:
    """Round ``r``'s rows of the history: one per site (status ``ok``, ``rejected``,
    ``dropped``, or ``pooled`` for a site whose data centralized training used) and one
    pooled (``site == "all"``). Each site's test images are judged by the model it uses
    (``strategy.model_for``, counted by ``run.evaluate``); ``site_stats`` holds what its
    training returned (loss, images, bytes, seconds, status)."""
    recs, all_counts = [], []
    for site in run.sites:
        net = strategy.model_for(site.id)
        counts = run.evaluate(net, site.test_idx)
        all_counts.append(counts)
        st = site_stats.get(site.id, {})
        status = st.get("status", "pooled" if site.id in active else "dropped")
        recs.append({"round": r, "site": site.id, "status": status,
                     "train_loss": st.get("train_loss", float("nan")),
                     **metrics.summarize(counts, class_names=run.test.class_names),
                     "bytes_up": st.get("bytes_up", 0),
                     "bytes_down": st.get("bytes_down", 0), "seconds": st.get("seconds", 0.0),
                     "n_train": site.n_train, "n_test": len(site.test_idx)})
    # every site's test images, each judged by the model that site would use
    pooled = metrics.summarize(np.concatenate(all_counts), class_names=run.test.class_names)
    losses = [(s["train_loss"], s.get("n", 1)) for s in site_stats.values()
              if s.get("status", "ok") == "ok" and s.get("n", 0) > 0]
    loss = (sum(v * n for v, n in losses) / sum(n for _, n in losses)) if losses else float("nan")
    recs.append({"round": r, "site": GLOBAL, "train_loss": loss, **pooled,
                 "bytes_up": sum(x["bytes_up"] for x in recs),
                 "bytes_down": sum(x["bytes_down"] for x in recs), "seconds": seconds,
                 "n_train": sum(x["n_train"] for x in recs),
                 "n_test": sum(x["n_test"] for x in recs)})
    return recs
