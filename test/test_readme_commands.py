"""The README's `ros2` commands and their `siam-ctl` twins, run against a running tracker_node.

ros2cli is not installable here, so each `ros2 ...` line of the README is parsed and done the
way the command does it, with rclpy from this (outside) process: the same topic, message type
and YAML fields (`topic pub --once` waits for the node's subscription, as it does), the same
service and request, the same parameter with the value typed from YAML (as `param set`
types it), the lifecycle transition found by its label among the node's available ones (as
`lifecycle set` finds it). Then the EFFECT on the node is checked: a target appears, the
parameter holds and changes the node's behaviour, the target goes, the lifecycle state
changes. Every `siam-ctl` line of the README is run as a process and checked the same way.
`ros2 launch` lines are checked in test_launch_files.py.
"""
import importlib
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from ros_node_fixtures import RELIABLE_ARGS, NodeUnderTest, load_clip, reliable_qos, wait_until

pytestmark = pytest.mark.ros_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0 = 1_700_000_000 * 1_000_000_000
DT = 33_000_000
TIMEOUT = 30.0


def readme_commands(program: str):
    """Every distinct line of the README's code blocks that runs `program` (continuation lines
    joined, trailing comments dropped), in order."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == program and words not in lines:
                lines.append(words)
    return lines


def ros2_lines(*prefix):
    return [w for w in readme_commands("ros2") if w[1:1 + len(prefix)] == list(prefix)]


def interface(type_name: str):
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def set_fields(msg, values: dict):
    """YAML mapping -> message fields, nested messages too (as `ros2 topic pub` fills them)."""
    for key, value in (values or {}).items():
        if isinstance(value, dict):
            set_fields(getattr(msg, key), value)
        else:
            setattr(msg, key, type(getattr(msg, key))(value))
    return msg


class Ros2:
    """What the `ros2` verbs do, on the client's node."""

    def __init__(self, client):
        self.client = client
        self.node = client.node
        self.done = []
        self.subscriptions = []

    def close(self):
        for sub in self.subscriptions:
            self.node.destroy_subscription(sub)

    def _call(self, srv_type, name, request):
        cli = self.node.create_client(srv_type, name)
        assert wait_until(cli.service_is_ready, TIMEOUT), f"no service {name}"
        future = cli.call_async(request)
        assert wait_until(future.done, TIMEOUT), f"no answer from {name}"
        return future.result()

    def run(self, words):
        verb = words[1:3]
        if verb == ["topic", "pub"]:
            assert "--once" in words
            topic, type_name, fields = [w for w in words[3:] if not w.startswith("--")]
            msg_type = interface(type_name)
            pub = self.node.create_publisher(msg_type, topic, reliable_qos(1))
            # --once waits for one matching subscription before publishing
            assert wait_until(lambda: pub.get_subscription_count() > 0, TIMEOUT), f"nobody subscribes {topic}"
            pub.publish(set_fields(msg_type(), yaml.safe_load(fields)))
            result = None
        elif verb == ["service", "call"]:
            name, type_name = words[3:5]
            srv_type = interface(type_name)
            result = self._call(srv_type, name, set_fields(srv_type.Request(),
                                                           yaml.safe_load(words[5]) if len(words) > 5 else {}))
        elif verb == ["param", "get"]:
            from rcl_interfaces.srv import GetParameters
            node_name, name = words[3:5]
            result = self._call(GetParameters, f"{node_name}/get_parameters", GetParameters.Request(names=[name]))
            result = result.values[0]
        elif verb == ["param", "set"]:
            from rcl_interfaces.srv import SetParameters
            from rclpy.parameter import Parameter
            node_name, name, value = words[3:6]
            request = SetParameters.Request(parameters=[Parameter(name, value=yaml.safe_load(value))
                                                        .to_parameter_msg()])
            result = self._call(SetParameters, f"{node_name}/set_parameters", request).results[0]
        elif verb == ["lifecycle", "set"]:
            from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions
            node_name, label = words[3:5]
            available = self._call(GetAvailableTransitions, f"{node_name}/get_available_transitions",
                                   GetAvailableTransitions.Request()).available_transitions
            (transition,) = [t.transition for t in available if t.transition.label == label]
            result = self._call(ChangeState, f"{node_name}/change_state", ChangeState.Request(transition=transition))
        elif verb == ["lifecycle", "get"]:
            from lifecycle_msgs.srv import GetState
            result = self._call(GetState, f"{words[3]}/get_state", GetState.Request()).current_state
        elif verb == ["topic", "echo"]:
            topic = words[3]      # the type from the graph, as `ros2 topic echo` finds it
            assert wait_until(lambda: topic in dict(self.node.get_topic_names_and_types()), TIMEOUT), topic
            (type_name,) = dict(self.node.get_topic_names_and_types())[topic]
            received = []
            sub = self.node.create_subscription(interface(type_name), topic, received.append, 10)
            self.subscriptions.append(sub)
            assert wait_until(lambda: sub.get_publisher_count() > 0, TIMEOUT), topic
            result = received
        else:
            raise AssertionError(f"no rule for {' '.join(words)}")
        self.done.append(words)
        return result


