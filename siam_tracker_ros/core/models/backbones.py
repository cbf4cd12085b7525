"""Backbone choice for the paper models: their originals or NanoTrack v2's MobileNetV3.

The light configurations (config/models/*_light.yaml) keep a paper's attention
modules and heads and swap the backbone for the MobileNetV3-small truncation of
NanoTrack v2 (mobilenetv3.py: stem + 8 blocks, stride 16), so that the NanoTrack v2
backbone weights initialise it (`backbone.features.*`, the same names).

Levels are pysot's ResNet-50 layer indices for every model, full-size and light:
level L is `layerL` (level 2 = layer2 = conv3_x, the paper's "third block";
level 3 = layer3 = conv4_x, "fourth block"; level 4 = layer4 = conv5_x, "fifth").
So Ta-ASiam (third + fourth blocks) uses levels [2, 3], SiamCAN and SiamAF-MSA
(blocks 3-5) [2, 3, 4]; module names (neck.downsample{L}, rpn_head.rpn{L},
head.box{L}) carry the level, as in pysot.

One table maps a level to NanoTrack v2's MobileNetV3 stage of the same rank
(the stages end where the resolution or width changes):

    level 2 (ResNet layer2, conv3_x) -> features[3]: end of the 24-ch stride-8 stage
                                        (features[2:4]), 2x2 average-pooled to stride 16
                                        (SiamRPN++'s ResNet keeps its levels at one map
                                        size by dilation; the pooling does that here)
    level 3 (ResNet layer3, conv4_x) -> features[6]: end of the 40-ch stride-16 stage (features[4:7])
    level 4 (ResNet layer4, conv5_x) -> features[8]: end of the 48-ch stride-16 stage (features[7:9])

features[0] (stem) and features[1] (stride 4) correspond to conv1 / conv2_x.
A 127 px template gives 8x8 features at every level, a 255 px search crop 16x16.
The light SiamCAN / SiamAF-MSA use levels [3, 4] (the two deeper of their three:
config/models/*_light.yaml), the light Ta-ASiam the paper's [2, 3].
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

from torch import nn

from .mobilenetv3 import SMALL_BLOCKS, MobileNetV3

# Level -> index into MobileNetV3.features of the block ending that level's stage.
MOBILENET_LEVELS: Dict[int, int] = {2: 3, 3: 6, 4: 8}
# Level -> (first, last) index of that stage's blocks in MobileNetV3.features.
MOBILENET_STAGES: Dict[int, Tuple[int, int]] = {2: (2, 3), 3: (4, 6), 4: (7, 8)}
BACKBONES = ("resnet50", "mobilenetv3")


def mobilenetv3_levels(levels: Sequence[int]) -> MobileNetV3:
    """NanoTrack v2's MobileNetV3-small returning the features of `levels` (a list)."""
    levels = [int(l) for l in levels]
    unknown = [l for l in levels if l not in MOBILENET_LEVELS]
    if unknown:
        raise ValueError(f"the MobileNetV3 backbone has levels {sorted(MOBILENET_LEVELS)}, "
                         f"not {unknown}; see core/models/backbones.py")
    idx = [MOBILENET_LEVELS[l] for l in levels]
    # features[0] is the stem, so features[:i + 1] holds i blocks.
    return MobileNetV3(SMALL_BLOCKS, width_mult=1.0, num_blocks=max(idx), out_indices=idx,
                       match_stride=True)


def multi_level_backbone(kind: str, levels: Sequence[int]) -> nn.Module:
    """A backbone whose forward(x, detach_between_levels=False) returns one feature
    map per level, with `out_channels` (list) and `stride` attributes."""
    if kind == "resnet50":
        from .resnet import ResNet50
        return ResNet50(used_layers=levels)
    if kind == "mobilenetv3":
        return mobilenetv3_levels(levels)
    raise ValueError(f"unknown backbone '{kind}'; one of {BACKBONES}")


def level_stage(backbone: nn.Module, level: int) -> nn.Module:
    """The backbone blocks that belong to one level only (the paper's "block"):
    ResNet `layerL`, or the MobileNetV3 stage of MOBILENET_STAGES."""
    if hasattr(backbone, f"layer{level}"):
        return getattr(backbone, f"layer{level}")
    first, last = MOBILENET_STAGES[level]
    return nn.Sequential(*backbone.features[first:last + 1])
