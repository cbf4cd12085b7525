"""Speed and memory of trackers (what `siam-bench` runs).

Every measurement runs in a fresh spawned process, one at a time, so that the
thread setting, the CUDA context and the peak memory belong to that
measurement alone:

1. the frames are decoded first (decoding is not timed);
2. the tracker is built (project models: torch.manual_seed(0) first) and
   initialised on frame 0 with the ground truth;
3. `warmup` frames are tracked untimed, then every further frame is timed:
   'total' = wall time of `tracker.track(image)` (with torch.cuda.synchronize()
   before and after on CUDA), and 'crop' / 'network' / 'post' from
   TrackResult.timing when the tracker fills them in (on CUDA those are as
   accurate as the tracker's own synchronisation);
4. memory: CPU = peak resident set size during build + tracking minus the
   resident size before the build (VmHWM, reset through /proc/self/clear_refs,
   else ru_maxrss); CUDA = torch.cuda.max_memory_allocated().

Configurations: CPU with 1 and 2 torch/OpenCV threads (fp32); CUDA fp32 and
CUDA fp16 (torch.autocast) when CUDA is available. Peers (OpenCV) run on CPU
with the same thread settings and report 'total' only.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

STAGES = ("crop", "network", "post", "total")
DEFAULT_SEQUENCE = "VOT2015_ball1"


@dataclass
class BenchJob:
    tracker: str                 # model name / path, or a peer name
    device: str = "cpu"          # cpu | cuda
    threads: Optional[int] = 1   # torch / OpenCV threads (None: leave as is)
    precision: str = "fp32"      # fp32 | fp16 (CUDA autocast)
    frames: int = 60
    warmup: int = 5
    sequence_dir: Optional[str] = None   # shared-layout sequence; None: synthetic frames
    onnx: Optional[List[str]] = None
    allow_untrained: bool = False        # time a model without trained weights (random init)


@dataclass
class BenchResult:
    tracker: str
    device: str
    threads: Optional[int]
    precision: str
    ok: bool
    reason: str = ""
    frames: int = 0
    ms: Dict[str, Dict[str, float]] = field(default_factory=dict)   # stage -> {median, p90, mean}
    fps: float = float("nan")
    memory_mb: float = float("nan")
    memory_kind: str = ""
    weights: str = ""
    source: str = ""


# --------------------------------------------------------------------------- frames
def synthetic_frames(n: int, width: int = 640, height: int = 480, seed: int = 0):
    """A textured square moving over a noisy background; returns (frames, init box)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    patch = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        img = background.copy()
        x = int(100 + 200 * (0.5 + 0.5 * np.sin(i / 15.0)))
        y = int(120 + 100 * (0.5 + 0.5 * np.cos(i / 20.0)))
        img[y:y + 60, x:x + 80] = patch
        frames.append(img)
    x0 = int(100 + 200 * 0.5)
    y0 = int(120 + 100 * 1.0)
    return frames, np.array([x0, y0, 80.0, 60.0])


def load_frames(sequence_dir: Optional[str], n: int):
    """(frames, init box, description) from a shared-layout sequence or synthetic."""
    if sequence_dir and os.path.isdir(sequence_dir):
        from .datasets import Sequence, list_images, read_boxes
        gt = read_boxes(os.path.join(sequence_dir, "groundtruth.txt"))
        paths = list_images(os.path.join(sequence_dir, "img"))
        m = min(n, len(paths), len(gt))
        seq = Sequence(os.path.basename(sequence_dir), paths[:m], gt[:m], np.zeros(m, bool))
        frames = [seq.frame(i) for i in range(m)]
        w, h = seq.image_size
        return frames, gt[0], f"{seq.name} ({w}x{h}, {m} frames)"
    frames, box = synthetic_frames(n)
    return frames, box, f"synthetic (640x480, {n} frames; no labelled sequences found)"


