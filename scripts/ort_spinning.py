#!/usr/bin/env python3
"""onnxruntime with and without spinning pool threads, per model, in one run.

    python scripts/ort_spinning.py                          # shipped light models + default, 2 threads
    python scripts/ort_spinning.py --models default --threads 2 4 --rounds 3

Median milliseconds per tracked frame (crop + network + post, the tracker's track()),
VOT2015_ball1 (1280x720), the configurations interleaved round by round so that machine
load falls on all of them alike. With 1 thread onnxruntime has no pool and spinning
changes nothing; with more, spinning threads compete with the OpenCV crop that runs
between two network calls.
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

import cv2

from siam_tracker_ros.core.tracking import loading
from siam_tracker_ros.evaluation.datasets import open_dataset


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+",
                    default=["default", "rasnet_light", "ta_asiam_light", "siamcan_light", "siamaf_msa_light"])
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--dataset", default="../shared/data/sequences")
    ap.add_argument("--sequence", default="VOT2015_ball1")
    ap.add_argument("--frames", type=int, default=40, help="timed frames per configuration and round")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    if not os.path.isdir(os.path.join(args.dataset, args.sequence)):
        print(f"ort_spinning: {args.sequence} not in {args.dataset} (--dataset, --sequence)", file=sys.stderr)
        return 2
    seq, = open_dataset(args.dataset, names=[args.sequence])
    images = list(seq.frames(0, args.warmup + args.frames + 1))
    init_box = seq.gt[0]
    medians = {}
    for _ in range(args.rounds):
        for model in args.models:
            for threads in args.threads:
                cv2.setNumThreads(threads)
                for spin in (True, False):
                    loaded = loading.load(model, device="cpu", engine="onnxruntime",
                                          engine_options={"threads": threads, "allow_spinning": spin})
                    tracker = loaded.new_tracker()
                    tracker.init(images[0], init_box)
                    for image in images[1:1 + args.warmup]:
                        tracker.track(image)
                    times = []
                    for image in images[1 + args.warmup:]:
                        t0 = time.perf_counter()
                        tracker.track(image)
                        times.append(time.perf_counter() - t0)
                    medians.setdefault((model, threads, spin), []).append(statistics.median(times) * 1e3)
    print(f"# onnxruntime idle-thread spinning: median ms per frame, {args.sequence}, "
          f"{args.frames} frames x {args.rounds} rounds (one value per round), load average at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| model | threads | spinning (onnxruntime default) | not spinning (project default) | ratio |")
    print("|---|---|---|---|---|")
    for model in args.models:
        for threads in args.threads:
            on, off = medians[(model, threads, True)], medians[(model, threads, False)]
            print(f"| {model} | {threads} | {' / '.join(f'{x:.2f}' for x in on)} | "
                  f"{' / '.join(f'{x:.2f}' for x in off)} | "
                  f"{statistics.median(off) / statistics.median(on):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
