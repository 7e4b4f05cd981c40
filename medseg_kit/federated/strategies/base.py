"""What every strategy shares: the interface and the two ways of training on a shard."""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch

from ...models import StagedNet
from ...protocol import split_train_step
from ...split import Part, Split
from ...wire import Wire


class Strategy:
    """A learning scheme. Subclasses set up their models in ``__init__`` and implement
    :meth:`train_round` and :meth:`model_for`; the run loop does the rest."""

    name = ""
    single_global_model = True  # False when each site keeps its own model (local)

    def __init__(self, run):
        self.run = run

    def train_round(self, r: int) -> dict[int, dict]:
        """Train one round; return per site ``train_loss, n, bytes_up, bytes_down, seconds``."""
        raise NotImplementedError

    def model_for(self, site: int) -> StagedNet:
        """The whole network that is evaluated on ``site``'s test shard."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


def train_whole(net: StagedNet, opt: torch.optim.Optimizer, batches: Iterable, loss_fn
                ) -> dict:
    """Ordinary training of a whole network on some batches; returns loss and count."""
    net.train()
    total, n = torch.zeros((), device=next(net.parameters()).device), 0
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net.run({"x": x})["logits"], y)
        loss.backward()
        opt.step()
        total += loss.detach() * len(x)
        n += len(x)
    return {"train_loss": (total / max(n, 1)).item(), "n": n}


def train_split(split: Split, client: Part, server: Part, opt_client: torch.optim.Optimizer,
                opt_server: torch.optim.Optimizer, batches: Iterable, loss_fn, wire: Wire
                ) -> dict:
    """SplitFed training of one site with one server part on some batches.

    Returns the loss, the number of images, the bytes the site sent and received and the
    seconds it took.
    """
    client.train()
    server.train()
    up0, down0, t0 = wire.bytes_up, wire.bytes_down, time.perf_counter()
    total, n = None, 0
    for x, y in batches:
        opt_client.zero_grad(set_to_none=True)
        opt_server.zero_grad(set_to_none=True)
        loss = split_train_step(split, client, server, x, y, loss_fn, wire)
        opt_server.step()
        opt_client.step()
        total = loss * len(x) if total is None else total + loss * len(x)
        n += len(x)
    return {"train_loss": (total / max(n, 1)).item() if total is not None else float("nan"),
            "n": n, "bytes_up": wire.bytes_up - up0, "bytes_down": wire.bytes_down - down0,
            "seconds": time.perf_counter() - t0}


def site_batches(run, site, r: int, epochs: int | None = None):
    """All batches of ``site`` for round ``r`` (``local_epochs`` passes)."""
    for e in range(run.config.local_epochs if epochs is None else epochs):
        yield from run.batches(site.train_idx, r, site.id, e)



