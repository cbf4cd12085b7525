"""Run the tracker node as a process of its own (tests, demo).

The environment is the one `. ./env.sh` gives (venv, Fast DDS profile with a
16 MB shared-memory segment, discovery on localhost) with a fresh
ROS_DOMAIN_ID, so that parallel runs do not see each other.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence

from ..core.package_files import find_share_file, install_share_dir

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Domain IDs whose ports avoid Linux's ephemeral range (as env.sh picks them).
DOMAIN_IDS = list(range(1, 102)) + list(range(215, 233))


def share_file(*parts: str) -> str:
    """A file of the package's data folders (the checkout it runs from, else its install's
    share/siam_tracker_ros: core/package_files.py); the checkout's path when none has it."""
    return find_share_file(*parts) or os.path.join(REPO_ROOT, *parts)


def fresh_domain_id(avoid: Optional[str] = None) -> int:
    choices = [d for d in DOMAIN_IDS if str(d) != (avoid or os.environ.get("ROS_DOMAIN_ID"))]
    return random.Random(os.getpid() ^ time.monotonic_ns()).choice(choices)


def ros_environment(domain_id: Optional[int] = None, log_dir: Optional[str] = None) -> Dict[str, str]:
    """os.environ plus what env.sh sets (keeping what is set already), with `domain_id`."""
    env = dict(os.environ)
    profile = share_file("config", "fastdds_profile.xml")
    if os.path.isfile(profile):
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", profile)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"   # the only one in the wheels
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    if log_dir is not None:
        env["ROS_LOG_DIR"] = log_dir
    env["PYTHONUNBUFFERED"] = "1"
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    env.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
    return env


def apply_to_this_process(env: Dict[str, str]) -> None:
    """Make this process's rclpy use the same DDS settings as the node (before its first
    rclpy.init; the domain is passed to rclpy.init instead, per context)."""
    for key in ("FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                "ROS_LOG_DIR", "RMW_IMPLEMENTATION"):
        if key in env:
            os.environ[key] = env[key]


def tracker_node_command() -> List[str]:
    """The installed executable (the venv's entry point, else the one the colcon install of
    this package put in <prefix>/lib/siam_tracker_ros), else PATH's, else the module."""
    candidates = [os.path.join(os.path.dirname(sys.executable), "tracker_node")]
    share = install_share_dir()
    if share:
        prefix = os.path.dirname(os.path.dirname(share))
        candidates.append(os.path.join(prefix, "lib", "siam_tracker_ros", "tracker_node"))
    for exe in candidates:
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return [exe]
    found = shutil.which("tracker_node")
    return [found] if found else [sys.executable, "-m", "siam_tracker_ros.ros.tracker_node"]


class NodeProcess:
    """`tracker_node --ros-args ...` with its output collected line by line."""

    def __init__(self, ros_args: Sequence[str], env: Dict[str, str], echo: bool = False,
                 command: Optional[Sequence[str]] = None):
        """`command`: what starts the node (default tracker_node_command())."""
        self.command = list(command or tracker_node_command()) + ["--ros-args", *ros_args]
        env = dict(env)
        if not self.command[0].endswith("tracker_node"):
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self.echo = echo
        self.proc = subprocess.Popen(self.command, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
            if self.echo:
                print(f"[tracker_node] {line}", end="", flush=True)

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float, start: int = 0) -> Optional[str]:
        """First output line from index `start` on matching the regex `pattern` (None on timeout)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if regex.search(line):
                        return line
                start = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.1))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        """Send `sig`, wait; kill after `timeout`. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode
