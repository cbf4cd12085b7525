"""ROS 2 node `siam_tracker` (executable `tracker_node`).

Subscribes `image` (sensor_msgs/Image) and `~/init` (TargetInit); publishes
`~/tracked_object`, `~/confidence_map`, `~/debug_image` and `/diagnostics`;
serves `~/reset` (std_srvs/Trigger). Parameters: siam_tracker_ros/ros/params.py.

Threads: the executor thread runs the callbacks, which only store: the image
callback keeps the newest message (a message that was still waiting when the
next one came counts as dropped) and appends it to a stamp-keyed frame cache;
the init callback validates the box and leaves it for the worker. One worker
thread does all tracking, always on the newest frame, so the delay never grows
with the input rate. Malformed input is logged (throttled per kind of error)
and skipped; the node keeps running.
"""
from __future__ import annotations

import collections
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from siam_tracker_msgs.msg import ConfidenceMap, TargetInit, TrackedObject
from std_srvs.srv import Trigger

from ..core import geometry
from ..core.tracking.base import TrackState
from . import messages, params
from .image_conversion import ImageConversionError, image_msg_to_bgr, numpy_to_image_msg

ERROR_THROTTLE_S = 1.0   # s between two log lines of one kind of error


@dataclass
class Frame:
    msg: Any            # sensor_msgs/Image
    stamp: int          # header stamp, ns
    arrival: float      # time.monotonic() when the callback got it


class FrameCache:
    """The last N frames, looked up by header stamp."""

    def __init__(self, size: int):
        self.frames: Deque[Frame] = collections.deque(maxlen=max(1, int(size)))

    def resize(self, size: int) -> None:
        self.frames = collections.deque(self.frames, maxlen=max(1, int(size)))

    def append(self, frame: Frame) -> None:
        self.frames.append(frame)

    def find(self, stamp: int) -> Optional[Frame]:
        """The frame with this stamp, else the nearest in time; stamp 0 = the newest. None if empty."""
        if not self.frames:
            return None
        if stamp == 0:
            return self.frames[-1]
        return min(reversed(self.frames), key=lambda f: abs(f.stamp - stamp))

    def between(self, after: int, until: int) -> List[Frame]:
        """Frames with after < stamp <= until, oldest first."""
        return [f for f in self.frames if after < f.stamp <= until]


@dataclass
class PendingInit:
    frame: Frame
    box: np.ndarray
    target_id: int


class StartupError(RuntimeError):
    """The node cannot start (model, weights, device, parameters); the text says why."""


def build_tracker_for(values: Dict[str, Any]):
    """(tracker, description for the log) from the node's parameter values."""
    from ..core.models import registry
    name = values["model"]
    if name == "default" and "default" not in registry.available_models():
        name = "siamfc"
        fallback = " ('default' has no model config yet: using 'siamfc')"
    else:
        fallback = ""
    try:
        config, model, weights = registry.load_model(name, weights=values["weights"] or None)
        engine_options = None
        if values["engine"] == "onnxruntime" and values["num_threads"] > 0:
            engine_options = {"threads": values["num_threads"]}
        tracker = registry.build_tracker_from_config(config, model=model, device=values["device"],
                                                     engine=values["engine"],
                                                     engine_options=engine_options)
    except Exception as exc:  # unknown model, unreadable weights, missing CUDA...
        raise StartupError(f"cannot build tracker for model '{name}': {exc}") from exc
    used = f"weights {weights}" if weights else "no weights: random init (the tracker follows little)"
    text = (f"model '{config.get('name', name)}'{fallback} from {config.get('_source', name)}, "
            f"{used}, device {tracker.device}, engine {values['engine']}")
    return tracker, config.get("name", name), weights, text


