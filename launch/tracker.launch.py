"""Start the tracker node with config/tracker.yaml (ROS 2 Humble or newer).

    ros2 launch siam_tracker_ros tracker.launch.py image:=/camera/image_raw
    ros2 launch siam_tracker_ros tracker.launch.py params_file:=/path/my.yaml model:=siamfc

The same configuration as running the entry point directly:
    tracker_node --ros-args --params-file config/tracker.yaml -r image:=/camera/image_raw
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

PACKAGE = "siam_tracker_ros"


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), "config", "tracker.yaml")
    image = LaunchConfiguration("image")
    params_file = LaunchConfiguration("params_file")
    model = LaunchConfiguration("model")
    node_args = dict(package=PACKAGE, executable="tracker_node", name="siam_tracker",
                     namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
                     remappings=[("image", image)])
    no_model = PythonExpression(["'", model, "' == ''"])
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Image topic to track on (sensor_msgs/Image)."),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameters file (default: the package's config/tracker.yaml)."),
        DeclareLaunchArgument("model", default_value="",
                              description="Override the params file's model (name, YAML or checkpoint)."),
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace."),
        Node(**node_args, parameters=[params_file], condition=IfCondition(no_model)),
        Node(**node_args, parameters=[params_file, {"model": model}],
             condition=UnlessCondition(no_model)),
    ])
