"""Correlation helpers and anchor-free (SiamBAN-style) cls/reg heads.

Module and parameter names follow SiamBAN (hqucv/siamban, models/head/ban.py)
so that its checkpoints map key for key (see loaders_siamban.py):

    head.box{L}.cls / head.box{L}.loc      DepthwiseXCorrBranch, one per level L
        .conv_kernel.{0,1}   3x3 conv (no bias) + BN (+ReLU) on the template
        .conv_search.{0,1}   3x3 conv (no bias) + BN (+ReLU) on the search
        .head.{0,1,3}        1x1 conv (no bias) + BN + ReLU + 1x1 conv -> out
    head.cls_weight, head.loc_weight       learned per-level fusion weights (softmax-normalised)
    head.loc_scale                         per-level scale inside exp(): loc = exp(scale * raw)

Outputs follow the anchor-free tracker contract: "cls" B x 2 x H x W logits
(channel 1 = target, as SiamBAN's tracker reads softmax(.)[:, 1]) and "loc"
B x 4 x H x W positive distances (l, t, r, b) in search-crop pixels from each
score-map point to the box sides. With 127/255 crops and stride 8 the maps are
25 x 25, point (i, j) at ((j - 12) * 8, (i - 12) * 8) px from the crop centre.
"""
from __future__ import annotations

import math

from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def xcorr_depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise cross-correlation: each channel of `x` with the same channel of `kernel`.

    x: B x C x H x W, kernel: B x C x h x w (or 1 x C x h x w, shared by the batch)
    -> B x C x (H - h + 1) x (W - w + 1).
    """
    b, c = x.shape[:2]
    if kernel.shape[0] == 1 and b > 1:
        kernel = kernel.expand(b, -1, -1, -1)
    if kernel.shape[:2] != (b, c):
        raise ValueError(f"xcorr_depthwise: kernel {tuple(kernel.shape)} vs search {tuple(x.shape)}")
    out = F.conv2d(x.reshape(1, b * c, *x.shape[2:]),
                   kernel.reshape(b * c, 1, *kernel.shape[2:]), groups=b * c)
    return out.reshape(b, c, *out.shape[2:])


def conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DepthwiseXCorrBranch(nn.Module):
    """One cls or reg branch: towers, depthwise xcorr, optional map attention, 1x1 head.

    `kernel(z)` is the template half (computed once per target), `forward(kz, x)`
    the per-frame half. `attention` (e.g. SiamCAN's self-spatial attention) acts
    on the correlation map before the head.
    """

    def __init__(self, in_channels: int = 256, hidden: int = 256, out_channels: int = 2,
                 kernel_size: int = 3, attention: Optional[nn.Module] = None):
        super().__init__()
        self.conv_kernel = conv_bn_relu(in_channels, hidden, kernel_size)
        self.conv_search = conv_bn_relu(in_channels, hidden, kernel_size)
        if attention is not None:
            self.spatial = attention
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1))

    def kernel(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv_kernel(z)

    def correlate(self, kz: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        f = xcorr_depthwise(self.conv_search(x), kz)
        if hasattr(self, "spatial"):
            f = self.spatial(f)
        return f

    def forward(self, kz: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.correlate(kz, x))


class AnchorFreeBox(nn.Module):
    """cls (2) and loc (4) branches of one level (SiamBAN's DepthwiseBAN)."""

    def __init__(self, in_channels: int = 256, hidden: int = 256, cls_out_channels: int = 2,
                 attention_factory: Optional[Callable[[], nn.Module]] = None):
        super().__init__()
        make = attention_factory or (lambda: None)
        self.cls = DepthwiseXCorrBranch(in_channels, hidden, cls_out_channels, attention=make())
        self.loc = DepthwiseXCorrBranch(in_channels, hidden, 4, attention=make())

    def kernels(self, z: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"cls": self.cls.kernel(z), "loc": self.loc.kernel(z)}

    def forward(self, kernels: Dict[str, torch.Tensor], x: torch.Tensor):
        return self.cls(kernels["cls"], x), self.loc(kernels["loc"], x)


class MultiLevelAnchorFreeHead(nn.Module):
    """One AnchorFreeBox per level, fused with learned weights (SiamBAN's MultiBAN, weighted).

    cls = sum_l softmax(cls_weight)_l * cls_l
    loc = sum_l softmax(loc_weight)_l * exp(loc_scale_l * loc_l)
    With share_weights=True one vector `fusion_weight` weighs both (SiamCAN Eq. 8/9
    write a single alpha_l for cls and reg).
    The exponent is clamped to +-max_log_distance (exp(10) ~ 22000 px, far beyond
    any crop; exp(-10) ~ 5e-5 px) so that untrained models give finite, positive
    distances; SiamBAN has no clamp, and trained values never reach it.

    loc_init_distance (px, default None = PyTorch's init): the bias of each
    level's last loc conv starts at log(d), so an untrained head predicts boxes
    of about 2d x 2d instead of ~2 x 2 px. With 1 - IoU (SiamAF-MSA's loss) the
    gradient on a 2-px box inside a 60-px target is ~1e-3 of its value at a
    plausible size, and regression would hardly start; the papers give no head
    init, so this is a choice, not theirs.
    """

    max_log_distance = 10.0

    def __init__(self, in_channels: Sequence[int] = (256, 256, 256), levels: Optional[Sequence[int]] = None,
                 cls_out_channels: int = 2, share_weights: bool = False,
                 attention_factory: Optional[Callable[[], nn.Module]] = None,
                 loc_init_distance: Optional[float] = None):
        super().__init__()
        in_channels = list(in_channels)
        self.levels = list(levels) if levels is not None else [i + 2 for i in range(len(in_channels))]
        if len(self.levels) != len(in_channels):
            raise ValueError("levels must name one level per input")
        for level, c in zip(self.levels, in_channels):
            self.add_module(f"box{level}", AnchorFreeBox(c, c, cls_out_channels, attention_factory))
        n = len(in_channels)
        self.share_weights = share_weights
        if share_weights:
            self.fusion_weight = nn.Parameter(torch.ones(n))
        else:
            self.cls_weight = nn.Parameter(torch.ones(n))
            self.loc_weight = nn.Parameter(torch.ones(n))
        self.loc_scale = nn.Parameter(torch.ones(n))
        if loc_init_distance:
            for box in self.boxes():
                nn.init.constant_(box.loc.head[-1].bias, math.log(float(loc_init_distance)))

    def boxes(self) -> List[AnchorFreeBox]:
        return [getattr(self, f"box{level}") for level in self.levels]

    def fusion_weights(self):
        if self.share_weights:
            w = F.softmax(self.fusion_weight, 0)
            return w, w
        return F.softmax(self.cls_weight, 0), F.softmax(self.loc_weight, 0)

    def kernels(self, zs: Sequence[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:
        return [box.kernels(z) for box, z in zip(self.boxes(), zs)]

    def forward(self, kernels: Sequence[Dict[str, torch.Tensor]], xs: Sequence[torch.Tensor]):
        cls_w, loc_w = self.fusion_weights()
        cls = loc = 0
        for i, (box, k, x) in enumerate(zip(self.boxes(), kernels, xs)):
            c, raw = box(k, x)
            cls = cls + cls_w[i] * c
            log_d = torch.clamp(raw * self.loc_scale[i], -self.max_log_distance, self.max_log_distance)
            loc = loc + loc_w[i] * torch.exp(log_d)
        return cls, loc
