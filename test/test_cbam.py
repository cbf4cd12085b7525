"""CBAM attention against the Ta-ASiam equations, computed by hand with loops.

Eq. (2)  C(z) = sigmoid(MLP(f^max(z)) + MLP(f^avg(z)))
Eq. (4)  P(x) = sigmoid(Conv(f^cmax(x)) + Conv(f^cavg(x)))
"""
import math

import pytest
import torch

from siam_tracker_ros.core.models.cbam import CBAM, ChannelAttention, SpatialAttention


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def _mlp(mod, vec):
    """FC - ReLU - FC with explicit sums over the weights."""
    w1, b1 = mod.mlp[0].weight.tolist(), mod.mlp[0].bias.tolist()
    w2, b2 = mod.mlp[2].weight.tolist(), mod.mlp[2].bias.tolist()
    hidden = [max(0.0, sum(w1[j][i] * vec[i] for i in range(len(vec))) + b1[j]) for j in range(len(w1))]
    return [sum(w2[k][j] * hidden[j] for j in range(len(hidden))) + b2[k] for k in range(len(w2))]


def _conv_same(weight, bias, maps):
    """Zero-padded 'same' correlation of 2-D lists `maps` (one per input channel)."""
    h, w = len(maps[0]), len(maps[0][0])
    k = len(weight[0][0])
    r = k // 2
    out = [[bias for _ in range(w)] for _ in range(h)]
    for y in range(h):
        for x in range(w):
            s = 0.0
            for c, m in enumerate(maps):
                for dy in range(k):
                    for dx in range(k):
                        yy, xx = y + dy - r, x + dx - r
                        if 0 <= yy < h and 0 <= xx < w:
                            s += weight[c][dy][dx] * m[yy][xx]
            out[y][x] += s
    return out


def test_channel_attention_matches_eq2():
    torch.manual_seed(1)
    mod = ChannelAttention(channels=8, reduction=2)
    f = torch.randn(2, 8, 5, 4)
    got = mod(f)
    assert got.shape == (2, 8, 1, 1)
    for b in range(2):
        fmax = [max(f[b, c].reshape(-1).tolist()) for c in range(8)]
        favg = [sum(f[b, c].reshape(-1).tolist()) / 20.0 for c in range(8)]
        m1, m2 = _mlp(mod, fmax), _mlp(mod, favg)
        expected = [_sigmoid(m1[c] + m2[c]) for c in range(8)]
        assert got[b, :, 0, 0].tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("mode", ["paper", "cbam"])
def test_spatial_attention_matches_eq4(mode):
    torch.manual_seed(2)
    mod = SpatialAttention(kernel_size=3, mode=mode)
    f = torch.randn(1, 5, 6, 7)
    got = mod(f)
    assert got.shape == (1, 1, 6, 7)
    cmax = [[max(f[0, :, y, x].tolist()) for x in range(7)] for y in range(6)]
    cavg = [[sum(f[0, :, y, x].tolist()) / 5.0 for x in range(7)] for y in range(6)]
    w = mod.conv.weight[0].tolist()
    b = mod.conv.bias.item()
    if mode == "paper":
        # Eq. (4) literally: the same Conv on each pooled map, outputs summed.
        a1 = _conv_same(w, b, [cmax])
        a2 = _conv_same(w, b, [cavg])
        logits = [[a1[y][x] + a2[y][x] for x in range(7)] for y in range(6)]
    else:
        # CBAM: one conv over [avg; max] == sum of two separate convs.
        logits = _conv_same(w, b, [cavg, cmax])
    expected = [[_sigmoid(v) for v in row] for row in logits]
    assert got[0, 0].tolist() == [pytest.approx(row, abs=1e-6) for row in expected]


def test_neutral_init_is_input_independent():
    ca, sa = ChannelAttention(16, 4), SpatialAttention(7, "paper")
    ca.init_neutral(10.0)
    sa.init_neutral(10.0)
    f = torch.randn(3, 16, 9, 9) * 100
    assert torch.allclose(ca(f), torch.full((3, 16, 1, 1), _sigmoid(10.0)))
    assert torch.allclose(sa(f), torch.full((3, 1, 9, 9), _sigmoid(10.0)))


def test_cbam_block_applies_channel_then_spatial():
    torch.manual_seed(3)
    block = CBAM(8, reduction=2, kernel_size=3)
    f = torch.randn(1, 8, 5, 5)
    g = block.channel(f) * f
    assert torch.allclose(block(f), block.spatial(g) * g)
