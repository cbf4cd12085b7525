"""ROS 2 node `siam_tracker` (executable `tracker_node`).

Subscribes `image` (sensor_msgs/Image) or, with `input: compressed`,
`image/compressed` (sensor_msgs/CompressedImage; the resolved `image` name +
'/compressed'), `~/init` (TargetInit: adds a target, or re-initialises an id)
and `~/remove` (std_msgs/UInt32: drops one id); publishes per target
`~/tracked_object` and `~/confidence_map`, all targets of a frame on
`~/tracked_objects` (TrackedObjectArray), `~/debug_image` and `/diagnostics`;
serves `~/reset` (std_srvs/Trigger: drops every target). Parameters:
siam_tracker_ros/ros/params.py. docs/ROS_NODE.md describes it all.

Two modes: a plain node (the default: the model is loaded at start, a failure
ends the process with exit code 1) and, with `--lifecycle` after the ROS args
(`tracker_node --ros-args ... -- --lifecycle [--autostart]`), a managed
lifecycle node: configure loads the model (a failure leaves the node
unconfigured, alive, reporting the reason on /diagnostics), activate
subscribes, deactivate unsubscribes, cleanup releases the model.

Threads: the executor thread runs the callbacks, which only store: the image
callback keeps the newest message (a message still waiting when the next one
comes counts as dropped) and appends it to a stamp-keyed frame cache; the init
callback validates the box and leaves it for the worker. One worker thread
does all tracking, always on the newest frame, so the delay never grows with
the input rate. Malformed input is logged (throttled per kind of error) and
skipped; the node keeps running.
"""
from __future__ import annotations

import collections
import gc
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from siam_tracker_ros.msg import ConfidenceMap, TargetInit, TrackedObject, TrackedObjectArray
from std_msgs.msg import UInt32
from std_srvs.srv import Trigger

from ..core import geometry
from ..core.tracking.base import TrackState
from . import health as health_mod
from . import messages, params, targets as targets_mod
from .compressed_image import compressed_msg_to_bgr
from .image_conversion import ImageConversionError, image_msg_to_bgr, numpy_to_image_msg

ERROR_THROTTLE_S = 1.0   # s between two log lines of one kind of error
INIT_FLOOD_RATE = 20     # init messages per second above which /diagnostics reports an init flood


@dataclass
class Frame:
    msg: Any            # sensor_msgs/Image or sensor_msgs/CompressedImage
    stamp: int          # header stamp, ns
    arrival: float      # time.monotonic() when the callback got it
    compressed: bool = False
    image: Optional[np.ndarray] = field(default=None, repr=False)   # decoded (compressed only)

    @property
    def source_format(self) -> str:
        return f"compressed '{self.msg.format}'" if self.compressed else self.msg.encoding


class FrameCache:
    """The last N frames, looked up by header stamp."""

    def __init__(self, size: int):
        self.frames: Deque[Frame] = collections.deque(maxlen=max(1, int(size)))

    def resize(self, size: int) -> None:
        self.frames = collections.deque(self.frames, maxlen=max(1, int(size)))

    def append(self, frame: Frame) -> None:
        self.frames.append(frame)

    def clear(self) -> None:
        self.frames.clear()

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
    size: Tuple[int, int]     # (w, h) of the frame the box was drawn on


class StartupError(RuntimeError):
    """The model cannot be loaded (model, weights, device, parameters); the text says why."""


@dataclass
class LoadedModel:
    config: Dict[str, Any]
    model: Any                 # the engine-wrapped model all targets share
    name: str
    weights: Optional[str]
    device: str
    engine: str
    text: str


def load_model_for(values: Dict[str, Any]) -> LoadedModel:
    """The shared model from the node's parameter values; StartupError with the reason."""
    from ..core.engines import is_engine, tracker_device, wrap_engine
    from ..core.models import registry
    from ..core.tracking.base import resolve_device
    name = values["model"]
    if name == "default" and "default" not in registry.available_models():
        name = "siamfc"
        fallback = " ('default' has no model config yet: using 'siamfc')"
    else:
        fallback = ""
    try:
        config, model, weights = registry.load_model(name, weights=values["weights"] or None)
        options = {}
        if values["num_threads"] > 0 and values["engine"] == "onnxruntime":
            options["threads"] = values["num_threads"]
        engine_model = wrap_engine(model, config, values["engine"], device=values["device"], **options)
        device = (tracker_device(engine_model.engine_kind, values["device"]) if is_engine(engine_model)
                  else values["device"])
        device = str(resolve_device(device))
    except Exception as exc:  # unknown model, unreadable / corrupt weights, missing CUDA...
        raise StartupError(f"cannot build tracker for model '{name}': {type(exc).__name__}: {exc}") from exc
    used = f"weights {weights}" if weights else "no weights: random init (the tracker follows little)"
    text = (f"model '{config.get('name', name)}'{fallback} from {config.get('_source', name)}, "
            f"{used}, device {device}, engine {values['engine']}")
    return LoadedModel(config, engine_model, config.get("name", name), weights, device, values["engine"], text)