# --------------------------------------------------------------------------- memory
def read_status_kb(pid="self", field: str = "VmRSS") -> float:
    """A kB field (VmRSS, VmHWM ...) of /proc/PID/status; NaN where there is none."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _rss_kb() -> float:
    return read_status_kb("self", "VmRSS")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_kb(reset_ok: bool) -> float:
    if reset_ok:
        peak = read_status_kb("self", "VmHWM")
        if peak == peak:  # not NaN
            return peak
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --------------------------------------------------------------------------- one job
def _stats(values_s: List[float]) -> Dict[str, float]:
    v = np.asarray(values_s, dtype=np.float64) * 1000.0
    return {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "mean": float(np.mean(v))}


def run_job(job: BenchJob) -> BenchResult:
    """Measure one configuration in this process (call it in a fresh one)."""
    import contextlib

    import cv2
    import torch
    from .peers import OpenCVTracker, canonical_peer

    res = BenchResult(job.tracker, job.device, job.threads, job.precision, ok=False)
    saved_threads = (torch.get_num_threads(), cv2.getNumThreads())
    try:
        if job.threads:
            torch.set_num_threads(job.threads)
            cv2.setNumThreads(job.threads)
        frames, box, res.source = load_frames(job.sequence_dir, job.frames + job.warmup + 1)
        if len(frames) < 2:
            raise ValueError("need at least 2 frames")
        cuda = job.device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available")
        peer = canonical_peer(job.tracker)
        if peer and (cuda or job.precision != "fp32"):
            raise ValueError("OpenCV peers are timed on CPU fp32 only")
        reset_ok = _reset_peak()
        base_kb = _rss_kb()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            base_cuda = torch.cuda.memory_allocated()
        if peer:
            tracker = OpenCVTracker(peer, onnx=job.onnx)
            res.weights = " + ".join(os.path.basename(p) for p in tracker.onnx) if tracker.onnx else "n/a"
        else:
            from ..core.engines import split_engine_spec
            from ..core.tracking import loading
            torch.manual_seed(0)
            name, engine = split_engine_spec(job.tracker)     # NAME@onnxruntime
            tracker = loading.build_tracker(
                name, device=job.device, engine=engine,
                engine_options={"threads": job.threads} if str(engine).startswith("onnxruntime") else None,
                allow_untrained=job.allow_untrained)
            weights = (getattr(tracker, "config", {}) or {}).get("_weights")
            res.weights = os.path.basename(weights) if weights else "none (untrained)"
        autocast = (torch.autocast(device_type="cuda", dtype=torch.float16)
                    if cuda and job.precision == "fp16" else contextlib.nullcontext())
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        stage_times: Dict[str, List[float]] = {k: [] for k in STAGES}
        with autocast:
            tracker.init(frames[0], box)
            for i, image in enumerate(frames[1:]):
                sync()
                t0 = time.perf_counter()
                result = tracker.track(image)
                sync()
                elapsed = time.perf_counter() - t0
                if i < job.warmup:
                    continue
                stage_times["total"].append(elapsed)
                for k in ("crop", "network", "post"):
                    if k in result.timing:
                        stage_times[k].append(float(result.timing[k]))
        res.frames = len(stage_times["total"])
        if res.frames == 0:
            raise ValueError(f"no timed frames: {len(frames)} frames for warm-up {job.warmup}")
        res.ms = {k: _stats(v) for k, v in stage_times.items() if v}
        res.fps = 1000.0 / res.ms["total"]["median"]
        if cuda:
            res.memory_mb = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
            res.memory_kind = "cuda max_memory_allocated"
        else:
            res.memory_mb = (_peak_kb(reset_ok) - base_kb) / 1024.0
            res.memory_kind = "peak RSS delta"
        res.ok = True
    except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
        res.reason = f"{type(exc).__name__}: {exc}"
        res.ok = False
        if os.environ.get("SIAM_BENCH_DEBUG"):
            traceback.print_exc()
    finally:
        torch.set_num_threads(saved_threads[0])
        cv2.setNumThreads(saved_threads[1])
    return res


def _child(job: BenchJob) -> Dict[str, Any]:
    return asdict(run_job(job))


def run_spawned(child, job, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
    """child(job) (a module-level function returning a dict) in a fresh spawned
    process, so that one measurement's threads, caches and memory do not leak
    into the next; None when it ran past `timeout` seconds."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        try:
            return pool.apply_async(child, (job,)).get(timeout)
        except mp.TimeoutError:
            return None


def run_isolated(job: BenchJob, timeout: Optional[float] = None) -> BenchResult:
    """run_job in a fresh spawned process."""
    data = run_spawned(_child, job, timeout)
    if data is None:
        return BenchResult(job.tracker, job.device, job.threads, job.precision, ok=False,
                           reason=f"timed out after {timeout:.0f} s")
    return BenchResult(**data)


def configurations(cuda: Optional[bool] = None, threads=(1, 2)) -> List[Dict[str, Any]]:
    """CPU per thread count (fp32); CUDA fp32 and fp16 when available."""
    if cuda is None:
        import torch
        cuda = torch.cuda.is_available()
    out = [{"device": "cpu", "threads": t, "precision": "fp32"} for t in threads]
    if cuda:
        out += [{"device": "cuda", "threads": None, "precision": "fp32"},
                {"device": "cuda", "threads": None, "precision": "fp16"}]
    return out


def markdown_table(results: List[BenchResult]) -> str:
    def cell(r, k, q="median"):
        return f"{r.ms[k][q]:.2f}" if k in r.ms else "-"

    header = ["Tracker", "Device", "Threads", "Precision", "crop ms", "network ms", "post ms",
              "total ms (median)", "total ms (p90)", "FPS", "Peak memory MB", "Weights"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        if not r.ok:
            continue
        lines.append("| " + " | ".join([
            r.tracker, r.device, str(r.threads or "-"), r.precision, cell(r, "crop"), cell(r, "network"),
            cell(r, "post"), cell(r, "total"), cell(r, "total", "p90"), f"{r.fps:.1f}",
            f"{r.memory_mb:.0f}" + (" (GPU)" if r.device.startswith("cuda") else ""), r.weights]) + " |")
    return "\n".join(lines) + "\n"
