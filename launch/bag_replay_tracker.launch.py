"""Replay a rosbag2 into the tracker node with `siam-bag replay` (no `ros2 bag play` needed).

    siam-bag from-video ../shared/data/sequences/OTB_Crossing crossing_bag     # images + ground truth + init
    ros2 launch siam_tracker_ros bag_replay_tracker.launch.py bag:=crossing_bag
    ros2 launch siam_tracker_ros bag_replay_tracker.launch.py bag:=crossing_bag rate:=0.5 lockstep:=false loop:=true
    ros2 launch siam_tracker_ros bag_replay_tracker.launch.py bag:=crossing_bag record:=results_bag
    siam-bag score results_bag --groundtruth-bag crossing_bag                   # AUC, P@20 ...

The replay publishes every topic of the bag (images, /groundtruth, the TargetInit of the
first frame on /siam_tracker/init) at the recorded rate times `rate`; with lockstep:=true
(default) it waits for the node's answer to each frame before the next, so no frame is
dropped whatever the machine's speed. record:=PATH writes the node's TrackedObject messages
to a results bag. `image` is the bag's image topic (siam-bag from-video writes
/camera/image_raw); the other tracker arguments are tracker.launch.py's, passed on to it in
a scoped group, every one of them.

When the replay ends (the bag is done, unless loop:=true) or the tracker node exits, the
launch shuts down: nothing outlives it.
"""
import os
import shutil

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, GroupAction,
                            IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

PACKAGE = "siam_tracker_ros"
NODE_NAME = "siam_tracker"


def siam_bag_executable() -> str:
    """siam-bag of the installed package (lib/<package>/ in a colcon install), else PATH's."""
    try:
        from ament_index_python.packages import get_package_prefix
        path = os.path.join(get_package_prefix(PACKAGE), "lib", PACKAGE, "siam-bag")
        if os.path.isfile(path):
            return path
    except Exception:  # noqa: BLE001 - not in the ament index (a pip install)
        pass
    return shutil.which("siam-bag") or "siam-bag"


def _replay(context, *args, **kwargs):
    def value(name):
        return LaunchConfiguration(name).perform(context).strip()
    bag = value("bag")
    if not bag:
        raise RuntimeError("bag:=PATH is required (a rosbag2 folder, e.g. from siam-bag from-video)")
    namespace = value("namespace").strip("/")
    prefix = f"/{namespace}/{NODE_NAME}" if namespace else f"/{NODE_NAME}"
    cmd = [siam_bag_executable(), "replay", bag, "--rate", value("rate")]
    if value("lockstep") == "true":
        cmd += ["--lockstep", f"{prefix}/tracked_object"]
    if value("loop") == "true":
        cmd += ["--loop"]
    if value("record"):
        cmd += ["--record", value("record"), "--record-topic", f"{prefix}/tracked_object", "--overwrite"]
    if namespace:   # the bag's init topic is the un-namespaced node's
        cmd += ["--remap", f"/{NODE_NAME}/init:={prefix}/init"]
    replay = ExecuteProcess(cmd=cmd, name="siam_bag_replay", output="screen", sigterm_timeout="10")
    shutdown = RegisterEventHandler(OnProcessExit(
        target_action=replay, on_exit=[EmitEvent(event=Shutdown(reason="the bag replay ended"))]))
    return [replay, shutdown]


def generate_launch_description():
    tracker_launch = PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "tracker.launch.py"])
    return LaunchDescription([
        # The replay.
        DeclareLaunchArgument("bag", description="rosbag2 folder to replay (sqlite3 or MCAP)."),
        DeclareLaunchArgument("rate", default_value="1.0",
                              description="Speed factor of the recorded timing; 0 = as fast as lockstep "
                                          "allows."),
        DeclareLaunchArgument("lockstep", default_value="true", choices=["true", "false"],
                              description="Wait for the tracker's answer to each frame before the next."),
        DeclareLaunchArgument("loop", default_value="false", choices=["true", "false"],
                              description="Replay again and again."),
        DeclareLaunchArgument("record", default_value="",
                              description="Results bag to write the tracker's TrackedObject messages to "
                                          "(empty: none)."),
        # The tracker: tracker.launch.py's arguments, same names, same defaults.
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="The bag's image topic, which the tracker subscribes."),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config",
                                                                  "tracker.yaml"]),
                              description="Tracker parameters file (default: the package's "
                                          "config/tracker.yaml)."),
        DeclareLaunchArgument("model", default_value="",
                              description="Override the params file's model; empty: keep the file's."),
        DeclareLaunchArgument("engine", default_value="", choices=["", "auto", "torch", "onnxruntime", "tensorrt"],
                              description="Override the engine; empty: keep the params file's."),
        DeclareLaunchArgument("device", default_value="",
                              description="Override the device: auto | cpu | cuda | cuda:N; empty: keep "
                                          "the params file's."),
        DeclareLaunchArgument("input", default_value="", choices=["", "raw", "compressed"],
                              description="Override the tracker's input: raw | compressed (a bag of "
                                          "CompressedImage on <image>/compressed); empty: keep the params "
                                          "file's."),
        DeclareLaunchArgument("num_threads", default_value="",
                              description="Override the engine's CPU threads; empty: keep the params file's."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the tracker node."),
        DeclareLaunchArgument("lifecycle", default_value="false", choices=["true", "false"],
                              description="Start the managed lifecycle tracker node."),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="Lifecycle node: configure and activate it at start."),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start rviz2 with config/tracker.rviz."),
        OpaqueFunction(function=_replay),
        GroupAction(scoped=True, actions=[IncludeLaunchDescription(
            PythonLaunchDescriptionSource(tracker_launch),
            launch_arguments={
                "image": LaunchConfiguration("image"),
                "params_file": LaunchConfiguration("params_file"),
                "model": LaunchConfiguration("model"),
                "engine": LaunchConfiguration("engine"),
                "device": LaunchConfiguration("device"),
                "input": LaunchConfiguration("input"),
                "num_threads": LaunchConfiguration("num_threads"),
                "namespace": LaunchConfiguration("namespace"),
                "lifecycle": LaunchConfiguration("lifecycle"),
                "autostart": LaunchConfiguration("autostart"),
                "rviz": LaunchConfiguration("rviz"),
            }.items())]),
    ])
