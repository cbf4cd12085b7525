"""Camera encodings beyond 8-bit BGR / RGB / mono: the yuv422 family, Bayer mosaics,
16-bit colour and semi-planar YUV (nv12 / nv21 / nv24). Every conversion is checked
against OpenCV's own cvtColor on the same bytes; the Bayer pattern mapping against
mosaics built by hand from a known image; row padding, odd sizes and short data
against ImageConversionError."""
import types

import cv2
import numpy as np
import pytest

from siam_tracker_ros.ros.image_conversion import (ENCODINGS, PLANAR_ENCODINGS, TRACKABLE_ENCODINGS,
                                                   ImageConversionError, image_msg_to_bgr,
                                                   image_msg_to_numpy, mono16_to_8bit, pack_image)

RNG = np.random.default_rng(15)
H, W = 24, 38          # even: every encoding takes it


def message(encoding, data, height, width, step, is_bigendian=0):
    return types.SimpleNamespace(encoding=encoding, data=data, height=height, width=width,
                                 step=step, is_bigendian=is_bigendian)


def packed(array, encoding):
    h, w, step, big, data = pack_image(array, encoding)
    return message(encoding, data, h, w, step, big)


def padded(array, encoding, pad):
    """The message of `array` with `pad` junk bytes after every row (step > row bytes)."""
    h, w, step, big, data = pack_image(array, encoding)
    rows = np.frombuffer(data, np.uint8).reshape(h, step)
    junk = RNG.integers(0, 256, (h, pad), dtype=np.uint8)
    return message(encoding, np.concatenate([rows, junk], 1).tobytes(), h, w, step + pad, big)


# ---------------------------------------------------------------- yuv422 family

@pytest.mark.parametrize("encoding,code", [
    ("yuv422", cv2.COLOR_YUV2BGR_UYVY), ("uyvy", cv2.COLOR_YUV2BGR_UYVY),
    ("yuv422_yuy2", cv2.COLOR_YUV2BGR_YUYV), ("yuyv", cv2.COLOR_YUV2BGR_YUYV)])
def test_yuv422_family_matches_cvtcolor(encoding, code):
    yuv = RNG.integers(0, 256, (H, W, 2), dtype=np.uint8)
    out = image_msg_to_bgr(packed(yuv, encoding))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.cvtColor(yuv, code))
    # row padding is dropped, not read as pixels
    np.testing.assert_array_equal(image_msg_to_bgr(padded(yuv, encoding, 6)), cv2.cvtColor(yuv, code))


def test_uyvy_and_yuyv_byte_orders_differ_as_documented():
    """A grey ramp in Y with neutral chroma: only the byte order tells UYVY (U Y V Y) from
    YUYV (Y U Y V); reading one as the other gives a different image."""
    luma = np.linspace(16, 235, W).astype(np.uint8)
    uyvy = np.empty((H, W, 2), np.uint8)
    uyvy[..., 0] = 128            # U / V bytes come first in UYVY
    uyvy[..., 1] = luma
    grey = image_msg_to_bgr(packed(uyvy, "uyvy"))
    assert np.all(np.diff(grey[0, :, 1].astype(int)) >= 0) and grey[0, 0, 1] < grey[0, -1, 1]
    assert np.abs(grey.astype(int) - grey[..., :1]).max() <= 1          # neutral: B = G = R
    swapped = image_msg_to_bgr(packed(uyvy, "yuyv"))
    assert not np.array_equal(swapped, grey)


@pytest.mark.parametrize("encoding", ["yuv422", "yuyv"])
def test_yuv422_odd_width_is_refused(encoding):
    msg = message(encoding, bytes(5 * 7 * 2), 5, 7, 14)
    with pytest.raises(ImageConversionError, match="even width"):
        image_msg_to_bgr(msg)


# ---------------------------------------------------------------- Bayer

