"""Shared fixtures and markers.

- ``repo_root``, ``shared_dir``, ``sequences_dir``: paths; the shared data sit in
  ``../shared`` beside the repository (``SIAM_SHARED_DIR`` overrides). A test
  that needs them is skipped, with the path it looked at, when they are absent.
- ``@pytest.mark.shared_fallback``: the test runs with stand-in data when ../shared is
  absent (added to every test of a module that uses ``ros_node_fixtures.load_clip``);
  `.ci/run` runs them a second time with SIAM_SHARED_DIR pointing at an empty folder.
- ``@pytest.mark.ros_env`` (or the ``ros_env`` fixture): the test needs rclpy and
  the generated ``siam_tracker_ros``; it is skipped with the import error when
  either is missing (a core-only ``pip install .``). ``make test`` / CI build
  the interfaces and set ``SIAM_REQUIRE_ROS=1``, which turns that skip into a
  failure.
- ``rclpy_context``: a fresh, initialised ``rclpy.Context`` per test, shut down
  afterwards (one ``rclpy.init()`` per context).
- ``ros_subprocess_env``: the environment for ROS child processes.

The ROS variables that ``env.sh`` sets are given defaults here too (when
unset), so a bare ``pytest`` run is isolated as well: discovery on localhost,
a random domain ID per session (not the shell's), logs under log/ros, the Fast DDS profile.
"""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _ros_defaults() -> None:
    env = os.environ
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # A domain of the session's own (SIAM_TEST_ROS_DOMAIN_ID to choose it), never the shell's:
    # env.sh gives every terminal of a checkout the same domain, where the user's node may run.
    # Domain IDs whose ports avoid Linux's ephemeral range: 1-101, 215-232.
    env["ROS_DOMAIN_ID"] = env.get("SIAM_TEST_ROS_DOMAIN_ID") or str(random.SystemRandom().choice(
        list(range(1, 102)) + list(range(215, 233))))
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"  # the only RMW in the wheels
    env.setdefault("ROS_LOG_DIR", str(REPO_ROOT / "log" / "ros"))
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds_profile.xml"))


_ros_defaults()

_ROS_STATUS: tuple[bool, str] | None = None


def ros_available() -> tuple[bool, str]:
    """(True, "") when rclpy and siam_tracker_ros import, else (False, reason)."""
    global _ROS_STATUS
    if _ROS_STATUS is None:
        try:
            import rclpy  # noqa: F401
            import rclpy.serialization  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - ImportError, UnsupportedTypeSupport, OSError
            _ROS_STATUS = (False, f"rclpy cannot be imported ({type(exc).__name__}: {exc}); "
                                  "run `make test` or `bash scripts/setup_env.sh` and `. ./env.sh`")
        else:
            try:
                import siam_tracker_ros.msg as m
                m.TrackedObject()
            except Exception as exc:  # noqa: BLE001
                _ROS_STATUS = (False, f"siam_tracker_ros cannot be imported ({type(exc).__name__}: {exc}); "
                                      "build it with `make msgs` (scripts/setup_env.sh msgs)")
            else:
                _ROS_STATUS = (True, "")
    return _ROS_STATUS


def _require_ros() -> bool:
    return os.environ.get("SIAM_REQUIRE_ROS", "") not in ("", "0")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ros_env: needs rclpy and the generated siam_tracker_ros (skipped when missing)")
    config.addinivalue_line(
        "markers", "shared_fallback: uses stand-in data when ../shared is absent (set on the tests of "
                   "modules that use ros_node_fixtures.load_clip, and by hand); .ci/run runs these once "
                   "more with SIAM_SHARED_DIR pointing at an empty folder")
    # lark (a rosidl dependency, imported by rclpy) still imports sre_parse.
    config.addinivalue_line("filterwarnings", "ignore:module 'sre_parse' is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:module 'sre_constants' is deprecated:DeprecationWarning")


def _check_ros():
    ok, reason = ros_available()
    if not ok:
        if _require_ros():
            pytest.fail(f"SIAM_REQUIRE_ROS is set but {reason}", pytrace=False)
        pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    # A test module that takes its frames from load_clip runs on the shared clip or, without
    # ../shared, on its synthetic stand-in: those tests have a fallback.
    import ros_node_fixtures
    for item in items:
        module = getattr(item, "module", None)
        if getattr(module, "load_clip", None) is ros_node_fixtures.load_clip:
            item.add_marker(pytest.mark.shared_fallback)


def pytest_runtest_setup(item):
    if item.get_closest_marker("ros_env"):
        _check_ros()


@pytest.fixture
def ros_env():
    """Skips (or, with SIAM_REQUIRE_ROS=1, fails) the test when ROS is unavailable."""
    _check_ros()
    return {k: os.environ[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                                       "RMW_IMPLEMENTATION", "FASTDDS_DEFAULT_PROFILES_FILE",
                                       "ROS_LOG_DIR")}


@pytest.fixture
def rclpy_context(ros_env):
    """A fresh initialised rclpy Context; shut down after the test."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        ctx.try_shutdown()


@pytest.fixture
def ros_subprocess_env(ros_env):
    """Environment for child processes (tracker_node, helper scripts): this
    session's ROS variables, unbuffered output, the venv's bin on PATH."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("SIAM_SHARED_DIR", REPO_ROOT.parent / "shared"))
    if not path.is_dir():
        pytest.skip(f"shared folder not found at {path} (set SIAM_SHARED_DIR or put shared/ beside the repo)")
    return path


@pytest.fixture(scope="session")
def sequences_dir(shared_dir) -> Path:
    path = shared_dir / "data" / "sequences"
    if not path.is_dir():
        pytest.skip(f"labelled sequences not found at {path}")
    return path
