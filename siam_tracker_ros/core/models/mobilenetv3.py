"""MobileNetV3 (Howard et al. 2019) as the light Siamese trackers use it.

Layout: `features` is an nn.Sequential; `features.0` is the stem (3x3 conv
stride 2, BN, h-swish) and every further entry is an inverted-residual block
whose layers sit in an inner Sequential named `conv`:

    expansion == input channels (first block of -small):
        conv.0 depthwise kxk, conv.1 BN, conv.2 act, conv.3 SE (or Identity),
        conv.4 1x1 projection, conv.5 BN
    otherwise:
        conv.0 1x1 expansion, conv.1 BN, conv.2 act, conv.3 depthwise kxk,
        conv.4 BN, conv.5 SE (or Identity), conv.6 act, conv.7 1x1 projection,
        conv.8 BN

SE: global average pool -> Linear(c, make_divisible(c / 4, 8)) -> ReLU ->
Linear -> h-sigmoid, scaling the channels (`fc.0`, `fc.2`). A block adds its
input when stride is 1 and the channel count is unchanged. These are the names
of the widely used `mobilenetv3.pytorch` layout, which NanoTrack's checkpoints
carry, so its keys map one to one (see loaders_nanotrack.py).

NanoTrack v2 keeps `features[0:9]` of MobileNetV3-small (width 1.0): the stem
and the first eight blocks, total stride 16, 48 output channels. A 127 px
exemplar gives 8x8 features, a 255 px search crop 16x16.

Input: float Bx3xHxW with values 0..255, no normalisation (NanoTrack is
trained that way).

`out_indices` (the light paper models, backbones.py): forward returns the list
of the outputs of those `features` entries instead of the last one, and
`out_channels` is the list of their channel counts. In the NanoTrack v2
truncation the stride-8 stage is features[2:4] (24 ch), the stride-16 stages
are features[4:7] (40 ch) and features[7:9] (48 ch); features[3], [6] and [8]
end them. With `match_stride` an output at stride 8 is 2x2 average-pooled to
stride 16.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, expansion size, out channels, SE, h-swish, stride) per block: MobileNetV3-small.
SMALL_BLOCKS: List[Tuple[int, int, int, bool, bool, int]] = [
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
]


def make_divisible(value: float, divisor: int = 8, min_value: int = None) -> int:
    """Round channels to a multiple of `divisor`, never going below 90% of `value`."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = make_divisible(channels // reduction, 8)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels), nn.Hardsigmoid(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        v = self.avg_pool(x).reshape(b, c)
        if b > 1 and not torch.is_grad_enabled():
            # Inference: one tiny GEMV per sample, so that a sample's result does not
            # depend on the batch it runs in (a batched GEMM sums in another order):
            # several targets batched (core/tracking/multi.py) = each target alone.
            w = torch.cat([self.fc(v[i:i + 1]) for i in range(b)])
        else:
            w = self.fc(v)
        return x * w.reshape(b, c, 1, 1)


def _act(hswish: bool) -> nn.Module:
    return nn.Hardswish(inplace=True) if hswish else nn.ReLU(inplace=True)


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, hidden: int, out: int, kernel: int, stride: int,
                 use_se: bool, use_hs: bool):
        super().__init__()
        self.identity = stride == 1 and inp == out
        pad = (kernel - 1) // 2
        se = SqueezeExcite(hidden) if use_se else nn.Identity()
        if inp == hidden:
            layers = [nn.Conv2d(hidden, hidden, kernel, stride, pad, groups=hidden, bias=False),
                      nn.BatchNorm2d(hidden), _act(use_hs), se,
                      nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        else:
            layers = [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), _act(use_hs),
                      nn.Conv2d(hidden, hidden, kernel, stride, pad, groups=hidden, bias=False),
                      nn.BatchNorm2d(hidden), se, _act(use_hs),
                      nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.identity else y


class MobileNetV3(nn.Module):
    """MobileNetV3 feature extractor, optionally truncated after `num_blocks` blocks."""

    def __init__(self, blocks: Sequence[Tuple[int, int, int, bool, bool, int]] = SMALL_BLOCKS,
                 width_mult: float = 1.0, num_blocks: int = None, stem_channels: int = 16,
                 out_indices: Sequence[int] = None, match_stride: bool = False):
        super().__init__()
        blocks = list(blocks)[:num_blocks] if num_blocks is not None else list(blocks)
        inp = make_divisible(stem_channels * width_mult, 8)
        layers: List[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, inp, 3, 2, 1, bias=False), nn.BatchNorm2d(inp), nn.Hardswish(inplace=True))]
        stride = 2
        channels, strides = [inp], [stride]
        for k, exp, c, se, hs, s in blocks:
            out = make_divisible(c * width_mult, 8)
            hidden = make_divisible(exp * width_mult, 8)
            layers.append(InvertedResidual(inp, hidden, out, k, s, se, hs))
            inp = out
            stride *= s
            channels.append(inp)
            strides.append(stride)
        self.features = nn.Sequential(*layers)
        self.out_indices = None
        self.out_channels = inp
        self.stride = stride
        self._pool: List[int] = []
        if out_indices is not None:
            self.out_indices = [int(i) for i in out_indices]
            if not self.out_indices or any(i < 0 or i >= len(layers) for i in self.out_indices):
                raise ValueError(f"out_indices must lie in 0..{len(layers) - 1}, got {out_indices}")
            self.out_channels = [channels[i] for i in self.out_indices]
            level_strides = [strides[i] for i in self.out_indices]
            self.stride = max(level_strides)
            if len(set(level_strides)) != 1 and not match_stride:
                raise ValueError(f"out_indices {out_indices} mix strides {level_strides} "
                                 "(match_stride=True pools the finer ones to the coarsest)")
            # a finer output is average-pooled to the coarsest stride (parameter-free),
            # so every level has the same map size for the correlation heads
            self._pool = [self.stride // s for s in level_strides]

    def forward(self, x: torch.Tensor, detach_between_levels: bool = False):
        """The last block's features, or the list of `out_indices` features.

        detach_between_levels: the input of the blocks after one output index is
        detached from it, so a loss on a deeper output does not reach the blocks
        of a shallower one (Ta-ASiam's two-stage aware training); values are
        unchanged."""
        if self.out_indices is None:
            return self.features(x)
        outs, last = {}, max(self.out_indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.out_indices:
                outs[i] = x
                if detach_between_levels and i != last:
                    x = x.detach()
            if i == last:
                break
        return [outs[i] if p == 1 else F.avg_pool2d(outs[i], p) for i, p in zip(self.out_indices, self._pool)]


def mobilenetv3_small_nanotrack() -> MobileNetV3:
    """MobileNetV3-small, stem + 8 blocks (NanoTrack v2): stride 16, 48 channels."""
    return MobileNetV3(SMALL_BLOCKS, width_mult=1.0, num_blocks=8)
