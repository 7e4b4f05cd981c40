"""CGNet (Wu, Tang, Zhang, Cao and Zhang, IEEE TIP 30, 2021 (online 2020), arXiv:1811.08201).

The lightest network of the ten (0.5 M parameters at paper width). Its unit is the
*context guided (CG) block*, which learns a joint feature of

* the **local** feature ``f_loc`` (3x3 channel-wise conv),
* the **surrounding** context ``f_sur`` (3x3 channel-wise conv, dilated 2 or 4),
* the **joint** feature (their concatenation, BN + PReLU),
* the **global** context ``f_glo`` (global average pooling and two FC layers giving
  channel weights that re-scale the joint feature),

with a global residual connection (the down-sampling variant has none). CGNet-M3N21:
stage 1 is three 3x3 convs (the first with stride 2, 32 channels at paper width); stage
2 a down-sampling CG block and 2 CG blocks (64 channels, dilation 2, reduction 8);
stage 3 a down-sampling CG block and 20 CG blocks (128, dilation 4, reduction 16). The
output at 1/8 is classified by a 1x1 conv and upsampled bilinearly.

**Input injection.** The image, average-pooled to 1/2 and 1/4, is concatenated to the
outputs of stages 1 and 2. Those pooled copies are raw image data: here they are their
own parameter-free stages (``pool1``, ``pool2``), so :class:`~medseg_kit.split.Split`
sees them and refuses a cut that sends one to the server. The first cut that keeps all
raw data on the site has stages 1 and 2 there — which is also the default cut.

``width`` is stage 1's channel count (32 in the paper; stages 2 and 3 have 2x and 4x).
The classifier's dropout is omitted (deterministic training). Published count: 0.5 M
for CGNet_M3N21 in the paper; the kit's paper-width count is 0.49 M.

Stage table::

    pool1(x)->img2  pool2(img2)->img4  stage1(x,img2)  stage2(stage1,img4)
    stage3_down(stage2)  stage3(stage3_down)  head(stage3)->logits

Default cut ``(4, 6)``: injection stages and stages 1-2 on the site, stage 3 (21 of the
23 CG blocks) on the server, the classifier and upsampling back on the site.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .staged import OUTPUT, Lambda, Stage, StagedNet


class BNPReLU(nn.Sequential):
    def __init__(self, c: int):
        super().__init__(nn.BatchNorm2d(c), nn.PReLU(c))


class ConvBNPReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         BNPReLU(cout))


class GlobalContext(nn.Module):
    """``f_glo``: channel weights from global average pooling and two FC layers."""

    def __init__(self, c: int, reduction: int):
        super().__init__()
        hidden = max(1, c // reduction)
        self.fc = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, c),
                                nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3)))
        return x * w[:, :, None, None]


class CGBlock(nn.Module):
    """Context guided block; ``down=True`` is the stride-2 variant without residual."""

    def __init__(self, cin: int, cout: int, dilation: int, reduction: int, down: bool = False):
        super().__init__()
        self.down = down
        mid = cout if down else max(1, cout // 2)
        self.reduce = (ConvBNPReLU(cin, mid, 3, stride=2) if down
                       else ConvBNPReLU(cin, mid, 1))
        self.f_loc = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.f_sur = nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation, groups=mid,
                               bias=False)
        self.joint = BNPReLU(2 * mid)
        self.fuse = nn.Conv2d(2 * mid, cout, 1, bias=False) if down else None
        self.f_glo = GlobalContext(cout, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        y = self.joint(torch.cat([self.f_loc(y), self.f_sur(y)], dim=1))
        if self.fuse is not None:
            y = self.fuse(y)
        y = self.f_glo(y)
        return y if self.down else x + y


class Stage1(nn.Module):
    """Three 3x3 convs (first stride 2), then the 1/2 image is concatenated."""

    def __init__(self, cin: int, c: int):
        super().__init__()
        self.convs = nn.Sequential(ConvBNPReLU(cin, c, 3, 2), ConvBNPReLU(c, c),
                                   ConvBNPReLU(c, c))
        self.bn = BNPReLU(c + cin)

    def forward(self, x: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.cat([self.convs(x), img2], dim=1))


class CGStage(nn.Module):
    """A down-sampling CG block, ``n`` CG blocks, and the stage's concatenation.

    The stage output concatenates the down block's output, the last block's output and
    (stage 2) the injected image.
    """

    def __init__(self, cin: int, c: int, n: int, dilation: int, reduction: int,
                 inject: int = 0, with_down: bool = True):
        super().__init__()
        self.first = CGBlock(cin, c, dilation, reduction, down=True) if with_down else None
        self.blocks = nn.Sequential(*[CGBlock(c, c, dilation, reduction) for _ in range(n)])
        self.bn = BNPReLU(2 * c + inject)

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        d = self.first(x) if self.first is not None else x
        return self.bn(torch.cat([d, self.blocks(d), *extra], dim=1))


class CGHead(nn.Module):
    def __init__(self, cin: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.classifier(x), scale_factor=8, mode="bilinear",
                             align_corners=False)


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=2, padding=1)


def _create_cgnet(in_channels: int, num_classes: int, width: int, m: int = 3, n: int = 21
                  ) -> StagedNet:
    c1, c2, c3 = width, 2 * width, 4 * width
    stages = [
        Stage("pool1", Lambda(_avg_pool, "avg_pool 3x3/2"), "x", "img2"),
        Stage("pool2", Lambda(_avg_pool, "avg_pool 3x3/2"), "img2", "img4"),
        Stage("stage1", Stage1(in_channels, c1), ("x", "img2")),
        Stage("stage2", CGStage(c1 + in_channels, c2, m - 1, 2, 8, inject=in_channels),
              ("stage1", "img4")),
        Stage("stage3_down", CGBlock(2 * c2 + in_channels, c3, 4, 16, down=True), "stage2"),
        Stage("stage3", CGStage(c3, c3, n - 1, 4, 16, with_down=False), "stage3_down"),
        Stage("head", CGHead(2 * c3, num_classes), "stage3", OUTPUT),
    ]
    return StagedNet(stages, in_channels=in_channels, num_classes=num_classes,
                     size_multiple=8, min_size=8, default_cut=(4, 6))


@register_model("cgnet", teaching_width=12, paper_width=32,
                reference="Wu et al., IEEE TIP 2021, CGNet, arXiv:1811.08201",
                published_params="0.5M",
                published_source="the paper's count for CGNet_M3N21")
def cgnet(in_channels: int = 3, num_classes: int = 1, width: int = 12) -> StagedNet:
    """CGNet-M3N21 (``width`` 32 in the paper)."""
    return _create_cgnet(in_channels, num_classes, width)
