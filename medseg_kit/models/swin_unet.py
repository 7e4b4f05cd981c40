"""Swin-UNet (Cao et al., 2021, "Swin-Unet: Unet-like Pure Transformer for Medical Image
Segmentation", arXiv:2105.05537; ECCV Workshops 2022).

A U-shaped network made only of Swin Transformer blocks (Liu et al., ICCV 2021):

* **patch partition + linear embedding**: 4x4 patches projected to ``C`` channels (a
  4x4 stride-4 conv), LayerNorm;
* **Swin blocks** in pairs: window multi-head self-attention (W-MSA) with a learned
  relative position bias, then shifted-window attention (SW-MSA, the windows moved by
  half a window with ``roll`` and an attention mask), each with LayerNorm, a residual
  connection and a 4x MLP;
* **patch merging** (encoder): 2x2 neighbouring tokens concatenated (4C), LayerNorm and a
  linear map to 2C — halves the resolution, doubles the channels;
* **patch expanding** (decoder): a linear map C -> 2C and a rearrangement to twice the
  resolution with C/2 channels, LayerNorm;
* **skip connections**: the encoder's tokens at each resolution are concatenated with the
  decoder's and linearly projected back (2C -> C);
* **final patch expanding x4** to the input resolution, then a linear (1x1) projection to
  the classes.

Three encoder stages (C, 2C, 4C), a bottleneck at 8C and 1/32, three decoder stages;
two blocks per stage; heads ``C/32 * (1, 2, 4, 8)`` (3, 6, 12, 24 at C = 96 as
published; at least one, and dividing the channels); MLP ratio 4.

**Window size adapts to the input.** The paper uses 7x7 windows at 224x224 (token
grids 56, 28, 14, 7). Here each stage uses the largest window <= ``window_size`` (7)
that divides its token grid, so any multiple of 32 is accepted (e.g. windows of 4 at
128x128, 7 at 224x224); a grid no larger than the window is attended as one window and
not shifted. The relative position bias table is sized for ``window_size`` and smaller
windows read their part of it. Stochastic depth (drop path 0.1) is omitted to keep
training deterministic. The skips are taken after each encoder stage's blocks, as drawn
in the paper (the authors' code takes them before). ``width`` is ``C`` (96 in the
paper). Published count: 27.2 M, the figure quoted for Swin-Unet in later comparisons;
the kit's paper-width count (7x7 windows) is 27.17 M.

Tensors between stages are image-shaped ``(N, C, H, W)``, so crossings have the usual
shapes; inside a stage the blocks work on ``(N, H, W, C)`` tokens.

Stage table::

    embed(x)  enc1(embed)  enc2(enc1)  enc3(enc2)  bottleneck(enc3)
    dec3(bottleneck,enc3)  dec2(dec3,enc2)  dec1(dec2,enc1)  head(dec1)->logits

Default cut ``(2, 8)``: the patch embedding *and the first Swin stage* on the site (the
embedding alone is a linear, invertible map of 4x4 pixel patches: sending it would be
sending the image), the rest on the server, the final x4 expansion, projection and loss
back on the site.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model
from .staged import OUTPUT, Stage, StagedNet


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def to_image(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).contiguous()


def window_for(h: int, w: int, max_window: int) -> int:
    """Largest window side <= ``max_window`` that divides both ``h`` and ``w``."""
    return max(d for d in range(1, max_window + 1) if h % d == 0 and w % d == 0)


def num_heads(dim: int, head_dim: int = 32) -> int:
    heads = max(1, dim // head_dim)
    while dim % heads:
        heads -= 1
    return heads


def partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``(N, H, W, C)`` -> ``(N * windows, ws*ws, C)``."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def merge(windows: torch.Tensor, ws: int, n: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`partition`."""
    c = windows.shape[-1]
    x = windows.reshape(n, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, c)


def shift_mask(h: int, w: int, ws: int, shift: int, like: torch.Tensor) -> torch.Tensor:
    """Additive attention mask ``(windows, ws*ws, ws*ws)`` for shifted windows."""
    region = torch.zeros(1, h, w, 1, device=like.device)
    spans = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for hs in spans:
        for wsl in spans:
            region[:, hs, wsl, :] = label
            label += 1
    r = partition(region, ws).squeeze(-1)
    diff = r[:, None, :] - r[:, :, None]
    return torch.zeros_like(diff, dtype=like.dtype).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with relative position bias."""

    def __init__(self, dim: int, heads: int, max_window: int):
        super().__init__()
        self.heads, self.max_window = heads, max_window
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * max_window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)

    def relative_bias(self, ws: int) -> torch.Tensor:
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws),
                                            indexing="ij")).flatten(1)  # (2, ws*ws)
        rel = coords[:, :, None] - coords[:, None, :] + self.max_window - 1
        index = (rel[0] * (2 * self.max_window - 1) + rel[1]).to(self.bias_table.device)
        n = ws * ws
        return self.bias_table[index.reshape(-1)].reshape(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, ws: int, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(
            2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1) + self.relative_bias(ws)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.reshape(b // nw, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.reshape(b, self.heads, n, n)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class SwinBlock(nn.Module):
    """LN -> (shifted) window attention -> residual; LN -> MLP -> residual."""

    def __init__(self, dim: int, heads: int, max_window: int, shifted: bool, mlp_ratio: int = 4):
        super().__init__()
        self.max_window, self.shifted = max_window, shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, max_window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        ws = window_for(h, w, self.max_window)
        shift = ws // 2 if self.shifted and min(h, w) > ws else 0
        y = self.norm1(x)
        mask = None
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
            mask = shift_mask(h, w, ws, shift, y)
        y = merge(self.attn(partition(y, ws), ws, mask), ws, n, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


def swin_pair(dim: int, max_window: int, depth: int = 2) -> nn.Sequential:
    heads = num_heads(dim)
    return nn.Sequential(*[SwinBlock(dim, heads, max_window, shifted=i % 2 == 1)
                           for i in range(depth)])


class PatchMerging(nn.Module):
    """2x2 tokens -> one: concat (4C), LayerNorm, linear to 2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                       x[:, 1::2, 1::2]], dim=-1)
        return self.reduce(self.norm(x))


