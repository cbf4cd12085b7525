"""Run trackers over sequences, with a per-sequence results cache and worker processes.

One task = one tracker on one sequence. Frame 0 initialises the tracker with the
ground-truth box (its output box is the ground truth, as the toolkits record it);
every later frame is timed around `tracker.track(image)` only (image decoding and
initialisation excluded) and FPS = tracked frames / summed track() time.

Cache: ``CACHE/<label>/<key>/<sequence>-<protocol>-<seqhash>.json`` with the
boxes, per-frame times and scores. `key` hashes the tracker identity: for a
project model its config (YAML content), the weights file's sha256, the device,
the overrides and the source files of its model builder and tracker class; for
a peer the OpenCV version and the ONNX files' sha256. `seqhash` covers the frame
names and the ground truth. A rerun loads cached sequences and runs the rest, so
an interrupted evaluation resumes where it stopped.

Workers: sequences run in parallel processes (spawn), each with torch and
OpenCV limited to `threads` threads (default 1) so that parallel workers do not
oversubscribe the cores; timings are tracker-only but taken while the other
workers run.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence as Seq, Tuple

import numpy as np

from . import metrics
from .datasets import Sequence
from .peers import OpenCVTracker, canonical_peer, file_digest

LOG = logging.getLogger(__name__)
CACHE_VERSION = 1


# --------------------------------------------------------------------------- tracker specs
@dataclass
class TrackerSpec:
    """What to run: a project model (name, YAML or checkpoint) or an OpenCV peer."""
    spec: str
    label: Optional[str] = None
    device: str = "auto"
    weights: Optional[str] = None
    onnx: Optional[Tuple[str, str]] = None
    overrides: Dict[str, Any] = field(default_factory=dict)
    # Inference engine of a project model (None = torch eager); "NAME@ENGINE" in
    # `spec` sets it too, so one run can compare engines side by side.
    engine: Optional[str] = None
    # Run a model that has no trained weights (random init) instead of refusing it.
    allow_untrained: bool = False

    def __post_init__(self):
        if self.engine is None:
            from ..core.engines import split_engine_spec
            self.spec, self.engine = split_engine_spec(self.spec)
        self.peer = canonical_peer(self.spec)
        if self.label is None:
            if self.peer:
                self.label = self.peer
            elif os.path.isfile(self.spec):
                self.label = os.path.splitext(os.path.basename(self.spec))[0]
            else:
                self.label = self.spec
            if self.engine and not self.peer:
                self.label = f"{self.label}@{self.engine}"
        self._identity = None
        self._weights_note = None

    @property
    def kind(self) -> str:
        return "peer" if self.peer else "model"

    seed: int = 0

    def build(self):
        if self.peer:
            return OpenCVTracker(self.peer, onnx=self.onnx)
        import torch
        from ..core.tracking.loading import build_tracker
        # Models without weights are randomly initialised: seed so that a rerun
        # (and the cache) sees the same network.
        torch.manual_seed(self.seed)
        return build_tracker(self.spec, device=self.device, weights=self.weights, engine=self.engine,
                             engine_options={"threads": 1} if str(self.engine).startswith("onnxruntime") else None,
                             allow_untrained=self.allow_untrained, **self.overrides)

    def identity(self) -> Dict[str, Any]:
        """Everything the tracker's output depends on; raises when it cannot be built."""
        if self._identity is None:
            self._identity = self._peer_identity() if self.peer else self._model_identity()
        return self._identity

    def weights_note(self) -> str:
        """Human-readable weights: file name, or 'none (untrained)'."""
        self.identity()
        return self._weights_note or ""

    def _peer_identity(self) -> Dict[str, Any]:
        tracker = OpenCVTracker(self.peer, onnx=self.onnx)     # raises if ONNX missing
        if tracker.onnx:
            self.onnx = tracker.onnx
            self._weights_note = " + ".join(os.path.basename(p) for p in tracker.onnx)
        else:
            self._weights_note = "n/a (classical)"
        return tracker.identity()

    def _model_identity(self) -> Dict[str, Any]:
        from ..core import checkpoints
        from ..core.models import registry
        from ..core.tracking.registry import TRACKER_CLASSES, import_all
        registry.import_all()
        import_all()
        ident: Dict[str, Any] = {"kind": "model", "device": self.device,
                                 "overrides": self.overrides, "seed": self.seed}
        if self.engine:
            ident["engine"] = self.engine
        if os.path.isfile(self.spec) and not self.spec.endswith((".yaml", ".yml")):
            config, _, _ = checkpoints.load_checkpoint(self.spec)
            ident["checkpoint"] = file_digest(self.spec)
            weights_path = self.spec
        else:
            config = registry.load_model_config(self.spec)
            weights_path = registry.resolve_weights_path(self.weights or config.get("weights"), config)
            if weights_path:
                if not os.path.isfile(weights_path):
                    raise FileNotFoundError(f"weights of {self.spec} not found: {weights_path}")
                ident["weights"] = file_digest(weights_path)
            elif not self.allow_untrained:
                from ..core.tracking.loading import UntrainedModelError, untrained_refusal
                raise UntrainedModelError(untrained_refusal(str(config.get("name", self.spec))))
        ident["config"] = {k: v for k, v in config.items() if not k.startswith("_")}
        self._weights_note = os.path.basename(weights_path) if weights_path else "none (untrained, random init)"
        sources = []
        model_type = config["model"].get("type")
        if model_type in registry.MODEL_BUILDERS:
            sources.append(inspect.getsourcefile(registry.MODEL_BUILDERS[model_type]))
        tracker_type = config["tracker"].get("type")
        if tracker_type in TRACKER_CLASSES:
            for cls in inspect.getmro(TRACKER_CLASSES[tracker_type]):
                if cls.__module__.startswith("siam_tracker_ros"):
                    sources.append(inspect.getsourcefile(cls))
        from ..core import geometry
        sources.append(inspect.getsourcefile(geometry))
        ident["sources"] = {os.path.basename(p): file_digest(p) for p in sorted(set(sources)) if p}
        return ident

    def key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sequence_hash(seq: Sequence) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([os.path.basename(p) for p in seq.frame_paths]).encode())
    h.update(np.ascontiguousarray(np.nan_to_num(seq.gt, nan=-1.0)).tobytes())
    h.update(np.ascontiguousarray(seq.absent).tobytes())
    return h.hexdigest()[:10]