class TrackerNode(Node):
    def __init__(self, **kwargs):
        super().__init__(params.NODE_NAME, **kwargs)
        self.values = params.declare(self)
        if self.values["num_threads"] > 0:
            import torch
            torch.set_num_threads(self.values["num_threads"])
        self.tracker, self.model_name, self.weights, text = build_tracker_for(self.values)
        self.get_logger().info(text)
        self.tracker.lost_threshold = self.values["lost_threshold"]
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._lock = threading.Lock()          # guards everything the callbacks share
        self._track_lock = threading.Lock()    # held while the tracker is used
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._latest: Optional[Frame] = None
        self._cache = FrameCache(self.values["frame_cache_size"])
        self._pending_init: Optional[PendingInit] = None
        self.target_id = 0
        self.state = TrackState.IDLE
        self.stats = collections.Counter()     # received, processed, dropped, errors
        self._latencies: Deque[float] = collections.deque(maxlen=300)
        self._processed_times: Deque[float] = collections.deque(maxlen=300)
        self._track_times: Deque[float] = collections.deque(maxlen=300)

        self.pub_object = self.create_publisher(TrackedObject, "~/tracked_object", 10)
        self.pub_map = self.create_publisher(ConfidenceMap, "~/confidence_map", 10)
        self.pub_debug = self.create_publisher(Image, "~/debug_image", 1)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_subscription(TargetInit, "~/init", self._on_init, 10)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self.values["qos.depth"],
            reliability=(ReliabilityPolicy.BEST_EFFORT
                         if self.values["qos.reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE))
        self.create_subscription(Image, "image", self._on_image, qos)
        if self.values["diagnostics_period"] > 0:
            self.create_timer(self.values["diagnostics_period"], self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="tracker_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: image topic '{self.resolve_topic_name('image')}' "
            f"({self.values['qos.reliability']}, depth {self.values['qos.depth']})")

    # ---- parameters -------------------------------------------------
    def _on_set_parameters(self, changes):
        for p in changes:
            reason = params.check_value(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        with self._lock:
            for p in changes:
                self.values[p.name] = p.value
                if p.name == "lost_threshold":
                    self.tracker.lost_threshold = p.value
                elif p.name == "frame_cache_size":
                    self._cache.resize(p.value)
        return SetParametersResult(successful=True)

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    # ---- callbacks (executor thread): store only ---------------------
    def _on_image(self, msg):
        frame = Frame(msg, messages.stamp_ns(msg.header.stamp), time.monotonic())
        with self._lock:
            self.stats["received"] += 1
            if self._latest is not None:
                self.stats["dropped"] += 1
            self._latest = frame
            self._cache.append(frame)
        self._wake.set()

    def _on_init(self, msg):
        box = np.array([msg.x, msg.y, msg.width, msg.height], dtype=np.float64)
        stamp = messages.stamp_ns(msg.header.stamp)
        with self._lock:
            frame = self._cache.find(stamp)
        if frame is None:
            self._count("errors")
            self.get_logger().error("init ignored: no image received yet on "
                                    f"'{self.resolve_topic_name('image')}'",
                                    throttle_duration_sec=ERROR_THROTTLE_S)
            return
        if stamp and frame.stamp != stamp:
            self.get_logger().warning(
                f"init: no cached frame has stamp {stamp * 1e-9:.3f}; using the nearest "
                f"({frame.stamp * 1e-9:.3f}, {(frame.stamp - stamp) * 1e-9:+.3f} s)",
                throttle_duration_sec=ERROR_THROTTLE_S)
        try:
            box = geometry.validate_box(box, frame.msg.width, frame.msg.height)
        except ValueError as exc:
            self._count("errors")
            self.get_logger().error(f"init ignored: {exc}", throttle_duration_sec=ERROR_THROTTLE_S)
            return
        box = geometry.clip_box(box, frame.msg.width, frame.msg.height)
        with self._lock:
            self._pending_init = PendingInit(frame, box, msg.target_id)
        self._wake.set()

    def _on_reset(self, request, response):
        with self._track_lock, self._lock:
            self._pending_init = None
            self.tracker.reset()
            self.state = TrackState.IDLE
        response.success = True
        response.message = "tracker reset: no target (IDLE) until the next init"
        self.get_logger().info(response.message)
        return response

    # ---- worker thread ----------------------------------------------
    def _work(self):
        while not self._stop.is_set():
            if not self._wake.wait(0.1):
                continue
            self._wake.clear()
            try:
                with self._track_lock:
                    self._process()
            except Exception as exc:  # never let one frame kill the node
                if self._stop.is_set():
                    return
                self._count("errors")
                self.get_logger().error(f"processing failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=ERROR_THROTTLE_S)

    def _process(self):
        with self._lock:
            frame, self._latest = self._latest, None
            init, self._pending_init = self._pending_init, None
            catch_up_max = self.values["catch_up_max_frames"]
        if init is not None:
            init_image = self._apply_init(init, frame, catch_up_max)
            if frame is not None and frame.stamp == init.frame.stamp:
                if init_image is not None:   # the init frame is the frame to answer: the box as given
                    self._publish(frame, init_image, self.state, init.box, 1.0, None)
                return
        if frame is None:
            return
        image = self._image(frame)
        if image is None:
            return
        if self.state == TrackState.IDLE:
            self._publish(frame, image, TrackState.IDLE, None, 0.0, None)
            return
        result = self.tracker.track(image)
        self._publish(frame, image, self._reported_state(result), result.box, result.score, result)

    def _image(self, frame: Frame) -> Optional[np.ndarray]:
        try:
            return image_msg_to_bgr(frame.msg)
        except ImageConversionError as exc:
            self._count("errors")
            self.get_logger().error(f"image skipped: {exc}", throttle_duration_sec=ERROR_THROTTLE_S)
            return None

    def _apply_init(self, init: PendingInit, frame: Optional[Frame], catch_up_max: int):
        """Init on the frame the box was drawn on, then catch up; returns that frame's image
        (None when it cannot be read: the init is then dropped)."""
        image = self._image(init.frame)
        if image is None:
            return None
        self.tracker.init(image, init.box)
        self.target_id = init.target_id
        self.state = TrackState.TRACKING
        self.get_logger().info(
            f"target {init.target_id} initialised at ({', '.join(f'{v:.1f}' for v in init.box)}) "
            f"on frame {init.frame.stamp * 1e-9:.3f}")
        # Catch up through the cached frames after the init frame, up to (not
        # including) the frame about to be tracked; unpublished.
        with self._lock:
            until = frame.stamp - 1 if frame is not None else self._cache.frames[-1].stamp
            later = self._cache.between(init.frame.stamp, until)
        if len(later) > catch_up_max:   # evenly spaced, the newest always among them
            picks = np.linspace(len(later) - 1, 0, catch_up_max)[::-1]
            later = [later[int(round(i))] for i in picks]
        for f in later:
            img = self._image(f)
            if img is not None:
                self._reported_state(self.tracker.track(img))
        return image

    def _reported_state(self, result) -> TrackState:
        state = TrackState(result.state)
        recover = max(self.values["recover_threshold"], self.values["lost_threshold"])
        if self.state == TrackState.LOST and state == TrackState.TRACKING and result.score < recover:
            state = TrackState.LOST
        if state != self.state and self.state != TrackState.IDLE:
            self.get_logger().info(f"target {self.target_id}: {messages.STATE_NAMES[state]} "
                                   f"(score {result.score:.2f})")
        self.state = state
        return state

    def _publish(self, frame: Frame, image, state, box, score, result):
        header, h, w = frame.msg.header, frame.msg.height, frame.msg.width
        if image is not None and self.values["publish_debug_image"] \
                and self.pub_debug.get_subscription_count() > 0:
            overlay = messages.draw_track_overlay(image.copy(), state, box, score)
            self.pub_debug.publish(numpy_to_image_msg(overlay, "bgr8", header=header))
        if result is not None and self.pub_map.get_subscription_count() > 0:
            self.pub_map.publish(messages.confidence_map(
                header, self.target_id, result.confidence_map, result.map_region))
        latency = time.monotonic() - frame.arrival
        self.pub_object.publish(messages.tracked_object(
            header, self.target_id, state, box, score, w, h, latency))
        with self._lock:
            self.stats["processed"] += 1
            self._latencies.append(latency)
            self._processed_times.append(time.monotonic())
            if result is not None and "total" in result.timing:
                self._track_times.append(result.timing["total"])

    # ---- diagnostics ------------------------------------------------
    def _publish_diagnostics(self):
        with self._lock:
            stats = dict(self.stats)
            lat = np.array(self._latencies) if self._latencies else np.zeros(1)
            track = np.array(self._track_times) if self._track_times else np.zeros(1)
            times = list(self._processed_times)
        now = time.monotonic()
        recent = [t for t in times if now - t <= 5.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if self.state == TrackState.LOST else DiagnosticStatus.OK,
            name=f"{self.get_name()}: tracker", hardware_id=str(self.tracker.device),
            message=messages.STATE_NAMES[self.state])
        values = {
            "fps": f"{fps:.1f}", "latency_p50_ms": f"{np.percentile(lat, 50) * 1e3:.1f}",
            "latency_p95_ms": f"{np.percentile(lat, 95) * 1e3:.1f}",
            "track_time_p50_ms": f"{np.percentile(track, 50) * 1e3:.1f}",
            "frames_received": stats.get("received", 0), "frames_processed": stats.get("processed", 0),
            "frames_dropped": stats.get("dropped", 0), "errors": stats.get("errors", 0),
            "model": self.model_name, "weights": self.weights or "none (random init)",
            "device": str(self.tracker.device), "target_id": self.target_id,
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def stop_worker(self):
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=5.0)


def main(args=None) -> int:
    """Run the node; exit 0 on SIGINT/SIGTERM, 1 when it cannot start.

    The node handles SIGINT/SIGTERM itself instead of rclpy's handlers, which
    shut the context down under a running node: destroying the node after that
    segfaulted now and then (rclpy#178 class). Here a signal ends the spin loop,
    the worker stops, the node is destroyed and only then is rclpy shut down.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            node = TrackerNode()
        except Exception as exc:  # model, weights, device, parameter values
            if stop.is_set():     # a signal during start-up: not an error
                return 0
            rclpy.logging.get_logger(params.NODE_NAME).fatal(f"cannot start: {exc}")
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.stop_worker()
            executor.remove_node(node)
            node.destroy_node()
            executor.shutdown()
        return 0
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
