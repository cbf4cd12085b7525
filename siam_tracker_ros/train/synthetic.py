"""Synthetic labelled tracking sequences from registry media, and a compact
training set on disk (:func:`prepare_data`).

A sequence is an object cut from one picture (a random patch with an
elliptical, irregular-blob, rounded-rectangle or rectangular alpha mask)
composited onto a background that is either another picture seen by a slowly
panning/zooming camera or consecutive frames of a real clip. The object moves
with known smooth motion, scale change and rotation; some sequences add motion
blur, illumination change, partial occluders passing in front, look-alike
distractors (copies of the object with colour jitter) and unrelated clutter
objects. The box of each frame is the tight box of the object's warped alpha
mask (alpha > 0.5), so labels are exact to the pixel; it is the full object box
also where an occluder hides part of it. A frame whose object is more than
85 % hidden (or outside the image) is marked absent.

Optional pseudo-labelled clips (``pseudo_fraction`` > 0): a moving region of a
real clip (found by background subtraction, else a textured patch) tracked
forwards and backwards by a peer tracker (OpenCV's TrackerNano with the
NanoTrack v2 ONNX files, else CSRT); only tracks whose forward and backward
boxes agree with IoU > 0.7 on every frame are kept.

The validation sequences (``../shared/data/sequences``) are never used here.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence as Seq, Tuple

import cv2
import numpy as np

from ..core.geometry import iou
from ..core.package_files import shared_dirs
from .media import MediaSet, find_media

GENERATOR_VERSION = 1


# ----------------------------------------------------------------------------- media pool
class MediaPool:
    """Images (downscaled to ``max_side``) and video clips, loaded on demand and cached."""

    def __init__(self, media: MediaSet, max_side: int = 640):
        self.image_paths = list(media.images)
        self.video_paths = list(media.videos)
        self.max_side = max_side
        self._images: Dict[int, np.ndarray] = {}
        self._video_len: Dict[str, int] = {}
        if not self.image_paths and not self.video_paths:
            raise RuntimeError("no media found: " + media.summary())

    def _resize(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        s = self.max_side / max(h, w)
        if s < 1:
            img = cv2.resize(img, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)
        return img

    def image(self, i: int) -> np.ndarray:
        if i not in self._images:
            img = cv2.imread(self.image_paths[i], cv2.IMREAD_COLOR)
            if img is None:
                img = np.full((240, 320, 3), 127, np.uint8)
            self._images[i] = self._resize(img)
        return self._images[i]

    def random_image(self, rng: np.random.Generator, exclude: Optional[int] = None) -> Tuple[int, np.ndarray]:
        n = len(self.image_paths)
        i = int(rng.integers(n))
        if exclude is not None and n > 1 and i == exclude:
            i = (i + 1 + int(rng.integers(n - 1))) % n
        return i, self.image(i)

    def video_length(self, path: str) -> int:
        """Frames that really decode (a header's count can be wrong: tree.avi says 444, has 68)."""
        if path not in self._video_len:
            cap = cv2.VideoCapture(path)
            n = 0
            while cap.isOpened() and cap.grab():
                n += 1
            cap.release()
            self._video_len[path] = n
        return self._video_len[path]

    def clip(self, rng: np.random.Generator, n_frames: int, stride: int = 1,
             warmup: int = 0) -> Optional[Tuple[str, List[np.ndarray]]]:
        """``n_frames`` consecutive frames (every ``stride``-th) of a random clip,
        preceded by ``warmup`` frames (returned first). None if no clip is long enough."""
        need = (n_frames - 1) * stride + 1 + warmup
        cands = [p for p in self.video_paths if self.video_length(p) >= need + 1]
        if not cands:
            return None
        path = cands[int(rng.integers(len(cands)))]
        start = int(rng.integers(0, self.video_length(path) - need))
        frames = self._read(path, start, n_frames + warmup, stride, warmup, seek=True)
        if frames is None:  # some codecs cannot seek (tree.avi): read from the start
            frames = self._read(path, start, n_frames + warmup, stride, warmup, seek=False)
        if frames is None:
            return None
        return path, frames

    def _read(self, path: str, start: int, count: int, stride: int, warmup: int, seek: bool):
        cap = cv2.VideoCapture(path)
        if seek:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        else:
            for _ in range(start):
                if not cap.grab():
                    cap.release()
                    return None
        frames = []
        k = 0
        while len(frames) < count:
            ok, f = cap.read()
            if not ok:
                break
            if k < warmup or (k - warmup) % stride == 0:
                frames.append(self._resize(f))
            k += 1
        cap.release()
        return frames if len(frames) == count else None


# ----------------------------------------------------------------------------- helpers
def smooth_curve(rng: np.random.Generator, n: int, cycles: Tuple[float, float] = (0.3, 2.0),
                 k: int = 3) -> np.ndarray:
    """A smooth random function on n frames with values in [-1, 1] (sum of sinusoids)."""
    t = np.linspace(0.0, 1.0, n)
    out = np.zeros(n)
    for _ in range(k):
        f = rng.uniform(*cycles)
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * (f * t + rng.uniform()))
    m = np.abs(out).max()
    return out / m if m > 0 else out


