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
    with open(CONFIG) as f:
        data = yaml.safe_load(f)
    values = flatten(data["/**"]["ros__parameters"])
    assert set(values) == {p.name for p in params.PARAMS}
    for p in params.PARAMS:
        # same value and same type (rclpy rejects an int for a double parameter)
        assert values[p.name] == p.default and type(values[p.name]) is type(p.default), p.name


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
    d = node.describe_parameter("lost_threshold")
    assert d.description and d.floating_point_range[0].to_value == 1.0
    assert node.describe_parameter("model").read_only
    assert node.describe_parameter("qos.reliability").additional_constraints

    ok = node.set_parameters([Parameter("lost_threshold", value=0.5)])[0]
    assert ok.successful and node.get_parameter("lost_threshold").value == 0.5
    for bad in (Parameter("lost_threshold", value=1.5), Parameter("frame_cache_size", value=0),
                Parameter("model", value="siamfc")):
        assert not node.set_parameters([bad])[0].successful, bad.name


def test_unknown_choice_is_rejected():
    assert params.check_value("qos.reliability", "reliable") is None
    assert "best_effort" in params.check_value("qos.reliability", "sometimes")


def test_node_thresholds_default_to_the_supervisors():
    """lost_threshold / recover_threshold map onto the supervisor; their defaults are its."""
    from siam_tracker_ros.core.tracking.monitor import SUPERVISOR_DEFAULTS
    from siam_tracker_ros.ros import targets
    mapped = targets.supervisor_params_from(params.defaults())
    assert set(mapped) == set(targets.NODE_TO_SUPERVISOR.values())
    for node_name, key in targets.NODE_TO_SUPERVISOR.items():
        assert params.PARAMS_BY_NAME[node_name].default == SUPERVISOR_DEFAULTS[key], node_name
    extra = targets.extra_supervisor_params()
    assert not set(extra) & set(mapped) and set(extra) | set(mapped) <= set(SUPERVISOR_DEFAULTS)


def test_runtime_changes_reach_the_running_node(rclpy_context):
    """Thresholds, supervisor and tracker hyper-parameters and the cache size change without a
    restart; reload-only ones are refused with the reason."""
    from rclpy.parameter import Parameter

    from siam_tracker_ros.ros.tracker_node import TrackerNode
    node = TrackerNode(context=rclpy_context)
    try:
        sup = node.targets.mt.supervisor_params
        assert sup["score_lost"] == params.PARAMS_BY_NAME["lost_threshold"].default
        assert node.has_parameter("supervisor.lost_frames") and node.has_parameter("tracker.penalty_k")
        image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        node.targets.add(1, image, [40, 40, 30, 30])       # a target that exists before the change
        results = node.set_parameters([Parameter("lost_threshold", value=0.55),
                                       Parameter("recover_threshold", value=0.25),
                                       Parameter("supervisor.lost_frames", value=5),
                                       Parameter("tracker.penalty_k", value=0.3),
                                       Parameter("frame_cache_size", value=4),
                                       Parameter("publish_debug_image", value=False)])
        assert all(r.successful for r in results), [r.reason for r in results]
        sup = node.targets.mt.supervisor_params
        assert (sup["score_lost"], sup["recover_below"], sup["lost_frames"]) == (0.55, 0.25, 5)
        assert node._tracker_params["penalty_k"] == 0.3
        # the existing target and a new one get the changed values (one tracker params dict)
        node.targets.add(2, image, [80, 60, 30, 30])
        for target_id in (1, 2):
            assert node.targets.mt.tracker(target_id).params["penalty_k"] == 0.3
            assert node.targets.mt.supervisor(target_id).params["score_lost"] == 0.55
            assert node.targets.mt.supervisor(target_id).params["lost_frames"] == 5
        assert node._cache.frames.maxlen == 4 and node.values["publish_debug_image"] is False
        for name, value in (("qos.depth", 5), ("device", "cpu"), ("lost_threshold", -0.1),
                            ("supervisor.lost_frames", 0)):
            r = node.set_parameters([Parameter(name, value=value)])[0]
            assert not r.successful and r.reason, name
        r = node.set_parameters([Parameter("model", value="siamfc")])[0]
        assert not r.successful and "read-only" in r.reason.lower()
        assert node.targets.mt.supervisor_params["score_lost"] == 0.55
    finally:
        node.stop_worker()
        node.destroy_node()
