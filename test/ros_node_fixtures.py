"""Shared pieces of the tracker-node tests (test_node_*.py): a node process with
a fresh ROS_DOMAIN_ID and a client in this process, and the frames to feed it."""
import os
import signal
import warnings
from dataclasses import dataclass
from typing import List

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

    @property
    def size(self):
        return self.frames[0].shape[1], self.frames[0].shape[0]


def sequences_root() -> str:
    """As test/conftest.py's sequences_dir: $SIAM_SHARED_DIR or ../shared beside the repo."""
    shared = os.environ.get("SIAM_SHARED_DIR") or os.path.join(os.path.dirname(ROOT), "shared")
    return os.path.join(shared, "data", "sequences")


def load_clip(max_frames: int = 60) -> Clip:
    """OTB_Crossing (or VOT_bag) from the shared sequences; a synthetic clip when absent."""
    from siam_tracker_ros.evaluation.datasets import open_dataset
    root = sequences_root()
    for name in ("OTB_Crossing", "VOT_bag"):
        if os.path.isdir(os.path.join(root, name)):
            seq = open_dataset(root, "shared", names=[name], max_frames=max_frames)[0]
            box = seq.init_box - np.array([1.0, 1.0, 0.0, 0.0]) if name.startswith("OTB") else seq.init_box
            return Clip(list(seq.frames()), box, f"{name} ({root})")
    warnings.warn(f"{root} has neither OTB_Crossing nor VOT_bag: the node tests use a SYNTHETIC "
                  "sequence (a textured square moving over noise)")
    rng = np.random.default_rng(1)
    background = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    target = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    frames = []
    for i in range(max_frames):
        f = background.copy()
        x, y = 60 + 2 * i, 80 + i
        f[y:y + 40, x:x + 40] = target
        frames.append(f)
    return Clip(frames, np.array([60.0, 80.0, 40.0, 40.0]), "synthetic")


class NodeUnderTest:
    """tracker_node --ros-args --params-file config/tracker.yaml -r image:=/test/image, plus a client."""

    def __init__(self, log_dir, extra_args=(), **client_options):
        from siam_tracker_ros.ros.client import TrackerClient
        from siam_tracker_ros.ros.process import (NodeProcess, apply_to_this_process, fresh_domain_id,
                                                  ros_environment)
        self.domain = fresh_domain_id()
        env = ros_environment(self.domain, log_dir=str(log_dir))
        # The test machines are small and shared: one torch thread (oversubscribed cores made
        # two threads 2x slower per frame here). Not a node setting: config/tracker.yaml keeps 0.
        env.setdefault("OMP_NUM_THREADS", "1")
        apply_to_this_process(env)
        self.proc = NodeProcess(["--params-file", CONFIG, "-r", f"image:={IMAGE_TOPIC}", *extra_args], env)
        self.client = TrackerClient(IMAGE_TOPIC, domain_id=self.domain, **client_options)
        alive = lambda: self.proc.proc.poll() is None  # noqa: E731
        if not self.client.wait_ready(60.0, node_alive=alive):
            self.close()
            pytest.fail(f"the node did not come up (exit code {self.proc.proc.returncode}):\n{self.proc.output}")

    def close(self, sig=signal.SIGINT) -> int:
        self.client.close()
        return self.proc.stop(sig)
