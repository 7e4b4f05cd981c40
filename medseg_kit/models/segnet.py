"""SegNet (Badrinarayanan, Kendall and Cipolla, IEEE TPAMI 39(12), 2017, arXiv:1511.00561).

Encoder: the 13 convolutional layers of VGG-16 in five blocks (2, 2, 3, 3, 3 convs of
3x3 + BatchNorm + ReLU), each block ending with 2x2 max-pooling that *remembers the
positions of the maxima*. Decoder: the mirror image; each block first upsamples with
max-unpooling at the stored indices (a sparse map, no learned upsampling), then 3x3
convs densify it. The last decoder conv is the classifier (3x3, no BN/ReLU), as in the
authors' Caffe model. At ``width=64`` the channels are 64-128-256-512-512 as in VGG-16;
29.4 M parameters, against the 29.5 M of the paper's Table 6.

The pooling indices are ``int64`` tensors written by the encoder stages beside their
features (``enc3 -> (enc3, idx3)``). They are learned-feature outputs, not raw data,
and they may cross the cut: the wire carries and counts them, but no gradient flows
back through an index.

Stage table::

    enc1(x)->(enc1,idx1) enc2(enc1)->(enc2,idx2) ... enc5(enc4)->(enc5,idx5)
    dec5(enc5,idx5) dec4(dec5,idx4) dec3(dec4,idx3) dec2(dec3,idx2) dec1(dec2,idx1)
    head(dec1)->logits

Default cut ``(1, 9)``: the first encoder block on the site, and the last decoder block
and classifier back on the site, so the finest indices ``idx1`` never leave it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNReLU
from .registry import register_model
from .staged import OUTPUT, Stage, StagedNet

# convs per VGG-16 block and the channel multipliers of the five blocks
BLOCK_CONVS = (2, 2, 3, 3, 3)
BLOCK_MULT = (1, 2, 4, 8, 8)


class EncoderBlock(nn.Module):
    """VGG block followed by 2x2 max-pooling; returns ``(pooled, indices)``."""

    def __init__(self, cin: int, cout: int, n_convs: int):
        super().__init__()
        self.convs = nn.Sequential(*[ConvBNReLU(cin if i == 0 else cout, cout)
                                     for i in range(n_convs)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.max_pool2d(self.convs(x), 2, stride=2, return_indices=True)


class DecoderBlock(nn.Module):
    """Max-unpooling at the encoder's indices, then 3x3 convs (the last one to ``cout``)."""

    def __init__(self, cin: int, cout: int, n_convs: int):
        super().__init__()
        self.convs = nn.Sequential(*[ConvBNReLU(cin, cin if i < n_convs - 1 else cout)
                                     for i in range(n_convs)])

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.convs(F.max_unpool2d(x, indices, 2, stride=2))


def _create_segnet(in_channels: int, num_classes: int, width: int) -> StagedNet:
    c = [width * m for m in BLOCK_MULT]
    stages = []
    for i, n in enumerate(BLOCK_CONVS):
        src = "x" if i == 0 else f"enc{i}"
        stages.append(Stage(f"enc{i + 1}", EncoderBlock(in_channels if i == 0 else c[i - 1],
                                                        c[i], n),
                            src, (f"enc{i + 1}", f"idx{i + 1}")))
    # decoder block k mirrors encoder block k: dec1 ends with one conv (the classifier
    # is the head), so it has BLOCK_CONVS[0] - 1 convs
    for i in reversed(range(5)):
        src = "enc5" if i == 4 else f"dec{i + 2}"
        cout = c[i - 1] if i > 0 else c[0]
        n = BLOCK_CONVS[i] if i > 0 else BLOCK_CONVS[0] - 1
        stages.append(Stage(f"dec{i + 1}", DecoderBlock(c[i], cout, n), (src, f"idx{i + 1}")))
    stages.append(Stage("head", nn.Conv2d(c[0], num_classes, 3, padding=1), "dec1", OUTPUT))
    return StagedNet(stages, in_channels=in_channels, num_classes=num_classes,
                     size_multiple=32, min_size=32, default_cut=(1, 9))


@register_model("segnet", teaching_width=8, paper_width=64,
                reference="Badrinarayanan et al., IEEE TPAMI 2017, arXiv:1511.00561",
                published_params="29.5M",
                published_source="the paper's own count for SegNet (VGG-16 encoder, "
                                  "mirrored decoder)")
def segnet(in_channels: int = 3, num_classes: int = 1, width: int = 8) -> StagedNet:
    return _create_segnet(in_channels, num_classes, width)