class TrackerLogic:
    """Everything of the node but the ROS node class itself (shared by TrackerNode and
    LifecycleTrackerNode; the class mixing this in is an rclpy Node)."""

    lifecycle_mode = False

    # ---- setup ---------------------------------------------------------
    def _setup(self) -> None:
        self.values = params.declare(self, lifecycle=self.lifecycle_mode)
        self.values.update(params.declare_extra(
            self, "supervisor", targets_mod.declared_supervisor_params(),
            "target supervisor parameter '{key}' (core/tracking/monitor.py SUPERVISOR_DEFAULTS); runtime"))
        self._lock = threading.Lock()          # guards everything the callbacks share
        self._track_lock = threading.Lock()    # held while the targets / model are used
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._latest: Optional[Frame] = None
        self._cache = FrameCache(self.values["frame_cache_size"])
        self._pending_inits: Dict[int, PendingInit] = {}
        self._pending_removals: Set[int] = set()
        self._known_ids: Set[int] = set()      # ids the worker tracks (snapshot for the callbacks)
        self._target_view: Dict[int, tuple] = {}   # id -> (state, score, note, frames, lost events, evidence)
        self._newest_stamp = 0
        self._last_format: Optional[str] = None
        self._frame_size: Optional[Tuple[int, int]] = None
        self._last_flood_event = -1e9
        self._error_logged: Dict[str, float] = {}   # kind of error -> when last logged
        self.health = health_mod.NodeHealth()
        self.loaded: Optional[LoadedModel] = None
        self.targets: Optional[targets_mod.TargetSet] = None
        self._tracker_params: Optional[Dict[str, Any]] = None
        self._active = False
        self._inputs: List[Any] = []
        self._outputs: List[Any] = []
        self.pub_object = self.pub_objects = self.pub_map = self.pub_debug = self.pub_conf_image = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if self.values["diagnostics_period"] > 0:
            self.create_timer(self.values["diagnostics_period"], self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="tracker_worker", daemon=True)
        self._worker.start()

    @property
    def image_topic(self) -> str:
        base = self.resolve_topic_name("image")
        return base + "/compressed" if self.values["input"] == "compressed" else base

    def _load_model(self) -> None:
        """Load the shared model and make the target set; StartupError with the reason."""
        if self.values["num_threads"] > 0:
            import torch
            torch.set_num_threads(self.values["num_threads"])
        try:
            loaded = load_model_for(self.values)
        except StartupError as exc:
            with self._lock:
                self.health.model_error = str(exc)
            raise
        tracker_keys = {}
        self._tracker_params = None

        def build():
            from ..core.models import registry
            t = registry.build_tracker_from_config(loaded.config, model=loaded.model,
                                                   device=loaded.device)
            # One params dict for every target's tracker: a runtime change of a tracking
            # hyper-parameter (tracker.*) reaches all of them at the next frame.
            if self._tracker_params is None:
                self._tracker_params = t.params
            else:
                t.params = self._tracker_params
            return t

        try:
            probe = build()
            tracker_keys = {k: probe.params[k] for k in params.RUNTIME_TRACKER_KEYS
                            if isinstance(probe.params.get(k), (int, float))
                            and not isinstance(probe.params.get(k), bool)}
            values = params.declare_extra(self, "tracker", {k: float(v) for k, v in tracker_keys.items()},
                                          "tracking hyper-parameter '{key}' of the loaded model; runtime")
            for name, v in values.items():
                self._tracker_params[name.split(".", 1)[1]] = v
            target_set = targets_mod.TargetSet(build, targets_mod.supervisor_params_from(self.values))
        except Exception as exc:
            reason = f"cannot build tracker for model '{loaded.name}': {type(exc).__name__}: {exc}"
            with self._lock:
                self.health.model_error = reason
            raise StartupError(reason) from exc
        with self._track_lock, self._lock:
            self.values.update(values)
            self.loaded, self.targets = loaded, target_set
            self.health.model_error = None
        self.get_logger().info(loaded.text)

    def _release_model(self) -> None:
        with self._track_lock, self._lock:
            self.targets = None
            self.loaded = None
            self._tracker_params = None
            self._known_ids = set()
            self._target_view = {}
            self._pending_inits.clear()
            self._pending_removals.clear()
            self._frame_size = None
        gc.collect()
        try:
            import torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - releasing is best effort
            pass

    def _create_outputs(self) -> None:
        self.pub_object = self.create_publisher(TrackedObject, "~/tracked_object", 10)
        self.pub_objects = self.create_publisher(TrackedObjectArray, "~/tracked_objects", 10)
        self.pub_map = self.create_publisher(ConfidenceMap, "~/confidence_map", 10)
        self.pub_debug = self.create_publisher(Image, "~/debug_image", 1)
        self.pub_conf_image = self.create_publisher(Image, "~/confidence_image", 1)
        self._outputs = [self.pub_object, self.pub_objects, self.pub_map, self.pub_debug, self.pub_conf_image,
                         self.create_service(Trigger, "~/reset", self._on_reset)]

    def _destroy_outputs(self) -> None:
        for entity in self._outputs:
            if isinstance(entity, rclpy.service.Service):
                self.destroy_service(entity)
            else:
                self.destroy_publisher(entity)
        self._outputs = []
        self.pub_object = self.pub_objects = self.pub_map = self.pub_debug = self.pub_conf_image = None

    def _create_inputs(self) -> None:
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self.values["qos.depth"],
            reliability=(ReliabilityPolicy.BEST_EFFORT
                         if self.values["qos.reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE))
        if self.values["input"] == "compressed":
            image_sub = self.create_subscription(CompressedImage, self.image_topic, self._on_compressed, qos)
        else:
            image_sub = self.create_subscription(Image, "image", self._on_image, qos)
        self._inputs = [image_sub,
                        self.create_subscription(TargetInit, "~/init", self._on_init, 10),
                        self.create_subscription(UInt32, "~/remove", self._on_remove, 10)]
        with self._lock:
            self.health.reset_input_clock()
            self._active = True
        self.get_logger().info(
            f"ready: image topic '{self.image_topic}' ({self.values['input']}, "
            f"{self.values['qos.reliability']}, depth {self.values['qos.depth']})")

    def _destroy_inputs(self) -> None:
        with self._lock:
            self._active = False
            self._latest = None
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []

    # ---- parameters ----------------------------------------------------
    def _reload_refusal(self, name: str) -> Optional[str]:
        """Why a reload parameter cannot change now (None: it can)."""
        return f"{name} {params.RELOAD_REASON}"

    def _on_set_parameters(self, changes):
        supervisor_changes, tracker_changes = {}, {}
        for p in changes:
            reason = params.check_value(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            spec = params.PARAMS_BY_NAME.get(p.name)
            if spec is not None and spec.reload:
                reason = self._reload_refusal(p.name)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
            if p.name in targets_mod.NODE_TO_SUPERVISOR:
                key = targets_mod.supervisor_key(p.name)
                if key is not None:
                    supervisor_changes[key] = p.value
            elif p.name == "supervisor.enabled" and not targets_mod.SUPERVISOR_HAS_SWITCH:
                reason = self._reload_refusal(p.name)
                if reason:
                    return SetParametersResult(successful=False, reason=reason + " (this supervisor has "
                                               "no runtime switch: the targets are built with or without it)")
            elif p.name.startswith("supervisor."):
                supervisor_changes[p.name.split(".", 1)[1]] = p.value
            elif p.name.startswith("tracker."):
                tracker_changes[p.name.split(".", 1)[1]] = p.value
        with self._track_lock:
            if supervisor_changes and self.targets is not None:
                try:
                    self.targets.set_supervisor_params(**supervisor_changes)
                except (ValueError, TypeError) as exc:
                    return SetParametersResult(successful=False, reason=f"supervisor refused: {exc}")
            with self._lock:
                for p in changes:
                    self.values[p.name] = p.value
                    if p.name == "frame_cache_size":
                        self._cache.resize(p.value)
                if self._tracker_params is not None:
                    self._tracker_params.update(tracker_changes)
        return SetParametersResult(successful=True)

    # ---- callbacks (executor thread): store only -------------------------
    def _on_image(self, msg):
        self._store_frame(Frame(msg, messages.stamp_ns(msg.header.stamp), time.monotonic()))

    def _on_compressed(self, msg):
        self._store_frame(Frame(msg, messages.stamp_ns(msg.header.stamp), time.monotonic(), compressed=True))

    def _store_frame(self, frame: Frame) -> None:
        notes = []
        with self._lock:
            now = frame.arrival
            gap = self.health.received(now)
            timeout = self.values["input_timeout"]
            if gap is not None and gap > timeout:
                text = f"input resumed after {gap:.1f} s without images"
                self.health.event("input_gaps", text, now=now)
                notes.append(("info", text))
            fmt = frame.source_format
            if self._last_format is not None and fmt != self._last_format:
                text = f"image encoding changed from {self._last_format} to {fmt}"
                self.health.event("encoding_changes", text, now=now)
                notes.append(("info", text))
            self._last_format = fmt
            stamp, newest = frame.stamp, self._newest_stamp
            if stamp and newest and stamp < newest:
                back = (newest - stamp) * 1e-9
                if back >= self.values["clock_jump_threshold"]:
                    text = (f"clock reset: stamp went back {back:.1f} s (>= clock_jump_threshold "
                            f"{self.values['clock_jump_threshold']:.1f} s): accepted, frame cache cleared")
                    self.health.event("clock_resets", text, now=now)
                    self._cache.clear()
                    self._newest_stamp = stamp
                    notes.append(("warn", text))
                else:
                    self.health.drop(health_mod.DROP_OUT_OF_ORDER, now=now)
                    notes.append(("drop", f"frame dropped: stamp {stamp * 1e-9:.3f} is {back * 1e3:.0f} ms "
                                          f"older than the newest seen ({newest * 1e-9:.3f})"))
                    frame = None
            else:
                self._newest_stamp = max(newest, stamp)
            if frame is not None:
                if self._latest is not None:
                    self.health.drop(health_mod.DROP_BUSY, now=now)
                self._latest = frame
                self._cache.append(frame)
        log = self.get_logger()
        for kind, text in notes:
            if kind == "info":
                log.info(text)
            elif kind == "warn":
                log.warning(text)
            else:
                log.warning(text, throttle_duration_sec=ERROR_THROTTLE_S)
        if frame is not None:
            self._wake.set()

    def _error(self, kind: str, text: str) -> None:
        """Count an error; log it unless one of the same kind was logged in the last
        ERROR_THROTTLE_S seconds."""
        now = time.monotonic()
        with self._lock:
            self.health.counts["errors"] += 1
            quiet = now - self._error_logged.get(kind, -1e9) < ERROR_THROTTLE_S
            if not quiet:
                self._error_logged[kind] = now
        if not quiet:
            self.get_logger().error(text)

    def _on_init(self, msg):
        now = time.monotonic()
        with self._lock:
            rate = self.health.init_received(now)
            flood = rate > INIT_FLOOD_RATE and now - self._last_flood_event > self.health.window
            if flood:
                self._last_flood_event = now
                self.health.event("init_floods", f"init flood: {rate} init messages in the last second "
                                                 "(per id only the newest is applied)", now=now)
        if flood:
            self.get_logger().warning(f"init flood: {rate} init messages in the last second")
        box = np.array([msg.x, msg.y, msg.width, msg.height], dtype=np.float64)
        stamp = messages.stamp_ns(msg.header.stamp)
        target_id = int(msg.target_id)
        with self._lock:
            frame = self._cache.find(stamp)
        if frame is None:
            self._error("init_no_image", "init ignored: no image received yet on "
                        f"'{self.image_topic}'")
            return
        if stamp and frame.stamp != stamp:
            self.get_logger().warning(
                f"init: no cached frame has stamp {stamp * 1e-9:.3f}; using the nearest "
                f"({frame.stamp * 1e-9:.3f}, {(frame.stamp - stamp) * 1e-9:+.3f} s)",
                throttle_duration_sec=ERROR_THROTTLE_S)
        image = self._frame_image(frame)
        if image is None:
            self._error("init_frame", "init ignored: the frame it names cannot be read")
            return
        h, w = image.shape[:2]
        try:
            box = geometry.validate_box(box, w, h)
        except ValueError as exc:
            self._error("init_box", f"init ignored: {exc}")
            return
        box = geometry.clip_box(box, w, h)
        with self._lock:
            ids = self._known_ids | set(self._pending_inits)
            if target_id not in ids and len(ids) >= self.values["max_targets"]:
                self.health.counts["inits_rejected"] += 1
                full = True
            else:
                full = False
                if target_id in self._pending_inits:
                    self.health.counts["inits_superseded"] += 1
                self._pending_inits[target_id] = PendingInit(frame, box, target_id, (w, h))
                self._pending_removals.discard(target_id)
        if full:
            self._error("init_full", f"init ignored: target {target_id} would be a target beyond max_targets "
                        f"({self.values['max_targets']}); remove one (~/remove) or reset first")
            return
        self._wake.set()

    def _on_remove(self, msg):
        target_id = int(msg.data)
        with self._lock:
            self._pending_inits.pop(target_id, None)
            self._pending_removals.add(target_id)
        self._wake.set()

    def _on_reset(self, request, response):
        with self._track_lock, self._lock:
            self._pending_inits.clear()
            self._pending_removals.clear()
            n = len(self.targets) if self.targets is not None else 0
            if self.targets is not None:
                self.targets.clear()
            self._known_ids = set()
            self._target_view = {}
        response.success = True
        response.message = f"{n} target(s) cleared: IDLE until the next init"
        self.get_logger().info(response.message)
        return response

    # ---- worker thread --------------------------------------------------
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
                self._error("processing", f"processing failed: {type(exc).__name__}: {exc}")

    def _frame_image(self, frame: Frame) -> Optional[np.ndarray]:
        """BGR image of a frame (None, logged and counted, when it cannot be read)."""
        if frame.image is not None:
            return frame.image
        try:
            if frame.compressed:
                frame.image = compressed_msg_to_bgr(frame.msg, self.values["mono16_mode"])
                return frame.image
            return image_msg_to_bgr(frame.msg, self.values["mono16_mode"])
        except ImageConversionError as exc:
            self._error("image", f"image skipped: {exc}")
            return None

    def _process(self):
        start = time.monotonic()
        with self._lock:
            frame, self._latest = self._latest, None
            inits, self._pending_inits = self._pending_inits, {}
            removals, self._pending_removals = self._pending_removals, set()
            # until _update_view, the callbacks count these ids as targets (max_targets)
            self._known_ids = (self._known_ids - removals) | set(inits)
            catch_up_max = self.values["catch_up_max_frames"]
        targets = self.targets
        if targets is None:
            if frame is not None:
                with self._lock:
                    self.health.drop(health_mod.DROP_INACTIVE)
            return
        log = self.get_logger()
        for target_id in sorted(removals):
            if targets.remove(target_id):
                log.info(f"target {target_id} removed")
            else:
                log.warning(f"remove: no target {target_id}")
        image = None
        if frame is not None:
            image = self._frame_image(frame)
            if image is None:
                with self._lock:
                    self.health.drop(health_mod.DROP_UNREADABLE)
                frame = None
        if image is not None:
            self._check_size(image)
        answered: Dict[int, np.ndarray] = {}
        applied = 0
        for init in inits.values():
            box, on_frame = self._apply_init(init, frame, image, catch_up_max)
            applied += box is not None
            if box is not None and on_frame and frame is not None:
                answered[init.target_id] = box     # acknowledged by the frame's own results
            elif box is not None:
                self._acknowledge(init)
        if applied:
            with self._lock:
                self.health.counts["inits_applied"] += applied
        if frame is None:
            self._update_view()
            return
        results, changes = self._track(image, ids=[i for i in targets.tracked_ids if i not in answered]
                                       if answered else None)
        for target_id, old, new, score in changes:
            log.info(f"target {target_id}: {messages.STATE_NAMES[new]} (score {score:.2f})")
        self._update_view()
        self._publish(frame, image, results, answered, time.monotonic() - start)

    def _track(self, image: np.ndarray, ids: Optional[List[int]] = None):
        """targets.track(image, ids); each target whose step failed is reported (it is an
        orphan now, LOST; the others go on)."""
        results, changes = self.targets.track(image, ids=ids)
        for text in self.targets.last_failures:
            self._error("tracking", text)
        return results, changes

    def _check_size(self, image: np.ndarray) -> None:
        size = (image.shape[1], image.shape[0])
        old, self._frame_size = self._frame_size, size
        if old is None or old == size:
            return
        notes = self.targets.rescale(image, old) if self.targets.tracked_ids else []
        text = (f"image size changed from {old[0]}x{old[1]} to {size[0]}x{size[1]}"
                + (": " + "; ".join(notes) if notes else ""))
        with self._lock:
            self.health.event("size_changes", text)
            self._cache.frames = collections.deque(
                (f for f in self._cache.frames if self._cached_size(f) == size), maxlen=self._cache.frames.maxlen)
        self.get_logger().warning(text)

    @staticmethod
    def _cached_size(frame: Frame) -> Optional[Tuple[int, int]]:
        if frame.compressed:
            return None if frame.image is None else (frame.image.shape[1], frame.image.shape[0])
        return int(frame.msg.width), int(frame.msg.height)

    def _apply_init(self, init: PendingInit, frame: Optional[Frame], image: Optional[np.ndarray],
                    catch_up_max: int) -> Tuple[Optional[np.ndarray], bool]:
        """Init on the frame the box was drawn on, then catch up through the cached frames after it
        (this target only). An init drawn on a frame of another size than the current images is
        scaled to the current size and applied to the newest frame. Returns (the box used or None
        when not applied, whether it was applied to `frame` itself)."""
        targets = self.targets
        log = self.get_logger()
        current = self._frame_size
        if current is not None and init.size != current:
            if image is None:       # wait for a frame of the current size
                with self._lock:
                    self._pending_inits.setdefault(init.target_id, init)
                return None, False
            sx, sy = current[0] / init.size[0], current[1] / init.size[1]
            box = geometry.clip_box(init.box * np.array([sx, sy, sx, sy]), *current)
            targets.add(init.target_id, image, box)
            log.warning(f"target {init.target_id} initialised at ({', '.join(f'{v:.1f}' for v in box)}) "
                        f"on the newest frame: its box was drawn on a {init.size[0]}x{init.size[1]} frame, "
                        f"the images are now {current[0]}x{current[1]} (box scaled)")
            return box, True
        init_image = self._frame_image(init.frame)
        if init_image is None:
            return None, False
        targets.add(init.target_id, init_image, init.box)
        log.info(f"target {init.target_id} initialised at ({', '.join(f'{v:.1f}' for v in init.box)}) "
                 f"on frame {init.frame.stamp * 1e-9:.3f}")
        if frame is not None and frame.stamp == init.frame.stamp:
            return init.box, True
        with self._lock:
            if frame is not None:
                until = frame.stamp - 1
            elif self._cache.frames:
                until = self._cache.frames[-1].stamp
            else:
                until = init.frame.stamp
            later = [f for f in self._cache.between(init.frame.stamp, until)
                     if self._cached_size(f) in (None, init.size)]
        if len(later) > catch_up_max:   # evenly spaced, the newest always among them
            picks = np.linspace(len(later) - 1, 0, catch_up_max)[::-1] if catch_up_max else []
            later = [later[int(round(i))] for i in picks]
        for f in later:
            img = self._frame_image(f)
            if img is not None and img.shape[:2] == init_image.shape[:2]:
                self._track(img, ids=[init.target_id])
        return init.box, False

    def _update_view(self) -> None:
        t = self.targets
        view = {}
        if t is not None:
            for i, r in t.records.items():
                view[i] = (messages.STATE_NAMES[TrackState(r.state)], r.score, "", r.frames, r.lost_events,
                           dict(r.evidence))
            for i, r in t.orphans.items():
                view[i] = ("LOST", 0.0, r.note, 0, 0, {})
        with self._lock:
            self._known_ids = set(view)
            self._target_view = view

    def _acknowledge(self, init: PendingInit) -> None:
        """Init acknowledgement: the init frame's TrackedObject (TRACKING, the init box, score 1),
        for an init applied to a frame other than the one being answered now (that frame was
        answered before, or no new frame came)."""
        w, h = init.size
        latency = time.monotonic() - init.frame.arrival
        self.pub_object.publish(messages.tracked_object(init.frame.msg.header, init.target_id,
                                                        TrackState.TRACKING, init.box, 1.0, w, h, latency))

    def _publish(self, frame: Frame, image, results, answered, processing_time: float):
        header = frame.msg.header
        h, w = image.shape[:2]
        targets = self.targets
        entries = []     # (id, state, box, score, result)
        for target_id in targets.ids:
            if target_id in answered:
                entries.append((target_id, TrackState.TRACKING, answered[target_id], 1.0, None))
            elif target_id in results:
                r = results[target_id]
                entries.append((target_id, TrackState(r.state), r.box, r.score, r))
            elif target_id in targets.orphans:
                entries.append((target_id, TrackState.LOST, None, 0.0, None))
        if self.values["publish_debug_image"] and self.pub_debug.get_subscription_count() > 0:
            overlay = messages.draw_targets_overlay(image.copy(), [(i, s, b, sc) for i, s, b, sc, _ in entries])
            self.pub_debug.publish(numpy_to_image_msg(overlay, "bgr8", header=header))
        maps = self.pub_map.get_subscription_count() > 0
        images = self.pub_conf_image.get_subscription_count() > 0
        latency = time.monotonic() - frame.arrival
        array = TrackedObjectArray()
        array.header = header
        if not entries:
            msg = messages.tracked_object(header, 0, TrackState.IDLE, None, 0.0, w, h, latency)
            self.pub_object.publish(msg)
        for target_id, state, box, score, result in entries:
            if (maps or images) and result is not None and result.confidence_map is not None:
                cmap = messages.confidence_map(header, target_id, result.confidence_map, result.map_region)
                if maps:
                    self.pub_map.publish(cmap)
                if images:
                    self.pub_conf_image.publish(cmap.map)
            msg = messages.tracked_object(header, target_id, state, box, score, w, h, latency)
            self.pub_object.publish(msg)
            array.objects.append(msg)
        self.pub_objects.publish(array)
        with self._lock:
            self.health.processed(latency, processing_time)

    # ---- diagnostics ------------------------------------------------------
    def lifecycle_state(self) -> str:
        return "active (plain node)"

    def _publish_diagnostics(self):
        with self._lock:
            view = dict(self._target_view)
            level, message, values = self.health.report(
                targets={i: v[0] for i, v in view.items()}, active=self._active,
                input_timeout=self.values["input_timeout"],
                drop_warn_ratio=self.values["drop_warn_ratio"], topic=self.image_topic)
            loaded = self.loaded
            frame_size = self._frame_size
            fmt = self._last_format
        device = loaded.device if loaded else "none"
        values.update({
            "state": self.lifecycle_state(),
            "model": loaded.name if loaded else "none",
            "weights": (loaded.weights or "none (random init)") if loaded else "none",
            "device": device, "engine": loaded.engine if loaded else "none",
            "targets": str(len(view)), "target_ids": " ".join(str(i) for i in sorted(view)),
            "input": self.image_topic, "encoding": fmt or "none",
            "image_size": f"{frame_size[0]}x{frame_size[1]}" if frame_size else "none",
        })
        if self.health.model_error:
            values["model_error"] = self.health.model_error
        status = DiagnosticStatus(level=bytes([level]), name=f"{self.get_name()}: tracker",
                                  hardware_id=device, message=message)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        statuses = [status]
        for target_id in sorted(view):
            state, score, note, frames, lost_events, evidence = view[target_id]
            s = DiagnosticStatus(level=bytes([health_mod.WARN if state == "LOST" else health_mod.OK]),
                                 name=f"{self.get_name()}: target {target_id}", hardware_id=device,
                                 message=state + (f": {note}" if note else ""))
            s.values = [KeyValue(key="state", value=state), KeyValue(key="score", value=f"{score:.3f}"),
                        KeyValue(key="frames_tracked", value=str(frames)),
                        KeyValue(key="lost_events", value=str(lost_events))]
            # the supervisor's evidence of the last frame (badness, entropy_rise, logit_drop, ...)
            s.values += [KeyValue(key=f"evidence_{k}", value=f"{v:.3f}") for k, v in sorted(evidence.items())
                         if isinstance(v, (int, float))]
            statuses.append(s)
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def stop_worker(self):
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=5.0)


class TrackerNode(TrackerLogic, Node):
    """The plain node: model loaded and topics up at construction (StartupError on failure)."""

    def __init__(self, **kwargs):
        Node.__init__(self, params.NODE_NAME, **kwargs)
        self._setup()
        try:
            self._load_model()
        except StartupError:
            self.stop_worker()
            raise
        self._create_outputs()
        self._create_inputs()


def _lifecycle_classes():
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    class LifecycleTrackerNode(TrackerLogic, LifecycleNode):
        """The managed node: configure loads the model, activate subscribes, deactivate
        unsubscribes, cleanup releases the model; a failed configure leaves it unconfigured."""

        lifecycle_mode = True

        def __init__(self, **kwargs):
            LifecycleNode.__init__(self, params.NODE_NAME, **kwargs)
            self._setup()
            self.get_logger().info("lifecycle node: unconfigured (configure loads the model)")

        def lifecycle_state(self) -> str:
            try:
                return str(self._state_machine.current_state[1])
            except Exception:  # noqa: BLE001
                return "unknown"

        def _reload_refusal(self, name: str) -> Optional[str]:
            if self.loaded is None and not self._active:
                return None
            return f"{name} {params.RELOAD_REASON} (state now: {self.lifecycle_state()})"

        def on_configure(self, state):
            try:
                self._load_model()
                self._create_outputs()
            except StartupError as exc:
                self.get_logger().error(f"configure failed, staying unconfigured: {exc}")
                return TransitionCallbackReturn.FAILURE
            except Exception as exc:  # noqa: BLE001 - any surprise: still a clean failure
                with self._lock:
                    self.health.model_error = f"{type(exc).__name__}: {exc}"
                self.get_logger().error(f"configure failed, staying unconfigured: {type(exc).__name__}: {exc}")
                self._release_model()
                return TransitionCallbackReturn.FAILURE
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state):
            self._create_inputs()
            return TransitionCallbackReturn.SUCCESS

        def on_deactivate(self, state):
            self._destroy_inputs()
            self.get_logger().info("deactivated: image subscription closed, targets kept")
            return TransitionCallbackReturn.SUCCESS

        def on_cleanup(self, state):
            self._destroy_inputs()
            self._destroy_outputs()
            self._release_model()
            self.get_logger().info("cleaned up: model released")
            return TransitionCallbackReturn.SUCCESS

        def on_shutdown(self, state):
            self._destroy_inputs()
            self._destroy_outputs()
            self._release_model()
            return TransitionCallbackReturn.SUCCESS

        def on_error(self, state):
            self._destroy_inputs()
            self._destroy_outputs()
            self._release_model()
            return TransitionCallbackReturn.SUCCESS

        def configure_and_activate(self) -> bool:
            """--autostart: configure then activate (True when active)."""
            return (self.trigger_configure() == TransitionCallbackReturn.SUCCESS
                    and self.trigger_activate() == TransitionCallbackReturn.SUCCESS)

    return LifecycleTrackerNode


def make_lifecycle_node(**kwargs):
    return _lifecycle_classes()(**kwargs)


def main(args=None) -> int:
    """Run the node; exit 0 on SIGINT/SIGTERM, 1 when the plain node cannot start.

    Non-ROS arguments (after `--ros-args ... --`, or before `--ros-args`):
    `--lifecycle` runs the managed lifecycle node; `--autostart` configures and
    activates it at once (a failed configure leaves it unconfigured and alive).

    The node handles SIGINT/SIGTERM itself instead of rclpy's handlers, which
    shut the context down under a running node: destroying the node after that
    segfaulted now and then (rclpy#178 class). Here a signal ends the spin loop,
    the worker stops, the node is destroyed and only then is rclpy shut down.
    """
    argv = list(sys.argv if args is None else args)
    from rclpy.utilities import remove_ros_args
    extra = remove_ros_args(argv)[1:]
    lifecycle = "--lifecycle" in extra
    autostart = "--autostart" in extra
    unknown = [a for a in extra if a not in ("--lifecycle", "--autostart")]
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if unknown:
            rclpy.logging.get_logger(params.NODE_NAME).warning(
                f"ignoring unknown arguments {unknown} (known: --lifecycle, --autostart)")
        try:
            node = make_lifecycle_node() if lifecycle else TrackerNode()
        except Exception as exc:  # model, weights, device, parameter values
            if stop.is_set():     # a signal during start-up: not an error
                return 0
            rclpy.logging.get_logger(params.NODE_NAME).fatal(f"cannot start: {exc}")
            return 1
        if lifecycle and autostart:
            node.configure_and_activate()
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
