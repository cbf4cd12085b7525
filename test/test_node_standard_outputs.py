"""Standard outputs (issue 15 items 2-4): vision_msgs/Detection2DArray on ~/detections, the
target's bearing from camera_info on ~/bearing, standard QoS overrides.

vision_msgs is not in the package registries the venv uses: the tests run against the
test-only stand-in test/ros_packages/vision_msgs (built from the published 4.x field lists
by `make env`); without it they skip (fail under SIAM_REQUIRE_ROS=1, where make test builds
it)."""
import math
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from ros_node_fixtures import IMAGE_TOPIC, NodeUnderTest, Recorder, load_clip, reliable_qos

from siam_tracker_ros.core import bearing
from siam_tracker_ros.core.tracking.base import TrackState

T0 = 1_700_000_000 * 1_000_000_000
DT = 33_000_000

# A 360x240 camera with strong barrel distortion (plumb_bob) and an off-centre principal point.
FX, FY, CX, CY = 300.0, 310.0, 182.0, 117.0
K1, K2, P1, P2, K3 = -0.28, 0.09, 0.0012, -0.0008, -0.01


def need_vision_msgs():
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError as exc:
        reason = (f"vision_msgs does not import ({exc}): build the test-only stand-in "
                  "test/ros_packages/vision_msgs with `make env`")
        if os.environ.get("SIAM_REQUIRE_ROS", "") not in ("", "0"):
            pytest.fail(f"SIAM_REQUIRE_ROS is set but {reason}", pytrace=False)
        pytest.skip(reason)


