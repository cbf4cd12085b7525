"""Shared pieces of the tracker-node tests (test_node_*.py): a node process with
a fresh ROS_DOMAIN_ID and a client in this process, and the frames to feed it."""
import os
import signal
import time
import warnings
from dataclasses import dataclass
from typing import List, Optional

import cv2
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "config", "tracker.yaml")
IMAGE_TOPIC = "/test/image"


@dataclass
class Clip:
    frames: List[np.ndarray]     # BGR
    init_box: np.ndarray         # (x, y, w, h) 0-based, on frames[0]
    source: str
    boxes: Optional[np.ndarray] = None   # (N, 4) ground truth, 0-based, one row per frame

    @property
    def size(self):
        return self.frames[0].shape[1], self.frames[0].shape[0]


def sequences_root() -> str:
    """As test/conftest.py's sequences_dir: $SIAM_SHARED_DIR or ../shared beside the repo."""
    shared = os.environ.get("SIAM_SHARED_DIR") or os.path.join(os.path.dirname(ROOT), "shared")
    return os.path.join(shared, "data", "sequences")


# The synthetic stand-in has the size of the clip it replaces (OTB_Crossing: 360x240), so
# that boxes the tests place on those frames fit it too.
FALLBACK_SIZE = (360, 240)


def load_clip(max_frames: int = 60) -> Clip:
    """OTB_Crossing (or VOT_bag) from the shared sequences; a synthetic clip when absent."""
    from siam_tracker_ros.evaluation.datasets import open_dataset
    root = sequences_root()
    for name in ("OTB_Crossing", "VOT_bag"):
        if os.path.isdir(os.path.join(root, name)):
            seq = open_dataset(root, "shared", names=[name], max_frames=max_frames)[0]
            shift = np.array([1.0, 1.0, 0.0, 0.0]) if name.startswith("OTB") else np.zeros(4)
            boxes = seq.gt - shift           # OTB files count pixels from 1
            return Clip(list(seq.frames()), boxes[0].copy(), f"{name} ({root})", boxes)
    warnings.warn(f"{root} has neither OTB_Crossing nor VOT_bag: the node tests use a SYNTHETIC "
                  f"sequence ({FALLBACK_SIZE[0]}x{FALLBACK_SIZE[1]}, a marked square moving over blurred noise)")
    rng = np.random.default_rng(1)
    width, height = FALLBACK_SIZE
    # A target that differs from its background, as a real one does: a red square with a
    # white disc and a green centre over blurred noise. (A noise square on the same noise has
    # nothing to follow: a tracker trained on real footage drifted off it at once.)
    background = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 4)
    target = np.zeros((40, 40, 3), np.uint8)
    target[:] = (40, 60, 220)
    cv2.circle(target, (20, 20), 12, (255, 255, 255), -1)
    cv2.rectangle(target, (15, 15), (25, 25), (20, 160, 20), -1)
    frames, boxes = [], []
    for i in range(max_frames):
        f = background.copy()
        x, y = 60 + 2 * i, 80 + i
        f[y:y + 40, x:x + 40] = target
        frames.append(f)
        boxes.append([x, y, 40, 40])
    boxes = np.array(boxes, dtype=np.float64)
    return Clip(frames, boxes[0].copy(), "synthetic", boxes)


def wait_until(predicate, timeout: float, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(period)
    return True


def reliable_qos(depth: int = 10):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)


# Node arguments for tests that must see every frame processed (publish, wait for the answer).
# The standard QoS overrides (the former qos.reliability / qos.depth still work, deprecated).
RELIABLE_ARGS = ("-p", f"qos_overrides.{IMAGE_TOPIC}.subscription.reliability:=reliable",
                 "-p", f"qos_overrides.{IMAGE_TOPIC}.subscription.depth:=10")