def make_mask(rng: np.random.Generator, h: int, w: int, kind: Optional[str] = None) -> np.ndarray:
    """Float32 alpha mask (h, w) in [0, 1] that touches all four sides of the patch."""
    kind = kind or str(rng.choice(["ellipse", "blob", "rounded", "rect"], p=[0.3, 0.35, 0.2, 0.15]))
    ss = 4  # supersampled for anti-aliased edges
    H, W = h * ss, w * ss
    m = np.zeros((H, W), np.uint8)
    if kind == "ellipse":
        cv2.ellipse(m, (W // 2, H // 2), (W // 2 - 1, H // 2 - 1), 0, 0, 360, 255, -1)
    elif kind == "blob":
        n = 24
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = 0.75 + 0.25 * smooth_curve(rng, n + 1, (1.0, 3.0))[:n]
        pts = np.stack([np.cos(ang) * r, np.sin(ang) * r], 1)
        pts -= pts.min(0)
        pts /= pts.max(0)
        pts = (pts * [W - 1, H - 1]).astype(np.int32)
        cv2.fillPoly(m, [pts], 255)
    elif kind == "rounded":
        rad = int(min(H, W) * rng.uniform(0.1, 0.35))
        cv2.rectangle(m, (rad, 0), (W - 1 - rad, H - 1), 255, -1)
        cv2.rectangle(m, (0, rad), (W - 1, H - 1 - rad), 255, -1)
        for cx, cy in ((rad, rad), (W - 1 - rad, rad), (rad, H - 1 - rad), (W - 1 - rad, H - 1 - rad)):
            cv2.circle(m, (cx, cy), rad, 255, -1)
    else:
        m[:] = 255
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def random_patch(rng: np.random.Generator, img: np.ndarray, min_side: int = 24,
                 max_side: int = 200) -> np.ndarray:
    """A random rectangular region of ``img`` with aspect 0.4 - 2.5, preferring textured ones."""
    h, w = img.shape[:2]
    best, best_score = None, -1.0
    for _ in range(4):
        aspect = float(np.exp(rng.uniform(np.log(0.4), np.log(2.5))))
        side = rng.uniform(min_side, min(max_side, 0.8 * min(h, w)))
        pw = int(max(8, min(w - 1, side * math.sqrt(aspect))))
        ph = int(max(8, min(h - 1, side / math.sqrt(aspect))))
        x = int(rng.integers(0, w - pw + 1))
        y = int(rng.integers(0, h - ph + 1))
        p = img[y:y + ph, x:x + pw]
        score = float(p.std())
        if score > best_score:
            best, best_score = p, score
    return best.copy()


def jitter_colour(rng: np.random.Generator, patch: np.ndarray, strength: float = 0.25) -> np.ndarray:
    """Colour-jittered copy (look-alike distractor): per-channel gains, hue shift."""
    p = patch.astype(np.float32) * (1.0 + rng.uniform(-strength, strength, 3))
    p = np.clip(p, 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(p, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(int) + int(rng.integers(-12, 13))) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def mask_box(alpha: np.ndarray, thresh: float = 0.5) -> Optional[np.ndarray]:
    """Tight xywh box of the pixels with alpha > thresh (None if there are none)."""
    m = alpha > thresh
    cols = np.flatnonzero(m.any(0))
    rows = np.flatnonzero(m.any(1))
    if cols.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]], np.float64)


