"""Malformed input never stops the tracker node: each bad input gives a logged
error, and the node keeps answering good frames afterwards."""
import signal
import time

import numpy as np
import pytest

from ros_node_fixtures import NodeUnderTest, load_clip

from siam_tracker_ros.core.tracking.base import TrackState

pytestmark = pytest.mark.ros_env   # skipped without rclpy/siam_tracker_ros (fails under make test)

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

        # Bad images and bad init boxes, alternating; each followed by a good frame that is
        # answered. Errors are throttled per kind (ERROR_THROTTLE_S): the alternation and a
        # short pause keep two errors of one kind far enough apart to be logged.
        bad_inputs = [
            (raw_image(0, w, h, encoding="8UC2", step=w * 2), r"image skipped: unsupported encoding '8UC2'"),
            ([50, 50, 0, 20], r"init ignored: box width and height must be positive"),
            (raw_image(0, w, h, nbytes=h * w * 3 - 1), r"image skipped: .*fewer than height \* step"),
            ([w + 10, 10, 20, 20], r"init ignored: .*outside"),
            (raw_image(0, w, h, step=w * 3 - 3), r"image skipped: step .* smaller than width"),
            ([50, 50, -5, 20], r"init ignored: box width and height must be positive"),
            (raw_image(0, w, h, encoding="32FC1", step=w * 4), r"unsupported encoding '32FC1' for tracking"),
            ([np.nan, 50, 5, 20], r"init ignored: box must be 4 finite numbers"),
        ]
        for bad, pattern in bad_inputs:
            time.sleep(0.6 * ERROR_THROTTLE_S + 0.1)
            mark = len(proc.lines)
            if isinstance(bad, list):
                c.send_init(bad, stamp=stamp)
            else:
                stamp += DT
                bad.header = make_header(stamp)
                c.publish_frame(None, stamp, msg=bad)
            expect_error(pattern)
            assert not c.objects_for(stamp) or isinstance(bad, list)   # no answer to a bad frame
            good_frame_answers({TrackState.IDLE})
        errors += len(bad_inputs)

        # Throttled: the same error right away is counted (diagnostics) but not logged again.
        repeat = len(proc.lines)
        stamp += DT
        bad = bad_inputs[-2][0]
        bad.header = make_header(stamp)
        c.publish_frame(None, stamp, msg=bad)
        errors += 1
        assert c.wait_for(lambda: int(c.diagnostic_values().get("errors", 0)) >= errors, 5.0), \
            (errors, c.diagnostic_values())
        assert not [line for line in proc.lines[repeat:] if "ERROR" in line], proc.lines[repeat:]

        # A good init, then a bad one: the target stays tracked.
        mark = len(proc.lines)
        c.send_init(clip.init_box, stamp=stamp - DT)
        assert proc.wait_for_line(r"initialised", TIMEOUT, start=mark), proc.output
        good_frame_answers({TrackState.TRACKING, TrackState.LOST})
        time.sleep(ERROR_THROTTLE_S + 0.1)
        mark = len(proc.lines)
        c.send_init([50, 50, 0, 0], stamp=stamp)
        expect_error(r"init ignored: box width and height must be positive")
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
