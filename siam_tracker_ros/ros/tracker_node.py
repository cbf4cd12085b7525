"""ROS 2 node `siam_tracker` (executable `tracker_node`): wiring only.

Topics, services and parameters: docs/ROS_NODE.md (parameters: ros/params.py); the
path of one frame and who owns what: docs/ARCHITECTURE.md. One rclpy lifecycle
node: configure loads the model (ros/session.py), activate subscribes, deactivate
unsubscribes, cleanup releases the model. By default it configures and activates
itself at start and a failure ends the process with exit code 1; with
`-- --lifecycle` it waits unconfigured for a lifecycle manager (`--autostart`:
configure + activate at once, a failure leaves it unconfigured and alive).
Threads: the callbacks only store (ros/inbox.py, the session's requests); one
worker thread decodes and tracks, always the newest frame.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image
from siam_tracker_ros.msg import TargetInit
from siam_tracker_ros.srv import InitTarget
from std_msgs.msg import UInt32
from std_srvs.srv import Trigger

from . import health as health_mod
from . import outputs, params, spin, topics
from .camera_info import CameraInfoInput
from .image_conversion import ImageConversionError
from .inbox import Frame, FrameInbox, decode, stamp_ns
from .logging_utils import InputLog, quote_untrusted
from .session import StartupError, TrackingSession, open_model, release_memory

ERROR_THROTTLE_S = 1.0   # s between two log lines of one kind of error


class TrackerNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(params.NODE_NAME, **kwargs)
        self.values = params.declare(self)
        self.health = health_mod.NodeHealth()
        self.inbox = FrameInbox(self.values["frame_cache_size"], self.health,
                                self.values["clock_jump_threshold"], self.values["input_timeout"],
                                self.values["frame_cache_mb"] * 1_000_000)
        self.session: Optional[TrackingSession] = None
        self.pubs: Optional[outputs.Publishers] = None     # result topics (configured)
        self.camera_info = CameraInfoInput()               # optional: ~/bearing
        self._configured_services = []                     # ~/reset, ~/init_target (configured)
        self._inputs = []                                  # subscriptions (active)
        self._active = False
        self._track_lock = threading.Lock()    # held while the session is used or replaced
        # every line input can trigger: throttled per kind, a rate cap overall (logging_utils.py)
        self._log = InputLog(self.get_logger(), self.health.count, ERROR_THROTTLE_S)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if self.values["diagnostics_period"] > 0:   # wall time: sim time without /clock still reports
            self.create_timer(self.values["diagnostics_period"], self._publish_diagnostics,
                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._wake, self._stop = threading.Event(), threading.Event()
        self._worker = threading.Thread(target=self._work, name="tracker_worker", daemon=True)
        self._worker.start()

    @property
    def image_topic(self) -> str:
        base = self.resolve_topic_name("image")
        return base + "/compressed" if topics.image_transport(self.values)[0] == "compressed" else base

    def lifecycle_state(self) -> str:
        try:
            return str(self._state_machine.current_state[1])
        except Exception:  # noqa: BLE001
            return "unknown"

    # ---- lifecycle ----------------------------------------------------------------
    def on_configure(self, state):
        try:
            loaded = open_model(self.values)
            session = TrackingSession(loaded, params.supervisor_params(self.values), self.inbox, self.health,
                                      self._decode, self._log)
        except Exception as exc:  # noqa: BLE001 - model, weights, device, config: a clean failure
            reason = str(exc) if isinstance(exc, StartupError) else f"{type(exc).__name__}: {exc}"
            self.health.model_error = reason
            self.get_logger().error(f"configure failed, staying unconfigured: {reason}")
            return TransitionCallbackReturn.FAILURE
        session.image_topic = self.image_topic
        with self._track_lock:
            self.session = session
        self.values.update(params.declare_tracker(self, loaded.config["tracker"]["type"], session.tracker_params))
        self.health.model_error = None
        self.pubs = outputs.Publishers(self, self.camera_info, self.values["bearing.rectified"])
        if self.pubs.missing:
            self.get_logger().info(self.pubs.missing)
        self._configured_services = [
            self.create_service(Trigger, "~/reset", self._on_reset),
            self.create_service(InitTarget, "~/init_target", self._on_init_service, qos_profile=topics.REQUEST_QOS)]
        self.get_logger().info(loaded.describe())
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        transport, warnings = topics.image_transport(self.values)
        qos, more = topics.image_qos(self.values, self.image_topic)
        for text in warnings + more:
            self.get_logger().warning(text)
        compressed = transport == "compressed"
        image_sub = self.create_subscription(CompressedImage if compressed else Image, self.image_topic,
                                             lambda m: self._on_frame(m, compressed), qos, **topics.overridable())
        self.camera_info.clear()
        self._inputs = [image_sub, self.create_subscription(TargetInit, "~/init", self._on_init, topics.REQUEST_QOS),
                        self.create_subscription(UInt32, "~/remove", self._on_remove, topics.REQUEST_QOS),
                        self.camera_info.subscribe(self, self.image_topic)]
        self.health.reset_input_clock()
        self._active = True
        self.get_logger().info(f"ready: image topic '{self.image_topic}' ({transport}, {qos.reliability.name.lower()}, "
                               f"depth {qos.depth}; qos_overrides apply), camera_info '{self._inputs[-1].topic_name}'")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state):
        self._unsubscribe()
        self.get_logger().info("deactivated: image subscription closed, targets kept")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state):
        self._release()
        self.get_logger().info("cleaned up: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._release()
        return TransitionCallbackReturn.SUCCESS

    on_error = on_shutdown

    def _unsubscribe(self) -> None:
        self._active = False
        self.inbox.clear_waiting()
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []

    def _release(self) -> None:
        self._unsubscribe()
        for service in self._configured_services:
            self.destroy_service(service)
        self._configured_services = []
        with self._track_lock:      # not while the worker publishes a frame
            if self.pubs is not None:
                self.pubs.destroy()
            self.pubs, self.session = None, None
        release_memory()

    def configure_and_activate(self) -> bool:
        return (self.trigger_configure() == TransitionCallbackReturn.SUCCESS
                and self.trigger_activate() == TransitionCallbackReturn.SUCCESS)

    # ---- parameters: checked in the on-set callback, applied in the post-set one ---
    def _check_parameters(self, changes):
        for p in changes:
            reason = params.check_change(p.name, p.value)
            if reason is None and params.needs_reload(p.name) and (self.session is not None or self._active):
                reason = f"{p.name} {params.RELOAD_REASON} (state now: {self.lifecycle_state()})"
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, changes) -> None:
        with self._track_lock:
            for p in changes:
                self.values[p.name] = p.value
                group, _, key = p.name.partition(".")
                if p.name == "frame_cache_size":
                    self.inbox.resize(p.value)
                elif p.name == "frame_cache_mb":
                    self.inbox.resize(max_bytes=p.value * 1_000_000)
                elif p.name in ("clock_jump_threshold", "input_timeout"):
                    setattr(self.inbox, p.name, p.value)
                elif self.session is None or params.needs_reload(p.name):
                    continue                           # read at the next configure
                elif group == "supervisor":
                    self.session.set_supervisor_params(**{key: p.value})
                elif group == "tracker":
                    self.session.tracker_params[key] = p.value

    # ---- callbacks (executor thread): store only --------------------------------------
    def _on_frame(self, msg, compressed: bool) -> None:
        frame = Frame(msg, stamp_ns(msg.header.stamp), time.monotonic(), compressed=compressed)
        for kind, text in self.inbox.put(frame):     # kinds: info (input gap), encoding, drop
            self._log("info" if kind == "info" else "warning", text, kind=kind)
        if self.inbox.waiting:
            self._wake.set()

    def _on_init(self, msg) -> Optional[str]:
        """An init (topic or service): None when stored for the worker, else why it was refused."""
        session = self.session
        if session is None or not self._active:
            self.health.count("inits_received")
            self.health.count("inits_refused")
            why = f"init ignored: the node is not active (state: {self.lifecycle_state()})"
            self._log("error", why, kind="init_inactive")
            return why
        why = session.request_init(stamp_ns(msg.header.stamp), [msg.x, msg.y, msg.width, msg.height],
                                   int(msg.target_id), self.values["max_targets"], self.values["max_image_pixels"])
        self._wake.set()
        return why

    def _on_init_service(self, request, response):
        why = self._on_init(request)
        response.accepted, response.reason = why is None, why or "accepted: applied with the next frame processed"
        return response

    def _on_remove(self, msg) -> None:
        if self.session is not None:
            self.session.request_removal(int(msg.data))
            self._wake.set()

    def _on_reset(self, request, response):
        with self._track_lock:
            n = self.session.clear() if self.session is not None else 0
        response.success, response.message = True, f"{n} target(s) cleared: IDLE until the next init"
        self.get_logger().info(response.message)
        return response

    def _decode(self, frame: Frame):
        try:
            image, warnings = decode(frame, self.values["mono16_mode"], self.values["max_image_pixels"])
        except ImageConversionError as exc:
            frame.unreadable = str(exc)
            self._log("error", f"image skipped: {exc}", kind="image")
            return None
        if warnings:
            self.health.count("decoder_warnings")
            self._log("warning", f"decoder: {quote_untrusted(warnings[-1])}", kind="decoder")
        return image

    # ---- worker thread ------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(0.1):
                continue
            self._wake.clear()
            try:
                self.process()
            except Exception as exc:  # never let one frame kill the node
                if self._stop.is_set():
                    return
                self._log("error", f"processing failed: {type(exc).__name__}: {exc}", kind="processing")

    def process(self) -> None:
        """Track the newest frame (and apply the pending requests) and publish the results."""
        with self._track_lock:
            frame = self.inbox.take()
            if self.session is None or self.pubs is None:
                if frame is not None:
                    self.health.drop(health_mod.DROP_INACTIVE)
                return
            report = self.session.process(frame, self.values["catch_up_max_frames"])
            latency = self.pubs.publish(report, self.values["publish_debug_image"])
        if latency is not None:
            self.health.processed(latency, report.finished - report.started)

    def stop_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=5.0)

    def _publish_diagnostics(self) -> None:
        self.pub_diag.publish(outputs.diagnostics(
            self.get_name(), self.get_clock().now().to_msg(), self.health, self.session, self.inbox,
            state=self.lifecycle_state(), active=self._active, topic=self.image_topic,
            input_timeout=self.values["input_timeout"], drop_warn_ratio=self.values["drop_warn_ratio"]))


def main(args=None) -> int:
    """Run the node (ros/spin.py); exit 0 on SIGINT/SIGTERM, 1 when it cannot start (plain mode)."""
    argv = list(sys.argv if args is None else args)
    extra = rclpy.utilities.remove_ros_args(argv)[1:]
    lifecycle, autostart = "--lifecycle" in extra, "--autostart" in extra
    if {"-h", "--help"} & set(extra):
        print(params.usage())                  # no ROS started: nothing to shut down
        return 0

    def start(node: TrackerNode) -> bool:
        if set(extra) - {"--lifecycle", "--autostart"}:
            node.get_logger().warning(f"ignoring unknown arguments {extra} (known: --lifecycle, --autostart)")
        if (lifecycle and not autostart) or node.configure_and_activate() or lifecycle:
            return True
        node.get_logger().fatal(f"cannot start: {node.health.model_error}")
        return False
    return spin.run(argv, TrackerNode, start, params.NODE_NAME)


if __name__ == "__main__":
    sys.exit(main())
