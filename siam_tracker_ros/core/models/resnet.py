"""ResNet-50 as SiamRPN++ uses it (pysot `resnet_atrous.py`).

Differences from torchvision's ResNet-50, all taken from SiamRPN++ / pysot:
- conv1 has no padding (7x7, stride 2, padding 0);
- the stride-2 shortcut of layer2 is a 3x3 conv without padding (not 1x1),
  and the stride sits on the 3x3 conv of the bottleneck (padding 0 there);
- layer3 (conv4) and layer4 (conv5) keep stride 1 and use dilation 2 and 4
  (their first block uses half the dilation, its shortcut is a 3x3 conv with
  dilation/padding = dilation // 2), so the total stride stays 8.

Sizes: a 127 px template gives 15x15 features at layer2/3/4 (neck crops the
centre 7x7), a 255 px search image 31x31; depthwise xcorr of the two -> 25x25.

`used_layers` indexes pysot's output list [conv1-relu, layer1, layer2, layer3,
layer4]: (2, 3, 4) returns [layer2 (512 ch), layer3 (1024), layer4 (2048)].
Parameter names equal pysot's ResNet-50 backbone (conv1, bn1, layer1..4 with
`downsample.0/1`), so a pysot state dict maps with the prefix `backbone.` only.
Layers above the highest used one are not built (as pysot does for 3/4).

Input: a float tensor Bx3xHxW; the backbone does no normalisation (pysot feeds
BGR 0..255 directly; models that want ImageNet statistics normalise before).
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module = None, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        padding = 2 - stride
        if downsample is not None and dilation > 1:
            dilation = dilation // 2
            padding = dilation
        if stride != 1 and dilation != 1:
            raise ValueError("a bottleneck has either stride or dilation, not both")
        if dilation > 1:
            padding = dilation
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=padding,
                               bias=False, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNet(nn.Module):
    stride = 8

    def __init__(self, block=Bottleneck, layers: Sequence[int] = (3, 4, 6, 3),
                 used_layers: Sequence[int] = (2, 3, 4)):
        super().__init__()
        used_layers = [int(i) for i in used_layers]
        if not used_layers or min(used_layers) < 0 or max(used_layers) > 4:
            raise ValueError(f"used_layers must be a non-empty subset of 0..4, got {used_layers}")
        self.used_layers = used_layers
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        top = max(used_layers)
        channels = [64]
        self.layer1 = self._make_layer(block, 64, layers[0])
        channels.append(64 * block.expansion)
        if top >= 2:
            self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
            channels.append(128 * block.expansion)
        if top >= 3:
            self.layer3 = self._make_layer(block, 256, layers[2], stride=1, dilation=2)
            channels.append(256 * block.expansion)
        if top >= 4:
            self.layer4 = self._make_layer(block, 512, layers[3], stride=1, dilation=4)
            channels.append(512 * block.expansion)
        self.out_channels: List[int] = [channels[i] for i in used_layers]
        self._top = top

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilation: int = 1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            if stride == 1 and dilation == 1:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1,
                              stride=stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion))
            else:
                if dilation > 1:
                    dd, padding = dilation // 2, dilation // 2
                else:
                    dd, padding = 1, 0
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=3,
                              stride=stride, bias=False, padding=padding, dilation=dd),
                    nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, dilation=dilation)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dilation=dilation))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, detach_between_levels: bool = False) -> List[torch.Tensor]:
        """The `used_layers` features. detach_between_levels: a used layer's output
        enters the next layer detached, so a loss on a deeper level does not reach
        a shallower level's layer (Ta-ASiam's two-stage aware training)."""
        x_ = self.relu(self.bn1(self.conv1(x)))
        outs = [x_]
        x = self.layer1(self.maxpool(x_))
        outs.append(x)
        for i in range(2, self._top + 1):
            if detach_between_levels and (i - 1) in self.used_layers:
                x = x.detach()
            x = getattr(self, f"layer{i}")(x)
            outs.append(x)
        return [outs[i] for i in self.used_layers]


def ResNet50(used_layers: Sequence[int] = (2, 3, 4)) -> ResNet:  # noqa: N802 (pysot's name)
    """SiamRPN++'s dilated ResNet-50; forward returns the `used_layers` features in order."""
    return ResNet(Bottleneck, (3, 4, 6, 3), used_layers)


resnet50 = ResNet50
