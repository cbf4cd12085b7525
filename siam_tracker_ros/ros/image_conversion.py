"""numpy <-> sensor_msgs/Image, bit-exact, without cv_bridge.

(The PyPI `cv-bridge` is an old ROS 1 port and does not work with ROS 2.)

`image_msg_to_numpy` returns the pixels in the message's own encoding (a view
on the message buffer where possible); `image_msg_to_bgr` gives the HxWx3
uint8 BGR image the trackers take. `numpy_to_image_msg` builds a message; its
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
}
TRACKABLE_ENCODINGS = tuple(_TO_BGR)

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


def image_msg_to_bgr(msg) -> np.ndarray:
    """HxWx3 uint8 BGR image (OpenCV's and the trackers' convention).

    Raises ImageConversionError for encodings a tracker cannot take (depth,
    float) and for malformed messages.
    """
    if msg.encoding not in _TO_BGR:
        raise ImageConversionError(
            f"unsupported encoding '{msg.encoding}' for tracking "
            f"(supported: {', '.join(TRACKABLE_ENCODINGS)})")
    pixels = image_msg_to_numpy(msg)
    code = _TO_BGR[msg.encoding]
    if code is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


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
