"""siam-bag eval / score: a tracker over a bag offline, and benchmark metrics of results bags.

Offline (no ROS graph, no rclpy): the images of a bag go through the core tracker
and, unless switched off, the same per-target supervisor the node uses
(core/tracking/monitor.py TargetSupervisor: TRACKING / LOST with re-acquisition
search). The results are written as siam_tracker_ros/TrackedObject, one per
image, with the image's header, filled as the node fills them (box clipped to the
image; LOST and IDLE carry a zero box). Frames before the init are IDLE; the init
frame carries the init box (TRACKING, score 1), as the node answers it.

Init: --init-box, else the bag's TargetInit (siam-bag from-video writes one for
the first frame), else the first valid ground-truth box.

Metrics (bags.score): OPE AUC, P@20, normalised P@20, success@0.5 and GOT-10k
AO/SR over the frames with ground truth from the init frame on, as siam-eval
computes them for one sequence (evaluation.metrics.sequence_metrics).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.tracking.base import TrackState
from . import bags


def parse_params(items: Sequence[str]) -> Dict[str, Any]:
    """['key=value', ...] -> {key: YAML value}."""
    import yaml
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"expected KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def node_supervisor_params(params_file: Optional[str] = None, node_name: Optional[str] = None,
                           overrides: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The supervisor parameters the node would use: its parameter defaults (ros/params.py),
    then a params file in the ROS format (`NODE: ros__parameters: ...`; nested keys as
    `a.b`; a key the node does not have is an error, as in the node), then `overrides`
    (node parameter names: supervisor.score_lost ...); None when supervisor.enabled is false."""
    from . import params as node_params
    values: Dict[str, Any] = node_params.defaults()
    if params_file:
        values.update(node_params.read_params_file(params_file, node_name or node_params.NODE_NAME))
    unknown = node_params.unknown_keys(overrides or {})
    if unknown:
        raise ValueError(node_params.unknown_text(unknown))
    values.update(overrides or {})
    return node_params.supervisor_params(values)


@dataclass
class FrameResult:
    header: Any             # rosbags std_msgs/Header of the image
    width: int
    height: int
    state: int
    box: Optional[np.ndarray]
    score: float
    seconds: float          # tracker (and supervisor) time for this frame; 0 for IDLE / init


class OfflineTarget:
    """One target: the tracker alone (raw: always TRACKING, like siam-eval) or through the
    supervisor (`supervisor_params` not None)."""

    def __init__(self, tracker, supervisor_params: Optional[Dict[str, Any]] = None):
        self.tracker = tracker
        self.supervisor = None
        if supervisor_params is not None:
            from ..core.tracking.monitor import TargetSupervisor
            self.supervisor = TargetSupervisor(tracker, **supervisor_params)

    def init(self, image, box) -> None:
        (self.supervisor or self.tracker).init(image, box)

    def step(self, image) -> Tuple[int, np.ndarray, float]:
        if self.supervisor is None:
            result = self.tracker.track(image)
            return TrackState.TRACKING, np.asarray(result.box, dtype=np.float64), float(result.score)
        result = self.supervisor.step(image)
        state = TrackState.LOST if int(result.state) == TrackState.LOST else TrackState.TRACKING
        return state, np.asarray(result.box, dtype=np.float64), float(result.score)


def choose_init(content: bags.TrackBag, init_box: Optional[Sequence[float]], target_id: int):
    """(stamp, box, target id) to start from (see the module docstring)."""
    if not content.stamps:
        raise ValueError("the bag has no images")
    if init_box is not None:
        return content.stamps[0], np.asarray(init_box, dtype=np.float64), target_id
    init = content.init_for(target_id) or content.init_for(None)
    if init is not None:
        return init
    for s in content.stamps:
        if s in content.groundtruth and bags.valid_box(content.groundtruth[s]):
            return s, content.groundtruth[s].copy(), target_id
    raise ValueError("no init: the bag has neither a TargetInit nor ground truth; pass --init-box X Y W H")


