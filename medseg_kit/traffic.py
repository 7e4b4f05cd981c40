"""Communication in closed form: the bytes every strategy sends per site and round.

The wire counts what a run sends; this module says what it *should* send, from the cut,
the codecs and the batch sizes alone — no training — so a test can hold the two equal and
a learner can price a setting before running it. Per site and round (``n`` images in the
site's shard, ``E`` local epochs, batches of ``B``; a last batch of one image is dropped,
as the run loop does):

* ``centralized``, ``local``: nothing crosses.
* ``fl``: the whole model down, and up again (when the update is accepted): ``2·|W|``.
* ``sflv1``, ``sflv2``: the client part down and up (``2·|W_c|``), plus every training
  step's activations and gradients (``2·n·E·q`` for a codec whose bytes are linear in the
  images: ``q`` per image and direction, :meth:`Split.bytes_per_image`), plus the BatchNorm
  calibration's forward pass (``c·q_act``, ``c`` = calibration images of the site).
* ``sl``: the client part handed on (down from the previous site, up to the next) plus
  the same steps and calibration.

``|W|`` and ``|W_c|`` are the bytes of the state dicts (parameters and buffers) under the
wire's ``model`` codec; activations and gradients under its codec per direction and kind.
A codec with a fixed cost per message (int8's scale and offset) or a share per tensor
(top-k) is priced message by message, so the figures are exact for every codec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .split import Split, resolve_cut
from .wire import Wire

#: strategies and what they send, for the formulas
SPLITTING = ("sl", "sflv1", "sflv2")
WHOLE_MODEL = ("fl",)
NOTHING = ("centralized", "local")


def batch_sizes(n_images: int, batch_size: int, local_epochs: int = 1) -> list[int]:
    """The batch sizes one site trains on in one round (the run loop's rule: a final
    batch of one image is dropped unless it is the only one)."""
    sizes = []
    for _ in range(local_epochs):
        for s in range(0, n_images, batch_size):
            b = min(batch_size, n_images - s)
            if b < 2 and n_images > 1:
                break
            sizes.append(b)
    return sizes


def state_bytes(module: nn.Module, wire: Wire, direction: str) -> int:
    """Bytes of sending ``module``'s state dict (parameters and buffers) one way."""
    return sum(wire.nbytes(tuple(t.shape), t.dtype, direction, "model")
               for t in module.state_dict().values())


def step_bytes(split: Split, size: int, wire: Wire, batch: int) -> dict[str, int]:
    """Bytes of one training step of ``batch`` images across ``split``, by
    ``"direction/kind"`` (activations and gradients, and labels for a vanilla split)."""
    out = {"up/activation": 0, "up/gradient": 0, "up/label": 0, "down/activation": 0,
           "down/gradient": 0}
    for c in split.crossings(size):
        shape = (batch, *c.shape)
        if c.name == "label":
            out["up/label"] += batch * math.prod(c.shape)  # one byte a pixel, never encoded
            continue
        if c.dtype.is_floating_point:
            out[f"{c.direction}/activation"] += wire.nbytes(shape, c.dtype, c.direction,
                                                           "activation")
        else:  # integer tensors travel as they are
            out[f"{c.direction}/activation"] += math.prod(shape) * _itemsize(c.dtype)
        if c.has_grad:
            other = "down" if c.direction == "up" else "up"
            out[f"{other}/gradient"] += wire.nbytes(shape, c.dtype, other, "gradient")
    return out


def calibration_bytes(split: Split, size: int, wire: Wire, images: int) -> dict[str, int]:
    """Bytes of the BatchNorm calibration's forward pass of ``images`` images of one site
    (one message per crossing tensor)."""
    out = {"up/calibration": 0, "down/calibration": 0}
    if images <= 0:
        return out
    for c in split.crossings(size):
        if c.name == "label":
            continue
        out[f"{c.direction}/calibration"] += wire.nbytes((images, *c.shape), c.dtype,
                                                         c.direction, "calibration")
    return out


