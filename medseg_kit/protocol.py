"""The SplitFed protocol for one batch, written once for every model and every cut.

U-shaped (``back < n``), five steps and four messages per batch:

1. site: run the front stages; send the ``up`` tensors (activations) to the server;
2. server: run its stages; send the ``down`` tensors back;
3. site: run the back stages, compute the loss, backward; send the gradients of what it
   received;
4. server: backward; send the gradients of what it received;
5. site: backward into the front stages; both sides then step their optimizers.

The two sides are two classes, :class:`SiteHalf` and :class:`ServerHalf`, that exchange
plain named tensors (``dict[str, Tensor]``) and know nothing of how those travel. The
in-process simulation joins them with a :class:`~medseg_kit.wire.Wire`
(:func:`split_train_step`); a deployment (:mod:`medseg_kit.flower`) carries the same
dictionaries in messages between processes. Either way it is the same code that computes.

Every crossing hands the receiver a fresh leaf (the wire does, and each half makes sure
of it: a tensor that arrives from a message is made a leaf on the side's device). The
skip tensors that stay on the site (``split.kept``) are also cut between the front and
back stages, so that each part is back-propagated exactly once per batch: the front
receives the gradients of the server *and* of the back stages in one ``backward`` call.
(A loop that skips this traverses the front several times a step.)

Vanilla (``back == n``): the server runs to the logits; the label is sent up with the
activations (as ``"label"``, uint8) and the loss is computed on the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .models.staged import INPUT, OUTPUT
from .split import Part, Split
from .wire import Wire

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: a loss term the site adds on its own side: ``penalty(image batch, sent)``, where
#: ``sent`` is what the front sends up (e.g. NoPeek's distance correlation)
FrontPenalty = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
#: what one message carries: tensor name -> tensor
Tensors = dict[str, torch.Tensor]
#: the name the label travels under in a vanilla split (uint8 class ids)
LABEL = "label"


def _grads(sent: Tensors) -> Tensors:
    return {k: v.grad for k, v in sent.items() if v.requires_grad and v.grad is not None}


def _backward(outputs: Tensors, grads: Tensors, extra: torch.Tensor | None = None) -> None:
    """Back-propagate ``grads`` into ``outputs`` (and a scalar ``extra`` loss term of the
    same side) in one call."""
    pairs = [(outputs[k], g) for k, g in grads.items() if outputs[k].requires_grad]
    if extra is not None:
        pairs.append((extra, torch.ones_like(extra)))
    if pairs:
        torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])


def _device_of(part) -> torch.device | None:
    """The device of ``part``'s weights (a :class:`Part`, or what runs one: anything with
    a ``module``); ``None`` for a part with neither parameters nor buffers."""
    module = part if isinstance(part, nn.Module) else getattr(part, "module", None)
    if module is None:
        return None
    t = next(itertools.chain(module.parameters(), module.buffers()), None)
    return None if t is None else t.device


def _to(tensors: Tensors, device: torch.device | None) -> Tensors:
    return tensors if device is None else {k: v.to(device) for k, v in tensors.items()}


def received(tensors: Tensors, learned: dict[str, bool], device: torch.device | None = None
             ) -> Tensors:
    """Activations as the receiving side holds them: fresh leaves (on ``device``), each
    floating-point one collecting a gradient unless ``learned`` says it carries no learned
    parameter (raw image data). What :meth:`Wire.send` already gives; a tensor rebuilt
    from a message (``torch.from_numpy``) becomes the same."""
    out = {}
    for name, t in _to(tensors, device).items():
        t = t.detach()
        if t.is_floating_point():
            t.requires_grad_(learned.get(name, True))
        out[name] = t
    return out


class SiteHalf:
    """One site's side of the protocol, one batch at a time (it holds the batch's
    autograd graph between calls).

    Call :meth:`front`, then (U-shaped only) :meth:`back`, then :meth:`finish`; gradients
    are left in ``client``'s parameters (step them with :func:`step_side`).

    Args:
        split: the cut.
        client: the site's part (front and back stages), or what runs it in training.
        loss_fn: ``(logits, target) -> scalar`` (U-shaped: computed here).
        front_penalty: a loss term of the front stages alone, never sent; the reported
            loss excludes it. Back-propagated with the gradients the server returns.
        scaler: fp16 loss scaling: the loss and that term are scaled before backward, so
            every gradient that crosses is scaled too.
    """

    def __init__(self, split: Split, client: Part, loss_fn: LossFn,
                 front_penalty: FrontPenalty | None = None,
                 scaler: torch.amp.GradScaler | None = None):
        self.split, self.client, self.loss_fn = split, client, loss_fn
        self.front_penalty, self.scaler = front_penalty, scaler
        #: the batch's loss, detached (after :meth:`back`; ``None`` in a vanilla split,
        #: where the server computes it)
        self.loss: torch.Tensor | None = None
        self._batch = None  # (x, y, front env, kept leaves) between the calls

    def _scale(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.scaler is None else self.scaler.scale(t)

    def front(self, x: torch.Tensor, y: torch.Tensor) -> Tensors:
        """Step 1: run the front stages on the batch; return what to send up: the
        ``split.up`` activations (detached), plus ``"label"`` (uint8) in a vanilla split.
        In a U-shaped split neither the image nor the mask is among them (unless the cut
        sends raw image data, which :class:`~medseg_kit.split.Split` refuses by default).
        A batch that was not finished is abandoned (its graph released)."""
        s = self.split
        env = self.client.run({INPUT: x}, 0, s.front)
        kept = {t: env[t].detach().requires_grad_(env[t].requires_grad) for t in s.kept}
        self._batch, self.loss = (x, y, env, kept), None
        up = {t: env[t].detach() for t in s.up}
        if s.labels_to_server:  # vanilla split: the label leaves the site
            up[LABEL] = y.to(torch.uint8)
        return up

    def back(self, down: Tensors) -> Tensors:
        """Step 3 (U-shaped only): ``down`` is what the server sent (``split.down``).
        Run the back stages, the loss and its backward; return the gradients of what was
        received, to send up (by tensor name). Sets :attr:`loss`."""
        x, y, _, kept = self._batch
        s = self.split
        down = received({t: down[t] for t in s.down}, s.learned, x.device)
        benv = self.client.run({**kept, **down}, s.back, s.n)
        loss = self.loss_fn(benv[OUTPUT], y)
        self._scale(loss).backward()  # back stages; grads land on the received and kept leaves
        self.loss = loss.detach()
        return _grads(down)

    def finish(self, g_up: Tensors) -> None:
        """Step 5: back-propagate the server's gradients ``g_up`` (of what :meth:`front`
        sent), the kept skips' gradients and ``front_penalty`` into the front stages, in
        one call. The batch's graph is released."""
        x, _, env, kept = self._batch
        self._batch = None
        front_grads = dict(_to(g_up, x.device))
        for t, g in _grads(kept).items():
            front_grads[t] = front_grads[t] + g if t in front_grads else g
        extra = (self._scale(self.front_penalty(x, {t: env[t] for t in self.split.up}))
                 if self.front_penalty is not None else None)
        _backward({t: env[t] for t in front_grads}, front_grads, extra)


