"""The LOST target's search: where to look each frame and when the target counts as found.

Crops at the target's last trusted size, centred on a grid around the last trusted
position (or the motion prior's prediction), spacing search_step x the search
crop's side s_x (tracker.search_side()). Ring r = the tiles at Chebyshev distance r.
Every frame: the last position, the current candidate, and up to search_tiles
tiles going round the open rings nearest first; one more ring opens every
search_grow frames until the rings cover the image or reach the distance where
the distance cost alone would fail a candidate (reach + recover_relaxed_below /
search_distance_cost, + 1/2 s_x): tiles beyond could not re-acquire, so the
budget goes round the reachable rings more often.

The scan crops go through the network in one call (tracker.probe). The best tile
(lowest badness + distance cost) is verified on a crop centred on its candidate,
a real tracking step (the state machine keeps it when the target is found, puts
the last good state back otherwise). Distance cost: search_distance_cost x
(distance / s_x - reach), reach = search_reach + search_reach_rate x frames LOST
(in s_x): right after a loss a look-alike far away needs much stronger evidence
than the target close to where it vanished; the allowance grows as the target
may have moved.

Found (LOST -> TRACKING): badness + distance cost <= recover_below on
recover_frames verifications in a row at consistent places (moving <=
recover_jump box sizes between them), or < recover_relaxed_below on
recover_relaxed_frames in a row (then the scene changed while LOST: the levels
restart from the candidate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .base import Tracker, TrackResult
from .evidence import TargetLevels, box_center


def ring_tiles(center, step: float, ring: int, image_size) -> List[np.ndarray]:
    """Tile centres at Chebyshev distance `ring` (in steps) from `center`, kept inside
    the image (centres outside are clamped in; duplicates dropped)."""
    w, h = image_size
    if ring == 0:
        return [np.array([min(max(center[0], 0.0), w), min(max(center[1], 0.0), h)], float)]
    out, seen = [], set()
    for i in range(-ring, ring + 1):
        for j in range(-ring, ring + 1):
            if max(abs(i), abs(j)) != ring:
                continue
            c = np.array([center[0] + i * step, center[1] + j * step])
            c = np.array([min(max(c[0], 0.0), w), min(max(c[1], 0.0), h)])
            key = (int(round(c[0] / max(step * 0.25, 1.0))), int(round(c[1] / max(step * 0.25, 1.0))))
            if key in seen:
                continue
            seen.add(key)
            out.append(c)
    return out


def rings_to_cover(center, step: float, image_size) -> int:
    w, h = image_size
    reach = max(center[0], w - center[0], center[1], h - center[1])
    return max(1, int(math.ceil(reach / max(step, 1e-6))))


@dataclass
class SearchStep:
    """One LOST frame's search: the verified candidate, its evidence, and the verdict."""
    result: TrackResult
    evidence: Dict[str, float]
    strict: bool             # this verification passed recover_below
    found_strict: bool       # recover_below held on recover_frames verifications in a row
    found: bool              # found_strict, or the relaxed test held on recover_relaxed_frames
    crops: int               # crops this frame (scan + verification)
    center_badness: float    # badness of the crop at the last position


