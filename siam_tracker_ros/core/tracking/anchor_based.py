"""Anchor-based (SiamRPN / SiamRPN++ / Ta-ASiam) tracking post-processing.

Follows pysot's SiamRPNTracker:
- anchors: for each ratio r and scale s, w = int(sqrt(stride^2 / r)) * s,
  h = int(w0 * r) * s (w0 before scaling), centred on the score-map cells; cell
  i of an N-cell map sits (i - N // 2) * stride crop px from the crop centre;
  anchor-major order (index = a * H * W + y * W + x) like the model's channels;
- score: softmax over (background, target) per anchor, cls channel c * A + a;
- boxes: cx = dx * wa + xa, cy = dy * ha + ya, w = exp(dw) * wa, h = exp(dh) * ha;
- penalty exp(-(r_c * s_c - 1) * k), r_c / s_c the change of aspect ratio and of
  size sqrt((w + p)(h + p)), p = (w + h) / 2, against the previous box;
- cosine (Hanning) window: pscore = pscore * (1 - wi) + window * wi;
- box smoothing: lr = penalty * score * lr_base at the chosen anchor, centre
  moves fully, size w = (1 - lr) w_prev + lr w_pred;
- state clipped to the image (centre inside, size in [10, image size]).

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

import cv2
import numpy as np
import torch

from .. import geometry
from ..models.registry import register_tracker
from .base import Tracker, TrackResult, TrackState, image_to_tensor


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


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)


def _sz(w, h):
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


@register_tracker("anchor_based")
class AnchorBasedTracker(Tracker):
    DEFAULTS = dict(exemplar_size=127, instance_size=255, context_amount=0.5,
                    anchor_stride=8, anchor_ratios=[0.33, 0.5, 1, 2, 3], anchor_scales=[8],
                    penalty_k=0.05, window_influence=0.42, lr=0.38)

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
        self.template_state = None

    def _anchors_for(self, score_size: int) -> None:
        if self._score_size == score_size:
            return
        p = self.params
        self._anchors = generate_anchors(score_size, int(p["anchor_stride"]), p["anchor_ratios"],
                                         p["anchor_scales"])
        hann = np.hanning(score_size)
        self._window = np.tile(np.outer(hann, hann).reshape(-1), self.anchor_num)
        self._score_size = score_size

    def _init(self, image):
        p = self.params
        self.avg_color = cv2.mean(image)[:3]
        s_z = geometry.context_size(self.size[0], self.size[1], p["context_amount"])
        patch = geometry.crop_and_resize(image, self.center, s_z, int(p["exemplar_size"]),
                                         self.avg_color)
        self.template_state = self.model.template(image_to_tensor(patch, self.device))

    def _prepare_search(self, image):
        p = self.params
        s_z = geometry.context_size(self.size[0], self.size[1], p["context_amount"])
        scale_z = p["exemplar_size"] / s_z
        s_x = s_z * p["instance_size"] / p["exemplar_size"]
        patch = geometry.crop_and_resize(image, self.center, s_x, int(p["instance_size"]),
                                         self.avg_color)
        return image_to_tensor(patch, self.device), {"scale_z": scale_z}

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
        scale_z = ctx["scale_z"]
        a = self.anchor_num
        self._anchors_for(n)
        anchors = self._anchors
        pred = np.empty_like(delta)
        pred[0] = delta[0] * anchors[:, 2] + anchors[:, 0]
        pred[1] = delta[1] * anchors[:, 3] + anchors[:, 1]
        pred[2] = np.exp(np.clip(delta[2], -10, 10)) * anchors[:, 2]
        pred[3] = np.exp(np.clip(delta[3], -10, 10)) * anchors[:, 3]

        prev_w, prev_h = self.size[0] * scale_z, self.size[1] * scale_z
        s_c = _change(_sz(pred[2], pred[3]) / _sz(prev_w, prev_h))
        r_c = _change((prev_w / prev_h) / (pred[2] / pred[3]))
        penalty = np.exp(-(r_c * s_c - 1) * p["penalty_k"])
        pscore = penalty * score
        wi = p["window_influence"]
        pscore = pscore * (1 - wi) + self._window * wi
        best = int(np.argmax(pscore))

        box = pred[:, best] / scale_z
        lr = penalty[best] * score[best] * p["lr"]
        prior_center = self.center.copy()
        self.center = prior_center + box[:2]
        self.size = np.array([self.size[0] * (1 - lr) + box[2] * lr,
                              self.size[1] * (1 - lr) + box[3] * lr])
        self._clip_state()

        confidence = score.reshape(a, n, n).max(axis=0).astype(np.float32)
        extent = n * p["anchor_stride"] / scale_z
        region = np.array([prior_center[0] - extent / 2, prior_center[1] - extent / 2, extent, extent])
        return TrackResult(box=self.box, score=float(score[best]), state=TrackState.TRACKING,
                           confidence_map=confidence, map_region=region)

    def _reset(self):
        self.template_state = None