@dataclass
class Layer:
    """An object patch with alpha and its per-frame pose (centre, scale, angle)."""
    patch: np.ndarray
    alpha: np.ndarray
    centre: np.ndarray      # (T, 2)
    scale: np.ndarray       # (T,) pixel scale of the patch
    angle: np.ndarray       # (T,) degrees
    gain: np.ndarray        # (T,) brightness gain of this layer
    blur: Optional[np.ndarray] = None   # (T,) motion-blur length (px), direction from the motion

    def render(self, t: int, size: Tuple[int, int]):
        """Warped (colour float32, alpha float32) of frame t on a canvas of ``size`` (W, H)."""
        ph, pw = self.alpha.shape
        m = cv2.getRotationMatrix2D((pw / 2.0, ph / 2.0), float(self.angle[t]), float(self.scale[t]))
        m[:, 2] += self.centre[t] - np.array([pw / 2.0, ph / 2.0])
        # cv2 index convention: these matrices map pixel centres, consistent with the mask box
        col = cv2.warpAffine(self.patch, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        al = cv2.warpAffine(self.alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
        col = col.astype(np.float32) * float(self.gain[t])
        return col, al


def _trajectory(rng: np.random.Generator, n: int, size: Tuple[int, int], margin: float,
                max_speed: float) -> np.ndarray:
    """Smooth centre positions with momentum, bouncing inside the frame."""
    W, H = size
    pos = np.array([rng.uniform(margin, W - margin), rng.uniform(margin, H - margin)])
    speed = rng.uniform(0, max_speed)
    ang = rng.uniform(0, 2 * np.pi)
    vel = speed * np.array([np.cos(ang), np.sin(ang)])
    turn = smooth_curve(rng, n) * rng.uniform(0, 0.15)
    out = np.zeros((n, 2))
    for t in range(n):
        out[t] = pos
        c, s = np.cos(turn[t]), np.sin(turn[t])
        vel = np.array([c * vel[0] - s * vel[1], s * vel[0] + c * vel[1]])
        vel += rng.normal(0, 0.15 * max(max_speed, 0.5), 2) * 0.2
        pos = pos + vel
        for k, lim in ((0, W), (1, H)):
            if pos[k] < margin or pos[k] > lim - margin:
                vel[k] = -vel[k]
                pos[k] = min(max(pos[k], margin), lim - margin)
    return out


def _background_frames(pool: MediaPool, rng: np.random.Generator, n: int, size: Tuple[int, int],
                       use_video: bool) -> Tuple[List[np.ndarray], str, Optional[int]]:
    W, H = size
    if use_video and pool.video_paths:
        clip = None
        for _ in range(4):
            clip = pool.clip(rng, n, stride=int(rng.integers(1, 3)))
            if clip is None or not has_scene_cut(clip[1]):
                break
            clip = None
        if clip is not None:
            path, frames = clip
            fh, fw = frames[0].shape[:2]
            s = rng.uniform(0.6, 1.0)
            cw = min(fw, fh * W / H) * s
            ch = cw * H / W
            x0 = rng.uniform(0, fw - cw)
            y0 = rng.uniform(0, fh - ch)
            out = [cv2.resize(f[int(y0):int(y0 + ch), int(x0):int(x0 + cw)], (W, H),
                              interpolation=cv2.INTER_AREA) for f in frames]
            return out, os.path.basename(path), None
    idx, img = pool.random_image(rng)
    ih, iw = img.shape[:2]
    # a camera window that pans and zooms slowly over the picture
    base = min(iw, ih * W / H) * rng.uniform(0.45, 0.9)
    zoom = 1.0 + 0.15 * smooth_curve(rng, n, (0.2, 0.8)) * rng.uniform(0, 1)
    cw = base * zoom
    ch = cw * H / W
    pan = rng.uniform(-0.25, 0.25, 2) * [iw, ih] * rng.uniform(0, 1)
    c0 = np.array([iw / 2.0, ih / 2.0]) + rng.uniform(-0.2, 0.2, 2) * [iw, ih]
    out = []
    for t in range(n):
        c = c0 + pan * (t / max(n - 1, 1) - 0.5)
        half = np.array([cw[t] / 2, ch[t] / 2])
        if cw[t] < iw and ch[t] < ih:
            c = np.clip(c, half, np.array([iw, ih]) - half)
        out.append(_warp_window(img, c, cw[t], ch[t], W, H))
    return out, os.path.basename(pool.image_paths[idx]), idx


def _warp_window(img, centre, cw, ch, W, H):
    sx, sy = W / cw, H / ch
    m = np.array([[sx, 0, W / 2.0 - sx * centre[0] + 0.5 * sx - 0.5],
                  [0, sy, H / 2.0 - sy * centre[1] + 0.5 * sy - 0.5]])
    return cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _motion_blur_layer(col: np.ndarray, al: np.ndarray, length: float, direction: np.ndarray):
    n = int(round(length))
    if n < 3:
        return col, al
    ang = math.degrees(math.atan2(direction[1], direction[0]))
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1.0
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D(((n - 1) / 2.0, (n - 1) / 2.0), -ang, 1.0), (n, n))
    k /= max(float(k.sum()), 1e-6)
    pre = cv2.filter2D(col * al[..., None], -1, k)
    al2 = cv2.filter2D(al, -1, k)
    col2 = pre / np.maximum(al2[..., None], 1e-4)
    return col2, al2


@dataclass
class SequenceSpec:
    """What a generated sequence contains (stored in ``meta.json`` next to it)."""
    background: str = ""
    video: bool = False
    mask: str = ""
    distractors: int = 0
    clutter: int = 0
    occluder: bool = False
    motion_blur: bool = False
    illumination: float = 0.0
    rotation: float = 0.0
    scale_change: float = 0.0
    pseudo_label: bool = False


def generate_sequence(pool: MediaPool, rng: np.random.Generator, n_frames: int = 30,
                      size: Tuple[int, int] = (320, 240), video_prob: float = 0.4,
                      distractor_prob: float = 0.4, occluder_prob: float = 0.35,
                      blur_prob: float = 0.3, illumination_prob: float = 0.4,
                      clutter_prob: float = 0.5):
    """One synthetic sequence: (frames list of HxWx3 uint8, boxes (T, 4) xywh,
    visible (T,) bool, SequenceSpec)."""
    W, H = size
    spec = SequenceSpec()
    use_video = bool(rng.random() < video_prob)
    bgs, spec.background, bg_idx = _background_frames(pool, rng, n_frames, size, use_video)
    spec.video = bg_idx is None
    # --- the target
    src_idx, src = pool.random_image(rng, exclude=bg_idx)
    patch = random_patch(rng, src)
    kinds = ["ellipse", "blob", "rounded", "rect"]
    spec.mask = str(rng.choice(kinds, p=[0.3, 0.35, 0.2, 0.15]))
    alpha = make_mask(rng, patch.shape[0], patch.shape[1], spec.mask)
    ph, pw = alpha.shape
    # 17-72 px in 240 px: the search region (~4x the target side) then mostly lies in the frame
    target_side = rng.uniform(0.07, 0.3) * min(W, H) * (1.0 if rng.random() < 0.9 else 1.4)
    base_scale = target_side / max(ph, pw)
    spec.scale_change = float(rng.uniform(0.0, 0.5))
    scale = base_scale * np.exp(spec.scale_change * smooth_curve(rng, n_frames, (0.2, 1.0)))
    spec.rotation = float(rng.uniform(0, 25) if rng.random() < 0.7 else rng.uniform(25, 120))
    angle = rng.uniform(-20, 20) * (rng.random() < 0.3) + spec.rotation * smooth_curve(rng, n_frames)
    max_speed = float(rng.uniform(0.5, 7.0))
    margin = 0.3 * target_side
    centre = _trajectory(rng, n_frames, size, margin, max_speed)
    spec.illumination = float(rng.uniform(0.1, 0.4)) if rng.random() < illumination_prob else 0.0
    light = 1.0 + spec.illumination * smooth_curve(rng, n_frames, (0.2, 1.0))
    obj_gain = np.ones(n_frames) if rng.random() < 0.5 else light
    target = Layer(patch, alpha, centre, scale, angle, obj_gain)
    spec.motion_blur = bool(rng.random() < blur_prob)
    # --- other objects: look-alike distractors and clutter (drawn behind the target)
    below: List[Layer] = []
    if rng.random() < distractor_prob:
        spec.distractors = int(rng.integers(1, 3))
        for _ in range(spec.distractors):
            s = scale * rng.uniform(0.8, 1.2)
            below.append(Layer(jitter_colour(rng, patch), alpha, _trajectory(rng, n_frames, size, margin,
                                                                              max_speed),
                               s, angle + rng.uniform(-15, 15), obj_gain))
    if rng.random() < clutter_prob:
        spec.clutter = int(rng.integers(1, 4))
        for _ in range(spec.clutter):
            _, img = pool.random_image(rng)
            p = random_patch(rng, img)
            a = make_mask(rng, p.shape[0], p.shape[1])
            s = rng.uniform(0.07, 0.3) * min(W, H) / max(p.shape[:2])
            below.append(Layer(p, a, _trajectory(rng, n_frames, size, 10, rng.uniform(0, 4)),
                               np.full(n_frames, s), np.full(n_frames, rng.uniform(-30, 30)),
                               np.ones(n_frames)))
    # --- an occluder crossing the target for part of the sequence
    above: List[Layer] = []
    if rng.random() < occluder_prob and n_frames >= 4:
        spec.occluder = True
        _, img = pool.random_image(rng)
        p = random_patch(rng, img)
        a = make_mask(rng, p.shape[0], p.shape[1])
        occ_side = target_side * rng.uniform(0.4, 0.9)
        s = occ_side / max(p.shape[:2])
        t_mid = int(rng.integers(n_frames // 4, max(n_frames // 4 + 1, 3 * n_frames // 4)))
        dur = max(2, int(n_frames * rng.uniform(0.2, 0.6)))
        off = rng.normal(0, 0.35, 2) * target_side
        ang = rng.uniform(0, 2 * np.pi)
        v = np.array([np.cos(ang), np.sin(ang)]) * (target_side * 1.6 / dur)
        cen = centre[t_mid] + off + (np.arange(n_frames)[:, None] - t_mid) * v
        above.append(Layer(p, a, cen, np.full(n_frames, s), np.full(n_frames, rng.uniform(-20, 20)),
                           np.ones(n_frames)))
    frames, boxes, visible = [], np.zeros((n_frames, 4)), np.zeros(n_frames, bool)
    for t in range(n_frames):
        canvas = bgs[t].astype(np.float32) * float(light[t])
        for layer in below:
            col, al = layer.render(t, size)
            canvas = canvas * (1 - al[..., None]) + col * al[..., None]
        col, al = target.render(t, size)
        box = mask_box(al)
        target_mask = al > 0.5
        if spec.motion_blur:
            v = centre[min(t + 1, n_frames - 1)] - centre[max(t - 1, 0)]
            if np.linalg.norm(v) > 2.0:
                col, al = _motion_blur_layer(col, al, 1.5 * np.linalg.norm(v), v)
        canvas = canvas * (1 - al[..., None]) + col * al[..., None]
        covered = np.zeros(target_mask.shape, bool)
        for layer in above:
            ocol, oal = layer.render(t, size)
            canvas = canvas * (1 - oal[..., None]) + ocol * oal[..., None]
            covered |= oal > 0.5
        frames.append(np.clip(canvas, 0, 255).astype(np.uint8))
        n_vis = int(target_mask.sum())
        if box is None or n_vis < 16:
            boxes[t] = np.nan
            continue
        boxes[t] = box
        hidden = float((covered & target_mask).sum()) / n_vis
        visible[t] = hidden <= 0.85
    return frames, boxes, visible, spec


# ----------------------------------------------------------------------------- pseudo labels
def default_peer_dir() -> Optional[str]:
    for cand in [os.environ.get("SIAM_NANOTRACK_DIR", "")] + \
            [os.path.join(shared, "weights", "nanotrack_v2") for shared in shared_dirs()]:
        if cand and os.path.isfile(os.path.join(cand, "nanotrack_backbone_sim.onnx")):
            return os.path.abspath(cand)
    return None


def make_peer_tracker(peer_dir: Optional[str] = None) -> Tuple[Callable[[], object], str]:
    """A factory of OpenCV peer trackers: TrackerNano (NanoTrack v2 ONNX) if its
    files are found, else CSRT."""
    peer_dir = peer_dir or default_peer_dir()
    if peer_dir and hasattr(cv2, "TrackerNano_Params"):
        def nano():
            p = cv2.TrackerNano_Params()
            p.backbone = os.path.join(peer_dir, "nanotrack_backbone_sim.onnx")
            p.neckhead = os.path.join(peer_dir, "nanotrack_head_sim.onnx")
            return cv2.TrackerNano_create(p)
        return nano, "nanotrack_v2"
    if hasattr(cv2, "TrackerCSRT_create"):
        return cv2.TrackerCSRT_create, "csrt"
    raise RuntimeError("no peer tracker: needs opencv-contrib (CSRT) or the NanoTrack ONNX files")


def _run_tracker(factory, frames: List[np.ndarray], box) -> Tuple[Optional[np.ndarray], float]:
    """(boxes on every frame or None if the tracker gave up, its lowest score).
    OpenCV trackers take an integer box and report no score (1.0); trackers with
    ``float_boxes`` take the box as it is and report ``last_score``."""
    tr = factory()
    tr.init(frames[0], box if getattr(tr, "float_boxes", False) else tuple(int(round(v)) for v in box))
    out, low = [np.asarray(box, np.float64)], 1.0
    for f in frames[1:]:
        ok, b = tr.update(f)
        if not ok:
            return None, 0.0
        out.append(np.asarray(b, np.float64))
        low = min(low, getattr(tr, "last_score", 1.0))
    return np.stack(out), low


def forward_backward_track(factory, frames: List[np.ndarray], box, min_iou: float = 0.7,
                           min_score: float = 0.0) -> Optional[np.ndarray]:
    """Track forwards from ``box`` on frame 0, then backwards from the last box;
    the forward boxes if IoU(forward_t, backward_t) > min_iou on every frame and
    the tracker's score never fell below ``min_score`` in either pass, else None."""
    fwd, low = _run_tracker(factory, frames, box)
    if fwd is None or low < min_score:
        return None
    bwd, low = _run_tracker(factory, frames[::-1], fwd[-1])
    if bwd is None or low < min_score:
        return None
    agree = iou(fwd, bwd[::-1])
    if np.all(agree > min_iou):
        return fwd
    return None


def has_scene_cut(frames: List[np.ndarray], max_diff: float = 20.0, min_corr: float = 0.5) -> bool:
    """True if two consecutive frames differ like a shot boundary: mean absolute
    grey-level difference (80x60 thumbnails) above ``max_diff`` or hue-saturation
    histogram correlation below ``min_corr``. (Megamind.avi: cuts 41-45, else <= 4.5.)"""
    prev = prev_h = None
    for f in frames:
        small = cv2.resize(f, (80, 60), interpolation=cv2.INTER_AREA)
        g = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        h = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(h, h)
        if prev is not None and (float(np.abs(g - prev).mean()) > max_diff
                                 or cv2.compareHist(prev_h, h, cv2.HISTCMP_CORREL) < min_corr):
            return True
        prev, prev_h = g, h
    return False


def clean_foreground(fg: np.ndarray) -> np.ndarray:
    """A background-subtraction mask without speckle, slightly grown."""
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.dilate(fg, np.ones((5, 5), np.uint8))


def moving_regions(fg: np.ndarray, min_area: float, max_area: float) -> List[np.ndarray]:
    """Boxes (x, y, w, h) of the mask's blobs with a plausible area and aspect ratio."""
    n, _lab, stats, _c = cv2.connectedComponentsWithStats((fg > 0).astype(np.uint8))
    return [stats[i, :4].astype(np.float64) for i in range(1, n)
            if min_area <= stats[i, 2] * stats[i, 3] <= max_area
            and 0.2 < stats[i, 2] / max(stats[i, 3], 1) < 5]


def _init_box_from_motion(frames: List[np.ndarray], rng: np.random.Generator, warmup: int,
                          min_area: float, max_area: float) -> Optional[np.ndarray]:
    sub = cv2.createBackgroundSubtractorMOG2(history=max(warmup, 5), detectShadows=False)
    fg = None
    for f in frames[:warmup + 1]:
        fg = sub.apply(f)
    cands = moving_regions(clean_foreground(fg), min_area, max_area)
    if not cands:
        return None
    return cands[int(rng.integers(len(cands)))]


def textured_box(frame: np.ndarray, rng: np.random.Generator, width=(0.1, 0.3),
                 log_aspect: float = 0.5, tries: int = 12) -> np.ndarray:
    """The most textured (Sobel magnitude) of ``tries`` random boxes: width a
    fraction ``width`` of the frame's, log(h / w) within +-``log_aspect``."""
    H, W = frame.shape[:2]
    g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mag = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))
    best, score = None, -1.0
    for _ in range(tries):
        w = rng.uniform(*width) * W
        h = w * np.exp(rng.uniform(-log_aspect, log_aspect))
        h = min(h, 0.6 * H)
        x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
        s = float(mag[int(y):int(y + h), int(x):int(x + w)].mean())
        if s > score:
            best, score = np.array([x, y, w, h]), s
    return best


def pseudo_label_sequence(pool: MediaPool, rng: np.random.Generator, factory, n_frames: int = 30,
                          size: Tuple[int, int] = (320, 240), min_iou: float = 0.7, tries: int = 6):
    """A real clip with peer-tracker pseudo-labels (forward-backward checked), or None."""
    W, H = size
    warmup = 15
    for _ in range(tries):
        clip = pool.clip(rng, n_frames, stride=int(rng.integers(1, 3)), warmup=warmup)
        if clip is None:
            return None
        path, raw = clip
        frames = [cv2.resize(f, (W, H), interpolation=cv2.INTER_AREA) for f in raw]
        if has_scene_cut(frames):
            continue
        box = _init_box_from_motion(frames, rng, warmup, 0.004 * W * H, 0.15 * W * H)
        frames = frames[warmup:]
        if box is None:
            box = textured_box(frames[0], rng)
        boxes = forward_backward_track(factory, frames, box, min_iou)
        if boxes is not None:
            spec = SequenceSpec(background=os.path.basename(path), video=True, pseudo_label=True)
            inside = (boxes[:, 2] > 2) & (boxes[:, 3] > 2)
            return frames, boxes, inside, spec
    return None


# ----------------------------------------------------------------------------- on disk
def write_sequence(folder: str, frames: List[np.ndarray], boxes: np.ndarray, visible: np.ndarray,
                   quality: int = 85, meta: Optional[dict] = None) -> int:
    """Write ``folder/img/NNNNNN.jpg``, ``groundtruth.txt`` (x,y,w,h, 0-based) and
    ``absence.label`` (1 = absent). Returns the bytes written."""
    img_dir = os.path.join(folder, "img")
    os.makedirs(img_dir, exist_ok=True)
    total = 0
    for i, f in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise IOError(f"cannot encode frame {i} of {folder}")
        with open(os.path.join(img_dir, f"{i:06d}.jpg"), "wb") as fh:
            fh.write(buf.tobytes())
        total += len(buf)
    with open(os.path.join(folder, "groundtruth.txt"), "w") as fh:
        for b in boxes:
            fh.write("NaN,NaN,NaN,NaN\n" if not np.all(np.isfinite(b)) else
                     f"{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f}\n")
    with open(os.path.join(folder, "absence.label"), "w") as fh:
        fh.write("".join("0\n" if v else "1\n" for v in visible))
    if meta is not None:
        with open(os.path.join(folder, "meta.json"), "w") as fh:
            json.dump(meta, fh)
    for name in ("groundtruth.txt", "absence.label", "meta.json"):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            total += os.path.getsize(p)
    return total


_WORKER_POOL: Optional[MediaPool] = None
_WORKER_ARGS: dict = {}


def _worker_init(media: MediaSet, args: dict):
    global _WORKER_POOL, _WORKER_ARGS
    cv2.setNumThreads(1)
    _WORKER_POOL = MediaPool(media)
    _WORKER_ARGS = args


def _make_one(k: int):
    a = _WORKER_ARGS
    rng = np.random.default_rng([a["seed"], k])
    result = None
    if rng.random() < a["pseudo_fraction"]:
        factory, _name = make_peer_tracker(a["peer_dir"] or None)
        result = pseudo_label_sequence(_WORKER_POOL, rng, factory, a["frames_per_seq"], a["size"])
    if result is None:
        result = generate_sequence(_WORKER_POOL, rng, a["frames_per_seq"], a["size"],
                                   video_prob=a["video_fraction"])
    frames, boxes, visible, spec = result
    folder = os.path.join(a["out_dir"], f"seq_{k:05d}")
    nbytes = write_sequence(folder, frames, boxes, visible, a["quality"], meta=asdict(spec))
    return k, nbytes, spec.pseudo_label


def prepare_data(out_dir: str, n_sequences: int = 300, frames_per_seq: int = 16, seed: int = 0,
                 size: Tuple[int, int] = (320, 240), quality: int = 60, video_fraction: float = 0.4,
                 pseudo_fraction: float = 0.0, peer_dir: Optional[str] = None,
                 media: Optional[MediaSet] = None, workers: int = 1, progress: bool = True) -> dict:
    """Write a compact synthetic training set in the OTB layout (readable by
    ``datasets.OTB(out_dir)``): ``out_dir/seq_NNNNN/{img/*.jpg, groundtruth.txt,
    absence.label, meta.json}`` and ``out_dir/dataset.json`` (box origin 0).

    Sequence k depends only on (seed, k), so the set is reproducible whatever
    ``workers`` is.

    Size (measured, 320x240 frames of these scenes): JPEG q85 16.1 KB/frame,
    q75 13.9, q65 9.7, q55 8.9; so 300 x 30 frames at q85 is ~150 MB, and the
    defaults (300 x 16 at q65) ~47 MB, small enough to carry to a GPU machine. ``pseudo_fraction``: share of sequences taken from real clips
    with forward-backward-checked peer pseudo-labels (needs the NanoTrack ONNX
    files or CSRT). Returns a summary (bytes, seconds, counts)."""
    t0 = time.time()
    media = media or find_media()
    if not media.images:
        raise RuntimeError("no media images found; run: python -m siam_tracker_ros.train.media --install\n"
                           + media.summary())
    peer_name = None
    if pseudo_fraction > 0:
        peer_dir = peer_dir or default_peer_dir()
        _factory, peer_name = make_peer_tracker(peer_dir)  # raises if there is no peer at all
        if not media.videos:
            pseudo_fraction = 0.0
    os.makedirs(out_dir, exist_ok=True)
    args = dict(out_dir=out_dir, seed=int(seed), frames_per_seq=int(frames_per_seq), size=tuple(size),
                quality=int(quality), video_fraction=float(video_fraction),
                pseudo_fraction=float(pseudo_fraction), peer_dir=peer_dir or "")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=n_sequences, desc="synthetic sequences", unit="seq")
    total_bytes, n_pseudo = 0, 0
    if workers > 1:
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(media, args)) as p:
            for _k, nb, ps in p.imap_unordered(_make_one, range(n_sequences), chunksize=2):
                total_bytes += nb
                n_pseudo += int(ps)
                if bar:
                    bar.update(1)
    else:
        _worker_init(media, args)
        for k in range(n_sequences):
            _k, nb, ps = _make_one(k)
            total_bytes += nb
            n_pseudo += int(ps)
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    summary = {
        "name": "synthetic", "layout": "otb", "box_origin": 0, "frame_range": int(frames_per_seq),
        "n_sequences": int(n_sequences), "frames_per_seq": int(frames_per_seq), "seed": int(seed),
        "size": list(size), "jpeg_quality": int(quality), "video_fraction": float(video_fraction),
        "pseudo_fraction": float(pseudo_fraction), "pseudo_labelled": n_pseudo, "peer": peer_name,
        "generator_version": GENERATOR_VERSION, "media": {k: len(v) for k, v in media.by_source.items()},
        "bytes": int(total_bytes), "seconds": round(time.time() - t0, 1),
        "note": "boxes x,y,w,h 0-based; absence.label 1 = target absent/hidden > 85 %",
    }
    with open(os.path.join(out_dir, "dataset.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    return summary


# ----------------------------------------------------------------------------- preview / CLI
def preview(data_dir: str, out_png: str, n_sequences: int = 6, frames: Seq[int] = (0, 5, 10, 15),
            seed: int = 0) -> str:
    """A grid PNG of generated frames with their boxes (green; red = marked absent)."""
    from .datasets import OTB
    ds = OTB(data_dir)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ds), size=min(n_sequences, len(ds)), replace=False)
    rows = []
    for si in picks:
        seq = ds[int(si)]
        cells = []
        for fi in frames:
            fi = min(fi, len(seq) - 1)
            img = seq.image(fi)
            b = seq.boxes[fi]
            if np.all(np.isfinite(b)):
                x, y, w, h = b
                cv2.rectangle(img, (int(round(x)), int(round(y))), (int(round(x + w)) - 1, int(round(y + h)) - 1),
                              (0, 255, 0) if seq.visible[fi] else (0, 0, 255), 1)
            cv2.putText(img, f"{seq.name} #{fi}", (3, 12), cv2.FONT_HERSHEY_PLAIN, 0.9, (255, 255, 255), 1)
            cells.append(img)
        h = max(c.shape[0] for c in cells)
        cells = [cv2.copyMakeBorder(c, 0, h - c.shape[0], 0, 2, cv2.BORDER_CONSTANT) for c in cells]
        rows.append(np.hstack(cells))
    w = max(r.shape[1] for r in rows)
    grid = np.vstack([cv2.copyMakeBorder(r, 0, 2, 0, w - r.shape[1], cv2.BORDER_CONSTANT) for r in rows])
    cv2.imwrite(out_png, grid)
    return out_png


def add_prepare_args(ap) -> None:
    """The options of ``prepare-data`` (shared by scripts/prepare_training_data.py and siam-train)."""
    ap.add_argument("out_dir", help="output folder (OTB layout, readable by datasets.OTB)")
    ap.add_argument("--sequences", type=int, default=300, help="number of sequences (default 300)")
    ap.add_argument("--frames", type=int, default=16, help="frames per sequence (default 16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="320x240", help="frame size WxH (default 320x240)")
    ap.add_argument("--quality", type=int, default=60, help="JPEG quality (default 60: ~50 MB for 300 x 16)")
    ap.add_argument("--video-fraction", type=float, default=0.4,
                    help="share of sequences on real clip backgrounds (default 0.4)")
    ap.add_argument("--pseudo-fraction", type=float, default=0.0,
                    help="share of sequences taken from real clips with forward-backward-checked "
                         "peer-tracker pseudo-labels (default 0; low yield, see docs)")
    ap.add_argument("--peer-dir", default=None, help="NanoTrack v2 ONNX folder (default: ../shared/weights/nanotrack_v2)")
    ap.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 1))))
    ap.add_argument("--install-media", action="store_true",
                    help="first fetch the registry media (pip download / apt-get)")
    ap.add_argument("--preview", default=None, help="also write a PNG grid of frames with boxes")


def run_prepare(args) -> dict:
    from .media import install_media
    media = install_media() if args.install_media else find_media()
    print(media.summary())
    w, h = (int(v) for v in str(args.size).lower().split("x"))
    summary = prepare_data(args.out_dir, args.sequences, args.frames, args.seed, (w, h), args.quality,
                           args.video_fraction, args.pseudo_fraction, args.peer_dir, media, args.workers)
    print(f"wrote {summary['n_sequences']} sequences x {summary['frames_per_seq']} frames to {args.out_dir}: "
          f"{summary['bytes'] / 1e6:.1f} MB in {summary['seconds']} s")
    if args.preview:
        print("preview:", preview(args.out_dir, args.preview))
    return summary


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Write a synthetic labelled training set from registry media.")
    add_prepare_args(ap)
    run_prepare(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
