"""The node's wiring driven directly, in this process, without DDS or the worker thread
(deterministic): callbacks -> inbox / session -> publishers, as the worker runs them. The
session's and the inbox's rules alone: test_session.py (no rclpy)."""
import numpy as np
import pytest

from ros_node_fixtures import load_clip

from siam_tracker_ros.core.tracking.base import TrackState

pytestmark = pytest.mark.ros_env

T0 = 1_780_000_000 * 1_000_000_000
DT = 33_000_000


class FakePub:
    def __init__(self, subscribers=0):
        self.msgs = []
        self.subscribers = subscribers

    def publish(self, msg):
        self.msgs.append(msg)

    def get_subscription_count(self):
        return self.subscribers


def fake_publishers(n, maps=1):
    p = n.pubs
    p.object, p.objects, p.map, p.debug, p.conf_image = FakePub(), FakePub(), FakePub(maps), FakePub(maps), \
        FakePub(maps)


@pytest.fixture
def node(rclpy_context):
    from siam_tracker_ros.ros.tracker_node import TrackerNode
    n = TrackerNode(context=rclpy_context)
    n.stop_worker()                      # the test calls process() itself
    assert n.configure_and_activate()
    fake_publishers(n)
    try:
        yield n
    finally:
        n.destroy_node()


def image_msg(image, stamp):
    from siam_tracker_ros.ros.client import make_header
    from siam_tracker_ros.ros.image_conversion import numpy_to_image_msg
    return numpy_to_image_msg(image, "bgr8", header=make_header(stamp))


def init_msg(box, stamp, target_id):
    from siam_tracker_ros.msg import TargetInit

    from siam_tracker_ros.ros.client import make_header
    m = TargetInit(header=make_header(stamp), target_id=target_id)
    m.x, m.y, m.width, m.height = (float(v) for v in box)
    return m


def objects_at(node, stamp):
    from siam_tracker_ros.ros.inbox import stamp_ns
    return {m.target_id: m for m in node.pubs.object.msgs if stamp_ns(m.header.stamp) == stamp}


def on_image(node, msg):
    node._on_frame(msg, False)


def test_init_on_the_answered_frame_with_another_target(node):
    clip = load_clip(6)
    on_image(node, image_msg(clip.frames[0], T0))
    node.process()
    assert objects_at(node, T0)[0].state == TrackState.IDLE
    node._on_init(init_msg(clip.init_box, T0, 1))
    node.process()                                   # no new frame: the init alone ...
    assert node.session.ids == [1] and node.session.records[1].frames == 0
    ack = objects_at(node, T0)[1]                     # ... acknowledged on its frame
    assert (ack.state, ack.score) == (TrackState.TRACKING, 1.0)
    np.testing.assert_allclose([ack.x, ack.y, ack.width, ack.height], clip.init_box, atol=1e-3)
    # frame 1 and an init for id 2 drawn on frame 1 arrive before the worker runs
    box2 = np.array([280.0, 40.0, 50.0, 50.0])
    on_image(node, image_msg(clip.frames[1], T0 + DT))
    node._on_init(init_msg(box2, T0 + DT, 2))
    node.process()
    got = objects_at(node, T0 + DT)
    assert sorted(got) == [1, 2]
    assert len([m for m in node.pubs.object.msgs if m.target_id == 2]) == 1   # no separate ack
    # id 2 answers with its init box on its own init frame and is not tracked on it
    assert got[2].state == TrackState.TRACKING and got[2].score == 1.0
    np.testing.assert_allclose([got[2].x, got[2].y, got[2].width, got[2].height], box2, atol=1e-3)
    assert node.session.records[2].frames == 0 and node.session.records[1].frames == 1
    assert got[1].score < 1.0
    # confidence maps: only for the tracked target; the array holds both
    assert [m.target_id for m in node.pubs.map.msgs] == [1]
    conf = node.pubs.conf_image.msgs                   # ~/confidence_image: the same map as an Image
    assert len(conf) == 1 and conf[0].encoding == "32FC1"
    assert (conf[0].width, conf[0].height) == (node.pubs.map.msgs[0].map.width, node.pubs.map.msgs[0].map.height)
    assert sorted(o.target_id for o in node.pubs.objects.msgs[-1].objects) == [1, 2]
    on_image(node, image_msg(clip.frames[2], T0 + 2 * DT))
    node.process()
    assert node.session.records[2].frames == 1 and node.session.records[1].frames == 2


def test_out_of_order_and_clock_reset(node):
    from siam_tracker_ros.ros.health import DROP_OUT_OF_ORDER
    clip = load_clip(4)
    on_image(node, image_msg(clip.frames[0], T0 + 5 * DT))
    node.process()
    on_image(node, image_msg(clip.frames[1], T0 + 2 * DT))          # 99 ms older: dropped
    assert not node.inbox.waiting and node.health.dropped[DROP_OUT_OF_ORDER] == 1
    on_image(node, image_msg(clip.frames[1], T0 + 5 * DT))          # same stamp: accepted
    assert node.inbox.waiting
    node.process()
    on_image(node, image_msg(clip.frames[2], T0 - 10_000_000_000))  # 10 s back: a clock reset ...
    assert node.inbox.waiting and node.health.counts["clock_resets"] == 0
    node.process()                                                    # ... once it has decoded
    assert node.health.counts["clock_resets"] == 1
    assert [f.stamp for f in node.inbox.cache.frames] == [T0 - 10_000_000_000]   # old timeline dropped
    on_image(node, image_msg(clip.frames[3], T0 - 10_000_000_000 + DT))     # the new timeline goes on
    assert node.inbox.waiting and node.health.dropped[DROP_OUT_OF_ORDER] == 1
    level, message, values = node.health.report(targets={}, active=True, input_timeout=1.0,
                                                drop_warn_ratio=0.5)
    assert level == 1 and "clock reset" in message and "out_of_order" in message


