"""Lost-state benchmark: does the target supervisor say LOST when the target is
gone, stay TRACKING while it is visible and followed, and re-find it?

    python -m siam_tracker_ros.evaluation.lost_bench [--models default nanotrack]
        [--absent 10 30] [--set lost_frames=3 ...] [--sweep lost_frames=2,4 ...]
        [--jobs 2] [--evidence] [--per-run] [--markdown docs/benchmarks/lost_state.md]

docs/benchmarks/lost_state.md was made by this module; the command that made it
is the first line of that file (rerun it when the model or the supervisor changes).

Test sequences (made on the fly from the labelled sequences, default
../shared/data/sequences; nothing is written to disk):

``absent`` (target removed for N frames, then back)
    ``lead`` frames of the real sequence from frame 0 (the supervisor is
    initialised on the ground truth of frame 0), then N frames in which the
    target is erased, then ``after`` frames with the target back. The video
    keeps playing (the target keeps moving under the erasure, so it comes back
    where the real sequence has it, not where it vanished). Erasing: the
    ground-truth box grown by a margin (``pad`` = 0.15 x (w + h) / 2 + 3 px on
    each side) is filled with a same-sized region of the same frame taken beside
    it (the donor: offsets of 1.2-2.5 hole sizes left/right/up/down/diagonal,
    inside the frame, not touching the hole; the one whose 4-px border best
    matches the hole's border, chosen on the first erased frame and kept while
    it stays inside the frame), blended with a 5-px feathered edge. The scene
    around the target is untouched, so the tracker sees the same context
    without the target: the hardest honest "gone" case (no scene cut to give it
    away). Sequences shorter than lead + N + after play forward then backward
    (ping-pong), which is still real motion.
``distractor`` (a look-alike crossing)
    ``lead`` real frames, then during ``cross`` frames a copy of the target (its
    ground-truth patch cut from the same frame, so an exact look-alike) moves
    in a straight line from 3 box widths on one side of the target to 3 box
    widths on the other, one box height + a gap above (or below, whichever fits)
    the target: it passes right beside the target without covering it, so the
    target is fully visible on every frame; then ``after`` plain frames.
``plain``
    the sequence as it is (first ``--plain-frames`` frames). The shared
    sequences carry no absent flags (no NaN rows); their occlusions (OTB_Crossing,
    VOT2015_ball1 among players) are partial, so plain runs measure false LOST.

Measures (per sequence; the table gives mean / max and totals):

- frames-to-LOST: 1 + the number of absent frames before the first LOST report
  (1 = LOST on the first absent frame). ``miss`` if never LOST while absent.
- frames-to-reacquire: f - r, r the first frame with the target back, f the
  first frame >= r with state TRACKING and IoU(box, ground truth) > 0.5
  (0 = on the return frame). ``miss`` if never within the run.
- false-LOST rate: LOST reports / frames that are *visible and tracked*: the
  target is visible (not erased), the frame is not within ``grace`` frames
  after a return (that time belongs to frames-to-reacquire), and the
  supervisor's box (the tracker's estimate, also while LOST: the best search
  candidate) has IoU > 0.5 with the ground truth.
- wrong-TRACKING rate (what a control loop must never get): frames reported
  TRACKING whose box is not on the target (target absent, or IoU <= 0.1),
  not counting the first ``lost_allowance`` (5) absent frames, over all frames.
- evidence distributions (percentiles of score, psr, entropy, relative score,
  jump, per situation: visible-and-tracked, absent, visible-but-lost) from the
  raw tracker result before any supervisor decision: what the defaults in
  core/tracking/params.py are chosen from.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence as Seq, Tuple

import cv2
import numpy as np

from ..core import geometry
from .datasets import Sequence, default_sequences_root, open_dataset

FEATHER = 5          # px of soft edge when pasting
MAX_IOU_LOST_OK = 0.1


# --------------------------------------------------------------------------- synthesis
@dataclass
class SynthSequence:
    """A test sequence made from a labelled one; frames are built on demand."""
    name: str
    kind: str                        # absent | distractor | plain
    base: Sequence
    src: List[int]                   # base frame index per frame
    gt: np.ndarray                   # (N, 4); NaN rows where the target is absent
    visible: np.ndarray              # (N,) bool
    ops: List[Optional[Tuple]]       # per frame: None | ("erase", hole, donor) | ("clone", box_from, box_to)
    leave: Optional[int] = None      # first absent frame
    back: Optional[int] = None       # first frame with the target back
    meta: Dict[str, Any] = field(default_factory=dict)
    grey: bool = False               # frames as a mono camera gives them (3 equal channels)

    def __len__(self) -> int:
        return len(self.src)

    def frame(self, i: int) -> np.ndarray:
        image = self.base.frame(self.src[i])
        op = self.ops[i]
        if op is not None:
            if op[0] == "erase":
                image = paste(image, image, op[2], op[1])
            elif op[0] == "clone":
                image = paste(image, image, op[1], op[2])
            else:
                raise ValueError(op)
        if self.grey:
            image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        return image


def _pingpong(n_base: int, n: int) -> List[int]:
    if n_base < 2:
        return [0] * n
    period = 2 * n_base - 2
    out = []
    for i in range(n):
        k = i % period
        out.append(k if k < n_base else period - k)
    return out


def _int_box(box) -> np.ndarray:
    x, y, w, h = box
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    return np.array([x0, y0, int(np.ceil(x + w)) - x0, int(np.ceil(y + h)) - y0])


def paste(dst: np.ndarray, src: np.ndarray, from_box, to_box) -> np.ndarray:
    """Copy of dst with src's from_box region (integer xywh) pasted onto to_box
    (same size), feathered over FEATHER px; parts outside either image are skipped."""
    out = dst.copy()
    fx, fy, w, h = (int(v) for v in from_box)
    tx, ty = int(to_box[0]), int(to_box[1])
    H, W = dst.shape[:2]
    # clip so both rectangles stay inside their images
    x0 = max(0, -fx, -tx)
    y0 = max(0, -fy, -ty)
    x1 = min(w, src.shape[1] - fx, W - tx)
    y1 = min(h, src.shape[0] - fy, H - ty)
    if x1 <= x0 or y1 <= y0:
        return out
    patch = src[fy + y0:fy + y1, fx + x0:fx + x1].astype(np.float32)
    region = out[ty + y0:ty + y1, tx + x0:tx + x1].astype(np.float32)
    ph, pw = patch.shape[:2]
    ramp_x = np.minimum(np.arange(pw) + 1, pw - np.arange(pw)).astype(np.float32)
    ramp_y = np.minimum(np.arange(ph) + 1, ph - np.arange(ph)).astype(np.float32)
    alpha = np.minimum(np.minimum.outer(ramp_y, ramp_x) / FEATHER, 1.0)[..., None]
    out[ty + y0:ty + y1, tx + x0:tx + x1] = np.clip(alpha * patch + (1 - alpha) * region, 0, 255).astype(np.uint8)
    return out


def hole_for(box, image_size) -> np.ndarray:
    """The integer region erased for a target box: the box grown by pad on each side."""
    x, y, w, h = box
    pad = 0.15 * (w + h) / 2.0 + 3.0 + FEATHER
    return _int_box((x - pad, y - pad, w + 2 * pad, h + 2 * pad))


def _inside(box, image_size) -> bool:
    x, y, w, h = box
    return x >= 0 and y >= 0 and x + w <= image_size[0] and y + h <= image_size[1]


def _disjoint(a, b, gap: float = 2.0) -> bool:
    return (a[0] + a[2] + gap <= b[0] or b[0] + b[2] + gap <= a[0] or
            a[1] + a[3] + gap <= b[1] or b[1] + b[3] + gap <= a[1])


def _border(image: np.ndarray, box, width: int = 4) -> Optional[np.ndarray]:
    x, y, w, h = (int(v) for v in box)
    H, W = image.shape[:2]
    x0, y0, x1, y1 = x - width, y - width, x + w + width, y + h + width
    if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    ring = image[y0:y1, x0:x1].astype(np.float32).copy()
    inner = (slice(max(y, 0) - y0, max(y, 0) - y0 + h), slice(max(x, 0) - x0, max(x, 0) - x0 + w))
    mask = np.ones(ring.shape[:2], bool)
    mask[inner] = False
    return ring[mask] if mask.any() else None


def choose_donor_offset(image: np.ndarray, hole) -> Optional[np.ndarray]:
    """Offset (dx, dy) of the donor region that best continues the hole's border."""
    H, W = image.shape[:2]
    size = (W, H)
    hx, hy, hw, hh = hole
    target_ring = _border(image, hole)
    best, best_cost = None, np.inf
    for f in (1.2, 1.6, 2.0, 2.5):
        for ux, uy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)):
            off = np.array([round(ux * f * hw), round(uy * f * hh)])
            donor = np.array([hx + off[0], hy + off[1], hw, hh])
            if not _inside(donor, size) or not _disjoint(donor, hole):
                continue
            ring = _border(image, donor)
            cost = (float(np.mean(np.abs(ring.mean(0) - target_ring.mean(0))))
                    if ring is not None and target_ring is not None and len(ring) and len(target_ring) else 0.0)
            cost += 2.0 * f          # prefer near donors (similar surroundings)
            if cost < best_cost:
                best, best_cost = off, cost
    return best


