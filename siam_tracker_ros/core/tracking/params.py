"""The tracking parameters: every tracker and target-supervisor parameter, one row each.

    TRACKER_PARAMS     the tracker section of a model YAML (config/models/*.yaml);
                       a default per tracker type where the types differ
    SUPERVISOR_PARAMS  core/tracking/monitor.py's TargetSupervisor

Each row (core/params.py Param) has the default, the accepted range, what the
parameter does and whether a change needs a model reload. The same rows check
a model YAML's tracker section when a tracker is built (an unknown key is an
error), the supervisor's keyword arguments, and give the node its
`tracker.<name>` / `supervisor.<name>` parameters (ros/params.py: range and
description from here; the reload=False tracker rows change at run time).

Where the supervisor defaults come from: docs/benchmarks/lost_state.md (made by
`python -m siam_tracker_ros.evaluation.lost_bench`, the command is in it).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from ..params import Param, check_values, table

ANCHOR_BASED, ANCHOR_FREE, SIAMFC = "anchor_based", "anchor_free", "siamfc"
ALL_TRACKERS = (ANCHOR_BASED, ANCHOR_FREE, SIAMFC)


def _each(value) -> Dict[str, Any]:
    return {kind: value for kind in ALL_TRACKERS}


TRACKER_PARAMS = table((
    # geometry: fixed by the model (a change needs a reload)
    Param("exemplar_size", {ANCHOR_BASED: 127, ANCHOR_FREE: None, SIAMFC: 127},
          "Side in px of the template crop fed to the network (None: the model's exemplar_size).",
          range=(16, 1024), kind=int, optional=True, reload=True),
    Param("instance_size", {ANCHOR_BASED: 255, ANCHOR_FREE: None, SIAMFC: 255},
          "Side in px of the search crop fed to the network (None: the model's instance_size).",
          range=(32, 2048), kind=int, optional=True, reload=True),
    Param("context_amount", _each(0.5),
          "Context added around the target box for the crops: side = sqrt((w + c(w+h)) (h + c(w+h))).",
          range=(0.0, 4.0), reload=True),
    Param("stride", {ANCHOR_FREE: None},
          "Network stride in crop px between two score-map points (None: the model's stride).",
          range=(1, 64), kind=int, optional=True, reload=True),
    Param("anchor_stride", {ANCHOR_BASED: 8},
          "Stride in crop px between two anchor centres of the score map.",
          range=(1, 64), kind=int, reload=True),
    Param("anchor_ratios", {ANCHOR_BASED: [0.33, 0.5, 1, 2, 3]},
          "Anchor aspect ratios h / w (pysot order); their number times the scales' must be the model's "
          "anchors per cell.", kind=list, reload=True),
    Param("anchor_scales", {ANCHOR_BASED: [8]},
          "Anchor scales (multiples of the stride).", kind=list, reload=True),
    Param("total_stride", {SIAMFC: 8},
          "Network stride in crop px between two response-map cells.", range=(1, 64), kind=int, reload=True),
    Param("response_up", {SIAMFC: 16},
          "Upsampling factor of the response map before the peak is taken.",
          range=(1, 64), kind=int, reload=True),
    Param("scale_step", {SIAMFC: 1.0375},
          "Ratio between two neighbouring search scales of the pyramid.", range=(1.0, 2.0), reload=True),
    Param("scale_num", {SIAMFC: 3},
          "Number of search scales (an odd number keeps the current scale in the middle).",
          range=(1, 15), kind=int, reload=True),
    # selection and update: read at every frame (change at run time)
    Param("penalty_k", {ANCHOR_BASED: 0.05, ANCHOR_FREE: 0.15},
          "Penalty on size and aspect-ratio changes: score x exp(-(r_c s_c - 1) k); 0 = none.",
          range=(0.0, 10.0)),
    Param("window_influence", {ANCHOR_BASED: 0.42, ANCHOR_FREE: 0.49, SIAMFC: 0.176},
          "Weight of the cosine window against large jumps: (1 - w) score + w window.",
          range=(0.0, 1.0)),
    Param("lr", {ANCHOR_BASED: 0.38, ANCHOR_FREE: 0.385},
          "How fast the box size follows the prediction: size learning rate x penalty x score.",
          range=(0.0, 1.0)),
    Param("scale_penalty", {SIAMFC: 0.9745},
          "Factor on the peak of every scale but the current one (< 1 favours keeping the size).",
          range=(0.0, 1.0)),
    Param("scale_lr", {SIAMFC: 0.59},
          "How fast the size follows the best scale (0: never, 1: at once).", range=(0.0, 1.0)),
    # read when the tracker is built
    Param("min_size", _each(10.0),
          "Smallest box side in image px the tracker keeps.", range=(1.0, 10000.0), reload=True),
    Param("lost_threshold", _each(0.0),
          "The bare tracker's own cut: a result scoring below it is reported LOST (0: never). "
          "Not the target supervisor's decision (its score_lost).", range=(0.0, 1.0), reload=True),
    Param("cpu_threads", _each(None),
          "Torch threads while this tracker's network runs on the CPU, restored afterwards "
          "(None: torch's own setting).", range=(1, 256), kind=int, optional=True, reload=True),
))


def tracker_defaults(kind: str) -> Dict[str, Any]:
    """The defaults of a tracker type (the DEFAULTS of its class)."""
    return {p.name: p.default_for(kind) for p in TRACKER_PARAMS.values() if p.applies_to(kind)}


def check_tracker_params(kind: str, params: Mapping[str, Any]) -> None:
    """ValueError for a key the tracker type does not have or a value out of its range
    (the values themselves are left as they are)."""
    rows = {name: p for name, p in TRACKER_PARAMS.items() if p.applies_to(kind)}
    check_values(rows, params, f"{kind} tracker")


def runtime_tracker_params(kind: str) -> Dict[str, Param]:
    """The rows of a tracker type that change at run time (reload=False)."""
    return {name: p for name, p in TRACKER_PARAMS.items() if p.applies_to(kind) and not p.reload}


SUPERVISOR_PARAMS = table((
    Param("entropy_rise_lost", 0.06,
          "Floor of the entropy threshold: a rise of the confidence map's entropy above the target's "
          "level by this much (or by entropy_gap_fraction of the background gap) alone makes a frame bad.",
          range=(1e-6, 1.0)),
    Param("entropy_gap_fraction", 0.45,
          "Entropy threshold as a fraction of the gap between the target's entropy level and the "
          "background's (measured on background_tiles crops).", range=(0.0, 1.0)),
    Param("background_tiles", 4,
          "Frames after an init that each take one extra crop away from the target to measure the "
          "background entropy.", range=(0, 64)),
    Param("logit_drop_lost", 8.0,
          "Drop of the score below the target's level, in log-odds, that alone makes a frame bad.",
          range=(1e-6, 100.0)),
    Param("score_cap", 0.99,
          "Scores above it count as it in the score evidence (noise near 1 is not a drop).",
          range=(0.5, 0.9999)),
    Param("jump_free", 0.5, "Centre jump in box sizes that costs nothing.", range=(0.0, 100.0)),
    Param("jump_lost", 0.5, "Centre jump beyond jump_free, in box sizes, that alone makes a frame bad.",
          range=(1e-6, 1e6)),
    Param("size_free", 0.2, "Box size change (|log side ratio|) that costs nothing.", range=(0.0, 100.0)),
    Param("size_lost", 0.3, "Box size change beyond size_free that alone makes a frame bad.",
          range=(1e-6, 1e6)),
    Param("score_lost", 0.3,
          "Absolute score floor: a frame whose score is below it counts as bad (lost_frames bad frames "
          "in a row -> LOST).", range=(0.0, 1.0)),
    Param("very_bad", 3.0, "Badness at which one frame alone makes the target LOST.", range=(1.0, 1e6)),
    Param("lost_frames", 3, "Bad frames in a row (badness >= 1) that make the target LOST.",
          range=(1, 1000)),
    Param("persist_drift", 0.5,
          "Badness per frame that the persistence sum forgives (CUSUM drift).", range=(0.0, 100.0)),
    Param("persist_lost", 2.5,
          "Persistence sum (moderate badness that keeps coming) that makes the target LOST.",
          range=(1e-6, 1e6)),
    Param("recover_below", 0.7,
          "A LOST target's re-found candidate must have a badness (plus distance cost) at or below it on "
          "recover_frames frames to be TRACKING again; lower = stricter.", range=(0.0, 1.0)),
    Param("recover_frames", 2, "Frames in a row the strict recover test must pass.", range=(1, 1000)),
    Param("recover_jump", 1.0,
          "How far, in box sizes, the candidate may move between two recover frames and still count "
          "as the same.", range=(0.0, 100.0)),
    Param("recover_relaxed_below", 1.5,
          "The relaxed recover test: badness below it on recover_relaxed_frames frames in a row at "
          "consistent places re-acquires (the scene changed while LOST).", range=(0.0, 100.0)),
    Param("recover_relaxed_frames", 5, "Frames in a row the relaxed recover test must pass.",
          range=(1, 1000)),
    Param("warmup", 4,
          "Trusted frames averaged plainly into the target's levels before they follow at level_rate.",
          range=(1, 1000)),
    Param("level_rate", 0.1, "Rate at which the target's entropy, score and colour levels follow "
          "trusted frames.", range=(1e-6, 1.0)),
    Param("trust_below", 0.5, "Frames with a badness below it update the target's levels.",
          range=(0.0, 1.0)),
    Param("hold_on_bad", True,
          "On a bad frame put the tracker back to the last good frame's state (it never learns from "
          "bad frames)."),
    Param("motion_prior", False,
          "Constant-velocity prior: bad frames coast the tracker's centre along the estimated velocity "
          "and the search is centred on the predicted place."),
    Param("motion_rate", 0.3, "Rate of the exponential mean of the centre's steps (the velocity).",
          range=(1e-6, 1.0)),
    Param("motion_coast_frames", 10, "Frames at most the motion prior predicts ahead.", range=(0, 1000)),
    Param("search_step", 0.5, "Spacing of the LOST search grid, in search-crop sides.",
          range=(0.05, 2.0)),
    Param("search_grow", 1, "Frames between two rings of the LOST search opening.", range=(1, 1000)),
    Param("search_tiles", 8, "Grid crops per LOST frame beyond the last position and the candidate.",
          range=(0, 10000)),
    Param("search_reach", 0.25,
          "Distance from the last trusted place, in search-crop sides, a candidate may have for free "
          "right after the loss.", range=(0.0, 100.0)),
    Param("search_reach_rate", 0.05, "Growth of that free distance per LOST frame, in search-crop sides.",
          range=(0.0, 100.0)),
    Param("search_distance_cost", 2.0,
          "Badness added per search-crop side a candidate lies beyond the free distance.",
          range=(0.0, 1000.0)),
    Param("colour_keep", 0.08,
          "Colour drop (against the init box's colours) up to which the model's evidence is discounted "
          "to colour_map_weight.", range=(0.0, 1.0)),
    Param("colour_map_weight", 0.4,
          "Weight of the model's evidence while the box keeps the target's colours.", range=(0.0, 1.0)),
    Param("colour_free", 0.1, "Colour drop a search candidate may have for free.", range=(0.0, 1.0)),
    Param("colour_lost", 0.5,
          "Colour drop beyond colour_free that alone fails a search candidate (large: no colour term).",
          range=(1e-6, 1e6)),
))

SUPERVISOR_DEFAULTS: Dict[str, Any] = {name: p.default for name, p in SUPERVISOR_PARAMS.items()}


def validate_supervisor_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Checked, typed copy of supervisor parameters; ValueError names the bad one."""
    return check_values(SUPERVISOR_PARAMS, params, "supervisor")