def site_round_bytes(strategy: str, net: nn.Module, size: int, n_images: int, *,
                     split: Split | None = None, wire: Wire | None = None,
                     batch_size: int = 8, local_epochs: int = 1, bn_calibration: int = 16,
                     accepted: bool = True) -> dict[str, int]:
    """What one site sends and receives in one round of ``strategy``, by
    ``"direction/kind"``, plus ``"up"`` and ``"down"`` totals.

    Args:
        strategy: a strategy name.
        net: the whole network; ``split``: the cut (required for a splitting strategy).
        size: image side; ``n_images``: the site's training images.
        wire: the wire (its codecs); default ``Wire()`` (float32, no codec).
        accepted: whether the site's update was accepted (a rejected one is not uploaded
            by ``fl``, ``sflv1`` and ``sflv2``).
    """
    wire = wire or Wire()
    out: dict[str, int] = {}

    def add(parts: dict[str, int]) -> None:
        for k, v in parts.items():
            out[k] = out.get(k, 0) + v

    if strategy in WHOLE_MODEL:
        add({"down/model": state_bytes(net, wire, "down")})
        if accepted:
            add({"up/model": state_bytes(net, wire, "up")})
    elif strategy in SPLITTING:
        if split is None:
            raise ValueError(f"{strategy} splits the network: give split=Split(...)")
        client = split.client_part(net)
        add({"down/model": state_bytes(client, wire, "down")})
        if accepted or strategy == "sl":  # SL hands its weights on whatever happened
            add({"up/model": state_bytes(client, wire, "up")})
        for b in batch_sizes(n_images, batch_size, local_epochs):
            add(step_bytes(split, size, wire, b))
        add(calibration_bytes(split, size, wire, min(bn_calibration, n_images)))
    elif strategy not in NOTHING:
        raise ValueError(f"unknown strategy {strategy!r}")
    out["up"] = sum(v for k, v in out.items() if k.startswith("up/"))
    out["down"] = sum(v for k, v in out.items() if k.startswith("down/"))
    return out


def run_site_round_bytes(run, site: int, accepted: bool = True) -> dict[str, int]:
    """:func:`site_round_bytes` for a site of a :class:`~medseg_kit.federated.run.Run`
    (its strategy, cut, wire, batch size, epochs and calibration)."""
    c = run.config
    return site_round_bytes(c.strategy, run.net, c.size, run.sites[site].n_train,
                            split=run.split, wire=run.wire, batch_size=c.batch_size,
                            local_epochs=c.local_epochs, bn_calibration=c.bn_calibration,
                            accepted=accepted)


def compare_per_round(net: nn.Module, size: int, images_per_site: int, *,
                      cut: tuple[int, int] | None = None, split_kind: str = "ushaped",
                      wire: Wire | None = None, batch_size: int = 8,
                      local_epochs: int = 1, bn_calibration: int = 16,
                      strategies: Sequence[str] = ("sflv2", "fl")) -> dict[str, dict]:
    """:func:`site_round_bytes` of several strategies for one site of
    ``images_per_site`` images (the cut: ``cut`` or the model's default)."""
    split = Split(net, *resolve_cut(net, cut, split_kind), allow_raw=True)
    return {s: site_round_bytes(s, net, size, images_per_site, split=split, wire=wire,
                                batch_size=batch_size, local_epochs=local_epochs,
                                bn_calibration=bn_calibration) for s in strategies}


def break_even_images(net: nn.Module, size: int, *, cut: tuple[int, int] | None = None,
                      split_kind: str = "ushaped", wire: Wire | None = None,
                      batch_size: int = 8, local_epochs: int = 1, bn_calibration: int = 16,
                      limit: int = 10**7) -> int | None:
    """The largest number of images per site at which SplitFed (``sflv2``) sends no more
    bytes per round than FL; ``None`` when SplitFed costs more even for 2 images. The
    bytes grow with the images, so the boundary is found by bisection."""
    split = Split(net, *resolve_cut(net, cut, split_kind), allow_raw=True)
    kw = dict(split=split, wire=wire, batch_size=batch_size, local_epochs=local_epochs,
              bn_calibration=bn_calibration)
    f = site_round_bytes("fl", net, size, 2, **kw)  # FL's round does not grow with images
    fl_total = f["up"] + f["down"]

    def cheaper(n: int) -> bool:
        s = site_round_bytes("sflv2", net, size, n, **kw)
        return s["up"] + s["down"] <= fl_total

    if not cheaper(2):
        return None
    lo, hi = 2, 4
    while hi < limit and cheaper(hi):
        lo, hi = hi, hi * 2
    if hi >= limit and cheaper(limit):
        return limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cheaper(mid) else (lo, mid)
    return lo


