"""Anchor-free (SiamBAN / NanoTrack style) tracking: one search crop per frame,
a box regressed at every point of the score map, penalties, cosine window, lr.

Model contract (NanoTrack, SiamCAN, SiamAF-MSA ... all follow it):
    state = model.template(z)        z: 1x3xExE float BGR 0..255 (E = exemplar_size)
    out = model.track(state, x)      x: 1x3xIxI (I = instance_size)
    out["cls"]: 1xCxSxS logits; C == 2: score = softmax over C, channel 1 (target);
                C == 1: score = sigmoid.
    out["loc"]: 1x4xSxS distances (l, t, r, b) >= 0, in search-crop pixels, from
                each score-map point to the left, top, right and bottom box sides.

Point convention: score-map point (i, j) (row i, column j) lies at
    p = ((j - S // 2) * stride, (i - S // 2) * stride)
search-crop pixels from the crop centre (pysot / SiamBAN's `Point` with the
image centre at I // 2; for odd S this is symmetric, for NanoTrack's S = 16 it
runs from -128 to +112). The box of point p is
    x1 = p_x - l, y1 = p_y - t, x2 = p_x + r, y2 = p_y + b   (crop px, from centre),
and crop px become image px by dividing by scale = E / s_z, where
s_z = sqrt((w + c(w+h)) (h + c(w+h))) is the exemplar context region
(c = context_amount) and the search crop covers s_x = s_z * I / E image px.

Selection (SiamRPN++/SiamBAN): penalty = exp(-(r_c * s_c - 1) * penalty_k) with
s_c = max(q, 1/q) of the context-size ratio of the predicted box to the current
size (in crop px) and r_c = max(q, 1/q) of their aspect-ratio ratio;
pscore = (1 - window_influence) * penalty * score + window_influence * hanning;
the best point moves the centre, the size follows with
lr' = penalty * score * lr. The centre is clipped into the image, the size to
[min_size, image size]; Tracker.track clips the reported box to the image.

Parameters (tracker section of the model YAML; None / absent = from the model):
    exemplar_size, instance_size, stride (model attributes `exemplar_size`,
    `instance_size`, `stride`), context_amount 0.5, penalty_k, window_influence,
    lr, lost_threshold, cpu_threads (None: torch's setting; N: torch threads
    while this tracker's network runs on the CPU, restored afterwards -- small
    models such as NanoTrack run fastest on 1 thread, see config/models/nanotrack.yaml).
    The score size S comes from the head output.

TrackResult.confidence_map is the raw score map (S x S, in [0, 1], before
penalty and window); cell (i, j) covers the image square of side
stride / scale centred on point (i, j), so map_region (x, y, w, h) is the
S * stride / scale square around the crop centre (shifted by half a cell for
even S).
"""
from __future__ import annotations

from typing import Any, Dict

import cv2
import numpy as np
import torch

from .. import geometry
from ..models.registry import register_tracker
from .base import Tracker, TrackResult, TrackState, image_to_tensor


def score_points(size: int, stride: float) -> np.ndarray:
    """2 x S x S (x, y) point offsets from the search-crop centre, crop px."""
    offsets = (np.arange(size, dtype=np.float64) - size // 2) * stride
    xs, ys = np.meshgrid(offsets, offsets)
    return np.stack([xs, ys])


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)


def _context_size(w, h, amount: float = 0.5):
    pad = (w + h) * amount
    return np.sqrt((w + pad) * (h + pad))


