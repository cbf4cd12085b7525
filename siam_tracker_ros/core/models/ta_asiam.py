"""Ta-ASiam: two-stage aware attentional Siamese network (Pattern Recognition 2021).

Architecture (paper Sec. 3.1-3.3, Fig. 1):
- backbone: SiamRPN++'s ResNet-50 with its fifth block removed (Sec. 3.1:
  "remove the last residual block, i.e. the fifth block"; the fourth block gets
  stride 1 and dilation). ResNet's five blocks are conv1, conv2_x ... conv5_x,
  i.e. pysot's conv1, layer1, layer2, layer3, layer4; features come from the
  third and fourth blocks = pysot layer2 (512 ch) and layer3 (1024 ch, dilated),
  levels [2, 3] (the same block counting as SiamCAN's and SiamAF-MSA's
  "layers 3-5" = pysot layer2/3/4). The first two blocks (conv1, layer1) are
  always frozen in training (Sec. 5.1).
- neck: 1x1 conv + BN to 256 channels per layer; the template is
  centre-cropped to 7x7 (127 px template -> 15x15 -> 7x7).
- attention, one set per layer:
    channel attention C(z) (Eq. 2) computed from the template features and
    applied to the template AND to the search features (Eq. 3);
    spatial attention P(x) (Eq. 4) computed from the search features f(x) and
    applied to C(z)*f(x) (Eq. 5):  S = D(C(z).f(z), P(x) x (C(z).f(x))).
- head: SiamRPN++'s depthwise-xcorr RPN per layer (cls 2A, loc 4A channels,
  A anchors), fused with trainable weights (Eq. 6):
    C_all = sum_l alpha_l C_l,  P_all = sum_l beta_l P_l,
  alpha = softmax(cls_weight), beta = softmax(loc_weight) (SiamRPN++'s
  weighted MultiRPN; the paper says "trainable aggregation weights").

Model contract (as the other models): template(z) -> state, track(state, x)
-> {"cls": Bx2AxHxW, "loc": Bx4AxHxW}. Channel layout as pysot: cls channel
c*A + a (c = 0 background, 1 target), loc channel k*A + a (k = dx, dy, dw, dh).
`track(state, x, return_branches=True)` adds "branches": one dict per layer
{"level", "cls", "loc"} (unfused, for the per-branch losses of two-stage aware
training) and "fusion": {"cls": alpha, "loc": beta}.
`set_branch_isolation(True)` (train/actors.py, two_stage): the backbone detaches
each level's input from the level below, so a loss on the deep branch trains
the deep block only (paper Sec. 4: position-aware samples train the third
block's branch, appearance-aware samples the fourth block's).
Inputs are BGR float 0..255 without normalisation (pysot's convention, so that
SiamRPN++ weights load; see loaders_pysot.py).

Parameter names follow pysot where the part exists there (backbone.*,
neck.downsample{2,3}.*, rpn_head.rpn{2,3}.*, rpn_head.cls_weight/loc_weight):
loaders_pysot.py maps a SiamRPN++ r50-l234 checkpoint's layer2 and layer3 parts.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .cbam import ChannelAttention, SpatialAttention
from .necks import AdjustAllLayer
from .backbones import level_stage, multi_level_backbone
from .registry import register_model


def xcorr_depthwise(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel cross-correlation of each search map with its kernel.

    search BxCxHxW, kernel BxCxhxw (or 1xCxhxw, shared by every search crop).
    """
    b, c, h, w = search.shape
    if kernel.shape[0] == 1 and b > 1:
        kernel = kernel.expand(b, -1, -1, -1)
    if kernel.shape[0] != b or kernel.shape[1] != c:
        raise ValueError(f"kernel {tuple(kernel.shape)} does not match search {tuple(search.shape)}")
    out = F.conv2d(search.reshape(1, b * c, h, w),
                   kernel.reshape(b * c, 1, kernel.shape[2], kernel.shape[3]), groups=b * c)
    return out.reshape(b, c, out.shape[2], out.shape[3])


