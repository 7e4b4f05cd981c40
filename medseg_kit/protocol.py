"""The SplitFed protocol for one batch, written once for every model and every cut.

U-shaped (``back < n``), five messages per batch:

1. site: run the front stages; send the ``up`` tensors (activations) to the server;
2. server: run its stages; send the ``down`` tensors back;
3. site: run the back stages, compute the loss, backward; send the gradients of what it
   received;
4. server: backward; send the gradients of what it received;
5. site: backward into the front stages; both sides then step their optimizers.

Every crossing goes through the :class:`~medseg_kit.wire.Wire`, which hands the receiver
a fresh leaf. The skip tensors that stay on the site (``split.kept``) are also cut
between the front and back stages, so that each part is back-propagated exactly once per
batch: the front receives the gradients of the server *and* of the back stages in one
``backward`` call. (A loop that skips this traverses the front several times a step.)

Vanilla (``back == n``): the server runs to the logits; the label is sent up with the
activations and the loss is computed on the server.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .models.staged import INPUT, OUTPUT
from .split import Part, Split
from .wire import Wire

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: a loss term the site adds on its own side: ``penalty(image batch, sent)``, where
#: ``sent`` is what the front sends up (e.g. NoPeek's distance correlation)
FrontPenalty = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


def _grads(sent: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.grad for k, v in sent.items() if v.requires_grad and v.grad is not None}


def _backward(outputs: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
              extra: torch.Tensor | None = None) -> None:
    """Back-propagate ``grads`` into ``outputs`` (and a scalar ``extra`` loss term of the
    same side) in one call."""
    pairs = [(outputs[k], g) for k, g in grads.items() if outputs[k].requires_grad]
    if extra is not None:
        pairs.append((extra, torch.ones_like(extra)))
    if pairs:
        torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])


def split_train_step(split: Split, client: Part, server: Part, x: torch.Tensor,
                     y: torch.Tensor, loss_fn: LossFn, wire: Wire,
                     front_penalty: FrontPenalty | None = None,
                     scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """Forward and backward of one batch across the cut; returns the (detached) loss.

    Gradients are left in the parameters of ``client`` and ``server``; the caller steps
    the optimizers (so that the same step serves every strategy). ``front_penalty``: a
    loss term of the site's front stages alone (never sent; the returned loss excludes
    it), back-propagated with the gradients the server returns. ``scaler`` (fp16 training):
    the loss and that term are scaled before backward, so every gradient that crosses is
    scaled too; the caller unscales before it clips and steps.
    """
    scale = scaler.scale if scaler is not None else (lambda t: t)
    f, b, n = split.front, split.back, split.n
    env = client.run({INPUT: x}, 0, f)
    up = wire.send({t: env[t] for t in split.up}, "up", "activation",
                   requires_grad=split.learned)
    kept = {t: env[t].detach().requires_grad_(env[t].requires_grad) for t in split.kept}
    senv = server.run(dict(up), f, b)
    if split.labels_to_server:  # vanilla split: the label leaves the site
        y_server = wire.send({"label": y.to(torch.uint8)}, "up", "label")["label"].to(y.dtype)
        loss = loss_fn(senv[OUTPUT], y_server)
        scale(loss).backward()
    else:
        down = wire.send({t: senv[t] for t in split.down}, "down", "activation",
                         requires_grad=split.learned)
        benv = client.run({**kept, **down}, b, n)
        loss = loss_fn(benv[OUTPUT], y)
        scale(loss).backward()  # back stages; grads land on the received and kept leaves
        g_down = wire.send(_grads(down), "up", "gradient")
        _backward({t: senv[t] for t in g_down}, g_down)
    g_up = wire.send(_grads(up), "down", "gradient")
    front_grads = dict(g_up)
    for t, g in _grads(kept).items():
        front_grads[t] = front_grads[t] + g if t in front_grads else g
    extra = (scale(front_penalty(x, {t: env[t] for t in split.up}))
             if front_penalty is not None else None)
    _backward({t: env[t] for t in front_grads}, front_grads, extra)
    return loss.detach()


@torch.no_grad()
def split_forward(split: Split, client: Part, server: Part, x: torch.Tensor,
                  wire: Wire | None = None) -> torch.Tensor:
    """Inference across the cut (activations only); returns the logits."""
    f, b, n = split.front, split.back, split.n
    env = client.run({INPUT: x}, 0, f)
    send = (lambda d, direction: wire.send(d, direction, "activation")) if wire else (
        lambda d, direction: d)
    senv = server.run(dict(send({t: env[t] for t in split.up}, "up")), f, b)
    if split.labels_to_server:
        return senv[OUTPUT]
    down = send({t: senv[t] for t in split.down}, "down")
    return client.run({**{t: env[t] for t in split.kept}, **down}, b, n)[OUTPUT]
