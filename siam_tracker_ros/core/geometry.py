"""Box conversions, IoU and padded crops.

Box convention everywhere in the core: float (x, y, w, h), 0-based pixel
coordinates of the top-left corner plus size. Arrays of boxes have shape (..., 4).
Images are HxWx3 uint8 BGR (OpenCV's convention).
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np


def as_boxes(boxes) -> np.ndarray:
    """Return `boxes` as a float64 array of shape (..., 4)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.shape[-1] != 4:
        raise ValueError(f"boxes must have 4 values in the last axis, got shape {arr.shape}")
    return arr


def xywh_to_xyxy(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_xywh(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def xywh_to_cxcywh(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[..., :2] + b[..., 2:] / 2.0, b[..., 2:]], axis=-1)


def cxcywh_to_xywh(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[..., :2] - b[..., 2:] / 2.0, b[..., 2:]], axis=-1)


def iou(boxes_a, boxes_b) -> np.ndarray:
    """Element-wise IoU of xywh boxes (broadcasting). Zero-area boxes give 0."""
    a = xywh_to_xyxy(boxes_a)
    b = xywh_to_xyxy(boxes_b)
    ix = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iy = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(as_boxes(boxes_a)[..., 2], 0, None) * np.clip(as_boxes(boxes_a)[..., 3], 0, None)
    area_b = np.clip(as_boxes(boxes_b)[..., 2], 0, None) * np.clip(as_boxes(boxes_b)[..., 3], 0, None)
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def center_distance(boxes_a, boxes_b) -> np.ndarray:
    """Euclidean distance between the centres of xywh boxes (broadcasting)."""
    ca = xywh_to_cxcywh(boxes_a)[..., :2]
    cb = xywh_to_cxcywh(boxes_b)[..., :2]
    return np.linalg.norm(ca - cb, axis=-1)


def clip_box(box, image_width: int, image_height: int, min_size: float = 1.0) -> np.ndarray:
    """Clip an xywh box to the image; keeps at least `min_size` px of width/height."""
    x0, y0, x1, y1 = xywh_to_xyxy(box)
    x0 = min(max(x0, 0.0), image_width - min_size)
    y0 = min(max(y0, 0.0), image_height - min_size)
    x1 = min(max(x1, x0 + min_size), float(image_width))
    y1 = min(max(y1, y0 + min_size), float(image_height))
    return np.array([x0, y0, x1 - x0, y1 - y0])


def validate_box(box, image_width: int, image_height: int) -> np.ndarray:
    """Check an initial box: finite, positive size, overlapping the image.

    Raises ValueError with a message a user can act on; returns the box as floats.
    """
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.size != 4 or not np.all(np.isfinite(b)):
        raise ValueError(f"box must be 4 finite numbers (x, y, w, h), got {box!r}")
    x, y, w, h = b
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be positive, got w={w:g} h={h:g}")
    if x >= image_width or y >= image_height or x + w <= 0 or y + h <= 0:
        raise ValueError(
            f"box ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {image_width}x{image_height} image")
    return b


def is_usable_box(box) -> bool:
    """A result box someone may steer on: 4 finite numbers with a positive width and height."""
    if box is None:
        return False
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    return b.size == 4 and bool(np.all(np.isfinite(b))) and b[2] > 0 and b[3] > 0


def validate_image(image) -> np.ndarray:
    """Check that `image` is an HxWx3 uint8 array (BGR); raise ValueError otherwise."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8 BGR, got shape {image.shape} dtype {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small: {image.shape[1]}x{image.shape[0]}")
    return image


def context_size(width: float, height: float, context_amount: float = 0.5) -> float:
    """Side of the square exemplar region: sqrt((w + p)(h + p)), p = context * (w + h).

    This is the SiamFC / SiamRPN convention: the region that is resized to the
    exemplar size (127 px) around the target.
    """
    pad = context_amount * (width + height)
    return math.sqrt((width + pad) * (height + pad))


def crop_and_resize(image: np.ndarray, center: Sequence[float], region_size: float,
                    out_size: int, pad_value=None) -> np.ndarray:
    """Square crop of side `region_size` px centred on `center`, resized to out_size.

    Parts outside the image are filled with `pad_value` (default: the mean colour
    per channel, as the Siamese trackers are trained). One affine warp does crop,
    pad and resize together, so there is no intermediate padded copy.
    """
    if region_size <= 0:
        raise ValueError(f"region_size must be positive, got {region_size}")
    if pad_value is None:
        pad_value = cv2.mean(image)[:3]
    scale = out_size / region_size
    cx, cy = float(center[0]), float(center[1])
    # Pixel centres: image pixel i covers [i, i+1), so its centre is i + 0.5.
    half = out_size / 2.0
    matrix = np.array([[scale, 0.0, half - scale * cx - 0.5],
                       [0.0, scale, half - scale * cy - 0.5]])
    # The shift uses pixel centres on both sides: u + 0.5 = scale * (x + 0.5 - cx) + half.
    matrix[0, 2] += 0.5 * scale
    matrix[1, 2] += 0.5 * scale
    return cv2.warpAffine(image, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in pad_value))


def crop_region(center: Sequence[float], region_size: float) -> np.ndarray:
    """The xywh region of the image that `crop_and_resize` covers."""
    return np.array([center[0] - region_size / 2.0, center[1] - region_size / 2.0,
                     region_size, region_size])
