"""siam-track: run a tracker over an image folder or a video from an initial box.

Writes one `x,y,w,h` line per frame (the first is the initial box), optionally an
annotated video, and prints the tracker-only FPS.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np
from tqdm import tqdm

from ..core.frames import FrameSource, draw_box
from ..core.tracking.base import TrackState
from .args import deprecated_alias
from .boxes import box_argument as parse_box


def read_first_groundtruth(source: str):
    for name in ("groundtruth.txt", "groundtruth_rect.txt"):
        path = os.path.join(source, name)
        if os.path.isfile(path):
            with open(path) as f:
                return parse_box(f.readline().strip().replace("\t", ","))
    raise ValueError(f"--box not given and no groundtruth.txt in {source}")


def build_parser():
    ap = argparse.ArgumentParser(prog="siam-track", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="image folder (sorted names; a folder with img/ works) or video file")
    ap.add_argument("--box", type=parse_box,
                    help="initial box x,y,w,h in px (0-based); default: first line of groundtruth.txt")
    ap.add_argument("--model", default="default", help="model name, model YAML or checkpoint (default: %(default)s)")
    ap.add_argument("--weights", help="weights file overriding the model's")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default: %(default)s)")
    ap.add_argument("--allow-untrained", action="store_true",
                    help="run a model that has no trained weights (random init) instead of refusing it")
    ap.add_argument("--out", default="-", help="box file to write ('-' = stdout)")
    deprecated_alias(ap, "--output", "-o", new="--out", dest="out")
    ap.add_argument("--video", help="write an annotated video here (.mp4 or .avi)")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    return ap


def main(argv=None) -> int:
    """User errors (a missing source, model or weights file, a bad box or device, no CUDA, an
    unwritable output) end with one line `siam-track: <reason>` and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (OSError, ValueError) as exc:
        print(f"siam-track: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    from ..core.tracking import loading

    source = FrameSource(args.source)
    box = args.box or read_first_groundtruth(args.source)
    try:
        loaded = loading.load(args.model, weights=args.weights, device=args.device,
                              allow_untrained=args.allow_untrained)
    except RuntimeError as exc:        # torch's own refusals: an unknown device string, CUDA init
        raise ValueError(f"cannot load model '{args.model}' on device '{args.device}': {exc}") from None
    config, weights = loaded.config, loaded.weights
    tracker = loaded.new_tracker()
    print(f"model {config.get('name')} on {tracker.device}; weights: "
          f"{weights or 'none (random initialisation: the model is untrained)'}", file=sys.stderr)

    out = sys.stdout if args.out == "-" else open(args.out, "w")
    writer = None
    tracked_time = 0.0
    tracked = 0
    total = len(source) if not args.max_frames else min(len(source), args.max_frames)
    try:
        for index, image in enumerate(tqdm(source, total=total or None, unit="frame", file=sys.stderr)):
            if args.max_frames and index >= args.max_frames:
                break
            if index == 0:
                tracker.init(image, box)
                current, label, color = np.asarray(box, float), "init", (255, 255, 0)
            else:
                start = time.perf_counter()
                result = tracker.track(image)
                tracked_time += time.perf_counter() - start
                tracked += 1
                current = result.box
                lost = result.state == TrackState.LOST
                label = f"{'LOST ' if lost else ''}{result.score:.2f}"
                color = (0, 0, 255) if lost else (0, 255, 0)
            out.write(",".join(f"{v:.2f}" for v in current) + "\n")
            if args.video:
                if writer is None:
                    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if args.video.endswith(".mp4") else "MJPG"))
                    writer = cv2.VideoWriter(args.video, fourcc, 25.0, (image.shape[1], image.shape[0]))
                writer.write(draw_box(image.copy(), current, color, label))
    finally:
        if out is not sys.stdout:
            out.close()
        if writer is not None:
            writer.release()
    fps = tracked / tracked_time if tracked_time > 0 else float("nan")
    print(f"tracked {tracked} frames at {fps:.1f} FPS (tracker only)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
