"""numpy <-> sensor_msgs/Image, bit-exact, without cv_bridge.

(The PyPI `cv-bridge` is an old ROS 1 port and does not work with ROS 2.)

`image_msg_to_numpy` returns the pixels in the message's own encoding (a view
on the message buffer where possible); `image_msg_to_bgr` gives the HxWx3
uint8 BGR image the trackers take, from every encoding cv_bridge converts to
bgr8 (8/16-bit colour and mono, the yuv422 family, Bayer) and from nv12 / nv21 /
nv24 (sensor_msgs/CompressedImage: ros/compressed_image.py). 16-bit
images (mono16, 16UC1: IR or depth cameras; 16-bit colour and Bayer) become 8
bit through `mono16_to_8bit` (see MONO16_MODES). `numpy_to_image_msg` builds a
message; its data is assigned as `bytes`, which the generated setter copies
with one memcpy (a numpy array there would be iterated element by element, and
ROS_PYTHON_CHECK_FIELDS=1 makes any assignment ~50x slower).

The message type is only needed to build messages: conversion *from* a message
accepts anything with the Image fields (rclpy messages, rosbags dataclasses).
Every failure, OpenCV's included, is an ImageConversionError whose text says why.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

from .logging_utils import quote_untrusted

# encoding -> (numpy dtype, channels) of the HxWxC array `image_msg_to_numpy` returns.
# The yuv422 family is one U or V byte and one Y byte per pixel (OpenCV's CV_8UC2, as
# cv_bridge reads it); a Bayer mosaic is one sample per pixel.
ENCODINGS = {
    "bgr8": (np.uint8, 3), "rgb8": (np.uint8, 3), "mono8": (np.uint8, 1),
    "bgra8": (np.uint8, 4), "rgba8": (np.uint8, 4),
    "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3), "8UC4": (np.uint8, 4),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "bgr16": (np.uint16, 3), "rgb16": (np.uint16, 3),
    "bgra16": (np.uint16, 4), "rgba16": (np.uint16, 4),
    "32FC1": (np.float32, 1),
    # yuv422 / yuv422_yuy2 are the deprecated sensor_msgs names of uyvy / yuyv
    "yuv422": (np.uint8, 2), "uyvy": (np.uint8, 2),
    "yuv422_yuy2": (np.uint8, 2), "yuyv": (np.uint8, 2),
    "bayer_rggb8": (np.uint8, 1), "bayer_bggr8": (np.uint8, 1),
    "bayer_gbrg8": (np.uint8, 1), "bayer_grbg8": (np.uint8, 1),
    "bayer_rggb16": (np.uint16, 1), "bayer_bggr16": (np.uint16, 1),
    "bayer_gbrg16": (np.uint16, 1), "bayer_grbg16": (np.uint16, 1),
}

# Semi-planar YUV: a full-resolution Y plane, then one plane of interleaved chroma pairs.
# `step` is the Y plane's row stride (sensor_msgs counts these encodings as one channel
# of 8 bits, the data as height * step * 1.5 for nv12 / nv21); the chroma rows have the
# same stride for nv12 / nv21 (half the rows) and twice it for nv24 (every row has a
# chroma pair per pixel). `image_msg_to_numpy` returns the planes stacked as rows of
# `width` bytes: (height * 3 / 2, width) for nv12 / nv21 (the array OpenCV's cvtColor
# takes) and (3 * height, width) for nv24.
# encoding -> (chroma rows per Y row as (numerator, denominator), chroma stride / step,
#              whether width and height must be even)
_PLANAR = {
    "nv12": ((1, 2), 1, True),
    "nv21": ((1, 2), 1, True),
    "nv24": ((1, 1), 2, False),
}
PLANAR_ENCODINGS = tuple(_PLANAR)

# ROS Bayer names give the colours of the top-left 2x2 block row by row; OpenCV names a
# pattern by the 2nd and 3rd pixel of its 2nd row, so each ROS pattern maps to the code
# one diagonal step away (the same mapping cv_bridge uses; test_image_conversion checks
# it against mosaics built from a known image).
_BAYER_CODES = {
    "rggb": cv2.COLOR_BayerBG2BGR, "bggr": cv2.COLOR_BayerRG2BGR,
    "gbrg": cv2.COLOR_BayerGR2BGR, "grbg": cv2.COLOR_BayerGB2BGR,
}

# encodings the tracker can take, and how to get BGR from them: None (already BGR), a
# cvtColor code, or the name of a conversion below
_TO_BGR = {
    "bgr8": None, "8UC3": None,
    "rgb8": cv2.COLOR_RGB2BGR,
    "mono8": cv2.COLOR_GRAY2BGR, "8UC1": cv2.COLOR_GRAY2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR, "8UC4": cv2.COLOR_BGRA2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
    "mono16": "mono16", "16UC1": "mono16",
    "bgr16": "color16", "rgb16": "color16", "bgra16": "color16", "rgba16": "color16",
    "yuv422": cv2.COLOR_YUV2BGR_UYVY, "uyvy": cv2.COLOR_YUV2BGR_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUYV, "yuyv": cv2.COLOR_YUV2BGR_YUYV,
    **{f"bayer_{pattern}{bits}": "bayer" for pattern in _BAYER_CODES for bits in (8, 16)},
    "nv12": cv2.COLOR_YUV2BGR_NV12, "nv21": cv2.COLOR_YUV2BGR_NV21, "nv24": "nv24",
}
# what a 16-bit colour image is before the 8-bit step (after it, the 8-bit code applies)
_COLOR16_AS_8BIT = {"bgr16": "bgr8", "rgb16": "rgb8", "bgra16": "bgra8", "rgba16": "rgba8"}
# two pixels share one U/V pair: OpenCV (and the format) need an even width
_YUV422 = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
TRACKABLE_ENCODINGS = tuple(_TO_BGR)

# How 16-bit mono pixels become 8 bit:
#   percentile: per frame, the 1st..99th percentile of the pixel values is stretched to 0..255
#               (what a camera's automatic gain does; works for 10/12/16-bit sensors and for
#               depth in mm, whatever range the values use). Zeros (depth "no reading") are left
#               out of the percentiles when the frame has other values.
#   shift:      the high byte (value >> 8): fixed mapping, right for full-range 16-bit data only.
MONO16_MODES = ("percentile", "shift")

_HOST_BIG_ENDIAN = sys.byteorder == "big"


class ImageConversionError(ValueError):
    """The message cannot be read as an image; the text says why."""


def _unsupported(encoding) -> ImageConversionError:
    return ImageConversionError(
        f"unsupported encoding {quote_untrusted(encoding)} "
        f"(supported: {', '.join((*ENCODINGS, *PLANAR_ENCODINGS))})")


def _message_sizes(msg):
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image: {width}x{height}")
    return height, width, step


def _planar_to_numpy(msg, height: int, width: int, step: int) -> np.ndarray:
    """The planes of an nv12 / nv21 / nv24 message stacked as rows of `width` bytes."""
    encoding = msg.encoding
    (num, den), chroma_stride_factor, even = _PLANAR[encoding]
    if even and (width % 2 or height % 2):
        raise ImageConversionError(
            f"{encoding} needs an even width and height (one chroma pair per 2x2 pixels), "
            f"got {width}x{height}")
    if step < width:
        raise ImageConversionError(f"step {step} is smaller than the width {width} ({encoding})")
    chroma_rows = height * num // den
    chroma_stride = step * chroma_stride_factor
    needed = height * step + chroma_rows * chroma_stride
    flat = np.frombuffer(msg.data, dtype=np.uint8)
    if flat.size < needed:
        raise ImageConversionError(
            f"data has {flat.size} bytes, fewer than the {needed} of a {width}x{height} {encoding} "
            f"image with step {step} ({height} Y rows of {step} bytes and {chroma_rows} chroma "
            f"rows of {chroma_stride})")
    luma = flat[:height * step].reshape(height, step)[:, :width]
    chroma = flat[height * step:needed].reshape(chroma_rows, chroma_stride)
    chroma = chroma[:, :width * chroma_stride_factor].reshape(-1, width)
    if step == width:      # dense: the planes are already one array
        return flat[:needed].reshape(-1, width)
    return np.concatenate([luma, chroma], axis=0)


def image_msg_to_numpy(msg) -> np.ndarray:
    """HxWxC (or HxW for one channel) array in the message's encoding.

    Validates the encoding, the sizes, `step >= width * pixel size` and
    `len(data) >= height * step`; raises ImageConversionError otherwise.
    Row padding (step larger than a row) is dropped. The semi-planar encodings
    (nv12, nv21, nv24) come back as their planes stacked as rows of `width`
    bytes (see _PLANAR).
    """
    encoding = msg.encoding
    if encoding in _PLANAR:
        return _planar_to_numpy(msg, *_message_sizes(msg))
    if encoding not in ENCODINGS:
        raise _unsupported(encoding)
    dtype, channels = ENCODINGS[encoding]
    dtype = np.dtype(dtype)
    height, width, step = _message_sizes(msg)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than width * pixel size = {width} * "
            f"{channels * dtype.itemsize} = {row_bytes} ({encoding})")
    flat = np.frombuffer(msg.data, dtype=np.uint8)
    if flat.size < height * step:
        raise ImageConversionError(
            f"data has {flat.size} bytes, fewer than height * step = {height} * {step} = "
            f"{height * step} ({width}x{height} {encoding})")
    rows = flat[:height * step].reshape(height, step)[:, :row_bytes]
    if dtype.itemsize == 1:
        rows = rows.view(dtype)
    else:  # the message's byte order -> host order (no copy when they agree)
        wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
        rows = np.ascontiguousarray(rows).view(wire).astype(dtype, copy=False)
    if channels == 1:
        return rows.reshape(height, width)
    return rows.reshape(height, width, channels)


def mono16_to_8bit(pixels: np.ndarray, mode: str = "percentile") -> np.ndarray:
    """HxW uint16 -> HxW uint8 (MONO16_MODES says how)."""
    pixels = np.asarray(pixels)
    if mode == "shift":
        return (pixels >> 8).astype(np.uint8)
    if mode != "percentile":
        raise ValueError(f"mono16 mode must be one of {', '.join(MONO16_MODES)}, got '{mode}'")
    sample = pixels[::4, ::4].ravel()          # percentiles of every 16th pixel: ~0.3 ms at 640x480
    nonzero = sample[sample > 0]
    if nonzero.size:
        sample = nonzero
    lo, hi = np.percentile(sample, (1.0, 99.0))
    if hi <= lo:
        hi = lo + 1.0
    scaled = (pixels.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(scaled, 0.0, 255.0).astype(np.uint8)


def nv24_to_bgr(planes: np.ndarray) -> np.ndarray:
    """(3 * H, W) stacked nv24 planes -> HxWx3 BGR.

    OpenCV has no NV24 code. Each pixel is written as a UYVY pair that repeats its
    own Y (U Y V Y), so OpenCV's 4:2:2 conversion sees one chroma pair per pixel and
    applies the same BT.601 video-range arithmetic it uses for nv12; every other
    output column is the image.
    """
    height = planes.shape[0] // 3
    luma = planes[:height]
    chroma = planes[height:].reshape(height, -1, 2)
    pairs = np.empty((height, luma.shape[1], 4), np.uint8)
    pairs[..., 0] = chroma[..., 0]
    pairs[..., 1] = luma
    pairs[..., 2] = chroma[..., 1]
    pairs[..., 3] = luma
    return np.ascontiguousarray(
        cv2.cvtColor(pairs.reshape(height, -1, 2), cv2.COLOR_YUV2BGR_UYVY)[:, ::2])


def image_msg_to_bgr(msg, mono16_mode: str = "percentile") -> np.ndarray:
    """HxWx3 uint8 BGR image (OpenCV's and the trackers' convention).

    Takes what cv_bridge converts to bgr8 (and nv12 / nv21 / nv24 besides): 8-bit
    colour and mono, the yuv422 family, Bayer mosaics (demosaiced by OpenCV's
    bilinear method, as cv_bridge does) and semi-planar YUV. 16-bit images (mono16,
    16UC1, 16-bit colour, 16-bit Bayer after demosaicing at full depth) become 8 bit
    through `mono16_to_8bit(..., mono16_mode)`, so a 10- or 12-bit sensor is not
    left at a sixteenth of the range. Raises ImageConversionError for the rest
    (float, other OpenCV types) and for malformed messages, OpenCV's own errors
    included.
    """
    encoding = msg.encoding
    if encoding not in _TO_BGR:
        raise ImageConversionError(
            f"unsupported encoding {quote_untrusted(encoding)} for tracking "
            f"(supported: {', '.join(TRACKABLE_ENCODINGS)})")
    pixels = image_msg_to_numpy(msg)
    code = _TO_BGR[encoding]
    if encoding in _YUV422 and pixels.shape[1] % 2:
        raise ImageConversionError(
            f"{encoding} needs an even width (two pixels share one U/V pair), got {pixels.shape[1]}")
    try:
        if code is None:
            return np.ascontiguousarray(pixels)
        if code == "mono16":
            return cv2.cvtColor(mono16_to_8bit(pixels, mono16_mode), cv2.COLOR_GRAY2BGR)
        if code == "color16":
            code = _TO_BGR[_COLOR16_AS_8BIT[encoding]]
            pixels = mono16_to_8bit(pixels, mono16_mode)
            return pixels if code is None else cv2.cvtColor(pixels, code)
        if code == "bayer":
            bgr = cv2.cvtColor(np.ascontiguousarray(pixels), _BAYER_CODES[encoding[6:10]])
            return mono16_to_8bit(bgr, mono16_mode) if bgr.dtype == np.uint16 else bgr
        if code == "nv24":
            return nv24_to_bgr(pixels)
        return cv2.cvtColor(np.ascontiguousarray(pixels), code)
    except cv2.error as exc:
        raise ImageConversionError(
            f"OpenCV cannot convert the {pixels.shape[1]}x{msg.height} {encoding} image: "
            f"{cv2_error_reason(exc)}") from None


def cv2_error_reason(exc: Exception) -> str:
    """The last line of a cv2.error (the assertion or message, without the source path)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def pack_image(array: np.ndarray, encoding: str):
    """(height, width, step, is_bigendian, data bytes) of a dense image in host byte order.

    For nv12 / nv21 / nv24, `array` is the stacked planes as `image_msg_to_numpy`
    returns them (uint8, (H * 3 / 2, W) or (3 * H, W)); `step` is then the width.
    """
    if encoding in _PLANAR:
        (num, den), chroma_stride_factor, even = _PLANAR[encoding]
        array = np.asarray(array)
        rows_per_y_row = 1 + num * chroma_stride_factor / den
        height = int(round(array.shape[0] / rows_per_y_row)) if array.ndim == 2 else 0
        if (array.dtype != np.uint8 or array.ndim != 2 or height <= 0
                or height * rows_per_y_row != array.shape[0] or (even and (height % 2 or array.shape[1] % 2))):
            raise ImageConversionError(
                f"{encoding} needs the stacked planes as a 2-D uint8 array of "
                f"{rows_per_y_row:g} * height rows{' (even height and width)' if even else ''}, got shape "
                f"{array.shape} dtype {array.dtype}")
        width = int(array.shape[1])
        return height, width, width, int(_HOST_BIG_ENDIAN), np.ascontiguousarray(array).tobytes()
    if encoding not in ENCODINGS:
        raise _unsupported(encoding)
    dtype, channels = ENCODINGS[encoding]
    array = np.asarray(array)
    shape_channels = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else -1)
    if array.dtype != np.dtype(dtype) or shape_channels != channels:
        raise ImageConversionError(
            f"{encoding} needs {channels} channel(s) of {np.dtype(dtype).name}, got shape "
            f"{array.shape} dtype {array.dtype}")
    height, width = int(array.shape[0]), int(array.shape[1])
    step = width * channels * array.dtype.itemsize
    return height, width, step, int(_HOST_BIG_ENDIAN), np.ascontiguousarray(array).tobytes()


def numpy_to_image_msg(array: np.ndarray, encoding: str = "bgr8", header=None):
    """An rclpy sensor_msgs/Image holding `array` (dense, host byte order).

    The array's dtype and channel count must match the encoding.
    """
    from sensor_msgs.msg import Image  # lazy: the core has no ROS
    msg = Image()
    if header is not None:
        msg.header = header
    msg.encoding = encoding
    msg.height, msg.width, msg.step, msg.is_bigendian, msg.data = pack_image(array, encoding)
    return msg
