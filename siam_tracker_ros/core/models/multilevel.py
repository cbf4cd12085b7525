"""The multi-level anchor-free skeleton SiamCAN and SiamAF-MSA share (SiamBAN's layout).

- backbone: features of several levels (`used_layers`; the dilated ResNet-50 of
  SiamRPN++ at stride 8, or the light MobileNetV3 at stride 16, backbones.py);
- neck: 1x1 conv + BN to `neck_channels` per level, the template centre-cropped
  (`template_crop`, 7x7 at stride 8);
- per level an anchor-free head (3x3 towers, depthwise correlation, 1x1 convs to
  2 / 4) and their learned fusion (heads.MultiLevelAnchorFreeHead).

A subclass builds `self.head` and adds its attention: by overriding `features`
(per-level features of either branch) or `template` / `track`.

Model API (stateless module; the tracker keeps the template state):
    state = model.template(z)     z: B x 3 x 127 x 127 float BGR 0..255
    out = model.track(state, x)   x: B x 3 x 255 x 255 (state batch 1 is shared)
    out = {"cls": B x 2 x S x S logits (channel 1 = target), "loc": B x 4 x S x S px}
    model(z, x) == model.track(model.template(z), x)   (training)
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
from torch import nn

from .backbones import multi_level_backbone
from .necks import AdjustAllLayer


class MultiLevelSiamese(nn.Module):
    stride = 8
    exemplar_size = 127
    instance_size = 255
    score_size = 25
    output_type = "anchor_free"

    def __init__(self, used_layers: Sequence[int] = (2, 3, 4), neck_channels: int = 256,
                 template_crop: int = 7, backbone: str = "resnet50"):
        super().__init__()
        used_layers = [int(i) for i in used_layers]
        self.levels = used_layers
        # backbone "mobilenetv3": the light configuration (backbones.py: used_layers
        # [3, 4] -> MobileNetV3 features[6]/[8], stride 16; template_crop null).
        self.backbone = multi_level_backbone(backbone, used_layers)
        self.stride = self.backbone.stride
        if self.stride != 8:       # towers (3x3, no padding) + depthwise xcorr: 16 - 8 + 1 = 9 at stride 16
            from .nanotrack import feature_size
            self.score_size = (feature_size(self.instance_size, self.stride)
                               - (template_crop or feature_size(self.exemplar_size, self.stride)) + 1)
        self.neck = AdjustAllLayer(self.backbone.out_channels, neck_channels,
                                   center_crop=template_crop, levels=used_layers)
        # the subclass builds self.head (a MultiLevelAnchorFreeHead) and its attention

    @property
    def level_channels(self) -> List[int]:
        return list(self.neck.out_channels)

    def features(self, img: torch.Tensor, template: bool) -> List[torch.Tensor]:
        """Per-level features after the neck (and the subclass's attention)."""
        return self.neck(self.backbone(img), crop=template)

    def template(self, z: torch.Tensor) -> Dict[str, Any]:
        return {"kernels": self.head.kernels(self.features(z, template=True))}

    def track(self, state: Dict[str, Any], x: torch.Tensor) -> Dict[str, torch.Tensor]:
        cls, loc = self.head(state["kernels"], self.features(x, template=False))
        return {"cls": cls, "loc": loc}

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.track(self.template(z), x)
