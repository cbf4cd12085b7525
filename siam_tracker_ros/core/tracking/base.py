"""The one tracker interface every model is used through.

A Tracker instance owns the per-target state (template features, current box);
the nn.Module it wraps is stateless, so several trackers (several targets)
share one model.

One frame of `track(image)` is three steps, so that several targets can share
one network call (core/tracking/multi.py):

    prepared = tracker.track_prepare(image)    # crop(s) -> K x 3 x I x I tensor + context
    out = tracker.model.track(state, prepared.x)   # the network (K = 1, or the
                                               # scale pyramid of SiamFC)
    result = tracker.track_finish(prepared, out)   # this target's slice of the output
                                               # -> TrackResult, state update

`track(image)` is exactly prepare + network + finish (same operations in the
same order). Subclasses implement the hooks `_prepare_search(image) -> (x, ctx)`,
`_decode(out) -> raw` (device outputs -> host arrays, timed with the network)
and `_finish(raw, ctx) -> TrackResult`, and keep the template state in
`self.template_state`.
"""
from __future__ import annotations

import contextlib
import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .. import geometry
from ..runtime import tune_malloc


class TrackState(enum.IntEnum):
    """Values match the TrackedObject message constants."""
    IDLE = 0
    TRACKING = 1
    LOST = 2


@dataclass
class TrackResult:
    box: np.ndarray                 # (x, y, w, h) float, 0-based image px
    score: float                    # confidence in [0, 1]
    state: TrackState
    confidence_map: np.ndarray      # float32 HxW in [0, 1]
    map_region: np.ndarray          # (x, y, w, h) image px the map covers
    timing: Dict[str, float] = field(default_factory=dict)  # seconds: crop, network, post
    # Lost-state evidence (score, psr, entropy, jumps ...) filled by the target
    # supervisor (core/tracking/monitor.py); empty from a bare Tracker.
    evidence: Dict[str, float] = field(default_factory=dict)


