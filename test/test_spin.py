"""ros/spin.py: a callback that raises does not end the node's process (it is logged, at
most once a second), and a signal still ends it with exit code 0. Run in a child process
(spin.run installs signal handlers and initialises rclpy's default context)."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros_env

CHILD = r"""
import os, signal, sys
from rclpy.node import Node
from siam_tracker_ros.ros import spin

calls = {"n": 0}

def make_node():
    node = Node("spin_probe")

    def boom():
        calls["n"] += 1
        if calls["n"] == 40:
            os.kill(os.getpid(), signal.SIGINT)
        raise ValueError("bad message\n[FATAL] forged")
    node.create_timer(0.01, boom)
    node.stop_worker = lambda: None
    return node

code = spin.run(sys.argv, make_node, lambda node: True, "spin_probe")
print(f"exit {code} after {calls['n']} failing callbacks", flush=True)
sys.exit(code)
"""


def test_a_raising_callback_is_contained(ros_subprocess_env):
    out = subprocess.run([sys.executable, "-c", CHILD], env=ros_subprocess_env, capture_output=True,
                         text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "exit 0 after 40 failing callbacks" in text, text
    errors = [line for line in text.splitlines() if "callback failed: ValueError: bad message" in line]
    assert 1 <= len(errors) <= 3, errors           # 40 failures in about 0.4 s: throttled
    assert "\\n[FATAL] forged" in errors[0] and not any(line.startswith("[FATAL]") for line in text.splitlines())