class PatchExpand(nn.Module):
    """One token -> ``scale x scale``: linear to ``scale**2 * C / ratio``, rearrange, LN.

    ``scale=2`` (decoder): C -> C/2 channels at twice the resolution. ``scale=4`` (the
    final expansion): C -> C channels at four times the resolution.
    """

    def __init__(self, dim: int, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.out_dim = dim // 2 if scale == 2 else dim
        self.expand = nn.Linear(dim, scale * scale * self.out_dim, bias=False)
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        s, c = self.scale, self.out_dim
        x = self.expand(x).reshape(n, h, w, s, s, c).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(n, h * s, w * s, c))


class PatchEmbed(nn.Module):
    def __init__(self, cin: int, dim: int, patch: int = 4):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_image(self.norm(to_tokens(self.proj(x))))


class EncoderStage(nn.Module):
    """(Patch merging, unless first) then a pair of Swin blocks; ``norm`` at the bottom."""

    def __init__(self, dim_in: int, max_window: int, merge_first: bool, final_norm: bool = False):
        super().__init__()
        self.merge = PatchMerging(dim_in) if merge_first else None
        dim = 2 * dim_in if merge_first else dim_in
        self.blocks = swin_pair(dim, max_window)
        self.norm = nn.LayerNorm(dim) if final_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = to_tokens(x)
        if self.merge is not None:
            t = self.merge(t)
        t = self.blocks(t)
        if self.norm is not None:
            t = self.norm(t)
        return to_image(t)


class DecoderStage(nn.Module):
    """Patch expanding, concat with the skip, linear 2C -> C, a pair of Swin blocks."""

    def __init__(self, dim_in: int, max_window: int):
        super().__init__()
        self.expand = PatchExpand(dim_in, 2)
        dim = dim_in // 2
        self.concat_back = nn.Linear(2 * dim, dim)
        self.blocks = swin_pair(dim, max_window)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        t = torch.cat([self.expand(to_tokens(x)), to_tokens(skip)], dim=-1)
        return to_image(self.blocks(self.concat_back(t)))


class SwinHead(nn.Module):
    """LayerNorm, final patch expanding x4, 1x1 projection to the classes."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.expand = PatchExpand(dim, 4)
        self.classifier = nn.Conv2d(dim, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(to_image(self.expand(self.norm(to_tokens(x)))))


def _create_swin_unet(in_channels: int, num_classes: int, width: int, window_size: int
                      ) -> StagedNet:
    if window_size < 1:
        raise ValueError(f"window_size must be >= 1; got {window_size}")
    c, ws = width, window_size
    stages = [
        Stage("embed", PatchEmbed(in_channels, c), "x"),
        Stage("enc1", EncoderStage(c, ws, merge_first=False), "embed"),
        Stage("enc2", EncoderStage(c, ws, merge_first=True), "enc1"),
        Stage("enc3", EncoderStage(2 * c, ws, merge_first=True), "enc2"),
        Stage("bottleneck", EncoderStage(4 * c, ws, merge_first=True, final_norm=True),
              "enc3"),
        Stage("dec3", DecoderStage(8 * c, ws), ("bottleneck", "enc3")),
        Stage("dec2", DecoderStage(4 * c, ws), ("dec3", "enc2")),
        Stage("dec1", DecoderStage(2 * c, ws), ("dec2", "enc1")),
        Stage("head", SwinHead(c, num_classes), "dec1", OUTPUT),
    ]
    return StagedNet(stages, in_channels=in_channels, num_classes=num_classes,
                     size_multiple=32, min_size=32, default_cut=(2, 8))


@register_model("swin_unet", teaching_width=20, paper_width=96,
                reference="Cao et al., 2021, Swin-Unet, arXiv:2105.05537",
                published_params="27.2M",
                published_source="the count quoted for Swin-Unet (C = 96, 7x7 windows) in "
                                  "later comparisons; the paper prints none")
def swin_unet(in_channels: int = 3, num_classes: int = 1, width: int = 20,
              window_size: int = 7) -> StagedNet:
    """Swin-UNet (``width`` = embedding dim C, 96 in the paper; windows up to 7x7)."""
    return _create_swin_unet(in_channels, num_classes, width, window_size)
