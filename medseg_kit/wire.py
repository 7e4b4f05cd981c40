"""The wire: everything that crosses between a site and the server passes through here.

A :class:`Wire` counts the bytes of every tensor it carries (by direction, by kind —
activation, gradient, label, model weights or calibration activations — and by tensor
name) and hands the receiver a *fresh leaf* tensor: the receiving side never shares an
autograd graph with the sender, exactly as if the tensor had travelled over a network.

It can also transform the payload on the way:

* a **codec**, chosen per direction and per kind by a spec (:func:`parse_codec`):
  ``"fp16"`` or ``"bf16"`` halve float payloads; ``"int8"`` quantizes each tensor to 8
  bits with a scale and offset (8 extra bytes); ``"int8c"`` does so per channel (dim 1,
  8 bytes per channel); ``"topk:0.05"`` sends only the 5 % largest values and their
  int32 indices. ``"fp16"`` alone means fp16 for activations and gradients both ways;
  ``"activation=fp16,gradient=topk:0.05,model=int8"`` sets each kind;
* ``noise_std`` adds Gaussian (or, with ``noise="laplace"``, Laplace) noise of that
  standard deviation to activations (a simple privacy defence);
* ``loss_up`` / ``loss_down`` zero that fraction of *rows* of each activation and
  gradient crossing in that direction, as in the SplitFed packet-loss studies. A row is
  one line along the last (width) axis, ``tensor.reshape(-1, W)[i]``.

Labels and integer tensors (pooling indices, ``num_batches_tracked``) are carried as they
are, never transformed. Every codec says what a tensor costs from its shape and dtype
alone (:meth:`Codec.nbytes`), so bytes can be computed, and formulas checked, without
sending anything (:meth:`Wire.nbytes`, :meth:`Wire.account`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch

DIRECTIONS = ("up", "down")
#: what a message can carry; ``calibration`` is forward-only activations sent to set the
#: BatchNorm statistics (sized, and transformed, like activations; no gradient comes back)
KINDS = ("activation", "gradient", "label", "model", "calibration")
#: the kinds a codec rule can name (labels are never encoded; calibration follows activation)
CODEC_KINDS = ("activation", "gradient", "model")
#: the noise distributions a wire can add to activations
NOISES = ("gaussian", "laplace")
#: the fraction a bare ``"topk"`` keeps
TOPK_FRACTION = 0.1


# ------------------------------------------------------------------- codecs
@dataclass(frozen=True)
class Codec:
    """The identity codec, ``"none"``: the tensor as computed, at its own element size.

    Every codec has a :attr:`name` (its spec, as :func:`make_codec` reads it),
    :meth:`encode` (what the receiver gets and the bytes that crossed) and :meth:`nbytes`
    (those bytes from the shape and dtype alone; always equal to what ``encode`` counts).
    Codecs are only applied to floating-point tensors.
    """

    name = "none"

    def encode(self, t: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Return the tensor the receiver decodes and the bytes sent."""
        return t, t.numel() * t.element_size()

    def nbytes(self, shape: Sequence[int], dtype: torch.dtype) -> int:
        """Bytes a tensor of this shape and dtype costs, without a tensor."""
        return math.prod(shape) * dtype.itemsize


@dataclass(frozen=True)
class _TwoByteFloat(Codec):
    """A 16-bit float format: 2 bytes a value."""

    half = torch.float16

    def encode(self, t):
        return t.to(self.half).to(t.dtype), t.numel() * 2

    def nbytes(self, shape, dtype):
        return math.prod(shape) * 2


@dataclass(frozen=True)
class Fp16(_TwoByteFloat):
    """Half precision: 2 bytes a value; relative error <= 2**-11 for normal values."""

    name = "fp16"
    half = torch.float16


@dataclass(frozen=True)
class Bf16(_TwoByteFloat):
    """bfloat16 (float32's range, 8 bits of mantissa): 2 bytes a value; relative error
    <= 2**-8."""

    name = "bf16"
    half = torch.bfloat16


@dataclass(frozen=True)
class Int8(Codec):
    """8 bits a value on a uniform grid from the tensor's min to its max; the scale and
    offset cost 8 bytes. Error <= scale / 2, scale = (max - min) / 255."""

    name = "int8"

    def encode(self, t):
        if t.numel() == 0:
            return t, 0
        lo, hi = t.min(), t.max()
        scale = (hi - lo).clamp_min(1e-12) / 255.0
        q = torch.round((t - lo) / scale)
        return q * scale + lo, t.numel() + 8

    def nbytes(self, shape, dtype):
        n = math.prod(shape)
        return n + 8 if n else 0


