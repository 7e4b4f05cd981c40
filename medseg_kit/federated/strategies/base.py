"""What every strategy shares: the interface, the two ways of training on a shard, the
guard against broken updates, and FedAvg of a group of parts."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ...models import StagedNet
from ...protocol import split_train_step
from ...split import Part, Split
from ...wire import Wire
from ..aggregation import fedavg


class Strategy:
    """A learning scheme.

    Subclasses build their models in ``__init__`` and implement :meth:`train_round`
    (train the sites that report this round) and :meth:`model_for`; the run loop does
    everything else (data, batches, evaluation, faults, checkpoints).

    State that must survive a resume is every module and optimizer the strategy lists in
    :meth:`modules` and :meth:`optimizers`; ``state_dict`` saves exactly those.
    """

    name = ""
    #: True when the strategy cuts the network between the sites and a server (the run
    #: then resolves the cut and builds a :class:`~medseg_kit.split.Split`; otherwise it
    #: builds none and ignores ``cut`` and ``split``)
    uses_split = False

    def __init__(self, run):
        self.run = run

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
def _clip(params: list[torch.nn.Parameter], max_norm: float | None) -> None:
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)


def train_whole(net: StagedNet, opt: torch.optim.Optimizer, batches: Iterable, loss_fn,
                clip: float | None = None) -> dict:
    """Ordinary training of a whole network on some batches."""
    net.train()
    params = [p for g in opt.param_groups for p in g["params"]]
    t0 = time.perf_counter()
    total, n = None, 0
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net.run({"x": x})["logits"], y)
        loss.backward()
        _clip(params, clip)
        opt.step()
        total = loss.detach() * len(x) if total is None else total + loss.detach() * len(x)
        n += len(x)
    return {"train_loss": (total / n).item() if n else float("nan"), "n": n, "bytes_up": 0,
            "bytes_down": 0, "seconds": time.perf_counter() - t0}


def train_split(split: Split, client: Part, server: Part, opt_client: torch.optim.Optimizer,
                opt_server: torch.optim.Optimizer, batches: Iterable, loss_fn, wire: Wire,
                clip: float | None = None, front_penalty=None) -> dict:
    """SplitFed training of one site with one server part on some batches.

    Each side clips its own gradient norm (neither sees the other's gradients);
    ``front_penalty`` is the site's own loss term (see :func:`split_train_step`).
    Returns the loss, the number of images, the bytes sent each way and the seconds.
    """
    client.train()
    server.train()
    cparams, sparams = list(client.parameters()), list(server.parameters())
    up0, down0, t0 = wire.bytes_up, wire.bytes_down, time.perf_counter()
    total, n = None, 0
    for x, y in batches:
        opt_client.zero_grad(set_to_none=True)
        opt_server.zero_grad(set_to_none=True)
        loss = split_train_step(split, client, server, x, y, loss_fn, wire, front_penalty)
        _clip(sparams, clip)
        _clip(cparams, clip)
        opt_server.step()
        opt_client.step()
        total = loss * len(x) if total is None else total + loss * len(x)
        n += len(x)
    return {"train_loss": (total / n).item() if n else float("nan"), "n": n,
            "bytes_up": wire.bytes_up - up0, "bytes_down": wire.bytes_down - down0,
            "seconds": time.perf_counter() - t0}


def site_batches(run, site, r: int):
    """All batches of ``site`` for round ``r`` (``local_epochs`` passes)."""
    for e in range(run.config.local_epochs):
        yield from run.batches(site.train_idx, r, site.id, e)


# --------------------------------------------------------------------- guard
def is_finite(*modules: nn.Module) -> bool:
    """No NaN or Inf in any floating-point entry (one host sync, not one per tensor)."""
    flags = [torch.isfinite(t).all() for m in modules for t in m.state_dict().values()
             if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def snapshot(state):
    """A copy of a (nested) state dict: every tensor cloned, containers rebuilt, everything
    else shared (ten times faster than ``copy.deepcopy`` on a small model's state)."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        out = type(state)((k, snapshot(v)) for k, v in state.items())
        if hasattr(state, "_metadata"):  # a module's state dict: keep its versions
            out._metadata = state._metadata
        return out
    if isinstance(state, list | tuple):
        return type(state)(snapshot(v) for v in state)
    return state


def guarded(modules: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer], fn
            ) -> dict:
    """Run ``fn()`` (one site's training); if its loss or the resulting weights are NaN or
    Inf, put ``modules`` and ``optimizers`` back as they were and mark it ``rejected``."""
    saved = ([snapshot(m.state_dict()) for m in modules],
             [snapshot(o.state_dict()) for o in optimizers])
    stats = fn()
    if math.isfinite(stats["train_loss"]) and is_finite(*modules):
        stats["status"] = "ok"
        return stats
    for m, s in zip(modules, saved[0]):
        m.load_state_dict(s)
    for o, s in zip(optimizers, saved[1]):
        o.load_state_dict(s)
    stats["status"] = "rejected"
    return stats


def average_into(targets: Sequence[nn.Module], sources: Sequence[nn.Module],
                 weights: Sequence[float]) -> None:
    """FedAvg the state of ``sources`` and load the mean into every module of ``targets``."""
    avg = fedavg([m.state_dict() for m in sources], weights)
    for t in targets:
        t.load_state_dict(avg)


def download(wire: Wire, source: nn.Module, target: nn.Module) -> None:
    """The server sends ``source``'s weights (parameters and buffers) down the wire; the
    site's copy ``target`` loads what arrives (a model codec may have changed it)."""
    target.load_state_dict(wire.send(dict(source.state_dict()), "down", "model"))


def upload(wire: Wire, module: nn.Module) -> dict[str, torch.Tensor]:
    """The site sends ``module``'s weights up the wire; returns what the server receives."""
    return wire.send(dict(module.state_dict()), "up", "model")


def average_states_into(targets: Sequence[nn.Module], states: Sequence[dict],
                        weights: Sequence[float]) -> None:
    """FedAvg ``states`` (what the server received) into every module of ``targets``."""
    avg = fedavg(list(states), weights)
    for t in targets:
        t.load_state_dict(avg)
