"""NanoTrack v2: MobileNetV3-small features, pixel-wise correlation, depthwise BAN head.

Architecture (read off the published nanotrackv2.pth and its ONNX export):

    backbone   MobileNetV3-small stem + 8 blocks (mobilenetv3.py): stride 16,
               48 channels; exemplar 127 px -> 8x8, search 255 px -> 16x16.
    head       two branches (cls, reg), each:
      corr_*   PixelwiseXCorr: 1x1 conv + BN on the template features and on
               the search features (48 ch each, no activation), then the
               pixel-wise correlation: for every one of the 8x8 = 64 template
               positions, the dot product of its 48-d feature with each search
               position -> 64 x 16 x 16; then channel attention on those 64
               channels (GAP -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid, scale).
               These 64 correlation channels are the "64-channel" stage of
               NanoTrack v2 (the config's in/out_channels: 64).
      tower    6 x [3x3 depthwise conv, 1x1 conv, BN, ReLU6], 64 -> 96 -> ... 96
               channels, padding 1 (the 16x16 map size is kept).
      pred     1x1 conv: cls -> 2 logits, reg -> 4, then exp() for reg.

The checkpoint also holds a `neck.downsample` (1x1 conv 64->64 + BN) that
NanoTrack v2 builds but never applies (its forward and the ONNX export go from
the backbone straight into the head; 64 input channels would not even fit the
48-channel backbone output). It is not part of this module; the loader drops
those keys on purpose (loaders_nanotrack.py).

Contract (shared by the anchor-free models, see tracking/anchor_free.py):
    template(z)     z: Bx3x127x127 float BGR 0..255 -> template state (features)
    track(zf, x)    x: Bx3x255x255 -> {"cls": Bx2xSxS logits (channel 1 = target),
                                       "loc": Bx4xSxS (l, t, r, b) >= 0 in
                                              search-crop pixels}
    S = 16 here; score-map point (i, j) lies ((j - S//2) * 16, (i - S//2) * 16)
    px from the search-crop centre.

Input channel order: the network was trained (pysot pipeline) on BGR crops;
OpenCV's TrackerNano feeds it RGB. `input_order` selects what the network sees
("bgr": as given, "rgb": channels swapped inside the model).
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from .mobilenetv3 import mobilenetv3_small_nanotrack
from .registry import register_model


class ChannelAttention(nn.Module):
    """Squeeze-excitation on the correlation channels (NanoTrack's CA_layer)."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.sigmoid(self.fc2(torch.relu(self.fc1(w))))
        return x * w


def pixelwise_xcorr(zf: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
    """Pixel-wise correlation: Bz x C x h x w with B x C x H x W -> B x (h*w) x H x W.

    Output channel k = template position k (row-major) dotted with every search
    position. A template batch of 1 is shared by all search crops.
    """
    b, c, hs, ws = xf.shape
    kz = zf.flatten(2).transpose(1, 2)             # Bz x hw x C
    if kz.shape[0] == 1 and b > 1:
        kz = kz.expand(b, -1, -1)
    elif kz.shape[0] != b:
        raise ValueError(f"template batch {zf.shape[0]} does not match search batch {b}")
    xs = xf.flatten(2)
    if b > 1 and not torch.is_grad_enabled():
        # Inference: one product per sample, so that a sample's result does not depend
        # on the batch it runs in (several targets batched, core/tracking/multi.py).
        out = torch.cat([torch.bmm(kz[i:i + 1], xs[i:i + 1]) for i in range(b)])
    else:
        out = torch.bmm(kz, xs)                   # B x hw x HW
    return out.reshape(b, kz.shape[1], hs, ws)


class PixelwiseXCorr(nn.Module):
    def __init__(self, channels: int = 48, corr_channels: int = 64):
        super().__init__()
        self.conv_kernel = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.conv_search = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.attention = ChannelAttention(corr_channels)

    def kernel(self, zf: torch.Tensor) -> torch.Tensor:
        return self.conv_kernel(zf)

    def forward(self, kz: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self.attention(pixelwise_xcorr(kz, self.conv_search(xf)))


def depthwise_separable_tower(cin: int, hidden: int, depth: int) -> nn.Sequential:
    layers = []
    for i in range(depth):
        c = cin if i == 0 else hidden
        layers += [nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False),
                   nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
    return nn.Sequential(*layers)


class DepthwiseBANHead(nn.Module):
    def __init__(self, feat_channels: int = 48, corr_channels: int = 64, hidden: int = 96,
                 depth: int = 6):
        super().__init__()
        self.corr_cls = PixelwiseXCorr(feat_channels, corr_channels)
        self.corr_reg = PixelwiseXCorr(feat_channels, corr_channels)
        self.cls_tower = depthwise_separable_tower(corr_channels, hidden, depth)
        self.reg_tower = depthwise_separable_tower(corr_channels, hidden, depth)
        self.cls_pred = nn.Conv2d(hidden, 2, 1)
        self.reg_pred = nn.Conv2d(hidden, 4, 1)

    def kernels(self, zf: torch.Tensor):
        return self.corr_cls.kernel(zf), self.corr_reg.kernel(zf)

    def forward(self, kernels, xf: torch.Tensor) -> Dict[str, torch.Tensor]:
        k_cls, k_reg = kernels
        cls = self.cls_pred(self.cls_tower(self.corr_cls(k_cls, xf)))
        loc = torch.exp(self.reg_pred(self.reg_tower(self.corr_reg(k_reg, xf))))
        return {"cls": cls, "loc": loc}


def feature_size(image_size: int, stride: int) -> int:
    n = image_size
    while stride > 1:
        n = (n + 1) // 2
        stride //= 2
    return n


class NanoTrack(nn.Module):
    stride = 16
    exemplar_size = 127
    instance_size = 255
    cls_out_channels = 2
    output_type = "anchor_free"

    def __init__(self, input_order: str = "bgr", template_size: int = 8, hidden: int = 96,
                 tower_depth: int = 6):
        super().__init__()
        if input_order not in ("bgr", "rgb"):
            raise ValueError(f"input_order must be 'bgr' or 'rgb', got {input_order!r}")
        self.input_order = input_order
        self.backbone = mobilenetv3_small_nanotrack()
        self.head = DepthwiseBANHead(self.backbone.out_channels, template_size * template_size,
                                     hidden, tower_depth)
        # Every stride-2 layer pads to ceil(n / 2); the towers keep the search
        # feature size: 255 -> 16 (= (255 - 127) // 16 + 1 + 7, pysot's formula).
        self.score_size = feature_size(self.instance_size, self.stride)

    def _features(self, img: torch.Tensor) -> torch.Tensor:
        if self.input_order == "rgb":
            img = img.flip(1)
        return self.backbone(img)

    def template(self, z: torch.Tensor):
        """Template state: the two correlation kernels (computed once per target)."""
        return self.head.kernels(self._features(z))

    def track(self, template_state, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.head(template_state, self._features(x))

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.track(self.template(z), x)


@register_model("nanotrack")
def build_nanotrack(input_order: str = "bgr", **kwargs) -> NanoTrack:
    return NanoTrack(input_order=input_order, **kwargs)