def siam_ctl_command():
    """The installed siam-ctl (what the README runs), else the module."""
    exe = os.path.join(os.path.dirname(sys.executable), "siam-ctl")
    return [exe] if os.path.isfile(exe) else [sys.executable, "-m", "siam_tracker_ros.cli.ctl"]


def siam_ctl(words, env, expect=0):
    proc = subprocess.run(siam_ctl_command() + words[1:], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == expect, f"{' '.join(words)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def clip():
    return load_clip(40)


class Frames:
    """Publishes the clip's frames one by one; each call returns the node's results for it."""

    def __init__(self, node, clip, start=T0):
        self.node, self.clip, self.i, self.start = node, clip, 0, start

    def next(self):
        c = self.node.client
        stamp = self.start + self.i * DT
        c.publish_frame(self.clip.frames[self.i % len(self.clip.frames)], stamp)
        self.i += 1
        assert c.wait_for(lambda: c.objects_for(stamp), TIMEOUT), self.node.proc.output
        time.sleep(0.1)
        return {r.msg.target_id: r.msg for r in c.objects_for(stamp)}


def _env_for(node):
    from siam_tracker_ros.ros.process import ros_environment
    return ros_environment(node.domain)


def _check_plain_node(node, clip, start, do_init, do_get, do_set, do_remove, do_reset, do_echo):
    """The plain node's sequence; each do_* performs one README line and returns what it got."""
    from siam_tracker_ros.core.tracking.base import TrackState
    frames = Frames(node, clip, start)
    frames.next()
    echoed = do_echo()
    got = frames.next()
    assert list(got) == [0] and got[0].state == TrackState.IDLE
    do_init()                                                    # init id 2 at 120, 80, 40x60
    assert node.proc.wait_for_line(r"target 2 initialised", TIMEOUT), node.proc.output
    got = frames.next()
    assert list(got) == [2] and got[2].state in (TrackState.TRACKING, TrackState.LOST)
    assert do_get() == 8                                         # the params file's value
    do_set()                                                     # max_targets 1
    assert do_get() == 1
    node.client.send_init([10.0, 10.0, 30.0, 30.0], target_id=3)
    assert node.proc.wait_for_line(r"init ignored: target 3", TIMEOUT), node.proc.output
    assert list(frames.next()) == [2]                            # id 3 refused: one target only
    do_remove()                                                  # remove 2
    assert node.proc.wait_for_line(r"target 2 removed", TIMEOUT), node.proc.output
    got = frames.next()
    assert list(got) == [0] and got[0].state == TrackState.IDLE
    node.client.send_init([120.0, 80.0, 40.0, 60.0], target_id=5)
    assert node.proc.wait_for_line(r"target 5 initialised", TIMEOUT), node.proc.output
    assert list(frames.next()) == [5]
    do_reset()                                                   # drops every target
    got = frames.next()
    assert list(got) == [0] and got[0].state == TrackState.IDLE
    # the echo, started before all these frames, got the node's messages (checked last: a
    # subscription that has just matched may still miss the very next message)
    assert echoed(), "the echo received nothing"


def _check_lifecycle_node(node, clip, start, do_configure, do_activate, do_get):
    assert do_get() == "unconfigured"
    do_configure()
    assert do_get() == "inactive"
    do_activate()
    assert do_get() == "active"
    assert node.client.wait_ready(TIMEOUT, node_alive=lambda: node.proc.proc.poll() is None), node.proc.output
    frames = Frames(node, clip, start)
    assert list(frames.next()) == [0]                          # active: it answers frames


# One node of each kind for the module: the ros2 lines run first, then the state they left is
# undone (max_targets back to the file's value, the lifecycle node back to unconfigured) and
# the siam-ctl lines run on the same node, on later frame stamps.
@pytest.fixture(scope="module")
def plain_node(tmp_path_factory):
    node = NodeUnderTest(tmp_path_factory.mktemp("plain") / "ros_log", extra_args=RELIABLE_ARGS,
                         image_qos=reliable_qos())
    yield node
    assert node.close() == 0, node.proc.output


@pytest.fixture(scope="module")
def lifecycle_node(tmp_path_factory):
    node = NodeUnderTest(tmp_path_factory.mktemp("lifecycle") / "ros_log", extra_args=RELIABLE_ARGS,
                         image_qos=reliable_qos(), lifecycle=True)
    yield node
    assert node.close() == 0, node.proc.output


def test_readme_ros2_commands_are_all_covered():
    covered = {("topic", "echo"), ("topic", "pub"), ("param", "get"), ("param", "set"), ("service", "call"),
               ("lifecycle", "set"), ("lifecycle", "get"), ("launch", None), ("run", None)}
    lines = readme_commands("ros2")
    assert len(lines) >= 12, lines
    for words in lines:
        assert (words[1], words[2] if words[1] not in ("launch", "run") else None) in covered, words
    assert len(readme_commands("siam-ctl")) >= 9


def test_readme_ros2_commands_on_the_plain_node(plain_node, clip):
    from rcl_interfaces.msg import ParameterType
    ros2 = Ros2(plain_node.client)
    (echo,) = ros2_lines("topic", "echo")
    (init,) = [w for w in ros2_lines("topic", "pub") if w[4] == "/siam_tracker/init"]
    (remove,) = [w for w in ros2_lines("topic", "pub") if w[4] == "/siam_tracker/remove"]
    (get,) = ros2_lines("param", "get")
    (set_,) = ros2_lines("param", "set")
    (reset,) = ros2_lines("service", "call")
    assert yaml.safe_load(init[-1])["target_id"] == 2 and yaml.safe_load(remove[-1])["data"] == 2
    assert set_[-2:] == ["max_targets", "1"] and get[-1] == "max_targets"

    def get_value():
        value = ros2.run(get)
        assert value.type == ParameterType.PARAMETER_INTEGER
        return value.integer_value

    def set_value():
        assert ros2.run(set_).successful

    def do_reset():
        assert ros2.run(reset).success

    def do_echo():
        received = ros2.run(echo)
        return lambda: wait_until(lambda: len(received) > 0, TIMEOUT)

    try:
        _check_plain_node(plain_node, clip, T0, lambda: ros2.run(init), get_value, set_value,
                          lambda: ros2.run(remove), do_reset, do_echo)
    finally:   # undo for the siam-ctl lines
        ros2.close()
        ros2.run(["ros2", "param", "set", "/siam_tracker", "max_targets", "8"])
    box = [v for k, v in yaml.safe_load(init[-1]).items() if k != "target_id"]
    assert box == [120.0, 80.0, 40.0, 60.0]


def test_readme_siam_ctl_commands_on_the_plain_node(plain_node, clip):
    env = _env_for(plain_node)
    lines = readme_commands("siam-ctl")
    (echo,) = [w for w in lines if w[1] == "echo"]
    (init,) = [w for w in lines if w[1] == "init"]
    (get,) = [w for w in lines if w[1:] == ["param", "max_targets"]]
    (set_,) = [w for w in lines if w[1:] == ["param", "max_targets", "1"]]
    (remove,) = [w for w in lines if w[1] == "remove"]
    (reset,) = [w for w in lines if w[1] == "reset"]
    echo_out = []

    def do_echo():
        count = lambda: plain_node.client.node.count_subscribers("/siam_tracker/tracked_object")  # noqa: E731
        assert wait_until(lambda: count() == 1, TIMEOUT), "a subscriber besides the client's is left"
        proc = subprocess.Popen(siam_ctl_command() + echo[1:], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        echo_out.append(proc)
        # its subscription matched the node's publisher (ours is the other one)
        assert wait_until(lambda: count() >= 2, TIMEOUT), "siam-ctl echo did not subscribe"
        return lambda: True

    _check_plain_node(plain_node, clip, T0 + 1000 * DT, lambda: siam_ctl(init, env),
                      lambda: int(siam_ctl(get, env)), lambda: siam_ctl(set_, env), lambda: siam_ctl(remove, env),
                      lambda: siam_ctl(reset, env), do_echo)
    # `siam-ctl echo --count 5` printed five of the node's messages and ended
    out, _ = echo_out[0].communicate(timeout=TIMEOUT)
    assert echo_out[0].returncode == 0 and len(re.findall(r"^stamp \d+ target \d+ state", out, re.M)) == 5, out


def test_readme_lifecycle_commands(lifecycle_node, clip):
    ros2 = Ros2(lifecycle_node.client)
    configure, activate = ros2_lines("lifecycle", "set")
    assert (configure[-1], activate[-1]) == ("configure", "activate")
    (get,) = ros2_lines("lifecycle", "get")
    try:
        _check_lifecycle_node(lifecycle_node, clip, T0, lambda: ros2.run(configure), lambda: ros2.run(activate),
                              lambda: ros2.run(get).label)
    finally:   # back to unconfigured for the siam-ctl lines
        for transition in ("deactivate", "cleanup"):
            ros2.run(["ros2", "lifecycle", "set", "/siam_tracker", transition])


def test_readme_siam_ctl_lifecycle_commands(lifecycle_node, clip):
    env = _env_for(lifecycle_node)
    lines = [w for w in readme_commands("siam-ctl") if w[1] == "lifecycle"]
    configure, activate, get = lines
    assert configure[2:] == ["configure"] and activate[2:] == ["activate"] and get[2:] == []
    _check_lifecycle_node(lifecycle_node, clip, T0 + 1000 * DT, lambda: siam_ctl(configure, env),
                          lambda: siam_ctl(activate, env),
                          lambda: siam_ctl(get, env).split()[0])
