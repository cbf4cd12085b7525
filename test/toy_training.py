"""A tiny Siamese model and a tiny pair set for the trainer tests (CPU, seconds).

- ToySiamFC: pool + 2 stride-2 convs (total stride 8): 127 -> 15x15 template
  features, 255 -> 31x31 search features, depthwise correlation + a small conv
  head -> 17x17 response (SiamFC's output contract).
  Registered as model type "toy_siamfc"; tracked with the real "siamfc" tracker.
- ToyAnchorFree: the same trunk with two "levels" of cls(2)/loc(4) heads on a
  17x17 map, fused by learned weights; track(..., return_branches=True) gives
  the per-level outputs like Ta-ASiam (for the two-stage path).
- ToyPairs: a coloured square on noise; the search crop holds it shifted, the
  box is xyxy in search px. Deterministic per index.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siam_tracker_ros.core.models.registry import register_model


def _trunk(width: int) -> nn.Sequential:
    """Total stride 8: 2x2 average pool, then two stride-2 3x3 convs (no padding)."""
    return nn.Sequential(
        nn.AvgPool2d(2), nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=2), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=2))


def _xcorr(zf, xf):
    b, c, h, w = xf.shape
    out = F.conv2d(xf.reshape(1, b * c, h, w), zf, groups=b)
    return out.reshape(b, 1, out.shape[-2], out.shape[-1])


def _dwxcorr(zf, xf):
    b, c, h, w = xf.shape
    out = F.conv2d(xf.reshape(1, b * c, h, w), zf.reshape(b * c, 1, *zf.shape[2:]), groups=b * c)
    return out.reshape(b, c, out.shape[-2], out.shape[-1])


class ToySiamFC(nn.Module):
    stride = 8
    exemplar_size = 127
    instance_size = 255

    def __init__(self, width: int = 16):
        super().__init__()
        self.backbone = _trunk(width)
        # depthwise correlation -> small conv head -> 1 response channel
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.Conv2d(width, 1, 1))

    def _f(self, img):
        return self.backbone(img / 255.0 - 0.5)

    def template(self, z):
        return self._f(z)

    def track(self, zf, x):
        if zf.shape[0] != x.shape[0]:
            zf = zf.expand(x.shape[0], -1, -1, -1)
        corr = _dwxcorr(zf, self._f(x)) / zf[0, 0].numel()
        return {"response": self.head(corr)}

    def forward(self, z, x):
        return self.track(self.template(z), x)


class ToyAnchorFree(nn.Module):
    stride = 8
    exemplar_size = 127
    instance_size = 255
    levels = (3, 4)

    def __init__(self, width: int = 8):
        super().__init__()
        self.backbone = _trunk(width)
        self.heads = nn.ModuleDict({str(l): nn.Conv2d(width, 6, 1) for l in self.levels})
        self.fusion = nn.Parameter(torch.zeros(len(self.levels)))

    def template(self, z):
        return self.backbone(z / 255.0 - 0.5)

    def track(self, zf, x, return_branches: bool = False):
        xf = self.backbone(x / 255.0 - 0.5)
        corr = _dwxcorr(zf, xf) / zf[0].numel() * 10
        branches = []
        for l in self.levels:
            o = self.heads[str(l)](corr)
            branches.append({"level": l, "cls": o[:, :2], "loc": torch.exp(o[:, 2:].clamp(max=6)) * 16})
        w = torch.softmax(self.fusion, 0)
        out = {"cls": sum(wi * b["cls"] for wi, b in zip(w, branches)),
               "loc": sum(wi * b["loc"] for wi, b in zip(w, branches))}
        if return_branches:
            out["branches"] = branches
            out["fusion"] = {"cls": w, "loc": w}
        return out

    def set_branch_isolation(self, on: bool) -> None:
        """The toy's levels share one trunk: nothing to isolate (Ta-ASiam's is tested
        in test_two_stage_isolation.py)."""


@register_model("toy_siamfc")
def build_toy_siamfc(width: int = 16):
    return ToySiamFC(width)


@register_model("toy_anchor_free")
def build_toy_anchor_free(width: int = 8):
    return ToyAnchorFree(width)


TOY_MODEL_CONFIG = {
    "name": "toy_siamfc",
    "model": {"type": "toy_siamfc", "width": 16},
    "tracker": {"type": "siamfc", "scale_num": 1, "response_up": 4},
}

TOY_AF_CONFIG = {
    "name": "toy_anchor_free",
    "model": {"type": "toy_anchor_free", "width": 8},
    "tracker": {"type": "anchor_free", "exemplar_size": 127, "instance_size": 255, "stride": 8},
}


class ToyPairs(torch.utils.data.Dataset):
    """n pairs: a square of colour c (per index) on noise; shift up to `shift` px."""

    def __init__(self, n: int = 8, shift: int = 32, two_stage: bool = False, seed: int = 0):
        self.n, self.shift, self.two_stage, self.seed = n, shift, two_stage, seed
        self._cache = {}

    def __len__(self):
        return self.n

    def _search(self, rng, colour, size):
        img = rng.integers(0, 256, (255, 255, 3)).astype(np.float32) * 0.5
        dx, dy = rng.integers(-self.shift, self.shift + 1, 2)
        cx, cy = 127.5 + dx, 127.5 + dy
        x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
        img[y0:y0 + size, x0:x0 + size] = colour
        box = torch.tensor([x0, y0, x0 + size, y0 + size], dtype=torch.float32)
        return torch.from_numpy(img.transpose(2, 0, 1).copy()), box

    def __getitem__(self, i):
        if i not in self._cache:
            self._cache[i] = self._make(i)
        return dict(self._cache[i])

    def _make(self, i):
        rng = np.random.default_rng([self.seed, i])
        colour = rng.integers(0, 256, 3).astype(np.float32)
        size = int(rng.integers(24, 48))
        z = rng.integers(0, 256, (127, 127, 3)).astype(np.float32) * 0.5
        o = (127 - size) // 2
        z[o:o + size, o:o + size] = colour
        x, box = self._search(rng, colour, size)
        item = {"template": torch.from_numpy(z.transpose(2, 0, 1).copy()), "search": x,
                "search_box": box, "negative": False}
        if self.two_stage:
            xa, boxa = self._search(rng, colour, size)
            item["search_appearance"] = xa
            item["search_appearance_box"] = boxa
        return item


def toy_config(**train) -> dict:
    cfg = {
        "name": "toy",
        "model": TOY_MODEL_CONFIG,
        "train": {"epochs": 2, "batch_size": 4, "num_workers": 0,
                  "loss": {"type": "logistic"},
                  "optimizer": {"lr": 0.05, "warmup_lr": 0.05, "end_lr": 0.02},
                  "freeze": {"enabled": False}},
        "val": {"enabled": False},
        "seed": 0,
    }
    cfg["train"].update(train)
    return cfg
