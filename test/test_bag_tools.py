"""siam-bag: ground truth and init topics, sequence layouts, scoring, replay (loop, Ctrl-C)."""
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags (requirements-ros.txt) not installed")

from siam_tracker_ros.cli.bag import main as siam_bag  # noqa: E402
from siam_tracker_ros.evaluation import metrics  # noqa: E402
from siam_tracker_ros.ros import bag_eval, bags  # noqa: E402

W, H = 64, 48
START = bags.DEFAULT_START_NS


def write_frames(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]
    for i, f in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f"{i + 1:08d}.png"), f)
    return frames


@pytest.fixture
def got10k_sequence(tmp_path):
    """GOT-10k layout: images and groundtruth.txt in one folder, absence.label / cover.label."""
    seq = tmp_path / "GOT-10k_Val_000009"
    write_frames(str(seq), 5)
    gt = ["10,12,20,16", "11.5,12,20,16", "nan,nan,nan,nan", "13,14,20,16", "14,15,20,16"]
    (seq / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    (seq / "absence.label").write_text("0\n0\n1\n0\n0\n")
    (seq / "cover.label").write_text("8\n8\n0\n8\n0\n")    # frame 4 fully covered
    return str(seq)


def topic_messages(bag, topic):
    store = bags.typestore()
    return [(t, store.deserialize_cdr(raw, conn.msgtype))
            for conn, t, raw in bags.read_bag_messages(bag, [topic])]


def test_from_video_groundtruth_and_init_got10k(tmp_path, got10k_sequence):
    out = str(tmp_path / "bag")
    assert siam_bag(["from-video", got10k_sequence, out, "--fps", "10", "--target-id", "4"]) == 0
    topics = bags.bag_topics(out)
    assert topics == {"/camera/image_raw": bags.IMAGE_TYPE, bags.GROUNDTRUTH_TOPIC: bags.TRACKED_OBJECT_TYPE,
                      bags.INIT_TOPIC: bags.TARGET_INIT_TYPE}
    images = topic_messages(out, "/camera/image_raw")
    gts = topic_messages(out, bags.GROUNDTRUTH_TOPIC)
    assert len(images) == len(gts) == 5
    for i, ((ti, img), (tg, gt)) in enumerate(zip(images, gts)):
        stamp = START + i * 100_000_000
        assert ti == tg == stamp == bags.stamp_of(img.header) == bags.stamp_of(gt.header)
        assert gt.header.frame_id == img.header.frame_id == "camera"
        assert (gt.image_width, gt.image_height, gt.target_id) == (W, H, 4)
    states = [g.state for _, g in gts]
    assert states == [1, 1, 2, 1, 2]          # NaN row + absence.label, cover.label == 0 -> LOST
    assert [gts[1][1].x, gts[1][1].y, gts[1][1].width, gts[1][1].height] == [11.5, 12, 20, 16]
    assert (gts[2][1].x, gts[2][1].width, gts[2][1].score) == (0.0, 0.0, 0.0)
    (t_init, init), = topic_messages(out, bags.INIT_TOPIC)
    assert t_init == START and bags.stamp_of(init.header) == START and init.target_id == 4
    assert [init.x, init.y, init.width, init.height] == [10, 12, 20, 16]
    # at equal log times the image comes first, then its init
    order = [conn.topic for conn, t, _ in bags.read_bag_messages(out) if t == START]
    assert order.index("/camera/image_raw") < order.index(bags.INIT_TOPIC)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_from_video_writes_metadata_humble_reads(tmp_path, got10k_sequence, storage):
    """rosbag2 metadata version 8 (bags.METADATA_VERSION says why): every field Humble's
    rosbag2 decodes for it is there, offered_qos_profiles is a string (Humble reads that field
    as a string; version 9 makes it a list) holding QoS policies as integers."""
    import sqlite3

    import yaml
    out = tmp_path / "bag"
    assert siam_bag(["from-video", got10k_sequence, str(out), "--storage", storage]) == 0
    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 8
    assert info["storage_identifier"] == storage
    assert isinstance(info["duration"]["nanoseconds"], int)
    assert isinstance(info["starting_time"]["nanoseconds_since_epoch"], int)
    assert info["message_count"] == 5 + 5 + 1            # images, ground truth, init
    assert isinstance(info["compression_format"], str) and isinstance(info["compression_mode"], str)
    assert info["relative_file_paths"] == [f["path"] for f in info["files"]]
    for f in info["files"]:
        assert (out / f["path"]).is_file() and {"starting_time", "duration", "message_count"} <= set(f)
    topics = info["topics_with_message_count"]
    assert {t["topic_metadata"]["name"] for t in topics} == {"/camera/image_raw", bags.GROUNDTRUTH_TOPIC,
                                                              bags.INIT_TOPIC}
    for t in topics:
        meta = t["topic_metadata"]
        assert {"name", "type", "serialization_format"} <= set(meta) and meta["serialization_format"] == "cdr"
        qos = meta["offered_qos_profiles"]
        assert isinstance(qos, str), f"{meta['name']}: offered_qos_profiles is {type(qos).__name__}"
        for profile in yaml.safe_load(qos) or []:
            for policy in ("history", "reliability", "durability", "liveliness"):
                assert isinstance(profile[policy], int), (meta["name"], policy, profile[policy])
    if storage == "sqlite3":      # the same string in the database's topics table
        (db,) = out.glob("*.db3")
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT name, offered_qos_profiles FROM topics").fetchall()
        assert {name: q for name, q in rows} == {t["topic_metadata"]["name"]: t["topic_metadata"]
                                                  ["offered_qos_profiles"] for t in topics}


def test_from_video_otb_layout_slices_groundtruth(tmp_path):
    seq = tmp_path / "Crossing"
    write_frames(str(seq / "img"), 6)
    (seq / "groundtruth_rect.txt").write_text("".join(f"{1 + i}\t{2 + i}\t10\t8\n" for i in range(6)))
    out = str(tmp_path / "bag")
    assert siam_bag(["from-video", str(seq), out, "--start", "2", "--max-frames", "3", "--init", "none"]) == 0
    assert bags.INIT_TOPIC not in bags.bag_topics(out)
    content = bags.read_track_bag(out)
    assert len(content.stamps) == 3
    # frame k of the bag carries row start + k of the file, as written (1-based OTB: no shift)
    assert [content.groundtruth[s][0] for s in content.stamps] == [3.0, 4.0, 5.0]


def test_from_video_explicit_groundtruth_and_init(tmp_path):
    folder = str(tmp_path / "frames")
    write_frames(folder, 3)
    gt_file = tmp_path / "boxes.txt"
    gt_file.write_text("1,1,5,5\n2,2,5,5\n")       # shorter than the frames
    out = str(tmp_path / "bag")
    assert siam_bag(["from-video", folder, out, "--groundtruth", str(gt_file), "--init", "3,4,5,6"]) == 0
    content = bags.read_track_bag(out)
    assert len(content.stamps) == 3 and len(content.groundtruth) == 2
    assert content.inits[0][0] == content.stamps[0] and list(content.inits[0][1]) == [3, 4, 5, 6]
    # a plain image folder has no ground truth of its own
    out2 = str(tmp_path / "bag2")
    assert siam_bag(["from-video", folder, out2]) == 0
    assert bags.bag_topics(out2) == {"/camera/image_raw": bags.IMAGE_TYPE}
    assert siam_bag(["from-video", folder, str(tmp_path / "bag3"), "--init", "1,2,3"]) == 2


def record(state, box, score=0.9):
    return bags.ObjectRecord(state, np.asarray(box, dtype=np.float64), score)


def test_score_rules():
    """Init frame = the init box; LOST / IDLE -> zero box; a frame without a result -> zero box,
    counted as missing; frames before the init are not scored; absent ground truth excluded."""
    stamps = [100, 200, 300, 400, 500, 600]
    gt_boxes = [[0, 0, 9, 9], [10, 10, 20, 20], [12, 10, 20, 20], [14, 10, 20, 20], [16, 10, 20, 20],
                [np.nan] * 4]
    gt = dict(zip(stamps, map(np.asarray, gt_boxes)))
    results = {
        100: record(0, [0, 0, 0, 0]),                 # before the init: not scored
        200: record(0, [0, 0, 0, 0]),                 # the init frame, answered IDLE
        300: record(1, [13, 11, 20, 20]),
        400: record(2, [0, 0, 0, 0]),                 # LOST
        # 500: dropped
        600: record(1, [1, 1, 5, 5]),                 # ground truth absent there
    }
    init = (200, np.array([10.0, 10, 20, 20]), 1)
    m = bags.score(gt, results, init, stamps)
    assert (m["frames"], m["tracking"], m["lost"], m["idle"], m["missing"], m["absent_frames"]) == (5, 2, 1, 0, 1, 1)
    pred = np.array([[10, 10, 20, 20], [13, 11, 20, 20], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 5, 5]], float)
    ref = metrics.sequence_metrics(pred, np.asarray(gt_boxes[1:]), np.array([0, 0, 0, 0, 1], bool))
    for key in ("auc", "precision20", "ao", "sr50"):
        assert m[key] == pytest.approx(ref[key])
    assert m["auc"] == pytest.approx(np.mean(ref["success_curve"]))
    assert m["boxes"] == pred.tolist() and m["stamps"] == stamps[1:]
    with pytest.raises(ValueError):
        bags.score(gt, results, (700, np.ones(4), 1), stamps)


