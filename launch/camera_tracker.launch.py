"""A camera driver plus the tracker node on its images (ROS 2 Humble or newer).

    ros2 launch siam_tracker_ros camera_tracker.launch.py                       # v4l2_camera, /dev/video0
    ros2 launch siam_tracker_ros camera_tracker.launch.py camera:=usb_cam video_device:=/dev/video2
    ros2 launch siam_tracker_ros camera_tracker.launch.py camera:=none image:=/my_robot/front/image_raw
    ros2 launch siam_tracker_ros camera_tracker.launch.py input:=compressed      # over a slow link

camera: v4l2_camera (package ros-<distro>-v4l2-camera), usb_cam (ros-<distro>-usb-cam), or
none (a camera already running: give its topic with image:=). The driver runs in the
namespace `camera_name` and publishes `/<camera_name>/image_raw`, the default of `image`.
input:=compressed makes the tracker subscribe `<image>/compressed` (the driver's
image_transport compressed plugin must be installed: ros-<distro>-image-transport-plugins).

The tracker comes from tracker.launch.py, included in a scoped group with every argument it
declares passed on from this file's arguments of the same names and defaults (so none of
this file's launch configurations reaches it unasked). When the driver or the tracker node
exits, the launch shuts down.
"""
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, GroupAction, IncludeLaunchDescription,
                            OpaqueFunction, RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "siam_tracker_ros"


def _camera(context, *args, **kwargs):
    def value(name):
        return LaunchConfiguration(name).perform(context).strip()
    driver = value("camera")
    namespace = value("camera_name").strip("/") or "camera"
    width, height, fps = int(value("width")), int(value("height")), float(value("fps"))
    if driver == "v4l2_camera":
        node = Node(package="v4l2_camera", executable="v4l2_camera_node", name="v4l2_camera",
                    namespace=namespace, output="screen",
                    parameters=[{"video_device": value("video_device"), "image_size": [width, height],
                                 "time_per_frame": [1, max(1, int(round(fps)))], "output_encoding": "rgb8",
                                 "camera_frame_id": value("frame_id")}])
    elif driver == "usb_cam":
        node = Node(package="usb_cam", executable="usb_cam_node_exe", name="usb_cam", namespace=namespace,
                    output="screen",
                    parameters=[{"video_device": value("video_device"), "image_width": width,
                                 "image_height": height, "framerate": fps,
                                 "pixel_format": value("pixel_format") or "yuyv2rgb",
                                 "frame_id": value("frame_id")}])
    else:
        return []
    shutdown = RegisterEventHandler(OnProcessExit(
        target_action=node, on_exit=[EmitEvent(event=Shutdown(reason="the camera driver exited"))]))
    return [node, shutdown]


def generate_launch_description():
    tracker_launch = PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "tracker.launch.py"])
    return LaunchDescription([
        # The camera driver.
        DeclareLaunchArgument("camera", default_value="v4l2_camera", choices=["v4l2_camera", "usb_cam", "none"],
                              description="Camera driver: v4l2_camera | usb_cam | none (a camera already "
                                          "running: set image:=)."),
        DeclareLaunchArgument("camera_name", default_value="camera",
                              description="Namespace of the driver (it publishes /<camera_name>/image_raw)."),
        DeclareLaunchArgument("video_device", default_value="/dev/video0", description="The camera device."),
        DeclareLaunchArgument("width", default_value="640", description="Image width, px."),
        DeclareLaunchArgument("height", default_value="480", description="Image height, px."),
        DeclareLaunchArgument("fps", default_value="30", description="Frame rate."),
        DeclareLaunchArgument("pixel_format", default_value="",
                              description="usb_cam pixel_format (empty: yuyv2rgb; mjpeg2rgb for MJPEG "
                                          "cameras)."),
        DeclareLaunchArgument("frame_id", default_value="camera", description="frame_id of the images."),
        # The tracker: tracker.launch.py's arguments, same names, same defaults.
        DeclareLaunchArgument("image", default_value=["/", LaunchConfiguration("camera_name"), "/image_raw"],
                              description="The tracker's image topic (default: /<camera_name>/image_raw)."),
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
                              description="Override the tracker's input: raw | compressed "
                                          "(<image>/compressed); empty: keep the params file's."),
        DeclareLaunchArgument("num_threads", default_value="",
                              description="Override the engine's CPU threads; empty: keep the params file's."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the tracker node."),
        DeclareLaunchArgument("lifecycle", default_value="false", choices=["true", "false"],
                              description="Start the managed lifecycle tracker node."),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="Lifecycle node: configure and activate it at start."),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start rviz2 with config/tracker.rviz."),
        OpaqueFunction(function=_camera),
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
