"""Start the tracker node with config/tracker.yaml (ROS 2 Humble or newer).

    ros2 launch siam_tracker_ros tracker.launch.py image:=/camera/image_raw
    ros2 launch siam_tracker_ros tracker.launch.py params_file:=/path/my.yaml model:=siamfc
    ros2 launch siam_tracker_ros tracker.launch.py image:=/camera/image_raw input:=compressed rviz:=true
    ros2 launch siam_tracker_ros tracker.launch.py lifecycle:=true autostart:=false   # managed node

The same configuration as running the entry point directly:
    tracker_node --ros-args --params-file config/tracker.yaml -r image:=/camera/image_raw

Arguments left empty keep the params file's value (model, engine, device, input,
num_threads). input:=compressed subscribes `<image>/compressed`
(sensor_msgs/CompressedImage, as image_transport names it). rviz:=true also starts
rviz2 with config/tracker.rviz (debug image and confidence map). lifecycle:=true
starts the managed lifecycle node (`tracker_node --lifecycle`): configure loads the
model, activate subscribes; with autostart:=true (default) it configures and
activates itself, with autostart:=false it waits for `ros2 lifecycle set`.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "siam_tracker_ros"
# Node parameters a launch argument may override; empty = keep the params file's value.
OVERRIDES = (("model", str), ("engine", str), ("device", str), ("input", str), ("num_threads", int))


def _tracker(context, *args, **kwargs):
    def value(name):
        return LaunchConfiguration(name).perform(context)
    overrides = {}
    for name, kind in OVERRIDES:
        text = value(name).strip()
        if text:
            overrides[name] = kind(text)
    image = value("image")
    arguments = []
    if value("lifecycle").lower() in ("true", "1", "yes"):
        arguments = ["--lifecycle"] + (["--autostart"] if value("autostart").lower() in ("true", "1", "yes") else [])
    return [Node(package=PACKAGE, executable="tracker_node", name="siam_tracker",
                 namespace=value("namespace"), output="screen", emulate_tty=True, arguments=arguments,
                 parameters=[value("params_file")] + ([overrides] if overrides else []),
                 remappings=[("image", image)])]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Image topic to track on (sensor_msgs/Image; with "
                                          "input:=compressed its /compressed sibling)."),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "tracker.yaml"),
                              description="Parameters file (default: the package's config/tracker.yaml)."),
        DeclareLaunchArgument("model", default_value="",
                              description="Override the params file's model (name, YAML or checkpoint)."),
        DeclareLaunchArgument("engine", default_value="", description="Override the engine: torch | onnxruntime."),
        DeclareLaunchArgument("device", default_value="", description="Override the device: auto | cpu | cuda."),
        DeclareLaunchArgument("input", default_value="", description="Override the input: raw | compressed."),
        DeclareLaunchArgument("num_threads", default_value="", description="Override the engine's CPU threads."),
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace."),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="Start the managed lifecycle node instead of the plain node."),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="Lifecycle node: configure and activate at start."),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="Also start rviz2 with config/tracker.rviz."),
        OpaqueFunction(function=_tracker),
        Node(package="rviz2", executable="rviz2", name="siam_tracker_rviz", output="screen",
             arguments=["-d", os.path.join(share, "config", "tracker.rviz")],
             condition=IfCondition(LaunchConfiguration("rviz"))),
    ])