def test_score_bags_of_a_node_results_bag(tmp_path, got10k_sequence):
    """A results bag as recorded from the node (TrackedObjectArray here, log time = receive
    time, an extra target) scored against the input bag; the last answer per frame wins."""
    inp = str(tmp_path / "in")
    assert siam_bag(["from-video", got10k_sequence, inp]) == 0
    content = bags.read_track_bag(inp)
    store = bags.typestore()
    res = str(tmp_path / "res")
    Array = store.types[bags.TRACKED_OBJECT_ARRAY_TYPE]
    with bags.new_writer(res) as writer:
        conn = writer.add_connection("/siam_tracker/tracked_objects", bags.TRACKED_OBJECT_ARRAY_TYPE,
                                     typestore=store)
        for k, s in enumerate(content.stamps):
            header = bags._header(store, s, "camera")
            box = content.groundtruth[s] if bags.valid_box(content.groundtruth[s]) else None
            objs = [bags.tracked_object_message(store, header, 1, 1 if box is not None else 2, box, 0.9, W, H),
                    bags.tracked_object_message(store, header, 7, 1, [0, 0, 3, 3], 0.5, W, H)]
            if k == 1:   # a first, wrong answer for frame 1, then the right one
                wrong = bags.tracked_object_message(store, header, 1, 1, [40, 30, 5, 5], 0.9, W, H)
                writer.write(conn, 10 + 2 * k, store.serialize_cdr(Array(header=header, objects=[wrong]),
                                                                   bags.TRACKED_OBJECT_ARRAY_TYPE))
            writer.write(conn, 11 + 2 * k, store.serialize_cdr(Array(header=header, objects=objs),
                                                               bags.TRACKED_OBJECT_ARRAY_TYPE))
    out = bag_eval.score_bags(res, inp, results_topic="/siam_tracker/tracked_objects")
    m = out["metrics"]
    assert out["target_id"] == 1
    assert (m["frames"], m["missing"], m["absent_frames"]) == (5, 0, 2)
    assert m["auc"] == pytest.approx(np.mean(IOU_ABOVE_ALL)) and m["precision20"] == 1.0
    other = bag_eval.score_bags(res, inp, target_id=7, results_topic="/siam_tracker/tracked_objects")
    assert other["metrics"]["auc"] < 0.1
    assert siam_bag(["score", res, "--groundtruth-bag", inp, "--results-topic", "/siam_tracker/tracked_objects",
                     "--metrics-json", str(tmp_path / "m.json")]) == 0
    assert siam_bag(["score", inp]) == 2       # no results in the input bag


