"""numpy <-> sensor_msgs/Image, bit-exact, without cv_bridge.

(The PyPI `cv-bridge` is an old ROS 1 port and does not work with ROS 2.)

`image_msg_to_numpy` returns the pixels in the message's own encoding (a view
on the message buffer where possible); `image_msg_to_bgr` gives the HxWx3
uint8 BGR image the trackers take; `compressed_msg_to_bgr` does the same for
sensor_msgs/CompressedImage (jpeg / png, image_transport's `compressed` and
`compressedDepth` formats). 16-bit mono images (mono16, 16UC1: IR or depth
cameras) become 8 bit through `mono16_to_8bit` (see MONO16_MODES). `numpy_to_image_msg` builds a message; its
data is assigned as `bytes`, which the generated setter copies with one
memcpy (a numpy array there would be iterated element by element, and
ROS_PYTHON_CHECK_FIELDS=1 makes any assignment ~50x slower).

The message type is only needed to build messages: conversion *from* a message
accepts anything with the Image fields (rclpy messages, rosbags dataclasses).
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    "bgr8": (np.uint8, 3), "rgb8": (np.uint8, 3), "mono8": (np.uint8, 1),
    "bgra8": (np.uint8, 4), "rgba8": (np.uint8, 4),
    "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3), "8UC4": (np.uint8, 4),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}

# encodings the tracker can take, and how to get BGR from them
_TO_BGR = {
    "bgr8": None, "8UC3": None,
    "rgb8": cv2.COLOR_RGB2BGR,
    "mono8": cv2.COLOR_GRAY2BGR, "8UC1": cv2.COLOR_GRAY2BGR,
    "bgra8": cv2.COLOR_BGRA2BGR, "8UC4": cv2.COLOR_BGRA2BGR,
    "rgba8": cv2.COLOR_RGBA2BGR,
    "mono16": "mono16", "16UC1": "mono16",
}
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


def image_msg_to_numpy(msg) -> np.ndarray:
    """HxWxC (or HxW for one channel) array in the message's encoding.

    Validates the encoding, the sizes, `step >= width * pixel size` and
    `len(data) >= height * step`; raises ImageConversionError otherwise.
    Row padding (step larger than a row) is dropped.
    """
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[encoding]
    dtype = np.dtype(dtype)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image: {width}x{height}")
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


def image_msg_to_bgr(msg, mono16_mode: str = "percentile") -> np.ndarray:
    """HxWx3 uint8 BGR image (OpenCV's and the trackers' convention).

    Raises ImageConversionError for encodings a tracker cannot take (float,
    Bayer, YUV) and for malformed messages. mono16 / 16UC1 become 8 bit
    through `mono16_to_8bit(pixels, mono16_mode)`.
    """
    if msg.encoding not in _TO_BGR:
        raise ImageConversionError(
            f"unsupported encoding '{msg.encoding}' for tracking "
            f"(supported: {', '.join(TRACKABLE_ENCODINGS)})")
    pixels = image_msg_to_numpy(msg)
    code = _TO_BGR[msg.encoding]
    if code is None:
        return np.ascontiguousarray(pixels)
    if code == "mono16":
        return cv2.cvtColor(mono16_to_8bit(pixels, mono16_mode), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


COMPRESSED_DEPTH_HEADER = 12   # image_transport compressedDepth: format enum + 2 float params before the PNG


def compressed_msg_to_bgr(msg, mono16_mode: str = "percentile") -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png; image_transport `compressed` or
    `compressedDepth`) -> HxWx3 uint8 BGR. Raises ImageConversionError when the
    data cannot be decoded or the format is not an image format OpenCV reads."""
    fmt = str(msg.format or "").lower()
    try:   # rclpy: array.array, rosbags: numpy array, both without a copy
        data = np.frombuffer(msg.data, dtype=np.uint8)
    except TypeError:
        data = np.asarray(msg.data, dtype=np.uint8)
    if "compresseddepth" in fmt:
        if "rvl" in fmt:
            raise ImageConversionError(f"compressedDepth RVL is not supported (format '{msg.format}')")
        data = data[COMPRESSED_DEPTH_HEADER:]
    if data.size == 0:
        raise ImageConversionError(f"empty compressed image (format '{msg.format}')")
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageConversionError(
            f"cannot decode compressed image (format '{msg.format}', {data.size} bytes; jpeg and png are read)")
    if pixels.dtype == np.uint16:
        if pixels.ndim == 3:   # 16-bit colour png: keep the high byte
            pixels = (pixels >> 8).astype(np.uint8)
        else:
            pixels = mono16_to_8bit(pixels, mono16_mode)
    elif pixels.dtype != np.uint8:
        raise ImageConversionError(f"compressed image decodes to {pixels.dtype} (format '{msg.format}')")
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    if pixels.shape[2] == 3:
        return pixels
    raise ImageConversionError(f"compressed image has {pixels.shape[2]} channels (format '{msg.format}')")


def bgr_to_compressed_msg(image: np.ndarray, fmt: str = "jpeg", header=None, quality: int = 90):
    """An rclpy sensor_msgs/CompressedImage of a BGR (or mono / 16-bit mono png) image, in
    image_transport's `compressed` format naming ('bgr8; jpeg compressed bgr8')."""
    from sensor_msgs.msg import CompressedImage  # lazy: the core has no ROS
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}[fmt]
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ImageConversionError(f"cannot encode {image.shape} {image.dtype} as {fmt}")
    encoding = "bgr8" if image.ndim == 3 else ("mono16" if image.dtype == np.uint16 else "mono8")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"{encoding}; {'jpeg' if ext == '.jpg' else 'png'} compressed {encoding}"
    msg.data = buf.tobytes()
    return msg


def pack_image(array: np.ndarray, encoding: str):
    """(height, width, step, is_bigendian, data bytes) of a dense image in host byte order."""
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
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
