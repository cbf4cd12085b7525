"""Where the node's image messages wait for the worker: the newest frame, a stamp-keyed
cache of recent frames (an init box names the frame it was drawn on) and the
accounting of frames that are not tracked.

No ROS imports (messages are duck-typed: header stamp, width / height or format):
unit-tested without rclpy. Thread-safe: the executor thread puts, the worker takes.

Rules (`put`):
- a frame whose stamp is older than the newest seen is dropped (out of order),
  unless it is older by at least `clock_jump_threshold` seconds: then the source
  clock was reset (bag loop, simulator restart): reported, the cache cleared, the
  frame accepted;
- a frame still waiting when the next one comes counts as dropped (busy): the
  worker always works on the newest;
- gaps longer than `input_timeout` and encoding changes are reported.
Decoding is not done here: the worker decodes (`decode`) what it tracks.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, List, Optional, Tuple

import numpy as np

from . import health as health_mod
from .compressed_image import compressed_msg_to_bgr
from .image_conversion import image_msg_to_bgr


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


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

    @property
    def size(self) -> Optional[Tuple[int, int]]:
        """(w, h); None for a compressed frame not decoded yet."""
        if self.compressed:
            return None if self.image is None else (self.image.shape[1], self.image.shape[0])
        return int(self.msg.width), int(self.msg.height)


def decode(frame: Frame, mono16_mode: str) -> np.ndarray:
    """BGR image of a frame (a compressed one is decoded once); ImageConversionError."""
    if frame.image is not None:
        return frame.image
    if frame.compressed:
        frame.image = compressed_msg_to_bgr(frame.msg, mono16_mode)
        return frame.image
    return image_msg_to_bgr(frame.msg, mono16_mode)


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

    def keep(self, predicate: Callable[[Frame], bool]) -> None:
        self.frames = collections.deque((f for f in self.frames if predicate(f)), maxlen=self.frames.maxlen)

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


class FrameInbox:
    """The newest frame for the worker, the frame cache, and the drop accounting (module doc).
    `health` (NodeHealth) counts what arrives and what is dropped."""

    def __init__(self, cache_size: int, health: health_mod.NodeHealth, clock_jump_threshold: float = 3.0,
                 input_timeout: float = 1.0):
        self.health = health
        self.clock_jump_threshold = float(clock_jump_threshold)
        self.input_timeout = float(input_timeout)
        self.cache = FrameCache(cache_size)
        self.last_format: Optional[str] = None
        self._newest_stamp = 0
        self._latest: Optional[Frame] = None
        self._lock = threading.Lock()

    def put(self, frame: Frame) -> List[Tuple[str, str]]:
        """Store an arriving frame (module doc); returns what to log as (kind, text), kind one
        of info / warn / drop. The frame is the worker's next unless it was dropped."""
        notes = []
        health = self.health
        now = frame.arrival
        with self._lock:
            gap = health.received(now)
            if gap is not None and gap > self.input_timeout:
                text = f"input resumed after {gap:.1f} s without images"
                health.event("input_gaps", text, now=now)
                notes.append(("info", text))
            fmt = frame.source_format
            if self.last_format is not None and fmt != self.last_format:
                text = f"image encoding changed from {self.last_format} to {fmt}"
                health.event("encoding_changes", text, now=now)
                notes.append(("info", text))
            self.last_format = fmt
            order = self._order(frame, now)
            if order is not None:
                notes.append(order)
            if order is None or order[0] != "drop":
                if self._latest is not None:
                    health.drop(health_mod.DROP_BUSY, now=now)
                self._latest = frame
                self.cache.append(frame)
        return notes

    def _order(self, frame: Frame, now: float) -> Optional[Tuple[str, str]]:
        """The stamp-order rule: None (in order), a clock reset (warn) or a drop."""
        stamp, newest = frame.stamp, self._newest_stamp
        if not (stamp and newest and stamp < newest):
            self._newest_stamp = max(newest, stamp)
            return None
        back = (newest - stamp) * 1e-9
        if back >= self.clock_jump_threshold:
            text = (f"clock reset: stamp went back {back:.1f} s (>= clock_jump_threshold "
                    f"{self.clock_jump_threshold:.1f} s): accepted, frame cache cleared")
            self.health.event("clock_resets", text, now=now)
            self.cache.clear()
            self._newest_stamp = stamp
            return ("warn", text)
        self.health.drop(health_mod.DROP_OUT_OF_ORDER, now=now)
        return ("drop", f"frame dropped: stamp {stamp * 1e-9:.3f} is {back * 1e3:.0f} ms "
                        f"older than the newest seen ({newest * 1e-9:.3f})")

    def take(self) -> Optional[Frame]:
        """The newest frame not taken yet (None: nothing new)."""
        with self._lock:
            frame, self._latest = self._latest, None
        return frame

    @property
    def waiting(self) -> bool:
        return self._latest is not None

    def find(self, stamp: int) -> Optional[Frame]:
        with self._lock:
            return self.cache.find(stamp)

    def later_frames(self, after: int, until: Optional[int]) -> List[Frame]:
        """Cached frames with after < stamp <= until (until None: the newest cached)."""
        with self._lock:
            if until is None:
                until = self.cache.frames[-1].stamp if self.cache.frames else after
            return self.cache.between(after, until)

    def keep_size(self, size: Tuple[int, int]) -> None:
        """Keep only cached frames known to have this image size (compressed frames not
        decoded yet have no known size: dropped too)."""
        with self._lock:
            self.cache.keep(lambda f: f.size == size)

    def resize(self, cache_size: int) -> None:
        with self._lock:
            self.cache.resize(cache_size)

    def clear_waiting(self) -> None:
        with self._lock:
            self._latest = None
