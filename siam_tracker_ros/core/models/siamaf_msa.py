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

Model API: models/multilevel.py (template(z) -> state, track(state, x) ->
{"cls": B x 2 x 25 x 25, "loc": B x 4 x 25 x 25 px}, channel 1 = target).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from .attention import SAEBlock
from .heads import MultiLevelAnchorFreeHead
from .multilevel import MultiLevelSiamese
from .registry import register_model


class SiamAFMSA(MultiLevelSiamese):
    """The multi-level skeleton (multilevel.py) with one SAE block per level, shared by the
    template and the search branch."""

    def __init__(self, used_layers: Sequence[int] = (2, 3, 4), neck_channels: int = 256,
                 sae_inter_channels: Optional[int] = None, template_crop: int = 7,
                 sae: bool = True, backbone: str = "resnet50",
                 loc_init_distance: Optional[float] = None):
        super().__init__(used_layers, neck_channels, template_crop, backbone)
        chans = self.level_channels
        # sae=False: no SAE blocks (the plain SiamBAN-style model, for ablations).
        self.use_sae = bool(sae)
        if self.use_sae:
            self.sae = nn.ModuleDict({
                f"level{level}": SAEBlock(c, sae_inter_channels) for level, c in zip(self.levels, chans)})
        self.head = MultiLevelAnchorFreeHead(chans, levels=self.levels, cls_out_channels=2,
                                             share_weights=False, loc_init_distance=loc_init_distance)

    def features(self, img: torch.Tensor, template: bool) -> List[torch.Tensor]:
        fs = super().features(img, template)
        if not self.use_sae:
            return fs
        return [self.sae[f"level{level}"](f) for level, f in zip(self.levels, fs)]


@register_model("siamaf_msa")
def build_siamaf_msa(**kwargs) -> SiamAFMSA:
    return SiamAFMSA(**kwargs)