def camera_info_msg(stamp: int, width: int = 360, height: int = 240):
    from sensor_msgs.msg import CameraInfo
    from siam_tracker_ros.ros.client import make_header
    msg = CameraInfo(header=make_header(stamp, "camera_optical_frame"), width=width, height=height,
                     distortion_model="plumb_bob")
    msg.k = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
    msg.d = [K1, K2, P1, P2, K3]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [FX, 0.0, CX, 0.0, 0.0, FY, CY, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def project_by_hand(azimuth: float, elevation: float):
    """The pixel where the plumb_bob camera above sees direction (azimuth, elevation):
    the forward model written out (ray -> normalised point -> distortion -> K)."""
    x, y, z = math.sin(azimuth) * math.cos(elevation), -math.sin(elevation), math.cos(azimuth) * math.cos(elevation)
    a, b = x / z, y / z
    r2 = a * a + b * b
    radial = 1 + K1 * r2 + K2 * r2 ** 2 + K3 * r2 ** 3
    ad = a * radial + 2 * P1 * a * b + P2 * (r2 + 2 * a * a)
    bd = b * radial + P1 * (r2 + 2 * b * b) + 2 * P2 * a * b
    return FX * ad + CX, FY * bd + CY


# ---- fills (no node) ---------------------------------------------------------------
@pytest.mark.parametrize("azimuth,elevation", [(0.0, 0.0), (0.3, -0.2), (-0.45, 0.3), (0.5, 0.35)])
def test_bearing_matches_hand_projection_with_distortion(azimuth, elevation):
    from siam_tracker_ros.ros.outputs import target_bearing_fields
    u, v = project_by_hand(azimuth, elevation)
    w, h = 20.0, 14.0
    box = (u + 0.5 - w / 2, v + 0.5 - h / 2, w, h)      # centre pixel (u, v): px [i, i+1) boxes
    info = SimpleNamespace(k=[FX, 0, CX, 0, FY, CY, 0, 0, 1], d=[K1, K2, P1, P2, K3], distortion_model="plumb_bob",
                           r=[], p=[], binning_x=0, binning_y=0, roi=None)
    fields = target_bearing_fields(bearing.CameraModel.from_camera_info(info), box)
    assert fields["azimuth"] == pytest.approx(azimuth, abs=1e-9)
    assert fields["elevation"] == pytest.approx(elevation, abs=1e-9)
    ray = np.array([fields["ray_x"], fields["ray_y"], fields["ray_z"]])
    assert np.linalg.norm(ray) == pytest.approx(1.0)
    # and distortion matters here: the pinhole answer is off by far more than the tolerance
    pinhole = math.atan2((u - CX) / FX, 1.0)
    assert abs(pinhole - azimuth) > 1e-3 or azimuth == 0.0


def test_camera_info_by_stamp_else_latest_and_size_checked(ros_env):
    from siam_tracker_ros.ros.camera_info import CameraInfoInput, expected_image_size
    cam = CameraInfoInput()
    assert cam.model_for(T0, (360, 240)) == (None, "no camera_info received")
    first = camera_info_msg(T0)
    second = camera_info_msg(T0 + DT)
    second.k = [2 * FX, 0.0, CX, 0.0, 2 * FY, CY, 0.0, 0.0, 1.0]
    cam.store(first)
    cam.store(second)
    assert cam.model_for(T0, (360, 240))[0].k[0] == FX              # same stamp
    assert cam.model_for(T0 + 5 * DT, (360, 240))[0].k[0] == 2 * FX  # no such stamp: the newest
    model, why = cam.model_for(T0, (720, 480))
    assert model is None and "360x240" in why and "720x480" in why
    binned = camera_info_msg(T0 + 2 * DT, 720, 480)
    binned.binning_x = binned.binning_y = 2
    assert expected_image_size(binned) == (360, 240)
    uncalibrated = camera_info_msg(T0 + 3 * DT)
    uncalibrated.k = [0.0] * 9
    cam.store(uncalibrated)
    model, why = cam.model_for(T0 + 3 * DT, (360, 240))
    assert model is None and "not calibrated" in why


def test_camera_info_topic_follows_image_pipeline(ros_env):
    """Beside the resolved image topic (also for /compressed); `camera_info` remapped wins."""
    from siam_tracker_ros.ros.camera_info import camera_info_topic

    class FakeNode:
        def __init__(self, namespace="/", remaps=None):
            self.namespace, self.remaps = namespace, remaps or {}

        def get_namespace(self):
            return self.namespace

        def resolve_topic_name(self, name):
            full = name if name.startswith("/") else f"{self.namespace.rstrip('/')}/{name}"
            return self.remaps.get(full, full)
    assert camera_info_topic(FakeNode(), "/cam/image_raw") == "/cam/camera_info"
    assert camera_info_topic(FakeNode("/drone1"), "/drone1/cam/image_raw/compressed") == "/drone1/cam/camera_info"
    assert camera_info_topic(FakeNode(remaps={"/cam/camera_info": "/other/info"}), "/cam/image_raw") == "/other/info"
    assert camera_info_topic(FakeNode(remaps={"/camera_info": "/calib"}), "/cam/image_raw") == "/calib"


def test_detection_fill_from_tracked_object(ros_env):
    need_vision_msgs()
    from siam_tracker_ros.ros import outputs
    from siam_tracker_ros.ros.client import make_header
    header = make_header(T0)
    tracking = outputs.tracked_object(header, 7, TrackState.TRACKING, [10.0, 20.0, 30.0, 40.0], 0.8, 360, 240, 0.01)
    lost = outputs.tracked_object(header, 8, TrackState.LOST, [10.0, 20.0, 30.0, 40.0], 0.2, 360, 240, 0.01)
    array = outputs.detection_2d_array(header, [tracking, lost])
    assert array.header == header and len(array.detections) == 1      # LOST: no detection
    det = array.detections[0]
    assert det.id == "7" and det.header == header
    assert (det.bbox.center.position.x, det.bbox.center.position.y) == (25.0, 40.0)
    assert (det.bbox.size_x, det.bbox.size_y, det.bbox.center.theta) == (30.0, 40.0, 0.0)
    assert len(det.results) == 1 and det.results[0].hypothesis.score == pytest.approx(0.8)
    assert det.results[0].hypothesis.class_id == ""


# ---- the node as its own process -------------------------------------------------------
def test_detections_and_bearing_agree_with_tracked_object(tmp_path):
    """An outside client sends camera_info + frames + an init; ~/detections and ~/bearing of
    each frame carry the TrackedObject's stamp and agree with it (box, id, score; the bearing
    with the hand projection of the box centre through the distorting camera). The image
    subscription is made reliable through the standard QoS override (params file)."""
    need_vision_msgs()
    from sensor_msgs.msg import CameraInfo
    from siam_tracker_ros.msg import TargetBearing
    from vision_msgs.msg import Detection2DArray
    clip = load_clip(12)
    w, h = clip.size
    overrides = tmp_path / "qos.yaml"
    overrides.write_text(f"/**:\n  ros__parameters:\n    qos_overrides:\n      {IMAGE_TOPIC}:\n"
                         "        subscription:\n          reliability: reliable\n          depth: 10\n")
    node = NodeUnderTest(tmp_path / "log", extra_args=("--params-file", str(overrides)), image_qos=reliable_qos())
    try:
        c = node.client
        infos = c.node.create_publisher(CameraInfo, IMAGE_TOPIC.rsplit("/", 1)[0] + "/camera_info", reliable_qos())
        detections = Recorder(c, Detection2DArray, "/siam_tracker/detections")
        bearings = Recorder(c, TargetBearing, "/siam_tracker/bearing")
        from ros_node_fixtures import wait_until
        assert wait_until(lambda: infos.get_subscription_count() > 0, 20.0), node.proc.output
        # the standard override reached the image subscription
        subs = c.node.get_subscriptions_info_by_topic(IMAGE_TOPIC)
        assert subs and subs[0].qos_profile.reliability.name == "RELIABLE", subs
        stamps = [T0 + i * DT for i in range(len(clip.frames))]
        c.publish_frame(clip.frames[0], stamps[0])
        assert c.wait_for(lambda: c.objects_for(stamps[0]), 30.0), node.proc.output
        c.send_init(clip.init_box, stamp=stamps[0], target_id=5)
        assert c.wait_for(lambda: any(r.msg.target_id == 5 for r in c.objects_for(stamps[0])), 30.0)
        for stamp, frame in zip(stamps[1:], clip.frames[1:]):
            infos.publish(camera_info_msg(stamp, w, h))
            c.publish_frame(frame, stamp)
            assert c.wait_for(lambda: c.objects_for(stamp) and detections.for_stamp(stamp), 30.0), node.proc.output
        checked = 0
        for stamp in stamps[1:]:
            (tracked,) = [r.msg for r in c.objects_for(stamp)]
            (array,) = [r.msg for r in detections.for_stamp(stamp)]
            assert array.header.frame_id == tracked.header.frame_id
            if tracked.state != TrackState.TRACKING:
                assert not array.detections
                continue
            (det,) = array.detections
            assert det.id == "5" and det.header.stamp == tracked.header.stamp
            assert det.bbox.center.position.x == pytest.approx(tracked.x + tracked.width / 2, abs=1e-4)
            assert det.bbox.center.position.y == pytest.approx(tracked.y + tracked.height / 2, abs=1e-4)
            assert (det.bbox.size_x, det.bbox.size_y) == pytest.approx((tracked.width, tracked.height), abs=1e-4)
            assert det.results[0].hypothesis.score == pytest.approx(tracked.score, abs=1e-6)
            assert c.wait_for(lambda: bearings.for_stamp(stamp), 10.0), "no ~/bearing for a TRACKING frame"
            (b,) = [r.msg for r in bearings.for_stamp(stamp)]
            assert b.target_id == 5 and b.header.frame_id == tracked.header.frame_id
            u, v = project_by_hand(b.azimuth, b.elevation)          # the bearing sees the box centre
            assert u == pytest.approx(tracked.x + tracked.width / 2 - 0.5, abs=1e-3)
            assert v == pytest.approx(tracked.y + tracked.height / 2 - 0.5, abs=1e-3)
            checked += 1
        print(f"{checked} TRACKING frames checked of {len(stamps) - 1}")
        assert checked >= len(stamps) // 2, f"only {checked} TRACKING frames"
    finally:
        code = node.close(signal.SIGINT)
    assert code == 0, node.proc.output


def test_help_prints_usage_without_starting_ros(ros_subprocess_env):
    out = subprocess.run([sys.executable, "-m", "siam_tracker_ros.ros.tracker_node", "--help"], env=ros_subprocess_env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: tracker_node") and "image_transport" in out.stdout
    assert "[INFO]" not in out.stdout + out.stderr


@pytest.mark.parametrize("args,reason", [
    (("-p", "precision:=fp16", "-p", "device:=cpu", "-p", "engine:=torch"), "fp16 with engine torch needs a CUDA device"),
    (("-p", "precision:=fp16", "-p", "device:=cpu"), "fp16 with engine onnxruntime is not offered"),   # auto on a CPU
    (("-p", "precision:=int8"), "int8 is not offered"),
])
def test_unavailable_engine_or_precision_is_refused_with_the_reason(ros_subprocess_env, args, reason):
    out = subprocess.run([sys.executable, "-m", "siam_tracker_ros.ros.tracker_node", "--ros-args", *args],
                         env=ros_subprocess_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and reason in out.stdout + out.stderr, out.stdout + out.stderr


# ---- former parameter names (one release) ------------------------------------------------
def test_former_parameters_still_apply_with_a_warning(ros_env):
    from siam_tracker_ros.ros import params, topics
    values = params.defaults()
    assert topics.image_transport(values) == ("raw", [])
    values["input"] = "compressed"
    transport, warnings = topics.image_transport(values)
    assert transport == "compressed" and "image_transport:=compressed" in warnings[0]
    values["input"], values["image_transport"] = "raw", "compressed"      # the former name at its default
    assert topics.image_transport(values) == ("compressed", [])
    qos, warnings = topics.image_qos(params.defaults(), "/cam/image_raw")
    assert (qos.reliability.name, qos.depth, warnings) == ("BEST_EFFORT", 1, [])
    values = dict(params.defaults(), **{"qos.reliability": "reliable", "qos.depth": 5})
    qos, warnings = topics.image_qos(values, "/cam/image_raw")
    assert (qos.reliability.name, qos.depth) == ("RELIABLE", 5)
    assert any("qos_overrides./cam/image_raw.subscription.reliability:=reliable" in w for w in warnings)
    assert any("qos_overrides./cam/image_raw.subscription.depth:=5" in w for w in warnings)


def test_former_input_parameter_subscribes_compressed_with_a_warning(tmp_path, ros_env):
    """`-p input:=compressed -p qos.depth:=3` (the former names) still subscribe
    <image>/compressed with depth 3, and the log names the replacements."""
    from siam_tracker_ros.ros.process import NodeProcess, fresh_domain_id, ros_environment
    from ros_node_fixtures import CONFIG
    env = ros_environment(fresh_domain_id(), log_dir=str(tmp_path / "log"))
    proc = NodeProcess(["--params-file", CONFIG, "-r", f"image:={IMAGE_TOPIC}", "-p", "input:=compressed",
                        "-p", "qos.depth:=3"], env)
    try:
        line = proc.wait_for_line(r"ready: image topic", 90.0)
        assert line and f"'{IMAGE_TOPIC}/compressed' (compressed, best_effort, depth 3" in line, proc.output
        assert "parameter 'input' is deprecated" in proc.output and "image_transport:=compressed" in proc.output
        assert f"qos_overrides.{IMAGE_TOPIC}/compressed.subscription.depth:=3" in proc.output
    finally:
        assert proc.stop(signal.SIGINT) == 0, proc.output
