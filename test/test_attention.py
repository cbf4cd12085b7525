"""Each attention module against its paper's equation, computed by hand on small tensors."""
import math

import pytest
import torch

from siam_tracker_ros.core.models.attention import (
    ChannelAttention, CrossChannelAttention, GeneralAttention, ResidualAttention, SAEBlock,
    SelfSpatialAttention, eca_kernel_size, weighted_exemplar, weighted_xcorr)
from siam_tracker_ros.core.models.heads import xcorr_depthwise


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return module.eval()


# ----------------------------------------------------------------- RASNet Eq. 8

def test_weighted_xcorr_equals_rasnet_eq8_triple_sum():
    torch.manual_seed(0)
    B, d, m, n, p, q = 2, 3, 2, 3, 5, 6
    z = torch.randn(B, d, m, n)
    x = torch.randn(B, d, p, q)
    rho = torch.randn(B, m, n)
    beta = torch.rand(B, d)
    b = torch.tensor([0.7])
    out = weighted_xcorr(z, x, rho, beta, b)
    assert out.shape == (B, 1, p - m + 1, q - n + 1)
    for k in range(B):
        for pp in range(p - m + 1):
            for qq in range(q - n + 1):
                f = 0.0
                for i in range(m):
                    for j in range(n):
                        for c in range(d):
                            f += (rho[k, i, j] * beta[k, c] * z[k, c, i, j] * x[k, c, pp + i, qq + j]).item()
                assert out[k, 0, pp, qq].item() == pytest.approx(f + 0.7, abs=1e-4)


def test_weighted_xcorr_one_exemplar_serves_a_scale_pyramid():
    torch.manual_seed(1)
    z, rho, beta = torch.randn(1, 4, 2, 2), torch.randn(2, 2), torch.rand(4)
    x = torch.randn(3, 4, 6, 6)
    out = weighted_xcorr(z, x, rho, beta)
    for s in range(3):
        single = weighted_xcorr(z, x[s:s + 1], rho, beta)
        assert torch.allclose(out[s], single[0], atol=1e-5)


def test_general_attention_starts_as_ones_and_residual_starts_neutral():
    ga = GeneralAttention(6)
    assert torch.equal(ga(), torch.ones(6, 6))
    ra = ResidualAttention(16, 8).eval()
    out = ra(torch.randn(2, 16, 6, 6))
    assert out.shape == (2, 6, 6) and torch.equal(out, torch.zeros(2, 6, 6))
    # trained (non-zero) weights give a target-dependent m x n map
    _randomise(ra)
    a, b = ra(torch.randn(1, 16, 6, 6)), ra(torch.randn(1, 16, 6, 6))
    assert a.shape == (1, 6, 6) and not torch.allclose(a, b)


def test_channel_attention_is_se_with_reduction_4():
    ca = _randomise(ChannelAttention(8, 4))
    assert ca.reduce.out_features == 2 and ca.expand.out_features == 8
    z = torch.randn(2, 8, 6, 6)
    y = z.mean(dim=(2, 3))
    w1, b1, w2, b2 = ca.reduce.weight, ca.reduce.bias, ca.expand.weight, ca.expand.bias
    expected = torch.sigmoid(torch.relu(y @ w1.T + b1) @ w2.T + b2)
    assert torch.allclose(ca(z), expected, atol=1e-6)
    # Eq. 10: z~_i = beta_i z_i, here with rho = 1
    beta = ca(z)
    assert torch.allclose(weighted_exemplar(z, torch.ones(6, 6), beta), z * beta[:, :, None, None])


# ----------------------------------------------------------------- SiamCAN Eq. 1-3

def test_eca_kernel_size_rule():
    assert eca_kernel_size(256) == 5
    assert eca_kernel_size(512) == 5
    assert eca_kernel_size(64) == 3
    assert eca_kernel_size(2048) == 7


