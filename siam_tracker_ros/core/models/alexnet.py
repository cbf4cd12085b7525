"""AlexNet as SiamFC uses it (BN after every conv but the last, no padding).

Total stride 8: a 127 px exemplar gives 6x6 features, a 255 px search image
22x22, and their cross-correlation a 17x17 response.

widths "siamfc" (default): SiamFC's channels 96-256-384-384-256 with two groups
in conv2/4/5 (as the original AlexNet). widths "torchvision": the channels of
torchvision's single-tower AlexNet, 64-192-384-256-256, no groups, so that an
ImageNet state dict in torchvision's layout initialises it
(loaders_imagenet.py, weights_format torchvision_alexnet). Both keep SiamFC's
geometry (conv1 stride 2, no padding) and its BN layers; indices in `features`
are the same for both (convs at 0, 4, 8, 11, 14).
"""
import torch
from torch import nn

WIDTHS = {"siamfc": ((96, 256, 384, 384, 256), (1, 2, 1, 2, 2)),
          "torchvision": ((64, 192, 384, 256, 256), (1, 1, 1, 1, 1))}


class AlexNet(nn.Module):
    out_channels = 256
    stride = 8

    def __init__(self, widths: str = "siamfc"):
        super().__init__()
        if widths not in WIDTHS:
            raise ValueError(f"AlexNet widths '{widths}': one of {sorted(WIDTHS)}")
        (c1, c2, c3, c4, c5), (_, g2, _, g4, g5) = WIDTHS[widths]
        self.widths = widths
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 11, stride=2), nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(c1, c2, 5, groups=g2), nn.BatchNorm2d(c2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(c2, c3, 3), nn.BatchNorm2d(c3), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, groups=g4), nn.BatchNorm2d(c4), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, groups=g5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
