"""Adjust necks of SiamRPN++ (pysot `models/neck/neck.py`).

AdjustLayer: 1x1 conv (no bias) + BN to `out_ch` channels; template-sized
inputs are centre-cropped to `center_crop` x `center_crop` (pysot: a 15x15
template feature map -> [4:11] -> 7x7). Whether an input is template-sized is
decided as pysot does (width < `crop_below`, 20), or explicitly with
`forward(x, crop=True/False)`.

AdjustAllLayer: one AdjustLayer per level, named `downsample{level}` so that
pysot's keys (neck.downsample2/3/4.downsample.{0,1}.*) map one to one. pysot
numbers them by list position + 2, which for its used_layers (2, 3, 4) is the
backbone layer index; here `levels` defaults to that (i + 2) and a model using
backbone layers 3 and 4 passes levels=(3, 4) to keep the names aligned.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn


class AdjustLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int = 256, center_crop: Optional[int] = 7,
                 crop_below: int = 20):
        super().__init__()
        self.downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_ch))
        self.center_crop = center_crop
        self.crop_below = crop_below
        self.out_channels = out_ch

    def forward(self, x: torch.Tensor, crop: Optional[bool] = None) -> torch.Tensor:
        x = self.downsample(x)
        if crop is None:
            crop = x.size(3) < self.crop_below
        if crop and self.center_crop:
            c = self.center_crop
            top = (x.size(2) - c) // 2
            left = (x.size(3) - c) // 2
            x = x[:, :, top:top + c, left:left + c]
        return x


class AdjustAllLayer(nn.Module):
    def __init__(self, in_channels_list: Sequence[int], out_channels_list=256,
                 center_crop: Optional[int] = 7, levels: Optional[Sequence[int]] = None,
                 crop_below: int = 20):
        super().__init__()
        in_channels_list = list(in_channels_list)
        if isinstance(out_channels_list, int):
            out_channels_list = [out_channels_list] * len(in_channels_list)
        out_channels_list = list(out_channels_list)
        if len(out_channels_list) != len(in_channels_list):
            raise ValueError("in_channels_list and out_channels_list differ in length")
        self.levels = list(levels) if levels is not None else [i + 2 for i in range(len(in_channels_list))]
        if len(self.levels) != len(in_channels_list):
            raise ValueError("levels must name one level per input")
        self.num = len(in_channels_list)
        self.out_channels: List[int] = out_channels_list
        for level, cin, cout in zip(self.levels, in_channels_list, out_channels_list):
            self.add_module(f"downsample{level}", AdjustLayer(cin, cout, center_crop, crop_below))

    def forward(self, features: Sequence[torch.Tensor], crop: Optional[bool] = None) -> List[torch.Tensor]:
        if len(features) != self.num:
            raise ValueError(f"expected {self.num} feature maps, got {len(features)}")
        return [getattr(self, f"downsample{level}")(f, crop=crop)
                for level, f in zip(self.levels, features)]
