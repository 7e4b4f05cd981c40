"""DeepLabV3 and DeepLabV3+: a dilated ResNet, atrous spatial pyramid pooling, upsampling.

DeepLabV3 (Chen, Papandreou, Schroff and Adam, "Rethinking Atrous Convolution for
Semantic Image Segmentation", 2017, arXiv:1706.05587): a ResNet whose last layers use
atrous (dilated) convolution instead of stride, so that features stay at 1/16 (or 1/8)
of the input; "Multi-grid" rates (1, 2, 4) in the last layer; ASPP with a 1x1 branch,
three 3x3 atrous branches (rates 6, 12, 18 at output stride 16, doubled at 8) and image
pooling, concatenated and projected by a 1x1 convolution (256 channels, BN); a 1x1
classifier; the logits are upsampled bilinearly to the input size (the label is kept
intact, as in the paper).

DeepLabV3+ (Chen, Zhu, Papandreou, Schroff and Adam, ECCV 2018, arXiv:1802.02611): the
DeepLabV3 encoder plus a decoder: the low-level features of ``layer1`` (1/4) are
projected to 48 channels by a 1x1 conv, concatenated with the ASPP output upsampled x4,
refined by two 3x3 convs (256), classified and upsampled x4.

Both use the kit's ResNet (:mod:`.resnet`), trained from scratch: ResNet-101 by default
as in the papers' main results (``depth=50`` selectable), output stride 16 by default
(``output_stride=8`` selectable). ``width`` is the backbone's stem width: at 64 the
layers have 256-2048 channels and ASPP 256, as published.

Deviations: the image-pooling branch has no BatchNorm (its 1x1 map of a batch of one
image has no batch statistics to normalise, and a final batch of one must train);
DeepLabV3+ uses plain (not depthwise-separable) 3x3 convolutions in ASPP and decoder,
as the paper's ResNet-101 variant; no dropout (the kit keeps training deterministic).

Parameter counts: neither paper reports one. For DeepLabV3 the figure registered is
torchvision's model card for DeepLabV3-ResNet-101 (61.0M, which includes its auxiliary
FCN head and an extra 3x3 conv in the classifier head; the kit's paper-width
DeepLabV3-ResNet-101 has ~58M); for DeepLabV3+ no published count is registered.

Stage tables::

    DeepLabV3:  stem(x) layer1 layer2 layer3 layer4 aspp(layer4) head(aspp)->logits
    DeepLabV3+: stem(x) layer1 layer2 layer3 layer4 aspp(layer4) lowproj(layer1)
                fuse(aspp,lowproj) head(fuse)->logits

Default cuts: DeepLabV3 ``(1, 6)`` — the stem on the site, backbone and ASPP on the
server, the classifier and upsampling (and the loss) back on the site. DeepLabV3+
``(1, 8)`` — the same, with the decoder's fusion on the server.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNReLU
from .registry import register_model
from .resnet import resnet_stages
from .staged import OUTPUT, Stage, StagedNet

REFERENCE_V3 = "Chen et al., 2017, Rethinking Atrous Convolution, arXiv:1706.05587"
REFERENCE_V3PLUS = "Chen et al., ECCV 2018, Encoder-Decoder with Atrous Separable Conv, " \
                   "arXiv:1802.02611"


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image-level features (DeepLabV3, Sec. 3.3)."""

    def __init__(self, cin: int, cout: int, rates: Sequence[int]):
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(cin, cout, 1)] + [ConvBNReLU(cin, cout, 3, dilation=r) for r in rates])
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1),
                                        nn.ReLU())
        self.project = ConvBNReLU(cout * (len(rates) + 2), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [b(x) for b in self.branches]
        feats.append(self.image_pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(feats, dim=1))


class Classifier(nn.Module):
    """1x1 conv to class logits, then bilinear upsampling by ``scale``."""

    def __init__(self, cin: int, num_classes: int, scale: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, num_classes, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=self.scale, mode="bilinear",
                             align_corners=False)


class Fuse(nn.Module):
    """DeepLabV3+ decoder: upsample ASPP to the low-level grid, concat, two 3x3 convs."""

    def __init__(self, c_aspp: int, c_low: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(ConvBNReLU(c_aspp + c_low, cout, 3), ConvBNReLU(cout, cout, 3))

    def forward(self, aspp: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(aspp, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([up, low], dim=1))


def aspp_rates(output_stride: int) -> tuple[int, ...]:
    """The ASPP rates of the paper: (6, 12, 18) at output stride 16, doubled at 8."""
    if output_stride not in (8, 16):
        raise ValueError(f"DeepLab output_stride must be 8 or 16; got {output_stride}")
    return (6, 12, 18) if output_stride == 16 else (12, 24, 36)


def _create_deeplab(in_channels: int, num_classes: int, width: int, plus: bool,
                    depth: int, output_stride: int, multi_grid: Sequence[int]) -> StagedNet:
    rates = aspp_rates(output_stride)
    backbone, ch = resnet_stages(in_channels, width, depth, output_stride, multi_grid)
    c_aspp = 4 * width  # 256 at width 64
    stages = [Stage(name, module, "x" if i == 0 else backbone[i - 1][0])
              for i, (name, module) in enumerate(backbone)]
    stages.append(Stage("aspp", ASPP(ch["layer4"], c_aspp, rates), "layer4"))
    if plus:
        c_low = max(1, 3 * width // 4)  # 48 at width 64
        stages += [
            Stage("lowproj", ConvBNReLU(ch["layer1"], c_low, 1), "layer1"),
            Stage("fuse", Fuse(c_aspp, c_low, c_aspp), ("aspp", "lowproj")),
            Stage("head", Classifier(c_aspp, num_classes, 4), "fuse", OUTPUT),
        ]
        cut = (1, 8)
    else:
        stages.append(Stage("head", Classifier(c_aspp, num_classes, output_stride), "aspp",
                            OUTPUT))
        cut = (1, 6)
    # V3 upsamples its 1/output_stride logits by output_stride; V3+ upsamples the 1/4
    # grid of layer1 by 4 (the coarser ASPP output is resized to that grid first)
    step = 4 if plus else output_stride
    return StagedNet(stages, in_channels=in_channels, num_classes=num_classes,
                     size_multiple=step, min_size=step, default_cut=cut)


@register_model("deeplabv3", teaching_width=10, paper_width=64, reference=REFERENCE_V3,
                published_params="61.0M", published_comparable=False,
                published_source="not from the paper (it prints no count): torchvision's "
                                  "DeepLabV3-ResNet-101, which adds an auxiliary FCN head and "
                                  "a 3x3 conv before the classifier (about 3 M the kit does "
                                  "not build)")
def deeplabv3(in_channels: int = 3, num_classes: int = 1, width: int = 10, depth: int = 101,
              output_stride: int = 16, multi_grid: Sequence[int] = (1, 2, 4)) -> StagedNet:
    """DeepLabV3 on a dilated ResNet (``depth`` 50/101, ``output_stride`` 16/8)."""
    return _create_deeplab(in_channels, num_classes, width, False, depth, output_stride,
                           multi_grid)


@register_model("deeplabv3plus", teaching_width=10, paper_width=64, reference=REFERENCE_V3PLUS,
                published_params="",
                published_source="the paper prints no count")
def deeplabv3plus(in_channels: int = 3, num_classes: int = 1, width: int = 10, depth: int = 101,
                  output_stride: int = 16, multi_grid: Sequence[int] = (1, 2, 4)
                  ) -> StagedNet:
    """DeepLabV3+ (DeepLabV3 encoder + low-level decoder) on a dilated ResNet."""
    return _create_deeplab(in_channels, num_classes, width, True, depth, output_stride,
                           multi_grid)
