"""Peer trackers from OpenCV behind the project's init / track interface.

- ``opencv-csrt`` (alias ``csrt``): cv2.TrackerCSRT (discriminative correlation filter
  with channel and spatial reliability).
- ``opencv-kcf`` (alias ``kcf``): cv2.TrackerKCF (kernelised correlation filter).
- ``opencv-nanotrack`` (aliases ``nanotrack-cv``, ``cv-nanotrack``): cv2.TrackerNano
  running the NanoTrack v2 ONNX pair (backbone + neck/head); the files default to
  ../shared/weights/nanotrack_v2/nanotrack_{backbone,head}_sim.onnx and can be given
  with `onnx=(backbone, head)`.

OpenCV takes integer rectangles: the initial box is rounded to whole pixels. When
OpenCV reports a lost target (update() -> False) the previous box is kept and the
state is LOST (KCF does this; CSRT and Nano practically never report it).
"""
from __future__ import annotations

import hashlib
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..core import geometry
from ..core.tracking.base import TrackResult, TrackState
from ..core.package_files import shared_dirs

PEER_ALIASES = {
    "opencv-csrt": "opencv-csrt", "csrt": "opencv-csrt",
    "opencv-kcf": "opencv-kcf", "kcf": "opencv-kcf",
    "opencv-nanotrack": "opencv-nanotrack", "nanotrack-cv": "opencv-nanotrack",
    "cv-nanotrack": "opencv-nanotrack", "opencv-nano": "opencv-nanotrack",
}
PEERS = ("opencv-csrt", "opencv-kcf", "opencv-nanotrack")
NANO_FILES = ("nanotrack_backbone_sim.onnx", "nanotrack_head_sim.onnx")


def canonical_peer(name: str) -> Optional[str]:
    """The peer's canonical name, or None when `name` is not a peer."""
    return PEER_ALIASES.get(str(name).lower())


def default_nano_onnx() -> Optional[Tuple[str, str]]:
    """The shared NanoTrack v2 ONNX files, if present ($SIAM_TRACKER_NANO_DIR overrides)."""
    dirs = [os.environ.get("SIAM_TRACKER_NANO_DIR", "")]
    dirs += [os.path.join(shared, "weights", "nanotrack_v2") for shared in shared_dirs()]
    for d in dirs:
        if d and all(os.path.isfile(os.path.join(d, f)) for f in NANO_FILES):
            return tuple(os.path.join(d, f) for f in NANO_FILES)
    return None


def file_digest(path: str, _cache: Dict[Tuple[str, int, float], str] = {}) -> str:
    """sha256 of a file (memoised on path, size and mtime)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime)
    if key not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _cache[key] = h.hexdigest()
    return _cache[key]


def _create(name: str, onnx: Optional[Sequence[str]]):
    if name == "opencv-csrt":
        return cv2.TrackerCSRT.create() if hasattr(cv2, "TrackerCSRT") else cv2.TrackerCSRT_create()
    if name == "opencv-kcf":
        return cv2.TrackerKCF.create() if hasattr(cv2, "TrackerKCF") else cv2.TrackerKCF_create()
    if name == "opencv-nanotrack":
        if not hasattr(cv2, "TrackerNano"):
            raise RuntimeError(f"OpenCV {cv2.__version__} has no TrackerNano (needs >= 4.7)")
        if not onnx:
            raise FileNotFoundError("opencv-nanotrack needs the NanoTrack ONNX files "
                                    f"({NANO_FILES[0]}, {NANO_FILES[1]}); none given and "
                                    "../shared/weights/nanotrack_v2 not found")
        for path in onnx:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"NanoTrack ONNX file not found: {path}")
        params = cv2.TrackerNano_Params()
        params.backbone = str(onnx[0])
        params.neckhead = str(onnx[1])
        return cv2.TrackerNano.create(params)
    raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")


class OpenCVTracker:
    """An OpenCV tracker with the project's Tracker interface (init / track / reset)."""

    def __init__(self, name: str, onnx: Optional[Sequence[str]] = None):
        canon = canonical_peer(name)
        if canon is None:
            raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
        self.name = canon
        self.onnx = tuple(onnx) if onnx else (default_nano_onnx() if canon == "opencv-nanotrack" else None)
        self._tracker = _create(canon, self.onnx)   # fail early (missing files)
        self._box = None
        self.last_score = 0.0

    @property
    def initialized(self) -> bool:
        return self._box is not None

    def identity(self) -> Dict[str, object]:
        """What determines this tracker's output (used as the results cache key)."""
        ident: Dict[str, object] = {"kind": "peer", "name": self.name, "opencv": cv2.__version__}
        if self.onnx:
            ident["onnx"] = [file_digest(p) for p in self.onnx]
        return ident

    def init(self, image: np.ndarray, box) -> None:
        geometry.validate_image(image)
        h, w = image.shape[:2]
        b = geometry.validate_box(box, w, h)
        rect = tuple(int(round(v)) for v in b)
        rect = (rect[0], rect[1], max(rect[2], 1), max(rect[3], 1))
        self._tracker = _create(self.name, self.onnx)   # fresh state per init
        self._tracker.init(image, rect)
        self._box = np.asarray(b, dtype=np.float64)
        self.last_score = 1.0

    def track(self, image: np.ndarray) -> TrackResult:
        if self._box is None:
            raise RuntimeError("track() called before init(image, box)")
        start = time.perf_counter()
        ok, rect = self._tracker.update(image)
        elapsed = time.perf_counter() - start
        score = 1.0 if ok else 0.0
        if self.name == "opencv-nanotrack" and hasattr(self._tracker, "getTrackingScore"):
            score = float(np.clip(self._tracker.getTrackingScore(), 0.0, 1.0))
        if ok:
            self._box = np.asarray(rect, dtype=np.float64)
        self.last_score = score
        return TrackResult(box=self._box.copy(), score=score,
                           state=TrackState.TRACKING if ok else TrackState.LOST,
                           confidence_map=np.zeros((1, 1), np.float32), map_region=self._box.copy(),
                           timing={"total": elapsed})

    def reset(self) -> None:
        self._box = None


def available_peers() -> List[str]:
    """Peers that can be built on this machine (NanoTrack needs the ONNX files)."""
    out = ["opencv-csrt", "opencv-kcf"]
    if hasattr(cv2, "TrackerNano") and default_nano_onnx():
        out.append("opencv-nanotrack")
    return out
