"""Several targets: one batched network call (MultiTargetTracker) vs the trackers
run one by one, timed in the same process on the same frames (`siam-bench --targets N`).

One measurement (model, device, threads, N targets) runs in a fresh spawned
process:
1. frames decoded first (not timed); N init boxes on frame 0: the labelled box
   and N - 1 boxes of its size at fixed places spread over the frame (grid);
2. one model; N trackers sharing it tracked one by one (`tracker.track`), and a
   MultiTargetTracker (no supervisor) with the same N boxes; both initialised
   on frame 0;
3. every frame: both paths track it, in alternating order (one first on even
   frames, the other on odd ones) so that load changes hit both alike; the
   first `warmup` frames are not timed. Both paths compute the same boxes
   (test/test_multi.py), so they do the same work;
4. per frame: wall time of the N-target step of each path (CUDA synchronised);
   reported per target (frame time / N) as median and p90 over frames, and
   the ratio one-by-one / batched of the medians (> 1: batching is faster);
   the same for the process CPU time (time.process_time), which a busy
   machine disturbs less than the wall time (time spent waiting for a core
   is not counted; on CUDA it is the host's time only); the median over
   frames of the per-frame ratio (both paths on the same frame, back to back:
   slow drifts of the machine's load cancel) and the ratio of the fastest
   frames (the least disturbed ones).
   With N = 1 MultiTargetTracker runs the plain single-target path, so the
   ratio is ~1 (a check of the harness).
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from . import speed


@dataclass
class MultiJob:
    model: str
    targets: int
    device: str = "cpu"
    threads: Optional[int] = 1
    frames: int = 60
    warmup: int = 5
    sequence_dir: Optional[str] = None
    allow_untrained: bool = False


@dataclass
class MultiResult:
    model: str
    targets: int
    device: str
    threads: Optional[int]
    ok: bool
    reason: str = ""
    frames: int = 0
    batched_ms: Dict[str, float] = field(default_factory=dict)     # per target, wall: median, p90
    sequential_ms: Dict[str, float] = field(default_factory=dict)
    speedup: float = float("nan")        # sequential median / batched median (wall)
    batched_cpu_ms: Dict[str, float] = field(default_factory=dict)  # per target, process CPU time
    sequential_cpu_ms: Dict[str, float] = field(default_factory=dict)
    cpu_speedup: float = float("nan")    # the same ratio of CPU times
    paired_speedup: float = float("nan")  # median over frames of (one-by-one / batched), same frame
    min_speedup: float = float("nan")    # fastest one-by-one frame / fastest batched frame
    max_box_diff: float = float("nan")   # px, batched vs one by one, over all frames/targets
    source: str = ""


def target_boxes(first_box, image_size, n: int) -> List[np.ndarray]:
    """The labelled box and n - 1 boxes of its size on a grid over the frame."""
    w, h = image_size
    bw, bh = float(first_box[2]), float(first_box[3])
    boxes = [np.asarray(first_box, dtype=np.float64)]
    cols = int(np.ceil(np.sqrt(max(n - 1, 1))))
    rows = int(np.ceil(max(n - 1, 1) / cols))
    for k in range(n - 1):
        r, c = divmod(k, cols)
        cx = (c + 0.5) / cols * w
        cy = (r + 0.5) / rows * h
        x = float(np.clip(cx - bw / 2, 0, max(w - bw, 0)))
        y = float(np.clip(cy - bh / 2, 0, max(h - bh, 0)))
        boxes.append(np.array([x, y, min(bw, w), min(bh, h)]))
    return boxes


def _stats(v_s: List[float]) -> Dict[str, float]:
    v = np.asarray(v_s, dtype=np.float64) * 1000.0
    return {"median": float(np.median(v)), "p90": float(np.percentile(v, 90))}


def run_multi_job(job: MultiJob) -> MultiResult:
    """Measure one configuration in this process (call it in a fresh one)."""
    import cv2
    import torch

    from ..core.tracking import loading
    from ..core.tracking.multi import MultiTargetTracker

    res = MultiResult(job.model, job.targets, job.device, job.threads, ok=False)
    saved_threads = (torch.get_num_threads(), cv2.getNumThreads())
    try:
        if job.threads:
            torch.set_num_threads(job.threads)
            cv2.setNumThreads(job.threads)
        frames, box, res.source = speed.load_frames(job.sequence_dir, job.frames + job.warmup + 1)
        if len(frames) < 2:
            raise ValueError("need at least 2 frames")
        cuda = job.device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available")
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        torch.manual_seed(0)
        build = loading.load(job.model, device=job.device, allow_untrained=job.allow_untrained).new_tracker

        h, w = frames[0].shape[:2]
        boxes = target_boxes(box, (w, h), job.targets)
        singles = [build() for _ in boxes]
        for t, b in zip(singles, boxes):
            t.init(frames[0], b)
        mt = MultiTargetTracker(build)
        for i, b in enumerate(boxes):
            mt.add(i, frames[0], b)

        batched, sequential, batched_cpu, sequential_cpu = [], [], [], []
        max_diff = 0.0
        for k, image in enumerate(frames[1:]):
            order = ("batched", "sequential") if k % 2 == 0 else ("sequential", "batched")
            times, cpu, outs = {}, {}, {}
            for path in order:
                sync()
                c0 = time.process_time()
                t0 = time.perf_counter()
                if path == "batched":
                    r = mt.track(image)
                    if mt.errors:        # the batched path isolates a failing target: re-raise it here
                        raise next(iter(mt.errors.values()))
                    outs[path] = [r[i] for i in range(len(boxes))]
                else:
                    outs[path] = [t.track(image) for t in singles]
                sync()
                times[path] = time.perf_counter() - t0
                cpu[path] = time.process_time() - c0
            max_diff = max(max_diff, max(float(np.abs(a.box - b.box).max())
                                         for a, b in zip(outs["batched"], outs["sequential"])))
            if k < job.warmup:
                continue
            batched.append(times["batched"] / len(boxes))
            sequential.append(times["sequential"] / len(boxes))
            batched_cpu.append(cpu["batched"] / len(boxes))
            sequential_cpu.append(cpu["sequential"] / len(boxes))
        res.frames = len(batched)
        if res.frames == 0:
            raise ValueError(f"no timed frames: {len(frames)} frames for warm-up {job.warmup}")
        res.batched_ms = _stats(batched)
        res.sequential_ms = _stats(sequential)
        res.speedup = res.sequential_ms["median"] / res.batched_ms["median"]
        res.batched_cpu_ms = _stats(batched_cpu)
        res.sequential_cpu_ms = _stats(sequential_cpu)
        res.cpu_speedup = res.sequential_cpu_ms["median"] / max(res.batched_cpu_ms["median"], 1e-9)
        res.paired_speedup = float(np.median(np.asarray(sequential) / np.asarray(batched)))
        res.min_speedup = float(min(sequential) / min(batched))
        res.max_box_diff = max_diff
        res.ok = True
    except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
        res.reason = f"{type(exc).__name__}: {exc}"
        if os.environ.get("SIAM_BENCH_DEBUG"):
            traceback.print_exc()
    finally:
        torch.set_num_threads(saved_threads[0])
        cv2.setNumThreads(saved_threads[1])
    return res


def _child(job: MultiJob) -> Dict[str, Any]:
    return asdict(run_multi_job(job))


def run_isolated(job: MultiJob, timeout: Optional[float] = None) -> MultiResult:
    """run_multi_job in a fresh spawned process."""
    data = speed.run_spawned(_child, job, timeout)
    if data is None:
        return MultiResult(job.model, job.targets, job.device, job.threads, ok=False,
                           reason=f"timed out after {timeout:.0f} s")
    return MultiResult(**data)


def markdown_table(results: List[MultiResult]) -> str:
    header = ["Model", "Device", "Threads", "Targets", "batched ms/target (median)", "(p90)",
              "one-by-one ms/target (median)", "(p90)", "one-by-one / batched (medians)",
              "per-frame ratio (median)", "fastest-frame ratio",
              "CPU ms/target batched", "CPU ms/target one-by-one", "CPU ratio", "max box diff px"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        if not r.ok:
            continue
        lines.append("| " + " | ".join([
            r.model, r.device, str(r.threads or "-"), str(r.targets),
            f"{r.batched_ms['median']:.2f}", f"{r.batched_ms['p90']:.2f}",
            f"{r.sequential_ms['median']:.2f}", f"{r.sequential_ms['p90']:.2f}",
            f"{r.speedup:.2f}x", f"{r.paired_speedup:.2f}x", f"{r.min_speedup:.2f}x",
            f"{r.batched_cpu_ms['median']:.2f}", f"{r.sequential_cpu_ms['median']:.2f}",
            f"{r.cpu_speedup:.2f}x", f"{r.max_box_diff:.1e}"]) + " |")
    return "\n".join(lines) + "\n"
