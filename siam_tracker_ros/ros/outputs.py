"""What the node sends: one fill per message type, the debug overlay, /diagnostics, and
the publishers that send a session's FrameReport.

Box in messages: float px, 0-based, top-left + size (the core's convention),
clipped to the image. A LOST or IDLE target carries a zero box.

The fills import no rclpy: `tracked_object_fields` is shared by the node
(`tracked_object`, rclpy) and the bag writer (ros/bags.py, rosbags), so a
TrackedObject in a bag is filled exactly as the node fills it. Message classes
are imported where a message is made.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..core import bearing, geometry
from ..core.tracking.base import TrackState
from . import health as health_mod
from .image_conversion import numpy_to_image_msg
from .inbox import stamp_ns  # noqa: F401 (the stamp helper of every message user)

STATE_COLOURS = {TrackState.IDLE: (200, 200, 200), TrackState.TRACKING: (0, 255, 0),
                 TrackState.LOST: (0, 0, 255)}   # BGR


# ---- message fills ---------------------------------------------------------------
def tracked_object_fields(target_id: int, state: int, box: Optional[Sequence[float]], score: float,
                          image_width: int, image_height: int, latency: float = 0.0,
                          clip: bool = True) -> Dict[str, Any]:
    """Every field of a TrackedObject but the header: box (clipped to the image when `clip`)
    and normalised centre only in state TRACKING, else zero; score 0 when IDLE. A TRACKING
    box that is not finite or has no area is never sent: the target goes out LOST, score 0."""
    x = y = w = h = cx = cy = 0.0
    if state == TrackState.TRACKING and not geometry.is_usable_box(box):
        state, score = TrackState.LOST, 0.0
    if not np.isfinite(score):
        score = 0.0
    if state == TrackState.TRACKING and box is not None:
        x, y, w, h = (float(v) for v in (geometry.clip_box(box, image_width, image_height) if clip else box))
        cx = float(2.0 * (x + w / 2.0) / image_width - 1.0)
        cy = float(2.0 * (y + h / 2.0) / image_height - 1.0)
    return {"target_id": int(target_id), "state": int(state),
            "x": x, "y": y, "width": w, "height": h,
            "score": float(np.clip(score, 0.0, 1.0)) if state != TrackState.IDLE else 0.0,
            "center_x_norm": cx, "center_y_norm": cy,
            "image_width": int(image_width), "image_height": int(image_height), "latency": float(latency)}


def tracked_object(header, target_id: int, state: TrackState, box: Optional[Sequence[float]],
                   score: float, image_width: int, image_height: int, latency: float):
    from siam_tracker_ros.msg import TrackedObject
    return TrackedObject(header=header, **tracked_object_fields(target_id, state, box, score, image_width,
                                                                image_height, latency))


def detection_2d(tracked):
    """vision_msgs/Detection2D of a TRACKING TrackedObject (None for LOST / IDLE: no box).

    Only the fields vision_msgs 4.x (Humble and newer) has in every release: `id` =
    str(target_id) (the tracking id; `class_id` stays empty: a tracker has no class),
    bbox.center.position = the box centre (x + w/2, y + h/2, the box's px convention),
    theta 0, bbox.size_x/size_y = width/height, results[0].hypothesis.score = score."""
    if tracked.state != TrackState.TRACKING:
        return None
    from vision_msgs.msg import Detection2D, ObjectHypothesisWithPose
    det = Detection2D(header=tracked.header, id=str(tracked.target_id))
    det.bbox.center.position.x = tracked.x + tracked.width / 2.0
    det.bbox.center.position.y = tracked.y + tracked.height / 2.0
    det.bbox.center.theta = 0.0
    det.bbox.size_x, det.bbox.size_y = tracked.width, tracked.height
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.score = tracked.score
    det.results = [hypothesis]
    return det


def detection_2d_array(header, tracked_objects):
    """vision_msgs/Detection2DArray of a frame: one Detection2D per TRACKING object."""
    from vision_msgs.msg import Detection2DArray
    detections = [d for d in (detection_2d(t) for t in tracked_objects) if d is not None]
    return Detection2DArray(header=header, detections=detections)


def vision_msgs_missing() -> Optional[str]:
    """Why ~/detections is not published (vision_msgs does not import), or None."""
    try:
        from vision_msgs.msg import Detection2DArray  # noqa: F401
    except ImportError as exc:
        return f"vision_msgs is not installed ({exc}): ~/detections is not published"
    return None


def target_bearing_fields(camera: bearing.CameraModel, box, rectified: bool = False):
    """azimuth, elevation, ray_x/y/z of a box's centre (x, y, w, h, the trackers' px convention)."""
    u, v = bearing.box_center_pixel(box)
    b = bearing.pixel_bearing(camera, u, v, rectified)
    return {"azimuth": float(b.azimuth), "elevation": float(b.elevation),
            "ray_x": float(b.ray[0]), "ray_y": float(b.ray[1]), "ray_z": float(b.ray[2])}


def target_bearings(tracked_objects, camera: bearing.CameraModel, rectified: bool,
                    log: Callable[[str], None]):
    """TargetBearing messages of a frame's TRACKING TrackedObjects (same header and box)."""
    from siam_tracker_ros.msg import TargetBearing
    out = []
    for t in tracked_objects:
        if t.state != t.STATE_TRACKING:
            continue
        try:
            fields = target_bearing_fields(camera, (t.x, t.y, t.width, t.height), rectified)
        except ValueError as exc:            # beyond what the lens model can map back
            log(f"target {t.target_id}: {exc}")
            continue
        out.append(TargetBearing(header=t.header, target_id=t.target_id, **fields))
    return out