class ServerHalf:
    """The server's side of the protocol, one batch at a time: :meth:`forward`, then
    :meth:`backward`. Gradients are left in ``server``'s parameters (step them with
    :func:`step_side`).

    Args:
        split: the cut.
        server: the server part, or what runs it in training.
        loss_fn: the loss (needed only in a vanilla split, where the server computes it).
        scaler: fp16 loss scaling (vanilla split: the server scales the loss it computes).
    """

    def __init__(self, split: Split, server: Part, loss_fn: LossFn | None = None,
                 scaler: torch.amp.GradScaler | None = None):
        if split.labels_to_server and loss_fn is None:
            raise ValueError("a vanilla split (back == n) computes the loss on the server: "
                             "ServerHalf needs loss_fn")
        self.split, self.server, self.loss_fn, self.scaler = split, server, loss_fn, scaler
        self.device = _device_of(server)
        #: the batch's loss, detached (vanilla split, after :meth:`forward`), else ``None``
        self.loss: torch.Tensor | None = None
        self._up: Tensors | None = None
        self._env: Tensors | None = None

    def forward(self, up: Tensors) -> Tensors:
        """Step 2: ``up`` is what the site sent. Run the server stages; return the
        ``split.down`` tensors (detached) to send down. Vanilla split: compute the loss
        against ``up["label"]``, back-propagate it, return ``{}`` and set :attr:`loss`."""
        s = self.split
        self._up = received({t: up[t] for t in s.up}, s.learned, self.device)
        env = self.server.run(dict(self._up), s.front, s.back)
        self.loss = None
        if s.labels_to_server:
            y = up[LABEL].to(self.device if self.device is not None else env[OUTPUT].device)
            loss = self.loss_fn(env[OUTPUT], y.long())
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
            self.loss = loss.detach()
            return {}
        self._env = env
        return {t: env[t].detach() for t in s.down}

    def backward(self, g_down: Tensors) -> Tensors:
        """Step 4: back-propagate ``g_down`` (the site's gradients of what
        :meth:`forward` sent; ``{}`` in a vanilla split, whose backward ran in
        :meth:`forward`); return the gradients of what the server received, to send down.
        The batch's graph is released."""
        if g_down:
            g_down = _to(g_down, self.device)
            _backward({t: self._env[t] for t in g_down}, g_down)
        grads, self._up, self._env = _grads(self._up), None, None
        return grads


