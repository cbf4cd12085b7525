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
