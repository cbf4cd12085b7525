"""Bag round trip (issue 6 acceptance): frames of a shared sequence -> rosbag2 (images, ground
truth, init) -> `siam-bag replay --lockstep` -> tracker_node (its own process) -> results
recorded into a bag -> `siam-bag score` metrics, equal to siam-eval's (evaluation runner) on the
same frames with the same tracker, and to `siam-bag eval` (offline, no ROS graph).

Like for like: siam-eval scores the raw tracker boxes, so the node runs with its target
supervisor (LOST logic) off (see node_raw_args) and the offline path with --no-supervisor; all
use one torch thread, as siam-eval does. A second run keeps the node's supervisor on (the
params file's thresholds) and checks that `siam-bag eval --params-file` reproduces the node's
states and boxes frame by frame (the same supervisor logic offline).
"""
import os
import signal

import numpy as np
import pytest

from siam_tracker_ros.core.tracking.base import TrackState

pytest.importorskip("rosbags", reason="rosbags (requirements-ros.txt) not installed")

SEQUENCE = "OTB_Crossing"     # integer boxes: the float32 fields of the messages hold them exactly
FRAMES = 40
IMAGE_TOPIC = "/camera/image_raw"
RESULTS_TOPIC = "/siam_tracker/tracked_object"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "config", "tracker.yaml")
METRIC_KEYS = ("auc", "precision20", "norm_precision20", "success50", "ao", "sr50", "sr75")


def neutral_params():
    """Node parameters that keep the target supervisor out: raw tracker results."""
    return {"supervisor.enabled": False}


def ros_value(v) -> str:
    """A value as `-p name:=value` needs it (YAML: 1e9 alone would be a string)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(float(v)) if isinstance(v, float) else str(v)


def node_raw_args():
    """Node parameters that make its boxes the raw tracker's (as siam-eval records them)."""
    out = []
    for k, v in neutral_params().items():
        out += ["-p", f"{k}:={ros_value(v)}"]
    return out


@pytest.fixture(scope="module")
def excerpt(sequences_dir):
    from siam_tracker_ros.evaluation.datasets import open_dataset
    if not (sequences_dir / SEQUENCE).is_dir():
        pytest.skip(f"{sequences_dir / SEQUENCE} not found")
    return open_dataset(str(sequences_dir), "shared", names=[SEQUENCE], max_frames=FRAMES)[0]


@pytest.fixture(scope="module")
def siam_eval_result(excerpt):
    """siam-eval's runner and scoring on the excerpt: default model, CPU, one thread."""
    from siam_tracker_ros.evaluation.runner import TrackerSpec, run_trackers, score_run
    run = run_trackers([TrackerSpec("default", device="cpu")], [excerpt], cache_dir=None, workers=1,
                       threads=1, progress=False)
    assert not run.errors and not run.skipped, (run.errors, run.skipped)
    scored = score_run(run)["default"]["sequences"][SEQUENCE]
    return np.asarray(run.records["default"][SEQUENCE]["boxes"]), scored


def make_input_bag(tmp_path, sequences_dir, compress=None) -> str:
    from siam_tracker_ros.cli.bag import main as siam_bag
    bag = str(tmp_path / "input_bag")
    topic = IMAGE_TOPIC + "/compressed" if compress else IMAGE_TOPIC
    assert siam_bag(["from-video", str(sequences_dir / SEQUENCE), bag, "--max-frames", str(FRAMES),
                     "--fps", "30", "--topic", topic] + (["--compress", compress] if compress else [])) == 0
    return bag


def assert_same(metrics, boxes, ref_boxes, ref_metrics, what):
    # message fields are float32: boxes agree to float32 precision
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-3, err_msg=f"{what}: boxes differ from siam-eval's")
    # threshold counts (AUC, P@20, SR) come out identical; AO (a mean IoU) differs by the float32
    # rounding of the boxes only (~1e-9)
    for key in METRIC_KEYS:
        assert metrics[key] == pytest.approx(ref_metrics[key], abs=1e-6), f"{what}: {key}"


def test_offline_eval_equals_siam_eval(tmp_path, sequences_dir, excerpt, siam_eval_result):
    """siam-bag eval --no-supervisor on the bag = siam-eval on the frames (no ROS graph)."""
    from siam_tracker_ros.cli.bag import main as siam_bag
    from siam_tracker_ros.ros import bag_eval
    ref_boxes, ref = siam_eval_result
    bag = make_input_bag(tmp_path, sequences_dir)
    results = str(tmp_path / "offline_results")
    assert siam_bag(["eval", bag, "--model", "default", "--device", "cpu", "--threads", "1",
                     "--no-supervisor", "--results-bag", results]) == 0
    scored = bag_eval.score_bags(results, bag)["metrics"]      # as `siam-bag score`
    assert scored["frames"] == FRAMES and scored["missing"] == 0 and scored["tracking"] == FRAMES - 1
    assert_same(scored, np.asarray(scored["boxes"]), ref_boxes, ref, "siam-bag eval")
    # the results bag alone (it carries the ground truth and init) scores the same
    alone = bag_eval.score_bags(results)["metrics"]
    assert [alone[k] for k in METRIC_KEYS] == [scored[k] for k in METRIC_KEYS]
    # the supervisor with the node parameters the round trip passes acts on nothing: same boxes
    neutral = str(tmp_path / "neutral_results")
    argv = ["eval", bag, "--model", "default", "--device", "cpu", "--threads", "1", "--results-bag", neutral]
    for k, v in neutral_params().items():
        argv += ["-p", f"{k}={ros_value(v)}"]
    assert siam_bag(argv) == 0
    m = bag_eval.score_bags(neutral)["metrics"]
    assert m["lost"] == 0 and m["boxes"] == scored["boxes"], \
        "the supervisor still acts with supervisor.enabled false"


