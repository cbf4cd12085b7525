"""numpy <-> sensor_msgs/Image, bit-exact, without cv_bridge.

(The PyPI `cv-bridge` is an old ROS 1 port and does not work with ROS 2.)

`image_msg_to_numpy` returns the pixels in the message's own encoding (a view
on the message buffer where possible); `image_msg_to_bgr` gives the HxWx3
uint8 BGR image the trackers take, from every encoding cv_bridge converts to
bgr8 (8/16-bit colour and mono, the yuv422 family, Bayer) and from nv12 / nv21 /
nv24; `compressed_msg_to_bgr` does the same for sensor_msgs/CompressedImage
(jpeg / png, image_transport's `compressed` and `compressedDepth` formats),
after `read_compressed_header` has checked the format and the size the header
claims, so that a few bytes cannot make the decoder allocate gigabytes. 16-bit
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

import os
import re
import struct
import sys
import tempfile
import threading
import zlib
from dataclasses import dataclass
from typing import Optional

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
        f"unsupported encoding '{encoding}' (supported: {', '.join((*ENCODINGS, *PLANAR_ENCODINGS))})")


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
            f"unsupported encoding '{encoding}' for tracking "
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
            f"{_cv2_reason(exc)}") from None


def _cv2_reason(exc: Exception) -> str:
    """The last line of a cv2.error (the assertion or message, without the source path)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


COMPRESSED_DEPTH_HEADER = 12   # image_transport compressedDepth: format enum + 2 float params before the PNG

# The formats the docs name for the compressed input. OpenCV would decode many more
# (BMP, TIFF, WebP, JPEG 2000, OpenEXR...), each one more parser exposed to whoever can
# publish on the topic.
COMPRESSED_CODECS = ("jpeg", "png")