def confidence_map(header, target_id: int, conf: np.ndarray, region: Sequence[float]):
    from siam_tracker_ros.msg import ConfidenceMap
    msg = ConfidenceMap()
    msg.header = header
    msg.target_id = int(target_id)
    data = np.clip(np.asarray(conf, dtype=np.float32), 0.0, 1.0)
    msg.map = numpy_to_image_msg(data, "32FC1", header=header)
    msg.region_x, msg.region_y, msg.region_width, msg.region_height = (float(v) for v in region)
    return msg


def diagnostics(node_name: str, stamp, health, session, inbox, *, state: str, active: bool, topic: str,
                input_timeout: float, drop_warn_ratio: float):
    """DiagnosticArray: the node's status (NodeHealth.report and what is loaded) and one status
    per target (the session's view)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    targets = session.view() if session is not None else {}
    level, message, values = health.report(targets={i: r.state.name for i, r in targets.items()}, active=active,
                                           input_timeout=input_timeout, drop_warn_ratio=drop_warn_ratio,
                                           topic=topic)
    if state == "finalized":       # shut down by its lifecycle manager: it will never track again
        level, message = health_mod.ERROR, "finalized: the node was shut down (lifecycle); restart it"
    loaded = session.loaded if session is not None else None
    size = session.frame_size if session is not None else None
    device = loaded.device if loaded else "none"
    values.update({"state": state, "model": loaded.name if loaded else "none",
                   "weights": (loaded.weights or "none (random init)") if loaded else "none",
                   "device": device, "engine": (loaded.engine or "none") if loaded else "none",
                   "targets": str(len(targets)), "target_ids": " ".join(str(i) for i in sorted(targets)),
                   "input": topic, "encoding": inbox.last_format or "none",
                   "image_size": f"{size[0]}x{size[1]}" if size else "none"})
    if health.model_error:
        values["model_error"] = health.model_error
    status = DiagnosticStatus(level=bytes([level]), name=f"{node_name}: tracker", hardware_id=device,
                              message=message)
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    statuses = [status]
    for target_id in sorted(targets):
        r = targets[target_id]
        name = TrackState(r.state).name
        s = DiagnosticStatus(level=bytes([health_mod.WARN if name == "LOST" else health_mod.OK]),
                             name=f"{node_name}: target {target_id}", hardware_id=device,
                             message=name + (f": {r.note}" if r.note else ""))
        s.values = [KeyValue(key="state", value=name), KeyValue(key="score", value=f"{r.score:.3f}"),
                    KeyValue(key="frames_tracked", value=str(r.frames)),
                    KeyValue(key="lost_events", value=str(r.lost_events))]
        # the supervisor's evidence of the last frame (badness, entropy_rise, logit_drop, ...)
        s.values += [KeyValue(key=f"evidence_{k}", value=f"{v:.3f}") for k, v in sorted(r.evidence.items())
                     if isinstance(v, (int, float))]
        statuses.append(s)
    msg = DiagnosticArray(status=statuses)
    msg.header.stamp = stamp
    return msg


# ---- the publishers ----------------------------------------------------------------
class Publishers:
    """The node's result topics; `publish(report)` sends one FrameReport (ros/session.py)."""

    def __init__(self, node, camera_info=None, bearing_rectified: bool = False):
        """camera_info: a ros/camera_info.CameraInfoInput: ~/bearing is published from it."""
        from sensor_msgs.msg import Image
        from siam_tracker_ros.msg import ConfidenceMap, TargetBearing, TrackedObject, TrackedObjectArray
        self.node = node
        self.camera_info, self.bearing_rectified = camera_info, bearing_rectified
        from .topics import overridable   # standard QoS overrides (qos_overrides.<topic>.publisher.*)

        def publisher(kind, topic, depth=10):
            return node.create_publisher(kind, topic, depth, **overridable())
        self.bearing = publisher(TargetBearing, "~/bearing")
        self.object = publisher(TrackedObject, "~/tracked_object")
        self.objects = publisher(TrackedObjectArray, "~/tracked_objects")
        self.map = publisher(ConfidenceMap, "~/confidence_map")
        self.debug = publisher(Image, "~/debug_image", 1)
        self.conf_image = publisher(Image, "~/confidence_image", 1)
        self.detections = None                  # vision_msgs/Detection2DArray, when installed
        self.missing = vision_msgs_missing()
        if self.missing is None:
            from vision_msgs.msg import Detection2DArray
            self.detections = publisher(Detection2DArray, "~/detections")

    def destroy(self) -> None:
        for pub in (self.object, self.objects, self.map, self.debug, self.conf_image, self.detections, self.bearing):
            if pub is not None:
                self.node.destroy_publisher(pub)

    def publish(self, report, debug_image: bool) -> Optional[float]:
        """Acknowledgements, then the frame's results; returns the frame's latency (s) or None."""
        for frame, t, (w, h) in report.acks:
            self.object.publish(tracked_object(frame.msg.header, t.target_id, t.state, t.box, t.score, w, h,
                                               time.monotonic() - frame.arrival))
        if report.frame is None:
            return None
        from siam_tracker_ros.msg import TrackedObjectArray
        header = report.frame.msg.header
        image = report.image
        h, w = image.shape[:2]
        if debug_image and self.debug.get_subscription_count() > 0:
            overlay = draw_targets_overlay(image.copy(), [(t.target_id, t.state, t.box, t.score)
                                                          for t in report.targets])
            self.debug.publish(numpy_to_image_msg(overlay, "bgr8", header=header))
        maps = self.map.get_subscription_count() > 0
        images = self.conf_image.get_subscription_count() > 0
        latency = time.monotonic() - report.frame.arrival
        array = TrackedObjectArray()
        array.header = header
        if not report.targets:
            self.object.publish(tracked_object(header, 0, TrackState.IDLE, None, 0.0, w, h, latency))
        for t in report.targets:
            r = t.result
            if (maps or images) and r is not None and r.confidence_map is not None:
                cmap = confidence_map(header, t.target_id, r.confidence_map, r.map_region)
                if maps:
                    self.map.publish(cmap)
                if images:
                    self.conf_image.publish(cmap.map)
            msg = tracked_object(header, t.target_id, t.state, t.box, t.score, w, h, latency)
            self.object.publish(msg)
            array.objects.append(msg)
        self.objects.publish(array)
        if self.detections is not None:
            self.detections.publish(detection_2d_array(header, array.objects))
        if self.camera_info is not None and array.objects:
            self._publish_bearings(header, array.objects, (w, h))
        return latency

    def _publish_bearings(self, header, objects, size) -> None:
        camera, why_not = self.camera_info.model_for(stamp_ns(header.stamp), size)
        log = getattr(self.node, "_log", None)
        from .logging_utils import quote_untrusted     # camera_info's strings come from outside

        def warn(text):
            if log is not None:
                log("warning", f"no bearing: {quote_untrusted(text, 300)}", kind="bearing")
        if camera is None:
            if why_not != "no camera_info received":
                warn(why_not)
            return
        for msg in target_bearings(objects, camera, self.bearing_rectified, warn):
            self.bearing.publish(msg)