def smooth_bgr(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([x * 255 // w, y * 255 // h, 255 - (x + y) * 255 // (w + h)], axis=2)
    return image.astype(np.uint8)


def mosaic(bgr, pattern):
    """Sample `bgr` the way a sensor with the ROS `pattern` (colours of the top-left
    2x2 block, row by row) would."""
    channel = {"b": 0, "g": 1, "r": 2}
    out = np.zeros(bgr.shape[:2], bgr.dtype)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = bgr[dy::2, dx::2, channel[colour]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_pattern_mapping_against_a_hand_built_mosaic(pattern):
    """Demosaicing the hand-built mosaic gives back the image (bilinear on a smooth
    image: off by a couple of levels, away from the border); every other pattern
    reading the same bytes is far off."""
    bgr = smooth_bgr()
    raw = mosaic(bgr, pattern)
    out = image_msg_to_bgr(packed(raw, f"bayer_{pattern}8"))
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(out.astype(int) - bgr)[inner].mean() < 1.0
    for other in {"rggb", "bggr", "gbrg", "grbg"} - {pattern}:
        wrong = image_msg_to_bgr(packed(raw, f"bayer_{other}8"))
        assert np.abs(wrong.astype(int) - bgr)[inner].mean() > 10.0


@pytest.mark.parametrize("pattern,code", [
    ("rggb", cv2.COLOR_BayerBG2BGR), ("bggr", cv2.COLOR_BayerRG2BGR),
    ("gbrg", cv2.COLOR_BayerGR2BGR), ("grbg", cv2.COLOR_BayerGB2BGR)])
def test_bayer8_matches_cvtcolor_with_padding_and_odd_sizes(pattern, code):
    raw = RNG.integers(0, 256, (H + 1, W + 1), dtype=np.uint8)     # odd sizes are fine for a mosaic
    expected = cv2.cvtColor(raw, code)
    np.testing.assert_array_equal(image_msg_to_bgr(packed(raw, f"bayer_{pattern}8")), expected)
    np.testing.assert_array_equal(image_msg_to_bgr(padded(raw, f"bayer_{pattern}8", 3)), expected)


@pytest.mark.parametrize("mode", ["shift", "percentile"])
@pytest.mark.parametrize("pattern,code", [("rggb", cv2.COLOR_BayerBG2BGR), ("grbg", cv2.COLOR_BayerGB2BGR)])
def test_bayer16_is_demosaiced_at_16_bits_then_scaled(pattern, code, mode):
    raw = RNG.integers(0, 4096, (H, W), dtype=np.uint16)            # a 12-bit sensor
    expected = mono16_to_8bit(cv2.cvtColor(raw, code), mode)
    np.testing.assert_array_equal(image_msg_to_bgr(packed(raw, f"bayer_{pattern}16"), mode), expected)
    # big-endian data reads the same
    big = message(f"bayer_{pattern}16", raw.astype(">u2").tobytes(), H, W, W * 2, is_bigendian=1)
    np.testing.assert_array_equal(image_msg_to_bgr(big, mode), expected)


# ---------------------------------------------------------------- 16-bit colour

@pytest.mark.parametrize("encoding,channels,code", [
    ("bgr16", 3, None), ("rgb16", 3, cv2.COLOR_RGB2BGR),
    ("bgra16", 4, cv2.COLOR_BGRA2BGR), ("rgba16", 4, cv2.COLOR_RGBA2BGR)])
def test_16bit_colour_matches_cvtcolor_of_the_8bit_image(encoding, channels, code):
    pixels = RNG.integers(0, 65536, (H, W, channels), dtype=np.uint16)
    eight = (pixels >> 8).astype(np.uint8)
    expected = eight if code is None else cv2.cvtColor(eight, code)
    np.testing.assert_array_equal(image_msg_to_bgr(packed(pixels, encoding), "shift"), expected)


# ---------------------------------------------------------------- nv12 / nv21 / nv24

def planes_nv12(h=H, w=W):
    return RNG.integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)


@pytest.mark.parametrize("encoding,code", [("nv12", cv2.COLOR_YUV2BGR_NV12), ("nv21", cv2.COLOR_YUV2BGR_NV21)])
def test_nv12_nv21_match_cvtcolor(encoding, code):
    planes = planes_nv12()
    msg = packed(planes, encoding)
    assert (msg.height, msg.width, msg.step, len(msg.data)) == (H, W, W, H * W * 3 // 2)
    np.testing.assert_array_equal(image_msg_to_numpy(msg), planes)
    np.testing.assert_array_equal(image_msg_to_bgr(msg), cv2.cvtColor(planes, code))


@pytest.mark.parametrize("encoding,code", [("nv12", cv2.COLOR_YUV2BGR_NV12), ("nv21", cv2.COLOR_YUV2BGR_NV21)])
def test_nv12_with_row_padding(encoding, code):
    planes = planes_nv12()
    step = W + 10
    rows = np.concatenate([planes, RNG.integers(0, 256, (planes.shape[0], 10), dtype=np.uint8)], 1)
    msg = message(encoding, rows.tobytes(), H, W, step)
    np.testing.assert_array_equal(image_msg_to_numpy(msg), planes)
    np.testing.assert_array_equal(image_msg_to_bgr(msg), cv2.cvtColor(planes, code))


def test_nv21_is_nv12_with_the_chroma_bytes_swapped():
    planes = planes_nv12()
    swapped = planes.copy()
    chroma = swapped[H:].reshape(H // 2, W // 2, 2)
    chroma[...] = chroma[..., ::-1]
    np.testing.assert_array_equal(image_msg_to_bgr(packed(planes, "nv12")),
                                  image_msg_to_bgr(packed(swapped, "nv21")))


def nv24_planes(luma, u, v):
    """Y plane, then the interleaved UV plane, stacked as rows of `width` bytes."""
    return np.concatenate([luma, np.stack([u, v], axis=2).reshape(-1, luma.shape[1])], axis=0)


def test_nv24_with_2x2_constant_chroma_equals_nv12():
    """OpenCV has no NV24 code: an NV24 image whose chroma is constant on 2x2 blocks is
    the NV12 image with that chroma subsampled, which OpenCV converts."""
    luma = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    u_half = RNG.integers(0, 256, (H // 2, W // 2), dtype=np.uint8)
    v_half = RNG.integers(0, 256, (H // 2, W // 2), dtype=np.uint8)
    up = lambda c: np.repeat(np.repeat(c, 2, 0), 2, 1)  # noqa: E731
    nv24 = nv24_planes(luma, up(u_half), up(v_half))
    nv12 = np.concatenate([luma, np.stack([u_half, v_half], 2).reshape(H // 2, W)], 0)
    msg = packed(nv24, "nv24")
    assert (msg.height, msg.width, msg.step, len(msg.data)) == (H, W, W, 3 * H * W)
    np.testing.assert_array_equal(image_msg_to_bgr(msg), cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12))


def test_nv24_full_resolution_chroma_per_pixel():
    """Every pixel its own chroma (odd sizes allowed): each output pixel equals OpenCV's
    NV12 conversion of a 2x2 block holding that pixel's Y, U and V."""
    h, w = 7, 9
    luma, u, v = (RNG.integers(0, 256, (h, w), dtype=np.uint8) for _ in range(3))
    step = w + 3                       # padded rows: chroma stride is 2 * step
    y_rows = np.concatenate([luma, np.zeros((h, 3), np.uint8)], 1)
    c_rows = np.concatenate([np.stack([u, v], 2).reshape(h, 2 * w), np.full((h, 6), 77, np.uint8)], 1)
    msg = message("nv24", y_rows.tobytes() + c_rows.tobytes(), h, w, step)
    out = image_msg_to_bgr(msg)
    blocks = np.concatenate([np.repeat(np.repeat(luma, 2, 0), 2, 1),
                             np.stack([u, v], 2).reshape(h, 2 * w)], 0)
    np.testing.assert_array_equal(out, cv2.cvtColor(blocks, cv2.COLOR_YUV2BGR_NV12)[::2, ::2])


@pytest.mark.parametrize("encoding,height,width", [("nv12", 5, 8), ("nv12", 6, 7), ("nv21", 3, 3)])
def test_nv12_odd_sizes_are_refused(encoding, height, width):
    msg = message(encoding, bytes(height * width * 2), height, width, width)
    with pytest.raises(ImageConversionError, match="even width and height"):
        image_msg_to_bgr(msg)


@pytest.mark.parametrize("encoding,size", [("nv12", H * W * 3 // 2 - 1), ("nv21", H * W), ("nv24", 3 * H * W - 1)])
def test_planar_short_data_is_refused(encoding, size):
    with pytest.raises(ImageConversionError, match="fewer than"):
        image_msg_to_bgr(message(encoding, bytes(size), H, W, W))


def test_planar_step_below_width_is_refused():
    with pytest.raises(ImageConversionError, match="smaller than the width"):
        image_msg_to_bgr(message("nv12", bytes(H * W * 2), H, W, W - 2))


# ---------------------------------------------------------------- all of them

@pytest.mark.parametrize("encoding", sorted(set(TRACKABLE_ENCODINGS) - set(PLANAR_ENCODINGS)))
def test_short_data_is_refused_for_every_trackable_encoding(encoding):
    dtype, channels = ENCODINGS[encoding]
    step = W * channels * np.dtype(dtype).itemsize
    with pytest.raises(ImageConversionError, match="fewer than height"):
        image_msg_to_bgr(message(encoding, bytes(H * step - 1), H, W, step))


@pytest.mark.parametrize("encoding", sorted(TRACKABLE_ENCODINGS))
def test_every_trackable_encoding_gives_bgr8(encoding):
    if encoding in PLANAR_ENCODINGS:
        array = RNG.integers(0, 256, ((3 * H) if encoding == "nv24" else (H * 3 // 2), W), dtype=np.uint8)
    else:
        dtype, channels = ENCODINGS[encoding]
        shape = (H, W) if channels == 1 else (H, W, channels)
        array = RNG.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
    out = image_msg_to_bgr(packed(array, encoding))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


def test_pack_image_checks_planar_shapes():
    with pytest.raises(ImageConversionError, match="stacked planes"):
        pack_image(np.zeros((H + 1, W), np.uint8), "nv12")       # not 1.5 * height rows
    with pytest.raises(ImageConversionError, match="stacked planes"):
        pack_image(np.zeros((9, 7), np.uint8), "nv12")           # odd width
    with pytest.raises(ImageConversionError, match="stacked planes"):
        pack_image(np.zeros((10, 7), np.uint8), "nv24")          # not 3 * height rows
    assert pack_image(np.zeros((9, 7), np.uint8), "nv24")[:3] == (3, 7, 7)
