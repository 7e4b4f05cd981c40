"""RefineNet (Lin, Milan, Shen and Reid, CVPR 2017, arXiv:1611.06612).

Multi-path refinement over a ResNet (the kit's :mod:`.resnet`, ResNet-101 by default as
in the paper, trained from scratch). The four ResNet layers (1/4 ... 1/32) feed a chain
of four RefineNet blocks, coarse to fine; RefineNet-4 takes ``layer4`` alone, and each
finer block takes its ResNet layer and the previous block's output. A block has:

* **adaptive convolutions** per input path: a 3x3 conv to the block's width (512 for
  RefineNet-4, 256 for the others at paper width) and two residual conv units (RCU:
  ReLU-conv3x3-ReLU-conv3x3 plus identity);
* **multi-resolution fusion**: a 3x3 conv per path to the smallest width, bilinear
  upsampling to the finest path, summation (skipped when there is one path);
* **chained residual pooling**: ReLU, then a chain of two {5x5 max-pool stride 1, 3x3
  conv} blocks whose outputs are all added to the input, capturing background context;
* an output RCU.

The head is two RCUs and a 1x1 classifier at 1/4 resolution, then bilinear upsampling x4.
Any multiple of 4 is therefore a valid input side: the ResNet rounds its coarser grids up,
and each block resizes its coarser path to the finer one before summing. As in the paper
there is no BatchNorm inside the refinement blocks (the backbone keeps its own). ``width``
is the backbone's stem width: at 64 the ResNet is the paper's and the blocks are 512/256
wide. The registered published count, 118 M, is RefineNet-101 as reported by Nekrasov et
al. (Light-Weight RefineNet, BMVC 2018); the original paper reports none. The kit's
paper-width count is 113 M.

Stage table::

    stem(x) layer1 layer2 layer3 layer4  refine4(layer4) refine3(layer3,refine4)
    refine2(layer2,refine3) refine1(layer1,refine2) head(refine1)->logits

Default cut ``(1, 9)``: the stem on the site, the backbone and refinement on the server,
the head (RCUs, classifier, upsampling) and the loss back on the site.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .resnet import resnet_stages
from .staged import OUTPUT, Stage, StagedNet


def conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


class RCU(nn.Module):
    """Residual conv unit: ``x + conv(relu(conv(relu(x))))`` (no BatchNorm)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.conv2 = conv3x3(c, c), conv3x3(c, c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class ChainedResidualPooling(nn.Module):
    """``relu(x)`` plus a chain of {5x5 max-pool, 3x3 conv} blocks, every link summed."""

    def __init__(self, c: int, n_blocks: int = 2):
        super().__init__()
        self.convs = nn.ModuleList([conv3x3(c, c, bias=False) for _ in range(n_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        out, path = x, x
        for conv in self.convs:
            path = conv(F.max_pool2d(path, 5, stride=1, padding=2))
            out = out + path
        return out


class RefineBlock(nn.Module):
    """One RefineNet block over ``len(cins)`` input paths, finest path first."""

    def __init__(self, cins: Sequence[int], widths: Sequence[int]):
        super().__init__()
        self.paths = nn.ModuleList(
            nn.Sequential(conv3x3(cin, w), RCU(w), RCU(w)) for cin, w in zip(cins, widths))
        cout = min(widths)
        self.fuse = None
        if len(cins) > 1:
            self.fuse = nn.ModuleList(conv3x3(w, cout) for w in widths)
        self.crp = ChainedResidualPooling(cout)
        self.out = RCU(cout)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        feats = [p(x) for p, x in zip(self.paths, xs)]
        if self.fuse is None:
            y = feats[0]
        else:
            size = feats[0].shape[-2:]
            y = self.fuse[0](feats[0])
            for conv, f in zip(self.fuse[1:], feats[1:]):
                y = y + F.interpolate(conv(f), size=size, mode="bilinear", align_corners=False)
        return self.out(self.crp(y))


class RefineHead(nn.Module):
    """Two RCUs, a 1x1 classifier and bilinear upsampling x4."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.rcus = nn.Sequential(RCU(c), RCU(c))
        self.classifier = nn.Conv2d(c, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.classifier(F.relu(self.rcus(x))), scale_factor=4,
                             mode="bilinear", align_corners=False)


def _create_refinenet(in_channels: int, num_classes: int, width: int, depth: int
                      ) -> StagedNet:
    backbone, ch = resnet_stages(in_channels, width, depth, output_stride=32)
    wide, narrow = 8 * width, 4 * width  # 512 and 256 at width 64
    stages = [Stage(name, module, "x" if i == 0 else backbone[i - 1][0])
              for i, (name, module) in enumerate(backbone)]
    stages += [
        Stage("refine4", RefineBlock([ch["layer4"]], [wide]), "layer4"),
        Stage("refine3", RefineBlock([ch["layer3"], wide], [narrow, wide]),
              ("layer3", "refine4")),
        Stage("refine2", RefineBlock([ch["layer2"], narrow], [narrow, narrow]),
              ("layer2", "refine3")),
        Stage("refine1", RefineBlock([ch["layer1"], narrow], [narrow, narrow]),
              ("layer1", "refine2")),
        Stage("head", RefineHead(narrow, num_classes), "refine1", OUTPUT),
    ]
    return StagedNet(stages, in_channels=in_channels, num_classes=num_classes,
                     size_multiple=4, min_size=4, default_cut=(1, 9))


@register_model("refinenet", teaching_width=4, paper_width=64,
                reference="Lin et al., CVPR 2017, arXiv:1611.06612", published_params="118M",
                published_source="RefineNet-101 as counted by Nekrasov et al. (Light-Weight "
                                  "RefineNet, BMVC 2018); the original paper prints none")
def refinenet(in_channels: int = 3, num_classes: int = 1, width: int = 4,
              depth: int = 101) -> StagedNet:
    """RefineNet over a ResNet-``depth`` (101 as in the paper, or 50)."""
    return _create_refinenet(in_channels, num_classes, width, depth)
