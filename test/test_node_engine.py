"""The node runs with `engine: onnxruntime` from a params file (issue 7)."""
import signal

import pytest

from ros_node_fixtures import NodeUnderTest, load_clip

from siam_tracker_ros.core.tracking.base import TrackState

pytestmark = pytest.mark.ros_env

T0 = 1_700_000_000 * 1_000_000_000
DT = 33_000_000


def test_node_tracks_with_onnxruntime_engine_from_params_file(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (requirements.txt pins it)")
    params = tmp_path / "engine.yaml"
    params.write_text("siam_tracker:\n  ros__parameters:\n    engine: onnxruntime\n    num_threads: 1\n")
    clip = load_clip(6)
    node = NodeUnderTest(tmp_path / "ros_log", extra_args=("--params-file", str(params)))
    try:
        assert node.proc.wait_for_line(r"engine onnxruntime", 30.0), node.proc.output
        c = node.client
        c.publish_frame(clip.frames[0], T0)
        assert c.wait_for(lambda: c.objects_for(T0), 30.0), node.proc.output
        c.send_init(clip.init_box, stamp=T0, target_id=3)
        assert node.proc.wait_for_line(r"target 3 initialised", 60.0), node.proc.output
        w, h = clip.size
        for i in range(1, 5):
            stamp = T0 + i * DT
            c.publish_frame(clip.frames[i], stamp)
            assert c.wait_for(lambda: c.objects_for(stamp), 60.0), node.proc.output
            msg = c.objects_for(stamp)[0].msg
            assert msg.target_id == 3
            assert msg.state in (TrackState.TRACKING, TrackState.LOST)
            assert 0.0 <= msg.score <= 1.0
            assert msg.x >= 0 and msg.y >= 0 and msg.x + msg.width <= w and msg.y + msg.height <= h
    finally:
        code = node.close(signal.SIGINT)
    assert code == 0, node.proc.output