@dataclass(frozen=True)
class Int8PerChannel(Codec):
    """:class:`Int8` with one grid per channel (dim 1: the channels of an activation, the
    input channels of a weight); a scale and an offset (8 bytes) per channel. A 0-d or
    1-d tensor (a bias) is one channel."""

    name = "int8c"

    def encode(self, t):
        if t.numel() == 0:
            return t, 0
        if t.dim() < 2:
            return Int8().encode(t)
        x = t.float() if t.element_size() < 4 else t  # 1e-12 underflows in half precision
        dims = [d for d in range(x.dim()) if d != 1]
        lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
        scale = (hi - lo).clamp_min(1e-12) / 255.0
        q = torch.round((x - lo) / scale)
        return (q * scale + lo).to(t.dtype), self.nbytes(t.shape, t.dtype)

    def nbytes(self, shape, dtype):
        n = math.prod(shape)
        return n + 8 * (shape[1] if len(shape) >= 2 else 1) if n else 0


@dataclass(frozen=True)
class TopK(Codec):
    """Top-k sparsification: only the ``k = max(1, ceil(fraction * numel))`` values largest
    in magnitude are sent, each with its int32 index; the receiver fills the rest with
    zeros. Bytes: ``k * (element size + 4)``."""

    fraction: float = TOPK_FRACTION

    def __post_init__(self):
        if not (isinstance(self.fraction, int | float) and 0 < self.fraction <= 1):
            raise ValueError(f"topk fraction must be in (0, 1]; got {self.fraction!r}")
        object.__setattr__(self, "fraction", float(self.fraction))

    @property
    def name(self) -> str:
        return f"topk:{self.fraction!r}"

    def k(self, numel: int) -> int:
        """How many of ``numel`` values are kept (exact decimal arithmetic: 0.1 of 30 is 3)."""
        return min(numel, max(1, math.ceil(Fraction(repr(self.fraction)) * numel)))

    def encode(self, t):
        k = self.k(t.numel())
        nbytes = k * (t.element_size() + 4)
        if k == t.numel():
            return t, nbytes
        flat = t.reshape(-1)
        idx = flat.abs().topk(k, sorted=False).indices
        out = torch.zeros_like(flat)
        out[idx] = flat[idx]
        return out.view(t.shape), nbytes

    def nbytes(self, shape, dtype):
        return self.k(math.prod(shape)) * (dtype.itemsize + 4)


_CODEC_CLASSES: dict[str, type[Codec]] = {"none": Codec, "fp16": Fp16, "bf16": Bf16,
                                          "int8": Int8, "int8c": Int8PerChannel,
                                          "topk": TopK}
#: the codecs a wire can apply (the one list of names the CLI, the config and the tests read)
CODECS = tuple(_CODEC_CLASSES)
_NONE = Codec()
_CODEC_HELP = ("codecs: none, fp16, bf16, int8, int8c (per channel), topk:<fraction in (0, 1]>; "
               "a spec is one codec (activations and gradients, both ways) or rules "
               "[up.|down.]activation|gradient|model=<codec> joined by commas")


def make_codec(name: str) -> Codec:
    """The codec called ``name`` (``"int8"``, ``"topk:0.05"`` ...); ValueError otherwise."""
    base, sep, param = name.strip().partition(":")
    if base not in _CODEC_CLASSES:
        raise ValueError(f"unknown codec {base!r}")
    if base != "topk":
        if sep:
            raise ValueError(f"codec {base!r} takes no parameter")
        return _CODEC_CLASSES[base]()
    if not sep:
        return TopK()
    try:
        fraction = float(param)
    except ValueError:
        raise ValueError(f"topk fraction must be a number; got {param!r}") from None
    if not 0 < fraction <= 1:
        raise ValueError(f"topk fraction must be in (0, 1]; got {param!r}")
    return TopK(fraction)


def parse_codec(spec: str) -> dict[tuple[str, str], Codec]:
    """Read a codec spec into the codec of every ``(direction, kind)``, kind in
    :data:`CODEC_KINDS`.

    A spec is one codec name (``"fp16"``: activations and gradients in both directions;
    model weights are sent as they are) or rules joined by commas, each
    ``[up.|down.]kind=codec`` (``"activation=fp16,gradient=topk:0.05,model=int8"``,
    ``"up.activation=int8c,down.gradient=bf16"``); a bare codec name among the rules means
    activations and gradients. Later rules override earlier ones; pairs no rule names get
    ``"none"``.

    Raises:
        ValueError: one line naming the bad rule and listing what is valid.

    Example:
        >>> parse_codec("up.activation=int8,gradient=fp16")[("up", "gradient")].name
        'fp16'
    """
    table = {(d, k): _NONE for d in DIRECTIONS for k in CODEC_KINDS}
    if not isinstance(spec, str):
        raise ValueError(f"codec spec must be a string; got {spec!r}; {_CODEC_HELP}")
    for rule in spec.split(","):
        try:
            target, sep, name = rule.strip().rpartition("=")
            codec = make_codec(name)
            if not sep:
                pairs = [(d, k) for d in DIRECTIONS for k in ("activation", "gradient")]
            else:
                direction, dot, kind = target.strip().rpartition(".")
                if kind in KINDS and kind not in CODEC_KINDS:
                    raise ValueError(f"{kind} takes no codec of its own: labels are never "
                                     "encoded, calibration follows activation")
                if kind not in CODEC_KINDS:
                    raise ValueError(f"unknown kind {kind!r}")
                if dot and direction not in DIRECTIONS:
                    raise ValueError(f"unknown direction {direction!r}")
                pairs = [(d, kind) for d in ((direction,) if dot else DIRECTIONS)]
        except ValueError as e:
            raise ValueError(f"codec spec {spec!r}: bad rule {rule.strip()!r} ({e}); "
                             f"{_CODEC_HELP}") from None
        table.update((p, codec) for p in pairs)
    return table