def make_absent(seq: Sequence, lead: int, absent: int, after: int) -> Optional[SynthSequence]:
    """lead visible frames, `absent` frames with the target erased, `after` frames back."""
    n = lead + absent + after
    src = _pingpong(len(seq), n)
    gt = np.stack([seq.gt[s] for s in src]).astype(np.float64)
    visible = np.ones(n, bool)
    ops: List[Optional[Tuple]] = [None] * n
    offset = None
    size = seq.image_size
    for i in range(lead, lead + absent):
        hole = hole_for(gt[i], size)
        donor = None if offset is None else hole + np.array([offset[0], offset[1], 0, 0])
        if donor is None or not _inside(donor, size) or not _disjoint(donor, hole):
            offset = choose_donor_offset(seq.frame(src[i]), hole)
            if offset is None:
                return None          # target too large for a donor beside it
            donor = hole + np.array([offset[0], offset[1], 0, 0])
        ops[i] = ("erase", hole, donor)
        visible[i] = False
    gt_vis = gt.copy()
    gt_vis[~visible] = np.nan
    return SynthSequence(f"{seq.name}/absent{absent}", "absent", seq, src, gt_vis, visible, ops,
                         leave=lead, back=lead + absent,
                         meta={"lead": lead, "absent": absent, "after": after})


