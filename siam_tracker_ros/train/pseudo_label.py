"""Pseudo-labelled tracks mined from unlabelled registry clips.

Every shot of every clip (vtest.avi, Megamind.avi, bikes.mp4 ... see
train/media.py) is cut into windows of ``window`` frames. In each window a few
start boxes are proposed -- moving regions (MOG2 background subtraction run
over the shot), textured patches and, rarely, random patches -- and each is
tracked forwards to the window's end and back by a peer tracker. A track is
kept only where the backward boxes agree with the forward ones (IoU above
``min_iou`` on every frame) and the peer's score stays above ``min_score``;
static tracks (a patch of a still scene) are kept with probability
``keep_static`` so that moving targets dominate.

The peer is NanoTrack v2 (the published weights from ../shared/weights run by
this project's PyTorch port, `build_tracker("nanotrack")`, ~7x faster here than
cv2.TrackerNano with the same weights), or CSRT where those weights are absent.
The issue behind the training asks for exactly this use: boxes from a strong
peer on unlabelled clips, kept where forward-backward tracking agrees. The
boxes are the peer's, so they carry its errors; the FB check removes most
drift, not all.

Frames 0-119 of vtest.avi are the `make demo` clip: they are excluded by
default (``--exclude vtest.avi:0-119``) so that the demo stays footage the
model never trained on.

Output: the OTB layout of train/synthetic.py (``seq_NNNNN/img``,
``groundtruth.txt`` 0-based, ``absence.label``, ``meta.json`` naming the clip
and frames) plus ``dataset.json``. The validation sequences are never read.

    python -m siam_tracker_ros.train.pseudo_label OUT_DIR [--window 24] [--step 4]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Callable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from ..core.geometry import iou
from .media import find_media
from .synthetic import (clean_foreground, default_peer_dir, forward_backward_track, has_scene_cut,
                        moving_regions, textured_box, write_sequence)

MAX_SIDE = 640


class _CoreTrackerPeer:
    """cv2-tracker-like adapter (init / update -> (ok, box)) around a project Tracker."""
    float_boxes = True      # synthetic._run_tracker: init with the box as it is

    def __init__(self, tracker):
        self.tracker = tracker
        self.last_score = 1.0

    def init(self, frame, box):
        self.tracker.init(frame, np.asarray(box, np.float64))
        self.last_score = 1.0

    def update(self, frame):
        r = self.tracker.track(frame)
        self.last_score = float(r.score)
        return True, r.box


def make_peer(peer_dir: Optional[str] = None) -> Tuple[Callable[[], object], str]:
    """A factory of peer trackers: NanoTrack v2 (PyTorch port of the published
    weights) when they are found, else OpenCV CSRT."""
    peer_dir = peer_dir or default_peer_dir()
    pth = os.path.join(peer_dir, "nanotrackv2.pth") if peer_dir else None
    if pth and os.path.isfile(pth):
        import torch
        from ..core.tracking.loading import build_tracker
        torch.set_num_threads(1)
        shared = build_tracker("nanotrack", device="cpu", weights=pth)
        model, params = shared.model, shared.params
        cls = type(shared)
        return (lambda: _CoreTrackerPeer(cls(model, params, device="cpu"))), "nanotrack_v2 (torch port)"
    return cv2.TrackerCSRT_create, "csrt"


def read_clip(path: str, max_side: int = MAX_SIDE) -> List[np.ndarray]:
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        h, w = f.shape[:2]
        s = max_side / max(h, w)
        if s < 1:
            f = cv2.resize(f, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)
        frames.append(f)
    cap.release()
    return frames


def split_shots(frames: List[np.ndarray], min_len: int) -> List[Tuple[int, int]]:
    """[start, end) ranges between scene cuts (has_scene_cut on each consecutive pair)."""
    shots, start = [], 0
    for i in range(1, len(frames)):
        if has_scene_cut(frames[i - 1:i + 1]):
            if i - start >= min_len:
                shots.append((start, i))
            start = i
    if len(frames) - start >= min_len:
        shots.append((start, len(frames)))
    return shots


def motion_masks(frames: List[np.ndarray]) -> List[np.ndarray]:
    """Foreground masks of MOG2 run over the shot (the first ones are unreliable)."""
    sub = cv2.createBackgroundSubtractorMOG2(history=30, detectShadows=False)
    return [clean_foreground(sub.apply(f)) for f in frames]


def parse_exclude(specs: List[str]) -> dict:
    """['vtest.avi:0-119', ...] -> {'vtest.avi': [(0, 119)]} (inclusive frame ranges)."""
    out: dict = {}
    for spec in specs:
        try:
            clip, rng_txt = spec.rsplit(":", 1)
            first, last = (int(v) for v in rng_txt.split("-"))
        except ValueError:
            raise ValueError(f"--exclude takes CLIP:FIRST-LAST (e.g. vtest.avi:0-119), got {spec!r}")
        out.setdefault(clip, []).append((first, last))
    return out


def mine_clip(path: str, factory, rng: np.random.Generator, window: int, step: int,
              candidates: int, min_iou: float, min_score: float, keep_static: float,
              exclude=(),
              ) -> Iterator[Tuple[List[np.ndarray], np.ndarray, dict]]:
    """Tracks of one clip; windows touching a frame range in ``exclude`` are skipped."""
    frames = read_clip(path)
    if len(frames) < window:
        return
    H, W = frames[0].shape[:2]
    for s0, s1 in split_shots(frames, window):
        shot = frames[s0:s1]
        masks = motion_masks(shot)
        for w0 in range(min(10, len(shot) - window), len(shot) - window + 1, step):
            first = s0 + w0
            if any(first <= b and first + window - 1 >= a for a, b in exclude):
                continue
            win = shot[w0:w0 + window]
            boxes = moving_regions(masks[w0], 0.002 * W * H, 0.15 * W * H)
            rng.shuffle(boxes)
            props = boxes[:candidates - 1] + [textured_box(win[0], rng, width=(0.06, 0.3), log_aspect=0.7)]
            kept: List[np.ndarray] = []
            for box in props:
                if any(iou(box, k[0]) > 0.3 for k in kept):
                    continue
                track = forward_backward_track(factory, win, box, min_iou, min_score)
                if track is None:
                    continue
                centres = track[:, :2] + track[:, 2:] / 2
                travel = float(np.linalg.norm(centres[-1] - centres[0]) / np.sqrt(track[0, 2] * track[0, 3]))
                moving = travel > 0.25
                if not moving and rng.random() > keep_static:
                    continue
                kept.append(track)
                yield win, track, {"clip": os.path.basename(path), "first_frame": s0 + w0,
                                   "frames": window, "moving": moving, "travel_in_sizes": round(travel, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--window", type=int, default=24, help="frames per track (default 24)")
    ap.add_argument("--step", type=int, default=4, help="frames between window starts (default 4)")
    ap.add_argument("--candidates", type=int, default=6, help="start boxes tried per window (default 6)")
    ap.add_argument("--min-iou", type=float, default=0.65, help="forward-backward IoU on every frame")
    ap.add_argument("--min-score", type=float, default=0.5, help="lowest peer score on the track")
    ap.add_argument("--keep-static", type=float, default=0.3, help="share of non-moving tracks kept")
    ap.add_argument("--quality", type=int, default=75, help="JPEG quality")
    ap.add_argument("--peer-dir", default=None, help="NanoTrack v2 weights folder (default: ../shared/weights/nanotrack_v2)")
    ap.add_argument("--exclude", action="append", default=None, metavar="CLIP:FIRST-LAST",
                    help="frames never used (repeatable; default vtest.avi:0-119, the make-demo clip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    exclude = parse_exclude(args.exclude if args.exclude is not None else ["vtest.avi:0-119"])

    from tqdm import tqdm
    cv2.setNumThreads(1)
    media = find_media()
    if not media.videos:
        raise SystemExit("no registry clips found; run: python -m siam_tracker_ros.train.media --install")
    factory, peer = make_peer(args.peer_dir)
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t0, n, nbytes, per_clip, moving = time.time(), 0, 0, {}, 0
    for path in tqdm(media.videos, desc="clips", unit="clip"):
        for frames, boxes, meta in mine_clip(path, factory, rng, args.window, args.step, args.candidates,
                                             args.min_iou, args.min_score, args.keep_static,
                                             exclude.get(os.path.basename(path), ())):
            meta["peer"] = peer
            visible = (boxes[:, 2] > 2) & (boxes[:, 3] > 2)
            nbytes += write_sequence(os.path.join(args.out_dir, f"seq_{n:05d}"), frames, boxes, visible,
                                     args.quality, meta=meta)
            per_clip[meta["clip"]] = per_clip.get(meta["clip"], 0) + 1
            moving += int(meta["moving"])
            n += 1
    summary = {"name": "pseudo_labelled", "layout": "otb", "box_origin": 0, "frame_range": args.window,
               "n_sequences": n, "moving": moving, "per_clip": per_clip, "peer": peer,
               "window": args.window, "step": args.step, "candidates": args.candidates,
               "min_iou": args.min_iou, "min_score": args.min_score, "keep_static": args.keep_static,
               "excluded": {k: [list(r) for r in v] for k, v in exclude.items()},
               "seed": args.seed, "bytes": nbytes, "seconds": round(time.time() - t0, 1),
               "note": "boxes x,y,w,h 0-based, from the peer tracker (forward-backward checked)"}
    with open(os.path.join(args.out_dir, "dataset.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
