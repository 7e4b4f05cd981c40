"""What every strategy shares: the interface, the narrow view of the run it trains in
(:class:`RoundContext`), the two ways of training on a shard, the guard against broken
updates, and FedAvg of a group of parts."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ...models import StagedNet
from ...protocol import FrontPenalty, LossFn, clip_grads, split_train_step, unscale_grads
from ...split import Part, Split
from ...wire import Wire
from ..aggregation import fedavg
from ..compute import TrainingLoss, step
from ..tensors import all_finite, clone, copy_, load_into, state_tensors


class SiteShard(Protocol):
    """What a strategy knows of a site: its id and its training images (indices into the
    run's training set)."""

    id: int
    train_idx: np.ndarray

    @property
    def n_train(self) -> int: ...


#: ``batches(indices, round, site, epoch)``: the shuffled training batches ``(x, y)`` of
#: those images, in an order fixed by (seed, round, site, epoch)
Batches = Callable[[np.ndarray, int, int, int], Iterator[tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class RoundContext:
    """All a strategy may use of the run it trains in (built by
    :meth:`~medseg_kit.federated.run.Run.round_context`); the run loop keeps the rest
    (data, evaluation, faults, checkpoints).

    Attributes:
        net: the whole network, initialised; the global model of the strategies that keep
            one (the split strategies' parts share its weights).
        sites: the sites, in id order.
        wire: what every crossing goes through (bytes counted, codecs, noise, losses).
        loss_fn: the training loss (a :class:`~medseg_kit.federated.compute.TrainingLoss`
            when the run trains in mixed precision or compiled).
        batches: a site's batches for one round and epoch (see :data:`Batches`).
        make_optimizer: a fresh optimizer of the run's kind for some parameters.
        local_epochs: passes over its shard a site makes per round.
        clip_grad: the gradient-norm clip of each side (``None``: no clipping).
        seed: the run's seed (for a strategy's own draws, e.g. SFLv2's site order).
        split: the cut, for a strategy that splits the network (``uses_split``).
        front_penalty: the site's own loss term on what it sends (NoPeek), or ``None``.
    """

    net: StagedNet
    sites: Sequence[SiteShard]
    wire: Wire
    loss_fn: LossFn | TrainingLoss
    batches: Batches
    make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    local_epochs: int = 1
    clip_grad: float | None = None
    seed: int = 0
    split: Split | None = None
    front_penalty: FrontPenalty | None = None


class Strategy:
    """A learning scheme.

    Subclasses build their models in ``__init__`` and implement :meth:`train_round`
    (train the sites that report this round) and :meth:`model_for`; the run loop does
    everything else (data, batches, evaluation, faults, checkpoints). What a strategy may
    use of the run is its :class:`RoundContext`, ``self.ctx``.

    State that must survive a resume is every module and optimizer the strategy lists in
    :meth:`modules` and :meth:`optimizers`; ``state_dict`` saves exactly those.
    """

    name = ""
    #: True when the strategy cuts the network between the sites and a server (the run
    #: then resolves the cut and builds a :class:`~medseg_kit.split.Split`; otherwise it
    #: builds none and ignores ``cut`` and ``split``)
    uses_split = False

    #: the run :func:`~medseg_kit.federated.strategies.make_strategy` made this strategy
    #: for (``None`` when built from a context alone): for callers that evaluate or
    #: report a trained strategy; the strategy itself reads only :attr:`ctx`
    run = None

    def __init__(self, ctx: RoundContext):
        self.ctx = ctx

    def train_round(self, r: int, active: Sequence[int]) -> dict[int, dict]:
        """Train round ``r`` with the sites in ``active``; return per-site stats:
        ``train_loss, n, bytes_up, bytes_down, seconds, status`` (``ok`` or ``rejected``)."""
        raise NotImplementedError

    def model_for(self, site: int) -> StagedNet:
        """The whole network that is evaluated on ``site``'s test shard."""
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"modules": {k: m.state_dict() for k, m in self.modules().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optimizers"][k])


# ------------------------------------------------------------------ training
def _how(loss_fn) -> TrainingLoss | None:
    """The mixed precision / compilation a run trains with (None: plain fp32, eager)."""
    return loss_fn if isinstance(loss_fn, TrainingLoss) else None


def train_whole(net: StagedNet, opt: torch.optim.Optimizer, batches: Iterable, loss_fn,
                clip: float | None = None) -> dict:
    """Ordinary training of a whole network on some batches.

    ``loss_fn``: the run's loss, or a :class:`~medseg_kit.federated.compute.TrainingLoss`
    that also says how to compute (mixed precision, compiled stages).
    """
    net.train()
    params = [p for g in opt.param_groups for p in g["params"]]
    how = _how(loss_fn)
    forward = how.forward(net) if how is not None else net
    scaler = how.scaler() if how is not None else None
    t0 = time.perf_counter()
    total, n = None, 0
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward.run({"x": x})["logits"], y)
        (loss if scaler is None else scaler.scale(loss)).backward()
        unscale_grads(scaler, [opt])
        clip_grads(params, clip)
        step([opt], scaler)
        total = loss.detach() * len(x) if total is None else total + loss.detach() * len(x)
        n += len(x)
    return {"train_loss": (total / n).item() if n else float("nan"), "n": n, "bytes_up": 0,
            "bytes_down": 0, "seconds": time.perf_counter() - t0}


def train_split(split: Split, client: Part, server: Part, opt_client: torch.optim.Optimizer,
                opt_server: torch.optim.Optimizer, batches: Iterable, loss_fn, wire: Wire,
                clip: float | None = None, front_penalty=None) -> dict:
    """SplitFed training of one site with one server part on some batches.

    Each side clips its own gradient norm (neither sees the other's gradients);
    ``front_penalty`` is the site's own loss term (see :func:`split_train_step`);
    ``loss_fn`` as in :func:`train_whole` (fp16: one loss scaler for the site's turn,
    both sides unscale before they clip).
    Returns the loss, the number of images, the bytes sent each way and the seconds.
    """
    client.train()
    server.train()
    cparams, sparams = list(client.parameters()), list(server.parameters())
    how = _how(loss_fn)
    front, middle = (how.forward(client), how.forward(server)) if how else (client, server)
    scaler = how.scaler() if how is not None else None
    up0, down0, t0 = wire.bytes_up, wire.bytes_down, time.perf_counter()
    total, n = None, 0
    for x, y in batches:
        opt_client.zero_grad(set_to_none=True)
        opt_server.zero_grad(set_to_none=True)
        loss = split_train_step(split, front, middle, x, y, loss_fn, wire, front_penalty,
                                scaler)
        # both sides together, server first (in a deployment each side steps alone:
        # protocol.step_side)
        unscale_grads(scaler, [opt_server, opt_client])
        clip_grads(sparams, clip)
        clip_grads(cparams, clip)
        step([opt_server, opt_client], scaler)
        total = loss * len(x) if total is None else total + loss * len(x)
        n += len(x)
    return {"train_loss": (total / n).item() if n else float("nan"), "n": n,
            "bytes_up": wire.bytes_up - up0, "bytes_down": wire.bytes_down - down0,
            "seconds": time.perf_counter() - t0}


def site_batches(ctx: RoundContext, site: SiteShard, r: int
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """All batches of ``site`` for round ``r`` (``local_epochs`` passes)."""
    for e in range(ctx.local_epochs):
        yield from ctx.batches(site.train_idx, r, site.id, e)


# --------------------------------------------------------------------- guard
def is_finite(*modules: nn.Module) -> bool:
    """No NaN or Inf in any floating-point entry of the modules' states (a few multi-tensor
    operations and one host sync, whatever the number of tensors)."""
    return all_finite(t for m in modules for t in state_tensors(m))


def guarded(modules: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer], fn
            ) -> dict:
    """Run ``fn()`` (one site's training); if its loss or the resulting weights are NaN or
    Inf, put ``modules`` and ``optimizers`` back as they were and mark it ``rejected``.

    "As they were": every parameter and buffer, and each optimizer's state (moments, step
    counts; a parameter that had none has none again) and hyperparameters. The copy is
    taken with a multi-tensor copy per dtype (:mod:`medseg_kit.federated.tensors`) and
    restored with one more; the check is one ``_foreach_norm``; no kernel runs per tensor.
    """
    weights = [t for m in modules for t in state_tensors(m)]
    states = [(o, {p: dict(s) for p, s in o.state.items()},
               [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups])
              for o in optimizers]
    moments = [v for _, st, _ in states for s in st.values() for v in s.values()
               if isinstance(v, torch.Tensor)]
    saved, kept = clone(weights), iter(clone(moments))  # (two buffers: see below)
    stats = fn()
    if math.isfinite(stats["train_loss"]) and all_finite(weights):
        stats["status"] = "ok"
        return stats
    copy_(weights, saved)
    # the optimizers keep the saved tensors themselves, as load_state_dict would give them
    # (views of a buffer that holds nothing else, so no copy of the weights stays alive)
    for o, st, hyper in states:
        o.state = defaultdict(dict, {p: {k: next(kept) if isinstance(v, torch.Tensor) else v
                                         for k, v in s.items()} for p, s in st.items()})
        for g, h in zip(o.param_groups, hyper):
            g.update(h)
    stats["status"] = "rejected"
    return stats


def average_into(targets: Sequence[nn.Module], sources: Sequence[nn.Module],
                 weights: Sequence[float]) -> None:
    """FedAvg the state of ``sources`` and load the mean into every module of ``targets``."""
    avg = fedavg([m.state_dict(keep_vars=True) for m in sources], weights)
    for t in targets:
        load_into(t, avg)


def download(wire: Wire, source: nn.Module, target: nn.Module) -> None:
    """The server sends ``source``'s weights (parameters and buffers) down the wire; the
    site's copy ``target`` loads what arrives (a model codec may have changed it)."""
    load_into(target, wire.send(source.state_dict(keep_vars=True), "down", "model"))


def upload(wire: Wire, module: nn.Module) -> dict[str, torch.Tensor]:
    """The site sends ``module``'s weights up the wire; returns what the server receives."""
    return wire.send(module.state_dict(keep_vars=True), "up", "model")


def average_states_into(targets: Sequence[nn.Module], states: Sequence[dict],
                        weights: Sequence[float]) -> None:
    """FedAvg ``states`` (what the server received) into every module of ``targets``."""
    avg = fedavg(list(states), weights)
    for t in targets:
        load_into(t, avg)