def make_distractor(seq: Sequence, lead: int, cross: int, after: int) -> Optional[SynthSequence]:
    """A copy of the target passes right beside it (above or below) during `cross` frames."""
    n = lead + cross + after
    src = _pingpong(len(seq), n)
    gt = np.stack([seq.gt[s] for s in src]).astype(np.float64)
    W, H = seq.image_size
    ops: List[Optional[Tuple]] = [None] * n
    side = None
    for k, i in enumerate(range(lead, lead + cross)):
        x, y, w, h = gt[i]
        gap = 0.25 * h + 4
        if side is None:
            side = -1 if y - h - gap >= 0 else 1
        dy = side * (h + gap)
        t = k / max(cross - 1, 1)
        dx = (-3.0 + 6.0 * t) * w
        patch_box = _int_box(gt[i])
        to = np.array([int(round(patch_box[0] + dx)), int(round(patch_box[1] + dy)), patch_box[2], patch_box[3]])
        if to[1] < 0 or to[1] + to[3] > H:
            return None
        ops[i] = ("clone", patch_box, to)
    return SynthSequence(f"{seq.name}/distractor", "distractor", seq, src, gt, np.ones(n, bool), ops,
                         meta={"lead": lead, "cross": cross, "after": after})


def make_plain(seq: Sequence, frames: Optional[int]) -> SynthSequence:
    n = len(seq) if not frames else min(frames, len(seq))
    src = list(range(n))
    gt = seq.gt[:n].copy()
    visible = ~(seq.absent[:n] | ~np.all(np.isfinite(gt), axis=1))
    return SynthSequence(f"{seq.name}/plain", "plain", seq, src, gt, visible, [None] * n)


