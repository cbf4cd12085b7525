"""RASNet (Wang et al., CVPR 2018): SiamFC-AlexNet with a weighted cross-correlation.

    f(z, x) = s * sum_{i,j,c} rho_ij beta_c phi_ijc(z) phi_{p'+i,q'+j,c}(x) + b     (Eq. 8)
    rho  = rho_bar + rho_tilde                                                    (Eq. 9)
    rho_bar   general attention, 6 x 6 learned, initialised to ones
    rho_tilde residual attention, hourglass on phi(z) (Fig. 3; last layer zero-init)
    beta      channel attention, SE with r = 4 on phi(z)                          (Sec. 3.4)

s is SiamFC's response scale (its "adjust" layer, 1e-3) that brings the raw
correlation (~1e3) to a logit range; b is Eq. 8's bias.

All attention depends on the exemplar only, so it is computed once per target
(the paper: "the inference of attention mechanisms is only practised on the
first frame"): template(z) returns the weighted exemplar gamma (.) phi(z), and
track() is a plain SiamFC correlation with it. Output contract of the siamfc
tracker: template(z) -> B x 256 x 6 x 6; track(state, x) -> {"response": S x 1 x 17 x 17}.
Inputs are float BGR 0..255 (as SiamFC here; no normalisation).

Light configuration (config/models/rasnet_light.yaml): backbone "mobilenetv3"
(NanoTrack v2's MobileNetV3-small, stride 16, 48 ch) + a 1x1 conv/BN neck to
`neck_channels`; exemplar features 8x8 (exemplar_feature_size 8), response 9x9.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

from .attention import ChannelAttention, GeneralAttention, ResidualAttention, weighted_exemplar
from .registry import register_model
from .siamfc import cross_correlation, single_backbone


class RASNet(nn.Module):
    stride = 8
    exemplar_size = 127
    instance_size = 255
    score_size = 17
    output_type = "response"

    def __init__(self, response_scale: float = 1e-3, exemplar_feature_size: int = 6,
                 channel_reduction: int = 4, residual_channels: int = 64,
                 backbone: str = "alexnet", neck_channels: int = None):
        super().__init__()
        # backbone "mobilenetv3" + neck_channels: the light configuration (siamfc.single_backbone).
        self.backbone, neck, d = single_backbone(backbone, neck_channels)
        if neck is not None:
            self.neck = neck
        self.stride = self.backbone.stride
        if backbone == "mobilenetv3":   # 16x16 search, 8x8 exemplar features -> 9x9 response
            from .nanotrack import feature_size
            self.score_size = (feature_size(self.instance_size, self.stride)
                               - feature_size(self.exemplar_size, self.stride) + 1)
        self.exemplar_feature_size = int(exemplar_feature_size)
        self.general_attention = GeneralAttention(self.exemplar_feature_size)
        self.residual_attention = ResidualAttention(d, residual_channels)
        self.channel_attention = ChannelAttention(d, channel_reduction)
        self.response_scale = response_scale
        self.bias = nn.Parameter(torch.zeros(1))

    def attentions(self, zf: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(rho: B x m x n, beta: B x d) for exemplar features zf: B x d x m x n."""
        m, n = self.general_attention.weight.shape
        if tuple(zf.shape[-2:]) != (m, n):
            raise ValueError(f"RASNet's general attention is {m}x{n} but the exemplar features are "
                             f"{zf.shape[-2]}x{zf.shape[-1]} (exemplar 127 px: 6x6 AlexNet, 8x8 MobileNetV3)")
        rho = self.general_attention().unsqueeze(0) + self.residual_attention(zf)
        beta = self.channel_attention(zf)
        return rho, beta

    def features(self, img: torch.Tensor) -> torch.Tensor:
        f = self.backbone(img)
        return self.neck(f, crop=False) if hasattr(self, "neck") else f

    def template(self, z: torch.Tensor) -> torch.Tensor:
        zf = self.features(z)
        rho, beta = self.attentions(zf)
        return weighted_exemplar(zf, rho, beta)

    def track(self, state: torch.Tensor, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        xf = self.features(x)
        return {"response": cross_correlation(state, xf) * self.response_scale + self.bias}

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.track(self.template(z), x)


@register_model("rasnet")
def build_rasnet(**kwargs) -> RASNet:
    return RASNet(**kwargs)
