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
`self.template_state` (core/tracking/siamese.py is the base of the Siamese ones).

What a user of a tracker (the target supervisor, core/tracking/monitor.py) may
do beyond init / track, without touching its insides:
    state = tracker.save_state(); tracker.load_state(state)   # the per-frame state
    results = tracker.probe(image, centers)   # search at other places, state unchanged
    tracker.relocate(center)                  # move the target (e.g. a motion prior)
    tracker.search_side()                     # image px the search crop covers now
"""
from __future__ import annotations

import contextlib
import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import geometry
from ..devices import resolve_device
from ..runtime import tune_malloc
from .batching import batched_network, supports_target_batch
from .params import check_tracker_params


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


def image_to_tensor(patch: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWx3 uint8 BGR patch -> 1x3xHxW float tensor, values 0..255 (models normalise)."""
    return torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1))).to(
        device=device, dtype=torch.float32).unsqueeze(0)


class Tracker(ABC):
    """init(image, box) once, then track(image) -> TrackResult per frame.

    Subclasses list their hyper-parameters with defaults in DEFAULTS; the model
    config's tracker section overrides them. A registered tracker type (KIND)
    has its parameters checked against core/tracking/params.py (unknown keys and
    values out of range are errors).
    """
    DEFAULTS: Dict[str, Any] = {}
    KIND: Optional[str] = None
    # What one frame changes: save_state / load_state copy these (subclasses add theirs).
    STATE_FIELDS: Tuple[str, ...] = ("center", "size", "image_size", "last_score")

    def __init__(self, model: torch.nn.Module, params: Dict[str, Any], device: str = "auto"):
        tune_malloc()       # per-frame tensors stay in the process (core/runtime.py)
        if self.KIND is not None:
            check_tracker_params(self.KIND, params)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.params = {**self.DEFAULTS, **params}
        self.lost_threshold = float(self.params.get("lost_threshold", 0.0))
        self.center = None            # (cx, cy) float
        self.size = None              # (w, h) float
        self.image_size = None        # (w, h) of the last frame
        self.last_score = 0.0
        self._frame_start = None      # (center, size) before the current frame

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

    def run_network(self, state, x):
        """Step 2: the model's search branch for template state(s) `state` and crops `x`
        (one target's, or several batched: core/tracking/batching.py), on this
        tracker's CPU threads."""
        with self._threads():
            return self._network(state, x)

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
        self._frame_start = (self.center.copy(), self.size.copy())

    def _report(self, result: TrackResult) -> TrackResult:
        if not (geometry.is_usable_box(result.box) and np.isfinite(result.score)
                and np.all(np.isfinite(self.center)) and np.all(np.isfinite(self.size))):
            return self._refuse_result(result)
        # The internal state may reach past the border (the centre stays inside);
        # what users get is always a box inside the image.
        result.box = geometry.clip_box(result.box, *self.image_size)
        result.score = float(np.clip(result.score, 0.0, 1.0))
        self.last_score = result.score
        if result.state != TrackState.LOST and result.score < self.lost_threshold:
            result.state = TrackState.LOST
        return result

    def _refuse_result(self, result: TrackResult) -> TrackResult:
        """A non-finite or empty result (a broken network output or hyper-parameter) is never
        TRACKING: the target stays where it was before the frame, reported LOST, score 0."""
        start = getattr(self, "_frame_start", None)
        if start is not None:
            self.center, self.size = start[0].copy(), start[1].copy()
        result.box = geometry.clip_box(self.box, *self.image_size)
        result.score = 0.0
        result.state = TrackState.LOST
        result.evidence = {**(result.evidence or {}), "non_finite_result": 1.0}
        self.last_score = 0.0
        return result

    def reset(self) -> None:
        self.center = None
        self.size = None
        self._reset()

    # -- the public API beyond init / track (the target supervisor uses only this) ---
    def save_state(self) -> Dict[str, Any]:
        """What one frame changes (STATE_FIELDS), copied: load_state puts it back."""
        return {k: _copied(getattr(self, k, None)) for k in self.STATE_FIELDS}

    def load_state(self, state: Dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, _copied(v))

    def relocate(self, center) -> None:
        """Move the target's centre to `center` (image px); size and template unchanged.
        The next track() searches around it."""
        self.center = np.asarray(center, dtype=np.float64).copy()

    def search_side(self) -> float:
        """Side in image px of the search crop at the target's current size."""
        p = self.params
        s_z = geometry.context_size(self.size[0], self.size[1], p["context_amount"])
        return s_z * float(p["instance_size"]) / float(p["exemplar_size"])

    def probe(self, image: np.ndarray, centers: Sequence[Any],
              sizes: Optional[Sequence[Any]] = None) -> List[TrackResult]:
        """Score candidate places: for each centre (and size, default the current one) the
        search this tracker would run with the target there, as a TrackResult (box
        clipped to the image); the tracker's state is the same afterwards. Two or more
        places go through the network in one call when the model can batch (on the CPU
        the results are those of one call per place, test/test_monitor.py)."""
        saved = self.save_state()
        results: List[TrackResult] = []

        def place(i: int) -> None:
            self.relocate(centers[i])
            if sizes is not None and sizes[i] is not None:
                self.size = np.asarray(sizes[i], dtype=np.float64).copy()

        try:
            if len(centers) < 2 or not supports_target_batch(self.model):
                for i in range(len(centers)):
                    place(i)
                    self.image_size = (image.shape[1], image.shape[0])
                    with torch.inference_mode():
                        result = self._track(image)
                    result.box = geometry.clip_box(result.box, *self.image_size)
                    result.score = float(np.clip(result.score, 0.0, 1.0))
                    results.append(result)
                    self.load_state(saved)
                return results
            prepared = []
            for i in range(len(centers)):
                place(i)
                prepared.append(self.track_prepare(image))
                self.load_state(saved)
            parts, _ = batched_network([self] * len(prepared), prepared)
            for i, (p, part) in enumerate(zip(prepared, parts)):
                place(i)
                results.append(self.track_finish(p, part))
                self.load_state(saved)
            return results
        finally:
            self.load_state(saved)

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


def _copied(value):
    """numpy arrays copied (trackers may change them in place); the rest as it is."""
    return value.copy() if isinstance(value, np.ndarray) else value