# ---- the debug overlay -----------------------------------------------------------------
def draw_track_overlay(image: np.ndarray, state: TrackState, box: Optional[Sequence[float]],
                       score: float, text: str = "") -> np.ndarray:
    """Draw box, score and state onto `image` (BGR, modified in place and returned)."""
    colour = STATE_COLOURS[TrackState(state)]
    label = TrackState(state).name
    if state != TrackState.IDLE:
        label += f" {score:.2f}"
    if box is not None and state == TrackState.TRACKING:
        x, y, w, h = (float(v) for v in box)
        cv2.rectangle(image, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))),
                      colour, 2)
    if text:
        label += "  " + text
    return draw_label(image, label, colour)


def draw_targets_overlay(image: np.ndarray, entries: List) -> np.ndarray:
    """Every target of a frame: `entries` = [(target_id, state, box, score)]; a box and
    'id score' label per TRACKING target, and a summary line (in place)."""
    if not entries:
        return draw_label(image, TrackState.IDLE.name, STATE_COLOURS[TrackState.IDLE])
    if len(entries) == 1:
        target_id, state, box, score = entries[0]
        return draw_track_overlay(image, state, box, score, text=f"id {target_id}")
    parts = []
    for target_id, state, box, score in entries:
        state = TrackState(state)
        colour = STATE_COLOURS[state]
        if box is not None and state == TrackState.TRACKING:
            x, y, w, h = (float(v) for v in box)
            cv2.rectangle(image, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))),
                          colour, 2)
            draw_label(image, f"{target_id} {score:.2f}", colour,
                       origin=(int(round(x)), max(14, int(round(y)) - 4)))
        parts.append(f"{target_id}:{state.name[0]}")
    return draw_label(image, " ".join(parts), (255, 255, 255))


def draw_label(image: np.ndarray, text: str, colour, origin=(8, 22)) -> np.ndarray:
    """Text with a dark outline, readable on any background (in place)."""
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 1, cv2.LINE_AA)
    return image
