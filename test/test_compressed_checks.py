"""Compressed frames are checked before decoding: only jpeg and png (by magic bytes and
the message's `format`), the size their header claims under `max_image_pixels`, every
OpenCV error an ImageConversionError, and libjpeg's stderr warnings captured instead of
printed. The crafted inputs are what a hostile publisher would send."""
import os
import struct
import types
import zlib

import cv2
import numpy as np
import pytest

from siam_tracker_ros.ros import compressed_image as ci
from siam_tracker_ros.ros.compressed_image import (COMPRESSED_DEPTH_HEADER, check_compressed_msg,
                                                   compressed_msg_to_bgr, decode_compressed,
                                                   read_compressed_header)
from siam_tracker_ros.ros.image_conversion import ImageConversionError

RNG = np.random.default_rng(151)


def msg(data, fmt="bgr8; jpeg compressed bgr8"):
    return types.SimpleNamespace(format=fmt, data=np.frombuffer(bytes(data), np.uint8))


def encode(image, ext, *params):
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def smooth(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w, 1), y * 255 // max(h, 1), (x ^ y) & 255], 2).astype(np.uint8)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width=40000, height=40000, total=118) -> bytes:
    """A valid-looking PNG: IHDR claiming width x height, a tiny IDAT, a tEXt chunk
    padding it to `total` bytes, IEND."""
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    iend = png_chunk(b"IEND", b"")
    pad = total - len(head) - len(idat) - len(iend) - 12
    assert pad >= 0
    return head + idat + png_chunk(b"tEXt", b"c\x00" + b"x" * (pad - 2)) + iend


def sof_offset(jpeg: bytes) -> int:
    """Byte index of the first SOFn marker's length field (the test's own walk, on a
    file OpenCV wrote: no garbage, no fill bytes)."""
    pos = 2
    while True:
        assert jpeg[pos] == 0xFF
        marker = jpeg[pos + 1]
        length = struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return pos + 2
        pos += 2 + length


def with_size(jpeg: bytes, width: int, height: int) -> bytes:
    at = sof_offset(jpeg)
    return jpeg[:at + 3] + struct.pack(">HH", height, width) + jpeg[at + 7:]


# ---------------------------------------------------------------- bombs

def test_118_byte_png_claiming_40000x40000_is_refused_before_decoding():
    bomb = png_bomb()
    assert len(bomb) == 118
    header = read_compressed_header(bomb, "png")
    assert (header.codec, header.width, header.height) == ("png", 40000, 40000)
    with pytest.raises(ImageConversionError, match="40000x40000 = 1600000000 pixels, more than max_image_pixels"):
        check_compressed_msg(msg(bomb, "png"), max_image_pixels=1920 * 1080)
    with pytest.raises(ImageConversionError, match="max_image_pixels"):
        compressed_msg_to_bgr(msg(bomb, "bgr8; png compressed bgr8"))       # the default limit holds too
    # what the node met before (F1): OpenCV raises cv2.error, not returns None ...
    with pytest.raises(cv2.error):
        cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_UNCHANGED)
    # ... which is wrapped when our limit is switched off
    with pytest.raises(ImageConversionError, match="cannot decode the 40000x40000 png"):
        compressed_msg_to_bgr(msg(bomb, "png"), max_image_pixels=None)


def test_jpeg_claiming_a_huge_size_is_refused():
    jpeg = with_size(encode(smooth(32, 48), ".jpg"), 65535, 65535)
    assert (read_compressed_header(jpeg).width, read_compressed_header(jpeg).height) == (65535, 65535)
    with pytest.raises(ImageConversionError, match="65535x65535 = 4294836225 pixels"):
        compressed_msg_to_bgr(msg(jpeg))
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_msg_to_bgr(msg(jpeg), max_image_pixels=0)                 # 0: no limit of ours


