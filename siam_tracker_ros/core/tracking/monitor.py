"""Target supervisor: a TRACKING / LOST state a control loop can trust, for any Tracker.

A bare Siamese tracker always returns a box, and its score says little about
whether the box is on the target: the default model's score sits near 1.0 even
on background, NanoTrack's at 0.9-1.0 (pysot issue 3). The supervisor judges
each raw result against what *this target* looked like so far, decides TRACKING
or LOST with hysteresis, keeps the tracker from learning from bad frames, and
while LOST searches the image (ring by ring, up to the whole frame) until the
target is found again.

    sup = TargetSupervisor(tracker, **params)      # params: SUPERVISOR_DEFAULTS keys
    sup.init(image, box)                           # tracker.init + one crop (the first level)
    res = sup.step(image)                          # = search(image) if sup.searching
                                                   #   else update(image, tracker.track(image))
    res.state     # TrackState.TRACKING or LOST; when LOST res.box is the search's best
                  # candidate so far: consumers must not use it (the node publishes zeros)
    res.evidence  # the numbers the decision was made from (below)
    sup.set_params(lost_frames=4)                  # at run time; ValueError on a bad value

Works with any Tracker: it calls tracker.init / tracker.track, and for extra
crops (background samples, the search) tracker._track on a crop centred where it
wants, with every attribute of the tracker saved before and put back after
(`snapshot` / `restore`: numpy arrays copied, tensors shared; the trackers
replace those, they do not change them in place). No ROS imports: the node
(ros/) and core/tracking/multi.py use it.

Evidence (TrackResult.evidence, per frame)
------------------------------------------
score          the tracker's raw score at its chosen point
psr            peak-to-sidelobe ratio of the confidence map, (peak - mean) / std of the
               map outside the (2r+1)^2 square around the peak, r = max(1, S // 8)
               (reported; not in the decision: on the default model it separates
               target from background worse than the entropy, see lost_state.md)
entropy        normalised Shannon entropy of the confidence map / its sum, divided by
               log(#cells): 0 = one cell, 1 = flat
jump           distance of the box centre from the previous good box centre, in box
               sizes (sqrt(w h) of that box)
size_change    |log(area / previous area)| / 2 (log of the side-length ratio)
entropy_rise   entropy - the target's running entropy level
logit_drop     logit(level) - logit(score), scores clipped to [1e-4, score_cap]: the
               score's drop below the target's running level in log-odds; scores above
               score_cap (0.99) count as 0.99 (0.9997 vs 0.991 is noise on a tracked
               target, measured)
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
bad            1.0 when badness >= 1
lost_count     consecutive bad frames
persistence    the CUSUM of badness: max(0, previous + badness - persist_drift)
state          1 TRACKING, 2 LOST (TrackState values)
search_tiles, search_ring, search_center_badness, search_distance, distance_cost
               while LOST: crops this frame, widest ring opened, badness of the crop at
               the last position, the candidate's distance from it (box sizes), and the
               distance cost added to its badness (below); 0 while tracking

Colour. The model's own evidence (the bracket above) is ambiguous in clutter: a
pedestrian passing in front of a dark car (OTB_Crossing frames 33-48) gives the
same entropy rise and score drop as the target gone. Whether the box still holds
the target's colours is independent evidence, cheap to compute (a histogram of
the box resized to at most 48 px), and it separates the two: colour_drop on
visible and tracked frames p95 0.17, on erased targets p1 0.23 (default model,
lost_state.md). So on the tracking path the bracket counts map_weight =
colour_map_weight when colour_drop <= colour_keep, rising linearly to 1 at
2 x colour_keep; jumps and size changes always count in full. While searching,
candidates pay the colour term instead, and no discount: a thing of other colours
that the model likes (the orange-shirted man beside VOT2015_ball1's red ball)
cannot re-acquire, a target that comes back somewhat changed still can. The colour
reference is the init box (never updated: a drifting tracker cannot teach it a
distractor); the level follows trusted frames like the other levels (lighting).

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

Decision (hysteresis)
---------------------
TRACKING -> LOST   lost_frames consecutive bad frames; or one frame with badness >=
                   very_bad; or persistence >= persist_lost (moderate evidence that
                   keeps coming: e.g. badness 0.8 on 5 frames in a row).
hold_on_bad        on a bad frame the tracker's attributes are put back to the last good
                   frame's: its motion and size state never learn from bad frames
                   (motion_prior: the centre then coasts at the estimated velocity).
LOST -> TRACKING   the search's best candidate, re-evaluated on a crop centred on it, has
                   badness + distance cost <= recover_below (stricter than 1: hysteresis)
                   on recover_frames frames in a row at consistent places (moving <=
                   recover_jump box sizes between them); or < recover_relaxed_below on
                   recover_relaxed_frames frames in a row at consistent places (the scene
                   changed while LOST: the levels then restart from the candidate). The
                   tracker is left in the state the verification crop gave it.

Search while LOST
-----------------
Crops at the target's last trusted size, centred on a grid around the last trusted
position, spacing search_step x the search crop's side s_x (context region x
instance / exemplar). Ring r = the tiles at Chebyshev distance r. Every frame: the
last position, the current candidate, and up to search_tiles tiles going round the
open rings nearest first; one more ring opens every search_grow frames until the
rings cover the image or reach the distance where the distance cost alone
(below) would fail a candidate (reach + recover_relaxed_below /
search_distance_cost, + 1/2 s_x): tiles beyond could not re-acquire, so the budget
goes round the reachable rings more often (UAV123 wakeboard7, back far from where it
vanished after 30 frames in a 1280 x 720 frame, is re-acquired 9 frames after its
return).
The best tile (lowest badness + distance cost) is verified on a crop centred on
its candidate. Distance cost: search_distance_cost x (distance
/ s_x - reach), reach = search_reach + search_reach_rate x frames LOST (in s_x):
right after a loss a look-alike far away needs much stronger evidence than the
target close to where it vanished; the allowance grows as the target may have
moved. Cost while LOST: up to 3 + search_tiles crops per frame (last position,
candidate, tiles, verification: 42-56 ms per LOST frame on one CPU core for the
default model with search_tiles 8 in lost_state.md's runs, against 7-11 ms tracking); the background samples cost one crop in each of the
first background_tiles frames. The scan crops (all but the verification) go
through the network in one batched call (raw_track_many; results identical to one
crop at a time, test_monitor): on the CPU that pays once the allocator keeps the
batch's tensors (core/runtime.py; multi_target.md shows the same effect for
targets), and on a GPU it turns up to 10 calls into one.

Parameters (SUPERVISOR_DEFAULTS) and where the defaults come from
----------------------------------------------------------------
Measured with (docs/benchmarks/lost_state.md, 2026-11-21 11:20 UTC, the stage-2
weights/default.pt and the published NanoTrack v2 weights):

    python -m siam_tracker_ros.evaluation.lost_bench --models default nanotrack \
        --evidence --jobs 2 --sweep entropy_gap_fraction=0.35,0.55 logit_drop_lost=6,12 \
        persist_lost=1.5,3.5 motion_prior=true colour_map_weight=1.0,0.25 \
        colour_keep=0.05,0.12 colour_lost=1000,0.3 recover_relaxed_below=1.0 \
        --markdown docs/benchmarks/lost_state.md --json out/benchmarks/lost_state.json

(the 7 shared sequences: target erased for 10 / 30 frames, a look-alike crossing
beside it, the sequences as they are; the sweep is the one-parameter-at-a-time
margins table). Figures below: default model / NanoTrack, on frames where the
target is visible and tracked ("visible") or in the first 5 frames after it was
erased ("erased"). With the defaults: LOST within 5 frames 10/10 / 10/10 runs,
re-acquired within 10 frames 10/10 / 9/10, false-LOST 0.23% / 0.59% of visible
and tracked frames (default: none outside the look-alike crossings), wrong
TRACKING 1.03% / 0.60% of frames. The same runs on grey frames (`--grey`: no
colour evidence, and the models track worse; docs/benchmarks/lost_state_grey.md):
re-acquired 8/10 / 8/10, false-LOST 2.83% / 4.72%, wrong TRACKING 9.89% / 2.35%.
The stage-1 default model (scores saturated at
0.99+) needed logit_drop_lost 4; the stage-2 model's scores spread more on a
visible target, so 8: when the model changes, rerun the command and check the
evidence tables before trusting the defaults.

entropy_rise_lost     0.06  floor of the entropy threshold. visible: entropy_rise
                            p95 0.048 / 0.059, p99 0.12 / 0.10; erased: median 0.11 / 0.29
entropy_gap_fraction  0.45  erased frames rise 0.3-1.0 of the target-to-background gap,
                            clutter beside a tracked target up to 0.4-0.7. Margins:
                            0.35 -> false-LOST 1.09% / 0.97%, re-acquired 9/10 / 8/10;
                            0.55 -> 0.38% / 0.30%, wrong TRACKING 1.09% / 2.59%
background_tiles      4     one extra crop in each of the first 4 frames
logit_drop_lost       8.0   visible: logit_drop p95 1.6 / 0.15, p99 3.1 / 1.6 (after
                            score_cap); erased: median 1.9 / 2.0, p95 8.6 / 5.0. Margins
                            (default): 6 -> re-acquired 7/10, false-LOST 1.11%, wrong
                            TRACKING 5.49%; 12 -> 0.39%, 1.81%
score_cap             0.99
jump_free 0.5, jump_lost 0.5  visible: jump p95 0.44 / 0.44, p99 0.61 / 0.51 box sizes;
                            a jump of 1 box size (onto a look-alike beside the target) adds 1
size_free 0.2, size_lost 0.3  the trackers smooth the size (lr): changes stay small
score_lost            0.3   absolute floor: visible p1 0.37 / 0.95 (the stage-2 default
                            model's score can sit low on a visible target: a floor, not
                            the decision; it is part of the model's evidence that matching
                            colours discount)
very_bad              3.0   erased: badness median 1.5 / 2.8, p95 5.0 / 4.5; visible p99
                            0.58 / 0.46
lost_frames           3     visible frames are rarely bad (badness >= 1), rarely 3 in a row
persist_drift 0.5, persist_lost 2.5  erased frames that stay at badness 0.6-0.9 (never
                            "bad") add up to LOST; visible frames sit at median 0.01-0.02
                            (p95 0.2-0.3) and do not add up. Margins (default): 1.5 ->
                            re-acquired 8/10, wrong TRACKING 5.61%; 3.5 -> as 2.5
recover_below         0.7   visible: badness p95 0.29 / 0.23, median 0.013 / 0.016
recover_frames 2, recover_jump 1.0
recover_relaxed_below 1.5, recover_relaxed_frames 5  margin: 1.0 -> re-acquired 9/10 / 7/10
warmup 4, level_rate 0.1, trust_below 0.5
hold_on_bad           True
motion_prior          False  constant-velocity prior (velocity: exponential mean of the
                            centre's steps over good frames, rate motion_rate 0.3): bad frames
                            coast the tracker's centre along it instead of holding it, and the
                            search is centred on the predicted place (at most
                            motion_coast_frames 10 frames ahead). Measured (sweep
                            motion_prior=true): default re-acquired 10/10 -> 8/10,
                            false-LOST 0.23% -> 0.96%; NanoTrack unchanged: off by default
colour_keep 0.08, colour_map_weight 0.4  visible: colour_drop p95 0.17 / 0.15, p99
                            0.26 / 0.26; erased: p1 0.23 / 0.12, median 0.26 / 0.24.
                            Margins: colour_map_weight 1.0 (no discount) -> false-LOST
                            2.88% / 1.18%; 0.25 -> unchanged; colour_keep 0.05 -> 0.62%
                            (default), 0.12 -> unchanged
colour_free 0.1, colour_lost 0.5  margins: colour_lost 1000 (no colour term) ->
                            re-acquired 8/10 / 7/10, wrong TRACKING 5.91% / 4.58% (look-alikes
                            of other colours taken while the target is away); 0.3 ->
                            unchanged / re-acquired 8/10 (a target back with other colours
                            on it is refused longer)
search_step 0.5, search_grow 1, search_tiles 8
search_reach 0.25, search_reach_rate 0.05, search_distance_cost 2.0  (in s_x, about 4
                            box sizes): right after a loss 1 box size is free, then 0.2
                            box sizes per frame; the look-alike balls of VOT2015_ball1 lie
                            2-3 box sizes from the target

Known limits (lost_state.md has the per-run figures): what the model and the
colours cannot tell, the supervisor cannot either. An exact copy of the target
crossing right beside it (VOT2015_ball1/distractor) pulls the tracker off the
target for a few frames: LOST there on 3 frames where the search box still
overlapped the target, and TRACKING the wrong place on 11; a look-alike of the
target's colours that the model likes is not refused by the colour term; a target
back in another place much later than the distance allowance expects waits for
the allowance to grow (UAV123 wakeboard7 after 30 frames: 9 frames / NanoTrack
10; NanoTrack on OTB_Crossing/absent10: 14). On grey images the colour evidence
is off: lost_state_grey.md has the figures for that case.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

from .. import geometry
from .base import Tracker, TrackResult, TrackState
from .multi import batched_network, supports_target_batch

SUPERVISOR_DEFAULTS: Dict[str, Any] = dict(
    entropy_rise_lost=0.06,
    entropy_gap_fraction=0.45,
    background_tiles=4,
    logit_drop_lost=8.0,
    score_cap=0.99,
    jump_free=0.5,
    jump_lost=0.5,
    size_free=0.2,
    size_lost=0.3,
    score_lost=0.3,
    very_bad=3.0,
    lost_frames=3,
    persist_drift=0.5,
    persist_lost=2.5,
    recover_below=0.7,
    recover_frames=2,
    recover_jump=1.0,
    recover_relaxed_below=1.5,
    recover_relaxed_frames=5,
    warmup=4,
    level_rate=0.1,
    trust_below=0.5,
    hold_on_bad=True,
    motion_prior=False,
    motion_rate=0.3,
    motion_coast_frames=10,
    search_step=0.5,
    search_grow=1,
    search_tiles=8,
    search_reach=0.25,
    search_reach_rate=0.05,
    search_distance_cost=2.0,
    colour_keep=0.08,
    colour_map_weight=0.4,
    colour_free=0.1,
    colour_lost=0.5,
)

# (type, min, max) per parameter; min/max inclusive, None = unbounded.
_PARAM_SPEC: Dict[str, Tuple[type, Optional[float], Optional[float]]] = dict(
    entropy_rise_lost=(float, 1e-6, 1.0), logit_drop_lost=(float, 1e-6, 100.0),
    entropy_gap_fraction=(float, 0.0, 1.0), background_tiles=(int, 0, 64),
    score_cap=(float, 0.5, 0.9999),
    jump_free=(float, 0.0, None), jump_lost=(float, 1e-6, None),
    size_free=(float, 0.0, None), size_lost=(float, 1e-6, None),
    score_lost=(float, 0.0, 1.0), very_bad=(float, 1.0, None),
    lost_frames=(int, 1, 1000), persist_drift=(float, 0.0, None), persist_lost=(float, 1e-6, None), recover_below=(float, 0.0, 1.0), recover_frames=(int, 1, 1000),
    recover_jump=(float, 0.0, None), recover_relaxed_below=(float, 0.0, None),
    recover_relaxed_frames=(int, 1, 1000), warmup=(int, 1, 1000), level_rate=(float, 1e-6, 1.0),
    trust_below=(float, 0.0, 1.0), hold_on_bad=(bool, None, None),
    motion_prior=(bool, None, None), motion_rate=(float, 1e-6, 1.0), motion_coast_frames=(int, 0, 1000),
    search_step=(float, 0.05, 2.0), search_grow=(int, 1, 1000), search_tiles=(int, 0, 10000),
    search_reach=(float, 0.0, None), search_reach_rate=(float, 0.0, None),
    search_distance_cost=(float, 0.0, None),
    colour_keep=(float, 0.0, 1.0), colour_map_weight=(float, 0.0, 1.0),
    colour_free=(float, 0.0, 1.0), colour_lost=(float, 1e-6, None),
)


def validate_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """Checked, typed copy of supervisor parameters; ValueError names the bad one."""
    out = {}
    for key, value in params.items():
        if key not in _PARAM_SPEC:
            raise ValueError(f"unknown supervisor parameter {key!r}; known: {', '.join(sorted(_PARAM_SPEC))}")
        kind, lo, hi = _PARAM_SPEC[key]
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"{key} must be true or false, got {value!r}")
                value = value.lower() in ("true", "1")
            out[key] = bool(value)
            continue
        try:
            if isinstance(value, bool):
                raise TypeError
            v = kind(value)
            if kind is int and float(value) != v:
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be {kind.__name__}, got {value!r}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{key} must be finite, got {value!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"{key}={v} out of range [{lo}, {hi if hi is not None else 'inf'}]")
        out[key] = v
    return out


# --------------------------------------------------------------------------- evidence
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


def _center(box) -> np.ndarray:
    return np.array([box[0] + box[2] / 2.0, box[1] + box[3] / 2.0])


def box_change(prev_box, box) -> Tuple[float, float]:
    """(centre jump in box sizes of prev_box, |log side-length ratio|)."""
    prev_side = math.sqrt(max(prev_box[2] * prev_box[3], 1e-12))
    jump = float(np.linalg.norm(_center(box) - _center(prev_box)) / prev_side)
    area = max(box[2] * box[3], 1e-12)
    size = abs(math.log(area / max(prev_box[2] * prev_box[3], 1e-12))) / 2.0
    return jump, size


# --------------------------------------------------------------------------- tracker state
def snapshot(tracker: Tracker) -> Dict[str, Any]:
    """The tracker's attributes (numpy arrays copied; tensors and the model shared:
    the trackers replace them, they do not change them in place)."""
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(tracker).items()}


def restore(tracker: Tracker, snap: Dict[str, Any]) -> None:
    for k, v in snap.items():
        setattr(tracker, k, v.copy() if isinstance(v, np.ndarray) else v)


def _raw_track(tracker: Tracker, image: np.ndarray, center) -> TrackResult:
    """tracker._track on a crop centred on `center` (the caller saves / restores state)."""
    tracker.center = np.asarray(center, dtype=np.float64).copy()
    tracker.image_size = (image.shape[1], image.shape[0])
    with torch.inference_mode():
        result = tracker._track(image)
    result.box = geometry.clip_box(result.box, *tracker.image_size)
    result.score = float(np.clip(result.score, 0.0, 1.0))
    return result


def raw_track_many(tracker: Tracker, image: np.ndarray, centers, snap: Dict[str, Any]) -> List[TrackResult]:
    """_raw_track at each centre, the tracker in state `snap` before each and after
    all; the crops go through the network in ONE call when the model can batch
    (core/tracking/multi.py: on the CPU per-crop results are identical to one call
    per crop; on a GPU this is where a LOST target's search gets cheap)."""
    results = []
    if len(centers) < 2 or not supports_target_batch(tracker.model):
        for c in centers:
            results.append(_raw_track(tracker, image, c))
            restore(tracker, snap)
        return results
    prepared = []
    for c in centers:
        tracker.center = np.asarray(c, dtype=np.float64).copy()
        prepared.append(tracker.track_prepare(image))
        restore(tracker, snap)
    parts, _ = batched_network([tracker] * len(prepared), prepared)
    for c, p, part in zip(centers, prepared, parts):
        tracker.center = np.asarray(c, dtype=np.float64).copy()
        results.append(tracker.track_finish(p, part))
        restore(tracker, snap)
    return results


def search_side(tracker: Tracker) -> float:
    """Side in image px of the tracker's search crop at its current size."""
    p = tracker.params
    s_z = geometry.context_size(tracker.size[0], tracker.size[1], p.get("context_amount", 0.5))
    return s_z * float(p.get("instance_size", 255)) / float(p.get("exemplar_size", 127))


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


# --------------------------------------------------------------------------- supervisor
class TargetSupervisor:
    """TRACKING / LOST decisions and re-acquisition around one Tracker (module docstring)."""

    def __init__(self, tracker: Tracker, **params):
        self.tracker = tracker
        self.params: Dict[str, Any] = dict(SUPERVISOR_DEFAULTS)
        self.params.update(validate_params(params))
        self._reset_state()

    # -- public API ------------------------------------------------------------------
    def set_params(self, **kw) -> None:
        """Change parameters at run time (all checked before any is applied)."""
        self.params.update(validate_params(kw))

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
        self._good = snapshot(self.tracker)
        self._colour_ref = colour_histogram(image, self._prev_box)
        # The first level sample: a crop centred on the target in the init frame
        # (tracker state restored), so that a target gone right after init is judged.
        try:
            res = _raw_track(self.tracker, image, self.tracker.center)
        finally:
            restore(self.tracker, self._good)
        cmap = res.confidence_map
        ent = normalized_entropy(cmap) if cmap is not None and np.size(cmap) > 1 else float("nan")
        self._learn({"entropy": ent, "score": float(res.score), "badness": 0.0,
                     "colour": colour_similarity(colour_histogram(image, res.box), self._colour_ref)})

    def reset(self) -> None:
        self.tracker.reset()
        self._reset_state()

    def step(self, image: np.ndarray) -> TrackResult:
        if self.searching:
            return self.search(image)
        return self.update(image, self.tracker.track(image))

    def update(self, image: np.ndarray, raw: TrackResult) -> TrackResult:
        """Judge `raw` (= tracker.track(image) of this frame) on the TRACKING path."""
        if self._state == TrackState.IDLE:
            raise RuntimeError("TargetSupervisor.update() before init()")
        if self.searching:
            raise RuntimeError("update() while LOST: call search(image) (or step(image))")
        p = self.params
        if len(self._bg_entropy) < p["background_tiles"]:
            self._sample_background(image)
        ev = self.evidence(raw, self._prev_box, image=image)
        self._frames += 1
        bad = ev["badness"] >= 1.0
        if bad:
            self._bad_run += 1
        else:
            self._bad_run = 0
        # Persistence (CUSUM): moderate evidence that keeps coming adds up.
        self._persist = max(0.0, self._persist + ev["badness"] - p["persist_drift"])
        lost = ((bad and (self._bad_run >= p["lost_frames"] or ev["badness"] >= p["very_bad"]))
                or self._persist >= p["persist_lost"])
        if not bad and not lost:
            self._learn(ev)
            self._learn_motion(np.asarray(raw.box, dtype=np.float64))
            self._prev_box = np.asarray(raw.box, dtype=np.float64)
            self._good = snapshot(self.tracker)
            self._last_good_box = self._prev_box.copy()
        else:
            self._since_good += 1
            if p["hold_on_bad"] or lost:
                restore(self.tracker, self._good)
                if p["motion_prior"]:
                    self.tracker.center = self._predicted_center(image)
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
        """The LOST path: widening search; re-acquires when the recover evidence holds."""
        if not self.searching:
            raise RuntimeError("search() while not LOST: call update() (or step(image))")
        p = self.params
        trk = self.tracker
        restore(trk, self._good)
        self._lost_frames_seen += 1
        self._since_good += 1
        size = (image.shape[1], image.shape[0])
        side_x = search_side(trk)
        step = max(side_x * p["search_step"], 1.0)
        anchor = self._predicted_center(image) if p["motion_prior"] else _center(self._last_good_box)
        reach = p["search_reach"] + p["search_reach_rate"] * (self._lost_frames_seen - 1)
        self._open_ring = min(rings_to_cover(anchor, step, size),
                              1 + (self._lost_frames_seen - 1) // p["search_grow"],
                              self._useful_rings(reach, side_x, step))
        centers = [ring_tiles(anchor, step, 0, size)[0]]
        if self._candidate is not None:
            centers.append(self._candidate[0])
        centers += self._next_tiles(anchor, step, size, p["search_tiles"])

        def far_cost(box) -> float:
            d = float(np.linalg.norm(_center(box) - anchor)) / side_x
            return p["search_distance_cost"] * max(0.0, d - reach)

        best: Optional[Tuple[float, TrackResult, Dict[str, float]]] = None
        center_badness = float("nan")
        scans = raw_track_many(trk, image, centers, self._good)
        for k, res in enumerate(scans):
            ev = self.evidence(res, None, image=image, searching=True)
            if k == 0:
                center_badness = ev["badness"]
            b = ev["badness"] + far_cost(res.box)
            if best is None or b < best[0]:
                best = (b, res, ev)
        # Re-evaluate the best candidate on a crop centred on it (tracking conditions).
        cand_center = _center(best[1].box)
        res = _raw_track(trk, image, cand_center)
        ev = self.evidence(res, None, image=image, searching=True)
        n_crops = len(centers) + 1
        ev["distance_cost"] = far_cost(res.box)
        b_eff = ev["badness"] + ev["distance_cost"]
        strict = b_eff <= p["recover_below"]
        relaxed = b_eff < p["recover_relaxed_below"]
        passed = strict
        if relaxed:
            here = _center(res.box)
            side = math.sqrt(max(self._last_good_box[2] * self._last_good_box[3], 1e-12))
            consistent = (self._candidate is not None and
                          np.linalg.norm(here - self._candidate[0]) / side <= p["recover_jump"])
            self._cand_run = (self._cand_run + 1) if (consistent and strict) else int(strict)
            self._relaxed_run = (self._relaxed_run + 1) if consistent else 1
            self._candidate = (here, res.box.copy())
        else:
            self._cand_run = 0
            self._relaxed_run = 0
            self._candidate = None
        via_relaxed = relaxed and self._relaxed_run >= p["recover_relaxed_frames"]
        if (strict and self._cand_run >= p["recover_frames"]) or via_relaxed:
            # Re-acquired: keep the state that the verification crop gave the tracker.
            if not (strict and self._cand_run >= p["recover_frames"]):
                # Found by persistence, not by likeness to the old levels: the scene
                # changed, so the levels start again from what the target looks like now.
                self._ent_level = ev["entropy"] if math.isfinite(ev["entropy"]) else self._ent_level
                self._logit_level = logit(ev["score"], p["score_cap"])
            self._state = TrackState.TRACKING
            self._bad_run = 0
            self._prev_box = np.asarray(res.box, dtype=np.float64)
            self._last_good_box = self._prev_box.copy()
            self._velocity = np.zeros(2)
            self._since_good = 0
            self._good = snapshot(trk)
            self._candidate = None
            self._cand_run = 0
            self._relaxed_run = 0
            passed = True
        else:
            restore(trk, self._good)
        ev["bad"] = float(not passed)
        ev["lost_count"] = float(self._bad_run)
        ev["search_tiles"] = float(n_crops)
        ev["search_center_badness"] = center_badness
        ev["search_distance"] = float(np.linalg.norm(_center(res.box) - anchor)
                                      / math.sqrt(max(self._last_good_box[2] * self._last_good_box[3], 1e-12)))
        ev["search_ring"] = float(self._open_ring)
        ev["state"] = float(self._state)
        res.state = self._state
        res.evidence = ev
        return res

    def evidence(self, raw: TrackResult, prev_box, relative: bool = True, image: Optional[np.ndarray] = None,
                 searching: bool = False) -> Dict[str, float]:
        """The per-frame evidence (module docstring) of one raw result, judged against
        this target's running levels (when `relative` and a level exists); prev_box
        None: no jump / size terms (search crops); image None: no colour evidence;
        searching: a search candidate (the colour term applies, not the colour discount)."""
        p = self.params
        cmap = raw.confidence_map
        ent = normalized_entropy(cmap) if cmap is not None and np.size(cmap) > 1 else float("nan")
        psr = peak_to_sidelobe(cmap) if cmap is not None and np.size(cmap) > 1 else float("nan")
        score = float(raw.score)
        if prev_box is not None:
            jump, size = box_change(prev_box, raw.box)
        else:
            jump, size = 0.0, 0.0
        warm = relative and self._level_n >= 1
        rise = (ent - self._ent_level) if (warm and math.isfinite(ent)) else 0.0
        drop = (self._logit_level - logit(score, p["score_cap"])) if warm else 0.0
        colour = (colour_similarity(colour_histogram(image, raw.box), self._colour_ref)
                  if image is not None and self._colour_ref is not None else float("nan"))
        colour_drop = (self._colour_level - colour) if (warm and self._colour_n and math.isfinite(colour)
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
                "entropy_level": self._ent_level if warm else float("nan"),
                "entropy_threshold": self.entropy_threshold(),
                "background_entropy": self._bg_level,
                "score_level": (1.0 / (1.0 + math.exp(-self._logit_level))) if warm else float("nan")}

    # -- internals -------------------------------------------------------------------
    def _reset_state(self) -> None:
        self._state = TrackState.IDLE
        self._bg_entropy: List[float] = []
        self._bg_level = float("nan")
        self._gap: Optional[float] = None
        self._bad_run = 0
        self._persist = 0.0
        self._velocity = np.zeros(2)
        self._since_good = 0
        self._frames = 0
        self._ent_level = 0.0
        self._logit_level = 0.0
        self._colour_level = 0.0
        self._colour_ref = None
        self._colour_n = 0
        self._level_n = 0
        self._prev_box = None
        self._last_good_box = None
        self._good: Optional[Dict[str, Any]] = None
        self._lost_frames_seen = 0
        self._open_ring = 0
        self._tile_queue: List[np.ndarray] = []
        self._queued_ring = 0
        self._candidate = None
        self._cand_run = 0
        self._relaxed_run = 0

    def _learn_motion(self, box: np.ndarray) -> None:
        """Constant-velocity estimate (px / frame) from good frames, exponential
        with rate motion_rate; a gap of bad frames counts as that many frames."""
        if self._last_good_box is not None:
            step = (_center(box) - _center(self._last_good_box)) / (self._since_good + 1)
            self._velocity = self._velocity + self.params["motion_rate"] * (step - self._velocity)
        self._since_good = 0

    def _predicted_center(self, image: np.ndarray) -> np.ndarray:
        """Last good centre moved on by the velocity for the frames since (at most
        motion_coast_frames), kept inside the image."""
        n = min(self._since_good, self.params["motion_coast_frames"])
        c = _center(self._last_good_box) + self._velocity * n
        w, h = image.shape[1], image.shape[0]
        return np.array([min(max(c[0], 0.0), w), min(max(c[1], 0.0), h)])

    def entropy_threshold(self) -> float:
        """The entropy rise that alone makes a frame bad: entropy_gap_fraction of the way
        from the target's level to the background's (measured on this target's first
        frames), at least entropy_rise_lost."""
        p = self.params
        if self._gap is None:
            return 2.0 * p["entropy_rise_lost"]      # until the background is measured
        return max(p["entropy_rise_lost"], p["entropy_gap_fraction"] * self._gap)

    def _sample_background(self, image: np.ndarray) -> None:
        """One crop at a background place (one search-crop side away from the target, the
        k-th of right/left/below/above/diagonals) -> its map entropy; after the last one
        the background level and the target-to-background gap are fixed."""
        trk = self.tracker
        k = len(self._bg_entropy)
        dirs = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))
        d = np.array(dirs[k % len(dirs)], dtype=np.float64) * (1.0 + k // len(dirs))
        side = search_side(trk)
        center = np.asarray(trk.center, dtype=np.float64) + d * side
        w, h = image.shape[1], image.shape[0]
        center = np.array([min(max(center[0], 0.0), w), min(max(center[1], 0.0), h)])
        if np.max(np.abs(center - np.asarray(trk.center))) < 0.5 * side:
            # Clamped into the image, the crop would still hold the target (a large
            # target in a small frame): not a background sample.
            self._bg_entropy.append(float("nan"))
            return
        snap = snapshot(trk)
        try:
            res = _raw_track(trk, image, center)
        finally:
            restore(trk, snap)
        cmap = res.confidence_map
        self._bg_entropy.append(normalized_entropy(cmap) if cmap is not None and np.size(cmap) > 1
                                else float("nan"))

    def _fix_gap(self) -> None:
        vals = [v for v in self._bg_entropy if math.isfinite(v)]
        if vals and self._gap is None and self._level_n >= self.params["warmup"]:
            self._bg_level = float(np.median(vals))
            self._gap = max(0.0, self._bg_level - self._ent_level)

    def _running(self, level: float, n: int, value: float) -> float:
        """A level after its (n+1)-th sample: plain mean over the first `warmup`
        samples, then exponential with rate level_rate."""
        if n < self.params["warmup"]:
            return (level * n + value) / (n + 1)
        return level + self.params["level_rate"] * (value - level)

    def _learn(self, ev: Dict[str, float]) -> None:
        """Update the running levels from a trusted frame."""
        if ev["badness"] >= self.params["trust_below"] and self._level_n >= self.params["warmup"]:
            return
        ent, lg = ev["entropy"], logit(ev["score"], self.params["score_cap"])
        if not math.isfinite(ent):
            ent = self._ent_level
        self._ent_level = self._running(self._ent_level, self._level_n, ent)
        self._logit_level = self._running(self._logit_level, self._level_n, lg)
        self._level_n += 1
        colour = ev.get("colour", float("nan"))
        if math.isfinite(colour):            # grey images have no colour level
            self._colour_level = self._running(self._colour_level, self._colour_n, colour)
            self._colour_n += 1
        if self._gap is None and len(self._bg_entropy) >= self.params["background_tiles"]:
            self._fix_gap()

    def _enter_lost(self) -> None:
        self._state = TrackState.LOST
        self._persist = 0.0
        self._lost_frames_seen = 0
        self._open_ring = 0
        self._tile_queue = []
        self._queued_ring = 0
        self._candidate = None
        self._cand_run = 0
        self._relaxed_run = 0

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
                if self._queued_ring >= self._open_ring:
                    self._queued_ring = 0         # every open ring seen: start again
                    guard += 1
                    if self._open_ring == 0:
                        break
                self._queued_ring += 1
                self._tile_queue = ring_tiles(anchor, step, self._queued_ring, size)
                continue
            out.append(self._tile_queue.pop(0))
        return out
