"""The node's stamp-keyed frame cache (ros/inbox.py: which frame an init box is applied to); no rclpy."""
import pytest

S = 1_000_000_000


@pytest.fixture
def cache():
    from siam_tracker_ros.ros.inbox import Frame, FrameCache
    c = FrameCache(3)
    for i in range(5):                       # keeps the last 3: stamps 2, 3, 4 s
        c.append(Frame(msg=f"frame{i}", stamp=i * S, arrival=float(i)))
    return c


def test_keeps_the_last_frames(cache):
    assert [f.msg for f in cache.frames] == ["frame2", "frame3", "frame4"]


def test_exact_nearest_and_newest(cache):
    assert cache.find(3 * S).msg == "frame3"
    assert cache.find(3 * S + S // 3).msg == "frame3"       # nearest in time
    assert cache.find(10 * S).msg == "frame4"
    assert cache.find(1).msg == "frame2"                    # older than the cache: the oldest kept
    assert cache.find(0).msg == "frame4"                    # zero stamp: the newest


def test_between_and_resize(cache):
    assert [f.msg for f in cache.between(2 * S, 4 * S)] == ["frame3", "frame4"]
    assert cache.between(4 * S, 9 * S) == []
    cache.resize(2)
    assert [f.msg for f in cache.frames] == ["frame3", "frame4"]


def test_empty_cache():
    from siam_tracker_ros.ros.inbox import FrameCache
    assert FrameCache(5).find(0) is None


def test_bounded_in_bytes_the_newest_always_kept():
    """F2: the cache holds messages as they came and at most max_bytes of their data."""
    from types import SimpleNamespace

    from siam_tracker_ros.ros.inbox import Frame, FrameCache
    c = FrameCache(30, max_bytes=1000)
    for i in range(10):
        c.append(Frame(msg=SimpleNamespace(data=bytes(300)), stamp=i * S, arrival=float(i)))
    assert [f.stamp for f in c.frames] == [7 * S, 8 * S, 9 * S] and c.nbytes == 900
    c.append(Frame(msg=SimpleNamespace(data=bytes(5000)), stamp=10 * S, arrival=10.0))
    assert [f.stamp for f in c.frames] == [10 * S] and c.nbytes == 5000
    c.resize(max_bytes=None)
    c.append(Frame(msg=SimpleNamespace(data=bytes(5000)), stamp=11 * S, arrival=11.0))
    assert len(c.frames) == 2
    c.keep(lambda f: f.stamp == 11 * S)
    assert c.nbytes == 5000


def test_compressed_frames_stay_compressed():
    """A compressed frame is decoded for the worker but the decoded image is not kept on it;
    its size comes from its header (no decoding) and a bomb is refused before decoding."""
    import cv2
    import numpy as np

    from siam_tracker_ros.ros.image_conversion import ImageConversionError
    from siam_tracker_ros.ros.inbox import Frame, decode
    from types import SimpleNamespace
    ok, buf = cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))
    f = Frame(SimpleNamespace(format="png", data=buf.tobytes()), S, 0.0, compressed=True)
    assert f.size == (40, 30) and f.nbytes == len(buf)
    image, warnings = decode(f, "percentile", 10_000)
    assert image.shape == (30, 40, 3) and warnings == ()
    assert not any(isinstance(v, np.ndarray) for v in vars(f).values())
    with pytest.raises(ImageConversionError, match="max_image_pixels"):
        decode(f, "percentile", 1000)
    tiny = Frame(SimpleNamespace(format="png", data=cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()),
                 S, 0.0, compressed=True)
    with pytest.raises(ImageConversionError, match="too small"):
        decode(tiny, "percentile")
    junk = Frame(SimpleNamespace(format="png", data=b"\x89PNG\r\n\x1a\nnonsense"), S, 0.0, compressed=True)
    assert junk.size is None and "IHDR" in junk.header_error
