"""The inversion attack: an honest-but-curious server turns smashed data back into images.

Threat model (stated once, used by every number the kit reports):

* the server follows the protocol, and keeps everything that reaches it: the tensors the
  site's front sends up (``split.up``) for each of the site's images;
* it knows the front's weights. In the kit's SplitFed the site parts are averaged every
  round by the server side (:mod:`medseg_kit.federated.strategies`), so the front is no
  secret from it; it also knows the wire's settings (codec, noise level);
* it owns *auxiliary* images of the same kind (here: another synthetic set, drawn with
  another seed), which it pushes through the known front itself, through the same wire.

From the auxiliary pairs (what the front would send, the image) it trains a small decoder
(convolutions and upsampling, :class:`InversionDecoder`) and applies it to what the target
site sent. The reconstructions are scored against the site's true images with
scikit-image's SSIM and PSNR (``data_range=1`` on images in [0, 1]).

Which tensors cross depends on both ends of the cut; :func:`depth_cut` picks, for a front
depth, the U-shaped cut that sends the fewest tensors up (skips that the server does not
need stay home), so that "deeper" means "the server sees deeper features only".

Example:
    >>> import torch
    >>> from medseg_kit.models import create_model
    >>> net = create_model("unet", width=4)
    >>> depth_cut(net, 2)
    (2, 8)
    >>> aux, target = torch.rand(8, 3, 32, 32), torch.rand(4, 3, 32, 32)
    >>> res = inversion_attack(net, depth_cut(net, 2), aux, target, steps=5)
    >>> 0 <= res.ssim <= 1
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.staged import INPUT, StagedNet
from ..split import RawDataError, Split
from ..wire import Wire


# ------------------------------------------------------------------ the cut
def depth_cut(net: StagedNet, front: int, *, allow_raw: bool = False) -> tuple[int, int]:
    """The U-shaped cut ``(front, back)`` with this front that sends the fewest tensors up.

    A skip connection crosses only when the server runs the stage that reads it; among
    the backs that send the fewest tensors, the largest is taken (the server runs the
    most). So at UNet's ``front = 3`` the server gets ``enc3`` alone and ``enc2`` and
    ``enc1`` stay on the site.

    Raises:
        CutError: ``front`` is out of range (the message lists the stages).
        RawDataError: every cut with this front sends raw image data and ``allow_raw`` is
            False (CGNet's and DUCK-Net's shallow fronts).
    """
    n = len(net)
    Split(net, front, front + 1 if front + 1 < n else n, allow_raw=True)  # range check
    best, refused = None, None
    for back in range(front + 1, n):
        try:
            s = Split(net, front, back, allow_raw=allow_raw)
        except RawDataError as e:
            refused = refused or e
            continue
        key = (len(s.up), -back)
        if best is None or key < best[0]:
            best = (key, (front, back))
    if best is None:
        if refused is not None:
            raise refused
        raise ValueError(f"front={front}: {getattr(net, 'model_name', 'the model')} has no "
                         f"U-shaped cut with this front (it has {n} stages)")
    return best[1]


def attackable_fronts(net: StagedNet, *, allow_raw: bool = False) -> list[int]:
    """The fronts :func:`depth_cut` accepts, shallow to deep."""
    out = []
    for f in range(1, len(net) - 1):
        try:
            depth_cut(net, f, allow_raw=allow_raw)
        except RawDataError:
            continue
        out.append(f)
    return out


# -------------------------------------------------------------- what crosses
def make_wire(noise_std: float = 0.0, noise: str = "gaussian", seed: int = 0,
              codec: str = "none") -> Wire:
    """A wire that adds ``noise`` (``gaussian`` or ``laplace``) of scale ``noise_std`` to
    every activation and encodes it with ``codec``, exactly as a run's wire does."""
    return Wire(codec=codec, noise_std=noise_std, noise=noise, seed=seed)


@torch.no_grad()
def smashed(net: StagedNet, split: Split, x: torch.Tensor, wire: Wire | None = None,
            batch_size: int = 32) -> dict[str, torch.Tensor]:
    """What the server receives for the images ``x``: the ``split.up`` tensors of the
    site's front (eval mode), through ``wire`` when given (noise, codec), without the
    autograd graph. Integer tensors (pooling indices) are left out."""
    front = split.client_part(net)
    was = net.training
    net.eval()
    out: dict[str, list[torch.Tensor]] = {}
    try:
        for s in range(0, len(x), batch_size):
            env = front.run({INPUT: x[s:s + batch_size]}, 0, split.front)
            up = {t: env[t] for t in split.up if env[t].is_floating_point()}
            if wire is not None:
                up = wire.send(up, "up", "activation", requires_grad={t: False for t in up})
            for t, v in up.items():
                out.setdefault(t, []).append(v.detach())
    finally:
        net.train(was)
    return {t: torch.cat(v) for t, v in out.items()}


