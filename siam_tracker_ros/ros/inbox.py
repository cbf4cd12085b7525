"""Where the node's image messages wait for the worker: the newest frame, a stamp-keyed
cache of recent frames (an init box names the frame it was drawn on) and the
accounting of frames that are not tracked.

No ROS imports (messages are duck-typed: header stamp, width / height or format):
unit-tested without rclpy. Thread-safe: the executor thread puts, the worker takes.

Rules (`put`, on arrival; `confirm`, once the worker has decoded the frame):
- only a frame that decoded counts for the stamp order: a frame whose stamp is
  older than the newest decoded one is dropped (out of order), unless it is older
  by at least `clock_jump_threshold` seconds: then the source clock was reset (bag
  loop, simulator restart): reported when it decodes, cached frames of the old
  clock dropped, the frame accepted. An undecodable frame stamped in the future
  therefore cannot make the real frames "out of order";
- a frame still waiting when the next one comes counts as dropped (busy): the
  worker always works on the newest;
- gaps longer than `input_timeout` and encoding changes are reported.
Decoding is not done here: the worker decodes (`decode`) what it tracks. The cache
keeps the messages as they came (a compressed frame stays compressed: an init
naming an old frame decodes it again) and is bounded in frames and in bytes.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, List, Optional, Tuple

import numpy as np

from . import health as health_mod
from .compressed_image import DEFAULT_MAX_IMAGE_PIXELS, decode_compressed, read_compressed_header
from .image_conversion import ImageConversionError, image_msg_to_bgr
from .logging_utils import quote_untrusted

Note = Tuple[str, str]      # (kind: info / warn / drop, text) for the owner to log


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass
class Frame:
    msg: Any            # sensor_msgs/Image or sensor_msgs/CompressedImage
    stamp: int          # header stamp, ns
    arrival: float      # time.monotonic() when the callback got it
    compressed: bool = False
    # compressed only: (w, h) once decoded or read from the header, or why the header is unreadable
    known_size: Optional[Tuple[int, int]] = field(default=None, repr=False)
    header_error: Optional[str] = field(default=None, repr=False)
    unreadable: Optional[str] = None   # why it did not decode (set by the worker): inits naming it are refused

    @property
    def source_format(self) -> str:
        """The encoding or compressed format, quoted (publisher-chosen text in log lines)."""
        if self.compressed:
            return f"compressed {quote_untrusted(self.msg.format, 64)}"
        return quote_untrusted(self.msg.encoding, 64)

    @property
    def nbytes(self) -> int:
        """Bytes of image data the message holds (what the cache's byte bound counts)."""
        try:
            return len(self.msg.data)
        except (AttributeError, TypeError):
            return 0

    @property
    def size(self) -> Optional[Tuple[int, int]]:
        """(w, h); for a compressed frame the size its header claims (read once, no
        decoding); None when the header is unreadable (`header_error` says why)."""
        if not self.compressed:
            return int(self.msg.width), int(self.msg.height)
        if self.known_size is None and self.header_error is None:
            try:
                header = read_compressed_header(self.msg.data, self.msg.format)
                self.known_size = (header.width, header.height)
            except ImageConversionError as exc:
                self.header_error = str(exc)
        return self.known_size


def decode(frame: Frame, mono16_mode: str,
           max_image_pixels: Optional[int] = DEFAULT_MAX_IMAGE_PIXELS) -> Tuple[np.ndarray, tuple]:
    """(BGR image, decoder warnings) of a frame; ImageConversionError with the reason. A
    frame of more than `max_image_pixels` pixels (a compressed one: as its header claims,
    before decoding) or smaller than 2x2 (nothing to track) is refused. The image is not
    kept on the frame (the cache holds messages only)."""
    messages: tuple = ()
    if frame.compressed:
        decoded = decode_compressed(frame.msg, mono16_mode, max_image_pixels or None)
        image, messages = decoded.image, decoded.decoder_messages
    else:
        width, height = int(frame.msg.width), int(frame.msg.height)
        if max_image_pixels and width * height > max_image_pixels:
            raise ImageConversionError(f"image of {width}x{height} = {width * height} pixels, more than "
                                       f"max_image_pixels = {max_image_pixels}")
        image = image_msg_to_bgr(frame.msg, mono16_mode)
    h, w = image.shape[:2]
    if h < 2 or w < 2:
        raise ImageConversionError(f"image of {w}x{h} pixels is too small to track")
    if frame.compressed:
        frame.known_size = (w, h)
    return image, messages


class FrameCache:
    """The last frames, looked up by header stamp: at most `size` frames and `max_bytes`
    bytes of image data (the newest frame is kept even when it alone is larger)."""

    def __init__(self, size: int, max_bytes: Optional[int] = None):
        self.size = max(1, int(size))
        self.max_bytes = max_bytes
        self.frames: Deque[Frame] = collections.deque()
        self.nbytes = 0

    def _trim(self) -> None:
        while len(self.frames) > 1 and (len(self.frames) > self.size
                                        or (self.max_bytes is not None and self.nbytes > self.max_bytes)):
            self.nbytes -= self.frames.popleft().nbytes

    def resize(self, size: Optional[int] = None, max_bytes: Optional[int] = -1) -> None:
        """New bounds (max_bytes -1: unchanged)."""
        if size is not None:
            self.size = max(1, int(size))
        if max_bytes != -1:
            self.max_bytes = max_bytes
        self._trim()

    def append(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.nbytes += frame.nbytes
        self._trim()

    def clear(self) -> None:
        self.frames.clear()
        self.nbytes = 0

    def keep(self, predicate: Callable[[Frame], bool]) -> None:
        self.frames = collections.deque(f for f in self.frames if predicate(f))
        self.nbytes = sum(f.nbytes for f in self.frames)

    def find(self, stamp: int) -> Optional[Frame]:
        """The frame with this stamp (even an unreadable one: the init is refused with the
        reason), else the nearest readable one in time; stamp 0 = the newest readable.
        None if there is none."""
        if stamp:
            for f in reversed(self.frames):
                if f.stamp == stamp:
                    return f
        readable = [f for f in reversed(self.frames) if f.unreadable is None]
        if not readable:
            return None
        if stamp == 0:
            return readable[0]
        return min(readable, key=lambda f: abs(f.stamp - stamp))

    def between(self, after: int, until: int) -> List[Frame]:
        """Readable frames with after < stamp <= until, oldest first."""
        return [f for f in self.frames if after < f.stamp <= until and f.unreadable is None]


class FrameInbox:
    """The newest frame for the worker, the frame cache, and the drop accounting (module doc).
    `health` (NodeHealth) counts what arrives and what is dropped."""

    def __init__(self, cache_size: int, health: health_mod.NodeHealth, clock_jump_threshold: float = 3.0,
                 input_timeout: float = 1.0, cache_max_bytes: Optional[int] = None):
        self.health = health
        self.clock_jump_threshold = float(clock_jump_threshold)
        self.input_timeout = float(input_timeout)
        self.cache = FrameCache(cache_size, cache_max_bytes)
        self.last_format: Optional[str] = None
        self._newest_stamp = 0          # of the frames decoded (confirm)
        self._latest: Optional[Frame] = None
        self._lock = threading.Lock()

    def put(self, frame: Frame) -> List[Note]:
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
                notes.append(("encoding", text))
            self.last_format = fmt
            back = self._behind(frame)
            if back is not None and back < self.clock_jump_threshold:
                notes.append(self._drop_out_of_order(frame, back, now))
                return notes
            if self._latest is not None:
                health.drop(health_mod.DROP_BUSY, now=now)
            self._latest = frame
            self.cache.append(frame)
        return notes

    def _behind(self, frame: Frame) -> Optional[float]:
        """Seconds the frame's stamp is older than the newest decoded one (None: not older)."""
        stamp, newest = frame.stamp, self._newest_stamp
        if not (stamp and newest and stamp < newest):
            return None
        return (newest - stamp) * 1e-9

    def _drop_out_of_order(self, frame: Frame, back: float, now: Optional[float]) -> Note:
        self.health.drop(health_mod.DROP_OUT_OF_ORDER, now=now)
        return ("drop", f"frame dropped: stamp {frame.stamp * 1e-9:.3f} is {back * 1e3:.0f} ms "
                        f"older than the newest seen ({self._newest_stamp * 1e-9:.3f})")

    def confirm(self, frame: Frame) -> Tuple[bool, Optional[Note]]:
        """The worker decoded `frame`: now its stamp counts. (False, note) when it is out of
        order after all (a newer frame decoded meanwhile); a clock reset is reported, the
        cached frames that came before it dropped. (True, note or None) otherwise."""
        with self._lock:
            back = self._behind(frame)
            if back is None:
                self._newest_stamp = max(self._newest_stamp, frame.stamp)
                return True, None
            if back < self.clock_jump_threshold:
                note = self._drop_out_of_order(frame, back, None)
                self.cache.keep(lambda f: f is not frame)
                return False, note
            text = (f"clock reset: stamp went back {back:.1f} s (>= clock_jump_threshold "
                    f"{self.clock_jump_threshold:.1f} s): accepted, frame cache cleared")
            self.health.event("clock_resets", text)
            self.cache.keep(lambda f: f.arrival >= frame.arrival)
            self._newest_stamp = frame.stamp
            return True, ("warn", text)

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
        """Keep only cached frames of this image size (a compressed frame: as its header claims)."""
        with self._lock:
            self.cache.keep(lambda f: f.size == size)

    def resize(self, cache_size: Optional[int] = None, max_bytes: Optional[int] = -1) -> None:
        with self._lock:
            self.cache.resize(cache_size, max_bytes)

    def clear_waiting(self) -> None:
        with self._lock:
            self._latest = None
