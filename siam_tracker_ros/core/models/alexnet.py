"""AlexNet as SiamFC uses it (BN after every conv but the last, no padding).

Total stride 8: a 127 px exemplar gives 6x6 features, a 255 px search image
22x22, and their cross-correlation a 17x17 response.
"""
import torch
from torch import nn


class AlexNet(nn.Module):
    out_channels = 256
    stride = 8

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=2), nn.BatchNorm2d(96), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(96, 256, 5, groups=2), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(256, 384, 3), nn.BatchNorm2d(384), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, groups=2), nn.BatchNorm2d(384), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, groups=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
