"""Parameters of the tracker node: config/tracker.yaml, descriptors, the launch file."""
import os

import numpy as np
import pytest
import yaml

from siam_tracker_ros.ros import params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "config", "tracker.yaml")


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_params_file_matches_the_declared_parameters():
    """config/tracker.yaml: every node parameter at its default, and nothing the node does not
    declare (the node refuses unknown keys; a former name is refused with the new one)."""
    values = params.read_params_file(CONFIG)
    assert set(params.NODE_PARAMS) - set(params.DEPRECATED) <= set(values)
    assert not set(params.DEPRECATED) & set(values), "the shipped file shows the current names only"
    declared = params.defaults()
    for name, value in values.items():
        # same value and same type (rclpy rejects an int for a double parameter)
        assert value == declared[name] and type(value) is type(declared[name]), name


def test_unknown_and_renamed_keys_are_refused(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("siam_tracker:\n  ros__parameters:\n    lost_threshold: 0.2\n    nonsense: 1\n")
    with pytest.raises(ValueError, match=r"lost_threshold \(now supervisor.score_lost\), nonsense"):
        params.read_params_file(str(f))
    f.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n    supervisor:\n      lost_frames: 4\n"
                 "    tracker:\n      penalty_k: 0.2\n")
    assert params.read_params_file(str(f)) == {"use_sim_time": True, "supervisor.lost_frames": 4,
                                               "tracker.penalty_k": 0.2}


def test_every_parameter_has_a_description_and_numeric_ones_a_range():
    from siam_tracker_ros.core.tracking.params import TRACKER_PARAMS
    rows = {**params.NODE_PARAMS, **{f"supervisor.{k}": p for k, p in params.SUPERVISOR_PARAMS.items()},
            **{f"tracker.{k}": p for k, p in TRACKER_PARAMS.items()}}
    for name, p in rows.items():
        assert len(p.description.split()) >= 4, name
        if p.value_type in (int, float):
            lo, hi = p.range
            assert lo < hi and all(abs(v) < 1e9 for v in (lo, hi)), name
            for default in (p.default.values() if isinstance(p.default, dict) else [p.default]):
                assert default is None or lo <= default <= hi, name
    for bad in (float("nan"), float("inf"), -0.1, 1.5):
        assert params.check_change("tracker.lr", bad), bad
    assert params.check_change("tracker.lr", 0.3) is None


@pytest.fixture
def node(ros_env):
    import rclpy
    from rclpy.node import Node
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=0)
    n = Node("siam_tracker", context=context, start_parameter_services=False)
    try:
        yield n
    finally:
        n.destroy_node()
        rclpy.try_shutdown(context=context)


def test_descriptors_enforce_ranges_and_read_only(node):
    from rclpy.parameter import Parameter
    values = params.declare(node)
    assert values == params.defaults()
    d = node.describe_parameter("supervisor.score_lost")
    assert d.description and d.floating_point_range[0].to_value == 1.0
    assert node.describe_parameter("supervisor.lost_frames").integer_range[0].from_value == 1
    assert node.describe_parameter("diagnostics_period").read_only
    assert "reload" in node.describe_parameter("model").description
    assert node.describe_parameter("qos.reliability").additional_constraints

    ok = node.set_parameters([Parameter("supervisor.score_lost", value=0.5)])[0]
    assert ok.successful and node.get_parameter("supervisor.score_lost").value == 0.5
    for bad in (Parameter("supervisor.score_lost", value=1.5), Parameter("frame_cache_size", value=0),
                Parameter("diagnostics_period", value=2.0)):
        assert not node.set_parameters([bad])[0].successful, bad.name