# --------------------------------------------------------------------------- one task
def set_threads(threads: Optional[int]) -> None:
    if not threads:
        return
    import cv2
    import torch
    torch.set_num_threads(int(threads))
    cv2.setNumThreads(int(threads))


def run_sequence(tracker, seq: Sequence, protocol: str = "ope") -> Dict[str, Any]:
    """Run one initialised-per-sequence tracker over `seq`; returns the raw record."""
    n = len(seq)
    times = np.zeros(n)
    scores = np.full(n, np.nan)
    if protocol == "ope":
        boxes = np.zeros((n, 4))
        first = seq.frame(0)
        t0 = time.perf_counter()
        tracker.init(first, seq.gt[0])
        init_time = time.perf_counter() - t0
        boxes[0] = seq.gt[0]
        scores[0] = 1.0
        for i in range(1, n):
            image = seq.frame(i)
            t0 = time.perf_counter()
            result = tracker.track(image)
            times[i] = time.perf_counter() - t0
            boxes[i] = np.asarray(result.box, dtype=np.float64).reshape(4)
            scores[i] = float(result.score)
        return {"boxes": boxes.tolist(), "times": times.tolist(), "scores": scores.tolist(),
                "init_time": init_time, "tracked_frames": n - 1}
    if protocol == "vot":
        init_times: List[float] = []
        tracked = [0]

        def init_fn(i, box):
            image = seq.frame(i)
            t0 = time.perf_counter()
            tracker.init(image, box)
            init_times.append(time.perf_counter() - t0)

        def track_fn(i):
            image = seq.frame(i)
            t0 = time.perf_counter()
            result = tracker.track(image)
            times[i] = time.perf_counter() - t0
            scores[i] = float(result.score)
            tracked[0] += 1
            return result.box

        records = metrics.run_vot_protocol(track_fn, init_fn, n, seq.gt, bound=seq.image_size)
        return {"records": [r if isinstance(r, str) else np.asarray(r).tolist() for r in records],
                "times": times.tolist(), "scores": scores.tolist(),
                "init_time": float(sum(init_times)), "tracked_frames": tracked[0]}
    raise ValueError(f"unknown protocol {protocol!r} (ope or vot)")