def test_cross_channel_attention_equals_explicit_1d_conv():
    C, k = 7, 3
    eca = _randomise(CrossChannelAttention(C, k))
    w = eca.conv.weight.view(-1)
    t = torch.randn(2, C, 3, 3)
    s = torch.randn(2, C, 5, 5)
    y = t.mean(dim=(2, 3))                                   # Eq. 1
    v = torch.zeros(2, C)
    for b in range(2):
        for i in range(C):
            acc = 0.0
            for j in range(k):                               # k adjacent channels, zero padded
                idx = i + j - (k - 1) // 2
                if 0 <= idx < C:
                    acc += (w[j] * y[b, idx]).item()
            v[b, i] = 1 / (1 + math.exp(-acc))               # Eq. 2
    assert torch.allclose(eca.weights(t), v, atol=1e-6)
    assert torch.allclose(eca(t, s), s * v[:, :, None, None], atol=1e-6)   # Eq. 3
    # a batch-1 template scales every search sample
    many = CrossChannelAttention.apply(torch.ones(3, C, 2, 2), v[:1])
    assert torch.allclose(many, v[:1, :, None, None].expand(3, C, 2, 2))


# ----------------------------------------------------------------- SiamCAN Eq. 6/7

def test_self_spatial_attention_equals_explicit_pool_and_conv():
    k = 3
    sa = _randomise(SelfSpatialAttention(k))
    f = torch.randn(1, 4, 5, 5)
    w, bias = sa.conv.weight[0], sa.conv.bias[0]             # 2 x k x k
    avg = f.mean(dim=1)[0]
    mx = f.max(dim=1).values[0]
    pooled = torch.stack([avg, mx])                          # [AvgP; MaxP]
    gate = torch.zeros(5, 5)
    for r in range(5):
        for c in range(5):
            acc = bias.item()
            for ch in range(2):
                for u in range(k):
                    for v in range(k):
                        rr, cc = r + u - k // 2, c + v - k // 2
                        if 0 <= rr < 5 and 0 <= cc < 5:
                            acc += (w[ch, u, v] * pooled[ch, rr, cc]).item()
            gate[r, c] = 1 / (1 + math.exp(-acc))
    assert torch.allclose(sa.attention(f)[0, 0], gate, atol=1e-6)
    assert torch.allclose(sa(f), f * gate, atol=1e-6)


# ----------------------------------------------------------------- SiamAF-MSA Eq. 2-5

def test_sae_block_equals_explicit_softmax_mn_s():
    c, h, w = 6, 3, 4
    sae = _randomise(SAEBlock(c))
    assert sae.inter_channels == c // 2
    x = torch.randn(1, c, h, w)
    N = h * w
    X = x[0].reshape(c, N)                                    # c x N

    def conv1x1(conv, inp):                                   # inp: cin x N -> cout x N
        return conv.weight[:, :, 0, 0] @ inp + conv.bias[:, None]

    m = conv1x1(sae.m, X).T                                   # N x c'
    n = conv1x1(sae.n, X)                                     # c' x N
    s = conv1x1(sae.s, X).T                                   # N x c'
    mn = m @ n
    A = torch.zeros(N, N)
    for i in range(N):                                        # row-wise softmax (Eq. 2)
        e = torch.exp(mn[i] - mn[i].max())
        A[i] = e / e.sum()
    assert torch.allclose(A.sum(dim=1), torch.ones(N))
    Nctx = (A @ s).T                                          # c' x N = r(A s) (Eq. 3)
    assert torch.allclose(sae.context(x)[0].reshape(c // 2, N), Nctx, atol=1e-5)
    conv1, bn, _, conv2 = sae.transform
    t = conv1x1(conv1, Nctx)
    t = (t - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps) * bn.weight[:, None] \
        + bn.bias[:, None]
    z = X + conv1x1(conv2, torch.relu(t))                     # Eq. 4/5
    assert torch.allclose(sae(x)[0].reshape(c, N), z, atol=1e-5)


def test_sae_block_starts_as_identity():
    sae = SAEBlock(8).eval()
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(sae(x), x)


def test_depthwise_xcorr_equals_explicit_sum():
    torch.manual_seed(2)
    x, k = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 2, 2)
    out = xcorr_depthwise(x, k)
    assert out.shape == (2, 3, 4, 4)
    for b in range(2):
        for c in range(3):
            for i in range(4):
                for j in range(4):
                    assert out[b, c, i, j].item() == pytest.approx(
                        (k[b, c] * x[b, c, i:i + 2, j:j + 2]).sum().item(), abs=1e-5)
    shared = xcorr_depthwise(x, k[:1])
    assert torch.allclose(shared[1], xcorr_depthwise(x[1:], k[:1])[0], atol=1e-6)
