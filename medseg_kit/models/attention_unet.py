"""Attention U-Net (Oktay et al., MIDL 2018, arXiv:1804.03999).

The UNet of :mod:`.unet` (same levels, same blocks) with an additive *attention gate*
on every skip connection. The gate scores each position of the skip tensor ``x`` with
the coarser decoder tensor ``g`` as the gating signal (Eq. 1-2 of the paper)::

    q = ReLU(W_x x + W_g g + b),   alpha = sigmoid(psi q + b_psi),   x_hat = alpha * x

``W_x`` is a 2x2 stride-2 convolution that brings ``x`` onto the grid of ``g``; the
coefficients ``alpha`` are resampled bilinearly to ``x``'s grid (grid attention), and
the gated skip goes through a 1x1 conv + BN as in the authors' code. The intermediate
width is half the skip's channels. Everything else (double 3x3 conv levels, 2x2
transposed-conv upsampling, concatenation, 1x1 head) is the UNet's. Deep supervision
(an option in the paper) is not used.

The paper's model is 3-D (CT pancreas) with 16-based channels and reports 6.40 M
parameters (against 5.88 M for its U-Net); this 2-D version at ``width=64``
(the 2-D UNet convention, as for the kit's UNet) has 32.4 M, and 2.0 M at ``width=16``:
a 3x3x3 kernel holds three times the weights of a 3x3 one, so no 2-D width reproduces the
published count, and the registry marks it as a count of another configuration. The paper
width stays 64 so that Attention U-Net and UNet compare like with like.

Stage table (the UNet's; each ``dec`` stage holds its gate)::

    enc1(x) enc2 enc3 enc4 bottleneck  dec4(bottleneck,enc4) dec3(dec4,enc3)
    dec2(dec3,enc2) dec1(dec2,enc1) head(dec1)->logits

Default cut ``(1, 8)``, as for the UNet: the first level, the last decoder level (with its
gate) and the head on the site, so the finest skip ``enc1`` never leaves it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Up
from .registry import register_model
from .staged import StagedNet
from .unet import _create_unet


class AttentionGate(nn.Module):
    """Additive attention gate: weight the skip ``x`` by coefficients computed with ``g``.

    Args:
        c_skip: channels of ``x`` (the encoder tensor on the skip connection).
        c_gate: channels of ``g`` (the decoder tensor one level coarser).
        c_int: channels of the intermediate space where the two are added.
    """

    def __init__(self, c_skip: int, c_gate: int, c_int: int):
        super().__init__()
        self.theta_x = nn.Conv2d(c_skip, c_int, 2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(c_gate, c_int, 1)
        self.psi = nn.Conv2d(c_int, 1, 1)
        self.out = nn.Sequential(nn.Conv2d(c_skip, c_skip, 1), nn.BatchNorm2d(c_skip))

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The attention map ``alpha`` in [0, 1], shape ``(N, 1, H, W)`` of ``x``."""
        q = F.relu(self.theta_x(x) + self.phi_g(g))
        alpha = torch.sigmoid(self.psi(q))
        return F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.out(self.coefficients(x, g) * x)


class AttentionUp(Up):
    """The UNet's up level, with the skip passed through an attention gate first."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__(cin, cskip, cout)
        self.gate = AttentionGate(cskip, cin, max(1, cskip // 2))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return super().forward(x, self.gate(skip, x))


@register_model("attention_unet", teaching_width=4, paper_width=64,
                reference="Oktay et al., MIDL 2018, arXiv:1804.03999",
                published_params="6.4M", published_comparable=False,
                published_source="the paper's 3-D model (3x3x3 kernels, 16 base filters, "
                                  "CT pancreas); the same gates in 2-D have 32.4 M at the "
                                  "kit's paper width 64 and 2.0 M at 16")
def attention_unet(in_channels: int = 3, num_classes: int = 1, width: int = 4) -> StagedNet:
    return _create_unet(in_channels, num_classes, width, up=AttentionUp)