_WORKER_TRACKERS: Dict[str, Any] = {}


def _worker_init(threads):
    set_threads(threads)


def _worker_task(args):
    spec, seq, protocol = args
    try:
        key = spec.label + ":" + spec.key()
        if key not in _WORKER_TRACKERS:
            _WORKER_TRACKERS[key] = spec.build()
        record = run_sequence(_WORKER_TRACKERS[key], seq, protocol)
        return spec.label, seq.name, record, None
    except Exception as exc:  # noqa: BLE001 - reported per task, the run goes on
        return spec.label, seq.name, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"


# --------------------------------------------------------------------------- cache
def cache_path(cache_dir: str, spec: TrackerSpec, seq: Sequence, protocol: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.label)
    return os.path.join(cache_dir, safe, spec.key(), f"{seq.name}-{protocol}-{sequence_hash(seq)}.json")


def load_cached(path: str) -> Optional[Dict[str, Any]]:
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if data.get("cache_version") != CACHE_VERSION:
        return None
    return data


def save_cached(path: str, record: Dict[str, Any], spec: TrackerSpec, seq: Sequence, protocol: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ident_path = os.path.join(os.path.dirname(path), "identity.json")
    if not os.path.isfile(ident_path):
        with open(ident_path, "w") as f:
            json.dump(spec.identity(), f, indent=1, sort_keys=True, default=str)
    data = dict(record)
    data.update({"cache_version": CACHE_VERSION, "tracker": spec.label, "sequence": seq.name,
                 "protocol": protocol, "frames": len(seq)})
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the run
@dataclass
class EvalRun:
    """Raw results: records[label][sequence] and why trackers or tasks were skipped."""
    specs: List[TrackerSpec]
    sequences: List[Sequence]
    protocol: str
    records: Dict[str, Dict[str, Dict[str, Any]]]
    skipped: Dict[str, str]
    errors: Dict[str, Dict[str, str]]
    ran: int = 0
    cached: int = 0
    missing: Dict[str, List[str]] = field(default_factory=dict)   # not cached, not run (cache_only)


def default_workers(device: str = "cpu") -> int:
    """Number of cores; at most 4 when the models run on CUDA (one context per worker)."""
    cores = max(1, os.cpu_count() or 1)
    if device in ("auto", None, "") or str(device).startswith("cuda"):
        import torch
        if torch.cuda.is_available():
            return min(cores, 4)
    return cores


def run_trackers(specs: Seq[TrackerSpec], sequences: Seq[Sequence], cache_dir: Optional[str] = None,
                 protocol: str = "ope", workers: int = 1, threads: Optional[int] = 1,
                 use_cache: bool = True, progress: bool = True, cache_only: bool = False) -> EvalRun:
    """Run every spec over every sequence (cached results are reused).

    cache_only: run nothing, report what the cache holds (the rest in run.missing)."""
    if protocol not in ("ope", "vot"):
        raise ValueError(f"unknown protocol {protocol!r} (ope or vot)")
    run = EvalRun(list(specs), list(sequences), protocol, {}, {}, {})
    tasks = []
    for spec in specs:
        try:
            spec.key()
        except Exception as exc:  # noqa: BLE001 - missing weights, unknown model ...
            run.skipped[spec.label] = f"{type(exc).__name__}: {exc}"
            LOG.warning("skipping %s: %s", spec.label, run.skipped[spec.label])
            continue
        run.records[spec.label] = {}
        for seq in sequences:
            path = cache_path(cache_dir, spec, seq, protocol) if cache_dir else None
            cached = load_cached(path) if (path and use_cache) else None
            if cached is not None and cached.get("frames") == len(seq):
                run.records[spec.label][seq.name] = cached
                run.cached += 1
            elif cache_only:
                run.missing.setdefault(spec.label, []).append(seq.name)
            else:
                tasks.append((spec, seq, protocol))
    if not tasks:
        return run
    by_label = {s.label: s for s in specs}
    by_seq = {s.name: s for s in sequences}

    def handle(result):
        label, seq_name, record, error = result
        if error is not None:
            run.errors.setdefault(label, {})[seq_name] = error
            LOG.error("%s on %s failed: %s", label, seq_name, error.splitlines()[0])
            return
        run.ran += 1
        if cache_dir:
            save_cached(cache_path(cache_dir, by_label[label], by_seq[seq_name], protocol),
                        record, by_label[label], by_seq[seq_name], protocol)
        run.records[label][seq_name] = record

    bar = _progress(len(tasks), progress)
    workers = max(1, min(int(workers or 1), len(tasks)))
    if workers == 1:
        import cv2
        import torch
        saved = (torch.get_num_threads(), cv2.getNumThreads())
        set_threads(threads)
        try:
            for task in tasks:
                bar.set_postfix_str(f"{task[0].label} / {task[1].name}", refresh=False)
                handle(_worker_task(task))
                bar.update(1)
        finally:
            torch.set_num_threads(saved[0])
            cv2.setNumThreads(saved[1])
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(threads,)) as pool:
            for result in pool.imap_unordered(_worker_task, tasks):
                bar.set_postfix_str(f"{result[0]} / {result[1]}", refresh=False)
                handle(result)
                bar.update(1)
    bar.close()
    # keep the sequence order of the input
    for label in run.records:
        run.records[label] = {s.name: run.records[label][s.name] for s in sequences
                              if s.name in run.records[label]}
    return run


