"""Attention modules of the three attention papers, each written from its equation.

RASNet (Wang et al., CVPR 2018), used by models/rasnet.py:
    GeneralAttention       rho_bar: m x n learned map, initialised to ones (Sec. 3.3)
    ResidualAttention      rho_tilde: hourglass encoder-decoder on phi(z) -> m x n (Fig. 3)
    ChannelAttention       beta: SE net, GAP -> reduce by r=4 -> ReLU -> expand -> sigmoid (Sec. 3.4)
    weighted_xcorr         f = (rho (.) beta (.) phi(z)) * phi(x) + b        (Eq. 7/8)
SiamCAN (ICLR 2021 submission), used by models/siamcan.py:
    CrossChannelAttention  V = sigmoid(conv1d_k(GAP(psi_t)));  psi_s~ = psi_s * V  (Eq. 1-3, ECA)
    SelfSpatialAttention   F~ = F * sigmoid(f([AvgP_c(F); MaxP_c(F)]))              (Eq. 6/7, CBAM)
SiamAF-MSA (Zhang et al., Sci. Rep. 2021), used by models/siamaf_msa.py:
    SAEBlock               z = x + rho(r(softmax_row(m n) s))                    (Eq. 2-5)

Every module here is a pure function of its inputs (no per-target state), so the
trackers can compute template-side attention once at init and keep the result.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .siamfc import cross_correlation


# --------------------------------------------------------------------------- RASNet

class GeneralAttention(nn.Module):
    """rho_bar: one m x n map shared by all targets, initialised to ones (RASNet Sec. 3.3)."""

    def __init__(self, size=(6, 6)):
        super().__init__()
        m, n = (size, size) if isinstance(size, int) else tuple(size)
        self.weight = nn.Parameter(torch.ones(m, n))

    def forward(self) -> torch.Tensor:
        return self.weight


class ResidualAttention(nn.Module):
    """rho_tilde: target-specific residual attention from the exemplar features.

    RASNet's Fig. 3 describes an hourglass (encoder-decoder, after Newell et al.)
    on phi(z) whose output is an m x n map added to the general attention
    (Eq. 9). The paper does not list layer widths; this is a one-level hourglass:

        x (d, m, n) --conv3x3-BN-ReLU--> (c, m, n) --maxpool2--> (c, m/2, n/2)
                    --conv3x3-BN-ReLU--> (c, m/2, n/2) --upsample to (m, n)--+
        x --conv1x1-BN-ReLU (skip branch, full resolution)--------------------+--> sum
          --conv1x1--> (1, m, n)

    The last conv is zero-initialised, so rho = rho_bar at the start of training
    (the residual starts neutral; RASNet = GenAtt + ChanAtt until it learns).
    """

    def __init__(self, in_channels: int = 256, mid_channels: int = 64):
        super().__init__()
        c = mid_channels
        self.encode = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.bottleneck = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.skip = nn.Sequential(
            nn.Conv2d(in_channels, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(c, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: B x d x m x n exemplar features -> B x m x n residual attention."""
        size = z.shape[-2:]
        low = F.max_pool2d(self.encode(z), 2, ceil_mode=True)
        low = self.bottleneck(low)
        up = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
        return self.out(up + self.skip(z)).squeeze(1)


