"""The other side of the tracker node: publishes frames and inits, records what
the node publishes (with receive times). Used by the demo and the tests.

Each client has its own rclpy Context and executor thread, so several can live
in one process one after another (init/try_shutdown per context).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from siam_tracker_ros.msg import ConfidenceMap, TargetInit, TrackedObject
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from .image_conversion import numpy_to_image_msg
from .inbox import stamp_ns
from .params import NODE_NAME


def make_header(stamp: int, frame_id: str = "camera") -> Header:
    return Header(stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000), frame_id=frame_id)


@dataclass
class Received:
    msg: Any
    stamp: int          # header stamp, ns
    time: float         # time.monotonic() at reception


class TrackerClient:
    def __init__(self, image_topic: str = "image", node_name: str = NODE_NAME, domain_id: Optional[int] = None,
                 image_qos=qos_profile_sensor_data, confidence_maps: bool = True,
                 debug_images: bool = False):
        self.context = rclpy.Context()
        kwargs = {} if domain_id is None else {"domain_id": int(domain_id)}
        rclpy.init(context=self.context, **kwargs)
        self.node = Node("siam_tracker_client", context=self.context, start_parameter_services=False)
        prefix = f"/{node_name}"
        self.pub_image = self.node.create_publisher(Image, image_topic, image_qos)
        self.pub_init = self.node.create_publisher(TargetInit, f"{prefix}/init", 10)
        self.reset_client = self.node.create_client(Trigger, f"{prefix}/reset")
        self.objects: List[Received] = []
        self.maps: List[Received] = []
        self.published = {}      # stamp -> time.monotonic() of publishing
        self._cond = threading.Condition()
        self.node.create_subscription(TrackedObject, f"{prefix}/tracked_object",
                                      lambda m: self._store(self.objects, m), 100)
        if confidence_maps:
            self.node.create_subscription(ConfidenceMap, f"{prefix}/confidence_map",
                                          lambda m: self._store(self.maps, m), 100)
        self.debug_images: List[Received] = []
        if debug_images:
            self.node.create_subscription(Image, f"{prefix}/debug_image",
                                          lambda m: self._store(self.debug_images, m), 10)
        self.diagnostics: List[Received] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda m: self._store(self.diagnostics, m), 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:   # context shut down under us
            pass

    def _store(self, target: list, msg):
        with self._cond:
            target.append(Received(msg, stamp_ns(msg.header.stamp), time.monotonic()))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` (evaluated under the lock) holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def wait_ready(self, timeout: float = 30.0, node_alive: Callable[[], bool] = lambda: True) -> bool:
        """Until the node subscribes to our image and init topics and serves reset (discovery)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and node_alive():
            if (self.pub_image.get_subscription_count() > 0 and self.pub_init.get_subscription_count() > 0
                    and self.reset_client.service_is_ready()
                    and self.node.count_publishers(f"/{NODE_NAME}/tracked_object") > 0):
                # and our subscription matched the node's publisher
                time.sleep(0.2)
                return True
            time.sleep(0.05)
        return False

    def publish_frame(self, image: np.ndarray, stamp: int, encoding: str = "bgr8", msg=None) -> None:
        if msg is None:
            msg = numpy_to_image_msg(image, encoding, header=make_header(stamp))
        with self._cond:
            self.published[stamp] = time.monotonic()
        self.pub_image.publish(msg)

    def send_init(self, box: Sequence[float], stamp: int = 0, target_id: int = 1) -> None:
        msg = TargetInit(header=make_header(stamp), target_id=int(target_id))
        msg.x, msg.y, msg.width, msg.height = (float(v) for v in box)
        self.pub_init.publish(msg)

    def reset(self, timeout: float = 10.0):
        future = self.reset_client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        return future.result() if future.done() else None

    def objects_for(self, stamp: int) -> List[Received]:
        with self._cond:
            return [r for r in self.objects if r.stamp == stamp]

    def diagnostic_values(self) -> dict:
        """Key/values of the node's latest /diagnostics status (call with or without the lock)."""
        with self._cond:
            for r in reversed(self.diagnostics):
                for status in r.msg.status:
                    if status.name.startswith(NODE_NAME):
                        return {kv.key: kv.value for kv in status.values}
        return {}

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._spinner.join(timeout=2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
