"""The shipped params file applies to the node under any name and namespace (issue 13).

config/tracker.yaml is keyed `/**`, so `-r __ns:=/drone1` (what `namespace:=drone1` of the
launch files does) and `-r __node:=left` still read it. Two tracker_node processes with a
copy of the file whose max_targets and supervisor.score_lost differ from the node's defaults; an
outside rclpy client reads the values over each node's get_parameters service.
"""
import os
import re

import pytest

from ros_node_fixtures import wait_until

pytestmark = pytest.mark.ros_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "config", "tracker.yaml")


def test_params_file_keys_apply_to_any_node_name():
    import yaml
    with open(CONFIG) as f:
        doc = yaml.safe_load(f)
    assert list(doc) == ["/**"], "the params file must not name the node (it would not apply when renamed)"


def test_namespaced_and_renamed_nodes_read_the_params_file(tmp_path):
    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.node import Node
    from siam_tracker_ros.ros.params import defaults
    from siam_tracker_ros.ros.process import NodeProcess, apply_to_this_process, fresh_domain_id, ros_environment

    with open(CONFIG) as f:
        text = f.read()
    wanted = {"max_targets": 3, "supervisor.score_lost": 0.25}
    for name, value in wanted.items():
        assert defaults()[name] != value
        key = name.split(".")[-1]      # nested in the file (supervisor: score_lost:)
        text, n = re.subn(rf"^(\s+{key}:\s*)\S+", rf"\g<1>{value}", text, flags=re.M)
        assert n == 1, name
    params_file = tmp_path / "tracker.yaml"
    params_file.write_text(text)

    domain = fresh_domain_id()
    env = ros_environment(domain, log_dir=str(tmp_path / "ros_log"))
    env.setdefault("OMP_NUM_THREADS", "1")
    apply_to_this_process(env)
    # (ROS arguments, the node's full name)
    nodes = {"/drone1/siam_tracker": ["-r", "__ns:=/drone1"], "/left": ["-r", "__node:=left"]}
    procs = {full: NodeProcess(["--params-file", str(params_file), "-r", "image:=/params_test/image", *extra], env)
             for full, extra in nodes.items()}
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    client_node = Node("params_test_client", context=context, start_parameter_services=False)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(client_node)
    try:
        for full, proc in procs.items():
            client = client_node.create_client(GetParameters, f"{full}/get_parameters")
            alive = lambda: proc.proc.poll() is None  # noqa: E731
            assert wait_until(lambda: client.service_is_ready() or not alive(), 90.0) and alive(), \
                f"{full} did not come up\n{proc.output}"
            future = client.call_async(GetParameters.Request(names=list(wanted)))
            executor.spin_until_future_complete(future, timeout_sec=30.0)
            assert future.done(), f"no answer from {full}"
            values = future.result().values
            got = {"max_targets": values[0].integer_value, "supervisor.score_lost": values[1].double_value}
            assert got == wanted, f"{full}: {got}\n{proc.output}"
    finally:
        executor.shutdown()
        client_node.destroy_node()
        context.try_shutdown()
        codes = {full: proc.stop() for full, proc in procs.items()}
    assert all(code == 0 for code in codes.values()), codes