def test_init_drawn_before_a_size_change_is_scaled(node):
    import cv2
    clip = load_clip(4)
    on_image(node, image_msg(clip.frames[0], T0))
    node.process()
    node._on_init(init_msg(clip.init_box, T0, 3))                   # drawn on the small frame ...
    big = cv2.resize(clip.frames[1], None, fx=2.0, fy=2.0)
    on_image(node, image_msg(big, T0 + DT))                         # ... the next frame is 2x
    node.process()
    got = objects_at(node, T0 + DT)
    assert list(got) == [3] and got[3].state == TrackState.TRACKING
    np.testing.assert_allclose([got[3].x, got[3].y, got[3].width, got[3].height],
                               clip.init_box * 2.0, atol=1e-3)
    assert node.health.counts["size_changes"] == 1


def test_a_target_whose_tracking_raises_does_not_cost_the_others_the_frame(node):
    """Target 2's tracker raises on a frame: target 1 is answered on that frame as usual,
    target 2 is answered LOST with a zero box, the failure is counted as an error and named
    on its /diagnostics status; the next frames go on the same way."""
    clip = load_clip(5)
    on_image(node, image_msg(clip.frames[0], T0))
    node._on_init(init_msg(clip.init_box, T0, 1))
    node._on_init(init_msg([280.0, 40.0, 50.0, 50.0], T0, 2))
    node.process()
    on_image(node, image_msg(clip.frames[1], T0 + DT))
    node.process()
    assert node.session.mt.ids == [1, 2] and node.health.counts["errors"] == 0

    def boom(image):
        raise RuntimeError("out of memory")
    # both paths: batched through one network call (torch) and one call per target (onnxruntime)
    node.session.mt.tracker(2).track_prepare = boom
    node.session.mt.tracker(2).track = boom
    for k in (2, 3):
        on_image(node, image_msg(clip.frames[k], T0 + k * DT))
        node.process()
        got = objects_at(node, T0 + k * DT)
        assert sorted(got) == [1, 2] and got[1].state == TrackState.TRACKING and got[1].width > 0
        assert got[2].state == TrackState.LOST
        assert [got[2].x, got[2].y, got[2].width, got[2].height, got[2].score] == [0.0] * 5
        assert sorted(o.target_id for o in node.pubs.objects.msgs[-1].objects) == [1, 2]
    assert node.health.counts["errors"] == 1          # the failure once; then an orphan, not tracked
    assert node.session.records[1].frames == 3 and node.session.mt.ids == [1]
    view = node.session.view()[2]
    assert view.state == TrackState.LOST and view.note == "tracking failed: RuntimeError: out of memory; send a new init"


def test_supervisor_off_gives_raw_results(rclpy_context):
    """supervisor.enabled false: raw tracker results, never LOST, even with the target gone;
    the switch needs a reload (refused while configured, taken after cleanup)."""
    from rclpy.parameter import Parameter

    from siam_tracker_ros.ros.tracker_node import TrackerNode
    node = TrackerNode(context=rclpy_context,
                       parameter_overrides=[Parameter("supervisor.enabled", value=False)])
    node.stop_worker()
    try:
        assert node.configure_and_activate()
        fake_publishers(node, maps=0)
        assert not node.session.mt.supervised
        clip = load_clip(12)
        on_image(node, image_msg(clip.frames[0], T0))
        node.process()
        node._on_init(init_msg(clip.init_box, T0, 1))
        node.process()
        x, y, w, h = (int(v) for v in clip.init_box)
        for i in range(1, 12):
            frame = clip.frames[i].copy()
            frame[max(0, y - h):y + 2 * h, max(0, x - w):x + 2 * w] = 127     # the target is gone
            on_image(node, image_msg(frame, T0 + i * DT))
            node.process()
            assert objects_at(node, T0 + i * DT)[1].state == TrackState.TRACKING
        r = node.set_parameters([Parameter("supervisor.enabled", value=True)])[0]
        assert not r.successful and "reload" in r.reason
        r = node.set_parameters([Parameter("supervisor.score_lost", value=0.4)])[0]
        assert r.successful                       # stored for the next load
        assert node.trigger_deactivate() and node.trigger_cleanup()
        assert node.set_parameters([Parameter("supervisor.enabled", value=True)])[0].successful
        assert node.configure_and_activate() and node.session.mt.supervised
        assert node.session.mt.supervisor_params["score_lost"] == 0.4
    finally:
        node.destroy_node()
