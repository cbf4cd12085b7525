"""Replay a rosbag2 into the tracker node with `siam-bag replay` (no `ros2 bag play` needed).

    siam-bag from-video ../shared/data/sequences/OTB_Crossing crossing_bag     # images + ground truth + init
    ros2 launch siam_tracker_ros bag_replay_tracker.launch.py bag:=crossing_bag
    ros2 launch siam_tracker_ros bag_replay_tracker.launch.py bag:=crossing_bag rate:=0.5 lockstep:=false loop:=true
    ros2 launch siam_tracker_ros bag_replay_tracker.launch.py bag:=crossing_bag record:=results_bag
    siam-bag score results_bag --groundtruth-bag crossing_bag                   # AUC, P@20 ...

The replay publishes every topic of the bag (images, /groundtruth, the TargetInit of
the first frame on /siam_tracker/init) at the recorded rate times `rate`; with
lockstep:=true (default) it waits for the node's answer to each frame before the next,
so no frame is dropped whatever the machine's speed. record:=PATH writes the node's
TrackedObject messages to a results bag. The tracker gets `image_topic` (the bag's
image topic: siam-bag from-video writes /camera/image_raw) and the other tracker
arguments (params_file, model, engine, device, num_threads, namespace, rviz).
"""
import os
import shutil

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

PACKAGE = "siam_tracker_ros"
NODE_NAME = "siam_tracker"
PASSED_ON = ("params_file", "model", "engine", "device", "num_threads", "namespace", "rviz", "lifecycle")


def siam_bag_executable() -> str:
    """siam-bag of the installed package (colcon puts console scripts in lib/<package>), else PATH's."""
    try:
        path = os.path.join(get_package_prefix(PACKAGE), "lib", PACKAGE, "siam-bag")
        if os.path.isfile(path):
            return path
    except Exception:  # noqa: BLE001 - package not in the ament index (pip install)
        pass
    return shutil.which("siam-bag") or "siam-bag"


def _replay_and_tracker(context, *args, **kwargs):
    def value(name):
        return LaunchConfiguration(name).perform(context).strip()
    bag = value("bag")
    if not bag:
        raise RuntimeError("bag:=PATH is required (a rosbag2 folder, e.g. from siam-bag from-video)")
    ns = value("namespace").strip("/")
    prefix = f"/{ns}/{NODE_NAME}" if ns else f"/{NODE_NAME}"
    cmd = [siam_bag_executable(), "replay", bag, "--rate", value("rate")]
    if value("lockstep").lower() in ("true", "1", "yes"):
        cmd += ["--lockstep", f"{prefix}/tracked_object"]
    if value("loop").lower() in ("true", "1", "yes"):
        cmd += ["--loop"]
    if value("record"):
        cmd += ["--record", value("record"), "--record-topic", f"{prefix}/tracked_object", "--overwrite"]
    if ns:   # the bag's init topic is the un-namespaced node's
        cmd += ["--remap", f"/{NODE_NAME}/init:={prefix}/init"]
    tracker_args = {"image": value("image_topic")}
    for name in PASSED_ON:
        text = value(name)
        if text:
            tracker_args[name] = text
    launch_dir = os.path.join(get_package_share_directory(PACKAGE), "launch")
    return [
        IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(launch_dir, "tracker.launch.py")),
                                 launch_arguments=list(tracker_args.items())),
        ExecuteProcess(cmd=cmd, name="siam_bag_replay", output="screen", sigterm_timeout="10"),
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="rosbag2 folder to replay (sqlite3 or MCAP)."),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="The bag's image topic (the tracker subscribes it)."),
        DeclareLaunchArgument("rate", default_value="1.0",
                              description="Speed factor of the recorded timing; 0 = as fast as lockstep allows."),
        DeclareLaunchArgument("lockstep", default_value="true",
                              description="Wait for the tracker's answer to each frame before the next."),
        DeclareLaunchArgument("loop", default_value="false", description="Replay again and again."),
        DeclareLaunchArgument("record", default_value="",
                              description="Results bag to write the tracker's TrackedObject messages to."),
        DeclareLaunchArgument("params_file", default_value=""),
        DeclareLaunchArgument("model", default_value=""),
        DeclareLaunchArgument("engine", default_value=""),
        DeclareLaunchArgument("device", default_value=""),
        DeclareLaunchArgument("num_threads", default_value=""),
        DeclareLaunchArgument("namespace", default_value="", description="Tracker node namespace."),
        DeclareLaunchArgument("rviz", default_value="", description="true: also start rviz2 (config/tracker.rviz)."),
        DeclareLaunchArgument("lifecycle", default_value="",
                              description="true: the managed lifecycle node (autostarted)."),
        OpaqueFunction(function=_replay_and_tracker),
    ])