@register_tracker("anchor_free")
class AnchorFreeTracker(Tracker):
    DEFAULTS: Dict[str, Any] = dict(exemplar_size=None, instance_size=None, stride=None,
                                    context_amount=0.5, penalty_k=0.15, window_influence=0.49,
                                    lr=0.385, min_size=10.0, cpu_threads=None)

    def __init__(self, model, params, device="auto"):
        merged = dict(self.DEFAULTS)
        merged.update({k: v for k, v in params.items() if v is not None})
        for key, attr in (("exemplar_size", "exemplar_size"), ("instance_size", "instance_size"),
                          ("stride", "stride")):
            if merged.get(key) is None:
                if not hasattr(model, attr):
                    raise ValueError(f"anchor_free tracker: set '{key}' in the tracker config "
                                     f"(the model has no '{attr}' attribute)")
                merged[key] = getattr(model, attr)
        super().__init__(model, merged, device)
        self.template_state = None
        self._cache_size = None
        self._window = None
        self._points = None

    def _geometry_for(self, size: int) -> None:
        if self._cache_size != size:
            hann = np.hanning(size)
            self._window = np.outer(hann, hann)
            self._points = score_points(size, float(self.params["stride"]))
            self._cache_size = size

    def _init(self, image: np.ndarray) -> None:
        p = self.params
        self.avg_color = cv2.mean(image)[:3]
        s_z = geometry.context_size(self.size[0], self.size[1], p["context_amount"])
        patch = geometry.crop_and_resize(image, self.center, s_z, int(p["exemplar_size"]),
                                         self.avg_color)
        with self._threads():
            self.template_state = self.model.template(image_to_tensor(patch, self.device))

    @staticmethod
    def _scores(cls: torch.Tensor) -> np.ndarray:
        if cls.shape[1] == 2:
            return torch.softmax(cls.float(), dim=1)[0, 1].cpu().numpy().astype(np.float64)
        if cls.shape[1] == 1:
            return torch.sigmoid(cls.float())[0, 0].cpu().numpy().astype(np.float64)
        raise ValueError(f"anchor_free tracker: cls must have 1 or 2 channels, got {cls.shape[1]}")

    def _prepare_search(self, image: np.ndarray):
        p = self.params
        exemplar, instance = float(p["exemplar_size"]), int(p["instance_size"])
        s_z = geometry.context_size(self.size[0], self.size[1], p["context_amount"])
        scale = exemplar / s_z                      # image px -> crop px
        s_x = s_z * instance / exemplar
        patch = geometry.crop_and_resize(image, self.center, s_x, instance, self.avg_color)
        return image_to_tensor(patch, self.device), {"scale": scale}

    def _decode(self, out):
        score = self._scores(out["cls"])
        loc = out["loc"][0].float().cpu().numpy().astype(np.float64)
        return score, loc, (tuple(out["cls"].shape), tuple(out["loc"].shape))

    def _finish(self, raw, ctx) -> TrackResult:
        p = self.params
        score, loc, shapes = raw
        scale = ctx["scale"]
        size = score.shape[-1]
        if score.shape != (size, size) or loc.shape != (4, size, size):
            raise ValueError(f"anchor_free tracker: cls {shapes[0]} and loc "
                             f"{shapes[1]} must be square maps of one size")
        self._geometry_for(size)
        px, py = self._points
        x1, y1 = px - loc[0], py - loc[1]
        x2, y2 = px + loc[2], py + loc[3]
        pw = np.maximum(x2 - x1, 1e-6)
        ph = np.maximum(y2 - y1, 1e-6)
        pcx, pcy = (x1 + x2) / 2.0, (y1 + y2) / 2.0

        w_c, h_c = self.size[0] * scale, self.size[1] * scale
        s_c = _change(_context_size(pw, ph) / _context_size(w_c, h_c))
        r_c = _change((w_c / h_c) / (pw / ph))
        penalty = np.exp(-(r_c * s_c - 1.0) * p["penalty_k"])
        pscore = penalty * score
        wi = p["window_influence"]
        pscore = pscore * (1.0 - wi) + self._window * wi
        best = np.unravel_index(int(np.argmax(pscore)), pscore.shape)

        prior_center = self.center.copy()
        lr = penalty[best] * score[best] * p["lr"]
        self.center = prior_center + np.array([pcx[best], pcy[best]]) / scale
        self.size = self.size * (1.0 - lr) + np.array([pw[best], ph[best]]) / scale * lr
        self._clip_state(float(p["min_size"]))

        cell = p["stride"] / scale
        origin = prior_center + (-(size // 2) - 0.5) * cell
        region = np.array([origin[0], origin[1], size * cell, size * cell])
        return TrackResult(box=self.box, score=float(score[best]), state=TrackState.TRACKING,
                           confidence_map=score.astype(np.float32), map_region=region)

    def _reset(self) -> None:
        self.template_state = None
