"""UNet (Ronneberger, Fischer and Brox, MICCAI 2015, arXiv:1505.04597).

Four down levels of two 3x3 conv + BatchNorm + ReLU with 2x2 max-pooling, a bottleneck,
four up levels with 2x2 transposed convolutions and skip concatenation, a 1x1 head.
Padded convolutions (as in almost every re-implementation) keep the output the size of
the input. At ``width=64`` the channels are 64-128-256-512-1024 as in the paper
(31.0 M parameters with BatchNorm; the paper's unpadded, BN-free net has 31.0 M too).

Stage table::

    enc1(x)->enc1  enc2(enc1)->enc2  enc3  enc4  bottleneck(enc4)->bottleneck
    dec4(bottleneck,enc4)  dec3(dec4,enc3)  dec2(dec3,enc2)  dec1(dec2,enc1)  head(dec1)->logits

Default cut ``(1, 8)``: the first encoder level, the last decoder level and the head on the
site, everything between on the server (the U-shaped configuration of the SplitFed papers);
the first skip (``enc1``) never leaves the site.
"""

from __future__ import annotations

from .blocks import DoubleConv, Down, Head, Up
from .registry import register_model
from .staged import OUTPUT, Stage, StagedNet


def _create_unet(in_channels: int, num_classes: int, width: int, up: type[Up] = Up
                 ) -> StagedNet:
    """The UNet stage table; ``up`` is the decoder level (Attention UNet swaps in a gated
    one, everything else is the same)."""
    c = [width * m for m in (1, 2, 4, 8, 16)]
    stages = [
        Stage("enc1", DoubleConv(in_channels, c[0]), "x"),
        Stage("enc2", Down(c[0], c[1]), "enc1"),
        Stage("enc3", Down(c[1], c[2]), "enc2"),
        Stage("enc4", Down(c[2], c[3]), "enc3"),
        Stage("bottleneck", Down(c[3], c[4]), "enc4"),
        Stage("dec4", up(c[4], c[3], c[3]), ("bottleneck", "enc4")),
        Stage("dec3", up(c[3], c[2], c[2]), ("dec4", "enc3")),
        Stage("dec2", up(c[2], c[1], c[1]), ("dec3", "enc2")),
        Stage("dec1", up(c[1], c[0], c[0]), ("dec2", "enc1")),
        Stage("head", Head(c[0], num_classes), "dec1", OUTPUT),
    ]
    return StagedNet(stages, in_channels=in_channels, num_classes=num_classes,
                     size_multiple=16, min_size=16, default_cut=(1, 8))


@register_model("unet", teaching_width=8, paper_width=64,
                reference="Ronneberger et al., MICCAI 2015, arXiv:1505.04597",
                published_params="31.0M",
                published_source="the network of the paper's Fig. 1 (1 input channel, 2 "
                                  "classes, unpadded biased convs, no BatchNorm), counted; "
                                  "the paper prints no total")
def unet(in_channels: int = 3, num_classes: int = 1, width: int = 8) -> StagedNet:
    return _create_unet(in_channels, num_classes, width)
