"""The node's image inputs beyond raw bgr8: CompressedImage (jpeg / png, image_transport's
`compressed` and `compressedDepth` formats) and 16-bit mono (mono16 / 16UC1) to 8 bit."""
import types

import cv2
import numpy as np
import pytest

from siam_tracker_ros.ros.compressed_image import COMPRESSED_DEPTH_HEADER, compressed_msg_to_bgr
from siam_tracker_ros.ros.image_conversion import (ImageConversionError, image_msg_to_bgr,
                                                   mono16_to_8bit, pack_image)

RNG = np.random.default_rng(3)


def smooth_bgr(h=48, w=64):
    """A smooth image (jpeg keeps it close)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2).astype(np.uint8)


def compressed(data: bytes, fmt: str):
    return types.SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8))


def test_png_round_trip_is_exact():
    image = RNG.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", image)
    out = compressed_msg_to_bgr(compressed(buf.tobytes(), "bgr8; png compressed bgr8"))
    np.testing.assert_array_equal(out, image)


def test_jpeg_is_close_and_mono_becomes_three_channels():
    image = smooth_bgr()
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = compressed_msg_to_bgr(compressed(buf.tobytes(), "jpeg"))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).mean() < 3.0
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    ok, buf = cv2.imencode(".png", gray)
    out = compressed_msg_to_bgr(compressed(buf.tobytes(), "mono8; png compressed mono8"))
    assert out.shape == (48, 64, 3) and np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)


def test_compressed_depth_png_with_its_header():
    depth = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 7 + 500)
    ok, buf = cv2.imencode(".png", depth)
    data = bytes(COMPRESSED_DEPTH_HEADER) + buf.tobytes()
    out = compressed_msg_to_bgr(compressed(data, "16UC1; compressedDepth png"))
    assert out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out[..., 0], mono16_to_8bit(depth))


@pytest.mark.parametrize("data,fmt,reason", [
    (b"", "jpeg", "empty"),
    (b"\xff\xd8 not really a jpeg", "jpeg", "before a frame header"),
    (bytes(40), "16UC1; compressedDepth rvl", "RVL"),
])
def test_bad_compressed_data_raises(data, fmt, reason):
    with pytest.raises(ImageConversionError, match=reason):
        compressed_msg_to_bgr(compressed(data, fmt))


def test_mono16_percentile_stretch_uses_the_range_of_the_values():
    # a 12-bit sensor: values 1000..3000; the stretch spreads them over 0..255
    pixels = np.linspace(1000, 3000, 100 * 80).reshape(100, 80).astype(np.uint16)
    out = mono16_to_8bit(pixels, "percentile")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out.ravel().astype(int)) >= 0)     # monotonic
    # zeros (no depth reading) do not squash the rest
    with_holes = pixels.copy()
    with_holes[:10] = 0
    assert mono16_to_8bit(with_holes)[50:].max() == 255
    # shift: the high byte
    np.testing.assert_array_equal(mono16_to_8bit(pixels, "shift"), (pixels >> 8).astype(np.uint8))
    flat = np.full((8, 8), 1234, np.uint16)
    assert mono16_to_8bit(flat).shape == (8, 8)   # no division by zero
    with pytest.raises(ValueError):
        mono16_to_8bit(pixels, "gamma")


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_16bit_messages_are_trackable(encoding):
    pixels = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    h, w, step, big, data = pack_image(pixels, encoding)
    msg = types.SimpleNamespace(height=h, width=w, step=step, is_bigendian=big, data=data, encoding=encoding)
    out = image_msg_to_bgr(msg, "shift")
    assert out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out[..., 1], (pixels >> 8).astype(np.uint8))
