"""What every Siamese tracker here shares: the template crop, the search crop, the
penalised and windowed choice of a candidate, and the damped size update.

    template: a square of side s_z = sqrt((w + c(w+h)) (h + c(w+h))) (c =
              context_amount) around the box, resized to exemplar_size, mean-colour
              padded; model.template() runs on the tracker's CPU threads
    search:   s_x = s_z * instance_size / exemplar_size around the current centre,
              resized to instance_size; scale = exemplar_size / s_z (image px ->
              crop px)
    choice:   penalty = exp(-(r_c s_c - 1) penalty_k), r_c / s_c the change of aspect
              ratio and of context size against the current box (crop px);
              pscore = (1 - window_influence) penalty score + window_influence hanning
    update:   the centre moves to the chosen candidate, the size follows with
              lr' = penalty x score x lr, then centre kept inside the image and the
              size in [min_size, image size]

anchor_based.py (SiamRPN family) and anchor_free.py (SiamBAN / NanoTrack family)
use all four; siamfc.py (SiamFC, RASNet) the template crop and the window, with
its own scale pyramid instead of the penalised choice (pysot / SiamFC's rules).
"""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from .. import geometry
from .base import Tracker, image_to_tensor


def change(ratio: np.ndarray) -> np.ndarray:
    """max(q, 1/q): how far a ratio is from 1, either way."""
    return np.maximum(ratio, 1.0 / ratio)


def context_side(w, h):
    """geometry.context_size for arrays (context amount 0.5, as the penalty has it)."""
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def hanning_window(size: int) -> np.ndarray:
    hann = np.hanning(size)
    return np.outer(hann, hann)


class SiameseTracker(Tracker):
    """A Tracker with the template crop, the search crop, the penalised choice and the
    size update above; subclasses decode their head and call `choose` / `follow`."""

    def __init__(self, model, params, device="auto"):
        super().__init__(model, params, device)
        self.template_state = None

    def _template_side(self) -> float:
        return geometry.context_size(self.size[0], self.size[1], self.params["context_amount"])

    def _init(self, image: np.ndarray) -> None:
        p = self.params
        self.avg_color = cv2.mean(image)[:3]
        patch = geometry.crop_and_resize(image, self.center, self._template_side(),
                                         int(p["exemplar_size"]), self.avg_color)
        with self._threads():
            self.template_state = self.model.template(image_to_tensor(patch, self.device))

    def _prepare_search(self, image: np.ndarray):
        """One search crop around the current centre; context: scale (image px -> crop px)."""
        p = self.params
        exemplar, instance = float(p["exemplar_size"]), int(p["instance_size"])
        s_z = self._template_side()
        scale = exemplar / s_z
        s_x = s_z * instance / exemplar
        patch = geometry.crop_and_resize(image, self.center, s_x, instance, self.avg_color)
        return image_to_tensor(patch, self.device), {"scale": scale}

    def choose(self, score: np.ndarray, pred_w: np.ndarray, pred_h: np.ndarray, scale: float,
               window: np.ndarray) -> Tuple[int, np.ndarray]:
        """(flat index of the best candidate, penalty of every candidate): candidates'
        scores and sizes (crop px) against the current box."""
        p = self.params
        cur_w, cur_h = self.size[0] * scale, self.size[1] * scale
        s_c = change(context_side(pred_w, pred_h) / context_side(cur_w, cur_h))
        r_c = change((cur_w / cur_h) / (pred_w / pred_h))
        penalty = np.exp(-(r_c * s_c - 1.0) * p["penalty_k"])
        wi = p["window_influence"]
        pscore = (penalty * score) * (1.0 - wi) + window * wi
        return int(np.argmax(pscore)), penalty

    def follow(self, offset: np.ndarray, size: np.ndarray, lr: float) -> np.ndarray:
        """Move the centre by `offset` and let the size follow `size` at rate `lr` (image px);
        returns the centre before the move."""
        prior_center = self.center.copy()
        self.center = prior_center + offset
        self.size = self.size * (1.0 - lr) + size * lr
        self._clip_state(float(self.params["min_size"]))
        return prior_center

    def _reset(self) -> None:
        self.template_state = None
