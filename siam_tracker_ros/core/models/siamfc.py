"""SiamFC (Bertinetto et al. 2016): AlexNet features and plain cross-correlation.

The baseline the papers build on; RASNet keeps its backbone and tracker and
replaces the correlation by a weighted one.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .alexnet import AlexNet
from .registry import register_model


def cross_correlation(template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Full cross-correlation of each template with its search features -> Bx1xH'xW'.

    One template may serve several search crops (SiamFC's scale pyramid).
    """
    if template.shape[0] == 1:
        return F.conv2d(search, template)
    if template.shape[0] != search.shape[0]:
        raise ValueError(f"template batch {template.shape[0]} != search batch {search.shape[0]}")
    b, c, h, w = search.shape
    # Grouped conv: every sample correlates with its own template in one call.
    out = F.conv2d(search.reshape(1, b * c, h, w), template, groups=b)
    return out.reshape(b, 1, out.shape[-2], out.shape[-1])


def single_backbone(kind: str = "alexnet", neck_channels: int = None):
    """(backbone, neck or None, feature channels) of the SiamFC family.

    kind "alexnet": SiamFC's (stride 8, 256 ch). "alexnet_torchvision": the same
    geometry with torchvision's AlexNet widths, for an ImageNet init in that
    layout (alexnet.py, loaders_imagenet.py). "mobilenetv3": NanoTrack v2's
    MobileNetV3-small (stride 16, 48 ch), the light configuration. neck_channels:
    a 1x1 conv + BN after the backbone (no template crop), trainable when the
    backbone is frozen (the light models' only feature adaptation).
    """
    if kind == "alexnet":
        backbone = AlexNet()
    elif kind == "alexnet_torchvision":
        backbone = AlexNet(widths="torchvision")
    elif kind == "mobilenetv3":
        from .mobilenetv3 import mobilenetv3_small_nanotrack
        backbone = mobilenetv3_small_nanotrack()
    else:
        raise ValueError(f"unknown SiamFC-family backbone '{kind}'; one of alexnet, alexnet_torchvision, mobilenetv3")
    if not neck_channels:
        return backbone, None, backbone.out_channels
    from .necks import AdjustLayer
    return backbone, AdjustLayer(backbone.out_channels, int(neck_channels), center_crop=None), int(neck_channels)


class SiamFC(nn.Module):
    stride = 8
    exemplar_size = 127
    instance_size = 255

    def __init__(self, response_scale: float = 1e-3, backbone: str = "alexnet", neck_channels: int = None):
        super().__init__()
        self.backbone, neck, _ = single_backbone(backbone, neck_channels)
        if neck is not None:
            self.neck = neck
        self.stride = self.backbone.stride
        # SiamFC scales the raw correlation (~1e3) into a logit range ("adjust" layer).
        self.response_scale = response_scale
        self.bias = nn.Parameter(torch.zeros(1))

    def features(self, img: torch.Tensor) -> torch.Tensor:
        f = self.backbone(img)
        return self.neck(f, crop=False) if hasattr(self, "neck") else f

    def template(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(z)

    def track(self, zf: torch.Tensor, x: torch.Tensor) -> dict:
        xf = self.features(x)
        return {"response": cross_correlation(zf, xf) * self.response_scale + self.bias}

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> dict:
        return self.track(self.template(z), x)


@register_model("siamfc")
def build_siamfc(response_scale: float = 1e-3, **kwargs) -> SiamFC:
    return SiamFC(response_scale=response_scale, **kwargs)