class Recorder:
    """Subscribes extra topics on a TrackerClient's node (~/tracked_objects ...) and keeps
    what arrives, with the client's lock and condition (so client.wait_for works)."""

    def __init__(self, client, msg_type, topic: str, depth: int = 100):
        from siam_tracker_ros.ros.client import Received
        from siam_tracker_ros.ros.inbox import stamp_ns
        self.items = []
        self.client = client

        def store(msg):
            with client._cond:
                self.items.append(Received(msg, stamp_ns(msg.header.stamp), time.monotonic()))
                client._cond.notify_all()
        self.sub = client.node.create_subscription(msg_type, topic, store, depth)

    def for_stamp(self, stamp):
        with self.client._cond:
            return [r for r in self.items if r.stamp == stamp]


def statuses(client, since: float = 0.0):
    """Every DiagnosticStatus of the node received after `since` (time.monotonic()), oldest first."""
    with client._cond:
        return [s for r in client.diagnostics if r.time >= since for s in r.msg.status
                if s.name.startswith("siam_tracker")]


class NodeUnderTest:
    """tracker_node --ros-args --params-file config/tracker.yaml -r image:=/test/image, plus a client.

    lifecycle=True starts the managed node (`-- --lifecycle`) and waits for its lifecycle
    services only (it subscribes to nothing until configured and activated)."""

    def __init__(self, log_dir, extra_args=(), lifecycle: bool = False, **client_options):
        from siam_tracker_ros.ros.client import TrackerClient
        from siam_tracker_ros.ros.process import (NodeProcess, apply_to_this_process, fresh_domain_id,
                                                  ros_environment)
        self.domain = fresh_domain_id()
        env = ros_environment(self.domain, log_dir=str(log_dir))
        # The test machines are small and shared: one torch thread (oversubscribed cores made
        # two threads 2x slower per frame here). Not a node setting: config/tracker.yaml keeps 0.
        env.setdefault("OMP_NUM_THREADS", "1")
        apply_to_this_process(env)
        tail = ["--", "--lifecycle"] if lifecycle else []
        self.proc = NodeProcess(["--params-file", CONFIG, "-r", f"image:={IMAGE_TOPIC}", *extra_args, *tail], env)
        self.client = TrackerClient(IMAGE_TOPIC, domain_id=self.domain, **client_options)
        alive = lambda: self.proc.proc.poll() is None  # noqa: E731
        if lifecycle:
            from lifecycle_msgs.srv import ChangeState, GetState
            from rcl_interfaces.srv import SetParameters
            node = self.client.node
            self.change_state = node.create_client(ChangeState, "/siam_tracker/change_state")
            self.get_state = node.create_client(GetState, "/siam_tracker/get_state")
            self.set_params = node.create_client(SetParameters, "/siam_tracker/set_parameters")
            ok = wait_until(lambda: all(c.service_is_ready() for c in
                                        (self.change_state, self.get_state, self.set_params))
                            or not alive(), 60.0) and alive()
        else:
            ok = self.client.wait_ready(60.0, node_alive=alive)
        if not ok:
            self.close()
            pytest.fail(f"the node did not come up (exit code {self.proc.proc.returncode}):\n{self.proc.output}")

    # lifecycle node -----------------------------------------------------------
    def call(self, client, request, timeout: float = 60.0):
        future = client.call_async(request)
        assert wait_until(future.done, timeout), f"no answer from {client.srv_name}\n{self.proc.output}"
        return future.result()

    def transition(self, name: str) -> bool:
        """configure / activate / deactivate / cleanup -> success."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
        return self.call(self.change_state, ChangeState.Request(transition=Transition(id=ids[name]))).success

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState
        return self.call(self.get_state, GetState.Request()).current_state.label

    def set_parameters(self, **values):
        """SetParameters over the service -> list of (successful, reason)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
        return [(r.successful, r.reason) for r in self.call(self.set_params, request).results]

    def close(self, sig=signal.SIGINT) -> int:
        self.client.close()
        return self.proc.stop(sig)