def run_node_on_bag(tmp_path, bag, results, extra_args):
    """tracker_node (own process, fresh domain) <- siam-bag replay --lockstep --record."""
    from siam_tracker_ros.ros.process import NodeProcess, apply_to_this_process, fresh_domain_id, ros_environment
    from siam_tracker_ros.ros.replay import BagReplay
    domain = fresh_domain_id()
    env = ros_environment(domain, log_dir=str(tmp_path / "ros_log"))
    env["OMP_NUM_THREADS"] = "1"
    apply_to_this_process(env)
    # engine torch: the same engine as siam-eval's and siam-bag eval's default on the other side
    # (the node's own default, auto, is onnxruntime on a CPU: equal within float noise, not bit for bit)
    node = NodeProcess(["--params-file", CONFIG, "-r", f"image:={IMAGE_TOPIC}", "-p", "model:=default",
                        "-p", "device:=cpu", "-p", "num_threads:=1", "-p", "engine:=torch", *extra_args], env)
    try:
        stats = BagReplay(bag, rate=0, lockstep=RESULTS_TOPIC, lockstep_timeout=30.0, init_timeout=2.0,
                          record=results, record_topics=[RESULTS_TOPIC], wait_subscribers=90.0,
                          domain_id=domain).run()
    finally:
        code = node.stop(signal.SIGINT)
    assert code == 0, node.output
    assert stats["images"] == FRAMES, stats
    assert stats.get("answers") == FRAMES and not stats.get("answer timeouts"), (stats, node.output)
    return stats


@pytest.mark.ros_env
def test_bag_replay_node_round_trip(tmp_path, sequences_dir, excerpt, siam_eval_result):
    from siam_tracker_ros.ros import bag_eval, bags
    ref_boxes, ref = siam_eval_result
    bag = make_input_bag(tmp_path, sequences_dir)
    results = str(tmp_path / "node_results")
    stats = run_node_on_bag(tmp_path, bag, results, node_raw_args())

    content = bags.read_track_bag(results)
    stamps = bags.read_track_bag(bag, results_topic=None).stamps
    # every frame answered (frame 0 before the init: IDLE, target id 0); target 1 from
    # frame 1 on TRACKING (never LOST here)
    answered = set().union(*(set(r) for r in content.results.values()))
    assert set(stamps) <= answered, "frames without an answer"
    target = content.results[1]
    assert all(target[s].state == TrackState.TRACKING for s in stamps[1:]), \
        str([target[s].state if s in target else None for s in stamps])

    scored = bag_eval.score_bags(results, bag)["metrics"]
    assert scored["frames"] == FRAMES and scored["missing"] == 0 and scored["tracking"] == FRAMES - 1
    assert_same(scored, np.asarray(scored["boxes"]), ref_boxes, ref, "bag -> replay -> node -> results bag")
    print(f"\nround trip on {SEQUENCE}[:{FRAMES}]: AUC {scored['auc']:.4f} (siam-eval {ref['auc']:.4f}), "
          f"P@20 {scored['precision20']:.4f} (siam-eval {ref['precision20']:.4f}); replay {stats}")


@pytest.mark.ros_env
def test_node_supervisor_equals_offline_eval(tmp_path, sequences_dir, excerpt):
    """The node with its params file's supervisor vs siam-bag eval --params-file: same states and
    boxes on every frame (LOST ones included), same metrics. Through the node's compressed input
    (JPEG bag, image_transport:=compressed): both sides decode the same bytes."""
    from siam_tracker_ros.cli.bag import main as siam_bag
    from siam_tracker_ros.ros import bag_eval, bags
    bag = make_input_bag(tmp_path, sequences_dir, compress="jpeg")
    node_results = str(tmp_path / "node_results")
    offline_results = str(tmp_path / "offline_results")
    run_node_on_bag(tmp_path, bag, node_results, ["-p", "image_transport:=compressed"])
    assert siam_bag(["eval", bag, "--model", "default", "--device", "cpu", "--threads", "1",
                     "--params-file", CONFIG, "--results-bag", offline_results]) == 0
    node = bags.read_track_bag(node_results).results[1]
    offline = bags.read_track_bag(offline_results).results[1]
    stamps = bags.read_track_bag(bag, results_topic=None).stamps
    node_states = [node[s].state for s in stamps[1:]]
    assert node_states == [offline[s].state for s in stamps[1:]]
    np.testing.assert_allclose([node[s].box for s in stamps[1:]], [offline[s].box for s in stamps[1:]],
                               atol=1e-3)
    a, b = bag_eval.score_bags(node_results, bag)["metrics"], bag_eval.score_bags(offline_results)["metrics"]
    assert [a[k] for k in METRIC_KEYS] == pytest.approx([b[k] for k in METRIC_KEYS], abs=1e-6)
    print(f"\nsupervisor on: node and offline LOST on {node_states.count(TrackState.LOST)} of "
          f"{FRAMES - 1} tracked frames; AUC {a['auc']:.4f} / {b['auc']:.4f}")