# ------------------------------------------------------------------ decoder
class InversionDecoder(nn.Module):
    """Smashed tensors -> image.

    Every received tensor is resized to the finest received resolution and stacked, then
    standardised per channel (statistics of the auxiliary data). Two 3x3 convolutions at
    that resolution, one (upsample x2, 3x3 convolution) block per halving of the image
    side, and a 3x3 convolution to ``out_channels`` in [0, 1] (sigmoid). Channels shrink
    as the resolution grows (``width`` at 1/4 of the image side and coarser, half that at
    1/2, a quarter at full size), so every level costs about the same.

    Args:
        shapes: name -> per-image shape ``(C, h, w)`` of each received tensor.
        size: the image side to reconstruct.
        out_channels: image channels.
        width: channels at the coarse levels.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], size: int, out_channels: int = 3,
                 width: int = 32):
        super().__init__()
        self.names = sorted(shapes)
        self.size = size
        self.base = max(shapes[t][-1] for t in self.names)
        c_in = sum(shapes[t][0] for t in self.names)
        self.register_buffer("mean", torch.zeros(1, c_in, 1, 1))
        self.register_buffer("std", torch.ones(1, c_in, 1, 1))

        def channels(side: int) -> int:
            return max(4, min(width, round(width * size / (4 * side))))

        side, c = self.base, channels(self.base)
        self.stem = nn.Sequential(_conv(c_in, c), _conv(c, c))
        self.sides, ups = [], []
        while side < size:
            side = min(2 * side, size)
            c_next = channels(side)
            ups.append(_conv(c, c_next))
            self.sides.append(side)
            c = c_next
        self.ups = nn.ModuleList(ups)
        self.out = nn.Conv2d(c, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        #: the server's prior: the mean auxiliary image (logit), where training starts
        self.register_buffer("prior", torch.zeros(1, out_channels, size, size))

    def stack(self, received: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for t in self.names:
            v = received[t].float()
            if v.shape[-1] != self.base:
                v = F.interpolate(v, size=(self.base, self.base), mode="bilinear",
                                  align_corners=False)
            parts.append(v)
        return torch.cat(parts, 1)

    def fit_scale(self, received: dict[str, torch.Tensor], images: torch.Tensor) -> None:
        """Set the per-channel standardisation from the received tensors of the auxiliary
        images, and the prior from the images' mean."""
        self.prior.copy_(torch.logit(images.mean(0, keepdim=True).clamp(0.01, 0.99)))
        z = self.stack(received)
        self.mean.copy_(z.mean((0, 2, 3), keepdim=True))
        self.std.copy_(z.std((0, 2, 3), keepdim=True).clamp_min(1e-6))

    def forward(self, received: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.stem((self.stack(received) - self.mean) / self.std)
        for side, up in zip(self.sides, self.ups):
            h = up(F.interpolate(h, size=(side, side), mode="bilinear", align_corners=False))
        return torch.sigmoid(self.prior + self.out(h))


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def train_decoder(received: dict[str, torch.Tensor], images: torch.Tensor, *,
                  steps: int = 100, batch_size: int = 8, lr: float = 3e-3, width: int = 32,
                  seed: int = 0) -> InversionDecoder:
    """Fit an :class:`InversionDecoder` to pairs (received tensors, image) by mean squared
    error with Adam (learning rate annealed to 0 over ``steps``); deterministic for a
    ``seed``."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    shapes = {t: tuple(v.shape[1:]) for t, v in received.items()}
    dec = InversionDecoder(shapes, images.shape[-1], images.shape[1], width).to(images.device)
    dec.fit_scale(received, images)
    opt = torch.optim.Adam(dec.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    n = len(images)
    dec.train()
    for _ in range(steps):
        idx = torch.randint(n, (min(batch_size, n),), generator=g).to(images.device)
        loss = F.mse_loss(dec({t: v[idx] for t, v in received.items()}), images[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    dec.eval()
    return dec


@torch.no_grad()
def reconstruct(decoder: InversionDecoder, received: dict[str, torch.Tensor],
                batch_size: int = 64) -> torch.Tensor:
    """The decoder's images (N x C x H x W in [0, 1]) for the received tensors."""
    n = len(next(iter(received.values())))
    return torch.cat([decoder({t: v[s:s + batch_size] for t, v in received.items()})
                      for s in range(0, n, batch_size)])


# ------------------------------------------------------------------ scoring
def to_uint8(images: torch.Tensor) -> np.ndarray:
    """N x C x H x W floats in [0, 1] -> N x H x W x C ``uint8`` (for pictures)."""
    a = images.detach().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return (a * 255).round().astype(np.uint8)


def image_scores(originals: torch.Tensor, reconstructions: torch.Tensor
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-image SSIM and PSNR (dB) of reconstructions against originals, both
    N x C x H x W in [0, 1] (scikit-image's defaults with ``data_range=1``: SSIM over
    uniform 7 x 7 windows, averaged over the colour channels; PSNR is infinite for an
    exact copy)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = originals.detach().cpu().clamp(0, 1).permute(0, 2, 3, 1).double().numpy()
    b = reconstructions.detach().cpu().clamp(0, 1).permute(0, 2, 3, 1).double().numpy()
    ssim = np.array([structural_similarity(p, q, data_range=1.0, channel_axis=-1)
                     for p, q in zip(a, b)])
    with np.errstate(divide="ignore"):  # an exact copy: PSNR is infinite
        psnr = np.array([peak_signal_noise_ratio(p, q, data_range=1.0) for p, q in zip(a, b)])
    return ssim, psnr


# ------------------------------------------------------------------- attack
@dataclass
class InversionResult:
    """One attack at one cut.

    Attributes:
        model: the network's name.
        front, back: the cut.
        up: the tensors the server received (and inverted).
        raw: those of them that are raw image data (when the image itself crosses, the
            server just reads it: the reconstruction is what it received).
        noise_std, noise: the wire's noise during the attack.
        ssim, psnr: means over the target images (PSNR in dB).
        baseline_ssim, baseline_psnr: the same scores of a server that received nothing
            and guesses its mean auxiliary image for every target (the floor: the
            synthetic images are smooth, so even this guess scores an SSIM near 0.8).
        ssim_per_image, psnr_per_image: one value per target image.
        originals, reconstructions: the target images and the server's reconstructions,
            N x H x W x C ``uint8`` (for pictures).
    """

    model: str
    front: int
    back: int
    up: list[str]
    raw: list[str]
    noise_std: float
    noise: str
    ssim: float
    psnr: float
    baseline_ssim: float
    baseline_psnr: float
    ssim_per_image: np.ndarray = field(repr=False)
    psnr_per_image: np.ndarray = field(repr=False)
    originals: np.ndarray = field(repr=False)
    reconstructions: np.ndarray = field(repr=False)

    def row(self) -> dict:
        """The scalar facts, for tables and files."""
        return {"model": self.model, "front": self.front, "back": self.back,
                "up": "+".join(self.up), "raw": bool(self.raw), "noise": self.noise,
                "noise_std": self.noise_std, "ssim": self.ssim, "psnr": self.psnr,
                "baseline_ssim": self.baseline_ssim, "baseline_psnr": self.baseline_psnr}


def inversion_attack(net: StagedNet, cut: tuple[int, int], aux_images: torch.Tensor,
                     target_images: torch.Tensor, *, noise_std: float = 0.0,
                     noise: str = "gaussian", steps: int = 100, batch_size: int = 8,
                     width: int = 32, seed: int = 0, allow_raw: bool = False,
                     codec: str = "none") -> InversionResult:
    """The server's attack at ``cut``: learn to invert the front on ``aux_images``, then
    reconstruct ``target_images`` from what the site sends.

    Args:
        net: the whole network (its front's weights are known to the server).
        cut: ``(front, back)``.
        aux_images: the server's own images, N x C x H x W in [0, 1].
        target_images: the site's images (what is scored), same layout.
        noise_std, noise: the wire's noise (a defense): applied to what the site sends and,
            since the server knows the setting, to its auxiliary pairs as well.
        steps, batch_size, width: the decoder's training steps, batch and channels.
        seed: fixes the decoder's initialisation, its batches and the noise.
        allow_raw: attack a cut that sends raw image data (refused by default, as
            :class:`~medseg_kit.split.Split` does).
        codec: the wire's codec (what the server receives is decoded from it).
    """
    split = Split(net, *cut, allow_raw=allow_raw)
    device = next(net.parameters()).device
    aux_images, target_images = aux_images.to(device), target_images.to(device)
    got = smashed(net, split, target_images, make_wire(noise_std, noise, seed + 2, codec))
    if INPUT in got:  # the image itself crossed: nothing to learn
        rec = got[INPUT].clamp(0, 1)
    else:
        aux = smashed(net, split, aux_images, make_wire(noise_std, noise, seed + 1, codec))
        dec = train_decoder(aux, aux_images, steps=steps, batch_size=batch_size, width=width,
                            seed=seed)
        rec = reconstruct(dec, got)
    ssim, psnr = image_scores(target_images, rec)
    guess = aux_images.mean(0, keepdim=True).expand_as(target_images)
    base_ssim, base_psnr = image_scores(target_images, guess)
    return InversionResult(getattr(net, "model_name", type(net).__name__), split.front,
                           split.back, list(got), list(split.raw_up), float(noise_std), noise,
                           float(ssim.mean()), float(psnr.mean()), float(base_ssim.mean()),
                           float(base_psnr.mean()), ssim, psnr, to_uint8(target_images),
                           to_uint8(rec))
