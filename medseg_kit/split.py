"""The cut: split a :class:`StagedNet` into a client front, a server part and a client back.

A cut is two stage indices ``front < back`` (U-shaped SplitFed):

* stages ``[0, front)`` run on the client (they see the raw image),
* stages ``[front, back)`` run on the server,
* stages ``[back, n)`` run on the client again (they see the label; the loss is there).

``back == n`` is the vanilla two-part split, in which the server computes the logits and
the label has to be sent to it. Everything below is derived from the stage table; no
model needs split code of its own.

Example:
    >>> from medseg_kit.models import create_model
    >>> s = Split(create_model("unet", width=4), 1, 9)
    >>> s.up, s.down, s.kept
    (['enc1'], ['dec2'], ['enc1'])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .models.staged import OUTPUT, StagedNet, run_stages


class CutError(ValueError):
    """An invalid cut; the message lists the valid range and the stage names."""


class RawDataError(ValueError):
    """A cut would send raw image data to the server and that was not allowed."""


@dataclass(frozen=True)
class Crossing:
    """One tensor that crosses the wire for one image."""

    name: str
    direction: str  # "up" (client -> server) or "down" (server -> client)
    shape: tuple[int, ...]  # per image, without the batch dimension
    dtype: torch.dtype
    has_grad: bool  # a gradient travels back the other way
    raw: bool  # raw image data (the image or a parameter-free copy of it)

    @property
    def bytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * torch.empty((), dtype=self.dtype).element_size()


class Part(nn.Module):
    """The stages of one side of a cut, runnable on their own.

    A part holds (and shares, unless copied) the modules of its stages; its
    ``state_dict`` keys are those of the whole network (``stages.<name>.…``), so parts of
    different sites can be averaged key by key and merged back into a whole network.
    """

    def __init__(self, net: StagedNet, indices: list[int]):
        super().__init__()
        self.specs = net.specs  # the (immutable) table; only our stages have modules
        self.indices = list(indices)
        self.stages = nn.ModuleDict({net.specs[i].name: net.stages[net.specs[i].name]
                                     for i in self.indices})

    def run(self, env: dict[str, torch.Tensor], start: int, stop: int) -> dict:
        """Run stages ``[start, stop)``, which must all belong to this part."""
        if any(i not in self.indices for i in range(start, stop)):
            raise RuntimeError(f"stages {start}..{stop - 1} are not all in this part "
                               f"({self.indices})")
        return run_stages(self.specs, self.stages, env, start, stop)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Split:
    """A model cut at ``(front, back)``.

    Args:
        net: the whole network.
        front, back: the cut; ``1 <= front < back <= len(net)``.
        allow_raw: allow a cut that sends raw image data (the image or a pooled copy of
            it) to the server. Refused by default: then the server does not "only see
            features".

    Attributes:
        up: tensors the client sends to the server (activations; their gradients come back).
        down: tensors the server sends to the client.
        kept: tensors written by the client front and read by the client back: skip
            connections that never leave the site.
        labels_to_server: True for the vanilla split (``back == n``).

    Raises:
        CutError: for an invalid cut.
        RawDataError: if raw image data would cross and ``allow_raw`` is False.
    """

    def __init__(self, net: StagedNet, front: int, back: int, *, allow_raw: bool = False):
        n = len(net)
        if not (isinstance(front, int) and isinstance(back, int) and 1 <= front < back <= n):
            names = ", ".join(f"{i}:{s}" for i, s in enumerate(net.stage_names))
            raise CutError(
                f"invalid cut (front={front}, back={back}) for "
                f"{getattr(net, 'model_name', 'this model')} with {n} stages: need "
                f"1 <= front < back <= {n} (front in 1..{n - 1}, back in front+1..{n}; "
                f"back={n} is the vanilla split). Stages: {names}")
        self.net, self.front, self.back, self.n = net, front, back, n
        prod = net.producer()

        def side(i: int) -> str:  # where the stage that writes a tensor runs
            if i < front:
                return "front"
            return "server" if i < back else "back"

        reads = {"front": [], "server": [], "back": []}
        for i, spec in enumerate(net.specs):
            reads[side(i)].extend(t for t in spec.inputs if t not in reads[side(i)])
        self.up = [t for t in reads["server"] if side(prod[t]) == "front"]
        self.down = [t for t in reads["back"] if side(prod[t]) == "server"]
        self.kept = [t for t in reads["back"] if side(prod[t]) == "front"]
        self.labels_to_server = back == n
        self.raw_up = [t for t in self.up if net.is_raw(t)]
        if self.raw_up and not allow_raw:
            raise RawDataError(
                f"cut (front={front}, back={back}) sends raw image data to the server: "
                f"{self.raw_up} {'is' if len(self.raw_up) == 1 else 'are'} the image or "
                "computed from it without learned parameters. Move the cut so that these "
                "stages are on the server side too, or pass allow_raw=True "
                "(--allow-raw) to accept it.")
        self.learned = {t: not net.is_raw(t) for t in set(self.up + self.down + self.kept)}

    # ------------------------------------------------------------------ parts
    @property
    def front_indices(self) -> list[int]:
        return list(range(0, self.front))

    @property
    def server_indices(self) -> list[int]:
        return list(range(self.front, self.back))

    @property
    def back_indices(self) -> list[int]:
        return list(range(self.back, self.n))

    def client_part(self, net: StagedNet | None = None) -> Part:
        """The site's stages (front and back) of ``net`` (default: the split's own)."""
        return Part(net or self.net, self.front_indices + self.back_indices)

    def server_part(self, net: StagedNet | None = None) -> Part:
        return Part(net or self.net, self.server_indices)

    def param_share(self) -> tuple[int, int]:
        """(client parameters, server parameters)."""
        client = sum(self.net.stage_params(i) for i in self.front_indices + self.back_indices)
        server = sum(self.net.stage_params(i) for i in self.server_indices)
        return client, server

    # ------------------------------------------------------------- crossings
    def crossings(self, size: int | tuple[int, int]) -> list[Crossing]:
        """The tensors that cross for one image of ``size``, with shapes and dtypes.

        Shapes come from :meth:`StagedNet.tensor_specs` (one forward pass per size).
        """
        h, w = (size, size) if isinstance(size, int) else size
        specs = self.net.tensor_specs((h, w))
        out = []
        for direction, names in (("up", self.up), ("down", self.down)):
            for t in names:
                shape, dtype = specs[t]
                out.append(Crossing(t, direction, shape, dtype,
                                    has_grad=self.learned[t] and dtype.is_floating_point,
                                    raw=self.net.is_raw(t)))
        if self.labels_to_server:
            out.append(Crossing("label", "up", (h, w), torch.uint8, False, raw=True))
        return out

    def bytes_per_image(self, size: int | tuple[int, int]) -> dict[str, int]:
        """Bytes per image and training step, by direction.

        ``up`` = activations client->server + gradients of the server's outputs;
        ``down`` = activations server->client + gradients of the client's outputs.
        Integer tensors (e.g. pooling indices) travel without gradients. The label
        (vanilla split only) is counted at one byte a pixel.
        """
        res = {"up_activations": 0, "up_gradients": 0, "up_labels": 0,
               "down_activations": 0, "down_gradients": 0}
        for c in self.crossings(size):
            if c.name == "label":
                res["up_labels"] += c.bytes
                continue
            res[f"{c.direction}_activations"] += c.bytes
            if c.has_grad:
                other = "down" if c.direction == "up" else "up"
                res[f"{other}_gradients"] += c.bytes
        res["up"] = res["up_activations"] + res["up_gradients"] + res["up_labels"]
        res["down"] = res["down_activations"] + res["down_gradients"]
        return res

    def __repr__(self) -> str:
        return (f"Split({getattr(self.net, 'model_name', 'net')}, front={self.front}, "
                f"back={self.back}, up={self.up}, down={self.down}, kept={self.kept})")


SPLIT_KINDS = ("ushaped", "vanilla")


def resolve_cut(net: StagedNet, cut: tuple[int, int] | None = None,
                kind: str = "ushaped") -> tuple[int, int]:
    """The ``(front, back)`` a run uses: ``cut`` or the model's default cut; for the
    ``vanilla`` split ``back`` is the last stage (the server runs to the logits and the
    labels go to it), whatever ``cut`` says. The one place this rule is written."""
    if kind not in SPLIT_KINDS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_KINDS)}; got {kind!r}")
    front, back = cut if cut is not None else net.default_cut
    return (front, len(net)) if kind == "vanilla" else (front, back)


def valid_cuts(net: StagedNet, *, allow_raw: bool = False,
               include_vanilla: bool = False) -> list[tuple[int, int]]:
    """Every cut of ``net`` that :class:`Split` accepts.

    U-shaped cuts have ``back < n``; ``include_vanilla`` adds those with ``back == n``.
    """
    n = len(net)
    out = []
    for f in range(1, n):
        for b in range(f + 1, n + (1 if include_vanilla else 0)):
            try:
                Split(net, f, b, allow_raw=allow_raw)
            except RawDataError:
                continue
            out.append((f, b))
    return out


# ------------------------------------------------------------ cut facts
OWNERS = ("front", "server", "back")  # site front, server, site back


def stage_owners(n: int, front: int, back: int) -> list[str]:
    """Who runs each of ``n`` stages under the cut ``(front, back)``: ``"front"`` (the
    site, before the server), ``"server"`` or ``"back"`` (the site again, after it).

    Example:
        >>> stage_owners(5, 1, 3)
        ['front', 'server', 'server', 'back', 'back']
    """
    return [OWNERS[0] if i < front else OWNERS[1] if i < back else OWNERS[2]
            for i in range(n)]


def cut_report(net: StagedNet, front: int, back: int, size: int | tuple[int, int], *,
               stage_flops: list[int] | None = None) -> dict:
    """Every fact about one cut, as plain values: what crosses, what it costs, who owns
    what share of the network, and whether raw image data would reach the server.

    A cut that sends raw image data is still described (its bytes are those of
    ``Split(..., allow_raw=True)``), with ``refused`` holding the
    :class:`RawDataError` message that :class:`Split` gives without ``allow_raw``.

    Args:
        net: the whole network.
        front, back: the cut (``1 <= front < back <= len(net)``).
        size: image side (or ``(height, width)``).
        stage_flops: forward FLOPs per stage (:func:`medseg_kit.models.summary.stage_flops`);
            without it the FLOP shares are left out.

    Returns:
        A dict with ``model``, ``size``, ``front``, ``back``, ``owners`` (one per stage),
        ``stages``, ``up`` / ``down`` (lists of ``{"name", "shape", "bytes", "raw"}``, one
        per crossing tensor, activations only), ``kept``, ``labels_to_server``,
        ``bytes_up`` / ``bytes_down`` (per image and training step, equal to
        ``Split.bytes_per_image(size)["up"/"down"]``), ``bytes`` (that whole dict),
        ``params_site``, ``params_server``, ``params_site_share`` and, with
        ``stage_flops``, ``flops_site``, ``flops_server``, ``flops_site_share``; ``raw``
        (raw tensors sent up) and ``refused`` (message or None). What a whole round costs
        on a link is :func:`medseg_kit.traffic.price_round`.

    Raises:
        CutError: for an invalid cut.
    """
    try:
        Split(net, front, back)
        refused = None
    except RawDataError as e:
        refused = str(e)
    split = Split(net, front, back, allow_raw=True)
    crossings = split.crossings(size)
    b = split.bytes_per_image(size)
    owners = stage_owners(len(net), front, back)
    site_params, server_params = split.param_share()
    total_params = max(site_params + server_params, 1)
    rows = {"up": [], "down": []}
    for c in crossings:
        rows[c.direction].append({"name": c.name, "shape": tuple(c.shape), "bytes": c.bytes,
                                  "raw": c.raw})
    rep = {"model": getattr(net, "model_name", type(net).__name__), "size": size,
           "front": front, "back": back, "stages": net.stage_names, "owners": owners,
           "up": rows["up"], "down": rows["down"], "kept": list(split.kept),
           "labels_to_server": split.labels_to_server,
           "bytes_up": b["up"], "bytes_down": b["down"], "bytes": b,
           "params_site": site_params, "params_server": server_params,
           "params_site_share": site_params / total_params,
           "raw": list(split.raw_up), "refused": refused}
    if stage_flops is not None:
        if len(stage_flops) != len(net):
            raise ValueError(f"stage_flops has {len(stage_flops)} entries; expected one per "
                             f"stage ({len(net)})")
        server = sum(f for f, o in zip(stage_flops, owners) if o == "server")
        total = max(sum(stage_flops), 1)
        rep.update(flops_site=sum(stage_flops) - server, flops_server=server,
                   flops_site_share=(sum(stage_flops) - server) / total)
    return rep


def activations(net: StagedNet, image) -> dict[str, torch.Tensor]:
    """Every named tensor of one forward pass of ``net`` on one image (eval mode, no
    gradient): the input ``x``, each stage's output and the logits, each without the batch
    dimension. Computed once, it answers "what does the server see?" for every cut.

    Args:
        net: the network.
        image: H x W x C ``uint8`` (scaled to [0, 1]) or float array, or a C x H x W tensor.
    """
    if isinstance(image, torch.Tensor):
        x = image.float()
    else:
        import numpy as np

        a = np.asarray(image)
        if a.ndim == 2:
            a = a[..., None]
        x = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)
        if a.dtype == np.uint8:
            x = x / 255.0
    p = next(net.parameters())
    x = x.to(p.device, p.dtype)[None]
    net.check_input(x)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            env = net.run({"x": x})
    finally:
        net.train(was_training)
    return {k: v[0].detach().cpu() for k, v in env.items()}


__all__ = ["CutError", "Crossing", "OUTPUT", "OWNERS", "Part", "RawDataError", "Split",
           "activations", "cut_report", "stage_owners", "valid_cuts"]
