"""The tracker node with the package's params file (ROS 2 Humble or newer).

    ros2 launch siam_tracker_ros tracker.launch.py image:=/camera/image_raw
    ros2 launch siam_tracker_ros tracker.launch.py params_file:=/path/my.yaml model:=siamfc
    ros2 launch siam_tracker_ros tracker.launch.py image:=/camera/image_raw input:=compressed rviz:=true
    ros2 launch siam_tracker_ros tracker.launch.py namespace:=drone1
    ros2 launch siam_tracker_ros tracker.launch.py lifecycle:=true autostart:=false   # managed node

The same configuration as running the executable directly:
    ros2 run siam_tracker_ros tracker_node --ros-args --params-file <share>/config/tracker.yaml -r image:=/camera/image_raw

Arguments left empty keep the params file's value (model, engine, device, input,
num_threads). input:=compressed subscribes `<image>/compressed` (sensor_msgs/CompressedImage,
as image_transport names it). rviz:=true also starts rviz2 with config/tracker.rviz.
lifecycle:=true starts the managed lifecycle node (`tracker_node --lifecycle`): configure
loads the model, activate subscribes; autostart:=true (default) configures and activates it
at once, autostart:=false waits for `ros2 lifecycle set`.

When the tracker node exits, the launch shuts down (rviz2 with it): nothing outlives it.
camera_tracker.launch.py and bag_replay_tracker.launch.py include this file, passing every
argument declared here (test/test_launch_files.py checks that from the files).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "siam_tracker_ros"
NODE_NAME = "siam_tracker"
# (launch argument, node parameter it overrides, type); empty = keep the params file's value.
# input:= sets image_transport (the node's `input` parameter is its deprecated former name).
OVERRIDES = (("model", "model", str), ("engine", "engine", str), ("device", "device", str),
             ("input", "image_transport", str), ("num_threads", "num_threads", int))


def _tracker(context, *args, **kwargs):
    def value(name):
        return LaunchConfiguration(name).perform(context).strip()
    overrides = {param: kind(value(arg)) for arg, param, kind in OVERRIDES if value(arg)}
    arguments = []
    if value("lifecycle") == "true":
        arguments = ["--lifecycle"] + (["--autostart"] if value("autostart") == "true" else [])
    node = Node(package=PACKAGE, executable="tracker_node", name=NODE_NAME, namespace=value("namespace"),
                output="screen", emulate_tty=True, arguments=arguments,
                parameters=[value("params_file")] + ([overrides] if overrides else []),
                remappings=[("image", value("image"))])
    # The node ending (a crash, or its own shutdown) ends the launch.
    shutdown = RegisterEventHandler(OnProcessExit(
        target_action=node, on_exit=[EmitEvent(event=Shutdown(reason="the tracker node exited"))]))
    return [node, shutdown]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Image topic to track on (sensor_msgs/Image; with "
                                          "input:=compressed its /compressed sibling)."),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config",
                                                                  "tracker.yaml"]),
                              description="Parameters file (default: the package's config/tracker.yaml)."),
        DeclareLaunchArgument("model", default_value="",
                              description="Override the params file's model (name, YAML or checkpoint); "
                                          "empty: keep the file's."),
        DeclareLaunchArgument("engine", default_value="", choices=["", "auto", "torch", "onnxruntime", "tensorrt"],
                              description="Override the engine; empty: keep the params file's."),
        DeclareLaunchArgument("device", default_value="",
                              description="Override the device: auto | cpu | cuda | cuda:N; empty: keep "
                                          "the params file's."),
        DeclareLaunchArgument("input", default_value="", choices=["", "raw", "compressed"],
                              description="Override the input: raw (sensor_msgs/Image) | compressed "
                                          "(<image>/compressed); empty: keep the params file's."),
        DeclareLaunchArgument("num_threads", default_value="",
                              description="Override the engine's CPU threads (0 = its default); empty: "
                                          "keep the params file's."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the tracker node."),
        DeclareLaunchArgument("lifecycle", default_value="false", choices=["true", "false"],
                              description="Start the managed lifecycle node instead of the plain node."),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="Lifecycle node: configure and activate it at start."),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start rviz2 with config/tracker.rviz."),
        OpaqueFunction(function=_tracker),
        Node(package="rviz2", executable="rviz2", name="siam_tracker_rviz", output="screen",
             arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "tracker.rviz"])],
             condition=IfCondition(LaunchConfiguration("rviz"))),
    ])
