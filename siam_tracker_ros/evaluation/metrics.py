"""Single-object tracking metrics, as the public toolkits define them.

All boxes are float (x, y, w, h), 0-based, arrays of shape (N, 4); IoU and
centre distance come from :mod:`siam_tracker_ros.core.geometry` (continuous
coordinates: a box covers [x, x + w), no "+1 pixel" convention, as in the
got10k toolkit and current pysot).

Metrics and their conventions
-----------------------------
OPE success (OTB / UAV123 / LaSOT; pysot ``success_overlap``, got10k
``ExperimentOTB``)
    Per frame IoU; success at threshold t means IoU > t (strictly greater) for
    the 21 thresholds 0, 0.05, ..., 1.0. The success curve of a sequence is the
    fraction of frames that succeed; AUC = mean of the 21 curve values (the
    "success score"). Frame 0 (initialised with the ground truth) is included,
    as both toolkits do. Several sequences: curves are averaged over sequences
    (each sequence weighs the same), AUC of the mean curve = mean of AUCs.
Precision (OTB): centre error <= t px for t = 0, 1, ..., 50; P@20 = curve[20].
Normalised precision (LaSOT, TrackingNet; pysot ``eval_norm_precision``)
    The centre error is measured after dividing x by the ground-truth width and
    y by the ground-truth height: sqrt((dx / w_gt)^2 + (dy / h_gt)^2), success
    at t means <= t for t = 0, 0.01, ..., 0.50; reported at 0.20 (curve[20]).
    AUC of that curve (mean over the 51 points) is also returned.
GOT-10k AO / SR (got10k ``ExperimentGOT10k``)
    Frame 0 excluded. AO = mean IoU, SR0.5 / SR0.75 = fraction of frames with
    IoU > 0.5 / > 0.75. Over several sequences the IoUs of all sequences are
    concatenated first (frame-weighted, as the GOT-10k toolkit does), unlike
    the OPE numbers which weigh sequences equally.
VOT-style reset protocol (VOT2016-2019 baseline experiment; pysot
``AccuracyRobustnessBenchmark``)
    A failure is a frame where the overlap with the ground truth is 0 (both
    boxes clipped to the image); the tracker is re-initialised on the ground
    truth 5 frames later (the 4 frames in between are not tracked). Accuracy =
    mean overlap over tracked frames, ignoring a burn-in of 10 frames after
    every (re-)initialisation (the initialisation frame is the first of the
    10), the failure frames and the skipped frames. Robustness = failures per
    100 frames (pysot's "Robustness" column: total failures / total frames x
    100); the raw failure count ("lost number") is reported too.

Frames whose target is absent
-----------------------------
A ground-truth box is *invalid* when any value is NaN (UAV123's annotation
rows for out-of-view frames) or its width or height is not > 0 (zero rows in
some datasets); datasets can also flag frames as absent (LaSOT
full_occlusion / out_of_view, GOT-10k absence.label / cover.label == 0).

``absent="exclude"`` (the default, got10k toolkit: ``ExperimentUAV123`` /
``ExperimentLaSOT`` drop rows with NaN ground truth, ``ExperimentGOT10k`` keeps
frames with cover > 0 only)
    invalid and absent frames are removed from numerator and denominator of
    every metric.
``absent="pysot"`` (pysot's OPEBenchmark, reproduced quirks included)
    success: invalid and absent frames stay in the denominator and count as
    failures at every threshold; precision and normalised precision: absent
    frames count as failures, but invalid ground truth counts as a *success* at
    every threshold (pysot sets the distance to -1; its mask is "centre > 0",
    which differs from "invalid" only for boxes centred at or beyond the image's
    top/left edge).
GOT-10k AO/SR always exclude invalid and absent frames (that toolkit's rule).
VOT protocol: an invalid ground-truth frame cannot fail and has no overlap.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..core import geometry

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)          # 0, 0.05, ..., 1.0
PIXEL_THRESHOLDS = np.arange(0, 51, dtype=np.float64)   # 0 .. 50 px
NORM_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0   # 0 .. 0.50
PRECISION_INDEX = 20    # 20 px / 0.20 normalised
ABSENT_POLICIES = ("exclude", "pysot")


def _as_boxes(boxes) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (N, 4), got {arr.shape}")
    return arr


def valid_gt_mask(gt) -> np.ndarray:
    """True where the ground-truth box is usable: finite and w > 0, h > 0."""
    g = _as_boxes(gt)
    with np.errstate(invalid="ignore"):
        return np.all(np.isfinite(g), axis=1) & (g[:, 2] > 0) & (g[:, 3] > 0)


def _check(pred, gt, absent):
    p = _as_boxes(pred)
    g = _as_boxes(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction and ground truth differ in length: {p.shape} vs {g.shape}")
    if absent is None:
        a = np.zeros(len(g), dtype=bool)
    else:
        a = np.asarray(absent, dtype=bool).reshape(-1)
        if a.shape[0] != g.shape[0]:
            raise ValueError(f"absent flags ({a.shape[0]}) and ground truth ({g.shape[0]}) differ in length")
    return p, g, a


def _check_policy(absent_policy: str) -> None:
    if absent_policy not in ABSENT_POLICIES:
        raise ValueError(f"absent_policy must be one of {ABSENT_POLICIES}, got {absent_policy!r}")


def frame_ious(pred, gt, bound: Optional[Sequence[float]] = None) -> np.ndarray:
    """IoU per frame; NaN where the ground truth is invalid, 0 where the prediction is
    not finite (a tracker that returns NaN has failed on that frame).

    `bound` = (width, height): clip both boxes to the image first (GOT-10k and VOT do).
    """
    p = _as_boxes(pred).copy()
    g = _as_boxes(gt).copy()
    valid = valid_gt_mask(g)
    if bound is not None:
        p = _clip_to_bound(p, bound)
        g = _clip_to_bound(g, bound)
    bad_pred = ~np.all(np.isfinite(p), axis=1)
    p[bad_pred] = 0.0
    g_safe = np.where(valid[:, None], g, 0.0)
    out = geometry.iou(p, g_safe)
    out[bad_pred] = 0.0
    out[~valid] = np.nan
    return out


def _clip_to_bound(boxes: np.ndarray, bound) -> np.ndarray:
    w, h = float(bound[0]), float(bound[1])
    xyxy = geometry.xywh_to_xyxy(boxes)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, w)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, h)
    return geometry.xyxy_to_xywh(xyxy)


def center_errors(pred, gt) -> np.ndarray:
    """Centre distance in px per frame; NaN where the ground truth is invalid,
    inf where the prediction is not finite (never within a threshold)."""
    p = _as_boxes(pred)
    g = _as_boxes(gt)
    valid = valid_gt_mask(g)
    out = geometry.center_distance(p, np.where(valid[:, None], g, 0.0))
    out[~np.all(np.isfinite(p), axis=1)] = np.inf
    out[~valid] = np.nan
    return out


def normalized_center_errors(pred, gt) -> np.ndarray:
    """Centre distance with x divided by the ground-truth width and y by its height."""
    p = _as_boxes(pred)
    g = _as_boxes(gt)
    valid = valid_gt_mask(g)
    g_safe = np.where(valid[:, None], g, 1.0)
    cp = geometry.xywh_to_cxcywh(p)[:, :2]
    cg = geometry.xywh_to_cxcywh(g_safe)[:, :2]
    out = np.linalg.norm((cp - cg) / g_safe[:, 2:], axis=1)
    out[~np.all(np.isfinite(p), axis=1)] = np.inf
    out[~valid] = np.nan
    return out


def _curve_above(values: np.ndarray, thresholds: np.ndarray, denominator: int) -> np.ndarray:
    if denominator <= 0:
        return np.full(len(thresholds), np.nan)
    return np.array([np.count_nonzero(values > t) for t in thresholds], dtype=np.float64) / denominator


def _curve_within(values: np.ndarray, thresholds: np.ndarray, denominator: int) -> np.ndarray:
    if denominator <= 0:
        return np.full(len(thresholds), np.nan)
    return np.array([np.count_nonzero(values <= t) for t in thresholds], dtype=np.float64) / denominator


def success_curve(pred, gt, absent=None, absent_policy: str = "exclude",
                  thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with IoU > t for each threshold (see module docstring)."""
    _check_policy(absent_policy)
    p, g, a = _check(pred, gt, absent)
    ious = frame_ious(p, g)
    if absent_policy == "exclude":
        keep = ~np.isnan(ious) & ~a
        return _curve_above(ious[keep], thresholds, int(keep.sum()))
    # pysot: invalid gt -> IoU -1; absent frames removed; denominator = all frames
    scored = np.where(np.isnan(ious), -1.0, ious)[~a]
    return _curve_above(scored, thresholds, len(g))


def _distance_curve(errors: np.ndarray, a: np.ndarray, thresholds, absent_policy: str) -> np.ndarray:
    if absent_policy == "exclude":
        keep = ~np.isnan(errors) & ~a
        return _curve_within(errors[keep], thresholds, int(keep.sum()))
    # pysot: invalid gt -> distance -1 (within every threshold); absent removed; all frames counted
    scored = np.where(np.isnan(errors), -1.0, errors)[~a]
    return _curve_within(scored, thresholds, len(errors))


def precision_curve(pred, gt, absent=None, absent_policy: str = "exclude",
                    thresholds: np.ndarray = PIXEL_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error <= t px for each threshold."""
    _check_policy(absent_policy)
    p, g, a = _check(pred, gt, absent)
    return _distance_curve(center_errors(p, g), a, thresholds, absent_policy)


def normalized_precision_curve(pred, gt, absent=None, absent_policy: str = "exclude",
                               thresholds: np.ndarray = NORM_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with size-normalised centre error <= t for each threshold."""
    _check_policy(absent_policy)
    p, g, a = _check(pred, gt, absent)
    return _distance_curve(normalized_center_errors(p, g), a, thresholds, absent_policy)


def auc(curve) -> float:
    """Area under a success curve as the toolkits compute it: the mean of its points."""
    return float(np.mean(np.asarray(curve, dtype=np.float64)))


def got10k_ious(pred, gt, absent=None, bound: Optional[Sequence[float]] = None) -> np.ndarray:
    """IoUs that enter AO / SR: frame 0 dropped, invalid and absent frames dropped."""
    p, g, a = _check(pred, gt, absent)
    ious = frame_ious(p, g, bound=bound)[1:]
    keep = ~np.isnan(ious) & ~a[1:]
    return ious[keep]


def got10k_metrics(ious) -> Dict[str, float]:
    """AO, SR0.5, SR0.75 of (already filtered) IoUs; NaN when there are none."""
    ious = np.asarray(ious, dtype=np.float64).reshape(-1)
    if ious.size == 0:
        return {"ao": float("nan"), "sr50": float("nan"), "sr75": float("nan"), "frames": 0}
    return {"ao": float(np.mean(ious)), "sr50": float(np.mean(ious > 0.5)),
            "sr75": float(np.mean(ious > 0.75)), "frames": int(ious.size)}


def sequence_metrics(pred, gt, absent=None, absent_policy: str = "exclude",
                     bound: Optional[Sequence[float]] = None) -> Dict[str, object]:
    """All OPE metrics of one sequence: curves and scalar scores."""
    succ = success_curve(pred, gt, absent, absent_policy)
    prec = precision_curve(pred, gt, absent, absent_policy)
    nprec = normalized_precision_curve(pred, gt, absent, absent_policy)
    got = got10k_metrics(got10k_ious(pred, gt, absent, bound=bound))
    return {
        "success_curve": succ, "precision_curve": prec, "norm_precision_curve": nprec,
        "auc": auc(succ), "precision20": float(prec[PRECISION_INDEX]),
        "norm_precision20": float(nprec[PRECISION_INDEX]), "norm_precision_auc": auc(nprec),
        "success50": float(succ[10]), "got10k_ious": got10k_ious(pred, gt, absent, bound=bound),
        "ao": got["ao"], "sr50": got["sr50"], "sr75": got["sr75"],
    }


def aggregate(per_sequence: Iterable[Dict[str, object]]) -> Dict[str, object]:
    """Overall numbers: OPE curves averaged over sequences, GOT-10k IoUs concatenated."""
    seqs = list(per_sequence)
    if not seqs:
        raise ValueError("no sequences to aggregate")

    def mean_curve(key):
        curves = np.array([s[key] for s in seqs], dtype=np.float64)
        return np.nanmean(curves, axis=0) if np.any(~np.isnan(curves)) else curves[0]

    succ = mean_curve("success_curve")
    prec = mean_curve("precision_curve")
    nprec = mean_curve("norm_precision_curve")
    got = got10k_metrics(np.concatenate([np.asarray(s["got10k_ious"]) for s in seqs]))
    return {
        "success_curve": succ, "precision_curve": prec, "norm_precision_curve": nprec,
        "auc": auc(succ), "precision20": float(prec[PRECISION_INDEX]),
        "norm_precision20": float(nprec[PRECISION_INDEX]), "norm_precision_auc": auc(nprec),
        "success50": float(succ[10]), "ao": got["ao"], "sr50": got["sr50"], "sr75": got["sr75"],
        "sequences": len(seqs),
    }


# --------------------------------------------------------------------------- VOT protocol
VOT_SKIP_FRAMES = 5     # re-initialise this many frames after a failure
VOT_BURNIN = 10         # frames ignored by accuracy after each (re-)initialisation
INIT, FAILURE, SKIPPED = "init", "failure", "skipped"


def vot_overlap(pred, gt, bound: Optional[Sequence[float]] = None) -> float:
    """Overlap of one frame as the VOT protocol uses it (NaN for invalid ground truth)."""
    return float(frame_ious(np.asarray(pred, dtype=np.float64).reshape(1, 4),
                            np.asarray(gt, dtype=np.float64).reshape(1, 4), bound=bound)[0])


def vot_accuracy_robustness(records: Sequence[object], gt, bound: Optional[Sequence[float]] = None,
                            burnin: int = VOT_BURNIN) -> Dict[str, object]:
    """Accuracy / failures of one sequence run with resets.

    `records` has one entry per frame: the strings INIT / FAILURE / SKIPPED, or a
    box (x, y, w, h) for a tracked frame (what :func:`run_vot_protocol` returns).
    """
    g = _as_boxes(gt)
    if len(records) != len(g):
        raise ValueError(f"{len(records)} records for {len(g)} ground-truth frames")
    ignored = np.zeros(len(g), dtype=bool)
    overlaps = np.full(len(g), np.nan)
    failures = 0
    for i, rec in enumerate(records):
        if isinstance(rec, str):
            if rec == INIT:
                ignored[i:i + burnin] = True
            elif rec == FAILURE:
                failures += 1
            elif rec != SKIPPED:
                raise ValueError(f"unknown record {rec!r} at frame {i}")
            continue
        overlaps[i] = vot_overlap(rec, g[i], bound)
    overlaps[ignored] = np.nan
    for i, rec in enumerate(records):
        if isinstance(rec, str):
            overlaps[i] = np.nan
    counted = overlaps[~np.isnan(overlaps)]
    return {"overlaps": overlaps, "failures": failures, "frames": len(g),
            "accuracy": float(np.mean(counted)) if counted.size else float("nan")}


def vot_aggregate(per_sequence: Iterable[Dict[str, object]]) -> Dict[str, float]:
    """Accuracy over all counted frames; robustness = failures per 100 frames (pysot)."""
    seqs = list(per_sequence)
    overlaps = np.concatenate([np.asarray(s["overlaps"], dtype=np.float64) for s in seqs])
    counted = overlaps[~np.isnan(overlaps)]
    failures = int(sum(s["failures"] for s in seqs))
    frames = int(sum(s["frames"] for s in seqs))
    return {"accuracy": float(np.mean(counted)) if counted.size else float("nan"),
            "failures": failures, "frames": frames,
            "robustness": 100.0 * failures / frames if frames else float("nan")}


def run_vot_protocol(track_fn, init_fn, num_frames: int, gt, bound: Optional[Sequence[float]] = None,
                     skip: int = VOT_SKIP_FRAMES) -> List[object]:
    """Drive a tracker through the reset protocol.

    init_fn(i, box) initialises on frame i with the ground-truth box, track_fn(i)
    returns the predicted box of frame i. Returns the per-frame records for
    :func:`vot_accuracy_robustness`.
    """
    g = _as_boxes(gt)
    valid = valid_gt_mask(g)
    records: List[object] = []
    next_init = 0
    tracking = False
    for i in range(num_frames):
        if not tracking:
            if i >= next_init and valid[i]:
                init_fn(i, g[i])
                records.append(INIT)
                tracking = True
            else:
                records.append(SKIPPED)
            continue
        box = np.asarray(track_fn(i), dtype=np.float64).reshape(4)
        overlap = vot_overlap(box, g[i], bound)
        if valid[i] and not overlap > 0:
            records.append(FAILURE)
            tracking = False
            next_init = i + skip
        else:
            records.append(box)
    return records
