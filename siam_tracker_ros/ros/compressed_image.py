"""sensor_msgs/CompressedImage -> BGR, checked before the decoder runs.

`read_compressed_header` / `check_compressed_msg` read the format and the size
the header claims (PNG IHDR, JPEG SOFn) from a few bytes, so that a small
message cannot make the decoder allocate gigabytes, and only the formats the
docs name (jpeg, png; image_transport's `compressed` and `compressedDepth`)
reach OpenCV. `decode_compressed` / `compressed_msg_to_bgr` decode, with
libjpeg's / libpng's stderr warnings returned instead of printed.
`bgr_to_compressed_msg` builds a message (tests, bag tools).
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

from .image_conversion import ImageConversionError, cv2_error_reason, mono16_to_8bit
from .logging_utils import quote_untrusted

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
        failure = None
        try:
            os.dup2(_stderr_sink.fileno(), 2)
            try:
                pixels = cv2.imdecode(data, flags)
            except Exception as exc:  # noqa: BLE001 - raised below, once the sink is emptied
                pixels, failure = None, exc
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            # emptied whatever happened: what a failed decode wrote must not be taken for the
            # next frame's messages
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
    if failure is not None:
        raise failure
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
            f"cannot decode the {header.width}x{header.height} {header.codec}: {cv2_error_reason(exc)}") from None
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
        raise ImageConversionError(f"cannot convert the decoded {header.codec}: {cv2_error_reason(exc)}") from None
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
