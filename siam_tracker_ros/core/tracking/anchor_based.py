"""Anchor-based (SiamRPN / SiamRPN++ / Ta-ASiam) tracking post-processing.

Follows pysot's SiamRPNTracker:
- anchors: for each ratio r and scale s, w = int(sqrt(stride^2 / r)) * s,
  h = int(w0 * r) * s (w0 before scaling), centred on the score-map cells; cell
  i of an N-cell map sits (i - N // 2) * stride crop px from the crop centre;
  anchor-major order (index = a * H * W + y * W + x) like the model's channels;
- score: softmax over (background, target) per anchor, cls channel c * A + a;
- boxes: cx = dx * wa + xa, cy = dy * ha + ya, w = exp(dw) * wa, h = exp(dh) * ha;
- the crops, the penalty, the cosine window and the size update are the shared
  Siamese ones (core/tracking/siamese.py), the window tiled over the anchors.

TrackResult.confidence_map: the target probability maximised over anchors
(float32 HxW in [0, 1], raw softmax, before penalty and window);
map_region: the image square it covers, centred on the previous target centre,
side = map cells * stride / scale (cell (i, j) covers the stride-sized square
around its anchor centre). score: the raw probability at the chosen anchor.

Model contract: model.template(z) -> state; model.track(state, x) ->
{"cls": 1x2AxHxW, "loc": 1x4AxHxW}. The score size comes from the model output.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .base import TrackResult, TrackState
from .params import ANCHOR_BASED, tracker_defaults
from .registry import register_tracker
from .siamese import SiameseTracker, hanning_window


def generate_anchor_shapes(stride: int, ratios: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """(A, 2) anchor (w, h) in crop px, pysot's integer rounding included."""
    size = stride * stride
    shapes = []
    for r in ratios:
        ws = int(math.sqrt(size * 1.0 / r))
        hs = int(ws * r)
        for s in scales:
            shapes.append((ws * s, hs * s))
    return np.array(shapes, dtype=np.float64)


def generate_anchors(score_size: int, stride: int, ratios: Sequence[float],
                     scales: Sequence[float]) -> np.ndarray:
    """(A * N * N, 4) anchors (cx, cy, w, h) relative to the crop centre, anchor-major."""
    shapes = generate_anchor_shapes(stride, ratios, scales)
    origin = -(score_size // 2) * stride
    offsets = origin + stride * np.arange(score_size, dtype=np.float64)
    xx, yy = np.meshgrid(offsets, offsets)                     # yy[row, col], xx[row, col]
    a = len(shapes)
    cx = np.tile(xx.reshape(-1), a)
    cy = np.tile(yy.reshape(-1), a)
    w = np.repeat(shapes[:, 0], score_size * score_size)
    h = np.repeat(shapes[:, 1], score_size * score_size)
    return np.stack([cx, cy, w, h], axis=1)


@register_tracker(ANCHOR_BASED)
class AnchorBasedTracker(SiameseTracker):
    KIND = ANCHOR_BASED
    DEFAULTS = tracker_defaults(ANCHOR_BASED)

    def __init__(self, model, params, device="auto"):
        super().__init__(model, params, device)
        p = self.params
        self.anchor_num = len(p["anchor_ratios"]) * len(p["anchor_scales"])
        model_a = getattr(model, "anchor_num", None)
        if model_a is not None and int(model_a) != self.anchor_num:
            raise ValueError(f"model predicts {model_a} anchors per cell, tracker config has "
                             f"{self.anchor_num} (ratios x scales)")
        self._anchors = None
        self._window = None
        self._score_size = None

    def _anchors_for(self, score_size: int) -> None:
        if self._score_size == score_size:
            return
        p = self.params
        self._anchors = generate_anchors(score_size, int(p["anchor_stride"]), p["anchor_ratios"],
                                         p["anchor_scales"])
        self._window = np.tile(hanning_window(score_size).reshape(-1), self.anchor_num)
        self._score_size = score_size

    def _decode(self, out):
        cls = out["cls"][0].float()
        loc = out["loc"][0].float()
        a = self.anchor_num
        n = cls.shape[-1]
        if cls.shape[0] != 2 * a or loc.shape[0] != 4 * a or cls.shape[-2] != n:
            raise ValueError(f"model output cls {tuple(cls.shape)} / loc {tuple(loc.shape)} "
                             f"does not fit {a} anchors on a square map")
        score = torch.softmax(cls.reshape(2, -1), dim=0)[1].cpu().numpy().astype(np.float64)
        delta = loc.reshape(4, -1).cpu().numpy().astype(np.float64)
        return score, delta, n

    def _finish(self, raw, ctx):
        p = self.params
        score, delta, n = raw
        scale_z = ctx["scale"]
        a = self.anchor_num
        self._anchors_for(n)
        anchors = self._anchors
        pred = np.empty_like(delta)
        pred[0] = delta[0] * anchors[:, 2] + anchors[:, 0]
        pred[1] = delta[1] * anchors[:, 3] + anchors[:, 1]
        pred[2] = np.exp(np.clip(delta[2], -10, 10)) * anchors[:, 2]
        pred[3] = np.exp(np.clip(delta[3], -10, 10)) * anchors[:, 3]

        best, penalty = self.choose(score, pred[2], pred[3], scale_z, self._window)
        box = pred[:, best] / scale_z
        lr = penalty[best] * score[best] * p["lr"]
        prior_center = self.follow(box[:2], box[2:4], lr)

        confidence = score.reshape(a, n, n).max(axis=0).astype(np.float32)
        extent = n * p["anchor_stride"] / scale_z
        region = np.array([prior_center[0] - extent / 2, prior_center[1] - extent / 2, extent, extent])
        return TrackResult(box=self.box, score=float(score[best]), state=TrackState.TRACKING,
                           confidence_map=confidence, map_region=region)