# ------------------------------------------------------------------- stepping
def unscale_grads(scaler: torch.amp.GradScaler | None,
                  optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """fp16: divide the gradients by the loss scale (before anyone clips them)."""
    if scaler is not None:
        for opt in optimizers:
            scaler.unscale_(opt)


def clip_grads(params: list[torch.nn.Parameter], max_norm: float | None) -> None:
    """Clip the gradient norm of ``params`` (one side's own: neither side sees the
    other's gradients); nothing when ``max_norm`` is None."""
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)


def step_side(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter] | None = None,
              clip: float | None = None, scaler: torch.amp.GradScaler | None = None
              ) -> None:
    """One side steps on its own, as it does in a deployment where each side is its own
    process: unscale (fp16), clip its own gradient norm, step (and update ``scaler``).

    ``params``: what to clip (default: the optimizer's parameters). With fp16 each side
    needs the scale the site used for the batch; the in-process simulation shares one
    scaler between both sides and steps them together (unscale both, clip both, step
    both, one update), which this function does not reproduce bit for bit.
    """
    if params is None:
        params = [p for g in opt.param_groups for p in g["params"]]
    unscale_grads(scaler, [opt])
    clip_grads(params, clip)
    if scaler is None:
        opt.step()
    else:
        scaler.step(opt)
        scaler.update()


# ------------------------------------------------------------ the simulation
def send_activations(wire: Wire, split: Split, tensors: Tensors, direction: str) -> Tensors:
    """Carry the activations of step 1 or 2 across ``wire`` (and, in a vanilla split, the
    label with them, as a ``label``); return what the other side receives."""
    out = wire.send({t: v for t, v in tensors.items() if t != LABEL}, direction,
                    "activation", requires_grad=split.learned)
    if LABEL in tensors:
        out.update(wire.send({LABEL: tensors[LABEL]}, direction, "label"))
    return out


def split_train_step(split: Split, client: Part, server: Part, x: torch.Tensor,
                     y: torch.Tensor, loss_fn: LossFn, wire: Wire,
                     front_penalty: FrontPenalty | None = None,
                     scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """Forward and backward of one batch across the cut; returns the (detached) loss.

    The site's half and the server's half joined by ``wire``, in one process. Gradients
    are left in the parameters of ``client`` and ``server``; the caller steps the
    optimizers (so that the same step serves every strategy). ``front_penalty``: a loss
    term of the site's front stages alone (see :class:`SiteHalf`). ``scaler`` (fp16
    training): the loss and that term are scaled before backward, so every gradient that
    crosses is scaled too; the caller unscales before it clips and steps.
    """
    site = SiteHalf(split, client, loss_fn, front_penalty, scaler)
    hub = ServerHalf(split, server, loss_fn, scaler)
    # 1. site -> server: the front's activations (and, vanilla, the label)
    down = hub.forward(send_activations(wire, split, site.front(x, y), "up"))
    if not split.labels_to_server:
        # 2. server -> site: the server's activations; 3. site -> server: their gradients
        g_down = site.back(send_activations(wire, split, down, "down"))
        g_down = wire.send(g_down, "up", "gradient")
    else:
        g_down = {}  # the server computed the loss and its backward in step 2
    # 4. server -> site: the gradients of what the server received
    g_up = wire.send(hub.backward(g_down), "down", "gradient")
    # 5. the site back-propagates into its front stages; the caller steps both sides
    site.finish(g_up)
    return site.loss if site.loss is not None else hub.loss


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