def test_device_names_are_checked():
    """'' is not a device (it used to mean auto silently); cuda:N is checked at configure
    against the devices there are (core/devices.py)."""
    for good in ("auto", "cpu", "cuda", "cuda:1"):
        assert params.check_change("device", good) is None, good
    for bad in ("", "gpu", "cuda:", "cuda:-1", "cpu\n[FATAL]"):
        assert "device must match" in params.check_change("device", bad), bad
    import torch

    from siam_tracker_ros.core.devices import resolve_device
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:99' requested but CUDA is not available"):
            resolve_device("cuda:99")
    else:
        with pytest.raises(ValueError, match="'cuda:99' requested but there are"):
            resolve_device("cuda:99")


def test_unknown_choice_is_rejected():
    assert params.check_change("qos.reliability", "reliable") is None
    assert "best_effort" in params.check_change("qos.reliability", "sometimes")


def test_supervisor_parameters_come_from_the_one_table():
    from siam_tracker_ros.core.tracking.params import SUPERVISOR_DEFAULTS
    assert params.supervisor_params(params.defaults()) == SUPERVISOR_DEFAULTS
    assert params.supervisor_params({**params.defaults(), "supervisor.enabled": False}) is None


def test_runtime_changes_reach_the_running_node(rclpy_context):
    """Supervisor and tracker hyper-parameters and the cache size change without a restart;
    reload ones are refused with the reason while configured."""
    from rclpy.parameter import Parameter

    from siam_tracker_ros.ros.tracker_node import TrackerNode
    node = TrackerNode(context=rclpy_context)
    try:
        assert node.configure_and_activate()
        session = node.session
        assert session.mt.supervisor_params["score_lost"] == params.SUPERVISOR_PARAMS["score_lost"].default
        assert node.has_parameter("supervisor.lost_frames") and node.has_parameter("tracker.penalty_k")
        assert node.describe_parameter("tracker.lr").floating_point_range[0].to_value == 1.0
        image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        session.mt.add(1, image, [40, 40, 30, 30])         # a target that exists before the change
        results = node.set_parameters([Parameter("supervisor.score_lost", value=0.55),
                                       Parameter("supervisor.recover_below", value=0.25),
                                       Parameter("supervisor.lost_frames", value=5),
                                       Parameter("tracker.penalty_k", value=0.3),
                                       Parameter("frame_cache_size", value=4),
                                       Parameter("frame_cache_mb", value=8),
                                       Parameter("max_image_pixels", value=640 * 480),
                                       Parameter("publish_debug_image", value=False)])
        assert all(r.successful for r in results), [r.reason for r in results]
        sup = session.mt.supervisor_params
        assert (sup["score_lost"], sup["recover_below"], sup["lost_frames"]) == (0.55, 0.25, 5)
        assert session.tracker_params["penalty_k"] == 0.3
        # the existing target and a new one get the changed values (one tracker params dict)
        session.mt.add(2, image, [80, 60, 30, 30])
        for target_id in (1, 2):
            assert session.mt.tracker(target_id).params["penalty_k"] == 0.3
            assert session.mt.supervisor(target_id).params["score_lost"] == 0.55
            assert session.mt.supervisor(target_id).params["lost_frames"] == 5
        assert node.inbox.cache.size == 4 and node.inbox.cache.max_bytes == 8_000_000
        assert node.values["publish_debug_image"] is False and node.values["max_image_pixels"] == 640 * 480
        for name, value in (("qos.depth", 5), ("device", "cpu"), ("supervisor.score_lost", -0.1),
                            ("supervisor.lost_frames", 0), ("tracker.lr", float("nan")),
                            ("tracker.penalty_k", float("inf")), ("tracker.window_influence", -1.0),
                            ("max_image_pixels", 0), ("frame_cache_mb", 0)):
            r = node.set_parameters([Parameter(name, value=value)])[0]
            assert not r.successful and r.reason, name
        r = node.set_parameters([Parameter("model", value="siamfc")])[0]
        assert not r.successful and "reload" in r.reason
        assert session.mt.supervisor_params["score_lost"] == 0.55
    finally:
        node.stop_worker()
        node.destroy_node()
