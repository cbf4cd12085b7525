"""CBAM-style channel and spatial attention (Woo et al. 2018) as Ta-ASiam uses them.

Ta-ASiam (Pattern Recognition 2021), Sec. 3.3:

  Eq. (2)  C(z) = g( MLP(f^max(z)) + MLP(f^avg(z)) )
           global max / average pooling over H x W, one MLP (FC - ReLU - FC)
           shared by both pooled vectors, g = sigmoid; C(z) in R^{1x1xC}.
  Eq. (4)  P(x) = g( Conv(f^cmax(x)) + Conv(f^cavg(x)) )
           max / average over the channels (two 1-channel maps), a
           convolution, the two results summed, sigmoid; P(x) in R^{H'xW'x1}.

Both modules return the *weights* (Bx Cx1x1 and Bx1xHxW), not the weighted
features, because Ta-ASiam computes C from the template and applies it to the
template and to the search features (Eq. 3/5): callers multiply.

Spatial attention, a choice the paper leaves open: Eq. (4) writes the same
symbol Conv for both pooled maps. `mode="paper"` (default) follows the equation
literally: ONE 1-in/1-out convolution applied to the channel-max map and to the
channel-average map, the two outputs summed (so its bias enters twice).
`mode="cbam"` is CBAM's own formulation, one 2-in/1-out convolution over the
concatenation [avg; max]; that equals the sum of two *separate* convolutions.
The paper gives neither kernel size nor MLP reduction; the defaults are
CBAM's (7x7, reduction 16).

`init_neutral(logit)` sets the last layer's weights to zero and its bias so the
gate is the constant sigmoid(logit): with a large logit the module is
(numerically) the identity when its weights multiply features. Used when
starting from a checkpoint trained without attention (pysot SiamRPN++).
"""
from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Eq. (2): C(f) = sigmoid(MLP(maxpool f) + MLP(avgpool f)); returns BxCx1x1."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, channels))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, c = f.shape[:2]
        f_max = torch.amax(f, dim=(2, 3))
        f_avg = torch.mean(f, dim=(2, 3))
        w = torch.sigmoid(self.mlp(f_max) + self.mlp(f_avg))
        return w.reshape(b, c, 1, 1)

    @torch.no_grad()
    def init_neutral(self, logit: float = 10.0) -> None:
        """Gate = sigmoid(logit) for every input (two MLP outputs are summed: bias = logit / 2)."""
        last = self.mlp[-1]
        last.weight.zero_()
        last.bias.fill_(logit / 2.0)


class SpatialAttention(nn.Module):
    """Eq. (4): P(f) = sigmoid(Conv(chan-max f) + Conv(chan-avg f)); returns Bx1xHxW."""

    def __init__(self, kernel_size: int = 7, mode: str = "paper"):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("spatial attention kernel_size must be odd (same-size output)")
        if mode not in ("paper", "cbam"):
            raise ValueError(f"spatial attention mode must be 'paper' or 'cbam', got {mode!r}")
        self.mode = mode
        in_ch = 1 if mode == "paper" else 2
        self.conv = nn.Conv2d(in_ch, 1, kernel_size, padding=kernel_size // 2, bias=True)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f_cmax = torch.amax(f, dim=1, keepdim=True)
        f_cavg = torch.mean(f, dim=1, keepdim=True)
        if self.mode == "paper":
            logits = self.conv(f_cmax) + self.conv(f_cavg)
        else:
            logits = self.conv(torch.cat([f_cavg, f_cmax], dim=1))
        return torch.sigmoid(logits)

    @torch.no_grad()
    def init_neutral(self, logit: float = 10.0) -> None:
        self.conv.weight.zero_()
        self.conv.bias.fill_(logit / 2.0 if self.mode == "paper" else logit)


class CBAM(nn.Module):
    """Plain CBAM block (channel then spatial attention on one tensor), for models
    that refine a single feature map: f' = C(f) * f, f'' = P(f') * f'."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7,
                 spatial_mode: str = "cbam"):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size, spatial_mode)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = self.channel(f) * f
        return self.spatial(f) * f
