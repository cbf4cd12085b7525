"""The lifecycle node (`tracker_node ... -- --lifecycle`) in its own process: a corrupt
weights file makes configure fail with the reason (log and /diagnostics ERROR) and the node
stays alive and unconfigured; reload parameters can be set while unconfigured and are
refused while configured; configure + activate then track compressed (jpeg) input;
deactivate stops answering; cleanup releases the model."""
import signal
import time

import pytest

from ros_node_fixtures import NodeUnderTest, load_clip, reliable_qos, statuses, wait_until

from siam_tracker_ros.core.tracking.base import TrackState

pytestmark = pytest.mark.ros_env

T0 = 1_770_000_000 * 1_000_000_000
DT = 33_000_000
TIMEOUT = 30.0
ERROR = b"\x02"


def test_lifecycle_corrupt_weights_then_compressed_tracking(tmp_path):
    from sensor_msgs.msg import CompressedImage

    from siam_tracker_ros.ros.client import make_header
    from siam_tracker_ros.ros.compressed_image import bgr_to_compressed_msg
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint" + bytes(range(256)) * 8)
    clip = load_clip(8)
    node = NodeUnderTest(tmp_path / "ros_log", lifecycle=True, image_qos=reliable_qos(),
                         extra_args=("-p", f"weights:={corrupt}", "-p", "qos.reliability:=reliable",
                                     "-p", "qos.depth:=10"))
    c, proc = node.client, node.proc
    try:
        assert node.state() == "unconfigured"
        # configure with the corrupt file: fails with the reason, the node stays unconfigured
        assert node.transition("configure") is False
        assert proc.wait_for_line(r"ERROR.*configure failed.*corrupt\.pt", TIMEOUT), proc.output
        assert proc.proc.poll() is None and node.state() == "unconfigured"

        def model_error_reported():
            return any(s.level == ERROR and "no model" in s.message and "corrupt.pt" in s.message
                       for s in statuses(c))
        assert c.wait_for(model_error_reported, 5.0), [(s.level, s.message) for s in statuses(c)][-3:]
        assert "corrupt.pt" in c.diagnostic_values().get("model_error", "")

        # reload parameters may change while unconfigured
        assert node.set_parameters(weights="", input="compressed") == [(True, ""), (True, "")]
        assert node.transition("configure") is True and node.state() == "inactive"
        ok, reason = node.set_parameters(model="siamfc")[0]
        assert not ok and "reload" in reason and "cleanup" in reason, reason
        assert node.transition("activate") is True and node.state() == "active"

        # compressed input on image/compressed
        pub = c.node.create_publisher(CompressedImage, "/test/image/compressed", reliable_qos())
        assert wait_until(lambda: pub.get_subscription_count() > 0
                          and c.node.count_publishers("/siam_tracker/tracked_object") > 0, TIMEOUT)
        time.sleep(0.3)

        def send(i, answered=True):
            stamp = T0 + i * DT
            pub.publish(bgr_to_compressed_msg(clip.frames[i], "jpeg", header=make_header(stamp)))
            if answered:
                assert c.wait_for(lambda: c.objects_for(stamp), TIMEOUT), proc.output
                return c.objects_for(stamp)[0].msg
            time.sleep(0.5)
            assert not c.objects_for(stamp)
            return None

        assert send(0).state == TrackState.IDLE
        c.send_init(clip.init_box, stamp=T0, target_id=2)
        assert proc.wait_for_line(r"target 2 initialised", TIMEOUT), proc.output
        states = [send(i).state for i in range(1, 5)]
        assert states[-1] == TrackState.TRACKING, states
        assert c.wait_for(lambda: c.diagnostic_values().get("encoding", "").startswith("compressed"), 5.0)

        # deactivate: no more answers; cleanup: the model is released
        assert node.transition("deactivate") is True and node.state() == "inactive"
        send(5, answered=False)
        assert node.transition("cleanup") is True and node.state() == "unconfigured"
        assert c.wait_for(lambda: c.diagnostic_values().get("model") == "none", 5.0), c.diagnostic_values()
        assert proc.proc.poll() is None
    finally:
        code = node.close(signal.SIGINT)
    assert code == 0, proc.output
    assert "Traceback" not in proc.output, proc.output


@pytest.mark.parametrize("args, says", [
    (("-p", "weights:=WEIGHTS"), r"FATAL.*cannot start: cannot build tracker for model 'default'.*corrupt\.pt"),
    (("-p", "lost_threshold:=0.2"), r"FATAL.*cannot start: unknown parameter\(s\) lost_threshold "
                                     r"\(now supervisor\.score_lost\)"),
    # a model without trained weights (issue 12): refused, saying what to pass instead
    (("-p", "model:=siamfc"), r"FATAL.*cannot start: .*model 'siamfc' has no trained weights.*weights:=PATH"
                              r".*allow_untrained:=true"),
])
def test_plain_node_that_cannot_start_exits_1(tmp_path, args, says):
    """Plain mode (no --lifecycle) configures and activates itself at start: a model that cannot
    be loaded, or a parameter the node does not have, is a FATAL line and exit code 1."""
    from ros_node_fixtures import CONFIG

    from siam_tracker_ros.ros.process import NodeProcess, fresh_domain_id, ros_environment
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    env = ros_environment(fresh_domain_id(), log_dir=str(tmp_path / "ros_log"))
    proc = NodeProcess(["--params-file", CONFIG, *(a.replace("WEIGHTS", str(corrupt)) for a in args)], env)
    try:
        proc.proc.wait(120)
        assert proc.stop() == 1, proc.output
        assert proc.wait_for_line(says, 5.0), proc.output
    finally:
        proc.stop(signal.SIGKILL)