def track_bag(path: str, target: OfflineTarget, init: Tuple[int, np.ndarray, int],
              image_topic: Optional[str] = None, log=None, progress: bool = False,
              total: Optional[int] = None) -> List[FrameResult]:
    """Every image of the bag, in bag order, through `target` from the init frame on
    (`progress`: a tqdm bar on stderr, `total` frames)."""
    topic = bags.image_topic_of(path, image_topic)
    init_stamp, init_box, _ = init
    out: List[FrameResult] = []
    started = False
    messages = bags.read_image_bag(path, topic, compressed=True)
    if progress:
        from tqdm import tqdm
        messages = tqdm(messages, total=total, unit="frame", file=sys.stderr, desc="tracking")
    for _, _, _, msg in messages:
        stamp = bags.stamp_of(msg.header)
        image = bags.decode_image(msg)
        h, w = image.shape[:2]
        if not started and stamp < init_stamp:
            out.append(FrameResult(msg.header, w, h, TrackState.IDLE, None, 0.0, 0.0))
            continue
        if not started:
            if stamp != init_stamp and log:
                log(f"no image has the init stamp {init_stamp}: initialising on the next one ({stamp})")
            target.init(image, init_box)
            started = True
            out.append(FrameResult(msg.header, w, h, TrackState.TRACKING, np.asarray(init_box, float), 1.0, 0.0))
            continue
        t0 = time.perf_counter()
        state, box, score = target.step(image)
        out.append(FrameResult(msg.header, w, h, state, box, score, time.perf_counter() - t0))
    if not started:
        raise ValueError(f"no image at or after the init stamp {init_stamp}")
    return out


def write_results_bag(path: str, results: List[FrameResult], target_id: int, content: bags.TrackBag,
                      storage: str = "sqlite3", overwrite: bool = False,
                      results_topic: str = bags.RESULTS_TOPIC) -> None:
    """TrackedObject per frame on `results_topic` (log time = the image stamp), plus the
    input's ground truth and init, so the results bag can be scored on its own."""
    store = bags.typestore()
    with bags.new_writer(path, storage, overwrite) as writer:
        conn = writer.add_connection(results_topic, bags.TRACKED_OBJECT_TYPE, typestore=store)
        gt_conn = writer.add_connection(bags.GROUNDTRUTH_TOPIC, bags.TRACKED_OBJECT_TYPE, typestore=store) \
            if content.groundtruth else None
        init_conn = writer.add_connection(bags.INIT_TOPIC, bags.TARGET_INIT_TYPE, typestore=store) \
            if content.inits else None
        inits = {s: (box, tid) for s, box, tid in content.inits}
        for r in results:
            stamp = bags.stamp_of(r.header)
            msg = bags.tracked_object_message(store, r.header, target_id, r.state, r.box, r.score,
                                              r.width, r.height, latency=r.seconds)
            writer.write(conn, stamp, store.serialize_cdr(msg, bags.TRACKED_OBJECT_TYPE))
            if init_conn is not None and stamp in inits:
                init = bags.target_init_message(store, r.header, inits[stamp][1], inits[stamp][0])
                writer.write(init_conn, stamp, store.serialize_cdr(init, bags.TARGET_INIT_TYPE))
            if gt_conn is not None and stamp in content.groundtruth:
                box = content.groundtruth[stamp]
                ok = bags.valid_box(box)
                gt = bags.tracked_object_message(store, r.header, target_id,
                                                 TrackState.TRACKING if ok else TrackState.LOST,
                                                 box if ok else None, 1.0 if ok else 0.0, r.width, r.height,
                                                 clip=False)
                writer.write(gt_conn, stamp, store.serialize_cdr(gt, bags.TRACKED_OBJECT_TYPE))


