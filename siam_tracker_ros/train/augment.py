"""Augmentations for Siamese training crops.

Every augmentation takes ``(image, box, rng, ...)`` and returns ``(image, box)``:
the transformed HxWx3 uint8 BGR image AND the (x, y, w, h) box transformed
consistently (0-based, pixel i covers [i, i + 1)). Photometric ones return the
box unchanged. All randomness comes from the ``numpy.random.Generator`` passed in,
so a seed reproduces a sample exactly.

Geometric:
- :func:`crop_jitter` - the search/template crop itself, with a random shift
  (in output px) and a random (optionally anisotropic) scale, one affine warp
  from the full image (cheap: cost scales with the output size);
- :func:`shift_scale` - the same jitter applied to an already cropped image;
- :func:`rotate90` - rotation by 0/90/180/270 degrees, box relabelled;
- :func:`flip` - horizontal flip.

Photometric (box unchanged):
- :func:`gaussian_blur` (kernels 5-24 px, Ta-ASiam), :func:`motion_blur`,
- :func:`color_jitter` (brightness, contrast, saturation, PCA lighting noise),
- :func:`grayscale`,
- :func:`occlude` - a patch covering at most ``max_fraction`` (70 %) of the object.

Pipelines: :func:`plain_search`, :func:`position_aware`, :func:`appearance_aware`
(Ta-ASiam's two sample kinds) compose these with the defaults of the papers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from ..core.geometry import context_size, crop_and_resize

Box = np.ndarray

# PCA of ImageNet RGB pixels (AlexNet "fancy PCA"), reordered for BGR images.
_EIGVAL = np.array([0.2175, 0.0188, 0.0045], dtype=np.float32) * 255.0
_EIGVEC_RGB = np.array([[-0.5675, 0.7192, 0.4009],
                        [-0.5808, -0.0045, -0.8140],
                        [-0.5836, -0.6948, 0.4203]], dtype=np.float32)
_EIGVEC_BGR = _EIGVEC_RGB[::-1]


def _box(box) -> np.ndarray:
    return np.asarray(box, dtype=np.float64).reshape(4).copy()


def _uniform(rng: np.random.Generator, amount: float) -> float:
    return float(rng.uniform(-amount, amount)) if amount > 0 else 0.0


# ----------------------------------------------------------------------------- geometric
def warp_crop(image: np.ndarray, center: Sequence[float], region_wh: Sequence[float],
              out_size: int, pad_value=None) -> np.ndarray:
    """Crop a (possibly non-square) region of ``region_wh`` px centred on ``center``
    and resize it to ``out_size`` x ``out_size`` in one affine warp.

    Same pixel convention as :func:`siam_tracker_ros.core.geometry.crop_and_resize`
    (continuous coordinates: ``u = out/region * (x - cx) + out/2``); for a square
    region it is exactly that function.
    """
    rw, rh = float(region_wh[0]), float(region_wh[1])
    if abs(rw - rh) < 1e-9:
        return crop_and_resize(image, center, rw, out_size, pad_value)
    if pad_value is None:
        pad_value = cv2.mean(image)[:3]
    sx, sy = out_size / rw, out_size / rh
    half = out_size / 2.0
    cx, cy = float(center[0]), float(center[1])
    # index coords: u_i + 0.5 = sx * (x_i + 0.5 - cx) + half
    matrix = np.array([[sx, 0.0, half - sx * cx + 0.5 * sx - 0.5],
                       [0.0, sy, half - sy * cy + 0.5 * sy - 0.5]])
    return cv2.warpAffine(image, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT,
                          borderValue=tuple(float(v) for v in pad_value))


def box_in_crop(box, center: Sequence[float], region_wh: Sequence[float], out_size: int) -> Box:
    """Map an image-space xywh box into the crop made by :func:`warp_crop`."""
    b = _box(box)
    sx, sy = out_size / float(region_wh[0]), out_size / float(region_wh[1])
    half = out_size / 2.0
    return np.array([sx * (b[0] - center[0]) + half, sy * (b[1] - center[1]) + half,
                     sx * b[2], sy * b[3]])


def crop_jitter(image: np.ndarray, box, out_size: int, region_size: float, rng: np.random.Generator,
                max_shift: float = 0.0, max_scale: float = 0.0, anisotropic: bool = False,
                pad_value=None) -> Tuple[np.ndarray, Box]:
    """Crop ``region_size`` px around the box centre to ``out_size`` px, with
    a random scale (region divided by ``1 + U(-max_scale, max_scale)``, per axis if
    ``anisotropic``) and a random shift of the target of up to ``max_shift``
    output pixels in x and y. Returns the crop and the target box in crop px."""
    b = _box(box)
    s = 1.0 + _uniform(rng, max_scale)
    sy = 1.0 + _uniform(rng, max_scale) if anisotropic else s
    rw, rh = region_size / s, region_size / sy
    dx, dy = _uniform(rng, max_shift), _uniform(rng, max_shift)
    # Moving the crop centre by -d * region/out shifts the target by +d output px.
    cx = b[0] + b[2] / 2.0 - dx * rw / out_size
    cy = b[1] + b[3] / 2.0 - dy * rh / out_size
    crop = warp_crop(image, (cx, cy), (rw, rh), out_size, pad_value)
    return crop, box_in_crop(b, (cx, cy), (rw, rh), out_size)


def shift_scale(image: np.ndarray, box, rng: np.random.Generator, max_shift: float = 64.0,
                max_scale: float = 0.18, anisotropic: bool = False, pad_value=None) -> Tuple[np.ndarray, Box]:
    """Zoom by ``1 + U(-max_scale, max_scale)`` about the box centre (per axis if
    ``anisotropic``) and shift the image by up to ``max_shift`` px in x and y; the
    output has the input's size. Uncovered parts are filled with the mean colour."""
    h, w = image.shape[:2]
    b = _box(box)
    sx = 1.0 + _uniform(rng, max_scale)
    sy = 1.0 + _uniform(rng, max_scale) if anisotropic else sx
    dx, dy = _uniform(rng, max_shift), _uniform(rng, max_shift)
    cx, cy = b[0] + b[2] / 2.0, b[1] + b[3] / 2.0
    # continuous coords: u = sx * (x - cx) + cx + dx
    tx, ty = cx - sx * cx + dx, cy - sy * cy + dy
    matrix = np.array([[sx, 0.0, tx + 0.5 * sx - 0.5], [0.0, sy, ty + 0.5 * sy - 0.5]])
    if pad_value is None:
        pad_value = cv2.mean(image)[:3]
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=tuple(float(v) for v in pad_value))
    return out, np.array([sx * b[0] + tx, sy * b[1] + ty, sx * b[2], sy * b[3]])


