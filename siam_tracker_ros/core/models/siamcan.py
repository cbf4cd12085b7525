"""SiamCAN: cross-channel + self-spatial attention on an anchor-free SiamBAN-style tracker.

Architecture (SiamCAN paper, Sec. 3; the baseline it extends is SiamBAN):
- backbone: SiamRPN++'s dilated ResNet-50, features of the 3rd, 4th and 5th
  blocks (pysot's used_layers (2, 3, 4): layer2/3/4 = conv3_x/conv4_x/conv5_x);
- neck: 1x1 conv + BN to 256 channels per level; template centre-cropped 7x7;
- cross-channel attention (Eq. 1-3), per level: V = sigmoid(conv1d_k(GAP(psi_t)))
  with k from ECA-Net's rule (k = 5 for 256 channels), search features * V;
- per level and per branch (cls, reg): 3x3 conv towers on template and search,
  depthwise correlation (Eq. 4/5), self-spatial attention on the correlation map
  (Eq. 6/7), then two 1x1 convs (256 -> 256 -> 2 or 4);
- learned per-level fusion (Eq. 8/9); the paper writes one alpha_l for cls and
  reg (share_fusion_weights=True, default); False gives SiamBAN's two vectors.
  Distances are exp(loc_scale_l * raw) (SiamBAN's parameterisation, positive).

The cls channel order follows the anchor-free tracker contract (channel 1 =
target, SiamBAN's convention); the paper's text numbers foreground 0.

Model API (stateless module; the tracker keeps the template state):
    state = model.template(z)     z: B x 3 x 127 x 127 float BGR 0..255
    out = model.track(state, x)   x: B x 3 x 255 x 255 (state batch 1 is shared)
    out = {"cls": B x 2 x 25 x 25 logits, "loc": B x 4 x 25 x 25 px}
    model(z, x) == model.track(model.template(z), x)   (training)
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from .attention import CrossChannelAttention, SelfSpatialAttention
from .heads import MultiLevelAnchorFreeHead
from .multilevel import MultiLevelSiamese
from .registry import register_model


class SiamCAN(MultiLevelSiamese):
    """The multi-level skeleton (multilevel.py) with cross-channel attention on the search
    features (weights from the template) and self-spatial attention in the heads."""

    def __init__(self, used_layers: Sequence[int] = (2, 3, 4), neck_channels: int = 256,
                 eca_kernel_size: Optional[int] = None, spatial_kernel_size: int = 7,
                 share_fusion_weights: bool = True, template_crop: int = 7,
                 attention: bool = True, backbone: str = "resnet50",
                 loc_init_distance: Optional[float] = None):
        super().__init__(used_layers, neck_channels, template_crop, backbone)
        chans = self.level_channels
        # attention=False: both attentions off (the plain SiamBAN-style model, for ablations).
        self.use_attention = bool(attention)
        if self.use_attention:
            self.cross_attention = nn.ModuleDict({
                f"level{level}": CrossChannelAttention(c, eca_kernel_size) for level, c in zip(self.levels, chans)})
        self.head = MultiLevelAnchorFreeHead(
            chans, levels=self.levels, cls_out_channels=2, share_weights=share_fusion_weights,
            attention_factory=(lambda: SelfSpatialAttention(spatial_kernel_size)) if self.use_attention else None,
            loc_init_distance=loc_init_distance)

    def _eca(self, level: int) -> CrossChannelAttention:
        return self.cross_attention[f"level{level}"]

    def template(self, z: torch.Tensor) -> Dict[str, Any]:
        zs = self.features(z, template=True)
        if not self.use_attention:
            return {"kernels": self.head.kernels(zs)}
        return {"kernels": self.head.kernels(zs),
                "channel_weights": [self._eca(level).weights(f) for level, f in zip(self.levels, zs)]}

    def track(self, state: Dict[str, Any], x: torch.Tensor) -> Dict[str, torch.Tensor]:
        xs = self.features(x, template=False)
        if self.use_attention:
            xs = [CrossChannelAttention.apply(f, v) for f, v in zip(xs, state["channel_weights"])]
        cls, loc = self.head(state["kernels"], xs)
        return {"cls": cls, "loc": loc}


@register_model("siamcan")
def build_siamcan(**kwargs) -> SiamCAN:
    return SiamCAN(**kwargs)
