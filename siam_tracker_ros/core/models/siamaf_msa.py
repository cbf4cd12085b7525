"""SiamAF-MSA: Siamese anchor-free tracking with multiscale spatial attentions (Sci. Rep. 2021).

Architecture (paper, "Methods description"):
- backbone: ResNet-50 with the last two stages at stride 1, dilation 2 and 4
  (SiamRPN++'s), features of the last three stages phi^3, phi^4, phi^5
  (pysot used_layers (2, 3, 4)), each reduced to 256 channels by a 1x1 conv
  (+ BN, SiamRPN++'s adjust layer); template centre-cropped to 7x7 as in
  SiamRPN++/SiamBAN, which the authors build on;
- one SAE block per level (Eq. 2-5), shared by the template and the search
  branch (a Siamese block): z = x + conv1x1(ReLU(BN(conv1x1(r(softmax_row(m n) s)))));
  its last conv starts at zero, so an untrained SAE is the identity;
- per level an anchor-free head (Eq. 7): cls and reg branches, each with 3x3
  conv towers on template and search, depthwise correlation, 1x1 convs to 2 / 4;
- learned fusion (Eq. 8): cls = sum alpha_l P^cls_l, reg = sum beta_l P^reg_l
  (softmax-normalised, SiamBAN's weighted MultiBAN; distances exp(loc_scale_l * raw)).

Model API: as models/siamcan.py (template(z) -> state, track(state, x) ->
{"cls": B x 2 x 25 x 25, "loc": B x 4 x 25 x 25 px}, channel 1 = target).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from .attention import SAEBlock
from .backbones import multi_level_backbone
from .heads import MultiLevelAnchorFreeHead
from .necks import AdjustAllLayer
from .registry import register_model


class SiamAFMSA(nn.Module):
    stride = 8
    exemplar_size = 127
    instance_size = 255
    score_size = 25
    output_type = "anchor_free"

    def __init__(self, used_layers: Sequence[int] = (2, 3, 4), neck_channels: int = 256,
                 sae_inter_channels: Optional[int] = None, template_crop: int = 7,
                 sae: bool = True, backbone: str = "resnet50", loc_init_distance: Optional[float] = None):
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
        chans = self.neck.out_channels
        # sae=False: no SAE blocks (the plain SiamBAN-style model, for ablations).
        self.use_sae = bool(sae)
        if self.use_sae:
            self.sae = nn.ModuleDict({
                f"level{level}": SAEBlock(c, sae_inter_channels) for level, c in zip(used_layers, chans)})
        self.head = MultiLevelAnchorFreeHead(chans, levels=used_layers, cls_out_channels=2,
                                             share_weights=False, loc_init_distance=loc_init_distance)

    def _features(self, img: torch.Tensor, crop: bool):
        fs = self.neck(self.backbone(img), crop=crop)
        if not self.use_sae:
            return fs
        return [self.sae[f"level{level}"](f) for level, f in zip(self.levels, fs)]

    def template(self, z: torch.Tensor) -> Dict[str, Any]:
        return {"kernels": self.head.kernels(self._features(z, crop=True))}

    def track(self, state: Dict[str, Any], x: torch.Tensor) -> Dict[str, torch.Tensor]:
        cls, loc = self.head(state["kernels"], self._features(x, crop=False))
        return {"cls": cls, "loc": loc}

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.track(self.template(z), x)


@register_model("siamaf_msa")
def build_siamaf_msa(**kwargs) -> SiamAFMSA:
    return SiamAFMSA(**kwargs)
