"""The wire: everything that crosses between a site and the server passes through here.

A :class:`Wire` counts the bytes of every tensor it carries (by direction, by kind —
activation, gradient, label or model weights — and by tensor name) and hands the receiver a *fresh
leaf* tensor: the receiving side never shares an autograd graph with the sender, exactly
as if the tensor had travelled over a network.

It can also transform the payload on the way:

* ``codec="fp16"`` halves float payloads; ``codec="int8"`` quantizes each tensor to 8
  bits with a per-tensor scale and offset (8 extra bytes);
* ``noise_std`` adds Gaussian noise to activations (a simple privacy defence);
* ``loss_up`` / ``loss_down`` zero that fraction of *rows* of each activation and
  gradient crossing in that direction, as in the SplitFed packet-loss studies. A row is
  one line along the last (width) axis, ``tensor.reshape(-1, W)[i]``.

Integer tensors (pooling indices) are carried as they are, never transformed.
"""

from __future__ import annotations

from collections import defaultdict

import torch

DIRECTIONS = ("up", "down")
KINDS = ("activation", "gradient", "label", "model")
#: the codecs a wire can apply (the one list the CLI and the config read)
CODECS = ("none", "fp16", "int8")


class Wire:
    """A counting, optionally lossy, channel between the sites and the server.

    Args:
        codec: ``"none"`` (float32 as computed), ``"fp16"`` or ``"int8"``.
        noise_std: standard deviation of the Gaussian noise added to activations.
        loss_up, loss_down: fraction of rows zeroed in each direction (0 to 1).
        seed: seed of the wire's own random generator (noise and loss).

    Example:
        >>> w = Wire()
        >>> got = w.send({"enc1": torch.ones(2, 4, 8, 8)}, "up", "activation")
        >>> w.bytes_up, got["enc1"].requires_grad
        (2048, True)
    """

    def __init__(self, codec: str = "none", noise_std: float = 0.0, loss_up: float = 0.0,
                 loss_down: float = 0.0, seed: int = 0):
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}; got {codec!r}")
        for name, v in (("loss_up", loss_up), ("loss_down", loss_down)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1]; got {v}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0; got {noise_std}")
        self.codec, self.noise_std = codec, float(noise_std)
        self.loss = {"up": float(loss_up), "down": float(loss_down)}
        self.generator = torch.Generator().manual_seed(seed)
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
        """What a resumed run needs to continue the same noise and losses: the generator's
        state and the byte counts."""
        return {"generator": self.generator.get_state(),
                "counts": [[d, k, n, v] for (d, k, n), v in self.counts.items()]}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.counts = defaultdict(int, {(d, k, n): int(v) for d, k, n, v in state["counts"]})

    # -------------------------------------------------------------- sending
    def send(self, tensors: dict[str, torch.Tensor], direction: str, kind: str,
             requires_grad: dict[str, bool] | None = None) -> dict[str, torch.Tensor]:
        """Carry ``tensors`` across; return what the other side receives.

        Args:
            tensors: name -> tensor (the sender's; never modified).
            direction: ``"up"`` (site to server) or ``"down"``.
            kind: ``"activation"``, ``"gradient"``, ``"label"`` or ``"model"`` (weights
                shipped between sites and server, as FL and SL do).
            requires_grad: for activations, which received tensors must be leaves that
                collect a gradient (default: every floating-point tensor).
        """
        if direction not in DIRECTIONS or kind not in KINDS:
            raise ValueError(f"direction must be one of {DIRECTIONS} and kind one of "
                             f"{KINDS}; got {direction!r}, {kind!r}")
        out = {}
        for name, t in tensors.items():
            t = t.detach()
            if t.is_floating_point() and kind in ("activation", "gradient"):
                t, nbytes = self._encode(t, direction, kind)
            else:
                nbytes = t.numel() * t.element_size()
            self.counts[(direction, kind, name)] += nbytes
            if kind == "activation" and t.is_floating_point():
                want = True if requires_grad is None else requires_grad.get(name, True)
                t.requires_grad_(want)
            out[name] = t
        return out

    def _encode(self, t: torch.Tensor, direction: str, kind: str) -> tuple[torch.Tensor, int]:
        if kind == "activation" and self.noise_std > 0:
            t = t + self.noise_std * torch.randn(t.shape, generator=self.generator).to(t)
        frac = self.loss[direction]
        if frac > 0:
            rows = t.reshape(-1, t.shape[-1])
            keep = (torch.rand(rows.shape[0], generator=self.generator) >= frac).to(t)
            t = (rows * keep[:, None]).reshape(t.shape)
        if self.codec == "fp16":
            return t.half().to(t.dtype), t.numel() * 2
        if self.codec == "int8":
            lo, hi = t.min(), t.max()
            scale = (hi - lo).clamp_min(1e-12) / 255.0
            q = torch.round((t - lo) / scale)
            return q * scale + lo, t.numel() + 8
        return t, t.numel() * t.element_size()
