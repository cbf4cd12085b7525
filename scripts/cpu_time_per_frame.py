#!/usr/bin/env python3
"""Usage: PYTHONPATH=CHECKOUT OMP_NUM_THREADS=1 python scripts/cpu_time_per_frame.py default,nanotrack

CPU time per frame (time.process_time, 1 torch thread) of the tracker alone and of the
supervised tracker (TRACKING, then the target greyed out: LOST search), for the code on
PYTHONPATH. CPU time, not wall time: the machine is shared, and a process's CPU time
moves much less with the load than its wall time. Prints one JSON line."""
import json, os, sys, time
import numpy as np, torch, cv2
torch.set_num_threads(1); cv2.setNumThreads(1)
try:
    from siam_tracker_ros.core.tracking.loading import build_tracker
except ImportError:
    from siam_tracker_ros.core.models.registry import build_tracker
from siam_tracker_ros.core.tracking.monitor import TargetSupervisor


def build(name):
    """The same tracker from code before and after allow_untrained existed."""
    try:
        return build_tracker(name, device="cpu", allow_untrained=True)
    except (TypeError, ValueError):   # older code: no such argument
        return build_tracker(name, device="cpu")


from siam_tracker_ros.evaluation.datasets import open_dataset
seq = open_dataset(os.environ.get("SIAM_SEQUENCES", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "sequences")), "shared", names=["VOT2015_ball1"])[0]
frames = [seq.frame(i) for i in range(min(len(seq), 80))]
box = seq.gt[0]
out = {}
for name in sys.argv[1].split(","):
    torch.manual_seed(0)
    t = build(name)
    t.init(frames[0], box)
    for f in frames[1:6]:
        t.track(f)
    c0 = time.process_time()
    for f in frames[6:]:
        t.track(f)
    out[f"{name}_track_ms"] = (time.process_time() - c0) / len(frames[6:]) * 1e3
    if name in ("default", "nanotrack"):
        torch.manual_seed(0)
        sup = TargetSupervisor(build(name))
        sup.init(frames[0], box)
        c0 = time.process_time()
        for f in frames[1:40]:
            sup.step(f)
        out[f"{name}_supervised_ms"] = (time.process_time() - c0) / 39 * 1e3
        x, y, w, h = (int(round(v)) for v in sup.tracker.box)
        c0 = time.process_time()
        lost = 0
        for f in frames[40:80]:
            g = f.copy(); g[max(0, y - h):y + 2 * h, max(0, x - w):x + 2 * w] = 127
            lost += int(sup.step(g).state) == 2
        out[f"{name}_lost_phase_ms"] = (time.process_time() - c0) / 40 * 1e3
        out[f"{name}_lost_frames"] = lost
print(json.dumps(out))
