"""The standard ROS path (issue 13): this repository cloned into a workspace's src/, a plain
`colcon build`, the installed node started from the install with the source tree on no path,
and `colcon test`.

The "ROS install" here is this venv (the ROS wheels, as /opt/ros/<distro> on a robot). The
build and the node run with a Python that sees the venv's packages but not the checkout
(isolated_python.py).
No install takes place: building the package is the cost (about 40 s on 2 cores).
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from isolated_python import isolated_python, ros_library_path
from ros_node_fixtures import reliable_qos

pytestmark = [
    pytest.mark.ros_env,
    pytest.mark.skipif(bool(os.environ.get("SIAM_TRACKER_COLCON_TEST")),
                       reason="already inside `colcon test`: no workspace inside the workspace"),
]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "siam_tracker_ros"
BUILD_TIMEOUT = 1200
T0 = 1_700_000_000 * 1_000_000_000
DT = 33_000_000


def _require(tool: str) -> str:
    path = shutil.which(tool) or (str(Path(sys.executable).parent / tool)
                                  if (Path(sys.executable).parent / tool).exists() else None)
    if not path:
        message = f"`{tool}` is not installed: the workspace build needs colcon, cmake and a C++ compiler"
        if os.environ.get("SIAM_REQUIRE_ROS", "") not in ("", "0"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def _source_files(root: Path):
    """What a clone has: git's tracked and untracked-but-not-ignored files (the working tree,
    uncommitted edits included); every file but the build outputs outside a git checkout."""
    if (root / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-c", "-o", "--exclude-standard"],
                             check=True, capture_output=True).stdout.decode()
        return [f for f in out.split("\0") if f and (root / f).is_file()]
    skip = {".venv", "build", "install", "log", ".git", "__pycache__", ".pytest_cache", "out"}
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(root).parts)]


class Workspace:
    def __init__(self, base: Path):
        self.base = base
        self.ws = base / "ws"
        self.src = self.ws / "src" / PACKAGE
        self.install = self.ws / "install"
        self.prefix = self.install / PACKAGE
        self.python = isolated_python(base / "python")
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "COLCON_PREFIX_PATH", "SIAM_TRACKER_CONFIG_DIR", "PYTHONHOME")}
        env.update({
            "VIRTUAL_ENV": str(self.python.parent.parent),
            "PATH": os.pathsep.join([str(self.python.parent), str(Path(sys.executable).parent),
                                     env.get("PATH", "")]),
            # the ROS install = the main venv's prefix
            "AMENT_PREFIX_PATH": sys.prefix, "CMAKE_PREFIX_PATH": sys.prefix,
            "LD_LIBRARY_PATH": ros_library_path(), "_ROS_WHEELS_BOOTSTRAP_COMPLETE": "1",
            "OMP_NUM_THREADS": "1",
        })
        self.env = env

    def copy_sources(self):
        for rel in _source_files(ROOT):
            target = self.src / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target)

    def run(self, script: str, timeout: float, env=None, check=True) -> subprocess.CompletedProcess:
        """A bash script in the workspace folder (as a user types it)."""
        proc = subprocess.run(["bash", "-c", "set -e\n" + script], cwd=self.ws, env=env or self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"`{script}` exited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}",
                        pytrace=False)
        return proc

    def installed_env(self, domain_id: int, log_dir: Path) -> dict:
        """The environment after `. install/setup.sh` (as a user's shell has it)."""
        out = self.run(". install/setup.sh && env -0", timeout=60).stdout
        env = dict(line.split("=", 1) for line in out.split("\0") if "=" in line)
        env.update({"ROS_DOMAIN_ID": str(domain_id), "ROS_LOG_DIR": str(log_dir),
                    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
                    "FASTDDS_DEFAULT_PROFILES_FILE": str(self.prefix / "share" / PACKAGE / "config" /
                                                         "fastdds_profile.xml"),
                    "PYTHONUNBUFFERED": "1"})
        return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    for tool in ("colcon", "cmake", "c++"):
        _require(tool)
    w = Workspace(tmp_path_factory.mktemp("colcon"))
    w.copy_sources()
    started = time.monotonic()
    proc = w.run("colcon build", timeout=BUILD_TIMEOUT, check=False)
    w.build_seconds = time.monotonic() - started
    print(f"plain `colcon build`: {w.build_seconds:.0f} s")
    if proc.returncode != 0:
        logs = "\n".join(p.read_text()[-3000:] for p in (w.ws / "log" / "latest_build" / PACKAGE).glob("std*.log"))
        pytest.fail(f"`colcon build` exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{logs}",
                    pytrace=False)
    return w


def test_plain_colcon_build_finds_and_installs_everything(workspace):
    w = workspace
    listed = w.run("colcon list", timeout=60).stdout.split()
    assert listed[:3] == [PACKAGE, f"src/{PACKAGE}", "(ros.ament_cmake)"], listed
    share = w.prefix / "share" / PACKAGE
    for rel in ("package.xml", "launch/tracker.launch.py", "launch/camera_tracker.launch.py",
                "launch/bag_replay_tracker.launch.py", "config/tracker.yaml", "config/models/default.yaml",
                "config/fastdds_profile.xml", "msg/TrackedObject.msg"):
        assert (share / rel).is_file(), rel
    assert (w.prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = [line.split("=")[0].strip() for line in cfg["options.entry_points"]["console_scripts"].splitlines()
               if line.strip()]
    assert "tracker_node" in scripts
    for name in scripts:
        exe = w.prefix / "lib" / PACKAGE / name
        assert exe.is_file() and os.access(exe, os.X_OK), name
        assert exe.read_text().startswith(f"#!{w.python.parent}"), "not the build's Python"
    weights = list((w.prefix / "lib").glob(f"python3*/site-packages/{PACKAGE}/weights/*.pt"))
    assert weights, "the shipped weights are not installed"

    # What the installed package sees, from a directory that is not the checkout.
    probe = f"""
import json, sys, siam_tracker_ros, siam_tracker_ros.msg as m
from siam_tracker_ros.core.models import registry
from siam_tracker_ros.ros.process import share_file, tracker_node_command
m.TrackedObject(); m.TargetInit(); m.TrackedObjectArray(); m.ConfidenceMap()
print(json.dumps({{"package": siam_tracker_ros.__file__, "msg": m.__file__, "path": sys.path,
                   "models": registry.available_models(), "config_dirs": registry.config_dirs(),
                   "params": share_file("config", "tracker.yaml"), "node": tracker_node_command(),
                   "weights": registry.resolve_weights_path("default.pt", {{}})}}))
"""
    env = w.installed_env(0, w.base / "log")
    out = subprocess.run([str(w.python), "-c", probe], cwd=w.base, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    import json
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    install = str(w.install)
    for key in ("package", "msg", "params", "weights"):
        assert seen[key].startswith(install), (key, seen[key])
    assert seen["config_dirs"] and all(d.startswith(install) for d in seen["config_dirs"]), seen["config_dirs"]
    assert {"default", "siamfc", "nanotrack"} <= set(seen["models"])
    assert seen["node"] == [str(w.prefix / "lib" / PACKAGE / "tracker_node")]
    # No sys.path entry leads to the checkout's package (ROOT itself, as the editable install puts it).
    checkout_entries = [p for p in seen["path"] if p and os.path.isfile(os.path.join(p, PACKAGE, "__init__.py"))
                        and os.path.realpath(p) == str(ROOT.resolve())]
    assert not checkout_entries, f"the checkout is on sys.path: {checkout_entries}"


def test_installed_node_tracks_real_frames(workspace, tmp_path):
    """tracker_node from the install, started as after `. install/setup.sh`, with the
    installed params file; the source tree on no path. Frames: the shared OTB_Crossing
    sequence (its ground truth) when ../shared is there, else the synthetic clip."""
    from siam_tracker_ros.core.geometry import iou
    from siam_tracker_ros.core.tracking.base import TrackState
    from siam_tracker_ros.ros.client import TrackerClient
    from siam_tracker_ros.ros.process import NodeProcess, apply_to_this_process, fresh_domain_id
    from ros_node_fixtures import load_clip

    w = workspace
    clip = load_clip(30)
    domain = fresh_domain_id()
    env = w.installed_env(domain, tmp_path / "ros_log")
    apply_to_this_process(env)
    params = w.prefix / "share" / PACKAGE / "config" / "tracker.yaml"
    node = NodeProcess(["--params-file", str(params), "-r", "image:=/ws/image",
                        "-p", "qos.reliability:=reliable", "-p", "qos.depth:=10"], env,
                       command=[str(w.prefix / "lib" / PACKAGE / "tracker_node")])
    client = TrackerClient("/ws/image", domain_id=domain, image_qos=reliable_qos())
    try:
        assert client.wait_ready(90.0, node_alive=lambda: node.proc.poll() is None), node.output
        client.publish_frame(clip.frames[0], T0)
        assert client.wait_for(lambda: client.objects_for(T0), 30.0), node.output
        client.send_init(clip.init_box, stamp=T0, target_id=1)
        assert client.wait_for(lambda: len(client.objects_for(T0)) == 2, 30.0), node.output
        tracked = []
        for i in range(1, len(clip.frames)):
            stamp = T0 + i * DT
            client.publish_frame(clip.frames[i], stamp)
            assert client.wait_for(lambda: client.objects_for(stamp), 30.0), f"frame {i}\n{node.output}"
            tracked.append(client.objects_for(stamp)[0].msg)
    finally:
        client.close()
        code = node.stop()
    assert code == 0, node.output
    states = [m.state for m in tracked]
    assert states.count(TrackState.TRACKING) >= 0.9 * len(states), states
    if clip.boxes is not None:
        overlaps = [iou(np.array([m.x, m.y, m.width, m.height]), clip.boxes[i + 1])
                    for i, m in enumerate(tracked)]
        assert np.mean(overlaps) > 0.5, f"{clip.source}: mean IoU {np.mean(overlaps):.2f}"


def test_colcon_test_runs_the_pytest_suite(workspace):
    """`colcon test` runs pytest against the install; PYTEST_ADDOPTS narrows it here to the
    interface and packaging tests (the whole suite is what `make test` runs), among them
    test_packaging's check that the package under test is the installed one."""
    w = workspace
    env = dict(w.env, PYTEST_ADDOPTS="-k \"test_interfaces or test_packaging\" -p no:cacheprovider")
    started = time.monotonic()
    w.run("colcon test --ctest-args --output-on-failure", timeout=900, env=env)
    result = w.run("colcon test-result --all --verbose", timeout=60, check=False)
    seconds = time.monotonic() - started
    print(f"`colcon test` (interface tests): {seconds:.0f} s\n{result.stdout[-2000:]}")
    summary = re.search(r"Summary: (\d+) tests?, (\d+) errors?, (\d+) failures?, (\d+) skipped", result.stdout)
    assert summary, result.stdout
    total, errors, failures, skipped = map(int, summary.groups())
    assert total > 0 and errors == 0 and failures == 0 and skipped < total, summary.group(0)
    assert result.returncode == 0, result.stdout
    import xml.etree.ElementTree as ET
    (xunit,) = (w.ws / "build" / PACKAGE / "test_results" / PACKAGE).glob("*.xunit.xml")
    cases = {c.get("name"): c for c in ET.parse(xunit).getroot().iter("testcase")}
    case = cases["test_colcon_test_runs_against_the_install"]
    assert not list(case), f"not run as a plain pass: {[child.tag for child in case]}"