def rotate90(image: np.ndarray, box, k: int) -> Tuple[np.ndarray, Box]:
    """Rotate by ``k`` x 90 degrees counter-clockwise (np.rot90); the box is relabelled."""
    k = int(k) % 4
    h, w = image.shape[:2]
    x, y, bw, bh = _box(box)
    out = np.ascontiguousarray(np.rot90(image, k))
    if k == 0:
        nb = [x, y, bw, bh]
    elif k == 1:   # (x, y) -> (y, W - x)
        nb = [y, w - (x + bw), bh, bw]
    elif k == 2:   # (x, y) -> (W - x, H - y)
        nb = [w - (x + bw), h - (y + bh), bw, bh]
    else:          # (x, y) -> (H - y, x)
        nb = [h - (y + bh), x, bh, bw]
    return out, np.asarray(nb, dtype=np.float64)


def random_rotate90(image, box, rng: np.random.Generator, prob: float = 1.0):
    """Rotation by 0/90/180/270 degrees, uniformly, with probability ``prob`` (else 0)."""
    k = int(rng.integers(0, 4)) if rng.random() < prob else 0
    return rotate90(image, box, k)


def flip(image: np.ndarray, box) -> Tuple[np.ndarray, Box]:
    """Horizontal flip."""
    w = image.shape[1]
    b = _box(box)
    return np.ascontiguousarray(image[:, ::-1]), np.array([w - b[0] - b[2], b[1], b[2], b[3]])


# ----------------------------------------------------------------------------- photometric
def gaussian_blur(image: np.ndarray, box, rng: np.random.Generator, min_kernel: int = 5,
                  max_kernel: int = 24) -> Tuple[np.ndarray, Box]:
    """Gaussian blur with a random odd kernel in [min_kernel, max_kernel] px
    (sigma from OpenCV's rule for the kernel size)."""
    lo = min_kernel | 1
    hi = max_kernel if max_kernel % 2 else max_kernel - 1
    k = int(rng.choice(np.arange(lo, hi + 1, 2)))
    return cv2.GaussianBlur(image, (k, k), 0), _box(box)