# --------------------------------------------------------------------------- running
def run_supervised(supervisor, seq: SynthSequence) -> Dict[str, Any]:
    """Initialise on frame 0's ground truth, then supervisor.step on every frame.
    Returns per-frame state, box, evidence (frame 0 = the init, TRACKING)."""
    from ..core.tracking.base import TrackState
    n = len(seq)
    states = np.zeros(n, int)
    boxes = np.zeros((n, 4))
    evidence: List[Dict[str, float]] = [{}]
    times = np.zeros(n)
    supervisor.init(seq.frame(0), seq.gt[0])
    states[0] = int(TrackState.TRACKING)
    boxes[0] = seq.gt[0]
    for i in range(1, n):
        image = seq.frame(i)
        t0 = time.perf_counter()
        res = supervisor.step(image)
        times[i] = time.perf_counter() - t0
        states[i] = int(res.state)
        boxes[i] = np.asarray(res.box, dtype=np.float64)
        evidence.append(dict(res.evidence))
    return {"states": states, "boxes": boxes, "evidence": evidence, "times": times}


def _ious(boxes: np.ndarray, gt: np.ndarray, visible: np.ndarray) -> np.ndarray:
    out = np.zeros(len(boxes))
    ok = visible & np.all(np.isfinite(gt), axis=1)
    if ok.any():
        out[ok] = geometry.iou(boxes[ok], gt[ok])
    return out


def score_run(seq: SynthSequence, run: Dict[str, Any], grace: int = 10,
              lost_allowance: int = 5, iou_tracked: float = 0.5) -> Dict[str, Any]:
    """The measures of the module docstring for one run."""
    LOST = 2
    states, boxes = run["states"], run["boxes"]
    n = len(seq)
    ious = _ious(boxes, seq.gt, seq.visible)
    lost = states == LOST
    out: Dict[str, Any] = {"name": seq.name, "kind": seq.kind, "frames": n}
    excluded = np.zeros(n, bool)
    excluded[0] = True
    if seq.leave is not None:
        absent_idx = np.arange(seq.leave, seq.back)
        hits = absent_idx[lost[absent_idx]]
        out["to_lost"] = int(hits[0] - seq.leave + 1) if len(hits) else None
        back = seq.back
        excluded[back:min(n, back + grace)] = True
        ok = np.nonzero((np.arange(n) >= back) & ~lost & (ious > iou_tracked))[0]
        out["to_reacquire"] = int(ok[0] - back) if len(ok) else None
    tracked = seq.visible & ~excluded & (ious > iou_tracked)
    out["tracked_frames"] = int(tracked.sum())
    out["false_lost"] = int((tracked & lost).sum())
    wrong = (~lost) & (~seq.visible | (ious <= MAX_IOU_LOST_OK))
    wrong[0] = False
    if seq.leave is not None:
        wrong[seq.leave:min(seq.back, seq.leave + lost_allowance)] = False
    out["wrong_tracking"] = int(wrong.sum())
    out["lost_frames"] = int(lost.sum())
    out["ms_tracking"] = float(np.mean(run["times"][1:][~lost[1:]]) * 1e3) if (~lost[1:]).any() else None
    out["ms_lost"] = float(np.mean(run["times"][1:][lost[1:]]) * 1e3) if lost[1:].any() else None
    return out


def evidence_samples(seq: SynthSequence, run: Dict[str, Any], iou_tracked: float = 0.5) -> Dict[str, List[Dict[str, float]]]:
    """Evidence of the frames judged on the TRACKING path, by situation:
    visible_tracked (IoU > iou_tracked), visible_off (visible, IoU <= 0.1),
    absent_first5 (first 5 absent frames)."""
    ious = _ious(run["boxes"], seq.gt, seq.visible)
    groups: Dict[str, List[Dict[str, float]]] = {"visible_tracked": [], "visible_off": [], "absent_first5": []}
    for i in range(1, len(seq)):
        ev = run["evidence"][i]
        if not ev or ev.get("search_tiles", 0) > 0:
            continue            # search frames: other crops, not the tracking path
        if seq.visible[i] and ious[i] > iou_tracked:
            groups["visible_tracked"].append(ev)
        elif seq.visible[i] and ious[i] <= MAX_IOU_LOST_OK:
            groups["visible_off"].append(ev)
        elif not seq.visible[i] and seq.leave is not None and i - seq.leave < 5:
            groups["absent_first5"].append(ev)
    return groups