class _NoBar:
    def set_postfix_str(self, *a, **k):
        pass

    def update(self, *a):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, desc="tracking", unit="seq", file=sys.stderr, dynamic_ncols=True)


# --------------------------------------------------------------------------- scoring
def fps_of(record: Dict[str, Any]) -> Tuple[int, float]:
    """(tracked frames, tracking seconds) of one record (init excluded)."""
    times = np.asarray(record["times"], dtype=np.float64)
    return int(record.get("tracked_frames", np.count_nonzero(times))), float(times.sum())


def score_run(run: EvalRun, absent_policy: str = "exclude") -> Dict[str, Dict[str, Any]]:
    """Metrics per tracker: {'overall': {...}, 'sequences': {name: {...}}}."""
    seqs = {s.name: s for s in run.sequences}
    out: Dict[str, Dict[str, Any]] = {}
    for label, recs in run.records.items():
        if not recs:
            continue
        per_seq: Dict[str, Dict[str, Any]] = {}
        frames_total, time_total = 0, 0.0
        for name, rec in recs.items():
            seq = seqs[name]
            nframes, secs = fps_of(rec)
            frames_total += nframes
            time_total += secs
            if run.protocol == "ope":
                m = metrics.sequence_metrics(np.asarray(rec["boxes"]), seq.gt, seq.absent,
                                             absent_policy, bound=seq.image_size if seq.dataset == "got10k" else None)
            else:
                records = [r if isinstance(r, str) else np.asarray(r) for r in rec["records"]]
                m = metrics.vot_accuracy_robustness(records, seq.gt, bound=seq.image_size)
                m["robustness"] = 100.0 * m["failures"] / m["frames"]
            m["frames"] = len(seq)
            m["fps"] = nframes / secs if secs > 0 else float("nan")
            per_seq[name] = m
        if run.protocol == "ope":
            overall = metrics.aggregate(per_seq.values())
        else:
            overall = metrics.vot_aggregate(per_seq.values())
            overall["sequences"] = len(per_seq)
        overall["fps"] = frames_total / time_total if time_total > 0 else float("nan")
        overall["tracked_frames"] = frames_total
        overall["complete"] = len(per_seq) == len(run.sequences)
        out[label] = {"overall": overall, "sequences": per_seq}
    return out