def motion_blur(image: np.ndarray, box, rng: np.random.Generator, max_length: int = 15,
                angle: Optional[float] = None, length: Optional[int] = None) -> Tuple[np.ndarray, Box]:
    """Linear motion blur of a random length (3..max_length px) and direction."""
    n = int(length if length is not None else rng.integers(3, max(4, max_length + 1)))
    if n < 2:
        return image.copy(), _box(box)
    a = float(rng.uniform(0, 180) if angle is None else angle)
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((n - 1) / 2.0, (n - 1) / 2.0), a, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (n, n))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(image, -1, kernel), _box(box)


def color_jitter(image: np.ndarray, box, rng: np.random.Generator, brightness: float = 0.3,
                 contrast: float = 0.3, saturation: float = 0.3, pca_std: float = 0.1) -> Tuple[np.ndarray, Box]:
    """Random brightness (x (1 +- b)), contrast (about the mean grey level),
    saturation (towards/away from each pixel's grey) and AlexNet PCA lighting
    noise, applied to the whole image. All four are affine in colour, so they
    are composed into one 3x4 matrix and applied in one ``cv2.transform``."""
    b = 1.0 + _uniform(rng, brightness)
    c = 1.0 + _uniform(rng, contrast)
    s = 1.0 + _uniform(rng, saturation)
    w = np.array([0.114, 0.587, 0.299])  # BGR grey weights
    sat = s * np.eye(3) + (1.0 - s) * np.outer(np.ones(3), w)
    mean_grey = b * float(np.dot(cv2.mean(image)[:3], w))
    offset = np.full(3, (1.0 - c) * mean_grey)  # sat keeps grey vectors unchanged
    if pca_std > 0:
        alpha = rng.normal(0.0, pca_std, 3)
        offset = offset + _EIGVEC_BGR.astype(np.float64) @ (alpha * _EIGVAL)
    m = np.hstack([sat * (c * b), offset[:, None]])
    return cv2.transform(image, m), _box(box)


def brightness(image: np.ndarray, box, factor: float = 1.0, offset: float = 0.0) -> Tuple[np.ndarray, Box]:
    """Deterministic illumination change: ``image * factor + offset``."""
    img = image.astype(np.float32) * factor + offset
    return np.clip(img, 0, 255).astype(np.uint8), _box(box)


def grayscale(image: np.ndarray, box) -> Tuple[np.ndarray, Box]:
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR), _box(box)