def build_sequences(root: str, names: Optional[Seq[str]], kinds: Seq[str], lead: int,
                    absent: Seq[int], after: int, cross: int, plain_frames: Optional[int],
                    grey: bool = False) -> Tuple[List[SynthSequence], List[str]]:
    """The test sequences and a list of 'name: why skipped' lines (grey: frames as a
    mono camera gives them)."""
    base = open_dataset(root, "shared", names=names)
    out: List[SynthSequence] = []
    skipped: List[str] = []
    for seq in base:
        if "absent" in kinds:
            for n_abs in absent:
                s = make_absent(seq, lead, n_abs, after)
                if s is None:
                    skipped.append(f"{seq.name}/absent{n_abs}: target too large to erase (no donor region beside it)")
                else:
                    out.append(s)
        if "distractor" in kinds:
            s = make_distractor(seq, lead, cross, after)
            if s is None:
                skipped.append(f"{seq.name}/distractor: no room above or below the target for the look-alike")
            else:
                out.append(s)
        if "plain" in kinds:
            out.append(make_plain(seq, plain_frames))
    for s in out:
        s.grey = grey
    return out, skipped


def _fmt(v, digits=1) -> str:
    if v is None:
        return "miss"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def summarize(scores: List[Dict[str, Any]]) -> Dict[str, Any]:
    tl = [s["to_lost"] for s in scores if "to_lost" in s]
    tr = [s["to_reacquire"] for s in scores if "to_reacquire" in s]
    tracked = sum(s["tracked_frames"] for s in scores)
    false_lost = sum(s["false_lost"] for s in scores)
    frames = sum(s["frames"] - 1 for s in scores)
    wrong = sum(s["wrong_tracking"] for s in scores)
    got_tl = [v for v in tl if v is not None]
    got_tr = [v for v in tr if v is not None]
    return {
        "runs": len(scores),
        "to_lost_mean": float(np.mean(got_tl)) if got_tl else None,
        "to_lost_max": int(max(got_tl)) if got_tl else None,
        "to_lost_missed": sum(v is None for v in tl), "to_lost_runs": len(tl),
        "to_lost_within5": sum(v is not None and v <= 5 for v in tl),
        "reacquire_mean": float(np.mean(got_tr)) if got_tr else None,
        "reacquire_max": int(max(got_tr)) if got_tr else None,
        "reacquire_missed": sum(v is None for v in tr), "reacquire_runs": len(tr),
        "reacquire_within10": sum(v is not None and v <= 10 for v in tr),
        "tracked_frames": tracked, "false_lost": false_lost,
        "false_lost_rate": false_lost / tracked if tracked else None,
        "wrong_tracking": wrong, "frames": frames,
        "wrong_tracking_rate": wrong / frames if frames else None,
    }


EVIDENCE_KEYS = ("score", "psr", "entropy", "entropy_rise", "logit_drop", "jump", "colour", "colour_drop",
                 "map_weight", "badness")
PCTS = (1, 5, 25, 50, 75, 95, 99)


def evidence_table(groups: Dict[str, List[Dict[str, float]]]) -> List[str]:
    lines = ["| evidence | situation | n | " + " | ".join(f"p{q}" for q in PCTS) + " |",
             "|---|---|---|" + "---|" * len(PCTS)]
    for key in EVIDENCE_KEYS:
        for g, evs in groups.items():
            vals = np.array([e[key] for e in evs if key in e and np.isfinite(e[key])])
            if len(vals) == 0:
                continue
            pct = np.percentile(vals, PCTS)
            lines.append(f"| {key} | {g} | {len(vals)} | " + " | ".join(f"{v:.3g}" for v in pct) + " |")
    return lines