@dataclass
class PreparedSearch:
    """What `Tracker.track_prepare(image)` hands to the network and back to
    `track_finish`: the search crop(s) `x` (K x 3 x I x I on the tracker's
    device), the tracker's own context for the post-processing, and the crop time."""
    x: Any
    context: Dict[str, Any]
    crop_time: float


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def image_to_tensor(patch: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWx3 uint8 BGR patch -> 1x3xHxW float tensor, values 0..255 (models normalise)."""
    return torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1))).to(
        device=device, dtype=torch.float32).unsqueeze(0)


class Tracker(ABC):
    """init(image, box) once, then track(image) -> TrackResult per frame.

    Subclasses list their hyper-parameters with defaults in DEFAULTS; the model
    config's tracker section overrides them.
    """
    DEFAULTS: Dict[str, Any] = {}

    def __init__(self, model: torch.nn.Module, params: Dict[str, Any], device: str = "auto"):
        tune_malloc()       # per-frame tensors stay in the process (core/runtime.py)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.params = {**self.DEFAULTS, **params}
        self.lost_threshold = float(self.params.get("lost_threshold", 0.0))
        self.center = None            # (cx, cy) float
        self.size = None              # (w, h) float
        self.image_size = None        # (w, h) of the last frame
        self.last_score = 0.0

    @property
    def initialized(self) -> bool:
        return self.center is not None

    @property
    def box(self) -> Optional[np.ndarray]:
        if not self.initialized:
            return None
        return np.array([self.center[0] - self.size[0] / 2, self.center[1] - self.size[1] / 2,
                         self.size[0], self.size[1]])

    def init(self, image: np.ndarray, box) -> None:
        geometry.validate_image(image)
        h, w = image.shape[:2]
        b = geometry.validate_box(box, w, h)
        self.center = np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])
        self.size = np.array([b[2], b[3]])
        self.image_size = (w, h)
        self.last_score = 1.0
        with torch.inference_mode():
            self._init(image)

    def track(self, image: np.ndarray) -> TrackResult:
        self._begin_frame(image)
        start = time.perf_counter()
        with torch.inference_mode():
            result = self._track(image)
        result.timing.setdefault("total", time.perf_counter() - start)
        return self._report(result)

    # -- track() in three steps (several targets batched: core/tracking/multi.py) ----
    def track_prepare(self, image: np.ndarray) -> PreparedSearch:
        """Step 1 of track(): checks, then the search crop(s) as a network input."""
        self._begin_frame(image)
        t0 = time.perf_counter()
        with torch.inference_mode():
            x, ctx = self._prepare_search(image)
        return PreparedSearch(x, ctx, time.perf_counter() - t0)

    def track_network(self, prepared: PreparedSearch):
        """Step 2 alone (one target): model.track(template state, x)."""
        with torch.inference_mode(), self._threads():
            return self._network(self.template_state, prepared.x)

    def track_finish(self, prepared: PreparedSearch, out: Dict[str, Any],
                     network_time: float = 0.0) -> TrackResult:
        """Step 3: `out` is this target's part of the network output (its K rows);
        -> the same TrackResult that track() returns. `network_time`: this target's
        share of the network call (seconds), reported in timing["network"] with
        the host transfer of its outputs."""
        with torch.inference_mode():
            t1 = time.perf_counter()
            with self._threads():
                raw = self._decode(out)
            t2 = time.perf_counter()
            result = self._finish(raw, prepared.context)
            t3 = time.perf_counter()
        result.timing = {"crop": prepared.crop_time, "network": network_time + (t2 - t1),
                         "post": t3 - t2}
        result.timing["total"] = sum(result.timing.values())
        return self._report(result)

    def _begin_frame(self, image: np.ndarray) -> None:
        if not self.initialized:
            raise RuntimeError("track() called before init(image, box)")
        geometry.validate_image(image)
        self.image_size = (image.shape[1], image.shape[0])

    def _report(self, result: TrackResult) -> TrackResult:
        # The internal state may reach past the border (the centre stays inside);
        # what users get is always a box inside the image.
        result.box = geometry.clip_box(result.box, *self.image_size)
        result.score = float(np.clip(result.score, 0.0, 1.0))
        self.last_score = result.score
        if result.state != TrackState.LOST and result.score < self.lost_threshold:
            result.state = TrackState.LOST
        return result

    def reset(self) -> None:
        self.center = None
        self.size = None
        self._reset()

    def _clip_state(self, min_size: float = 10.0) -> None:
        """Keep the centre inside the image and the size in [min_size, image size]."""
        w, h = self.image_size
        self.center = np.array([np.clip(self.center[0], 0, w), np.clip(self.center[1], 0, h)])
        self.size = np.array([np.clip(self.size[0], min(min_size, w), w),
                              np.clip(self.size[1], min(min_size, h), h)])

    @contextlib.contextmanager
    def _threads(self):
        """torch intra-op threads = params['cpu_threads'] while the network runs on
        the CPU (restored afterwards); no-op when the parameter is None / absent."""
        n = self.params.get("cpu_threads")
        if n is None or self.device.type != "cpu":
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(int(n))
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _network(self, state, x):
        return self.model.track(state, x)

    def _track(self, image: np.ndarray) -> TrackResult:
        """One frame = prepare + network (+ host transfer) + finish; timing split
        into crop / network / post (seconds)."""
        t0 = time.perf_counter()
        x, ctx = self._prepare_search(image)
        t1 = time.perf_counter()
        with self._threads():
            out = self._network(self.template_state, x)
            raw = self._decode(out)
        t2 = time.perf_counter()
        result = self._finish(raw, ctx)
        t3 = time.perf_counter()
        result.timing = {"crop": t1 - t0, "network": t2 - t1, "post": t3 - t2}
        return result

    # Subclasses implement these.
    @abstractmethod
    def _init(self, image: np.ndarray) -> None: ...

    @abstractmethod
    def _prepare_search(self, image: np.ndarray) -> Tuple[Any, Dict[str, Any]]:
        """image -> (network input K x 3 x I x I, context for _finish)."""

    @abstractmethod
    def _decode(self, out: Dict[str, Any]) -> Any:
        """This target's network output (K rows) -> host arrays for _finish."""

    @abstractmethod
    def _finish(self, raw: Any, ctx: Dict[str, Any]) -> TrackResult:
        """Post-processing: raw outputs -> TrackResult, state update (timing is set by the caller)."""

    def _reset(self) -> None:
        pass
