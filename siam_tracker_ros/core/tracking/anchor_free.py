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

Selection (SiamRPN++/SiamBAN): the shared Siamese penalty, cosine window and
size update (core/tracking/siamese.py) over the points' boxes; Tracker.track
clips the reported box to the image.

Parameters: core/tracking/params.py (tracker section of the model YAML;
exemplar_size, instance_size and stride None / absent = the model's attributes
of those names). The score size S comes from the head output.

TrackResult.confidence_map is the raw score map (S x S, in [0, 1], before
penalty and window); cell (i, j) covers the image square of side
stride / scale centred on point (i, j), so map_region (x, y, w, h) is the
S * stride / scale square around the crop centre (shifted by half a cell for
even S).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import TrackResult, TrackState
from .params import ANCHOR_FREE, tracker_defaults
from .registry import register_tracker
from .siamese import SiameseTracker, hanning_window


def score_points(size: int, stride: float) -> np.ndarray:
    """2 x S x S (x, y) point offsets from the search-crop centre, crop px."""
    offsets = (np.arange(size, dtype=np.float64) - size // 2) * stride
    xs, ys = np.meshgrid(offsets, offsets)
    return np.stack([xs, ys])


@register_tracker(ANCHOR_FREE)
class AnchorFreeTracker(SiameseTracker):
    KIND = ANCHOR_FREE
    DEFAULTS = tracker_defaults(ANCHOR_FREE)

    def __init__(self, model, params, device="auto"):
        merged = dict(self.DEFAULTS)
        merged.update({k: v for k, v in params.items() if v is not None})
        for key in ("exemplar_size", "instance_size", "stride"):
            if merged.get(key) is None:
                if not hasattr(model, key):
                    raise ValueError(f"anchor_free tracker: set '{key}' in the tracker config "
                                     f"(the model has no '{key}' attribute)")
                merged[key] = getattr(model, key)
        super().__init__(model, merged, device)
        self._cache_size = None
        self._window = None
        self._points = None

    def _geometry_for(self, size: int) -> None:
        if self._cache_size != size:
            self._window = hanning_window(size)
            self._points = score_points(size, float(self.params["stride"]))
            self._cache_size = size

    @staticmethod
    def _scores(cls: torch.Tensor) -> np.ndarray:
        if cls.shape[1] == 2:
            return torch.softmax(cls.float(), dim=1)[0, 1].cpu().numpy().astype(np.float64)
        if cls.shape[1] == 1:
            return torch.sigmoid(cls.float())[0, 0].cpu().numpy().astype(np.float64)
        raise ValueError(f"anchor_free tracker: cls must have 1 or 2 channels, got {cls.shape[1]}")

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

        best, penalty = self.choose(score, pw, ph, scale, self._window)
        lr = penalty.flat[best] * score.flat[best] * p["lr"]
        prior_center = self.follow(np.array([pcx.flat[best], pcy.flat[best]]) / scale,
                                   np.array([pw.flat[best], ph.flat[best]]) / scale, lr)

        cell = p["stride"] / scale
        origin = prior_center + (-(size // 2) - 0.5) * cell
        region = np.array([origin[0], origin[1], size * cell, size * cell])
        return TrackResult(box=self.box, score=float(score.flat[best]), state=TrackState.TRACKING,
                           confidence_map=score.astype(np.float32), map_region=region)