def summary_lines(model: str, summary: Dict[str, Any], by_kind: Dict[str, Dict[str, Any]]) -> List[str]:
    lines = ["| model | test | runs | frames-to-LOST mean / max (within 5) | frames-to-reacquire mean / max (within 10) "
             "| false-LOST (visible & tracked frames) | wrong TRACKING frames |",
             "|---|---|---|---|---|---|---|"]
    for kind, s in list(by_kind.items()) + [("all", summary)]:
        tl = (f"{_fmt(s['to_lost_mean'])} / {_fmt(s['to_lost_max'])} ({s['to_lost_within5']}/{s['to_lost_runs']})"
              if s["to_lost_runs"] else "-")
        tr = (f"{_fmt(s['reacquire_mean'])} / {_fmt(s['reacquire_max'])} ({s['reacquire_within10']}/{s['reacquire_runs']})"
              if s["reacquire_runs"] else "-")
        fl = (f"{s['false_lost']}/{s['tracked_frames']} = {100 * s['false_lost_rate']:.2f}%"
              if s["tracked_frames"] else "-")
        wt = f"{s['wrong_tracking']}/{s['frames']} = {100 * s['wrong_tracking_rate']:.2f}%" if s["frames"] else "-"
        lines.append(f"| {model} | {kind} | {s['runs']} | {tl} | {tr} | {fl} | {wt} |")
    return lines


