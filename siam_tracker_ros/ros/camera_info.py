"""The node's optional camera_info input and the bearing it gives each target (~/bearing).

Topic: image_transport's rule, as image_pipeline's nodes use it: the `camera_info` beside
the image topic (image `/cam/image_raw` -> `/cam/camera_info`), so remapping `image` is
enough; remapping `camera_info` itself wins. A frame's camera model is the camera_info with
the frame's stamp when one arrived (a synchronised driver), else the newest (a driver whose
info lags, or a fixed calibration published at a lower rate).

The math is core/bearing.py (undistortion, binning, ROI, rectified images); this module
only picks the calibration and checks it fits the image; the message fill is
ros/outputs.py `target_bearings`.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional, Tuple

from ..core import bearing
from .inbox import stamp_ns

KEEP = 30            # camera_info messages kept by stamp (as many as the frame cache's default)


def camera_info_topic(node, image_topic: str) -> str:
    """`camera_info` remapped explicitly, else the sibling of the (resolved) image topic, itself
    remappable by its full name (image_pipeline's rule: `-r /cam/camera_info:=/other/camera_info`)."""
    namespace = node.get_namespace().rstrip("/")
    own = node.resolve_topic_name("camera_info")
    if own != f"{namespace}/camera_info":                 # remapped by the user
        return own
    base = image_topic[:-len("/compressed")] if image_topic.endswith("/compressed") else image_topic
    parent = base.rsplit("/", 1)[0]
    return node.resolve_topic_name(f"{parent}/camera_info")


def expected_image_size(info) -> Tuple[int, int]:
    """(w, h) of the images a camera_info describes: its ROI (or full size) divided by the binning."""
    roi_w, roi_h = int(info.roi.width), int(info.roi.height)
    w, h = (roi_w, roi_h) if roi_w and roi_h else (int(info.width), int(info.height))
    return w // max(int(info.binning_x), 1), h // max(int(info.binning_y), 1)


class CameraInfoInput:
    """Keeps recent camera_info messages; `model_for(stamp, size)` -> (CameraModel or None, why not)."""

    def __init__(self):
        self._by_stamp: "OrderedDict[int, object]" = OrderedDict()
        self._models = {}                      # id(msg) -> CameraModel or the reason it is unusable
        self._lock = threading.Lock()          # store: executor thread; model_for: the worker

    def subscribe(self, node, image_topic: str):
        """Best effort, keep last 5 (the sensor-data profile): matches a reliable or a best-effort
        camera_info publisher, whatever QoS the image subscription was given."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo
        return node.create_subscription(CameraInfo, camera_info_topic(node, image_topic), self.store,
                                        qos_profile_sensor_data)

    def store(self, msg) -> None:
        stamp = stamp_ns(msg.header.stamp)
        with self._lock:
            old = self._by_stamp.pop(stamp, None)
            if old is not None:
                self._models.pop(id(old), None)
            self._by_stamp[stamp] = msg
            while len(self._by_stamp) > KEEP:
                self._models.pop(id(self._by_stamp.popitem(last=False)[1]), None)

    def clear(self) -> None:
        with self._lock:
            self._by_stamp.clear()
            self._models.clear()

    def model_for(self, stamp: int, size: Tuple[int, int]) -> Tuple[Optional[bearing.CameraModel], str]:
        with self._lock:
            if not self._by_stamp:
                return None, "no camera_info received"
            msg = self._by_stamp.get(stamp)
            if msg is None:
                msg = next(reversed(self._by_stamp.values()))
            model = self._models.get(id(msg))
        expected = expected_image_size(msg)
        if tuple(size) != expected:
            return None, f"camera_info describes {expected[0]}x{expected[1]} images, the image is {size[0]}x{size[1]}"
        if model is None:
            try:
                model = bearing.CameraModel.from_camera_info(msg)
            except ValueError as exc:
                model = f"unusable camera_info: {exc}"
            with self._lock:
                if any(m is msg for m in self._by_stamp.values()):   # id() is reused once msg is gone
                    self._models[id(msg)] = model
        return (None, model) if isinstance(model, str) else (model, "")