class ChannelAttention(nn.Module):
    """beta: SE channel attention (RASNet Sec. 3.4, r = 4): GAP -> fc d/r -> ReLU -> fc d -> sigmoid."""

    def __init__(self, channels: int = 256, reduction: int = 4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.reduce = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: B x d x H x W -> B x d weights in (0, 1)."""
        y = z.mean(dim=(2, 3))
        return torch.sigmoid(self.expand(F.relu(self.reduce(y))))


def weighted_exemplar(z: torch.Tensor, rho: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """gamma (.) phi(z) with gamma_ijc = rho_ij * beta_c (the joint form of Eq. 8).

    z: B x d x m x n, rho: B x m x n (or m x n), beta: B x d (or d).
    """
    if rho.dim() == 2:
        rho = rho.unsqueeze(0)
    if beta.dim() == 1:
        beta = beta.unsqueeze(0)
    return z * rho.unsqueeze(1) * beta[:, :, None, None]


def weighted_xcorr(z: torch.Tensor, x: torch.Tensor, rho: torch.Tensor, beta: torch.Tensor,
                   bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RASNet Eq. 8: f[p', q'] = sum_{i,j,c} rho_ij beta_c phi_ijc(z) phi_{p'+i, q'+j, c}(x) + b."""
    out = cross_correlation(weighted_exemplar(z, rho, beta), x)
    return out if bias is None else out + bias


# --------------------------------------------------------------------------- SiamCAN

def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA-Net's adaptive k = |log2(C)/gamma + b/gamma|_odd (5 for C = 256).

    SiamCAN (Sec. 3.2) takes "a 1D convolution of size k" from ECA-Net without
    naming k, so the ECA rule is used.
    """
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class CrossChannelAttention(nn.Module):
    """SiamCAN cross-channel attention (Eq. 1-3).

    Y_t = GAP(psi_t); V_i = sigmoid(sum_{j=1..k} w_j y_i^j) over the k channels
    adjacent to i (a 1-D convolution across channels, zero padded, no bias as in
    ECA); the search features are rescaled: psi_s~ = psi_s * V.
    """

    def __init__(self, channels: int = 256, k_size: Optional[int] = None):
        super().__init__()
        k = k_size or eca_kernel_size(channels)
        if k % 2 == 0:
            raise ValueError(f"ECA kernel size must be odd, got {k}")
        self.k_size = k
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def weights(self, template: torch.Tensor) -> torch.Tensor:
        """template: B x C x h x w -> V: B x C in (0, 1)."""
        y = template.mean(dim=(2, 3))
        return torch.sigmoid(self.conv(y.unsqueeze(1)).squeeze(1))

    @staticmethod
    def apply(search: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if v.shape[0] == 1 and search.shape[0] > 1:
            v = v.expand(search.shape[0], -1)
        return search * v[:, :, None, None]

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.apply(search, self.weights(template))


class SelfSpatialAttention(nn.Module):
    """SiamCAN self-spatial attention on a correlation map (Eq. 6/7, CBAM's spatial gate).

    F~ = F * sigmoid(f([AvgP(F); MaxP(F)])), AvgP/MaxP over channels, f a k x k
    conv 2 -> 1 (k = 7 as in CBAM; SiamCAN does not give k).
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def attention(self, f: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([f.mean(dim=1, keepdim=True), f.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f * self.attention(f)


# --------------------------------------------------------------------------- SiamAF-MSA

class SAEBlock(nn.Module):
    """Spatial attention extraction block of SiamAF-MSA (Eq. 2-5).

        m = conv1x1(x) -> N x c', n = conv1x1(x) -> c' x N, s = conv1x1(x) -> N x c'
        A = softmax_row(m n)  (N x N)                              Eq. 2
        N = r(A s)  (h x w x c')                                   Eq. 3
        z = x + conv1x1(ReLU(BN(conv1x1(N))))                      Eq. 4/5
    with c' = c / 2 and N = h * w. The SE-transform's inner width is c (the
    paper does not give it; the authors' released code uses c' -> c -> c). Its
    last conv is zero-initialised, so the block starts as the identity.
    """

    def __init__(self, channels: int = 256, inter_channels: Optional[int] = None):
        super().__init__()
        ci = inter_channels or max(1, channels // 2)
        self.inter_channels = ci
        self.m = nn.Conv2d(channels, ci, 1)
        self.n = nn.Conv2d(channels, ci, 1)
        self.s = nn.Conv2d(channels, ci, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(ci, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1))
        nn.init.zeros_(self.transform[3].weight)
        nn.init.zeros_(self.transform[3].bias)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The non-local context N = r(softmax_row(m n) s): B x c' x h x w."""
        b, _, h, w = x.shape
        m = self.m(x).flatten(2).transpose(1, 2)        # B x N x c'
        n = self.n(x).flatten(2)                        # B x c' x N
        s = self.s(x).flatten(2).transpose(1, 2)        # B x N x c'
        a = torch.softmax(torch.bmm(m, n), dim=-1)      # row-wise softmax, B x N x N
        return torch.bmm(a, s).transpose(1, 2).reshape(b, self.inter_channels, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.transform(self.context(x))