def _format(table: dict[tuple[str, str], Codec]) -> str:
    """The shortest spec of ``table`` in a fixed order (equal tables, equal strings)."""
    both = {table[(d, k)] for d in DIRECTIONS for k in ("activation", "gradient")}
    if len(both) == 1 and all(table[(d, "model")] == _NONE for d in DIRECTIONS):
        return both.pop().name
    rules = []
    for k in CODEC_KINDS:
        up, down = table[("up", k)], table[("down", k)]
        if up == down:
            rules += [f"{k}={up.name}"] if up != _NONE else []
        else:
            rules += [f"{d}.{k}={c.name}" for d, c in (("up", up), ("down", down)) if c != _NONE]
    return ",".join(rules)


def check_codec(spec: str) -> str:
    """The normalized form of a codec spec (``"fp16"`` stays ``"fp16"``; rules come out in
    a fixed order, redundant ones dropped), or the ValueError of :func:`parse_codec`."""
    return _format(parse_codec(spec))


# --------------------------------------------------------------------- wire
class Wire:
    """A counting, optionally lossy, channel between the sites and the server.

    Args:
        codec: a codec spec (:func:`parse_codec`): ``"none"`` (float32 as computed),
            ``"fp16"``, ``"bf16"``, ``"int8"``, ``"int8c"``, ``"topk:0.1"``, or rules per
            direction and kind such as ``"activation=fp16,gradient=topk:0.05,model=int8"``.
        noise_std: standard deviation of the noise added to activations.
        loss_up, loss_down: fraction of rows zeroed in each direction (0 to 1).
        seed: seed of the wire's own random generators (noise and loss): one on the CPU,
            and one per other device a tensor comes from, made when first needed.
        noise: ``"gaussian"`` or ``"laplace"`` (scale ``noise_std / sqrt(2)``: the same
            standard deviation).

    Example:
        >>> w = Wire()
        >>> got = w.send({"enc1": torch.ones(2, 4, 8, 8)}, "up", "activation")
        >>> w.bytes_up, got["enc1"].requires_grad
        (2048, True)
    """

    def __init__(self, codec: str = "none", noise_std: float = 0.0, loss_up: float = 0.0,
                 loss_down: float = 0.0, seed: int = 0, noise: str = "gaussian"):
        self.codecs = parse_codec(codec)
        for name, v in (("loss_up", loss_up), ("loss_down", loss_down)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1]; got {v}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0; got {noise_std}")
        if noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}; got {noise!r}")
        #: the normalized codec spec
        self.codec = _format(self.codecs)
        self.noise, self.noise_std, self.seed = noise, float(noise_std), seed
        self.loss = {"up": float(loss_up), "down": float(loss_down)}
        self.generator = torch.Generator().manual_seed(seed)
        self._device_generators: dict[str, torch.Generator] = {}
        self._device_states: dict[str, torch.Tensor] = {}  # loaded, not yet needed
        self.counts: dict[tuple[str, str, str], int] = defaultdict(int)

    # ------------------------------------------------------------- counters
    def bytes(self, direction: str | None = None, kind: str | None = None) -> int:
        return sum(v for (d, k, _), v in self.counts.items()
                   if (direction is None or d == direction) and (kind is None or k == kind))

    @property
    def bytes_up(self) -> int:
        return self.bytes("up")

    @property
    def bytes_down(self) -> int:
        return self.bytes("down")

    def by_tensor(self) -> dict[str, int]:
        """Bytes by ``"direction/kind/name"``."""
        return {f"{d}/{k}/{n}": v for (d, k, n), v in sorted(self.counts.items())}

    def reset(self) -> None:
        self.counts.clear()

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """What a resumed run needs to continue the same noise and losses: the generators'
        states (the CPU's and one per device used) and the byte counts."""
        devices = {k: v.clone() for k, v in self._device_states.items()}
        devices.update((k, g.get_state()) for k, g in self._device_generators.items())
        return {"generator": self.generator.get_state(),
                "counts": [[d, k, n, v] for (d, k, n), v in self.counts.items()],
                "device_generators": devices}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.counts = defaultdict(int, {(d, k, n): int(v) for d, k, n, v in state["counts"]})
        # device generators start again from the saved states (or the seed) when next used
        self._device_generators = {}
        self._device_states = {str(k): v for k, v in state.get("device_generators", {}).items()}

    def _generator(self, device: torch.device) -> torch.Generator:
        if device.type == "cpu":
            return self.generator
        key = str(device)
        g = self._device_generators.get(key)
        if g is None:
            g = torch.Generator(device=device).manual_seed(self.seed)
            if key in self._device_states:
                g.set_state(self._device_states.pop(key))
            self._device_generators[key] = g
        return g

    # ---------------------------------------------------------------- bytes
    def codec_for(self, direction: str, kind: str) -> Codec:
        """The codec a floating-point tensor of ``kind`` gets going ``direction`` (labels:
        none; calibration: the activations')."""
        self._check(direction, kind)
        if kind == "label":
            return _NONE
        return self.codecs[(direction, "activation" if kind == "calibration" else kind)]

    def nbytes(self, shape: Sequence[int], dtype: torch.dtype, direction: str, kind: str
               ) -> int:
        """What a tensor of this shape and dtype costs on this wire (what :meth:`send`
        counts for it)."""
        if not dtype.is_floating_point:
            self._check(direction, kind)
            return math.prod(shape) * dtype.itemsize
        return self.codec_for(direction, kind).nbytes(tuple(shape), dtype)

    def account(self, tensors: dict[str, torch.Tensor], direction: str, kind: str) -> int:
        """Count ``tensors`` as if sent, without transforming them or drawing a random
        number; return the bytes counted."""
        total = 0
        for name, t in tensors.items():
            n = self.nbytes(t.shape, t.dtype, direction, kind)
            self.counts[(direction, kind, name)] += n
            total += n
        return total

    @staticmethod
    def _check(direction: str, kind: str) -> None:
        if direction not in DIRECTIONS or kind not in KINDS:
            raise ValueError(f"direction must be one of {DIRECTIONS} and kind one of "
                             f"{KINDS}; got {direction!r}, {kind!r}")

    # -------------------------------------------------------------- sending
    def send(self, tensors: dict[str, torch.Tensor], direction: str, kind: str,
             requires_grad: dict[str, bool] | None = None) -> dict[str, torch.Tensor]:
        """Carry ``tensors`` across; return what the other side receives.

        Args:
            tensors: name -> tensor (the sender's; never modified).
            direction: ``"up"`` (site to server) or ``"down"``.
            kind: ``"activation"``, ``"gradient"``, ``"label"``, ``"model"`` (weights
                shipped between sites and server: only the model codec applies) or
                ``"calibration"`` (forward-only activations: noise, loss and the
                activation codec apply; they collect no gradient).
            requires_grad: for activations, which received tensors must be leaves that
                collect a gradient (default: every floating-point tensor).
        """
        codec = self.codec_for(direction, kind)
        out = {}
        for name, t in tensors.items():
            t = t.detach()
            if t.is_floating_point() and kind != "label":
                if kind != "model":
                    t = self._perturb(t, direction, kind)
                t, nbytes = codec.encode(t)
            else:
                nbytes = t.numel() * t.element_size()
            self.counts[(direction, kind, name)] += nbytes
            if kind == "activation" and t.is_floating_point():
                want = True if requires_grad is None else requires_grad.get(name, True)
                t.requires_grad_(want)
            out[name] = t
        return out

    def _perturb(self, t: torch.Tensor, direction: str, kind: str) -> torch.Tensor:
        """Noise (activations) then row loss, drawn from the generator of ``t``'s device."""
        g = self._generator(t.device)
        if kind != "gradient" and self.noise_std > 0:
            if self.noise == "gaussian":
                t = t + self.noise_std * torch.randn(t.shape, generator=g, device=g.device).to(t)
            else:  # Laplace by inverse CDF: sign(u) * b * Exp(1), u uniform on [-1/2, 1/2)
                u = torch.rand(t.shape, generator=g, device=g.device) - 0.5
                e = -torch.log((1 - 2 * u.abs()).clamp_min(2.0 ** -24))
                t = t + (self.noise_std / math.sqrt(2) * u.sign() * e).to(t)
        frac = self.loss[direction]
        if frac > 0:
            rows = t.reshape(-1, t.shape[-1])
            keep = (torch.rand(rows.shape[0], generator=g, device=g.device) >= frac).to(t)
            t = (rows * keep[:, None]).reshape(t.shape)
        return t
