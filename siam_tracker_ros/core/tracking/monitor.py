"""Target supervisor: a TRACKING / LOST state a control loop can trust, for any Tracker.

A bare Siamese tracker always returns a box, and its score says little about
whether the box is on the target (a model's score can sit near 1 on background).
The supervisor judges each raw result against what *this target* looked like so
far, decides TRACKING or LOST with hysteresis, keeps the tracker from learning
from bad frames, and while LOST searches the image (ring by ring, up to the
whole frame) until the target is found again.

    sup = TargetSupervisor(tracker, **params)      # params: core/tracking/params.py
    sup.init(image, box)                           # tracker.init + one crop (the first level)
    res = sup.step(image)                          # = search(image) if sup.searching
                                                   #   else update(image, tracker.track(image))
    res.state     # TrackState.TRACKING or LOST; when LOST res.box is the search's best
                  # candidate so far: consumers must not use it (the node publishes zeros)
    res.evidence  # the numbers the decision was made from (core/tracking/evidence.py)
    sup.set_params(lost_frames=4)                  # at run time; ValueError on a bad value

Works with any Tracker through its public API (core/tracking/base.py): init /
track, save_state / load_state (the last good frame's state), probe (extra
crops: background samples, the search's scan) and relocate (the motion prior,
the search's verification). No ROS imports.

The jobs are split: evidence.py (what a frame says, the target's levels),
search.py (where a LOST target is looked for, when it is found), params.py
(every parameter with its range and meaning), and this file, the state machine:

TRACKING -> LOST   lost_frames consecutive bad frames (badness >= 1); or one frame
                   with badness >= very_bad; or persistence >= persist_lost (the CUSUM
                   max(0, previous + badness - persist_drift): moderate evidence that
                   keeps coming adds up).
hold_on_bad        on a bad frame the tracker is put back to the last good frame's
                   state: its motion and size never learn from bad frames
                   (motion_prior: the centre then coasts at the estimated velocity).
LOST -> TRACKING   search.py's recover tests; the tracker is left in the state the
                   verification crop gave it.
evidence extras    bad, lost_count (consecutive bad frames), persistence, state
                   (TrackState value); search_tiles, search_ring,
                   search_center_badness, search_distance, distance_cost while LOST.

Defaults and limits: docs/benchmarks/supervisor_defaults.md and lost_state.md (`python -m siam_tracker_ros.evaluation.lost_bench`).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np

from .base import Tracker, TrackResult, TrackState
from .evidence import (TargetLevels, box_center, box_change, colour_histogram,  # noqa: F401 (API)
                       colour_similarity, logit, map_entropy, normalized_entropy, peak_to_sidelobe)
from .params import SUPERVISOR_DEFAULTS, validate_supervisor_params
from .search import LostSearch, ring_tiles, rings_to_cover  # noqa: F401 (API)


class TargetSupervisor:
    """TRACKING / LOST decisions and re-acquisition around one Tracker (module docstring)."""

    def __init__(self, tracker: Tracker, **params):
        self.tracker = tracker
        self.params: Dict[str, Any] = dict(SUPERVISOR_DEFAULTS)
        self.params.update(validate_supervisor_params(params))
        self.levels = TargetLevels(self.params)
        self.lost_search = LostSearch(self.params)
        self._reset_state()

    # -- public API ------------------------------------------------------------------
    def set_params(self, **kw) -> None:
        """Change parameters at run time (all checked before any is applied)."""
        self.params.update(validate_supervisor_params(kw))

    @property
    def state(self) -> TrackState:
        return self._state

    @property
    def searching(self) -> bool:
        return self._state == TrackState.LOST

    def init(self, image: np.ndarray, box) -> None:
        self.tracker.init(image, box)
        self._reset_state()
        self._state = TrackState.TRACKING
        self._prev_box = np.asarray(self.tracker.box, dtype=np.float64)
        self._last_good_box = self._prev_box.copy()
        self._good = self.tracker.save_state()
        self.levels.colour_ref = colour_histogram(image, self._prev_box)
        # The first level sample: a crop centred on the target in the init frame (a
        # probe: the tracker is not changed), so that a target gone right after init
        # is judged.
        res = self.tracker.probe(image, [self.tracker.center])[0]
        self.levels.learn({"entropy": map_entropy(res.confidence_map), "score": float(res.score),
                           "badness": 0.0,
                           "colour": colour_similarity(colour_histogram(image, res.box), self.levels.colour_ref)})

    def reset(self) -> None:
        self.tracker.reset()
        self._reset_state()

    def step(self, image: np.ndarray) -> TrackResult:
        if self.searching:
            return self.search(image)
        return self.update(image, self.tracker.track(image))

    def evidence(self, raw: TrackResult, prev_box, relative: bool = True, image=None,
                 searching: bool = False) -> Dict[str, float]:
        """The evidence of one raw result against this target's levels (evidence.py)."""
        return self.levels.judge(raw, prev_box, relative=relative, image=image, searching=searching)

    def entropy_threshold(self) -> float:
        return self.levels.entropy_threshold()

    def update(self, image: np.ndarray, raw: TrackResult) -> TrackResult:
        """Judge `raw` (= tracker.track(image) of this frame) on the TRACKING path."""
        if self._state == TrackState.IDLE:
            raise RuntimeError("TargetSupervisor.update() before init()")
        if self.searching:
            raise RuntimeError("update() while LOST: call search(image) (or step(image))")
        p = self.params
        if len(self.levels.bg_entropy) < p["background_tiles"]:
            self.levels.sample_background(self.tracker, image)
        # a result the tracker refused (non-finite or empty box: core/tracking/base.py) is LOST at once
        broken = bool((raw.evidence or {}).get("non_finite_result"))
        ev = self.levels.judge(raw, self._prev_box, image=image)
        bad = ev["badness"] >= 1.0 or broken
        self._bad_run = self._bad_run + 1 if bad else 0
        self._persist = max(0.0, self._persist + ev["badness"] - p["persist_drift"])
        lost = ((bad and (self._bad_run >= p["lost_frames"] or ev["badness"] >= p["very_bad"]))
                or self._persist >= p["persist_lost"] or broken)
        if not bad and not lost:
            self.levels.learn(ev)
            self._learn_motion(np.asarray(raw.box, dtype=np.float64))
            self._prev_box = np.asarray(raw.box, dtype=np.float64)
            self._good = self.tracker.save_state()
            self._last_good_box = self._prev_box.copy()
        else:
            self._since_good += 1
            if p["hold_on_bad"] or lost:
                self.tracker.load_state(self._good)
                if p["motion_prior"]:
                    self.tracker.relocate(self._predicted_center(image))
        if lost:
            self._enter_lost()
        ev["bad"] = float(bad)
        ev["lost_count"] = float(self._bad_run)
        ev["persistence"] = float(self._persist)
        ev["search_tiles"] = 0.0
        ev["search_ring"] = 0.0
        ev["state"] = float(self._state)
        raw.state = self._state
        raw.evidence = ev
        return raw

    def search(self, image: np.ndarray) -> TrackResult:
        """The LOST path: widening search (search.py); re-acquires when the recover tests hold."""
        if not self.searching:
            raise RuntimeError("search() while not LOST: call update() (or step(image))")
        trk = self.tracker
        trk.load_state(self._good)
        self._since_good += 1
        anchor = self._predicted_center(image) if self.params["motion_prior"] else box_center(self._last_good_box)
        found = self.lost_search.step(trk, image, anchor, self.levels, self._last_good_box)
        res, ev = found.result, found.evidence
        if found.found:
            # Re-acquired: keep the state that the verification crop gave the tracker.
            if not found.found_strict:
                # Found by persistence, not by likeness to the old levels: the scene
                # changed, so the levels start again from what the target looks like now.
                self.levels.restart_from(ev)
            self._state = TrackState.TRACKING
            self._bad_run = 0
            self._prev_box = np.asarray(res.box, dtype=np.float64)
            self._last_good_box = self._prev_box.copy()
            self._velocity = np.zeros(2)
            self._since_good = 0
            self._good = trk.save_state()
            self.lost_search.forget_candidate()
        else:
            trk.load_state(self._good)
        ev["bad"] = float(not (found.strict or found.found))
        ev["lost_count"] = float(self._bad_run)
        ev["search_tiles"] = float(found.crops)
        ev["search_center_badness"] = found.center_badness
        ev["search_distance"] = float(np.linalg.norm(box_center(res.box) - anchor)
                                      / math.sqrt(max(self._last_good_box[2] * self._last_good_box[3], 1e-12)))
        ev["search_ring"] = float(self.lost_search.open_ring)
        ev["state"] = float(self._state)
        res.state = self._state
        res.evidence = ev
        return res

    # -- internals -------------------------------------------------------------------
    def _reset_state(self) -> None:
        self._state = TrackState.IDLE
        self._bad_run = 0
        self._persist = 0.0
        self._velocity = np.zeros(2)
        self._since_good = 0
        self._prev_box = None
        self._last_good_box = None
        self._good: Optional[Dict[str, Any]] = None     # the tracker's state on the last good frame
        self.levels.reset()
        self.lost_search.reset()

    def _learn_motion(self, box: np.ndarray) -> None:
        """Constant-velocity estimate (px / frame) from good frames, exponential
        with rate motion_rate; a gap of bad frames counts as that many frames."""
        if self._last_good_box is not None:
            step = (box_center(box) - box_center(self._last_good_box)) / (self._since_good + 1)
            self._velocity = self._velocity + self.params["motion_rate"] * (step - self._velocity)
        self._since_good = 0

    def _predicted_center(self, image: np.ndarray) -> np.ndarray:
        """Last good centre moved on by the velocity for the frames since (at most
        motion_coast_frames), kept inside the image."""
        n = min(self._since_good, self.params["motion_coast_frames"])
        c = box_center(self._last_good_box) + self._velocity * n
        w, h = image.shape[1], image.shape[0]
        return np.array([min(max(c[0], 0.0), w), min(max(c[1], 0.0), h)])

    def _enter_lost(self) -> None:
        self._state = TrackState.LOST
        self._persist = 0.0
        self.lost_search.reset()


__all__ = ["TargetSupervisor", "SUPERVISOR_DEFAULTS", "validate_supervisor_params", "logit"]