# perfect boxes: IoU 1 > every threshold except 1.0 itself
IOU_ABOVE_ALL = [1.0] * 20 + [0.0]


def test_eval_without_groundtruth_or_init(tmp_path):
    folder = str(tmp_path / "frames")
    write_frames(folder, 3)
    bag = str(tmp_path / "bag")
    assert siam_bag(["from-video", folder, bag]) == 0
    assert siam_bag(["eval", bag, "--no-supervisor", "--no-results-bag"]) == 2      # no init anywhere
    with pytest.raises(ValueError, match="init"):
        bag_eval.choose_init(bags.read_track_bag(bag, results_topic=None), None, 1)


def test_node_supervisor_params_follow_the_node_parameters(tmp_path):
    from siam_tracker_ros.core.tracking.params import SUPERVISOR_DEFAULTS
    params_file = tmp_path / "p.yaml"
    params_file.write_text("siam_tracker:\n  ros__parameters:\n    supervisor:\n      score_lost: 0.11\n"
                           "      lost_frames: 7\n")
    p = bag_eval.node_supervisor_params(str(params_file), overrides={"supervisor.recover_below": 0.42})
    assert p["score_lost"] == 0.11 and p["lost_frames"] == 7 and p["recover_below"] == 0.42
    assert set(p) == set(SUPERVISOR_DEFAULTS)
    with pytest.raises(ValueError):
        bag_eval.node_supervisor_params(str(tmp_path / "p.yaml"), node_name="other")
    with pytest.raises(ValueError, match="now supervisor.recover_below"):     # a former name
        bag_eval.node_supervisor_params(str(params_file), overrides={"recover_threshold": 0.42})
    assert bag_eval.node_supervisor_params(overrides={"supervisor.enabled": False}) is None


