"""The target supervisor's evidence: how a raw tracker result compares with what this
target looked like so far (core/tracking/monitor.py decides from it).

Evidence (TrackResult.evidence, per frame)
------------------------------------------
score          the tracker's raw score at its chosen point
psr            peak-to-sidelobe ratio of the confidence map, (peak - mean) / std of the
               map outside the (2r+1)^2 square around the peak, r = max(1, S // 8)
               (reported; not in the decision: it separates target from background
               worse than the entropy, docs/benchmarks/lost_state.md)
entropy        normalised Shannon entropy of the confidence map / its sum, divided by
               log(#cells): 0 = one cell, 1 = flat
jump           distance of the box centre from the previous good box centre, in box
               sizes (sqrt(w h) of that box)
size_change    |log(area / previous area)| / 2 (log of the side-length ratio)
entropy_rise   entropy - the target's running entropy level
logit_drop     logit(level) - logit(score), scores clipped to [1e-4, score_cap]: the
               score's drop below the target's running level in log-odds (scores above
               score_cap count as score_cap: noise near 1 on a tracked target)
entropy_threshold  the entropy rise that alone makes a frame bad (below)
background_entropy the entropy of crops away from the target (below)
colour         Bhattacharyya coefficient between the HSV histogram (8 x 4 x 4 bins) of the
               box's central 80% and that of the init box: 1 = the same colours; NaN on grey
               images (all channels equal), where the colour evidence is left out
colour_drop    the target's running colour level - colour
map_weight     how much the model's evidence counts this frame (below)
colour_term    search candidates only: max(0, colour_drop - colour_free) / colour_lost
badness        map_weight x [entropy_rise / entropy_threshold + max(0, logit_drop) / logit_drop_lost
               + (1 if score < score_lost)] + colour_term
               + max(0, jump - jump_free) / jump_lost + max(0, size_change - size_free) / size_lost:
               1.0 = a bad frame

Colour. The model's own evidence (the bracket above) is ambiguous in clutter: a
passer-by in front of a dark car gives the same entropy rise and score drop as
the target gone. Whether the box still holds the target's colours is
independent evidence, cheap to compute (a histogram of the box resized to at
most 48 px), and it separates the two. So on the tracking path the bracket
counts map_weight = colour_map_weight when colour_drop <= colour_keep, rising
linearly to 1 at 2 x colour_keep; jumps and size changes always count in full.
While searching, candidates pay the colour term instead, and no discount: a
thing of other colours that the model likes cannot re-acquire, a target that
comes back somewhat changed still can. The colour reference is the init box
(never updated: a drifting tracker cannot teach it a distractor); the level
follows trusted frames like the other levels (lighting).

Levels. The entropy and logit levels are running means over trusted frames
(badness < trust_below): the init-frame crop and the first `warmup` frames by
plain mean, then exponential with rate level_rate. Everything is relative to
them, so one set of thresholds serves models whose scores sit at different levels.

Entropy threshold. How much the entropy may rise depends on the model and the
scene. In its first `background_tiles` frames the supervisor takes one extra crop
per frame one search-crop side away from the target (right, left, below, above;
crops that would still hold the target, clamped into a small frame, are not
used): their median entropy is what this scene looks like to this model without
the target. entropy_threshold = max(entropy_rise_lost, entropy_gap_fraction x
(background - target level)); 2 x entropy_rise_lost until that is measured.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np

from .base import Tracker, TrackResult


def peak_to_sidelobe(confidence_map: np.ndarray, radius: Optional[int] = None) -> float:
    """(peak - mean(sidelobe)) / std(sidelobe); sidelobe = the map outside the
    (2r+1)^2 square around the peak, r = max(1, S // 8) for an S x S map."""
    m = np.asarray(confidence_map, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"confidence map must be a non-empty 2-D array, got shape {m.shape}")
    r = max(1, min(m.shape) // 8) if radius is None else int(radius)
    i, j = np.unravel_index(int(np.argmax(m)), m.shape)
    mask = np.ones(m.shape, bool)
    mask[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1] = False
    side = m[mask]
    if side.size < 2:
        return 0.0
    return float((m[i, j] - side.mean()) / (side.std() + 1e-6))


def normalized_entropy(confidence_map: np.ndarray) -> float:
    """Shannon entropy of map / sum(map), divided by log(#cells): 0 (one cell) .. 1 (flat).
    Negative values are clipped to 0; an all-zero map counts as flat."""
    m = np.clip(np.asarray(confidence_map, dtype=np.float64), 0.0, None).ravel()
    if m.size < 2:
        return 0.0
    total = m.sum()
    if total <= 0:
        return 1.0
    p = m[m > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(m.size))


def colour_histogram(image: np.ndarray, box, inner: float = 0.8, side: int = 48) -> Optional[np.ndarray]:
    """Normalised HSV histogram (8 hue x 4 saturation x 4 value bins) of the central
    `inner` part of `box` (resized to at most side x side px first, so the cost does not
    grow with the box); None when the box holds under 2 x 2 px or the image is
    grey (all channels equal: hue says nothing there)."""
    x, y, w, h = (float(v) for v in box)
    cx, cy, w, h = x + w / 2.0, y + h / 2.0, w * inner, h * inner
    H, W = image.shape[:2]
    x0, y0 = int(max(0.0, cx - w / 2.0)), int(max(0.0, cy - h / 2.0))
    x1, y1 = int(min(W, cx + w / 2.0)), int(min(H, cy + h / 2.0))
    if x1 - x0 < 2 or y1 - y0 < 2 or image.ndim != 3 or image.shape[2] < 3:
        return None
    patch = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
    if patch.shape[0] > side or patch.shape[1] > side:
        patch = cv2.resize(patch, (min(side, patch.shape[1]), min(side, patch.shape[0])),
                           interpolation=cv2.INTER_AREA)
    if np.array_equal(patch[..., 0], patch[..., 1]) and np.array_equal(patch[..., 1], patch[..., 2]):
        return None
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    return hist / max(float(hist.sum()), 1e-12)


def colour_similarity(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> float:
    """Bhattacharyya coefficient of two normalised histograms (1 = same colours,
    0 = none shared); NaN when either is missing."""
    if a is None or b is None:
        return float("nan")
    return float(np.sum(np.sqrt(a * b)))


def logit(score: float, cap: float = 1.0 - 1e-4) -> float:
    """log(s / (1 - s)) of the score clipped to [1e-4, cap]."""
    s = min(max(float(score), 1e-4), min(float(cap), 1.0 - 1e-4))
    return math.log(s / (1.0 - s))


def box_center(box) -> np.ndarray:
    return np.array([box[0] + box[2] / 2.0, box[1] + box[3] / 2.0])


def box_change(prev_box, box) -> Tuple[float, float]:
    """(centre jump in box sizes of prev_box, |log side-length ratio|)."""
    prev_side = math.sqrt(max(prev_box[2] * prev_box[3], 1e-12))
    jump = float(np.linalg.norm(box_center(box) - box_center(prev_box)) / prev_side)
    area = max(box[2] * box[3], 1e-12)
    size = abs(math.log(area / max(prev_box[2] * prev_box[3], 1e-12))) / 2.0
    return jump, size


def map_entropy(confidence_map) -> float:
    """normalized_entropy of a map with more than one cell, else NaN."""
    cmap = confidence_map
    return normalized_entropy(cmap) if cmap is not None and np.size(cmap) > 1 else float("nan")


BACKGROUND_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))


class TargetLevels:
    """What one target looked like so far (module doc): the running entropy, score and
    colour levels over trusted frames, the init box's colours, the background entropy
    and the entropy threshold; `judge` turns a raw result into the evidence.
    `params` is the supervisor's parameter dict (shared: changes apply at once)."""

    def __init__(self, params: Dict[str, Any]):
        self.params = params
        self.reset()

    def reset(self) -> None:
        self.bg_entropy: List[float] = []
        self.bg_level = float("nan")
        self.gap: Optional[float] = None
        self.ent_level = 0.0
        self.logit_level = 0.0
        self.colour_level = 0.0
        self.colour_ref: Optional[np.ndarray] = None
        self.colour_n = 0
        self.level_n = 0

    def entropy_threshold(self) -> float:
        """The entropy rise that alone makes a frame bad: entropy_gap_fraction of the way
        from the target's level to the background's (measured on this target's first
        frames), at least entropy_rise_lost."""
        p = self.params
        if self.gap is None:
            return 2.0 * p["entropy_rise_lost"]      # until the background is measured
        return max(p["entropy_rise_lost"], p["entropy_gap_fraction"] * self.gap)

    def judge(self, raw: TrackResult, prev_box, relative: bool = True, image: Optional[np.ndarray] = None,
              searching: bool = False) -> Dict[str, float]:
        """The per-frame evidence (module doc) of one raw result, judged against this
        target's running levels (when `relative` and a level exists); prev_box None: no
        jump / size terms (search crops); image None: no colour evidence; searching: a
        search candidate (the colour term applies, not the colour discount)."""
        p = self.params
        cmap = raw.confidence_map
        ent = normalized_entropy(cmap) if cmap is not None and np.size(cmap) > 1 else float("nan")
        psr = peak_to_sidelobe(cmap) if cmap is not None and np.size(cmap) > 1 else float("nan")
        score = float(raw.score)
        if prev_box is not None:
            jump, size = box_change(prev_box, raw.box)
        else:
            jump, size = 0.0, 0.0
        warm = relative and self.level_n >= 1
        rise = (ent - self.ent_level) if (warm and math.isfinite(ent)) else 0.0
        drop = (self.logit_level - logit(score, p["score_cap"])) if warm else 0.0
        colour = (colour_similarity(colour_histogram(image, raw.box), self.colour_ref)
                  if image is not None and self.colour_ref is not None else float("nan"))
        colour_drop = (self.colour_level - colour) if (warm and self.colour_n and math.isfinite(colour)
                                                       ) else float("nan")
        # What the model says (map entropy, score drop, score floor) -- discounted when the
        # box's colours still match the target -- and, for search candidates, a colour term.
        map_terms = (rise / self.entropy_threshold() + max(0.0, drop) / p["logit_drop_lost"]
                     + (1.0 if score < p["score_lost"] else 0.0))
        map_weight, colour_term = 1.0, 0.0
        if math.isfinite(colour_drop):
            if searching:
                colour_term = max(0.0, colour_drop - p["colour_free"]) / p["colour_lost"]
            elif map_terms > 0:
                keep = p["colour_keep"]
                t = min(1.0, max(0.0, (colour_drop - keep) / max(keep, 1e-6)))
                map_weight = p["colour_map_weight"] + (1.0 - p["colour_map_weight"]) * t
        badness = (map_weight * map_terms + colour_term
                   + max(0.0, jump - p["jump_free"]) / p["jump_lost"]
                   + max(0.0, size - p["size_free"]) / p["size_lost"])
        return {"score": score, "psr": psr, "entropy": ent, "jump": jump, "size_change": size,
                "entropy_rise": rise, "logit_drop": drop, "badness": float(max(badness, 0.0)),
                "colour": colour, "colour_drop": colour_drop, "map_weight": map_weight,
                "colour_term": colour_term,
                "entropy_level": self.ent_level if warm else float("nan"),
                "entropy_threshold": self.entropy_threshold(),
                "background_entropy": self.bg_level,
                "score_level": (1.0 / (1.0 + math.exp(-self.logit_level))) if warm else float("nan")}

    def sample_background(self, tracker: Tracker, image: np.ndarray) -> None:
        """One crop at a background place (one search-crop side away from the target, the
        k-th of right/left/below/above/diagonals) -> its map entropy (tracker.probe: the
        tracker is not changed)."""
        k = len(self.bg_entropy)
        dirs = BACKGROUND_DIRECTIONS
        d = np.array(dirs[k % len(dirs)], dtype=np.float64) * (1.0 + k // len(dirs))
        side = tracker.search_side()
        center = np.asarray(tracker.center, dtype=np.float64) + d * side
        w, h = image.shape[1], image.shape[0]
        center = np.array([min(max(center[0], 0.0), w), min(max(center[1], 0.0), h)])
        if np.max(np.abs(center - np.asarray(tracker.center))) < 0.5 * side:
            # Clamped into the image, the crop would still hold the target (a large
            # target in a small frame): not a background sample.
            self.bg_entropy.append(float("nan"))
            return
        res = tracker.probe(image, [center])[0]
        self.bg_entropy.append(map_entropy(res.confidence_map))

    def _fix_gap(self) -> None:
        vals = [v for v in self.bg_entropy if math.isfinite(v)]
        if vals and self.gap is None and self.level_n >= self.params["warmup"]:
            self.bg_level = float(np.median(vals))
            self.gap = max(0.0, self.bg_level - self.ent_level)

    def _running(self, level: float, n: int, value: float) -> float:
        """A level after its (n+1)-th sample: plain mean over the first `warmup`
        samples, then exponential with rate level_rate."""
        if n < self.params["warmup"]:
            return (level * n + value) / (n + 1)
        return level + self.params["level_rate"] * (value - level)

    def learn(self, ev: Dict[str, float]) -> None:
        """Update the running levels from a trusted frame."""
        if ev["badness"] >= self.params["trust_below"] and self.level_n >= self.params["warmup"]:
            return
        ent, lg = ev["entropy"], logit(ev["score"], self.params["score_cap"])
        if not math.isfinite(ent):
            ent = self.ent_level
        self.ent_level = self._running(self.ent_level, self.level_n, ent)
        self.logit_level = self._running(self.logit_level, self.level_n, lg)
        self.level_n += 1
        colour = ev.get("colour", float("nan"))
        if math.isfinite(colour):            # grey images have no colour level
            self.colour_level = self._running(self.colour_level, self.colour_n, colour)
            self.colour_n += 1
        if self.gap is None and len(self.bg_entropy) >= self.params["background_tiles"]:
            self._fix_gap()

    def restart_from(self, ev: Dict[str, float]) -> None:
        """The scene changed while LOST: the entropy and score levels start again from a
        re-acquired candidate's evidence."""
        self.ent_level = ev["entropy"] if math.isfinite(ev["entropy"]) else self.ent_level
        self.logit_level = logit(ev["score"], self.params["score_cap"])