class DepthwiseXCorr(nn.Module):
    """pysot's DepthwiseXCorr: 3x3 conv-BN-ReLU on both inputs, depthwise xcorr,
    then 1x1 conv-BN-ReLU and a 1x1 conv to `out_channels`."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv_kernel = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=kernel_size, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.conv_search = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=kernel_size, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, kernel_size=1))

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.head(xcorr_depthwise(self.conv_search(search), self.conv_kernel(kernel)))


class DepthwiseRPN(nn.Module):
    def __init__(self, anchor_num: int = 5, in_channels: int = 256, out_channels: int = 256):
        super().__init__()
        self.cls = DepthwiseXCorr(in_channels, out_channels, 2 * anchor_num)
        self.loc = DepthwiseXCorr(in_channels, out_channels, 4 * anchor_num)

    def forward(self, z_f: torch.Tensor, x_f: torch.Tensor):
        return self.cls(z_f, x_f), self.loc(z_f, x_f)


class MultiRPN(nn.Module):
    """One DepthwiseRPN per level (named rpn{level}) and the fusion weights."""

    def __init__(self, anchor_num: int, in_channels: Sequence[int], levels: Sequence[int],
                 weighted: bool = True):
        super().__init__()
        self.levels = list(levels)
        self.weighted = weighted
        for level, ch in zip(self.levels, in_channels):
            self.add_module(f"rpn{level}", DepthwiseRPN(anchor_num, ch, ch))
        if weighted:
            self.cls_weight = nn.Parameter(torch.ones(len(self.levels)))
            self.loc_weight = nn.Parameter(torch.ones(len(self.levels)))

    def fusion_weights(self):
        n = len(self.levels)
        if not self.weighted:
            w = torch.full((n,), 1.0 / n)
            return w, w
        return F.softmax(self.cls_weight, 0), F.softmax(self.loc_weight, 0)

    def forward(self, z_fs: Sequence[torch.Tensor], x_fs: Sequence[torch.Tensor]):
        branches = [getattr(self, f"rpn{level}")(z, x) for level, z, x in zip(self.levels, z_fs, x_fs)]
        alpha, beta = self.fusion_weights()
        alpha = alpha.to(branches[0][0].dtype)
        beta = beta.to(branches[0][1].dtype)
        cls = sum(a * c for a, (c, _) in zip(alpha, branches))
        loc = sum(b * l for b, (_, l) in zip(beta, branches))
        return cls, loc, branches, (alpha, beta)


class TaASiam(nn.Module):
    stride = 8
    exemplar_size = 127
    instance_size = 255

    def __init__(self, levels: Sequence[int] = (2, 3), channels: int = 256, anchor_num: int = 5,
                 reduction: int = 16, spatial_kernel: int = 7, spatial_mode: str = "paper",
                 weighted: bool = True, center_crop: int = 7, channel_attention: bool = True,
                 spatial_attention: bool = True, backbone: str = "resnet50"):
        super().__init__()
        self.levels = [int(l) for l in levels]
        self.anchor_num = int(anchor_num)
        # backbone "mobilenetv3": the light configuration (backbones.py: levels 2/3 ->
        # MobileNetV3 features[3] pooled / features[6], stride 16; center_crop null: 8x8 templates).
        self.backbone = multi_level_backbone(backbone, self.levels)
        self.isolate_branches = False
        self.stride = self.backbone.stride
        self.neck = AdjustAllLayer(self.backbone.out_channels, channels, center_crop=center_crop,
                                   levels=self.levels)
        # Ablation switches (the paper's Ta+None / Ta+CAN / Ta+SAN rows).
        self.use_channel_attention = bool(channel_attention)
        self.use_spatial_attention = bool(spatial_attention)
        self.channel_attention = nn.ModuleDict(
            {str(l): ChannelAttention(channels, reduction) for l in self.levels})
        self.spatial_attention = nn.ModuleDict(
            {str(l): SpatialAttention(spatial_kernel, spatial_mode) for l in self.levels})
        self.rpn_head = MultiRPN(anchor_num, [channels] * len(self.levels), self.levels, weighted)

    def set_branch_isolation(self, on: bool = True) -> None:
        """Two-stage aware training: detach each level's backbone input from the
        level below (forward values unchanged)."""
        self.isolate_branches = bool(on)

    def _backbone(self, img: torch.Tensor) -> List[torch.Tensor]:
        if self.isolate_branches:
            return self.backbone(img, detach_between_levels=True)
        return self.backbone(img)

    # -- the contract ---------------------------------------------------------------
    def template(self, z: torch.Tensor) -> Dict[str, List[torch.Tensor]]:
        """Template state: channel-attended template features and the weights C(z)."""
        zf = self.neck(self._backbone(z), crop=True)
        features, weights = [], []
        for level, f in zip(self.levels, zf):
            if self.use_channel_attention:
                c = self.channel_attention[str(level)](f)
                f = c * f
            else:
                c = None
            features.append(f)
            weights.append(c)
        return {"features": features, "channel_weights": weights}

    def track(self, state: Dict[str, List[torch.Tensor]], x: torch.Tensor,
              return_branches: bool = False) -> Dict[str, torch.Tensor]:
        xf = self.neck(self._backbone(x), crop=False)
        attended = []
        for level, f, c in zip(self.levels, xf, state["channel_weights"]):
            g = f if c is None else c * f
            if self.use_spatial_attention:
                g = self.spatial_attention[str(level)](f) * g   # P(x) from f(x), Eq. (4)/(5)
            attended.append(g)
        cls, loc, branches, (alpha, beta) = self.rpn_head(state["features"], attended)
        out = {"cls": cls, "loc": loc}
        if return_branches:
            out["branches"] = [{"level": level, "cls": c, "loc": l}
                               for level, (c, l) in zip(self.levels, branches)]
            out["fusion"] = {"cls": alpha, "loc": beta}
        return out

    def forward(self, z: torch.Tensor, x: torch.Tensor, return_branches: bool = False):
        return self.track(self.template(z), x, return_branches=return_branches)

    # -- helpers for two-stage aware training --------------------------------------
    def branch_modules(self, level: int) -> Dict[str, nn.Module]:
        """The modules of one branch (paper Sec. 4: the third block's parts are
        trained with the position-aware samples, the fourth block's with the
        appearance-aware ones): that level's backbone stage, neck, attention, RPN."""
        if level not in self.levels:
            raise ValueError(f"level {level} not in {self.levels}")
        return {"backbone": level_stage(self.backbone, level),
                "neck": getattr(self.neck, f"downsample{level}"),
                "channel_attention": self.channel_attention[str(level)],
                "spatial_attention": self.spatial_attention[str(level)],
                "rpn": getattr(self.rpn_head, f"rpn{level}")}

    @torch.no_grad()
    def init_attention_neutral(self, logit: float = 10.0) -> None:
        """Every attention gate = sigmoid(logit) whatever the input (see cbam.py)."""
        for m in list(self.channel_attention.values()) + list(self.spatial_attention.values()):
            m.init_neutral(logit)


@register_model("ta_asiam")
def build_ta_asiam(**kwargs) -> TaASiam:
    return TaASiam(**kwargs)