def per_run_lines(model: str, scores: List[Dict[str, Any]]) -> List[str]:
    lines = ["| model | sequence | frames | to LOST | to reacquire | false LOST / tracked | wrong TRACKING | LOST frames | ms/frame tracking / lost |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in scores:
        lines.append(f"| {model} | {s['name']} | {s['frames']} | {_fmt(s.get('to_lost', '-'))} | "
                     f"{_fmt(s.get('to_reacquire', '-'))} | {s['false_lost']}/{s['tracked_frames']} | "
                     f"{s['wrong_tracking']} | {s['lost_frames']} | {_fmt(s['ms_tracking'])} / {_fmt(s['ms_lost'])} |")
    return lines


def parse_set(items: Seq[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def run_model(tracker, params: Dict[str, Any], seqs: Seq[SynthSequence], per_run: bool = False,
              label: str = "") -> Tuple[List[Dict[str, Any]], Dict[str, List[Dict[str, float]]]]:
    """Every test sequence through a TargetSupervisor(tracker, **params): per-run scores
    and the evidence samples by situation."""
    from ..core.tracking.monitor import TargetSupervisor
    sup = TargetSupervisor(tracker, **params)
    scores: List[Dict[str, Any]] = []
    groups: Dict[str, List[Dict[str, float]]] = {"visible_tracked": [], "visible_off": [], "absent_first5": []}
    for seq in seqs:
        run = run_supervised(sup, seq)
        sc = score_run(seq, run)
        scores.append(sc)
        for g, evs in evidence_samples(seq, run).items():
            groups[g].extend(evs)
        if per_run:
            print(f"{label} {sc['name']}: to_lost={sc.get('to_lost', '-')} to_reacquire={sc.get('to_reacquire', '-')} "
                  f"false_lost={sc['false_lost']}/{sc['tracked_frames']} wrong={sc['wrong_tracking']}", flush=True)
    return scores, groups


def parse_sweep(items: Seq[str]) -> List[Tuple[str, List[Any]]]:
    out = []
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--sweep expects KEY=V1,V2,..., got {item!r}")
        k, vals = item.split("=", 1)
        out.append((k, [json.loads(v) for v in vals.split(",")]))
    return out


def sweep_lines(rows: List[Tuple[str, str, Dict[str, Any]]]) -> List[str]:
    lines = ["| model | change from the defaults | LOST within 5 frames | re-acquired within 10 frames "
             "| false-LOST rate | wrong TRACKING rate |", "|---|---|---|---|---|---|"]
    for model, change, s in rows:
        fl = f"{100 * s['false_lost_rate']:.2f}%" if s["false_lost_rate"] is not None else "-"
        wt = f"{100 * s['wrong_tracking_rate']:.2f}%" if s["wrong_tracking_rate"] is not None else "-"
        lines.append(f"| {model} | {change} | {s['to_lost_within5']}/{s['to_lost_runs']} | "
                     f"{s['reacquire_within10']}/{s['reacquire_runs']} | {fl} | {wt} |")
    return lines


def _task(a) -> Tuple[List[Dict[str, Any]], Dict[str, List[Dict[str, float]]]]:
    """One (model, parameters) run over the test sequences (also in a worker process)."""
    (model, change, params, device, threads, root, names, kinds, lead, absent, after, cross,
     plain_frames, per_run, grey) = a
    import torch
    from ..core.tracking.loading import build_tracker
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    seqs, _ = build_sequences(root, names, kinds, lead, absent, after, cross, plain_frames, grey)
    tracker = build_tracker(model, device=device)
    return run_model(tracker, params, seqs, per_run, f"{model}{(' ' + change) if change else ''}")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m siam_tracker_ros.evaluation.lost_bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", default=None, help="shared-layout sequences root (default ../shared/data/sequences)")
    ap.add_argument("--names", nargs="*", default=None, help="only these sequences")
    ap.add_argument("--models", nargs="+", default=["default"], help="model names / YAML / checkpoints")
    ap.add_argument("--kinds", nargs="+", default=["absent", "distractor", "plain"],
                    choices=["absent", "distractor", "plain"])
    ap.add_argument("--lead", type=int, default=20, help="visible frames before the event")
    ap.add_argument("--absent", type=int, nargs="+", default=[10, 30], help="absent lengths N (one run each)")
    ap.add_argument("--after", type=int, default=25, help="frames after the target is back / the crossing")
    ap.add_argument("--cross", type=int, default=20, help="frames the look-alike takes to cross")
    ap.add_argument("--plain-frames", type=int, default=None, help="frames of each plain run (default all)")
    ap.add_argument("--grey", action="store_true",
                    help="convert every frame to grey (a mono camera: the supervisor's colour evidence is off)")
    ap.add_argument("--grace", type=int, default=10, help="frames after a return not counted in false LOST")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="supervisor parameters")
    ap.add_argument("--sweep", nargs="*", default=[], metavar="KEY=V1,V2",
                    help="also run with each value of each parameter (one at a time; the margins table)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (model x sweep variant)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--evidence", action="store_true", help="print the evidence percentiles per situation")
    ap.add_argument("--per-run", action="store_true", help="print one row per run")
    ap.add_argument("--markdown", default=None, help="write the tables (and the command) to this file")
    ap.add_argument("--json", default=None, help="write every number to this JSON file")
    args = ap.parse_args(argv)
    from ..core.tracking.loading import check_model
    for name in args.models:   # the supervisor's measurements need a trained model
        try:
            check_model(name)
        except (ValueError, FileNotFoundError) as exc:
            print(f"lost_bench: {name}: {exc}", file=sys.stderr)
            return 2

    import torch
    from ..core.tracking.params import SUPERVISOR_DEFAULTS, validate_supervisor_params as validate_params
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    root = args.sequences or default_sequences_root()
    if not root or not os.path.isdir(root):
        print("lost_bench: no sequences (give --sequences or put ../shared/data/sequences beside the repo)",
              file=sys.stderr)
        return 2
    params = parse_set(args.set)
    validate_params(params)
    sweep = parse_sweep(args.sweep)
    for k, vals in sweep:
        for v in vals:
            validate_params({k: v})
    seqs, skipped = build_sequences(root, args.names, args.kinds, args.lead, args.absent, args.after,
                                    args.cross, args.plain_frames, args.grey)
    for line in skipped:
        print("skipped:", line)
    command = "python -m siam_tracker_ros.evaluation.lost_bench " + " ".join(
        a if " " not in a else repr(a) for a in (argv if argv is not None else sys.argv[1:]))
    md = ["# Lost state (target supervisor)", "",
          f"Generated by `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); "
          "test sequences and measures: siam_tracker_ros/evaluation/lost_bench.py, decision rule and "
          "parameters: siam_tracker_ros/core/tracking/monitor.py and params.py.", "",
          f"Supervisor parameters: defaults{(' with ' + json.dumps(params)) if params else ''} "
          f"(`{json.dumps({**SUPERVISOR_DEFAULTS, **params})}`).", "",
          f"Runs: absent N = {args.absent} frames after {args.lead} visible frames, then {args.after} frames back; "
          f"look-alike crossing over {args.cross} frames; plain = the sequences as they are"
          f"{'; every frame converted to grey (a mono camera: no colour evidence)' if args.grey else ''}. "
          f"Skipped: {'; '.join(skipped) if skipped else 'none'}.", "",
          "frames-to-LOST: 1 = LOST on the first absent frame. frames-to-reacquire: 0 = TRACKING with IoU > 0.5 "
          "on the return frame. false-LOST: LOST on frames where the target is visible and the supervisor's box has "
          f"IoU > 0.5 with the ground truth (the {args.grace} frames after a return excluded). wrong TRACKING: "
          "TRACKING while the target is absent (after the first 5 absent frames) or the box has IoU <= 0.1. "
          f"ms/frame: wall time of one supervisor step, {args.jobs} run(s) in parallel, {args.threads} thread(s), "
          f"1/5/15-min load average at the start {', '.join(f'{v:.2f}' for v in os.getloadavg())}: "
          "indicative only (siam-bench measures speed).", ""]
    everything: Dict[str, Any] = {"command": command, "params": {**SUPERVISOR_DEFAULTS, **params}, "models": {}}
    sweep_rows: List[Tuple[str, str, Dict[str, Any]]] = []
    tasks = []
    for model in args.models:
        tasks.append((model, "", params))
        for k, vals in sweep:
            for v in vals:
                tasks.append((model, f"{k}={v}", {**params, k: v}))
    job_args = [(model, change, p, args.device, args.threads, root, args.names, args.kinds, args.lead,
                 args.absent, args.after, args.cross, args.plain_frames, args.per_run, args.grey)
                for model, change, p in tasks]
    t0 = time.perf_counter()
    if args.jobs > 1 and len(tasks) > 1:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(min(args.jobs, len(tasks))) as pool:
            outputs = pool.map(_task, job_args, chunksize=1)
    else:
        outputs = [_task(a) for a in job_args]
    print(f"{len(tasks)} runs of {len(seqs)} sequences in {time.perf_counter() - t0:.0f} s ({args.jobs} job(s))")
    results = {(model, change): out for (model, change, _), out in zip(tasks, outputs)}
    for model in args.models:
        scores, groups = results[(model, "")]
        by_kind = {k: summarize([s for s in scores if s["kind"] == k]) for k in args.kinds
                   if any(s["kind"] == k for s in scores)}
        summary = summarize(scores)
        lines = summary_lines(model, summary, by_kind)
        print(f"\n{model}:")
        print("\n".join(lines))
        ev_lines = evidence_table(groups)
        if args.evidence:
            print("\n".join(ev_lines))
        if args.per_run:
            print("\n".join(per_run_lines(model, scores)))
        md += [f"## {model}", ""] + lines + ["", "Per run:", ""] + per_run_lines(model, scores) + [
            "", "Evidence on the tracking path (percentiles; what the defaults are chosen from):", ""] + ev_lines + [""]
        everything["models"][model] = {"summary": summary, "by_kind": by_kind, "runs": scores}
        if sweep:
            sweep_rows.append((model, "none (defaults)", summary))
            for k, vals in sweep:
                for v in vals:
                    sweep_rows.append((model, f"{k}={v}", summarize(results[(model, f"{k}={v}")][0])))
            everything["models"][model]["sweep"] = [{"change": c, "summary": s} for m, c, s in sweep_rows if m == model]
    if sweep_rows:
        print("\n".join(sweep_lines(sweep_rows)))
    if sweep_rows:
        md += ["## Margins: one parameter changed at a time", "",
               "The defaults should sit on a plateau, not on a tuned point: each row changes one parameter.", ""]
        md += sweep_lines(sweep_rows) + [""]
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write("\n".join(md) + "\n")
        print(f"wrote {args.markdown}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
