"""numpy <-> sensor_msgs/Image: bit-exact round trips, validation, BGR conversion."""
import types

import cv2
import numpy as np
import pytest

from siam_tracker_ros.ros.image_conversion import (ENCODINGS, ImageConversionError, image_msg_to_bgr,
                                                   image_msg_to_numpy, numpy_to_image_msg, pack_image)

# Tests that build rclpy messages need the ROS 2 packages (skipped without; fail under make test).
ros = pytest.mark.ros_env

RNG = np.random.default_rng(0)
SHAPES = {1: (37, 53), 2: (37, 53, 2), 3: (37, 53, 3), 4: (37, 53, 4)}


def random_image(encoding):
    dtype, channels = ENCODINGS[encoding]
    shape = SHAPES[channels]
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


@ros
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_is_bit_exact(encoding):
    image = random_image(encoding)
    msg = numpy_to_image_msg(image, encoding)
    assert (msg.height, msg.width, msg.encoding) == (37, 53, encoding)
    assert msg.step == 53 * image.itemsize * (1 if image.ndim == 2 else image.shape[2])
    assert len(msg.data) == msg.height * msg.step
    back = image_msg_to_numpy(msg)
    assert back.dtype == image.dtype and back.shape == image.shape
    assert back.tobytes() == image.tobytes()


@ros
def test_round_trip_through_serialisation():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image
    image = random_image("bgr8")
    msg = numpy_to_image_msg(image, "bgr8")
    again = deserialize_message(serialize_message(msg), Image)
    np.testing.assert_array_equal(image_msg_to_numpy(again), image)


@ros
def test_header_is_kept():
    from std_msgs.msg import Header
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = numpy_to_image_msg(random_image("mono8"), "mono8", header=header)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("cam", 12, 345)


@ros
@pytest.mark.parametrize("encoding,code", [("rgb8", cv2.COLOR_RGB2BGR), ("mono8", cv2.COLOR_GRAY2BGR),
                                           ("bgra8", cv2.COLOR_BGRA2BGR), ("rgba8", cv2.COLOR_RGBA2BGR)])
def test_to_bgr(encoding, code):
    image = random_image(encoding)
    bgr = image_msg_to_bgr(numpy_to_image_msg(image, encoding))
    assert bgr.shape == (37, 53, 3) and bgr.dtype == np.uint8
    np.testing.assert_array_equal(bgr, cv2.cvtColor(image, code))


@ros
def test_bgr8_to_bgr_is_identity():
    image = random_image("bgr8")
    np.testing.assert_array_equal(image_msg_to_bgr(numpy_to_image_msg(image, "bgr8")), image)


def fake_msg(**fields):
    base = dict(height=4, width=5, encoding="bgr8", is_bigendian=0, step=15, data=bytes(60))
    base.update(fields)
    return types.SimpleNamespace(**base)


def test_row_padding_is_dropped():
    image = random_image("rgb8")
    h, w = image.shape[:2]
    padded = np.zeros((h, w * 3 + 7), np.uint8)
    padded[:, :w * 3] = image.reshape(h, -1)
    msg = fake_msg(height=h, width=w, encoding="rgb8", step=w * 3 + 7, data=padded.tobytes())
    np.testing.assert_array_equal(image_msg_to_numpy(msg), image)


def test_big_endian_16bit():
    image = RNG.integers(0, 65536, size=(6, 7), dtype=np.uint16)
    msg = fake_msg(height=6, width=7, encoding="mono16", is_bigendian=1, step=14,
                   data=image.astype(">u2").tobytes())
    np.testing.assert_array_equal(image_msg_to_numpy(msg), image)


@pytest.mark.parametrize("fields,reason", [
    (dict(encoding="yuv420"), "unsupported encoding"),
    (dict(encoding="bayer_rgbg8"), "unsupported encoding"),
    (dict(encoding="8UC2"), "unsupported encoding"),
    (dict(data=bytes(59)), r"fewer than height \* step"),
    (dict(step=14, data=bytes(56)), "smaller than width"),
    (dict(height=0, data=b""), "empty image"),
    (dict(width=0), "empty image"),
])
def test_malformed_messages_raise(fields, reason):
    with pytest.raises(ImageConversionError, match=reason):
        image_msg_to_bgr(fake_msg(**fields))


@ros
def test_float_image_is_not_trackable():
    msg = numpy_to_image_msg(np.zeros((3, 3), np.float32), "32FC1")
    with pytest.raises(ImageConversionError, match="for tracking"):
        image_msg_to_bgr(msg)


def test_pack_rejects_mismatched_arrays():
    with pytest.raises(ImageConversionError):
        pack_image(np.zeros((4, 4), np.uint8), "bgr8")
    with pytest.raises(ImageConversionError):
        pack_image(np.zeros((4, 4, 3), np.float32), "bgr8")
    with pytest.raises(ImageConversionError):
        pack_image(np.zeros((4, 4, 3), np.uint8), "nv12")


def test_reads_rosbags_messages():
    """Messages deserialised by `rosbags` hold data as a numpy array."""
    rosbags = pytest.importorskip("rosbags.typesys")
    store = rosbags.get_typestore(rosbags.Stores.ROS2_KILTED)
    image = random_image("bgr8")
    h, w, step, big, data = pack_image(image, "bgr8")
    Image, Header, Time = (store.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                      "builtin_interfaces/msg/Time"))
    msg = Image(header=Header(stamp=Time(sec=1, nanosec=2), frame_id="c"), height=h, width=w,
                encoding="bgr8", is_bigendian=big, step=step, data=np.frombuffer(data, np.uint8))
    again = store.deserialize_cdr(store.serialize_cdr(msg, Image.__msgtype__), Image.__msgtype__)
    np.testing.assert_array_equal(image_msg_to_bgr(again), image)
