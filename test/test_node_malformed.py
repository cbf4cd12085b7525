"""Malformed input never stops the tracker node: each bad input gives a logged
error, and the node keeps answering good frames afterwards."""
import signal
import time

import numpy as np
import pytest

from ros_node_fixtures import NodeUnderTest, load_clip

from siam_tracker_ros.core.tracking.base import TrackState

pytestmark = pytest.mark.ros_env   # skipped without rclpy/siam_tracker_msgs (fails under make test)

T0 = 1_600_000_000 * 1_000_000_000
DT = 33_000_000
TIMEOUT = 20.0


def raw_image(stamp, width, height, encoding="bgr8", step=None, nbytes=None):
    from sensor_msgs.msg import Image

    from siam_tracker_ros.ros.client import make_header
    step = width * 3 if step is None else step
    msg = Image(header=make_header(stamp), height=height, width=width, encoding=encoding, step=step)
    msg.data = bytes(height * step if nbytes is None else nbytes)
    return msg


def test_malformed_input_is_logged_and_survived(tmp_path):
    from siam_tracker_ros.ros.client import make_header
    from siam_tracker_ros.ros.tracker_node import ERROR_THROTTLE_S
    clip = load_clip(20)
    w, h = clip.size
    node = NodeUnderTest(tmp_path / "ros_log")
    c, proc = node.client, node.proc
    stamp = T0
    frame_index = 0

    def expect_error(pattern):
        line = proc.wait_for_line(pattern, TIMEOUT, start=mark)
        assert line is not None, f"no log line matching {pattern!r}:\n{proc.output}"
        assert "ERROR" in line, line

    def good_frame_answers(state=None):
        """A good frame after the bad input still gets its TrackedObject."""
        nonlocal stamp, frame_index
        stamp += DT
        frame_index = (frame_index + 1) % len(clip.frames)
        c.publish_frame(clip.frames[frame_index], stamp)
        assert c.wait_for(lambda: c.objects_for(stamp), TIMEOUT), f"no answer after bad input\n{proc.output}"
        m = c.objects_for(stamp)[0].msg
        if state is not None:
            assert m.state in state, m
        return m

    try:
        # init before any image
        mark = len(proc.lines)
        c.send_init([10, 10, 20, 20])
        expect_error(r"init ignored: no image received yet")
        errors = 1
        good_frame_answers({TrackState.IDLE})

        # images the node cannot read; each followed by a good frame
        bad_images = [
            (raw_image(0, w, h, encoding="yuv422", step=w * 2), r"unsupported encoding 'yuv422'"),
            (raw_image(0, w, h, nbytes=h * w * 3 - 1), r"fewer than height \* step"),
            (raw_image(0, w, h, step=w * 3 - 3), r"smaller than width"),
            (raw_image(0, w, h, encoding="32FC1", step=w * 4), r"unsupported encoding '32FC1' for tracking"),
        ]
        for msg, pattern in bad_images:
            time.sleep(ERROR_THROTTLE_S + 0.2)   # errors from one place are throttled
            mark = len(proc.lines)
            stamp += DT
            msg.header = make_header(stamp)
            c.publish_frame(None, stamp, msg=msg)
            expect_error(pattern)
            # the bad frame produced no TrackedObject, the next good one does
            assert not c.objects_for(stamp)
            good_frame_answers({TrackState.IDLE})
            # throttled: the same error again right away is counted but not logged again
            repeat = len(proc.lines)
            stamp += DT
            msg.header = make_header(stamp)
            c.publish_frame(None, stamp, msg=msg)
            errors += 2
            assert c.wait_for(lambda: int(c.diagnostic_values().get("errors", 0)) >= errors, 5.0), \
                (errors, c.diagnostic_values())
            good_frame_answers({TrackState.IDLE})
            assert not [line for line in proc.lines[repeat:] if "ERROR" in line], proc.lines[repeat:]

        # a good init, then bad ones: the target stays tracked
        mark = len(proc.lines)
        c.send_init(clip.init_box, stamp=stamp)
        assert proc.wait_for_line(r"initialised", TIMEOUT, start=mark), proc.output
        good_frame_answers({TrackState.TRACKING, TrackState.LOST})
        bad_inits = [([50, 50, 0, 20], r"init ignored: box width and height must be positive"),
                     ([w + 10, 10, 20, 20], r"init ignored: .*outside"),
                     ([50, 50, -5, 20], r"init ignored: box width and height must be positive"),
                     ([np.nan, 50, 5, 20], r"init ignored: box must be 4 finite numbers")]
        for box, pattern in bad_inits:
            time.sleep(ERROR_THROTTLE_S + 0.2)
            mark = len(proc.lines)
            c.send_init(box, stamp=stamp)
            expect_error(pattern)
            m = good_frame_answers({TrackState.TRACKING, TrackState.LOST})
            assert m.target_id == 1

        # reset: IDLE until the next init
        response = c.reset()
        assert response is not None and response.success
        good_frame_answers({TrackState.IDLE})
    finally:
        code = node.close(signal.SIGTERM)
    assert code == 0, f"exit code {code} after SIGTERM\n{proc.output}"
    assert "Traceback" not in proc.output, proc.output