class LostSearch:
    """The search state of one LOST target (module doc). `params` is the supervisor's
    parameter dict (shared: changes apply at once)."""

    def __init__(self, params: Dict[str, Any]):
        self.params = params
        self.reset()

    def reset(self) -> None:
        """A new loss: no frame searched yet, no ring open, no candidate."""
        self.frames = 0
        self.open_ring = 0
        self._tile_queue: List[np.ndarray] = []
        self._queued_ring = 0
        self.candidate: Optional[Tuple[np.ndarray, np.ndarray]] = None   # (centre, box)
        self._cand_run = 0
        self._relaxed_run = 0

    def forget_candidate(self) -> None:
        """The target was found: no candidate, no runs (the rings stay as they were)."""
        self.candidate = None
        self._cand_run = 0
        self._relaxed_run = 0

    def step(self, tracker: Tracker, image: np.ndarray, anchor: np.ndarray, levels: TargetLevels,
             last_good_box: np.ndarray) -> SearchStep:
        """Scan, verify the best candidate (the tracker is left in the state the verification
        gave it) and judge it; `anchor` is where the target is expected."""
        p = self.params
        self.frames += 1
        size = (image.shape[1], image.shape[0])
        side_x = tracker.search_side()
        step = max(side_x * p["search_step"], 1.0)
        reach = p["search_reach"] + p["search_reach_rate"] * (self.frames - 1)
        self.open_ring = min(rings_to_cover(anchor, step, size),
                             1 + (self.frames - 1) // p["search_grow"],
                             self._useful_rings(reach, side_x, step))
        centers = [ring_tiles(anchor, step, 0, size)[0]]
        if self.candidate is not None:
            centers.append(self.candidate[0])
        centers += self._next_tiles(anchor, step, size, p["search_tiles"])

        def far_cost(box) -> float:
            d = float(np.linalg.norm(box_center(box) - anchor)) / side_x
            return p["search_distance_cost"] * max(0.0, d - reach)

        best: Optional[Tuple[float, TrackResult, Dict[str, float]]] = None
        center_badness = float("nan")
        for k, res in enumerate(tracker.probe(image, centers)):
            ev = levels.judge(res, None, image=image, searching=True)
            if k == 0:
                center_badness = ev["badness"]
            b = ev["badness"] + far_cost(res.box)
            if best is None or b < best[0]:
                best = (b, res, ev)
        # Verify the best candidate on a crop centred on it (tracking conditions).
        tracker.relocate(box_center(best[1].box))
        res = tracker.track(image)
        ev = levels.judge(res, None, image=image, searching=True)
        ev["distance_cost"] = far_cost(res.box)
        b_eff = ev["badness"] + ev["distance_cost"]
        strict = b_eff <= p["recover_below"]
        relaxed = b_eff < p["recover_relaxed_below"]
        if relaxed:
            here = box_center(res.box)
            side = math.sqrt(max(last_good_box[2] * last_good_box[3], 1e-12))
            consistent = (self.candidate is not None and
                          np.linalg.norm(here - self.candidate[0]) / side <= p["recover_jump"])
            self._cand_run = (self._cand_run + 1) if (consistent and strict) else int(strict)
            self._relaxed_run = (self._relaxed_run + 1) if consistent else 1
            self.candidate = (here, res.box.copy())
        else:
            self._cand_run = 0
            self._relaxed_run = 0
            self.candidate = None
        found_strict = strict and self._cand_run >= p["recover_frames"]
        found = found_strict or (relaxed and self._relaxed_run >= p["recover_relaxed_frames"])
        return SearchStep(res, ev, strict, found_strict, found, len(centers) + 1, center_badness)

    def _useful_rings(self, reach: float, side_x: float, step: float) -> int:
        """Rings whose tiles can hold an acceptable candidate: beyond reach +
        recover_relaxed_below / search_distance_cost (in s_x) the distance cost alone
        fails the relaxed test, so tiles there would only spend the budget (+1/2 s_x:
        a tile sees a target half a crop from its centre)."""
        p = self.params
        if p["search_distance_cost"] <= 0:
            return 1 << 30
        radius = (reach + p["recover_relaxed_below"] / p["search_distance_cost"] + 0.5) * side_x
        return max(1, int(math.ceil(radius / step)))

    def _next_tiles(self, anchor, step, size, budget: int) -> List[np.ndarray]:
        """Up to `budget` tiles from the open rings (1..open ring), nearest ring first,
        going round again once every open ring has been looked at."""
        out: List[np.ndarray] = []
        if budget <= 0:
            return out
        guard = 0
        while len(out) < budget and guard < 4:
            if not self._tile_queue:
                if self._queued_ring >= self.open_ring:
                    self._queued_ring = 0         # every open ring seen: start again
                    guard += 1
                    if self.open_ring == 0:
                        break
                self._queued_ring += 1
                self._tile_queue = ring_tiles(anchor, step, self._queued_ring, size)
                continue
            out.append(self._tile_queue.pop(0))
        return out
