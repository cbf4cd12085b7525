"""rosbag2 files for the node (siam-bag from-video; results bags with siam_tracker_ros types)."""
import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags (requirements-ros.txt) not installed")

from siam_tracker_ros.cli.bag import main as siam_bag  # noqa: E402
from siam_tracker_ros.ros import bags  # noqa: E402
from siam_tracker_ros.ros.image_conversion import image_msg_to_bgr, image_msg_to_numpy  # noqa: E402


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(5)]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), f)   # lossless
    return str(folder), frames


@pytest.mark.parametrize("storage,encoding", [("sqlite3", "bgr8"), ("mcap", "rgb8")])
def test_from_video_folder_round_trip(tmp_path, image_folder, storage, encoding):
    folder, frames = image_folder
    out = str(tmp_path / "bag")
    assert siam_bag(["from-video", folder, out, "--fps", "20", "--storage", storage,
                     "--encoding", encoding, "--max-frames", "4"]) == 0
    got = list(bags.read_image_bag(out, "/camera/image_raw"))
    assert len(got) == 4
    for i, (topic, t, raw, msg) in enumerate(got):
        assert msg.encoding == encoding and msg.header.frame_id == "camera"
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        assert stamp == t == 1_700_000_000 * 10**9 + i * 50_000_000   # 20 fps
        np.testing.assert_array_equal(image_msg_to_bgr(msg), frames[i])
    # the bag exists: a second write needs --overwrite
    assert siam_bag(["from-video", folder, out]) == 2
    assert siam_bag(["from-video", folder, out, "--overwrite"]) == 0


def test_from_video_file(tmp_path):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (32, 24))
    assert writer.isOpened()
    for i in range(6):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    out = str(tmp_path / "bag")
    assert siam_bag(["from-video", path, out, "--encoding", "mono8"]) == 0
    got = list(bags.read_image_bag(out))
    assert len(got) == 6
    assert got[1][1] - got[0][1] == round(1e9 / 12)      # the video's own rate
    assert image_msg_to_numpy(got[3][3]).shape == (24, 32)


def test_missing_input_is_an_error(tmp_path):
    assert siam_bag(["from-video", str(tmp_path / "nothing.avi"), str(tmp_path / "bag")]) == 2


@pytest.mark.ros_env
def test_project_messages_in_bags(tmp_path):
    store = bags.typestore()
    TrackedObject = store.types["siam_tracker_ros/msg/TrackedObject"]
    assert "center_x_norm" in TrackedObject.__dataclass_fields__
    cmap = store.types["siam_tracker_ros/msg/ConfidenceMap"]
    assert "map" in cmap.__dataclass_fields__
    # CDR written by rclpy reads back with rosbags (the demo's results bag)
    from rclpy.serialization import serialize_message
    from siam_tracker_ros.msg import TrackedObject as RclpyTrackedObject
    m = RclpyTrackedObject(target_id=3, state=1, x=1.5, score=0.25)
    back = store.deserialize_cdr(serialize_message(m), "siam_tracker_ros/msg/TrackedObject")
    assert (back.target_id, back.state, back.x, back.score) == (3, 1, 1.5, 0.25)
