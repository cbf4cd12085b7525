"""TrackResult -> siam_tracker_ros messages, and the debug overlay.

Box in messages: float px, 0-based, top-left + size (the core's convention),
clipped to the image. A LOST or IDLE target carries a zero box.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from ..core import geometry
from ..core.tracking.base import TrackState
from .image_conversion import numpy_to_image_msg

STATE_NAMES = {TrackState.IDLE: "IDLE", TrackState.TRACKING: "TRACKING", TrackState.LOST: "LOST"}
STATE_COLOURS = {TrackState.IDLE: (200, 200, 200), TrackState.TRACKING: (0, 255, 0),
                 TrackState.LOST: (0, 0, 255)}   # BGR


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def tracked_object(header, target_id: int, state: TrackState, box: Optional[Sequence[float]],
                   score: float, image_width: int, image_height: int, latency: float):
    from siam_tracker_ros.msg import TrackedObject
    msg = TrackedObject()
    msg.header = header
    msg.target_id = int(target_id)
    msg.state = int(state)
    msg.image_width, msg.image_height = int(image_width), int(image_height)
    msg.score = float(np.clip(score, 0.0, 1.0)) if state != TrackState.IDLE else 0.0
    if state == TrackState.TRACKING and box is not None:
        x, y, w, h = geometry.clip_box(box, image_width, image_height)
        msg.x, msg.y, msg.width, msg.height = float(x), float(y), float(w), float(h)
        msg.center_x_norm = float(2.0 * (x + w / 2.0) / image_width - 1.0)
        msg.center_y_norm = float(2.0 * (y + h / 2.0) / image_height - 1.0)
    msg.latency = float(latency)
    return msg


def confidence_map(header, target_id: int, conf: np.ndarray, region: Sequence[float]):
    from siam_tracker_ros.msg import ConfidenceMap
    msg = ConfidenceMap()
    msg.header = header
    msg.target_id = int(target_id)
    data = np.clip(np.asarray(conf, dtype=np.float32), 0.0, 1.0)
    msg.map = numpy_to_image_msg(data, "32FC1", header=header)
    msg.region_x, msg.region_y, msg.region_width, msg.region_height = (float(v) for v in region)
    return msg


def draw_track_overlay(image: np.ndarray, state: TrackState, box: Optional[Sequence[float]],
                       score: float, text: str = "") -> np.ndarray:
    """Draw box, score and state onto `image` (BGR, modified in place and returned)."""
    colour = STATE_COLOURS[TrackState(state)]
    label = STATE_NAMES[TrackState(state)]
    if state != TrackState.IDLE:
        label += f" {score:.2f}"
    if box is not None and state == TrackState.TRACKING:
        x, y, w, h = (float(v) for v in box)
        cv2.rectangle(image, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))),
                      colour, 2)
    if text:
        label += "  " + text
    return draw_label(image, label, colour)


def draw_targets_overlay(image: np.ndarray, entries) -> np.ndarray:
    """Every target of a frame: `entries` = [(target_id, state, box, score)]; a box and
    'id score' label per TRACKING target, and a summary line (in place)."""
    if not entries:
        return draw_label(image, STATE_NAMES[TrackState.IDLE], STATE_COLOURS[TrackState.IDLE])
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
        parts.append(f"{target_id}:{STATE_NAMES[state][0]}")
    return draw_label(image, " ".join(parts), (255, 255, 255))


def draw_label(image: np.ndarray, text: str, colour, origin=(8, 22)) -> np.ndarray:
    """Text with a dark outline, readable on any background (in place)."""
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 1, cv2.LINE_AA)
    return image