def test_limit_is_inclusive_and_checked():
    png = encode(smooth(30, 40), ".png")
    assert compressed_msg_to_bgr(msg(png, "png"), max_image_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(ImageConversionError, match="more than max_image_pixels = 1199"):
        compressed_msg_to_bgr(msg(png, "png"), max_image_pixels=1199)
    with pytest.raises(ValueError, match="max_image_pixels"):
        check_compressed_msg(msg(png, "png"), max_image_pixels=-1)


# ---------------------------------------------------------------- headers of real files

@pytest.mark.parametrize("h,w", [(1, 1), (17, 3), (480, 640), (1080, 1921)])
@pytest.mark.parametrize("ext,params", [(".jpg", ()), (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
                                        (".png", ()), (".png", (cv2.IMWRITE_PNG_COMPRESSION, 9))])
def test_header_size_of_real_files(h, w, ext, params):
    data = encode(smooth(h, w), ext, *params)
    header = read_compressed_header(data)
    assert (header.width, header.height, header.offset) == (w, h, 0)
    assert header.codec == ("png" if ext == ".png" else "jpeg")


def test_jpeg_header_walk_skips_app_segments_fill_bytes_and_garbage():
    """APP1 / COM payloads holding 0xFF bytes and fake markers, fill bytes before a marker
    and garbage between segments (libjpeg skips it with a warning) do not fool the walk."""
    image = smooth(40, 56)
    jpeg = encode(image, ".jpg")
    fake_sof = b"\xff\xc0\x00\x11\x08\x99\x99\x99\x99"      # inside a payload: not a frame header
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 20) + b"Exif\x00\x00" + fake_sof + b"\xff\xd9\xff\x00\xff"
    com = b"\xff\xfe" + struct.pack(">H", 2 + 5) + b"\xff\xff\xff\xda\xff"
    crafted = jpeg[:2] + app1 + b"\xff\xff\xff" + com + b"\x00junk" + jpeg[2:]
    header = read_compressed_header(crafted)
    assert (header.width, header.height) == (56, 40)
    # OpenCV decodes it (libjpeg skips the junk) and we decode what OpenCV decodes
    decoded = decode_compressed(msg(crafted))
    np.testing.assert_array_equal(decoded.image, cv2.imdecode(np.frombuffer(crafted, np.uint8), cv2.IMREAD_UNCHANGED))


@pytest.mark.parametrize("data,reason", [
    (b"\xff\xd8", "before a frame header"),
    (b"\xff\xd8\xff\xd9", "EOI"),
    (b"\xff\xd8\xff\xda\x00\x08", "SOS"),
    (b"\xff\xd8\xff\xd8", "second start-of-image"),
    (b"\xff\xd8\xff\xe0\x00", "length of segment"),
    (b"\xff\xd8\xff\xe0\x40\x00JFIF", "claims 16384 bytes"),
    (b"\xff\xd8\xff\xe0\x00\x01", "claims 1 bytes"),
    (b"\xff\xd8\xff\xc0\x00\x06\x08\x00\x10\x00", "too short"),
    (b"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x03\x01\x11\x00", "3 components do not fit"),
    (b"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x00\x00\x10\x01\x01\x11\x00", "DNL"),
    (b"\xff\xd8" + b"\xff\xfe\x00\x02" * 2000, "more than 1024 segments"),
])
def test_malformed_jpeg_headers(data, reason):
    with pytest.raises(ImageConversionError, match=reason):
        read_compressed_header(data, "jpeg")


def png_with_ihdr(width=8, height=8, depth=8, colour=2, tail=b"", crc_ok=True):
    payload = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    chunk = png_chunk(b"IHDR", payload)
    if not crc_ok:
        chunk = chunk[:-1] + bytes([chunk[-1] ^ 1])
    return b"\x89PNG\r\n\x1a\n" + chunk + tail


@pytest.mark.parametrize("data,reason", [
    (b"\x89PNG\r\n\x1a\n", "shorter than"),
    (png_with_ihdr(crc_ok=False), "CRC"),
    (png_with_ihdr(width=0), "invalid size 0x8"),
    (png_with_ihdr(height=2 ** 31), "invalid size"),
    (png_with_ihdr(depth=16, colour=3), "bit depth 16 with colour type 3"),
    (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IDAT", b"x" * 13), "IHDR"),
])
def test_malformed_png_headers(data, reason):
    with pytest.raises(ImageConversionError, match=reason):
        read_compressed_header(data, "png")


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_files_raise_conversion_errors_only(ext):
    """Cut anywhere: either the header is refused, or decoding fails with an
    ImageConversionError, or (jpeg: libjpeg pads a cut scan) an image of the header's size."""
    data = encode(RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8), ext)
    outcomes = set()
    for cut in list(range(0, 64)) + list(range(64, len(data), max(1, len(data) // 40))):
        try:
            image = compressed_msg_to_bgr(msg(data[:cut], ""))
        except ImageConversionError:
            outcomes.add("refused")
            continue
        assert image.shape == (24, 32, 3)
        outcomes.add("decoded")
    assert "refused" in outcomes


# ---------------------------------------------------------------- formats

@pytest.mark.parametrize("ext,name", [(".bmp", "BMP"), (".tiff", "TIFF"), (".webp", "WebP"),
                                      (".pgm", "PNM / PFM")])
def test_other_formats_opencv_reads_are_refused_by_their_bytes(ext, name):
    image = smooth(16, 16) if ext != ".pgm" else smooth(16, 16)[..., 0]
    data = encode(image, ext)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None   # OpenCV would
    for fmt in ("", "bgr8"):
        with pytest.raises(ImageConversionError, match=f"{name} image: only jpeg and png"):
            compressed_msg_to_bgr(msg(data, fmt))


@pytest.mark.parametrize("magic,name", [
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (b"GIF89a", "GIF"), (b"\x76\x2f\x31\x01", "OpenEXR"), (b"\x00\x00\x00\x1cftypavif", "AVIF / HEIF"),
    (b"#?RADIANCE\n", "Radiance HDR"), (b"\x00\x01\x02\x03", "neither jpeg nor png")])
def test_other_magic_bytes_are_named(magic, name):
    with pytest.raises(ImageConversionError, match=name):
        read_compressed_header(magic + bytes(64))


def test_format_string_is_checked():
    png = encode(smooth(8, 8), ".png")
    jpeg = encode(smooth(8, 8), ".jpg")
    with pytest.raises(ImageConversionError, match="names bmp"):
        compressed_msg_to_bgr(msg(png, "bgr8; bmp compressed bgr8"))
    with pytest.raises(ImageConversionError, match="names h264"):
        compressed_msg_to_bgr(msg(jpeg, "h264"))
    with pytest.raises(ImageConversionError, match="says png but the data is jpeg"):
        compressed_msg_to_bgr(msg(jpeg, "bgr8; png compressed bgr8"))
    with pytest.raises(ImageConversionError, match="says jpeg but the data is png"):
        compressed_msg_to_bgr(msg(png, "jpg"))
    for fmt in ("", "bgr8", "png", "rgb8; png compressed bgr8"):
        assert compressed_msg_to_bgr(msg(png, fmt)).shape == (8, 8, 3)
    for fmt in ("jpeg", "JPEG", "jpg", "bgr8; jpeg compressed bgr8"):
        assert compressed_msg_to_bgr(msg(jpeg, fmt)).shape == (8, 8, 3)
    # an untrusted format string comes back escaped and cut short
    with pytest.raises(ImageConversionError) as info:
        compressed_msg_to_bgr(msg(png, "tiff\n[FATAL] forged" + "x" * 5000))
    assert "\n" not in str(info.value) and len(str(info.value)) < 200
    assert "5019 characters (at most 256)" in str(info.value)
    with pytest.raises(ImageConversionError, match="names tiff") as info:
        compressed_msg_to_bgr(msg(png, "tiff\n[FATAL] forged"))
    assert "\n" not in str(info.value) and "\\n[FATAL]" in str(info.value)


def test_compressed_depth_header_is_skipped():
    depth = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 5 + 100)
    data = bytes(COMPRESSED_DEPTH_HEADER) + encode(depth, ".png")
    header = check_compressed_msg(msg(data, "16UC1; compressedDepth png"))
    assert (header.codec, header.width, header.height, header.offset) == ("png", 32, 24, COMPRESSED_DEPTH_HEADER)
    assert compressed_msg_to_bgr(msg(data, "16UC1; compressedDepth png")).shape == (24, 32, 3)


# ---------------------------------------------------------------- decoding = OpenCV's

@pytest.mark.parametrize("ext", [".jpg", ".png"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_valid_images_decode_as_opencv_decodes_them(ext, channels):
    image = RNG.integers(0, 256, (33, 47, channels), dtype=np.uint8)
    if channels == 1:
        image = image[..., 0]
    if ext == ".jpg" and channels == 4:
        image = image[..., :3]
    data = encode(image, ext)
    reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = {2: lambda a: cv2.cvtColor(a, cv2.COLOR_GRAY2BGR), 3: lambda a: a}.get(
        reference.ndim if reference.ndim == 2 else reference.shape[2],
        lambda a: cv2.cvtColor(a, cv2.COLOR_BGRA2BGR))(reference)
    decoded = decode_compressed(msg(data, ""))
    np.testing.assert_array_equal(decoded.image, expected)
    assert decoded.decoder_messages == ()
    assert (decoded.header.width, decoded.header.height) == (47, 33)


# ---------------------------------------------------------------- libjpeg's stderr

def damaged_jpeg_with_a_warning():
    """A JPEG with one scan byte flipped that libjpeg decodes with a printed warning
    (searched over flip positions, so the test does not depend on one byte)."""
    data = encode(RNG.integers(0, 256, (64, 80, 3), dtype=np.uint8), ".jpg")
    for position in range(len(data) // 2, len(data) - 2, 97):
        damaged = data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:]
        try:
            decoded = decode_compressed(msg(damaged))
        except ImageConversionError:
            continue
        if decoded.decoder_messages:
            return damaged, decoded
    pytest.fail("no flipped byte made libjpeg warn: the capture test would prove nothing")


def test_libjpeg_warnings_are_captured_not_printed(capfd):
    damaged, decoded = damaged_jpeg_with_a_warning()
    assert decoded.image.shape == (64, 80, 3)
    assert any("JPEG" in line for line in decoded.decoder_messages)
    capfd.readouterr()
    decode_compressed(msg(damaged))
    assert capfd.readouterr().err == ""
    # without the capture the same frame prints: the noise is real
    decode_compressed(msg(damaged), capture_decoder_stderr=False)
    assert "JPEG" in capfd.readouterr().err


def test_other_threads_lines_written_during_a_decode_are_kept(capfd, monkeypatch):
    real = cv2.imdecode

    def noisy_imdecode(data, flags):
        os.write(2, b"Corrupt JPEG data: 3 extraneous bytes before marker 0xd9\n")
        os.write(2, b"[INFO] [1.0] [tracker]: a line from another thread\n")
        return real(data, flags)

    monkeypatch.setattr(ci.cv2, "imdecode", noisy_imdecode)
    decoded = decode_compressed(msg(encode(smooth(8, 8), ".jpg")))
    err = capfd.readouterr().err
    assert "a line from another thread" in err and "Corrupt JPEG" not in err
    assert decoded.decoder_messages == ("Corrupt JPEG data: 3 extraneous bytes before marker 0xd9",)


def test_stderr_is_restored_when_the_decoder_raises(capfd, monkeypatch):
    def failing_imdecode(data, flags):
        os.write(2, b"libpng error: something\n")
        raise cv2.error("boom")

    monkeypatch.setattr(ci.cv2, "imdecode", failing_imdecode)
    with pytest.raises(ImageConversionError, match="cannot decode the 8x8 png: boom"):
        decode_compressed(msg(encode(smooth(8, 8), ".png"), "png"))
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"
    monkeypatch.undo()
    # what the failed decode wrote is not taken for the next frame's decoder messages
    assert decode_compressed(msg(encode(smooth(8, 8), ".png"), "png")).decoder_messages == ()