def occlude(image: np.ndarray, box, rng: np.random.Generator, max_fraction: float = 0.7,
            min_fraction: float = 0.1, fill: str = "flat") -> Tuple[np.ndarray, Box]:
    """Occlude part of the object, covering at most ``max_fraction`` of the box
    area. ``fill="flat"``: Ta-ASiam's region dropout (the region set to one random
    colour); ``"mixed"``: also a patch copied from elsewhere in the image (away
    from the object where possible) or a noisy colour. Box unchanged."""
    if fill not in ("flat", "mixed"):
        raise ValueError(f"fill must be 'flat' or 'mixed', got {fill!r}")
    out = image.copy()
    h, w = image.shape[:2]
    b = _box(box)
    x0, y0 = max(0, int(math.floor(b[0]))), max(0, int(math.floor(b[1])))
    x1, y1 = min(w, int(math.ceil(b[0] + b[2]))), min(h, int(math.ceil(b[1] + b[3])))
    bw, bh = x1 - x0, y1 - y0
    if bw < 2 or bh < 2:
        return out, b
    # Coverage measured against the pixel-rounded box (which is >= the exact box).
    frac = float(rng.uniform(min_fraction, max_fraction))
    aspect = float(np.exp(rng.uniform(-0.7, 0.7)))
    area = frac * bw * bh
    ow = int(min(bw, max(1, math.floor(math.sqrt(area * aspect)))))
    oh = int(min(bh, max(1, math.floor(area / max(ow, 1)))))
    # Occluder anywhere overlapping the box: its centre inside the box.
    ocx = int(rng.integers(x0, x1))
    ocy = int(rng.integers(y0, y1))
    ox0, oy0 = max(0, ocx - ow // 2), max(0, ocy - oh // 2)
    ox1, oy1 = min(w, ox0 + ow), min(h, oy0 + oh)
    ow, oh = ox1 - ox0, oy1 - oy0
    if ow < 1 or oh < 1:
        return out, b
    kind = rng.random() if fill == "mixed" else 1.0
    patch = None
    if kind < 0.5 and w > ow and h > oh:
        # a patch from the image that does not overlap the object
        for _ in range(10):
            px = int(rng.integers(0, w - ow + 1))
            py = int(rng.integers(0, h - oh + 1))
            if px + ow <= x0 or px >= x1 or py + oh <= y0 or py >= y1:
                patch = image[py:py + oh, px:px + ow]
                break
    if patch is None:
        colour = rng.integers(0, 256, 3)
        if kind < 0.75:
            noise = rng.normal(0, float(rng.uniform(5, 30)), (oh, ow, 3))
            patch = np.clip(colour[None, None] + noise, 0, 255).astype(np.uint8)
        else:
            patch = np.broadcast_to(colour.astype(np.uint8), (oh, ow, 3))
    out[oy0:oy1, ox0:ox1] = patch
    return out, b


# ----------------------------------------------------------------------------- pipelines
@dataclass
class CropConfig:
    """How one crop is made and augmented (probabilities are per sample)."""
    out_size: int = 255
    max_shift: float = 64.0
    max_scale: float = 0.18
    anisotropic: bool = False
    rotate_prob: float = 0.0
    flip_prob: float = 0.0
    blur_prob: float = 0.0
    blur_kernel: Tuple[int, int] = (5, 24)
    motion_blur_prob: float = 0.0
    color_prob: float = 1.0
    gray_prob: float = 0.0
    occlusion_prob: float = 0.0
    occlusion_max: float = 0.7
    occlusion_fill: str = "flat"


TEMPLATE = CropConfig(out_size=127, max_shift=4.0, max_scale=0.05)
PLAIN_SEARCH = CropConfig(out_size=255, max_shift=64.0, max_scale=0.18, blur_prob=0.2)
POSITION_AWARE = CropConfig(out_size=255, max_shift=64.0, max_scale=0.30, anisotropic=True,
                            rotate_prob=1.0, color_prob=0.0)
APPEARANCE_AWARE = CropConfig(out_size=255, max_shift=64.0, max_scale=0.18, blur_prob=0.5,
                              color_prob=1.0, occlusion_prob=0.5, occlusion_max=0.7)


def make_crop(image: np.ndarray, box, cfg: CropConfig, rng: np.random.Generator,
              region_size: Optional[float] = None, exemplar_size: int = 127,
              context: float = 0.5) -> Tuple[np.ndarray, Box]:
    """Crop around ``box`` (context ``context``) to ``cfg.out_size`` and augment.

    ``region_size`` defaults to the SiamFC rule: ``context_size(w, h) * out/exemplar``
    so the target has the same scale in template and search crops."""
    b = _box(box)
    if region_size is None:
        region_size = context_size(b[2], b[3], context) * cfg.out_size / exemplar_size
    img, b = crop_jitter(image, b, cfg.out_size, region_size, rng, cfg.max_shift, cfg.max_scale,
                         cfg.anisotropic)
    if cfg.rotate_prob > 0:
        img, b = random_rotate90(img, b, rng, cfg.rotate_prob)
    if cfg.flip_prob > 0 and rng.random() < cfg.flip_prob:
        img, b = flip(img, b)
    if cfg.occlusion_prob > 0 and rng.random() < cfg.occlusion_prob:
        img, b = occlude(img, b, rng, cfg.occlusion_max, fill=cfg.occlusion_fill)
    if cfg.gray_prob > 0 and rng.random() < cfg.gray_prob:
        img, b = grayscale(img, b)
    if cfg.color_prob > 0 and rng.random() < cfg.color_prob:
        img, b = color_jitter(img, b, rng)
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        img, b = gaussian_blur(img, b, rng, *cfg.blur_kernel)
    if cfg.motion_blur_prob > 0 and rng.random() < cfg.motion_blur_prob:
        img, b = motion_blur(img, b, rng)
    return img, b


def plain_search(image, box, rng, **kw):
    """SiamRPN++-style search crop: shift 64 px, scale 18 %, blur 20 %, colour."""
    return make_crop(image, box, PLAIN_SEARCH, rng, **kw)


def position_aware(image, box, rng, **kw):
    """Ta-ASiam position-aware sample: shift 64 px, rotation 0/90/180/270,
    anisotropic scale up to 30 %."""
    return make_crop(image, box, POSITION_AWARE, rng, **kw)


def appearance_aware(image, box, rng, **kw):
    """Ta-ASiam appearance-aware sample: Gaussian blur 5-24 px, colour /
    brightness, occlusion up to 70 % of the object."""
    return make_crop(image, box, APPEARANCE_AWARE, rng, **kw)