def test_header_stamp_patch():
    from siam_tracker_ros.ros.replay import header_stamp, shift_header_stamp
    store = bags.typestore()
    msg = bags.image_message(store, np.zeros((2, 3, 3), np.uint8), START + 999_999_999, "cam")
    raw = bytes(store.serialize_cdr(msg, bags.IMAGE_TYPE))
    assert header_stamp(raw) == START + 999_999_999
    moved = shift_header_stamp(raw, 2_500_000_001)
    back = store.deserialize_cdr(moved, bags.IMAGE_TYPE)
    assert bags.stamp_of(back.header) == START + 999_999_999 + 2_500_000_001
    assert back.header.frame_id == "cam" and bytes(back.data) == bytes(msg.data)


@pytest.mark.ros_env
def test_tracked_object_message_matches_the_node(tmp_path):
    """The offline results are filled as the node fills its messages (ros/outputs.py)."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header
    from siam_tracker_ros.core.tracking.base import TrackState
    from siam_tracker_ros.ros import outputs
    store = bags.typestore()
    header = bags._header(store, START + 5, "cam")
    rheader = Header(frame_id="cam")
    rheader.stamp.sec, rheader.stamp.nanosec = START // 10**9, 5
    for state, box in ((TrackState.TRACKING, [-5.5, 10.25, 30, 60]), (TrackState.LOST, [1, 2, 3, 4]),
                       (TrackState.IDLE, None)):
        ours = bags.tracked_object_message(store, header, 3, int(state), box, 0.75, 64, 48, latency=0.01)
        node = store.deserialize_cdr(serialize_message(
            outputs.tracked_object(rheader, 3, state, box, 0.75, 64, 48, 0.01)), bags.TRACKED_OBJECT_TYPE)
        assert ours == node, (state, ours, node)


def _subscriber(domain, topic_types):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from siam_tracker_ros.ros.replay import message_class
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = Node("bag_test_listener", context=ctx)
    got = []
    lock = threading.Lock()
    for topic, msgtype in topic_types.items():
        node.create_subscription(message_class(msgtype), topic,
                                 lambda m, t=topic: (lock.acquire(), got.append((t, bags.stamp_of(m.header))),
                                                     lock.release()), 100)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()

    def close():
        ex.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        th.join(2.0)
    return got, close


@pytest.mark.ros_env
def test_replay_loop_restamps_and_remaps(tmp_path, got10k_sequence):
    from siam_tracker_ros.ros.process import apply_to_this_process, fresh_domain_id, ros_environment
    from siam_tracker_ros.ros.replay import BagReplay
    bag = str(tmp_path / "bag")
    assert siam_bag(["from-video", got10k_sequence, bag, "--fps", "10"]) == 0
    domain = fresh_domain_id()
    apply_to_this_process(ros_environment(domain, log_dir=str(tmp_path / "log")))
    got, close = _subscriber(domain, {"/cam": bags.IMAGE_TYPE, bags.INIT_TOPIC: bags.TARGET_INIT_TYPE})
    try:
        stats = BagReplay(bag, rate=0, topics=["/camera/image_raw", bags.INIT_TOPIC],
                          remap={"/camera/image_raw": "/cam"}, loop=True, max_loops=2,
                          wait_subscribers=30.0, domain_id=domain).run()
        deadline = time.monotonic() + 5
        while len(got) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        close()
    assert stats["passes"] == 2 and stats["images"] == 10 and stats["published"] == 12
    images = [s for t, s in got if t == "/cam"]
    inits = [s for t, s in got if t == bags.INIT_TOPIC]
    step = 100_000_000
    first = [START + i * step for i in range(5)]
    # second pass: stamps moved by the bag's length plus one frame interval
    assert images == first + [s + 5 * step for s in first]
    assert inits == [START, START + 5 * step]


@pytest.mark.ros_env
def test_replay_ctrl_c_is_clean(tmp_path, got10k_sequence):
    """SIGINT during a slow replay: exit 0, the record bag closed and readable."""
    from siam_tracker_ros.ros.process import REPO_ROOT, fresh_domain_id, ros_environment
    bag = str(tmp_path / "bag")
    assert siam_bag(["from-video", got10k_sequence, bag, "--fps", "1"]) == 0
    env = ros_environment(fresh_domain_id(), log_dir=str(tmp_path / "log"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    rec = str(tmp_path / "rec")
    proc = subprocess.Popen([sys.executable, "-m", "siam_tracker_ros.cli.bag", "replay", bag, "--loop",
                             "--wait-subscribers", "0", "--record", rec, "--record-topic", "/camera/image_raw"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:     # wait until it replays
            lines.append(line)
            if "replaying" in line:
                break
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert "interrupted" in text and "Traceback" not in text, text
    assert bags.bag_topics(rec) == {"/camera/image_raw": bags.IMAGE_TYPE}