def evaluate(bag: str, model: str = "default", device: str = "cpu", weights: Optional[str] = None,
             engine: Optional[str] = None, threads: int = 1, supervisor: bool = True,
             supervisor_params: Optional[Dict[str, Any]] = None, init_box=None, target_id: int = 1,
             image_topic: Optional[str] = None, results_bag: Optional[str] = None,
             storage: str = "sqlite3", overwrite: bool = False, log=print, progress: bool = False,
             allow_untrained: bool = False) -> Dict[str, Any]:
    """Track a bag offline; write the results bag; score it when the bag has ground truth."""
    import torch
    from ..core.tracking.loading import build_tracker
    if threads and threads > 0:
        torch.set_num_threads(int(threads))
        import cv2
        cv2.setNumThreads(int(threads))
    content = bags.read_track_bag(bag, image_topic=image_topic, results_topic=None)
    init = choose_init(content, init_box, target_id)
    torch.manual_seed(0)   # as siam-eval: a model without weights is the same network every run
    tracker = build_tracker(model, device=device, weights=weights, engine=engine, allow_untrained=allow_untrained)
    use_supervisor = bool(supervisor)
    target = OfflineTarget(tracker, dict(supervisor_params or {}) if use_supervisor else None)
    results = track_bag(bag, target, init, image_topic=content.image_topic, log=log, progress=progress,
                        total=len(content.stamps))
    summary: Dict[str, Any] = {
        "bag": bag, "model": model, "device": str(getattr(tracker, "device", device)), "engine": engine or "torch",
        "supervisor": use_supervisor,
        "supervisor_params": dict(supervisor_params or {}) if use_supervisor else None,
        "init": {"stamp": int(init[0]), "box": [float(v) for v in init[1]], "target_id": int(init[2])},
        "frames": len(results), "image_topic": content.image_topic,
        "lost_frames": sum(r.state == TrackState.LOST for r in results),
    }
    tracked = [r.seconds for r in results if r.seconds > 0]
    summary["fps"] = len(tracked) / sum(tracked) if tracked else float("nan")
    if results_bag:
        write_results_bag(results_bag, results, init[2], content, storage, overwrite)
        summary["results_bag"] = results_bag
    if content.groundtruth:
        # the box a consumer reads: float32 and clipped, as in the results bag
        from ..core import geometry
        records = {}
        for r in results:
            box = np.zeros(4)
            if r.state == TrackState.TRACKING:
                box = np.asarray(geometry.clip_box(r.box, r.width, r.height), np.float32).astype(np.float64)
            records[bags.stamp_of(r.header)] = bags.ObjectRecord(r.state, box, r.score)
        summary["metrics"] = bags.score(content.groundtruth, records, init, content.stamps)
    return summary


def score_bags(results_bag: str, groundtruth_bag: Optional[str] = None, target_id: Optional[int] = None,
               results_topic: str = bags.RESULTS_TOPIC, groundtruth_topic: str = bags.GROUNDTRUTH_TOPIC
               ) -> Dict[str, Any]:
    """Metrics of a results bag (recorded from the live node or written by `evaluate`) against
    the ground truth in `groundtruth_bag` (else in the results bag itself)."""
    res = bags.read_track_bag(results_bag, results_topic=results_topic, groundtruth_topic=groundtruth_topic)
    ref = bags.read_track_bag(groundtruth_bag, results_topic=None, groundtruth_topic=groundtruth_topic) \
        if groundtruth_bag else res
    if not ref.groundtruth:
        raise ValueError(f"no ground truth ({bags.TRACKED_OBJECT_TYPE} on {groundtruth_topic}) in "
                         f"{groundtruth_bag or results_bag}")
    if not res.results:
        raise ValueError(f"{results_bag}: no results on {results_topic}")
    ids = sorted(res.results)
    if target_id is None:
        init = ref.init_for(None) or res.init_for(None)
        target_id = init[2] if init is not None and init[2] in res.results else ids[0]
    if target_id not in res.results:
        raise ValueError(f"{results_bag}: no results of target {target_id} (targets: {ids})")
    init = ref.init_for(target_id) or res.init_for(target_id)
    order = ref.stamps or res.stamps or None
    out = {"results_bag": results_bag, "groundtruth_bag": groundtruth_bag or results_bag,
           "target_id": target_id, "metrics": bags.score(ref.groundtruth, res.results[target_id], init, order)}
    return out


def write_json(path: str, data: Dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


def print_metrics(m: Dict[str, Any], log=print) -> None:
    log(f"  frames {m['frames']} (tracking {m['tracking']}, lost {m['lost']}, idle {m['idle']}, "
        f"missing {m['missing']}, absent in ground truth {m['absent_frames']})")
    log(f"  AUC {m['auc']:.4f}  P@20 {m['precision20']:.4f}  normP@20 {m['norm_precision20']:.4f}  "
        f"SR0.5 {m['success50']:.4f}  AO {m['ao']:.4f}")