# Default `max_image_pixels`: 8K UHD. The node passes its own parameter; this default
# is for the library and the bag tools.
DEFAULT_MAX_IMAGE_PIXELS = 7680 * 4320

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
# (magic at offset 0, name) of formats refused by name, so the reason says what came
_OTHER_MAGIC = (
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"GIF8", "GIF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (b"\x76\x2f\x31\x01", "OpenEXR"), (b"#?RADIANCE", "Radiance HDR"), (b"#?RGBE", "Radiance HDR"),
    (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"), (b"qoif", "QOI"),
)
# format-string words naming something other than jpeg / png
_OTHER_FORMAT_WORDS = frozenset((
    "bmp", "dib", "tif", "tiff", "gif", "webp", "jp2", "j2k", "jpx", "jpeg2000", "exr", "hdr", "pic",
    "pbm", "pgm", "ppm", "pnm", "pam", "pfm", "sr", "ras", "avif", "heic", "heif", "jxl", "qoi", "tga",
    "h264", "h265", "hevc", "av1", "vp8", "vp9", "zstd", "lz4",
))
# image_transport's format strings are a few words ('bgr8; jpeg compressed bgr8'); a
# longer one is not a format, and is not worth parsing
MAX_FORMAT_LENGTH = 256
# JPEG markers that start a frame header (SOF0..SOF15 less DHT C4, JPG C8 and DAC CC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# markers without a length field: TEM, RST0..7 (SOI and EOI are handled on their own)
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
# the next marker: one or more 0xFF fill bytes, then a byte that is neither 0x00 (a stuffed
# 0xFF in entropy-coded data) nor 0xFF. Bytes before it are garbage libjpeg would skip too.
_JPEG_MARKER = re.compile(rb"\xff+([\x01-\xfe])")
# A JPEG has a handful of segments before its frame header (APPn, DQT, DRI, COM; ICC
# profiles are split over up to 255 APP2 segments). The cap keeps a file of millions of
# tiny segments from costing the caller a Python loop per segment.
JPEG_MAX_SEGMENTS_BEFORE_FRAME = 1024
# PNG colour type -> allowed bit depths (PNG specification, IHDR)
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_MAX_SIDE = 2 ** 31 - 1


@dataclass(frozen=True)
class CompressedHeader:
    """What the header of a compressed image claims, read before any decoding."""
    codec: str          # "jpeg" or "png"
    width: int
    height: int
    offset: int         # bytes before the image (image_transport compressedDepth's header)

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class DecodedImage:
    """A decoded compressed frame and what the decoder complained about: libjpeg
    decodes many damaged frames with a warning, and the caller decides whether to
    count or log it (throttled) instead of the library printing it per frame."""
    image: np.ndarray               # HxWx3 uint8 BGR
    header: CompressedHeader
    decoder_messages: tuple         # what libjpeg / libpng wrote to stderr while decoding (str lines)


def _as_uint8(data) -> np.ndarray:
    try:   # rclpy: array.array, rosbags: numpy array, bytes: all without a copy
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _declared_codecs(fmt: str) -> set:
    """The codecs a CompressedImage `format` string names ('bgr8; jpeg compressed bgr8',
    'png', '16UC1; compressedDepth png'...); raises for words naming other formats."""
    if len(fmt) > MAX_FORMAT_LENGTH:
        raise ImageConversionError(
            f"format string of {len(fmt)} characters (at most {MAX_FORMAT_LENGTH}): {_quote(fmt)}")
    words = set(re.findall(r"[a-z0-9]+", fmt.lower()))
    if "rvl" in words:
        raise ImageConversionError(f"compressedDepth RVL is not supported (format {_quote(fmt)})")
    others = sorted(words & _OTHER_FORMAT_WORDS)
    if others:
        raise ImageConversionError(
            f"format {_quote(fmt)} names {', '.join(others)}: only jpeg and png are read")
    declared = set()
    if words & {"jpeg", "jpg"}:
        declared.add("jpeg")
    if "png" in words:
        declared.add("png")
    return declared


def _quote(fmt) -> str:
    """An untrusted format string in an error message (the node logs these texts)."""
    return quote_untrusted(fmt, 64)


def _sniff_codec(data: np.ndarray) -> str:
    head = bytes(data[:16])
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(_JPEG_SOI):
        return "jpeg"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        raise ImageConversionError("the data is a WebP image: only jpeg and png are read")
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
        raise ImageConversionError("the data is an AVIF / HEIF image: only jpeg and png are read")
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            raise ImageConversionError(f"the data is a {name} image: only jpeg and png are read")
    if len(head) >= 2 and head[:1] == b"P" and head[1:2] in b"1234567f":
        raise ImageConversionError("the data is a PNM / PFM image: only jpeg and png are read")
    raise ImageConversionError(f"the data is neither jpeg nor png (starts with {head[:8].hex(' ')})")


def _png_size(data: np.ndarray):
    if data.size < 8 + 8 + 13 + 4:
        raise ImageConversionError(f"png of {data.size} bytes is shorter than its signature and IHDR chunk")
    length, kind = struct.unpack(">I4s", bytes(data[8:16]))
    if kind != b"IHDR" or length != 13:
        raise ImageConversionError(f"png does not start with a 13-byte IHDR chunk (got {kind!r}, {length} bytes)")
    ihdr = bytes(data[16:29])
    (crc,) = struct.unpack(">I", bytes(data[29:33]))
    if zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF != crc:
        raise ImageConversionError("png IHDR chunk fails its CRC")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", ihdr)
    if not (0 < width <= _PNG_MAX_SIDE and 0 < height <= _PNG_MAX_SIDE):
        raise ImageConversionError(f"png IHDR gives an invalid size {width}x{height}")
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise ImageConversionError(f"png IHDR: bit depth {depth} with colour type {colour} is not valid")
    if compression or filtering or interlace > 1:
        raise ImageConversionError("png IHDR: unknown compression, filter or interlace method")
    return width, height


def _jpeg_size(data: np.ndarray):
    """Width and height from the first frame header (SOFn), walking the segments before
    it by their lengths; garbage between segments is skipped as libjpeg skips it."""
    size = data.size
    pos = 2                                                    # after SOI
    for _ in range(JPEG_MAX_SEGMENTS_BEFORE_FRAME):
        match = _JPEG_MARKER.search(data, pos)
        if match is None:
            raise ImageConversionError(f"jpeg ends (at byte {size}) before a frame header (SOF)")
        marker, pos = match.group(1)[0], match.end()
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD8:
            raise ImageConversionError(f"jpeg has a second start-of-image marker at byte {match.start()}")
        if marker == 0xD9:
            raise ImageConversionError("jpeg ends (EOI) before a frame header (SOF)")
        if marker == 0xDA:
            raise ImageConversionError("jpeg scan (SOS) starts before a frame header (SOF)")
        if pos + 2 > size:
            raise ImageConversionError(f"jpeg truncated in the length of segment 0x{marker:02X}")
        length = (int(data[pos]) << 8) | int(data[pos + 1])
        if length < 2 or pos + length > size:
            raise ImageConversionError(
                f"jpeg segment 0x{marker:02X} at byte {match.start()} claims {length} bytes; "
                f"{size - pos} are left")
        if marker in _JPEG_SOF:
            if length < 8:
                raise ImageConversionError(f"jpeg frame header of {length} bytes is too short")
            height = (int(data[pos + 3]) << 8) | int(data[pos + 4])
            width = (int(data[pos + 5]) << 8) | int(data[pos + 6])
            components = int(data[pos + 7])
            if components < 1 or length != 8 + 3 * components:
                raise ImageConversionError(
                    f"jpeg frame header: {components} components do not fit its {length} bytes")
            if width == 0 or height == 0:
                raise ImageConversionError(
                    f"jpeg frame header gives {width}x{height} (a height set later by DNL is not supported)")
            return width, height
        pos += length
    raise ImageConversionError(
        f"jpeg has more than {JPEG_MAX_SEGMENTS_BEFORE_FRAME} segments before its frame header")


def read_compressed_header(data, fmt: str = "") -> CompressedHeader:
    """Codec and size of a sensor_msgs/CompressedImage payload, from its header alone.

    Accepts jpeg and png only, identified by their magic bytes; `fmt` (the message's
    `format`) must not name another format nor contradict the bytes (a 'png' message
    holding a jpeg is refused: one of the two is lying). image_transport's
    compressedDepth header is skipped; its RVL codec is refused. The JPEG size comes
    from the first SOFn segment, reached by walking the segments (APPn, DQT, COM...)
    by their lengths; the PNG size from IHDR, CRC checked. Raises ImageConversionError
    with the reason; costs a few microseconds and never decodes pixels, so it can run
    where a frame arrives.
    """
    fmt = str(fmt or "")
    declared = _declared_codecs(fmt)
    data = _as_uint8(data)
    offset = 0
    if "compresseddepth" in fmt.lower():
        offset = COMPRESSED_DEPTH_HEADER
        data = data[offset:]
    if data.size == 0:
        raise ImageConversionError(f"empty compressed image (format {_quote(fmt)})")
    codec = _sniff_codec(data)
    if declared and codec not in declared:
        raise ImageConversionError(f"format {_quote(fmt)} says {'/'.join(sorted(declared))} "
                                   f"but the data is {codec}")
    width, height = _png_size(data) if codec == "png" else _jpeg_size(data)
    return CompressedHeader(codec, width, height, offset)


def check_compressed_msg(msg, max_image_pixels: Optional[int] = DEFAULT_MAX_IMAGE_PIXELS) -> CompressedHeader:
    """`read_compressed_header` of a CompressedImage plus the size limit: refuses an image
    whose header claims more than `max_image_pixels` pixels (None or 0: no limit of
    ours; OpenCV still refuses above 2**30)."""
    header = read_compressed_header(msg.data, msg.format)
    if max_image_pixels is not None and max_image_pixels < 0:
        raise ValueError(f"max_image_pixels must be >= 0 or None, got {max_image_pixels}")
    if max_image_pixels and header.pixels > max_image_pixels:
        raise ImageConversionError(
            f"{header.codec} header claims {header.width}x{header.height} = {header.pixels} pixels, "
            f"more than max_image_pixels = {max_image_pixels}")
    return header


# Text libjpeg (its warnings: jerror.h JWRN_*) and libpng print on stderr for damaged
# images. Lines that match are the decoder's; any other line that reached stderr while it
# ran came from another thread and is written back to stderr.
_DECODER_LINE = re.compile(
    r"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Inconsistent progression"
    r"|Unknown Adobe color transform|Warning: unknown JFIF revision|Application transferred too"
    r"|Warning: thumbnail image size|libpng (warning|error))")
_STDERR_LOCK = threading.Lock()
_stderr_sink = None        # a temporary file that stands in for fd 2 while a decoder runs


def _decode_capturing_stderr(data: np.ndarray, flags: int):
    """cv2.imdecode with file descriptor 2 pointed at a temporary file.

    libjpeg prints a warning per damaged frame with fprintf(stderr) from C, where no
    Python setting reaches; a hostile publisher could fill the node's log at the frame
    rate. Redirecting fd 2 is process-wide, so: the redirect is held only around the
    decode, under a lock (two decoders never interleave their redirects); a file, not
    a pipe, takes the text (a full pipe would block the decoder); and whatever another
    thread wrote meanwhile (ROS console output goes to stderr) is written back to the
    real stderr afterwards, a few milliseconds late instead of lost. Returns (decoded
    array or None, decoder lines).
    """
    global _stderr_sink
    with _STDERR_LOCK:
        try:
            if _stderr_sink is None:
                _stderr_sink = tempfile.TemporaryFile()
            saved = os.dup(2)
        except OSError:            # no fd 2 or no temporary file: decode as it is
            return cv2.imdecode(data, flags), ()
        try:
            sys.stderr.flush()                 # Python's buffered text goes out before the switch
        except (AttributeError, ValueError, OSError):
            pass
        try:
            os.dup2(_stderr_sink.fileno(), 2)
            try:
                pixels = cv2.imdecode(data, flags)
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        _stderr_sink.seek(0)
        captured = _stderr_sink.read()
        _stderr_sink.seek(0)
        _stderr_sink.truncate()
    decoder, others = [], []
    for line in captured.decode("utf-8", "replace").splitlines(keepends=True):
        (decoder if _DECODER_LINE.match(line) else others).append(line)
    if others:
        try:
            os.write(2, "".join(others).encode("utf-8", "replace"))
        except OSError:
            pass
    return pixels, tuple(line.rstrip("\n") for line in decoder)


def decode_compressed(msg, mono16_mode: str = "percentile",
                      max_image_pixels: Optional[int] = DEFAULT_MAX_IMAGE_PIXELS,
                      capture_decoder_stderr: bool = True) -> DecodedImage:
    """sensor_msgs/CompressedImage -> DecodedImage (BGR image, header, decoder messages).

    `check_compressed_msg` runs first, so a frame whose header claims too many pixels,
    or that is not jpeg / png, is refused before the decoder allocates anything. With
    `capture_decoder_stderr`, libjpeg / libpng warnings are returned in
    `decoder_messages` instead of being printed (see _decode_capturing_stderr), for the
    caller to count or log throttled. Raises ImageConversionError for every failure,
    OpenCV's included.
    """
    header = check_compressed_msg(msg, max_image_pixels)
    data = _as_uint8(msg.data)[header.offset:]
    messages = ()
    try:
        if capture_decoder_stderr:
            pixels, messages = _decode_capturing_stderr(data, cv2.IMREAD_UNCHANGED)
        else:
            pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageConversionError(
            f"cannot decode the {header.width}x{header.height} {header.codec}: {_cv2_reason(exc)}") from None
    if pixels is None:
        detail = f": {messages[-1]}" if messages else ""
        raise ImageConversionError(
            f"cannot decode the {header.width}x{header.height} {header.codec} "
            f"({data.size} bytes){detail}")
    if pixels.shape[:2] != (header.height, header.width):
        raise ImageConversionError(
            f"{header.codec} decoded to {pixels.shape[1]}x{pixels.shape[0]}, "
            f"its header said {header.width}x{header.height}")
    if pixels.dtype == np.uint16:
        if pixels.ndim == 3:   # 16-bit colour png: keep the high byte
            pixels = (pixels >> 8).astype(np.uint8)
        else:
            pixels = mono16_to_8bit(pixels, mono16_mode)
    elif pixels.dtype != np.uint8:
        raise ImageConversionError(f"compressed image decodes to {pixels.dtype} (format {_quote(msg.format)})")
    try:
        if pixels.ndim == 2:
            image = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
        elif pixels.shape[2] == 4:
            image = cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
        elif pixels.shape[2] == 3:
            image = pixels
        else:
            raise ImageConversionError(
                f"compressed image has {pixels.shape[2]} channels (format {_quote(msg.format)})")
    except cv2.error as exc:
        raise ImageConversionError(f"cannot convert the decoded {header.codec}: {_cv2_reason(exc)}") from None
    return DecodedImage(image, header, messages)


def compressed_msg_to_bgr(msg, mono16_mode: str = "percentile",
                          max_image_pixels: Optional[int] = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png; image_transport `compressed` or
    `compressedDepth`) -> HxWx3 uint8 BGR: `decode_compressed(...).image`."""
    return decode_compressed(msg, mono16_mode, max_image_pixels).image


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
