"""Backbone choice for the paper models: their originals or NanoTrack v2's MobileNetV3.

The light configurations (config/models/*_light.yaml) keep a paper's attention
modules and heads and swap the backbone for the MobileNetV3-small truncation of
NanoTrack v2 (mobilenetv3.py: stem + 8 blocks, stride 16), so that the NanoTrack v2
backbone weights initialise it (`backbone.features.*`, the same names).

Multi-level papers (Ta-ASiam: ResNet-50 layer3/layer4; SiamCAN and SiamAF-MSA:
layer2/3/4, all at stride 8 through dilation) take the MobileNetV3 stages that
exist at the backbone's final stride 16. Level numbers stay the papers' (pysot's
layer index), so module names (neck.downsample{L}, rpn_head.rpn{L}, head.box{L})
and Ta-ASiam's position (3) / appearance (4) levels keep their meaning:

    level 3 (ResNet layer3, conv4_x)  -> features[6]: end of the 40-ch stride-16 stage
    level 4 (ResNet layer4, conv5_x)  -> features[8]: end of the 48-ch stride-16 stage
    level 2 (ResNet layer2, conv3_x)  -> none: MobileNetV3's stride-8 stage (features[3],
                                         24 ch) has another map size, so the light
                                         SiamCAN / SiamAF-MSA use levels 3 and 4 only.

A 127 px template gives 8x8 features at both levels, a 255 px search crop 16x16.
"""
from __future__ import annotations

from typing import Dict, Sequence

from torch import nn

from .mobilenetv3 import SMALL_BLOCKS, MobileNetV3

# Paper level -> index into MobileNetV3.features (NanoTrack v2 truncation).
MOBILENET_LEVELS: Dict[int, int] = {3: 6, 4: 8}
BACKBONES = ("resnet50", "mobilenetv3")


def mobilenetv3_levels(levels: Sequence[int]) -> MobileNetV3:
    """NanoTrack v2's MobileNetV3-small returning the features of `levels` (a list)."""
    levels = [int(l) for l in levels]
    unknown = [l for l in levels if l not in MOBILENET_LEVELS]
    if unknown:
        raise ValueError(f"the MobileNetV3 backbone has levels {sorted(MOBILENET_LEVELS)} "
                         f"(stride 16), not {unknown}; see core/models/backbones.py")
    idx = [MOBILENET_LEVELS[l] for l in levels]
    # features[0] is the stem, so features[:i + 1] holds i blocks.
    return MobileNetV3(SMALL_BLOCKS, width_mult=1.0, num_blocks=max(idx), out_indices=idx)


def multi_level_backbone(kind: str, levels: Sequence[int]) -> nn.Module:
    """A backbone whose forward returns one feature map per level, with
    `out_channels` (list) and `stride` attributes."""
    if kind == "resnet50":
        from .resnet import ResNet50
        return ResNet50(used_layers=levels)
    if kind == "mobilenetv3":
        return mobilenetv3_levels(levels)
    raise ValueError(f"unknown backbone '{kind}'; one of {BACKBONES}")