def messages_per_round(strategy: str, split: Split | None, n_images: int, *,
                       batch_size: int = 8, local_epochs: int = 1,
                       bn_calibration: int = 16) -> int:
    """One-way messages a site exchanges in a round (each pays the link's latency once):
    FL two (model down, model up); a split strategy the two model transfers, per training
    step four (activations up and down, gradients up and down; two for a vanilla split:
    activations and labels up, gradients down) and two for the calibration pass."""
    if strategy in WHOLE_MODEL:
        return 2
    if strategy in NOTHING:
        return 0
    per_step = 2 if split is not None and split.labels_to_server else 4
    steps = len(batch_sizes(n_images, batch_size, local_epochs))
    return 2 + per_step * steps + (2 if bn_calibration > 0 else 0)


def price_round(net: nn.Module, cut: tuple[int, int], size: int, link, *,
                images_per_site: int, strategy: str = "sflv2", wire: Wire | None = None,
                batch_size: int = 8, local_epochs: int = 1, bn_calibration: int = 16
                ) -> dict:
    """One site's round of ``strategy`` at ``cut`` on ``link`` (a
    :class:`medseg_kit.link.Link`): ``images_per_site``, ``bytes_round_up`` /
    ``bytes_round_down`` (:func:`site_round_bytes`), ``messages``
    (:func:`messages_per_round`) and ``seconds_per_round``."""
    split = Split(net, *cut, allow_raw=True)
    kw = dict(batch_size=batch_size, local_epochs=local_epochs,
              bn_calibration=bn_calibration)
    b = site_round_bytes(strategy, net, size, images_per_site, split=split, wire=wire, **kw)
    msgs = messages_per_round(strategy, split, images_per_site, **kw)
    return {"images_per_site": images_per_site, "bytes_round_up": b["up"],
            "bytes_round_down": b["down"], "messages": msgs,
            "seconds_per_round": link.seconds(b["up"], b["down"], msgs)}


def price_cuts(net: nn.Module, size: int, images_per_site: int, link, *,
               cuts: Sequence[tuple[int, int]], wire: Wire | None = None,
               batch_size: int = 8, local_epochs: int = 1, bn_calibration: int = 16
               ) -> list[dict]:
    """Per cut: the bytes and seconds (on ``link``, a :class:`medseg_kit.link.Link`) one
    site of ``images_per_site`` images spends per round with ``sflv2``, the same for
    ``fl`` (which has no cut), and the break-even images per site (SplitFed sends no more
    than FL up to that many)."""
    wire = wire or Wire()
    kw = dict(wire=wire, batch_size=batch_size, local_epochs=local_epochs,
              bn_calibration=bn_calibration)
    fl = site_round_bytes("fl", net, size, images_per_site, **kw)
    fl_s = link.seconds(fl["up"], fl["down"], messages_per_round("fl", None, images_per_site))
    rows = []
    for f, b in cuts:
        p = price_round(net, (f, b), size, link, images_per_site=images_per_site, **kw)
        rows.append({"cut": (f, b), "sflv2_up": p["bytes_round_up"],
                     "sflv2_down": p["bytes_round_down"],
                     "sflv2_seconds": p["seconds_per_round"],
                     "fl_up": fl["up"], "fl_down": fl["down"], "fl_seconds": fl_s,
                     "break_even": break_even_images(net, size, cut=(f, b), **kw)})
    return rows


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
